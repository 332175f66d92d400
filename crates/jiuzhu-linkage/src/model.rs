//! Fellegi–Sunter scoring. Each field level has an m-probability (how often true matches show
//! it) and a u-probability (how often non-matches do); the match weight is log2(m/u), weights
//! add up with the prior odds, and the sum becomes a match probability. m and u are estimated
//! from the data by expectation–maximisation; pairs sharing a valid resident id can be held as
//! known matches. A match on a common name is worth less than on a rare one (term frequency).

use serde::{Deserialize, Serialize};

use crate::compare::{Comparison, FIELDS, Field, name_level};

/// Where the village's level sits in a comparison.
const VILLAGE: usize = 5;
const _: () = assert!(matches!(FIELDS[VILLAGE], Field::Village));

/// Probabilities are kept inside (FLOOR, 1 - FLOOR) so that no weight is infinite.
const FLOOR: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// m[field][level]; level 0 (missing) is unused.
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    /// The name's u-probabilities between persons of the same village, used where the village
    /// agrees: siblings and clan cousins share a surname and a generation name, so there a name
    /// one character off is weak evidence (a twin is not the person). Empty: the name's `u`
    /// (and files written before it read as such).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_u_in_village: Vec<f64>,
    /// Share of compared pairs that are matches.
    pub prior: f64,
    /// Observed match rate by match weight, fitted on labelled pairs (see [`Calibration`]);
    /// empty: the weight's own probability, which overstates certainty when fields depend on
    /// each other (a village and its county, a relative's surname and phone).
    #[serde(default)]
    pub calibration: Calibration,
    /// Observed match rate of any candidate by its own weight (before the others' share is
    /// taken off), fitted on candidates of parties whose resident id names the right one. The
    /// other candidates' odds in the index's competition come from it: a relative's raw
    /// odds count a village, its county and a generation name as independent evidence, and
    /// would crowd out the person. Empty: raw odds (and files written before it read as such).
    #[serde(default, skip_serializing_if = "Calibration::is_empty")]
    pub candidate_calibration: Calibration,
    /// Weights (log2) of the case's household evidence where the party's co-parties in the
    /// same case are linked to registry persons: [the candidate is of one of their households,
    /// is not]. A victim's relatives in a case file are mostly their household; an unregistered
    /// relative's best candidate is too, so the weight is estimated, not assumed. Empty: no
    /// such evidence (and files written before it read as such).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub case_household: Vec<f64>,
}

/// What a party's case says of a candidate: nothing (no co-party is linked, or the
/// candidate's household is not known), or whether the candidate lives in a household that a
/// co-party is linked to.
pub type CaseHousehold = Option<bool>;

/// The case household evidence's levels as a reader sees them.
pub const CASE_HOUSEHOLD_LEVELS: [&str; 2] = [
    "of a household the case's other parties are linked to",
    "not of the households the case's other parties are linked to",
];

/// A monotone map from match weight to probability: knots of (weight, observed match rate),
/// weights ascending, interpolated linearly between knots and held flat beyond the ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub knots: Vec<(f64, f64)>,
}

impl Calibration {
    pub fn is_empty(&self) -> bool {
        self.knots.is_empty()
    }

    /// The calibrated probability of a weight (`None` without knots).
    pub fn probability(&self, weight: f64) -> Option<f64> {
        let (first, last) = (self.knots.first()?, self.knots.last()?);
        if weight <= first.0 {
            return Some(first.1);
        }
        if weight >= last.0 {
            return Some(last.1);
        }
        let at = self.knots.partition_point(|(w, _)| *w <= weight);
        let ((w0, p0), (w1, p1)) = (self.knots[at - 1], self.knots[at]);
        let share = if w1 > w0 {
            (weight - w0) / (w1 - w0)
        } else {
            1.0
        };
        Some(p0 + share * (p1 - p0))
    }

    /// Pool-adjacent-violators isotonic regression of `labelled` (weight, is a match): the
    /// non-decreasing step function closest to the observed rates. Each step is held flat from
    /// its lowest weight to its highest (two knots), and only the gaps between steps are
    /// interpolated; a rate is kept off 0 and 1 by half a pair of each outcome, so no
    /// probability claims a certainty its data cannot show.
    /// `labelled`: (weight, is a match, how many parties the label stands for).
    pub fn fit(labelled: &mut [(f64, bool, f64)]) -> Self {
        labelled.sort_by(|a, b| a.0.total_cmp(&b.0));
        struct Step {
            low: f64,
            high: f64,
            matches: f64,
            pairs: f64,
        }
        let mut steps: Vec<Step> = Vec::new();
        for (weight, matched, mass) in labelled.iter() {
            steps.push(Step {
                low: *weight,
                high: *weight,
                matches: if *matched { *mass } else { 0.0 },
                pairs: *mass,
            });
            while steps.len() >= 2 {
                let (b, a) = (&steps[steps.len() - 1], &steps[steps.len() - 2]);
                if a.matches / a.pairs < b.matches / b.pairs {
                    break;
                }
                let (high, matches, pairs) = (b.high, b.matches, b.pairs);
                steps.pop();
                if let Some(last) = steps.last_mut() {
                    last.high = high;
                    last.matches += matches;
                    last.pairs += pairs;
                }
            }
        }
        // A step of a few pairs is noise: it joins its neighbour (the smaller one) until every
        // step stands on enough pairs. Joining neighbours keeps the rates non-decreasing.
        while steps.len() > 1 {
            let Some((at, _)) = steps
                .iter()
                .enumerate()
                .filter(|(_, step)| step.pairs < MIN_STEP_PAIRS)
                .min_by(|a, b| a.1.pairs.total_cmp(&b.1.pairs))
            else {
                break;
            };
            let with = match (at.checked_sub(1), steps.get(at + 1)) {
                (Some(before), Some(after)) if after.pairs < steps[before].pairs => at + 1,
                (Some(before), _) => before,
                (None, _) => at + 1,
            };
            let (low, high) = (at.min(with), at.max(with));
            let gone = steps.remove(high);
            let kept = &mut steps[low];
            kept.high = gone.high;
            kept.matches += gone.matches;
            kept.pairs += gone.pairs;
        }
        let mut knots = Vec::with_capacity(steps.len() * 2);
        for step in steps {
            let rate = (step.matches + 0.5) / (step.pairs + 1.0);
            knots.push((step.low, rate));
            if step.high > step.low {
                knots.push((step.high, rate));
            }
        }
        Self { knots }
    }
}

/// Labelled pairs (by weight) a calibration step needs to stand on its own.
pub const MIN_STEP_PAIRS: f64 = 40.0;

/// One field's part of a score, for a reader.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub field: &'static str,
    pub level: &'static str,
    /// log2 of the likelihood ratio; 0 when the field is missing on either side.
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Match probability, 0 to 1.
    pub probability: f64,
    /// Total match weight (log2 odds), prior included, other candidates' share taken off.
    pub weight: f64,
    /// What the other candidates of the same party took off the weight (log2; 0 or less): a
    /// party is at most one registry person, so two candidates that fit equally well cannot
    /// both be likely.
    pub competition: f64,
    pub fields: Vec<Explained>,
}

impl Score {
    /// "name: pinyin equal (+4.2); birth_date: exact (+9.1); …" — the fields that said anything.
    pub fn explanation(&self) -> String {
        let mut parts: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.weight != 0.0)
            .map(|f| format!("{}: {} ({:+.1})", f.field, f.level, f.weight))
            .collect();
        if self.competition <= -0.05 {
            parts.push(format!(
                "other candidates fit too ({:+.1})",
                self.competition
            ));
        }
        parts.join("; ")
    }
}

fn clamp(p: f64) -> f64 {
    p.clamp(FLOOR, 1.0 - FLOOR)
}

impl Default for Model {
    /// Starting values before estimation: what agreement usually means in registry data.
    fn default() -> Self {
        let table = |field: Field, m: bool| -> Vec<f64> {
            let values: &[f64] = match (field, m) {
                (Field::Name, true) => &[0.0, 0.80, 0.08, 0.04, 0.05, 0.01, 0.02],
                (Field::Name, false) => &[0.0, 0.002, 0.003, 0.001, 0.01, 0.0005, 0.9835],
                (Field::ResidentId, true) => &[0.0, 0.97, 0.03],
                (Field::ResidentId, false) => &[0.0, 0.0001, 0.9999],
                (Field::BirthDate, true) => &[0.0, 0.80, 0.02, 0.05, 0.04, 0.02, 0.03, 0.04],
                (Field::BirthDate, false) => {
                    &[0.0, 0.0003, 0.00005, 0.001, 0.0003, 0.012, 0.02, 0.966]
                }
                (Field::Gender, true) => &[0.0, 0.98, 0.02],
                (Field::Gender, false) => &[0.0, 0.5, 0.5],
                (Field::Region, true) => &[0.0, 0.85, 0.08, 0.04, 0.03],
                (Field::Region, false) => &[0.0, 0.05, 0.15, 0.3, 0.5],
                (Field::Village, true) => &[0.0, 0.80, 0.08, 0.12],
                (Field::Village, false) => &[0.0, 0.05, 0.005, 0.945],
                (Field::Phone, true) => &[0.0, 0.85, 0.15],
                (Field::Phone, false) => &[0.0, 0.001, 0.999],
            };
            values.to_vec()
        };
        Self {
            m: FIELDS.iter().map(|f| table(*f, true)).collect(),
            u: FIELDS.iter().map(|f| table(*f, false)).collect(),
            name_u_in_village: Vec::new(),
            prior: 0.01,
            calibration: Calibration::default(),
            candidate_calibration: Calibration::default(),
            case_household: Vec::new(),
        }
    }
}

impl Model {
    /// One field's weight in a comparison (0 for a missing field). `name_frequency`: the share
    /// of registry persons with the party's name, when known; it replaces u for an exact name.
    fn field_weight(&self, comparison: &Comparison, i: usize, name_frequency: Option<f64>) -> f64 {
        let level = comparison[i];
        let at = usize::from(level);
        if at == 0 {
            return 0.0;
        }
        let m = clamp(self.m[i][at]);
        let mut u = clamp(self.u[i][at]);
        if FIELDS[i] == Field::Name {
            if level == name_level::EXACT
                && let Some(frequency) = name_frequency
            {
                u = clamp(frequency);
            } else if comparison[VILLAGE] == 1
                && let Some(in_village) = self.name_u_in_village.get(at)
            {
                u = clamp(*in_village);
            }
        }
        (m / u).log2()
    }

    /// The total match weight of a comparison (prior included), without the explanation:
    /// what ranking every candidate needs.
    pub fn weight(&self, comparison: &Comparison, name_frequency: Option<f64>) -> f64 {
        let prior = clamp(self.prior);
        (prior / (1.0 - prior)).log2()
            + (0..FIELDS.len())
                .map(|i| self.field_weight(comparison, i, name_frequency))
                .sum::<f64>()
    }

    /// Scores a comparison, each field's part explained. `name_frequency`: the share of
    /// registry persons with the same name as the party, when known; it replaces u for an
    /// exact name match.
    pub fn score(&self, comparison: &Comparison, name_frequency: Option<f64>) -> Score {
        let weight = self.weight(comparison, name_frequency);
        Score {
            probability: self.probability(weight),
            weight,
            competition: 0.0,
            fields: self.explain(comparison, name_frequency),
        }
    }

    /// Each field's level and weight, for a reader.
    pub fn explain(&self, comparison: &Comparison, name_frequency: Option<f64>) -> Vec<Explained> {
        FIELDS
            .iter()
            .enumerate()
            .map(|(i, field)| Explained {
                field: field.name(),
                level: field
                    .levels()
                    .get(usize::from(comparison[i]))
                    .copied()
                    .unwrap_or("?"),
                weight: self.field_weight(comparison, i, name_frequency),
            })
            .collect()
    }

    /// The case household evidence's weight (0 when there is none, or no estimate).
    pub fn case_weight(&self, case: CaseHousehold) -> f64 {
        case.and_then(|of_household| self.case_household.get(usize::from(!of_household)).copied())
            .unwrap_or(0.0)
    }

    /// The case household evidence for a reader (`None` when it weighs nothing).
    pub fn explain_case(&self, case: CaseHousehold) -> Option<Explained> {
        let weight = self.case_weight(case);
        (weight != 0.0).then(|| Explained {
            field: "case",
            level: CASE_HOUSEHOLD_LEVELS[usize::from(case != Some(true))],
            weight,
        })
    }

    /// A candidate's odds (log2) as another party candidate's competitor: calibrated on its
    /// own weight where the model has been, the raw weight otherwise.
    pub fn competitor_log_odds(&self, own_weight: f64) -> f64 {
        match self.candidate_calibration.probability(own_weight) {
            Some(p) => (p / (1.0 - p)).log2(),
            None => own_weight,
        }
    }

    /// The probability a match weight stands for: calibrated where the model has been,
    /// the weight's own odds otherwise.
    pub fn probability(&self, weight: f64) -> f64 {
        self.calibration
            .probability(weight)
            .unwrap_or_else(|| 1.0 / (1.0 + (-weight).exp2()))
    }

    /// Estimates the model from the data:
    /// - u-probabilities from `random_pairs` (a party against registry persons drawn at random:
    ///   nearly all non-matches, and free of the bias blocking puts into candidate pairs); the
    ///   village's given the same county from `county_pairs`, the name's given the same village
    ///   from `village_pairs`;
    /// - m-probabilities from the candidate `pairs` labelled as matches (a shared valid
    ///   resident id, a reviewer's confirmation), for every field but the resident id (which
    ///   labels most of them); kept as they were when fewer than [`MIN_LABELLED`] are labelled;
    /// - the prior by expectation–maximisation over all candidate pairs, m and u held fixed
    ///   (estimating m by EM as well drifts: on blocked pairs, near-misses such as relatives
    ///   form a cluster of their own that EM takes for matches).
    ///
    /// The calibration is left as it was: it is fitted on the estimated weights afterwards.
    pub fn estimate(
        &self,
        pairs: &[(Comparison, Option<bool>)],
        random_pairs: &[Comparison],
        county_pairs: &[Comparison],
        village_pairs: &[Comparison],
        iterations: usize,
    ) -> Self {
        let mut model = self.clone();
        if !random_pairs.is_empty() {
            model.u = level_shares(random_pairs.iter().map(|c| (c, 1.0)), &model.u);
        }
        // The village's u given the same county: the county's agreement has its own weight,
        // and counting a village's full national rarity on top would count the place twice.
        let village = FIELDS.iter().position(|f| *f == Field::Village);
        if let Some(v) = village
            && county_pairs.iter().filter(|c| c[v] != 0).count() >= MIN_LABELLED
        {
            model.u[v] = level_shares(county_pairs.iter().map(|c| (c, 1.0)), &model.u)[v].clone();
        }
        let name = FIELDS.iter().position(|f| *f == Field::Name);
        if let Some(n) = name
            && village_pairs.iter().filter(|c| c[n] != 0).count() >= MIN_LABELLED
        {
            model.name_u_in_village =
                level_shares(village_pairs.iter().map(|c| (c, 1.0)), &model.u)[n].clone();
        }
        let labelled: Vec<(&Comparison, f64)> = pairs
            .iter()
            .filter(|(_, known)| *known == Some(true))
            .map(|(pair, _)| (pair, 1.0))
            .collect();
        if labelled.len() >= MIN_LABELLED {
            let learned = level_shares(labelled.into_iter(), &model.m);
            for (i, field) in FIELDS.iter().enumerate() {
                if *field != Field::ResidentId {
                    model.m[i] = learned[i].clone();
                }
            }
        }
        if pairs.is_empty() {
            return model;
        }
        // Evidence (the weight without the prior) is fixed while only the prior moves.
        let prior_weight = |p: f64| (p / (1.0 - p)).log2();
        let unknown: Vec<f64> = pairs
            .iter()
            .filter(|(_, known)| known.is_none())
            .map(|(pair, _)| model.score(pair, None).weight - prior_weight(clamp(model.prior)))
            .collect();
        let known_matches = pairs.iter().filter(|(_, k)| *k == Some(true)).count() as f64;
        let mut prior = clamp(model.prior);
        for _ in 0..iterations {
            let odds = prior_weight(prior);
            let matches: f64 = unknown
                .iter()
                .map(|evidence| 1.0 / (1.0 + (-(odds + evidence)).exp2()))
                .sum();
            prior = clamp((matches + known_matches) / pairs.len() as f64);
        }
        model.prior = prior;
        model
    }
}

/// Labelled matches needed before m-probabilities are learned from them.
pub const MIN_LABELLED: usize = 50;

/// Per field, each level's weighted share among the non-missing levels (kept from `previous`
/// where a field was never observed). Add-one-half smoothing keeps unseen levels possible.
fn level_shares<'a>(
    pairs: impl Iterator<Item = (&'a Comparison, f64)>,
    previous: &[Vec<f64>],
) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = previous.iter().map(|l| vec![0.0; l.len()]).collect();
    for (pair, weight) in pairs {
        for (i, level) in pair.iter().enumerate() {
            let level = usize::from(*level);
            if level > 0 && level < counts[i].len() {
                counts[i][level] += weight;
            }
        }
    }
    counts
        .into_iter()
        .zip(previous)
        .map(|(levels, before)| {
            let total: f64 = levels.iter().skip(1).sum();
            if total <= 0.0 {
                return before.clone();
            }
            let smoothing = 0.5;
            let denominator = total + smoothing * (levels.len() - 1) as f64;
            levels
                .iter()
                .enumerate()
                .map(|(l, c)| {
                    if l == 0 {
                        0.0
                    } else {
                        clamp((c + smoothing) / denominator)
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_raises_and_disagreement_lowers_the_score() {
        let model = Model::default();
        let all_agree: Comparison = [1, 1, 1, 1, 1, 1, 1];
        let names_only: Comparison = [1, 0, 0, 0, 0, 0, 0];
        let nothing: Comparison = [0; 7];
        let conflict: Comparison = [6, 2, 7, 2, 4, 3, 2];
        let p = |c: &Comparison| model.score(c, None).probability;
        assert!(p(&all_agree) > 0.999);
        assert!(p(&names_only) > p(&nothing));
        assert!(p(&nothing) > p(&conflict));
        assert!(p(&conflict) < 1e-6);
        let explained = model.score(&[2, 0, 1, 0, 0, 0, 0], None).explanation();
        assert!(
            explained.starts_with("name: pinyin equal (+"),
            "{explained}"
        );
        assert!(explained.contains("birth_date: exact"), "{explained}");
    }

    #[test]
    fn a_common_name_is_worth_less_than_a_rare_one() {
        let model = Model::default();
        let exact: Comparison = [1, 0, 1, 0, 1, 0, 0];
        let rare = model.score(&exact, Some(1e-6)).weight;
        let common = model.score(&exact, Some(0.01)).weight;
        assert!(rare > common + 5.0, "rare {rare}, common {common}");
    }

    #[test]
    fn a_name_one_character_off_is_worth_less_within_a_village() {
        let one_off_in_village: Comparison = [4, 0, 1, 0, 1, 1, 0];
        let one_off_elsewhere: Comparison = [4, 0, 1, 0, 1, 3, 0];
        let national = Model::default();
        let local = Model {
            name_u_in_village: vec![0.0, 0.05, 0.01, 0.005, 0.2, 0.001, 0.734],
            ..Model::default()
        };
        let name_part = |model: &Model, c: &Comparison| model.explain(c, None)[0].weight;
        assert!(
            name_part(&local, &one_off_in_village) + 4.0
                < name_part(&national, &one_off_in_village),
            "the village's own u counts where the village agrees"
        );
        assert_eq!(
            name_part(&local, &one_off_elsewhere),
            name_part(&national, &one_off_elsewhere),
            "and nowhere else"
        );
    }

    #[test]
    fn estimation_learns_from_known_matches() {
        // Matches agree on name and date; non-matches disagree on both.
        let mut pairs = Vec::new();
        for _ in 0..200 {
            pairs.push([1, 1, 1, 1, 1, 0, 0]);
            pairs.push([1, 0, 1, 1, 1, 0, 0]);
            for _ in 0..10 {
                pairs.push([6, 0, 7, 2, 1, 0, 0]);
            }
        }
        let random: Vec<Comparison> = (0..5000).map(|_| [6, 0, 7, 2, 1, 0, 0]).collect();
        let start = Model::default();
        let pairs: Vec<(Comparison, Option<bool>)> = pairs
            .into_iter()
            .map(|c| (c, (c[1] == 1).then_some(true)))
            .collect();
        let learned = start.estimate(&pairs, &random, &[], &[], 20);
        assert!(
            (learned.prior - 400.0 / 2400.0).abs() < 0.02,
            "{}",
            learned.prior
        );
        assert!(learned.m[0][1] > 0.95, "{:?}", learned.m[0]);
        assert!(learned.u[0][6] > 0.99, "{:?}", learned.u[0]);
        assert!(learned.m[2][1] > 0.95, "{:?}", learned.m[2]);
    }
}
