//! The screening and matching policy (`policy/clues/screening.toml`): which parties are worth
//! matching, and the match probabilities that raise a clue or queue it for review. Data, not
//! code; every decision records the policy version.

use jiuzhu_config::{ConfigError, Layers, Validate};
use jiuzhu_proto::clues::{Harm, PartyRole};
use serde::Deserialize;

/// The policy shipped with this build.
pub const SHIPPED: &str = include_str!("../../../policy/clues/screening.toml");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriousHarm {
    pub deceased: bool,
    pub serious_injury: bool,
    pub disability_grade_at_most: i32,
    pub property_loss_fen_at_least: i64,
    pub medical_costs_fen_at_least: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub review: f64,
    pub automatic: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreeningPolicy {
    pub version: String,
    pub reverse_correlation_days: i32,
    pub roles: Vec<String>,
    pub serious_harm: SeriousHarm,
    pub thresholds: Thresholds,
}

impl Validate for ScreeningPolicy {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.version.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{prefix}.version"),
                "is required",
            ));
        }
        jiuzhu_config::check_range(
            prefix,
            "reverse_correlation_days",
            self.reverse_correlation_days,
            1..=3650,
        )?;
        for role in &self.roles {
            if role_named(role).is_none() {
                return Err(ConfigError::invalid(
                    format!("{prefix}.roles"),
                    format!("`{role}` is not a party role"),
                ));
            }
        }
        let t = &self.thresholds;
        if !(0.0 < t.review && t.review <= t.automatic && t.automatic <= 1.0) {
            return Err(ConfigError::invalid(
                format!("{prefix}.thresholds"),
                "needs 0 < review <= automatic <= 1",
            ));
        }
        Ok(())
    }
}

pub fn role_named(name: &str) -> Option<PartyRole> {
    Some(match name {
        "victim" => PartyRole::Victim,
        "dependant" => PartyRole::Dependant,
        "whistleblower" => PartyRole::Whistleblower,
        "witness" => PartyRole::Witness,
        "expert" => PartyRole::Expert,
        "other" => PartyRole::Other,
        _ => return None,
    })
}

impl ScreeningPolicy {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Layers::from_toml(text)?.section("screening")
    }

    /// `None` when the party is worth matching, else the reason it is not.
    pub fn screen(&self, role: PartyRole, harm: &Harm) -> Option<String> {
        let considered = self
            .roles
            .iter()
            .filter_map(|r| role_named(r))
            .any(|r| r == role);
        if !considered {
            return Some(format!(
                "role {} is not considered ({})",
                role.as_str_name(),
                self.version
            ));
        }
        let rules = &self.serious_harm;
        let fen = |m: &Option<jiuzhu_proto::common::Money>| m.as_ref().map_or(0, |m| m.fen);
        let serious = (rules.deceased && harm.deceased)
            || (rules.serious_injury && harm.serious_injury)
            || (harm.disability_grade >= 1
                && harm.disability_grade <= rules.disability_grade_at_most)
            || (rules.property_loss_fen_at_least > 0
                && fen(&harm.property_loss) >= rules.property_loss_fen_at_least)
            || (rules.medical_costs_fen_at_least > 0
                && fen(&harm.medical_costs) >= rules.medical_costs_fen_at_least);
        (!serious).then(|| {
            format!(
                "no serious harm to person or property under {} (not deceased, no serious injury or disability grade 1-{}, property loss under {} fen, medical costs under {} fen)",
                self.version,
                rules.disability_grade_at_most,
                rules.property_loss_fen_at_least,
                rules.medical_costs_fen_at_least
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiuzhu_proto::common::Money;

    #[test]
    fn the_shipped_policy_screens_by_role_and_harm() -> Result<(), ConfigError> {
        let policy = ScreeningPolicy::parse(SHIPPED)?;
        let injured = Harm {
            disability_grade: 7,
            ..Harm::default()
        };
        assert_eq!(policy.screen(PartyRole::Victim, &injured), None);
        assert!(policy.screen(PartyRole::Other, &injured).is_some());
        let minor = Harm {
            property_loss: Some(Money { fen: 50_000 }),
            ..Harm::default()
        };
        let reason = policy.screen(PartyRole::Victim, &minor).unwrap_or_default();
        assert!(
            reason.contains("no serious harm") && reason.contains(&policy.version),
            "{reason}"
        );
        let robbed = Harm {
            property_loss: Some(Money { fen: 2_000_000 }),
            ..Harm::default()
        };
        assert_eq!(policy.screen(PartyRole::Victim, &robbed), None);
        Ok(())
    }

    #[test]
    fn a_bad_policy_names_the_key() {
        let error = ScreeningPolicy::parse(&SHIPPED.replace("review = 0.5", "review = 2.0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("screening.thresholds"), "{error}");
    }
}
