//! What a relief case is described by, and the numbers the models see.

use serde::{Deserialize, Serialize};

/// Relief methods, by the names the history files and the API use.
pub const METHODS: [&str; 8] = [
    "one_time_payment",
    "medical",
    "psychological",
    "education",
    "employment",
    "industrial",
    "relocation",
    "minimum_living",
];

/// The eligibility categories of the relief policy.
pub const CATEGORIES: [&str; 7] = [
    "serious_injury_unpaid",
    "urgent_medical",
    "dependant_of_killed",
    "property_loss_hardship",
    "retaliation",
    "civil_injury_uncompensated",
    "other_in_need",
];

/// A relief case as the recommender sees it: the harm, the household, the region. Money is in
/// fen; income per head is yearly, the wage and the minimum living line monthly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseFeatures {
    pub category: String,
    /// County-level region code; the baseline groups by its province (first two digits).
    pub region: String,
    pub deceased: bool,
    pub serious_injury: bool,
    /// 1 (most severe) to 10; 0 when none.
    pub disability_grade: u8,
    pub medical_costs_fen: i64,
    pub property_loss_fen: i64,
    pub compensation_received_fen: i64,
    /// The victim's minor fault (major fault excludes relief altogether).
    pub minor_fault: bool,
    pub income_per_head_fen: i64,
    pub household_size: u8,
    pub dependants: u8,
    pub minors: u8,
    pub registered_poor: bool,
    pub monitored: bool,
    pub minimum_living: bool,
    pub wage_fen: i64,
    pub minimum_line_fen: i64,
}

/// The names of the model's inputs, in order (category indicators first).
pub fn feature_names() -> Vec<String> {
    let mut names: Vec<String> = CATEGORIES.iter().map(|c| format!("category {c}")).collect();
    names.extend(
        [
            "victim died",
            "serious injury",
            "disability severity",
            "medical costs",
            "property loss",
            "compensation received",
            "minor fault",
            "income against the minimum line",
            "household size",
            "dependants",
            "minors",
            "registered poor",
            "monitored",
            "minimum living allowance",
        ]
        .map(String::from),
    );
    names
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// Money as a multiple of the monthly wage, compressed (ln 1+x) so a few huge bills do not
/// dominate.
fn against_wage(fen: i64, wage: f64) -> f64 {
    (fen.max(0) as f64 / wage).ln_1p()
}

impl CaseFeatures {
    pub fn wage(&self) -> f64 {
        (self.wage_fen.max(1)) as f64
    }

    /// Province of the region (for the baseline's groups).
    pub fn province(&self) -> &str {
        self.region.get(..2).unwrap_or("")
    }

    fn category_flags(&self) -> Vec<f64> {
        CATEGORIES
            .iter()
            .map(|c| flag(*c == self.category))
            .collect()
    }

    /// Disability severity, 0.1 (grade 10) to 1 (grade 1); 0 without a grade.
    fn severity(&self) -> f64 {
        if (1..=10).contains(&self.disability_grade) {
            f64::from(11 - self.disability_grade) / 10.0
        } else {
            0.0
        }
    }

    /// The minimum living line over a year (fen).
    fn yearly_line(&self) -> f64 {
        (self.minimum_line_fen.max(1) * 12) as f64
    }

    /// The model's input vector (see [`feature_names`]).
    pub fn vector(&self) -> Vec<f64> {
        let wage = self.wage();
        let mut x = self.category_flags();
        let severity = self.severity();
        let line = self.yearly_line();
        x.extend([
            flag(self.deceased),
            flag(self.serious_injury),
            severity,
            against_wage(self.medical_costs_fen, wage),
            against_wage(self.property_loss_fen, wage),
            against_wage(self.compensation_received_fen, wage),
            flag(self.minor_fault),
            (self.income_per_head_fen.max(0) as f64 / line).min(5.0),
            f64::from(self.household_size),
            f64::from(self.dependants),
            f64::from(self.minors),
            flag(self.registered_poor),
            flag(self.monitored),
            flag(self.minimum_living),
        ]);
        x
    }

    /// The tree model's input vector (see [`TREE_INPUTS`]).
    pub fn tree_vector(&self) -> Vec<f64> {
        let wage = self.wage();
        let yuan = |fen: i64| fen.max(0) as f64 / 100.0;
        let mut x = self.category_flags();
        let severity = self.severity();
        let line = self.yearly_line();
        x.extend([
            flag(self.deceased),
            flag(self.serious_injury),
            severity,
            against_wage(self.medical_costs_fen, wage),
            yuan(self.medical_costs_fen),
            against_wage(self.property_loss_fen, wage),
            yuan(self.property_loss_fen),
            against_wage(self.compensation_received_fen, wage),
            yuan(self.compensation_received_fen),
            flag(self.minor_fault),
            self.income_per_head_fen.max(0) as f64 / line,
            f64::from(self.household_size),
            f64::from(self.dependants),
            f64::from(self.minors),
            flag(self.registered_poor),
            flag(self.monitored),
            flag(self.minimum_living),
        ]);
        x
    }
}

/// The tree model's inputs, in order, each with the factor it is reported under (a factor may
/// have several inputs: money both against the wage and in yuan, because relief rules have
/// steps of both kinds, e.g. a medical deductible in yuan). The region's own levels (wage,
/// minimum line, region code) are never inputs on their own: they would identify the county
/// and let the model carry a county's historic treatment (see the fairness report).
pub const TREE_INPUTS: [(&str, &str); 24] = [
    ("category serious_injury_unpaid", "category"),
    ("category urgent_medical", "category"),
    ("category dependant_of_killed", "category"),
    ("category property_loss_hardship", "category"),
    ("category retaliation", "category"),
    ("category civil_injury_uncompensated", "category"),
    ("category other_in_need", "category"),
    ("victim died", "victim died"),
    ("serious injury", "serious injury"),
    ("disability severity", "disability severity"),
    ("medical costs in wages", "medical costs"),
    ("medical costs in yuan", "medical costs"),
    ("property loss in wages", "property loss"),
    ("property loss in yuan", "property loss"),
    ("compensation in wages", "compensation received"),
    ("compensation in yuan", "compensation received"),
    ("minor fault", "minor fault"),
    (
        "income against the minimum line",
        "income against the minimum line",
    ),
    ("household size", "household size"),
    ("dependants", "dependants"),
    ("minors", "minors"),
    ("registered poor", "registered poor"),
    ("monitored", "monitored"),
    ("minimum living allowance", "minimum living allowance"),
];

/// A decided past case: what it was, what was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PastCase {
    pub case_id: String,
    #[serde(flatten)]
    pub features: CaseFeatures,
    pub amount_fen: i64,
    /// Method names (see [`METHODS`]).
    pub methods: Vec<String>,
    /// What follow-up found afterwards, when it has (a training label for models that learn
    /// from effects; today's model learns from decisions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// The effect of a past case's relief, from its follow-up visits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The latest visit's effect score (0–100) and its scoring method.
    pub effect_score: i32,
    pub scoring_method: String,
    /// "better", "same", "worse" or "baseline" at the latest visit.
    pub trend: String,
    /// The highest visit number recorded (1 = the first scheduled visit).
    pub last_visit: i32,
    pub months_since_payment: i32,
}
