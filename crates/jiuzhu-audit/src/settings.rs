use std::path::PathBuf;

use base64::Engine;
use jiuzhu_config::{ConfigError, Secret, Validate};
use serde::Deserialize;

/// `[audit]`: the key of the chain's HMAC and where the signed checkpoints go.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// 32 random bytes, base64 (best from the environment, `JIUZHU__AUDIT__KEY`). Its own key:
    /// not the vault's. Without one the chain is plain SHA-256, which whoever can write the
    /// table can recompute (development only; the service warns at start).
    pub key: Option<Secret>,
    /// A file holding the base64 key (read at start).
    pub key_file: Option<PathBuf>,
    /// Where each service appends its signed checkpoints (`<service>.audit-checkpoints.jsonl`):
    /// outside the database, ideally on storage the database's administrators cannot write.
    pub checkpoint_dir: PathBuf,
    /// Seconds between checkpoints (one is written only when records were added).
    pub checkpoint_every_s: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            key: None,
            key_file: None,
            checkpoint_dir: PathBuf::from(".jiuzhu/audit"),
            checkpoint_every_s: 300,
        }
    }
}

impl Validate for AuditSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.key.is_some() && self.key_file.is_some() {
            return Err(ConfigError::invalid(
                format!("{prefix}.key"),
                "give key or key_file, not both",
            ));
        }
        if let Some(key) = &self.key {
            AuditKey::decode(&format!("{prefix}.key"), key.expose())?;
        }
        if !(1..=86_400).contains(&self.checkpoint_every_s) {
            return Err(ConfigError::invalid(
                format!("{prefix}.checkpoint_every_s"),
                "must be between 1 and 86400",
            ));
        }
        Ok(())
    }
}

impl AuditSettings {
    /// The key, from `key` or `key_file`; `None` when neither is set.
    pub fn key(&self) -> Result<Option<AuditKey>, ConfigError> {
        if let Some(key) = &self.key {
            return AuditKey::decode("audit.key", key.expose()).map(Some);
        }
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::invalid("audit.key_file", format!("{}: {error}", path.display()))
        })?;
        AuditKey::decode("audit.key_file", &text).map(Some)
    }
}

/// The key of the audit chain's HMAC.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// From base64 text (32 bytes).
    pub fn decode(setting: &str, text: &str) -> Result<Self, ConfigError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| ConfigError::invalid(setting, "is not base64"))?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| {
                ConfigError::invalid(
                    setting,
                    format!("must decode to 32 bytes, not {}", bytes.len()),
                )
            })
    }

    /// Hex HMAC-SHA-256 of `bytes`.
    pub(crate) fn mac(&self, bytes: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        hex::encode(ring::hmac::sign(&key, bytes).as_ref())
    }
}
