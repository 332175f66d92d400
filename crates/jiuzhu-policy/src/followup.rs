//! The follow-up policy as data (`policy/followup/followup.toml`, versioned): visit schedules
//! by category, the local poverty lines, the effect-score method's weights, and the
//! return-to-poverty risk rules.

use std::collections::BTreeMap;

use jiuzhu_config::{ConfigError, Layers, Validate};
use jiuzhu_proto::followup::Channel;
use serde::Deserialize;

/// The policy shipped with this build.
pub const SHIPPED: &str = include_str!("../../../policy/followup/followup.toml");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub visits_months: Vec<u32>,
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub income: u32,
    pub employment: u32,
    pub health: u32,
    pub housing: u32,
    pub schooling: u32,
    pub mental: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    pub method: String,
    pub income_cap: f64,
    pub trend_points: i32,
    pub weights: Weights,
}

/// One risk rule: its id and the one condition it tests (thresholds are data; the kinds of
/// test are code).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskRule {
    pub id: String,
    pub income_below_line_percent: Option<i64>,
    pub phq9_at_least: Option<i32>,
    pub gad7_at_least: Option<i32>,
    pub k10_at_least: Option<i32>,
    #[serde(default)]
    pub medical_burden_high: bool,
    #[serde(default)]
    pub housing_unsafe: bool,
    #[serde(default)]
    pub children_out_of_school: bool,
    #[serde(default)]
    pub measure_not_received: bool,
    #[serde(default)]
    pub unemployed: bool,
    /// Fires between visits, when the registry records one of these statuses (by name, such as
    /// `monitored_sudden_hardship`) in effect for a person whose plan is open.
    #[serde(default)]
    pub registry_statuses: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowupPolicy {
    pub version: String,
    pub visits_months: Vec<u32>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub categories: BTreeMap<String, Schedule>,
    /// Province code prefix (or `default`) → fen per head per year.
    pub poverty_line: BTreeMap<String, i64>,
    pub scoring: Scoring,
    pub risks: Vec<RiskRule>,
}

/// Every schedule names a known channel per visit, in increasing months; there is a default
/// poverty line.
impl Validate for FollowupPolicy {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let schedules = std::iter::once((prefix.to_owned(), self.default_schedule())).chain(
            self.categories
                .iter()
                .map(|(id, s)| (format!("{prefix}.categories.{id}"), s.clone())),
        );
        for (key, schedule) in schedules {
            if schedule.visits_months.is_empty()
                || schedule.visits_months.len() != schedule.channels.len()
                || !schedule.visits_months.windows(2).all(|w| w[0] < w[1])
            {
                return Err(ConfigError::invalid(
                    format!("{key}.visits_months"),
                    "needs increasing months and one channel per visit",
                ));
            }
            if let Some(bad) = schedule
                .channels
                .iter()
                .find(|c| channel_named(c).is_none())
            {
                return Err(ConfigError::invalid(
                    format!("{key}.channels"),
                    format!("`{bad}` is not phone, video or home_visit"),
                ));
            }
        }
        for (n, rule) in self.risks.iter().enumerate() {
            if let Some(bad) = rule
                .registry_statuses
                .iter()
                .find(|name| jiuzhu_sharing::status_named(name).is_none())
            {
                return Err(ConfigError::invalid(
                    format!("{prefix}.risks[{n}].registry_statuses"),
                    format!(
                        "`{bad}` is not a registry status (registered_poor, monitored_sudden_hardship, …)"
                    ),
                ));
            }
        }
        if !self.poverty_line.contains_key("default") {
            return Err(ConfigError::invalid(
                format!("{prefix}.poverty_line.default"),
                "a default poverty line is required",
            ));
        }
        Ok(())
    }
}

/// A channel by its policy name.
pub fn channel_named(name: &str) -> Option<Channel> {
    Channel::from_str_name(&format!("CHANNEL_{}", name.to_ascii_uppercase()))
        .filter(|c| *c != Channel::Unspecified)
}

impl FollowupPolicy {
    /// Parses and checks the policy (see [`Validate`]).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Layers::from_toml(text)?.section("followup")
    }

    fn default_schedule(&self) -> Schedule {
        Schedule {
            visits_months: self.visits_months.clone(),
            channels: self.channels.clone(),
        }
    }

    /// The schedule of a category (its override, else the default).
    pub fn schedule(&self, category: &str) -> Schedule {
        self.categories
            .get(category)
            .cloned()
            .unwrap_or_else(|| self.default_schedule())
    }

    /// The poverty line of a county (the longest matching province/city prefix, else default).
    pub fn poverty_line(&self, region_code: &str) -> i64 {
        (1..=region_code.len())
            .rev()
            .find_map(|n| self.poverty_line.get(&region_code[..n]))
            .or_else(|| self.poverty_line.get("default"))
            .copied()
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_parses_with_overrides_and_lines() -> Result<(), ConfigError> {
        let policy = FollowupPolicy::parse(SHIPPED)?;
        assert_eq!(policy.schedule("other_in_need").visits_months, [1, 6, 12]);
        assert_eq!(
            policy.schedule("urgent_medical").visits_months,
            [1, 3, 6, 12]
        );
        assert_eq!(policy.poverty_line("520102"), 620_000);
        assert_eq!(policy.poverty_line("330102"), 650_000);
        let broken = SHIPPED.replace("\"phone\", \"home_visit\", \"home_visit\"]", "\"fax\"]");
        assert!(FollowupPolicy::parse(&broken).is_err());
        assert!(policy.risks.iter().any(|r| {
            r.registry_statuses
                .iter()
                .any(|s| s == "monitored_sudden_hardship")
        }));
        let unknown = SHIPPED.replace("\"monitored_sudden_hardship\"", "\"rich\"");
        assert!(FollowupPolicy::parse(&unknown).is_err());
        Ok(())
    }
}
