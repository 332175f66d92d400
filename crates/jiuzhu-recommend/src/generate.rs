//! Synthetic past relief cases with a known truth, for tests, demos and measuring the
//! recommender. Seeded: the same seed gives the same cases on every platform and release.
//!
//! The truth the generator follows (what a model should learn back):
//! - months of wage: a base per category; plus 12 if the victim died, 6 for serious injury,
//!   1.2 per disability step (grade 10 gives 1.2, grade 1 gives 12), 2 × ln(1 + medical costs
//!   in wages), 1 × ln(1 + property loss in wages), 3 if registered poor, 1.5 if monitored,
//!   2 with a minimum living allowance, 0.8 per dependant; minus 2.5 × ln(1 + compensation in
//!   wages) and 1.5 × income against the minimum line (up to 4); times 0.6 for minor fault;
//!   times 0.3 (relief eases hardship, it does not compensate the loss); at least 0.5; times a
//!   log-normal noise (σ ≈ 0.15); at most the 36-month cap.
//! - needs: a one-time payment always; medical help for serious injury or medical costs above
//!   a month's wage; psychological help when the victim died or was retaliated against (and
//!   for some seriously injured); education support for minors in a bereaved or poor
//!   household; employment transfer for disability grades 5–10; industrial support for poor
//!   households with property loss; minimum living for income below the line; relocation for
//!   some retaliation cases.
//! - decided methods: the needs with the mistakes the paper describes (a fifth of the cases
//!   get cash alone; psychological help, employment and industrial support are given to fewer
//!   than half who need them; rules of thumb replace the need: medical help for any medical
//!   bill, minimum living for the registered poor whatever their income, education for any
//!   child, employment for any disability).
//! - outcome (85% of cases followed up): the true expected effect score is a base (lower for
//!   poor, bereaved, injured households) plus a gain for each needed method given (6–10
//!   points) minus 3 for each method given without need ([`Truth::expected_effect`]); the
//!   recorded score adds visit noise (σ 8), the trend says whether the household did better
//!   than cash alone would have left it.
//! - the person (gender, age) is written but never affects the case, unless a [`Bias`] asks
//!   for a historic cut by county or for women.

use serde::{Deserialize, Serialize};

use crate::features::{CATEGORIES, CaseFeatures, METHODS, Outcome, PastCase};

/// xorshift64*: tiny and stable (the output must never change between releases).
#[derive(Debug, Clone)]
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Regions with their monthly wage and minimum living line (fen), province first.
const REGIONS: [(&str, i64, i64); 6] = [
    ("520102", 893_000, 80_000),
    ("522325", 893_000, 65_000),
    ("530625", 902_000, 70_000),
    ("532327", 902_000, 66_000),
    ("620881", 842_000, 62_000),
    ("110105", 1_750_000, 139_500),
];

const BASE_MONTHS: [f64; 7] = [8.0, 6.0, 14.0, 5.0, 7.0, 6.0, 3.0];

fn money(rng: &mut Seeded, wage: i64, median_wages: f64, chance: f64) -> i64 {
    if !rng.chance(chance) {
        return 0;
    }
    (wage as f64 * median_wages * (0.8 * rng.normal()).exp()) as i64
}

/// Effect-score gain of each method of [`METHODS`] when the case needs it.
const GAIN: [f64; 8] = [6.0, 10.0, 8.0, 6.0, 8.0, 6.0, 8.0, 10.0];
/// Effect-score loss of a method given without need (appointments, stigma, and a referral the
/// department could not give a case that needed it).
const UNNEEDED_COST: f64 = 3.0;

/// What the generator knows and history does not: the methods a case needs, and the effect
/// any choice of methods would have, to score method recommendations on held-out cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Names of [`METHODS`] the case needs.
    pub needs: Vec<String>,
    /// The effect score expected with no relief at all.
    pub base_effect: f64,
}

impl Truth {
    /// The effect score (0–100) expected when `methods` are given: the base, plus each needed
    /// method's gain, minus a cost for each method given without need.
    pub fn expected_effect(&self, methods: &[String]) -> f64 {
        let mut score = self.base_effect;
        for (name, gain) in METHODS.iter().zip(GAIN) {
            if methods.iter().any(|m| m == name) {
                if self.needs.iter().any(|m| m == name) {
                    score += gain;
                } else {
                    score -= UNNEEDED_COST;
                }
            }
        }
        score.clamp(0.0, 100.0)
    }
}

/// Who the victim is: never a model input, written so that fairness can be checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub gender: String,
    pub age: u8,
}

/// A generated case with what only the generator knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    pub case: PastCase,
    pub truth: Truth,
    pub person: Person,
}

/// A historic unequal treatment to build into the amounts, so that the fairness report can be
/// shown to find it (none by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bias {
    /// County region codes and the share cut from their amounts (0.12: 12% less).
    pub counties: Vec<(String, f64)>,
    /// The share cut from amounts given to women.
    pub women: f64,
}

/// One synthetic past case, its truth and person.
pub fn synthetic_case(rng: &mut Seeded, n: u64, bias: &Bias) -> Synthetic {
    // Draws added after the first release come from a second stream, so that a seed's
    // features and amounts stay what they were.
    let mut side = Seeded::new(rng.0 ^ 0x0DDB_A11C_A5E5_EED5);
    let category_index = usize::try_from(rng.below(CATEGORIES.len() as u64)).unwrap_or(0);
    let category = CATEGORIES[category_index];
    let (region, wage, line) =
        REGIONS[usize::try_from(rng.below(REGIONS.len() as u64)).unwrap_or(0)];
    let deceased = category == "dependant_of_killed";
    let serious_injury = matches!(category, "serious_injury_unpaid" | "urgent_medical")
        || (category == "retaliation" && rng.chance(0.5));
    let disability_grade = if serious_injury && rng.chance(0.7) {
        u8::try_from(1 + rng.below(10)).unwrap_or(10)
    } else {
        0
    };
    let medical = money(
        rng,
        wage,
        if category == "urgent_medical" {
            4.0
        } else {
            1.0
        },
        if serious_injury { 0.9 } else { 0.3 },
    );
    let property = money(
        rng,
        wage,
        3.0,
        if category == "property_loss_hardship" {
            1.0
        } else {
            0.2
        },
    );
    let compensation = money(rng, wage, 1.5, 0.25);
    let household_size = u8::try_from(1 + rng.below(6)).unwrap_or(1);
    let minors = u8::try_from(rng.below(u64::from(household_size)))
        .unwrap_or(0)
        .min(3);
    let dependants = minors + u8::from(rng.chance(0.3));
    let registered_poor = rng.chance(0.3);
    let monitored = !registered_poor && rng.chance(0.15);
    let income_ratio = (0.3 + 2.5 * rng.unit()) * if registered_poor { 0.5 } else { 1.0 };
    let minimum_living = income_ratio < 1.0 && rng.chance(0.6);
    let minor_fault = rng.chance(0.12);
    let features = CaseFeatures {
        category: category.to_owned(),
        region: region.to_owned(),
        deceased,
        serious_injury,
        disability_grade,
        medical_costs_fen: medical,
        property_loss_fen: property,
        compensation_received_fen: compensation,
        minor_fault,
        income_per_head_fen: (income_ratio * (line * 12) as f64) as i64,
        household_size,
        dependants,
        minors,
        registered_poor,
        monitored,
        minimum_living,
        wage_fen: wage,
        minimum_line_fen: line,
    };
    let w = wage as f64;
    let mut months = BASE_MONTHS[category_index]
        + if deceased { 12.0 } else { 0.0 }
        + if serious_injury { 6.0 } else { 0.0 }
        + if disability_grade > 0 {
            1.2 * f64::from(11 - disability_grade)
        } else {
            0.0
        }
        + 2.0 * (medical as f64 / w).ln_1p()
        + (property as f64 / w).ln_1p()
        - 2.5 * (compensation as f64 / w).ln_1p()
        + if registered_poor { 3.0 } else { 0.0 }
        + if monitored { 1.5 } else { 0.0 }
        + if minimum_living { 2.0 } else { 0.0 }
        + 0.8 * f64::from(dependants)
        - 1.5 * income_ratio.min(4.0);
    if minor_fault {
        months *= 0.6;
    }
    months = ((0.3 * months).max(0.5) * (0.15 * rng.normal()).exp()).min(36.0);
    let amount_fen = ((months * w) / 100.0).round() as i64 * 100;

    // The methods each case needs (the old "truth" of the decisions; the draws stay the same
    // so that the features and amounts of a seed do not change).
    let mut needs = Vec::new();
    let mut need = |name: &str, truth: bool, rng: &mut Seeded| {
        // Kept for the stream of draws: the flip is no longer how mistakes are made.
        let _ = rng.chance(0.04);
        if truth {
            needs.push(name.to_owned());
        }
    };
    need("one_time_payment", true, rng);
    need("medical", serious_injury || medical > wage, rng);
    let psychological =
        deceased || category == "retaliation" || (serious_injury && rng.chance(0.4));
    need("psychological", psychological, rng);
    need(
        "education",
        minors > 0 && (deceased || registered_poor),
        rng,
    );
    need("employment", (5..=10).contains(&disability_grade), rng);
    need("industrial", registered_poor && property > 0, rng);
    let relocation = category == "retaliation" && rng.chance(0.3);
    need("relocation", relocation, rng);
    need("minimum_living", income_ratio < 1.0, rng);

    let needed = |name: &str| needs.iter().any(|n| n == name);
    let truth = Truth {
        base_effect: 50.0
            - if registered_poor { 6.0 } else { 0.0 }
            - if deceased { 5.0 } else { 0.0 }
            - if serious_injury { 4.0 } else { 0.0 }
            - if income_ratio < 1.0 { 3.0 } else { 0.0 },
        needs: needs.clone(),
    };
    // What the prosecutor decided, with the mistakes the paper describes: cash alone for a
    // fifth of the cases, referrals that need another department rarely made, and rules of
    // thumb in place of the need (medical help for any bill, the minimum living allowance for
    // the registered poor, education for any child, employment for any disability).
    let cash_only = side.chance(0.2);
    let mut methods = Vec::new();
    for name in METHODS {
        let p = match name {
            "one_time_payment" => 0.98,
            "medical" if needed(name) => 0.95,
            "medical" if medical > 0 => 0.7,
            "psychological" if needed(name) => 0.35,
            "education" if needed(name) => 0.6,
            "education" if minors > 0 => 0.25,
            "employment" if needed(name) => 0.4,
            "employment" if disability_grade > 0 => 0.3,
            "industrial" if needed(name) => 0.5,
            "industrial" if registered_poor => 0.3,
            "relocation" if needed(name) => 0.7,
            "minimum_living" if registered_poor => 0.85,
            "minimum_living" if needed(name) => 0.35,
            _ => 0.02,
        };
        let given = side.chance(p);
        if given && (name == "one_time_payment" || !cash_only) {
            methods.push(name.to_owned());
        }
    }
    // Follow-up reaches most households; its score is the true effect plus the noise of one
    // visit, its trend the change since the payment alone would have left them.
    let expected = truth.expected_effect(&methods);
    let outcome = side.chance(0.85).then(|| {
        let last_visit = if side.chance(0.1) {
            1
        } else {
            2 + i32::try_from(side.below(3)).unwrap_or(0)
        };
        let change = expected - (truth.base_effect + GAIN[0]) + 6.0 * side.normal();
        Outcome {
            effect_score: (expected + 8.0 * side.normal()).round().clamp(0.0, 100.0) as i32,
            scoring_method: "effect-v1".to_owned(),
            trend: if last_visit == 1 {
                "baseline"
            } else if change > 4.0 {
                "better"
            } else if change < -4.0 {
                "worse"
            } else {
                "same"
            }
            .to_owned(),
            last_visit,
            months_since_payment: 3 * last_visit + i32::try_from(side.below(3)).unwrap_or(0),
        }
    });
    let person = Person {
        gender: if side.chance(0.58) { "male" } else { "female" }.to_owned(),
        age: if minors > 0 {
            24 + u8::try_from(side.below(27)).unwrap_or(0)
        } else {
            18 + u8::try_from(side.below(63)).unwrap_or(0)
        },
    };
    // A historic cut, when asked for, applies to what was given (not to the need).
    let mut kept = 1.0;
    for (county, cut) in &bias.counties {
        if *county == features.region {
            kept *= 1.0 - cut;
        }
    }
    if person.gender == "female" {
        kept *= 1.0 - bias.women;
    }
    let amount_fen = if kept == 1.0 {
        amount_fen
    } else {
        ((amount_fen as f64 * kept) / 100.0).round() as i64 * 100
    };
    Synthetic {
        case: PastCase {
            case_id: format!("H{n:07}"),
            features,
            amount_fen,
            methods,
            outcome,
        },
        truth,
        person,
    }
}

/// One synthetic past case.
pub fn past_case(rng: &mut Seeded, n: u64) -> PastCase {
    synthetic_case(rng, n, &Bias::default()).case
}

/// `count` synthetic past cases from `seed`.
pub fn past_cases(count: u64, seed: u64) -> Vec<PastCase> {
    synthetic(count, seed, &Bias::default())
        .into_iter()
        .map(|s| s.case)
        .collect()
}

/// `count` synthetic past cases from `seed` with their truth and person, amounts cut by
/// `bias`.
pub fn synthetic(count: u64, seed: u64, bias: &Bias) -> Vec<Synthetic> {
    let mut rng = Seeded::new(seed);
    (0..count)
        .map(|n| synthetic_case(&mut rng, n, bias))
        .collect()
}
