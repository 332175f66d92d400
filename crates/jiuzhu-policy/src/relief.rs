//! The relief policy (`policy/decisions/relief.toml`): eligibility categories and exclusions, materials, the cap,
//! approval tiers and stage deadlines. Data, not code; every assessment and decision records
//! the policy version.

use std::collections::{BTreeMap, BTreeSet};

use jiuzhu_config::{ConfigError, Layers, Validate};
use jiuzhu_proto::decisions::Stage;
use serde::Deserialize;

/// The policy shipped with this build.
pub const SHIPPED: &str = include_str!("../../../policy/decisions/relief.toml");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalTier {
    pub from_fen: i64,
    pub approver: String,
}

/// How relief may be split into instalments.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instalments {
    pub max: u32,
    pub every_months: u32,
}

/// Objections (申诉/复查) to a rejection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objections {
    /// Working days after the rejection within which the applicant may object.
    pub within_working_days: u32,
}

/// How long a department has to answer a referral.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferralAnswers {
    /// Working days after the approval for the department's acknowledgement.
    pub acknowledge_within: u32,
}

/// What emergency relief leaves owed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Obligations {
    /// Working days after approval for the outstanding materials.
    pub outstanding_materials: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub id: String,
    pub description: String,
    pub requires: Vec<String>,
    pub materials: Vec<String>,
    /// Urgent need: paid first, materials completed after.
    #[serde(default)]
    pub emergency: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub id: String,
    pub description: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliefPolicy {
    pub version: String,
    pub cap_months: i64,
    pub exceptional_approver: String,
    pub approaching_working_days: u32,
    /// Working days per stage, by stage name ("accepted", …).
    pub deadlines: BTreeMap<String, u32>,
    pub approval_tiers: Vec<ApprovalTier>,
    pub obligations: Obligations,
    pub objections: Objections,
    pub referral_answers: ReferralAnswers,
    pub instalments: Instalments,
    /// Relief method name (`medical`, …) → the department it is referred to.
    pub referrals: BTreeMap<String, String>,
    /// Material id → what the applicant is told.
    pub materials: BTreeMap<String, String>,
    pub categories: Vec<Category>,
    pub exclusions: Vec<Exclusion>,
}

/// A relief method by its policy name (`one_time_payment`, `medical`, …).
pub fn method_named(name: &str) -> Option<jiuzhu_proto::decisions::ReliefMethod> {
    jiuzhu_proto::decisions::ReliefMethod::from_str_name(&format!(
        "RELIEF_METHOD_{}",
        name.to_ascii_uppercase()
    ))
    .filter(|m| *m != jiuzhu_proto::decisions::ReliefMethod::Unspecified)
}

/// The policy name of a relief method.
pub fn method_name(method: jiuzhu_proto::decisions::ReliefMethod) -> String {
    method
        .as_str_name()
        .trim_start_matches("RELIEF_METHOD_")
        .to_ascii_lowercase()
}

/// The policy's name for a stage (the keys of `[relief.deadlines]`).
pub fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Unspecified => "unspecified",
        Stage::Informed => "informed",
        Stage::Applied => "applied",
        Stage::Accepted => "accepted",
        Stage::Reviewed => "reviewed",
        Stage::ApprovalOpinion => "approval_opinion",
        Stage::Approved => "approved",
        Stage::Rejected => "rejected",
        Stage::Distributed => "distributed",
        Stage::Notified => "notified",
        Stage::Closed => "closed",
        Stage::ObjectionReview => "objection_review",
    }
}

const STAGES: [Stage; 11] = [
    Stage::Informed,
    Stage::Applied,
    Stage::Accepted,
    Stage::Reviewed,
    Stage::ApprovalOpinion,
    Stage::Approved,
    Stage::Rejected,
    Stage::Distributed,
    Stage::Notified,
    Stage::Closed,
    Stage::ObjectionReview,
];

impl Validate for ReliefPolicy {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, reason: String| ConfigError::invalid(format!("{prefix}.{key}"), reason);
        if self.version.trim().is_empty() {
            return Err(invalid("version", "is required".to_owned()));
        }
        jiuzhu_config::check_range(prefix, "cap_months", self.cap_months, 1..=600)?;
        jiuzhu_config::check_range(
            &format!("{prefix}.obligations"),
            "outstanding_materials",
            self.obligations.outstanding_materials,
            1..=250,
        )?;
        jiuzhu_config::check_range(
            &format!("{prefix}.referral_answers"),
            "acknowledge_within",
            self.referral_answers.acknowledge_within,
            1..=250,
        )?;
        jiuzhu_config::check_range(
            &format!("{prefix}.objections"),
            "within_working_days",
            self.objections.within_working_days,
            1..=250,
        )?;
        jiuzhu_config::check_range(
            prefix,
            "approaching_working_days",
            self.approaching_working_days,
            0..=30,
        )?;
        if self.exceptional_approver.trim().is_empty() {
            return Err(invalid("exceptional_approver", "is required".to_owned()));
        }
        for (stage, days) in &self.deadlines {
            if !STAGES.iter().any(|s| stage_name(*s) == stage) {
                return Err(invalid("deadlines", format!("`{stage}` is not a stage")));
            }
            if *days > 250 {
                return Err(invalid(
                    &format!("deadlines.{stage}"),
                    "more than a year of working days".to_owned(),
                ));
            }
        }
        if self.approval_tiers.first().map(|t| t.from_fen) != Some(0)
            || !self
                .approval_tiers
                .windows(2)
                .all(|w| w[0].from_fen < w[1].from_fen)
        {
            return Err(invalid(
                "approval_tiers",
                "must start at 0 fen and rise strictly".to_owned(),
            ));
        }
        for (method, department) in &self.referrals {
            if method_named(method).is_none() {
                return Err(invalid(
                    "referrals",
                    format!("`{method}` is not a relief method"),
                ));
            }
            if department.is_empty()
                || !department
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(invalid(
                    &format!("referrals.{method}"),
                    "must be a department name (lower case, underscores)".to_owned(),
                ));
            }
        }
        let exclusions: BTreeSet<&str> = self.exclusions.iter().map(|e| e.id.as_str()).collect();
        let mut ids = BTreeSet::new();
        for category in &self.categories {
            if !ids.insert(category.id.as_str()) {
                return Err(invalid(
                    "categories",
                    format!("`{}` is listed twice", category.id),
                ));
            }
            if category.requires.is_empty() {
                return Err(invalid(
                    "categories",
                    format!("`{}` requires no fact", category.id),
                ));
            }
            for fact in &category.requires {
                if exclusions.contains(fact.as_str()) {
                    return Err(invalid(
                        "categories",
                        format!("`{}` requires `{fact}`, which is an exclusion", category.id),
                    ));
                }
            }
            for material in &category.materials {
                if !self.materials.contains_key(material) {
                    return Err(invalid(
                        "categories",
                        format!(
                            "`{}` needs `{material}`, which is not a material",
                            category.id
                        ),
                    ));
                }
            }
        }
        if self.categories.is_empty() {
            return Err(invalid("categories", "none given".to_owned()));
        }
        Ok(())
    }
}

/// What eligibility found, and the rule that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    pub eligible: bool,
    pub rule: String,
    pub reason: String,
}

impl ReliefPolicy {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Layers::from_toml(text)?.section("relief")
    }

    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    /// Every fact name the policy knows (category requirements and exclusions).
    pub fn known_fact(&self, fact: &str) -> bool {
        self.exclusions.iter().any(|e| e.id == fact)
            || self
                .categories
                .iter()
                .any(|c| c.requires.iter().any(|r| r == fact))
    }

    /// Exclusions first (any one refuses), then the category's requirements (all needed).
    pub fn assess(&self, category: &Category, facts: &BTreeSet<String>) -> Eligibility {
        if let Some(exclusion) = self.exclusions.iter().find(|e| facts.contains(&e.id)) {
            return Eligibility {
                eligible: false,
                rule: format!("exclusion:{}", exclusion.id),
                reason: format!("excluded: {}", exclusion.description),
            };
        }
        if let Some(missing) = category.requires.iter().find(|r| !facts.contains(*r)) {
            return Eligibility {
                eligible: false,
                rule: format!("category:{}:{missing}", category.id),
                reason: format!(
                    "not established for \"{}\": {missing}",
                    category.description
                ),
            };
        }
        Eligibility {
            eligible: true,
            rule: format!("category:{}", category.id),
            reason: category.description.clone(),
        }
    }

    /// The approver an amount needs.
    pub fn required_approver(&self, amount_fen: i64, exceptional: bool) -> &str {
        if exceptional {
            return &self.exceptional_approver;
        }
        self.approval_tiers
            .iter()
            .rev()
            .find(|t| amount_fen >= t.from_fen)
            .map_or("", |t| t.approver.as_str())
    }

    /// The department a method is referred to, if any.
    pub fn referral_department(
        &self,
        method: jiuzhu_proto::decisions::ReliefMethod,
    ) -> Option<&str> {
        self.referrals.get(&method_name(method)).map(String::as_str)
    }

    /// Every department that receives referrals.
    pub fn referral_departments(&self) -> BTreeSet<&str> {
        self.referrals.values().map(String::as_str).collect()
    }

    pub fn deadline_days(&self, stage: Stage) -> Option<u32> {
        self.deadlines.get(stage_name(stage)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> ReliefPolicy {
        ReliefPolicy::parse(SHIPPED).unwrap_or_default()
    }

    #[test]
    fn the_shipped_policy_has_seven_categories_and_the_paper_s_clocks() {
        let policy = shipped();
        assert_eq!(policy.categories.len(), 7);
        assert_eq!(policy.deadline_days(Stage::Accepted), Some(10));
        assert_eq!(policy.deadline_days(Stage::Distributed), Some(2));
        assert_eq!(policy.required_approver(999_999, false), "department_head");
        assert_eq!(
            policy.required_approver(1_000_000, false),
            "chief_prosecutors_meeting"
        );
        assert_eq!(
            policy.required_approver(10, true),
            "procuratorial_committee"
        );
    }

    #[test]
    fn an_exclusion_refuses_before_any_category_and_names_itself() {
        let policy = shipped();
        let category = policy
            .category("serious_injury_unpaid")
            .cloned()
            .unwrap_or_default();
        let facts: BTreeSet<String> = [
            "seriously_injured_or_disabled",
            "offender_cannot_pay_or_unknown",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            policy.assess(&category, &facts).rule,
            "category:serious_injury_unpaid"
        );
        let mut at_fault = facts.clone();
        at_fault.insert("major_fault".to_owned());
        let refused = policy.assess(&category, &at_fault);
        assert!(!refused.eligible);
        assert_eq!(refused.rule, "exclusion:major_fault");
        let partial: BTreeSet<String> = ["seriously_injured_or_disabled".to_owned()].into();
        assert_eq!(
            policy.assess(&category, &partial).rule,
            "category:serious_injury_unpaid:offender_cannot_pay_or_unknown"
        );
    }

    #[test]
    fn bad_policy_is_refused_with_the_key() {
        let text = SHIPPED.replace("from_fen = 0", "from_fen = 5");
        let error = ReliefPolicy::parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("relief.approval_tiers"), "{error}");
        let text = SHIPPED.replace("informed = 5", "informd = 5");
        let error = ReliefPolicy::parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("`informd` is not a stage"), "{error}");
    }
}
