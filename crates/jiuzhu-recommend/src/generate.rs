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
//! - methods: a one-time payment (almost always); medical help for serious injury or medical
//!   costs above a month's wage; psychological help when the victim died or was retaliated
//!   against (and for some seriously injured); education support for minors in a bereaved or
//!   poor household; employment transfer for disability grades 5–10; industrial support for
//!   poor households with property loss; minimum living for income below the line; relocation
//!   for some retaliation cases. About 4% of method choices are flipped (noise).

use crate::features::{CATEGORIES, CaseFeatures, PastCase};

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

/// One synthetic past case.
pub fn past_case(rng: &mut Seeded, n: u64) -> PastCase {
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

    let mut methods = Vec::new();
    let mut give = |name: &str, truth: bool, rng: &mut Seeded| {
        if truth != rng.chance(0.04) {
            methods.push(name.to_owned());
        }
    };
    give("one_time_payment", true, rng);
    give("medical", serious_injury || medical > wage, rng);
    let psychological =
        deceased || category == "retaliation" || (serious_injury && rng.chance(0.4));
    give("psychological", psychological, rng);
    give(
        "education",
        minors > 0 && (deceased || registered_poor),
        rng,
    );
    give("employment", (5..=10).contains(&disability_grade), rng);
    give("industrial", registered_poor && property > 0, rng);
    let relocation = category == "retaliation" && rng.chance(0.3);
    give("relocation", relocation, rng);
    give("minimum_living", income_ratio < 1.0, rng);
    PastCase {
        case_id: format!("H{n:07}"),
        features,
        amount_fen,
        methods,
        outcome: None,
    }
}

/// `count` synthetic past cases from `seed`.
pub fn past_cases(count: u64, seed: u64) -> Vec<PastCase> {
    let mut rng = Seeded::new(seed);
    (0..count).map(|n| past_case(&mut rng, n)).collect()
}
