//! `[linkage]`, the settings section the clue service owns: which linkage model it starts
//! with, and how it learns the next one.

use jiuzhu_config::{ConfigError, Section, Validate};
use serde::{Deserialize, Serialize};

/// `[linkage]`. The service scores with the model it adopted last (recorded as
/// `LinkageModelAdopted`). At start it adopts `model` when that file holds another version; on
/// its schedule it estimates one from its registry index, the parties it has seen and the
/// reviewers' decisions, and adopts it when enough labels back it and its held-out calibration
/// holds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkageSettings {
    /// A model written by `jiuzhu link train`.
    pub model: Option<std::path::PathBuf>,
    /// Seconds between estimations from the service's own data (a day by default); 0: never.
    pub train_every_seconds: u64,
    /// The most recent parties an estimation uses, at most.
    pub train_parties: usize,
    /// Labels (anchored parties and reviews) an estimated model needs before it is adopted.
    pub min_labels: usize,
    /// Largest held-out reliability gap an estimated model may show and still be adopted.
    pub max_gap: f64,
}

impl Default for LinkageSettings {
    fn default() -> Self {
        Self {
            model: None,
            train_every_seconds: 86_400,
            train_parties: 20_000,
            min_labels: 500,
            max_gap: 0.05,
        }
    }
}

impl Section for LinkageSettings {
    const NAME: &'static str = "linkage";
}

impl Validate for LinkageSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.max_gap) {
            return Err(ConfigError::invalid(
                format!("{prefix}.max_gap"),
                "must be between 0 and 1",
            ));
        }
        if self.train_parties == 0 {
            return Err(ConfigError::invalid(
                format!("{prefix}.train_parties"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
