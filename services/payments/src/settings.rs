//! `[provider]`, the settings section the payments service owns: the bank it pays through and
//! how the submitter sends, waits and retries.

use jiuzhu_config::{ConfigError, Section, Validate, check_range};
use serde::{Deserialize, Serialize};

/// `[provider]`: the payment provider the payments service pays through, and how it submits,
/// waits and retries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderSettings {
    /// The provider's gateway endpoint (the bank's, or `jiuzhu-paysim`'s).
    pub endpoint: String,
    /// Name recorded on each submission.
    pub name: String,
    /// How long a call may take before its outcome counts as unknown.
    pub request_timeout_ms: u64,
    /// How often the submitter looks for work.
    pub poll_ms: u64,
    /// Most disbursements claimed per look.
    pub batch: i64,
    /// Calls to the provider in flight at once.
    pub concurrency: usize,
    /// After this many attempts a retryable failure is final.
    pub max_attempts: i32,
    /// Backoff before retry n is `backoff_base_ms × 2^(n−1)`, at most `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A submission whose outcome is unknown is resent (same key) after this long.
    pub resend_after_ms: u64,
    /// Failure drills only: the process aborts at this step (`after_reserve`, `after_submit`,
    /// `before_recording_outcome`). Never set in production.
    pub crash_at: Option<String>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            endpoint: "https://127.0.0.1:50060".to_owned(),
            name: "simulator".to_owned(),
            request_timeout_ms: 10_000,
            poll_ms: 200,
            batch: 100,
            concurrency: 16,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            resend_after_ms: 30_000,
            crash_at: None,
        }
    }
}

impl Section for ProviderSettings {
    const NAME: &'static str = "provider";
}

impl Validate for ProviderSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("{prefix}.endpoint"),
                "must be an http:// or https:// URL",
            ));
        }
        check_range(
            prefix,
            "request_timeout_ms",
            self.request_timeout_ms,
            10..=600_000,
        )?;
        check_range(prefix, "poll_ms", self.poll_ms, 1..=60_000)?;
        check_range(prefix, "batch", self.batch, 1..=10_000)?;
        check_range(prefix, "concurrency", self.concurrency, 1..=1_000)?;
        check_range(prefix, "max_attempts", self.max_attempts, 1..=100)?;
        check_range(
            prefix,
            "backoff_base_ms",
            self.backoff_base_ms,
            1..=3_600_000,
        )?;
        check_range(
            prefix,
            "backoff_max_ms",
            self.backoff_max_ms,
            1..=86_400_000,
        )?;
        check_range(
            prefix,
            "resend_after_ms",
            self.resend_after_ms,
            10..=86_400_000,
        )?;
        if let Some(step) = &self.crash_at
            && !["after_reserve", "after_submit", "before_recording_outcome"]
                .contains(&step.as_str())
        {
            return Err(ConfigError::invalid(
                format!("{prefix}.crash_at"),
                "must be after_reserve, after_submit or before_recording_outcome",
            ));
        }
        Ok(())
    }
}
