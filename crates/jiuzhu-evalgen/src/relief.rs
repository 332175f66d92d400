//! Past relief cases with a documented, deliberately non-linear truth, written from the domain
//! alone (not from the project's own generator), so a recommender is judged on data it was not
//! tuned to. Everything below is the truth a model should learn; all money is integer fen in the
//! output, `W` is the region's average monthly wage, `ratio` is the household's yearly income per
//! head against twelve months of the local minimum living line.
//!
//! **Amount.** `need = (medical + (grade + dependants) × W + property) × hardship × fault`, where
//! *medical* pays nothing below a deductible of 0.5 W, then 80 % of the next 3 W, 50 % of the next
//! 9 W and 20 % of anything above; *grade* is a table of months by disability grade
//! ([`GRADE_MONTHS`]: 20, 16, 13, 10, 8, 6, 4, 3, 2, 1 for grades 1..10, none without a grade);
//! *dependants* are months that depend on who was lost: a dead victim gives 10 months plus 4 per
//! dependant plus 2 more per minor, a living victim with grade 1–4 (no longer able to earn) 2 per
//! dependant, any other seriously injured victim 0.5 per dependant, others nothing; *property* is
//! 25 % of the loss above 1 W, at most 8 W, and only when `ratio < 1.5` (hardship caused by the
//! loss); *hardship* is × 1.4 when `ratio < 1`, × 1.15 when `ratio < 1.5`, × 1 otherwise; *fault*
//! is × 0.85 for the victim's minor fault. The decided amount is then
//! `need × generosity − compensation received`, rounded to the nearest 100 yuan and clamped to
//! [[`MINIMUM_FEN`], 36 × W]. *Generosity* is a hidden prosecutor's multiplier
//! ([`PROSECUTOR_GENEROSITY`], 0.85 to 1.15, the prosecutor is drawn uniformly per case and is not
//! in the output): it is the only unexplained spread, so no model can do better than it allows.
//! [`true_amount_fen`] is the amount with generosity 1.
//!
//! **Needs and methods.** A case *needs* a method (see [`needs`]) when: `medical` — seriously
//! injured (or an urgent-medical case) with medical costs of at least 3 W; `psychological` — the
//! victim died, a retaliation case, or disability grade 1–4; `education` — minors in the household
//! and `ratio < 1.5` or the victim died; `employment` — a living seriously injured victim of grade
//! 5–10 (or no grade) with `ratio < 2`, or a dead victim's household with a member who is not a
//! dependant and `ratio < 1.5`; `industrial` — a registered poor household with an able member
//! (living victim of grade 0 or 7–10, or a dead victim's household with a non-dependant);
//! `relocation` — a retaliation case, or a property-loss case losing at least 12 W;
//! `minimum_living` — `ratio < 1` and not already on the allowance. `one_time_payment` is the
//! relief itself. The *decided* methods of the history follow prosecutors' habits, not the needs,
//! with systematic mistakes: medical for any serious injury however small the bill, employment for
//! the severely disabled, minimum living for registered poor households already on it or above
//! the line, education and psychological help under-referred (see `decide_methods`).
//!
//! **Outcome.** [`true_effect`] is the expected effect score of a method set: 62 with the cash
//! payment (50 without); − 10 for disability grade 1–3, − 6 when the victim died, − 5 when
//! `ratio < 0.6`; per needed method + its gain when given, − its loss when missing (medical 14/14,
//! psychological 6/6, education 10/9, employment 12/10, industrial 7/5, relocation 8/8, minimum
//! living 15/15); − 3 per unneeded referral; − 5 more when two or more needs are left unmet; clamped
//! to 0..100. It does not depend on the amount. A visited case's `effect_score` is that plus
//! normal noise (σ 8), rounded and clamped; `trend` is "better" / "same" / "worse" from the score
//! (above / within / below 50 ± 8, after noise of σ 10); `scoring_method` "visit_v1"; visits at 1,
//! 6, 12, 24 months after payment (`last_visit` 1–4); about 12 % of cases are still pending
//! (`outcome: None`).
//!
//! **Bias** (only with [`cases_with`]`(.., biased: true)`): the decided amount (before rounding
//! and clamping) is 10 % lower when the victim is a woman and 8 % lower in county
//! [`BIASED_COUNTY`], same need otherwise. The random stream is the same with and without bias, so
//! the two runs differ in those amounts only. `gender` and `age` are the victim's.

use std::io::Write;

use jiuzhu_recommend::features::Outcome;
use jiuzhu_recommend::{CATEGORIES, CaseFeatures, METHODS, PastCase};
use serde::Serialize;

/// One generated case: the PastCase plus protected attributes that history files carry.
pub struct GeneratedCase {
    pub case: PastCase,
    /// "male" or "female".
    pub gender: &'static str,
    pub age: u8,
}

/// A county with its monthly wage and monthly minimum living line (fen).
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub code: &'static str,
    pub name: &'static str,
    pub wage_fen: i64,
    pub minimum_line_fen: i64,
    /// Relative share of cases.
    pub weight: u32,
}

/// The regions, in seven provinces (two in Henan, with different wages).
pub const REGIONS: [Region; 8] = [
    Region {
        code: "110108",
        name: "Beijing Haidian",
        wage_fen: 1_650_000,
        minimum_line_fen: 139_500,
        weight: 6,
    },
    Region {
        code: "440305",
        name: "Shenzhen Nanshan",
        wage_fen: 1_380_000,
        minimum_line_fen: 136_000,
        weight: 6,
    },
    Region {
        code: "330782",
        name: "Yiwu, Zhejiang",
        wage_fen: 980_000,
        minimum_line_fen: 113_000,
        weight: 10,
    },
    Region {
        code: "410105",
        name: "Zhengzhou Jinshui",
        wage_fen: 820_000,
        minimum_line_fen: 75_000,
        weight: 10,
    },
    Region {
        code: "411325",
        name: "Neixiang, Henan",
        wage_fen: 610_000,
        minimum_line_fen: 56_000,
        weight: 18,
    },
    Region {
        code: "510722",
        name: "Santai, Sichuan",
        wage_fen: 680_000,
        minimum_line_fen: 62_000,
        weight: 18,
    },
    Region {
        code: "522601",
        name: "Kaili, Guizhou",
        wage_fen: 760_000,
        minimum_line_fen: 66_000,
        weight: 16,
    },
    Region {
        code: "620523",
        name: "Gangu, Gansu",
        wage_fen: 640_000,
        minimum_line_fen: 60_000,
        weight: 16,
    },
];

/// The county whose past amounts are 8 % lower in the biased variant.
pub const BIASED_COUNTY: &str = "411325";
/// The floor of any decided amount (2,000 yuan).
pub const MINIMUM_FEN: i64 = 200_000;
/// The normal cap, in months of the regional wage.
pub const CAP_MONTHS: i64 = 36;
/// Months of wage by disability grade 1 (most severe) .. 10.
pub const GRADE_MONTHS: [f64; 10] = [20.0, 16.0, 13.0, 10.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.0];
/// The hidden prosecutors' generosity multipliers (one drawn uniformly per case).
pub const PROSECUTOR_GENEROSITY: [f64; 6] = [0.85, 0.92, 1.0, 1.0, 1.08, 1.15];
/// The medical deductible, in months of wage.
pub const MEDICAL_DEDUCTIBLE_MONTHS: f64 = 0.5;

const FEN_PER_HUNDRED_YUAN: i64 = 10_000;
const WOMEN_FACTOR: f64 = 0.90;
const COUNTY_FACTOR: f64 = 0.92;

/// Gain when a needed method is given, loss when it is missing (METHODS order, cash first).
const GAIN: [f64; 8] = [0.0, 14.0, 6.0, 10.0, 12.0, 7.0, 8.0, 15.0];
const LOSS: [f64; 8] = [0.0, 14.0, 6.0, 9.0, 10.0, 5.0, 8.0, 15.0];
const UNNEEDED_PENALTY: f64 = 3.0;
const VISIT_MONTHS: [i32; 5] = [1, 6, 12, 24, 36];

// ---------------------------------------------------------------------------------------------
// PRNG

/// splitmix64: small, fast, good enough for test data, identical on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, index: u64) -> Self {
        let mut r = Rng(seed ^ 0x5EED_0FE7_A16E_1100);
        let s = r.next_u64();
        Rng(s ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform integer in [lo, hi].
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and log-sd.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Index drawn with the given weights.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut pick = self.next_u64() % total.max(1);
        for (i, &w) in weights.iter().enumerate() {
            if pick < u64::from(w) {
                return i;
            }
            pick -= u64::from(w);
        }
        weights.len().saturating_sub(1)
    }
}

// ---------------------------------------------------------------------------------------------
// The amount rule

/// Household income per head (yearly) against twelve months of the local minimum line.
pub fn income_ratio(f: &CaseFeatures) -> f64 {
    f.income_per_head_fen.max(0) as f64 / (f.minimum_line_fen.max(1) * 12) as f64
}

/// The medical part of the need (fen): nothing below the deductible (0.5 W), then 80 % of the
/// next 3 W, 50 % of the next 9 W, 20 % above.
pub fn medical_component_fen(costs_fen: i64, wage_fen: i64) -> f64 {
    let w = wage_fen.max(1) as f64;
    let over = (costs_fen.max(0) as f64 - MEDICAL_DEDUCTIBLE_MONTHS * w).max(0.0);
    let tier1 = over.min(3.0 * w);
    let tier2 = (over - 3.0 * w).clamp(0.0, 9.0 * w);
    let tier3 = (over - 12.0 * w).max(0.0);
    0.8 * tier1 + 0.5 * tier2 + 0.2 * tier3
}

/// Months of wage for the disability grade (table, not linear); 0 without a grade.
pub fn grade_months(grade: u8) -> f64 {
    match grade {
        1..=10 => GRADE_MONTHS[usize::from(grade - 1)],
        _ => 0.0,
    }
}

/// Months of wage for the household: dependants weigh most when the breadwinner died.
pub fn dependant_months(f: &CaseFeatures) -> f64 {
    let dependants = f64::from(f.dependants);
    if f.deceased {
        10.0 + 4.0 * dependants + 2.0 * f64::from(f.minors.min(f.dependants))
    } else if (1..=4).contains(&f.disability_grade) {
        2.0 * dependants
    } else if f.serious_injury {
        0.5 * dependants
    } else {
        0.0
    }
}

/// The hardship step by income per head against the minimum line.
pub fn hardship_multiplier(f: &CaseFeatures) -> f64 {
    let ratio = income_ratio(f);
    if ratio < 1.0 {
        1.4
    } else if ratio < 1.5 {
        1.15
    } else {
        1.0
    }
}

/// The assessed need in fen before generosity, compensation, rounding and the cap.
pub fn need_fen(f: &CaseFeatures) -> f64 {
    let w = f.wage_fen.max(1) as f64;
    let medical = medical_component_fen(f.medical_costs_fen, f.wage_fen);
    let property = if income_ratio(f) < 1.5 {
        (0.25 * (f.property_loss_fen.max(0) as f64 - w).max(0.0)).min(8.0 * w)
    } else {
        0.0
    };
    let months = grade_months(f.disability_grade) + dependant_months(f);
    let fault = if f.minor_fault { 0.85 } else { 1.0 };
    (medical + months * w + property) * hardship_multiplier(f) * fault
}

/// The decided amount for a need scaled by `factor` (generosity × bias): compensation
/// subtracted, rounded to whole hundreds of yuan, clamped to [minimum, 36 × W].
fn decided_amount(f: &CaseFeatures, factor: f64) -> i64 {
    let raw = need_fen(f) * factor - f.compensation_received_fen.max(0) as f64;
    let hundreds = (raw / FEN_PER_HUNDRED_YUAN as f64).round();
    // Clamp in f64 before the cast so huge values cannot overflow.
    let fen = (hundreds.clamp(0.0, 1e12) as i64) * FEN_PER_HUNDRED_YUAN;
    fen.clamp(MINIMUM_FEN, cap_fen(f))
}

/// The normal cap: 36 months of the regional wage (never below the minimum).
pub fn cap_fen(f: &CaseFeatures) -> i64 {
    (CAP_MONTHS * f.wage_fen.max(1)).max(MINIMUM_FEN)
}

/// The amount the truth gives with a neutral prosecutor (generosity 1) and no bias.
pub fn true_amount_fen(f: &CaseFeatures) -> i64 {
    decided_amount(f, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Needs, methods, effects

fn method_index(name: &str) -> Option<usize> {
    METHODS.iter().position(|m| *m == name)
}

/// Whether the household has a member able to work (see the module text).
fn able_member(f: &CaseFeatures) -> bool {
    if f.deceased {
        f.household_size > f.dependants
    } else {
        f.disability_grade == 0 || f.disability_grade >= 7
    }
}

/// Which methods the case needs, in [`METHODS`] order (`one_time_payment` always).
pub fn needs(f: &CaseFeatures) -> [bool; 8] {
    let w = f.wage_fen.max(1);
    let ratio = income_ratio(f);
    let medical =
        (f.serious_injury || f.category == "urgent_medical") && f.medical_costs_fen >= 3 * w;
    let psychological =
        f.deceased || f.category == "retaliation" || (1..=4).contains(&f.disability_grade);
    let education = f.minors >= 1 && (ratio < 1.5 || f.deceased);
    let employment = if f.deceased {
        f.household_size > f.dependants && ratio < 1.5
    } else {
        f.serious_injury && (f.disability_grade == 0 || f.disability_grade >= 5) && ratio < 2.0
    };
    let industrial = f.registered_poor && able_member(f);
    let relocation = f.category == "retaliation"
        || (f.category == "property_loss_hardship" && f.property_loss_fen >= 12 * w);
    let minimum_living = ratio < 1.0 && !f.minimum_living;
    [
        true,
        medical,
        psychological,
        education,
        employment,
        industrial,
        relocation,
        minimum_living,
    ]
}

/// The method set the truth recommends: the cash payment and every needed referral.
pub fn ideal_methods(f: &CaseFeatures) -> Vec<String> {
    let need = needs(f);
    METHODS
        .iter()
        .zip(need)
        .filter(|(_, n)| *n)
        .map(|(m, _)| (*m).to_string())
        .collect()
}

/// The expected effect score (0–100, before visit noise) of giving `methods` to the case.
pub fn true_effect(f: &CaseFeatures, methods: &[String]) -> f64 {
    let mut given = [false; 8];
    for m in methods {
        if let Some(i) = method_index(m) {
            given[i] = true;
        }
    }
    let need = needs(f);
    let mut score = if given[0] { 62.0 } else { 50.0 };
    if (1..=3).contains(&f.disability_grade) {
        score -= 10.0;
    }
    if f.deceased {
        score -= 6.0;
    }
    if income_ratio(f) < 0.6 {
        score -= 5.0;
    }
    let mut unmet = 0;
    for i in 1..METHODS.len() {
        match (need[i], given[i]) {
            (true, true) => score += GAIN[i],
            (true, false) => {
                score -= LOSS[i];
                unmet += 1;
            }
            (false, true) => score -= UNNEEDED_PENALTY,
            (false, false) => {}
        }
    }
    if unmet >= 2 {
        score -= 5.0;
    }
    score.clamp(0.0, 100.0)
}

/// The history's decisions: prosecutors' habits, with systematic mistakes and noise.
fn decide_methods(f: &CaseFeatures, r: &mut Rng) -> Vec<String> {
    let w = f.wage_fen.max(1);
    let ratio = income_ratio(f);
    let severe = (1..=4).contains(&f.disability_grade);
    let p = [
        0.97,
        if f.serious_injury || f.category == "urgent_medical" {
            0.85
        } else {
            0.04
        },
        if f.category == "retaliation" {
            0.5
        } else if f.deceased {
            0.3
        } else {
            0.04
        },
        match (f.minors >= 1, f.registered_poor) {
            (true, true) => 0.7,
            (true, false) => 0.25,
            _ => 0.01,
        },
        if f.serious_injury && severe {
            0.35
        } else if f.serious_injury && f.disability_grade >= 5 {
            0.45
        } else {
            0.04
        },
        if f.registered_poor { 0.35 } else { 0.02 },
        if f.category == "retaliation" {
            0.35
        } else if f.property_loss_fen >= 12 * w {
            0.4
        } else {
            0.01
        },
        if f.registered_poor || f.minimum_living {
            0.55
        } else if ratio < 1.0 {
            0.3
        } else {
            0.03
        },
    ];
    let mut methods: Vec<String> = METHODS
        .iter()
        .zip(p)
        .filter(|&(_, p)| r.chance(p))
        .map(|(m, _)| (*m).to_string())
        .collect();
    if methods.is_empty() {
        methods.push(METHODS[0].to_string());
    }
    methods
}

// ---------------------------------------------------------------------------------------------
// Case generation

fn round_fen(x: f64) -> i64 {
    // Whole yuan in the raw figures (bills and incomes are in yuan).
    ((x.max(0.0) / 100.0).round() as i64) * 100
}

const CATEGORY_WEIGHTS: [u32; 7] = [25, 15, 15, 12, 5, 20, 8];
const GRADE_WEIGHTS: [u32; 10] = [1, 2, 3, 4, 5, 6, 8, 10, 12, 14];
const HOUSEHOLD_WEIGHTS: [u32; 7] = [8, 18, 22, 24, 15, 9, 4];

fn grade(r: &mut Rng) -> u8 {
    r.weighted(&GRADE_WEIGHTS) as u8 + 1
}

fn features(r: &mut Rng) -> (CaseFeatures, &'static str, u8) {
    let region = REGIONS[r.weighted(&REGIONS.map(|g| g.weight))];
    let category = CATEGORIES[r.weighted(&CATEGORY_WEIGHTS)];
    let w = region.wage_fen as f64;
    let gender = if r.chance(0.62) { "male" } else { "female" };

    let (mut deceased, mut serious, mut disability) = (false, false, 0u8);
    let (mut medical, mut property) = (0.0, 0.0);
    match category {
        "serious_injury_unpaid" => {
            serious = true;
            if r.chance(0.8) {
                disability = grade(r);
            }
            medical = r.lognormal(3.0 * w, 0.9);
        }
        "urgent_medical" => {
            serious = r.chance(0.6);
            if serious && r.chance(0.3) {
                disability = grade(r);
            }
            medical = r.lognormal(6.0 * w, 0.8);
        }
        "dependant_of_killed" => {
            deceased = true;
            if r.chance(0.4) {
                medical = r.lognormal(1.0 * w, 1.0);
            }
        }
        "property_loss_hardship" => {
            if r.chance(0.15) {
                medical = r.lognormal(0.2 * w, 0.8);
            }
            property = r.lognormal(8.0 * w, 0.9);
        }
        "retaliation" => {
            serious = r.chance(0.5);
            if serious && r.chance(0.3) {
                disability = grade(r);
            }
            medical = r.lognormal(1.0 * w, 1.0);
            if r.chance(0.4) {
                property = r.lognormal(3.0 * w, 0.8);
            }
        }
        "civil_injury_uncompensated" => {
            if r.chance(0.1) {
                deceased = true;
                if r.chance(0.5) {
                    medical = r.lognormal(1.5 * w, 1.0);
                }
            } else {
                serious = r.chance(0.7);
                if serious && r.chance(0.6) {
                    disability = grade(r);
                }
                medical = r.lognormal(2.5 * w, 1.0);
            }
        }
        _ => {
            serious = r.chance(0.3);
            if serious && r.chance(0.3) {
                disability = grade(r);
            }
            if r.chance(0.6) {
                medical = r.lognormal(0.8 * w, 1.0);
            }
            if r.chance(0.3) {
                property = r.lognormal(2.0 * w, 0.9);
            }
        }
    }

    let age = if deceased {
        r.range(18, 80) as u8
    } else {
        // Mostly working age, some older victims.
        let a = 16.0 + (r.unit() + r.unit()) * 34.0 + if r.chance(0.15) { 20.0 } else { 0.0 };
        a.min(88.0) as u8
    };

    // Household: the surviving household when the victim died, otherwise including the victim.
    let household_size = r.weighted(&HOUSEHOLD_WEIGHTS[..if deceased { 6 } else { 7 }]) as u8 + 1;
    let mut dependants = 0u8;
    if deceased {
        for _ in 0..household_size {
            if r.chance(0.7) {
                dependants += 1;
            }
        }
        dependants = dependants.max(1);
    } else {
        for _ in 1..household_size {
            if r.chance(0.55) {
                dependants += 1;
            }
        }
    }
    let minor_share = if age >= 60 { 0.25 } else { 0.5 };
    let mut minors = 0u8;
    for _ in 0..dependants {
        if r.chance(minor_share) {
            minors += 1;
        }
    }

    let mut ratio = r.lognormal(1.05, 0.55).clamp(0.15, 6.0);
    if deceased || (1..=4).contains(&disability) {
        ratio *= 0.8;
    }
    let line = region.minimum_line_fen as f64;
    let income_per_head_fen = round_fen(ratio * 12.0 * line);
    let ratio = income_per_head_fen as f64 / (12.0 * line);
    let (p_poor, p_allowance) = if ratio < 1.0 {
        (0.55, 0.45)
    } else if ratio < 1.5 {
        (0.3, 0.1)
    } else {
        (0.05, 0.01)
    };
    let registered_poor = r.chance(p_poor);
    let minimum_living = r.chance(p_allowance);
    let monitored = if !registered_poor && ratio < 2.0 {
        r.chance(0.2)
    } else {
        r.chance(0.03)
    };

    let medical_costs_fen = round_fen(medical);
    let property_loss_fen = round_fen(property);
    let harm = medical + property + if deceased { 10.0 * w } else { 0.0 };
    let (p_comp, max_share) = if category == "civil_injury_uncompensated" {
        (0.15, 0.25)
    } else {
        (0.3, 0.5)
    };
    let compensation_received_fen = if r.chance(p_comp) {
        round_fen(harm * (0.05 + r.unit() * (max_share - 0.05)))
    } else {
        0
    };

    let f = CaseFeatures {
        category: category.to_string(),
        region: region.code.to_string(),
        deceased,
        serious_injury: serious,
        disability_grade: disability,
        medical_costs_fen,
        property_loss_fen,
        compensation_received_fen,
        minor_fault: r.chance(0.12),
        income_per_head_fen,
        household_size,
        dependants,
        minors,
        registered_poor,
        monitored,
        minimum_living,
        wage_fen: region.wage_fen,
        minimum_line_fen: region.minimum_line_fen,
    };
    (f, gender, age)
}

fn outcome(f: &CaseFeatures, methods: &[String], r: &mut Rng) -> Option<Outcome> {
    if r.chance(0.12) {
        return None;
    }
    let last_visit = r.weighted(&[30, 30, 25, 15]) + 1;
    let from = VISIT_MONTHS[last_visit - 1];
    let to = VISIT_MONTHS[last_visit];
    let months_since_payment = from + (r.next_u64() % (to - from) as u64) as i32;
    let score = (true_effect(f, methods) + 8.0 * r.normal())
        .round()
        .clamp(0.0, 100.0);
    let drift = score - 50.0 + 10.0 * r.normal();
    let trend = if drift > 8.0 {
        "better"
    } else if drift < -8.0 {
        "worse"
    } else {
        "same"
    };
    Some(Outcome {
        effect_score: score as i32,
        scoring_method: "visit_v1".to_string(),
        trend: trend.to_string(),
        last_visit: last_visit as i32,
        months_since_payment,
    })
}

/// The `index`-th case of a run: its own random stream, so any case can be made alone.
fn case_at(seed: u64, index: u64, biased: bool) -> GeneratedCase {
    let mut r = Rng::new(seed, index);
    let (features, gender, age) = features(&mut r);
    let generosity = PROSECUTOR_GENEROSITY[r.weighted(&[1; 6])];
    let mut factor = generosity;
    if biased {
        if gender == "female" {
            factor *= WOMEN_FACTOR;
        }
        if features.region == BIASED_COUNTY {
            factor *= COUNTY_FACTOR;
        }
    }
    let amount_fen = decided_amount(&features, factor);
    let methods = decide_methods(&features, &mut r);
    let outcome = outcome(&features, &methods, &mut r);
    GeneratedCase {
        case: PastCase {
            case_id: format!("EVR-{:07}", index + 1),
            features,
            amount_fen,
            methods,
            outcome,
        },
        gender,
        age,
    }
}

/// `count` unbiased cases, deterministic in `seed`.
pub fn cases(count: u64, seed: u64) -> Vec<GeneratedCase> {
    cases_with(count, seed, false)
}

/// `count` cases; with `biased`, past amounts are lower for women and in [`BIASED_COUNTY`].
pub fn cases_with(count: u64, seed: u64, biased: bool) -> Vec<GeneratedCase> {
    (0..count).map(|i| case_at(seed, i, biased)).collect()
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    case: &'a PastCase,
    gender: &'a str,
    age: u8,
}

/// One JSON object per line: the `PastCase` fields plus `gender` and `age`. Unbiased.
pub fn write_jsonl(count: u64, seed: u64, out: &mut impl Write) -> std::io::Result<()> {
    write_jsonl_with(count, seed, false, out)
}

/// As [`write_jsonl`], optionally biased (see the module text).
pub fn write_jsonl_with(
    count: u64,
    seed: u64,
    biased: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    for i in 0..count {
        let g = case_at(seed, i, biased);
        let line = Line {
            case: &g.case,
            gender: g.gender,
            age: g.age,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result = std::result::Result<(), Box<dyn std::error::Error>>;

    fn base_case() -> CaseFeatures {
        CaseFeatures {
            category: "serious_injury_unpaid".into(),
            region: "510722".into(),
            serious_injury: true,
            disability_grade: 6,
            household_size: 4,
            dependants: 2,
            minors: 1,
            income_per_head_fen: 62_000 * 12 * 2, // ratio 2: no hardship step
            wage_fen: 680_000,
            minimum_line_fen: 62_000,
            ..CaseFeatures::default()
        }
    }

    #[test]
    fn same_seed_same_output_other_seed_differs() -> Result {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        write_jsonl(2_000, 7, &mut a)?;
        write_jsonl(2_000, 7, &mut b)?;
        write_jsonl(2_000, 8, &mut c)?;
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Case i does not depend on how many are made.
        let short = cases(10, 7);
        let long = cases(20, 7);
        assert!(short.iter().zip(&long).all(|(x, y)| x.case == y.case));
        Ok(())
    }

    #[test]
    fn amounts_within_minimum_and_cap_in_hundreds_of_yuan() {
        for biased in [false, true] {
            for g in cases_with(20_000, 3, biased) {
                let c = &g.case;
                assert!(c.amount_fen >= MINIMUM_FEN, "{}", c.amount_fen);
                assert!(c.amount_fen <= 36 * c.features.wage_fen, "{}", c.amount_fen);
                assert_eq!(c.amount_fen % 10_000, 0);
            }
        }
        // The cap and the minimum both bind somewhere.
        let all = cases(20_000, 3);
        assert!(
            all.iter()
                .any(|g| g.case.amount_fen == 36 * g.case.features.wage_fen)
        );
        assert!(all.iter().any(|g| g.case.amount_fen == MINIMUM_FEN));
    }

    #[test]
    fn features_are_consistent() {
        for g in cases(20_000, 11) {
            let f = &g.case.features;
            assert!(CATEGORIES.contains(&f.category.as_str()));
            let region = REGIONS.iter().find(|r| r.code == f.region);
            assert!(region.is_some_and(
                |r| r.wage_fen == f.wage_fen && r.minimum_line_fen == f.minimum_line_fen
            ));
            if f.deceased {
                assert_eq!(f.disability_grade, 0);
                assert!(!f.serious_injury);
                assert!(f.dependants >= 1);
            }
            if f.disability_grade > 0 {
                assert!(f.serious_injury && f.disability_grade <= 10);
            }
            assert!(f.household_size >= 1 && f.dependants <= f.household_size);
            if !f.deceased {
                assert!(f.dependants < f.household_size);
            }
            assert!(f.minors <= f.dependants);
            assert!(
                f.medical_costs_fen >= 0
                    && f.property_loss_fen >= 0
                    && f.compensation_received_fen >= 0
            );
            assert!(g.gender == "male" || g.gender == "female");
            assert!((16..=88).contains(&g.age));
            assert!(!g.case.methods.is_empty());
            assert!(g.case.methods.iter().all(|m| METHODS.contains(&m.as_str())));
            if let Some(o) = &g.case.outcome {
                assert!((0..=100).contains(&o.effect_score));
                assert!((1..=4).contains(&o.last_visit));
                assert!(o.months_since_payment >= VISIT_MONTHS[(o.last_visit - 1) as usize]);
                assert!(["better", "same", "worse"].contains(&o.trend.as_str()));
                assert_eq!(o.scoring_method, "visit_v1");
            }
        }
        let all = cases(10_000, 11);
        let pending = all.iter().filter(|g| g.case.outcome.is_none()).count();
        assert!((800..1_600).contains(&pending), "{pending}");
        let categories: std::collections::BTreeSet<_> = all
            .iter()
            .map(|g| g.case.features.category.clone())
            .collect();
        assert_eq!(categories.len(), CATEGORIES.len());
    }

    #[test]
    fn medical_deductible_and_tiers() {
        let w = 680_000;
        let deductible = w / 2;
        assert_eq!(medical_component_fen(deductible - 100, w), 0.0);
        assert_eq!(medical_component_fen(deductible, w), 0.0);
        assert!((medical_component_fen(deductible + 100_000, w) - 80_000.0).abs() < 1e-6);
        // Second tier pays 50 %, third 20 %.
        let at = |extra_w: f64| medical_component_fen(deductible + (extra_w * w as f64) as i64, w);
        assert!((at(4.0) - at(3.0) - 0.5 * w as f64).abs() < 1e-6);
        assert!((at(14.0) - at(13.0) - 0.2 * w as f64).abs() < 1e-6);
        // In a whole case: just under the deductible changes nothing, just over does.
        let mut f = base_case();
        let none = true_amount_fen(&f);
        f.medical_costs_fen = deductible - 100;
        assert_eq!(true_amount_fen(&f), none);
        f.medical_costs_fen = deductible + 5 * w / 2;
        assert_eq!(true_amount_fen(&f), none + 2 * w);
    }

    #[test]
    fn grade_table_steps_are_not_linear() {
        let mut f = base_case();
        f.dependants = 0;
        f.minors = 0;
        let amounts: Vec<i64> = (1..=10)
            .map(|g| {
                f.disability_grade = g;
                true_amount_fen(&f)
            })
            .collect();
        assert!(amounts.windows(2).all(|p| p[0] > p[1]), "{amounts:?}");
        let steps: std::collections::BTreeSet<i64> =
            amounts.windows(2).map(|p| p[0] - p[1]).collect();
        assert!(steps.len() >= 3, "{steps:?}");
        assert_eq!(amounts[0], 20 * f.wage_fen);
    }

    #[test]
    fn dependants_weigh_more_when_the_victim_died_and_hardship_steps() {
        let alive = base_case();
        let mut alive_more = alive.clone();
        alive_more.dependants += 1;
        let mut dead = base_case();
        dead.category = "dependant_of_killed".into();
        dead.deceased = true;
        dead.serious_injury = false;
        dead.disability_grade = 0;
        let mut dead_more = dead.clone();
        dead_more.dependants += 1;
        let alive_step = true_amount_fen(&alive_more) - true_amount_fen(&alive);
        let dead_step = true_amount_fen(&dead_more) - true_amount_fen(&dead);
        assert!(
            dead_step >= 6 * alive_step && alive_step > 0,
            "{alive_step} {dead_step}"
        );

        let line = alive.minimum_line_fen * 12;
        let at = |ratio_permille: i64| {
            let mut f = base_case();
            f.income_per_head_fen = line * ratio_permille / 1000;
            true_amount_fen(&f)
        };
        assert_eq!(at(1490), at(1200));
        assert!(at(1490) > at(1510));
        assert!(at(990) > at(1010));
        assert_eq!(at(990), at(300));
    }

    #[test]
    fn compensation_is_subtracted_and_the_cap_holds() {
        let mut f = base_case();
        let before = true_amount_fen(&f);
        f.compensation_received_fen = 1_000_000;
        assert_eq!(true_amount_fen(&f), before - 1_000_000);
        f.compensation_received_fen = 1_000_000_000;
        assert_eq!(true_amount_fen(&f), MINIMUM_FEN);
        f.compensation_received_fen = 0;
        f.medical_costs_fen = 100 * f.wage_fen;
        f.disability_grade = 1;
        assert_eq!(true_amount_fen(&f), 36 * f.wage_fen);
    }

    #[test]
    fn true_effect_favours_fitting_methods() {
        let s = |v: &[&str]| v.iter().map(|m| (*m).to_string()).collect::<Vec<_>>();
        let mut f = base_case();
        f.medical_costs_fen = 5 * f.wage_fen;
        assert!(
            true_effect(&f, &s(&["one_time_payment", "medical"]))
                > true_effect(&f, &s(&["one_time_payment"])) + 20.0
        );
        // Medical for a small bill is a wasted referral.
        f.medical_costs_fen = f.wage_fen;
        assert!(
            true_effect(&f, &s(&["one_time_payment", "medical"]))
                < true_effect(&f, &s(&["one_time_payment"]))
        );
        // Minimum living helps under the line only when not already on it.
        f.income_per_head_fen = f.minimum_line_fen * 6;
        let with = s(&[
            "one_time_payment",
            "minimum_living",
            "employment",
            "education",
        ]);
        let without = s(&["one_time_payment", "employment", "education"]);
        assert!(true_effect(&f, &with) > true_effect(&f, &without));
        f.minimum_living = true;
        assert!(true_effect(&f, &with) < true_effect(&f, &without));

        // Over many cases the ideal set is never worse than the decided one, and clearly better
        // on average; and recorded outcomes are better where decisions fit.
        let all = cases(20_000, 5);
        let (mut ideal, mut decided) = (0.0, 0.0);
        let (mut fit, mut nfit, mut misfit, mut nmisfit) = (0.0, 0, 0.0, 0);
        for g in &all {
            let f = &g.case.features;
            let best = true_effect(f, &ideal_methods(f));
            let got = true_effect(f, &g.case.methods);
            assert!(best >= got, "{best} < {got}");
            ideal += best;
            decided += got;
            if let Some(o) = &g.case.outcome {
                if g.case.methods == ideal_methods(f) {
                    fit += f64::from(o.effect_score);
                    nfit += 1;
                } else {
                    misfit += f64::from(o.effect_score);
                    nmisfit += 1;
                }
            }
        }
        let n = all.len() as f64;
        assert!(
            ideal / n > decided / n + 10.0,
            "{} {}",
            ideal / n,
            decided / n
        );
        // Decision errors are common, but not the rule for every case.
        assert!(nmisfit > nfit && nfit > 200, "{nfit} {nmisfit}");
        assert!(fit / nfit as f64 > misfit / nmisfit as f64 + 10.0);
    }

    #[test]
    fn json_lines_parse_back_as_past_cases() -> Result {
        let mut buf = Vec::new();
        write_jsonl(500, 9, &mut buf)?;
        let text = String::from_utf8(buf)?;
        let made = cases(500, 9);
        assert_eq!(text.lines().count(), 500);
        for (line, g) in text.lines().zip(&made) {
            let parsed: PastCase = serde_json::from_str(line)?;
            assert_eq!(parsed, g.case);
            let value: serde_json::Value = serde_json::from_str(line)?;
            assert_eq!(value["gender"], g.gender);
            assert_eq!(value["age"], u64::from(g.age));
            assert!(value["amount_fen"].is_i64());
            assert!(value["wage_fen"].is_i64(), "fields are flattened");
        }
        Ok(())
    }

    #[test]
    fn bias_lowers_women_and_one_county_only() {
        let fair = cases_with(10_000, 13, false);
        let biased = cases_with(10_000, 13, true);
        let (mut women, mut county) = (0, 0);
        for (a, b) in fair.iter().zip(&biased) {
            assert_eq!(a.case.features, b.case.features);
            assert_eq!(a.case.methods, b.case.methods);
            assert_eq!(a.case.outcome, b.case.outcome);
            let hit = a.gender == "female" || a.case.features.region == BIASED_COUNTY;
            if hit {
                assert!(b.case.amount_fen <= a.case.amount_fen);
                women += usize::from(a.gender == "female" && b.case.amount_fen < a.case.amount_fen);
                county += usize::from(
                    a.case.features.region == BIASED_COUNTY
                        && b.case.amount_fen < a.case.amount_fen,
                );
            } else {
                assert_eq!(a.case.amount_fen, b.case.amount_fen);
            }
        }
        assert!(women > 1_000 && county > 500, "{women} {county}");
    }
}
