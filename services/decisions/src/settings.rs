//! `[recommender]`, the settings section the decisions service owns.

use jiuzhu_config::{ConfigError, Section, Validate};
use serde::{Deserialize, Serialize};

/// `[recommender]`: the relief recommendation model the decisions service loads (a file
/// written by `jiuzhu recommend train`). Without one, recommendations are refused with that
/// explanation; nothing else depends on it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecommenderSettings {
    pub model: Option<std::path::PathBuf>,
}

impl Section for RecommenderSettings {
    const NAME: &'static str = "recommender";
}

impl Validate for RecommenderSettings {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
