//! Estimating a model from the data it will score, calibrating it, and saying how well it
//! holds. Labels come from the data itself and from people: a party whose resident id is
//! valid is scored as if it had none, and its best candidate is a match exactly when the ids
//! agree (the ids were not used to find or weigh it); reviewers' confirmations and rejections
//! are labelled pairs too. m/u/prior are estimated (see [`Model::estimate`]), then the weights
//! are calibrated on those labels, and the reliability table is measured on labels the
//! calibration did not see. The saved form ([`ModelFile`]) is what `jiuzhu link` writes and the
//! clue service adopts.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compare::{Comparison, FIELDS, compare, name_level};
use crate::index::{Candidate, CaseContext, Index, without};
use crate::model::{Calibration, CaseHousehold, Model};
use crate::normalise::Normalised;

/// A reviewer's decision on a pair: the party as its case file wrote it, the registry person
/// as the index held them, and whether they are the same person.
#[derive(Debug, Clone)]
pub struct Review {
    pub party: Normalised,
    pub person: Normalised,
    pub matched: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct TrainingOptions {
    /// Random registry persons compared with each party (for u-probabilities).
    pub random_per_party: usize,
    /// EM iterations for the prior.
    pub iterations: usize,
    /// Probability from which a co-party counts as linked to its best candidate (the clue
    /// service's automatic threshold).
    pub automatic: f64,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        Self {
            random_per_party: 5,
            iterations: 10,
            automatic: 0.95,
        }
    }
}

/// One row of a reliability table: pairs whose predicted probability falls in [low, high).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub low: f64,
    pub high: f64,
    pub pairs: usize,
    /// Mean predicted probability.
    pub predicted: f64,
    /// Share that were matches.
    pub observed: f64,
}

impl ReliabilityBin {
    pub fn gap(&self) -> f64 {
        self.observed - self.predicted
    }
}

/// Bins with fewer pairs than this are shown but not counted in the largest gap: their
/// observed rate is mostly chance.
pub const MIN_BIN_PAIRS: usize = 30;

/// Reliability by decile of predicted probability.
pub fn reliability(scored: &[(f64, bool)]) -> Vec<ReliabilityBin> {
    let weighted: Vec<(f64, bool, f64)> = scored.iter().map(|(p, m)| (*p, *m, 1.0)).collect();
    weighted_reliability(&weighted)
}

/// Reliability by decile, each label standing for `mass` parties.
pub fn weighted_reliability(scored: &[(f64, bool, f64)]) -> Vec<ReliabilityBin> {
    (0..10)
        .filter_map(|decile| {
            let inside: Vec<&(f64, bool, f64)> = scored
                .iter()
                .filter(|(p, _, _)| ((p * 10.0).floor() as i32).clamp(0, 9) == decile)
                .collect();
            let mass: f64 = inside.iter().map(|(_, _, w)| w).sum();
            if inside.is_empty() || mass <= 0.0 {
                return None;
            }
            Some(ReliabilityBin {
                low: f64::from(decile) / 10.0,
                high: f64::from(decile + 1) / 10.0,
                pairs: inside.len(),
                predicted: inside.iter().map(|(p, _, w)| p * w).sum::<f64>() / mass,
                // An empty sum of floats is -0.0; + 0.0 makes it 0.
                observed: inside
                    .iter()
                    .filter(|(_, m, _)| *m)
                    .map(|(_, _, w)| w)
                    .sum::<f64>()
                    / mass
                    + 0.0,
            })
        })
        .collect()
}

/// Reliability by decile of the pairs themselves: sorted by predicted probability and cut into
/// ten groups of (nearly) equal size, so that every row stands on a tenth of the pairs and its
/// observed rate is not mostly chance (the fixed-width bins of [`reliability`] can hold a few
/// dozen pairs between 0.3 and 0.9). `low`/`high` are the group's smallest and largest
/// probability.
pub fn reliability_by_count(scored: &[(f64, bool)]) -> Vec<ReliabilityBin> {
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len();
    (0..10)
        .filter_map(|decile| {
            let group = &sorted[decile * n / 10..(decile + 1) * n / 10];
            let (first, last) = (group.first()?, group.last()?);
            let pairs = group.len();
            Some(ReliabilityBin {
                low: first.0,
                high: last.0,
                pairs,
                predicted: group.iter().map(|(p, _)| p).sum::<f64>() / pairs as f64,
                observed: group.iter().filter(|(_, m)| *m).count() as f64 / pairs as f64,
            })
        })
        .collect()
}

/// The Wilson 95% interval of a bin's observed rate: where the true rate of such pairs lies,
/// given how few there are.
pub fn wilson_interval(bin: &ReliabilityBin) -> (f64, f64) {
    let n = bin.pairs as f64;
    if n == 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.96_f64;
    let p = bin.observed;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The table by equal-count deciles as text: each row's probability range, pairs, mean
/// predicted, observed with its 95% interval, the gap, and whether the prediction lies inside
/// the interval; then the largest gap.
pub fn decile_text(table: &[ReliabilityBin]) -> String {
    let mut text = String::from(
        "decile  probability       pairs  mean predicted  observed  95% interval    gap     \
         prediction in interval\n",
    );
    for (decile, bin) in table.iter().enumerate() {
        let (low, high) = wilson_interval(bin);
        let inside = (low..=high).contains(&bin.predicted);
        text.push_str(&format!(
            "{:>6}  {:.3}–{:.3}  {:>7}  {:>14.3}  {:>8.3}  {:.3}–{:.3}  {:>+6.3}  {}\n",
            decile + 1,
            bin.low,
            bin.high,
            bin.pairs,
            bin.predicted,
            bin.observed,
            low,
            high,
            bin.gap(),
            if inside { "yes" } else { "no" }
        ));
    }
    if let Some(gap) = table.iter().map(|b| b.gap().abs()).reduce(f64::max) {
        text.push_str(&format!("largest gap {gap:.3}\n"));
    }
    text
}

/// The largest |observed − predicted| over bins of at least [`MIN_BIN_PAIRS`].
pub fn largest_gap(table: &[ReliabilityBin]) -> Option<f64> {
    table
        .iter()
        .filter(|b| b.pairs >= MIN_BIN_PAIRS)
        .map(|b| b.gap().abs())
        .reduce(f64::max)
}

/// The table as text, one decile per line, with the largest gap.
pub fn reliability_text(table: &[ReliabilityBin]) -> String {
    let mut text = String::from("probability  pairs  mean predicted  observed     gap\n");
    for bin in table {
        text.push_str(&format!(
            "{:.1}–{:.1}  {:>7}  {:>14.3}  {:>8.3}  {:>+6.3}{}\n",
            bin.low,
            bin.high,
            bin.pairs,
            bin.predicted,
            bin.observed,
            bin.gap(),
            if bin.pairs < MIN_BIN_PAIRS {
                "  (few pairs)"
            } else {
                ""
            }
        ));
    }
    if let Some(gap) = largest_gap(table) {
        text.push_str(&format!("largest gap {gap:.3}\n"));
    }
    text
}

/// What a training saw and how its calibration held on labels it did not fit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    pub parties: usize,
    pub candidate_pairs: usize,
    pub random_pairs: usize,
    /// Parties with a valid resident id whose best candidate (found without it) has one too.
    pub anchored: usize,
    /// Of those, the ones whose best candidate is the person the id names.
    pub anchored_matches: usize,
    pub reviews: usize,
    pub reviews_confirmed: usize,
    /// The estimated share of parties who are registered persons (weighs the simulated
    /// unregistered parties in the calibration).
    #[serde(default)]
    pub registered_share: f64,
    /// Parties whose co-parties in the same case were linked (the case's household evidence).
    #[serde(default)]
    pub case_contexts: usize,
    /// Held-out reliability: calibrated on half of the labels, measured on the other half.
    pub reliability: Vec<ReliabilityBin>,
    pub largest_gap: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Trained {
    pub model: Model,
    pub report: TrainingReport,
}

/// Estimates and calibrates a model on `parties` (a sample of what it will score) against the
/// registry `index`, with reviewers' `reviews` (labels for the calibration), starting from
/// `start`'s values.
///
/// `cases`: each party's case (any key; empty: not known), in the parties' order, or no cases
/// at all. Where co-parties of a case are linked (by a valid resident id, or at `automatic`
/// under the model estimated without the case), what that says of each candidate is weighed
/// (see [`CaseContext`]); whole cases should be sampled, not parties.
pub fn train(
    index: &Index,
    parties: &[Normalised],
    cases: &[String],
    reviews: &[Review],
    start: &Model,
    options: TrainingOptions,
) -> Trained {
    let sampled = in_parallel(parties, |n, party| {
        let pairs: Vec<(Comparison, Option<bool>)> = index
            .comparisons(party)
            .into_iter()
            // A shared id under another name altogether is someone else's id.
            .map(|c| {
                (
                    c,
                    (c[1] == 1 && c[0] != name_level::DIFFERENT).then_some(true),
                )
            })
            .collect();
        let random = index.random_comparisons(party, options.random_per_party, n as u64);
        // A village's u within the county needs a few thousand pairs, not every party's.
        let county = if n % 4 == 0 {
            index.random_in_county(party, options.random_per_party, n as u64)
        } else {
            Vec::new()
        };
        (pairs, random, county)
    });
    let mut pairs: Vec<(Comparison, Option<bool>)> = Vec::new();
    let (mut random, mut county) = (Vec::new(), Vec::new());
    for (party_pairs, party_random, party_county) in sampled {
        pairs.extend(party_pairs);
        random.extend(party_random);
        county.extend(party_county);
    }
    let village = index.pairs_within_villages(parties.len() * options.random_per_party, 1);
    // Reviews are not m/u evidence: reviewers see the doubtful pairs, whose levels are no
    // sample of what matches look like (taking them so lowered every agreement's weight).
    // They calibrate: they say how often a doubtful weight is a match.
    let candidate_pairs = pairs.len();
    let start = Model {
        calibration: Calibration::default(),
        candidate_calibration: Calibration::default(),
        ..start.clone()
    };
    let mut model = start.estimate(&pairs, &random, &county, &village, options.iterations);
    let mut candidates: Vec<(f64, bool, f64)> =
        in_parallel(parties, |_, party| candidate_labels(index, party, &model))
            .into_iter()
            .flatten()
            .collect();
    if candidates.iter().filter(|(_, m, _)| *m).count() >= MIN_BIN_PAIRS {
        model.candidate_calibration = Calibration::fit(&mut candidates);
    }

    let no_case = CaseContext::default();
    let mut blind = in_parallel(parties, |_, party| blindly(index, party, &no_case, &model));
    let mut registered = registered_share(&blind);
    // The case's evidence: the co-parties are linked as the service would link them (by id,
    // or automatically under the model calibrated so far), then it is weighed, and every
    // party is scored again with it.
    let contexts = if cases.iter().any(|c| !c.is_empty()) {
        let mut calibrated = model.clone();
        let mut labels: Vec<(f64, bool, f64)> =
            anchored(&blind, registered).into_iter().flatten().collect();
        if labels.len() >= 2 * MIN_BIN_PAIRS {
            calibrated.calibration = Calibration::fit(&mut labels);
        }
        let links = in_parallel(parties, |_, party| {
            link(index, party, &calibrated, options.automatic)
        });
        case_contexts(index, cases, &links)
    } else {
        Vec::new()
    };
    let case_contexts = contexts.iter().filter(|c| !c.is_empty()).count();
    if case_contexts > 0 {
        let case_of = |n: usize| contexts.get(n).unwrap_or(&no_case);
        blind = in_parallel(parties, |n, party| {
            blindly(index, party, case_of(n), &model)
        });
        model.case_household = case_household_weights(&blind);
        if !model.case_household.is_empty() {
            blind = in_parallel(parties, |n, party| {
                blindly(index, party, case_of(n), &model)
            });
            registered = registered_share(&blind);
        }
    }
    // Labels come in groups (a party's own and its runner-up's): a group stays on one side of
    // the split, so the measured half is never the fitted half's shadow.
    let anchors = anchored(&blind, registered);
    let (anchored, anchored_matches) = (
        anchors.len(),
        anchors.iter().flatten().filter(|(_, m, _)| *m).count(),
    );
    // A reviewed pair weighs what it weighed when it was decided: among its party's other
    // candidates.
    let reviewed: Vec<Vec<(f64, bool, f64)>> = in_parallel(reviews, |_, r| {
        let scored = index.scored(&r.party, &model);
        let weight = scored
            .iter()
            .find(|c| {
                index
                    .person(c.person_id)
                    .is_some_and(|p| same_record(p, &r.person))
            })
            .map_or_else(
                || {
                    let frequency = index.name_frequency(&r.party.name);
                    model.score(&compare(&r.party, &r.person), frequency).weight
                },
                |c| c.score.weight,
            );
        vec![(weight, r.matched, 1.0)]
    });
    let groups: Vec<&Vec<(f64, bool, f64)>> = anchors.iter().chain(&reviewed).collect();
    let mut labelled: Vec<(f64, bool, f64)> = groups.iter().copied().flatten().copied().collect();

    // Calibrate on even groups, measure on odd ones; then calibrate on all.
    let half_of = |parity: usize| -> Vec<(f64, bool, f64)> {
        groups
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 2 == parity)
            .flat_map(|(_, g)| g.iter().copied())
            .collect()
    };
    let mut fit = half_of(0);
    let half = Calibration::fit(&mut fit);
    let measured: Vec<(f64, bool, f64)> = half_of(1)
        .into_iter()
        .map(|(weight, matched, mass)| {
            (
                half.probability(weight)
                    .unwrap_or_else(|| model.probability(weight)),
                matched,
                mass,
            )
        })
        .collect();
    let table = weighted_reliability(&measured);
    if labelled.len() >= 2 * MIN_BIN_PAIRS {
        model.calibration = Calibration::fit(&mut labelled);
    }
    Trained {
        report: TrainingReport {
            parties: parties.len(),
            candidate_pairs,
            random_pairs: random.len(),
            anchored,
            anchored_matches,
            reviews: reviews.len(),
            reviews_confirmed: reviews.iter().filter(|r| r.matched).count(),
            registered_share: registered,
            case_contexts,
            largest_gap: largest_gap(&table),
            reliability: table,
        },
        model,
    }
}

/// (weight of the best candidate found without the id, whether it is the person the id names)
/// for parties with a valid id. Case files also carry ids that belong to someone else (a
/// relative's, a typo that still checks out): when the id's holder bears another name
/// altogether, the id says nothing about who the party is, and the party is left out.
/// Whether two normalised records are the same registry record (reviews carry the person as
/// the index held them).
fn same_record(a: &Normalised, b: &Normalised) -> bool {
    a.name == b.name
        && a.resident_id == b.resident_id
        && a.birth_date == b.birth_date
        && a.region == b.region
        && a.village == b.village
        && a.phone == b.phone
}

/// Every candidate of a party whose resident id names a registry person of a compatible
/// name, by its own weight (found and weighed without the id), labelled by the id.
fn candidate_labels(index: &Index, party: &Normalised, model: &Model) -> Vec<(f64, bool, f64)> {
    let Some((holder, person)) = party
        .resident_id
        .as_ref()
        .and_then(|id| index.holder_of(id))
    else {
        return Vec::new();
    };
    if compare(party, person)[0] == name_level::DIFFERENT {
        return Vec::new();
    }
    index
        .scored(&party.without_id(), model)
        .iter()
        .map(|c| {
            (
                c.score.weight - c.score.competition,
                c.person_id == holder,
                1.0,
            )
        })
        .collect()
}

/// The registry person a party is linked to: the holder of its valid resident id under a
/// compatible name, or else its best candidate from probability `automatic`.
pub fn link<'i>(
    index: &'i Index,
    party: &Normalised,
    model: &Model,
    automatic: f64,
) -> Option<&'i str> {
    if let Some((holder, person)) = party
        .resident_id
        .as_ref()
        .and_then(|id| index.holder_of(id))
        && compare(party, person)[0] != name_level::DIFFERENT
    {
        return Some(holder);
    }
    let best = index.scored(party, model).into_iter().next()?;
    (best.score.probability >= automatic).then_some(best.person_id)
}

/// Each party's case context: the persons its co-parties in the same case (`cases`, in the
/// parties' order; empty: not known) are `linked` to.
pub fn case_contexts(index: &Index, cases: &[String], linked: &[Option<&str>]) -> Vec<CaseContext> {
    let mut by_case: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for (n, case) in cases.iter().enumerate() {
        if !case.is_empty() {
            by_case.entry(case).or_default().push(n);
        }
    }
    (0..linked.len())
        .map(|n| {
            let Some(parties) = cases.get(n).and_then(|c| by_case.get(c.as_str())) else {
                return CaseContext::default();
            };
            CaseContext::of(
                index,
                parties
                    .iter()
                    .filter(|other| **other != n)
                    .filter_map(|other| linked.get(*other).copied().flatten()),
            )
        })
        .collect()
}

/// A party's candidates scored with the case's evidence.
fn scored<'i>(
    index: &'i Index,
    party: &Normalised,
    case: &CaseContext,
    model: &Model,
) -> Vec<Candidate<'i>> {
    index.scored_in_case(party, model, index.name_frequency(&party.name), case)
}

/// A party scored as if it carried no resident id, and what its id says of the result.
struct Blind {
    /// The best candidate's weight (`None`: no candidate).
    best: Option<f64>,
    /// What the party's case said of the best candidate.
    best_case: CaseHousehold,
    label: Label,
}

enum Label {
    /// No valid id, or one that says nothing (its holder bears another name altogether).
    None,
    /// The id's holder is the best candidate; the runner-up's weight had they not been
    /// registered.
    Holder { runner_up: Option<f64> },
    /// The best candidate is someone else than the id's holder (or the id is nobody's and the
    /// best candidate's own id shows they are someone else).
    Other,
}

fn blindly(index: &Index, party: &Normalised, case: &CaseContext, model: &Model) -> Blind {
    let scored = scored(index, &party.without_id(), case, model);
    let Some(best) = scored.first() else {
        return Blind {
            best: None,
            best_case: None,
            label: Label::None,
        };
    };
    let (weight, best_case) = (best.score.weight, best.case);
    let label = match party.resident_id.as_ref() {
        None => Label::None,
        Some(id) => match index.holder_of(id) {
            Some((holder, _)) if holder == best.person_id => {
                let holder = holder.to_owned();
                Label::Holder {
                    // Standing for an unregistered party, whose co-parties are seldom linked:
                    // without what its case would say.
                    runner_up: without(scored, &holder, model)
                        .first()
                        .map(|c| c.score.weight - model.case_weight(c.case)),
                }
            }
            Some((_, person)) if compare(party, person)[0] == name_level::DIFFERENT => Label::None,
            Some(_) => Label::Other,
            None if index
                .person(best.person_id)
                .is_some_and(|p| p.resident_id.is_some()) =>
            {
                Label::Other
            }
            None => Label::None,
        },
    };
    Blind {
        best: Some(weight),
        best_case,
        label,
    }
}

/// The share of parties that are registered persons. Above the weight where resident-id
/// labels are practically all true, the share of all parties found there, divided by the share
/// of anchored registered parties found there, is the share registered (when carrying an id
/// does not depend on how well the rest of the record matches).
fn registered_share(blind: &[Blind]) -> f64 {
    let mut labels: Vec<(f64, bool)> = blind
        .iter()
        .filter_map(|b| match b.label {
            Label::Holder { .. } => Some((b.best?, true)),
            Label::Other => Some((b.best?, false)),
            Label::None => None,
        })
        .collect();
    labels.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = labels.iter().filter(|l| l.1).count();
    // Walk down from the top while the labels above stay at least 99% true.
    let (mut wrong, mut high) = (0usize, f64::INFINITY);
    for (n, (weight, right)) in labels.iter().enumerate() {
        if !right {
            wrong += 1;
        }
        if wrong as f64 > 0.01 * (n + 1) as f64 && n >= 30 {
            break;
        }
        high = *weight;
    }
    let anchored_above = labels.iter().filter(|l| l.1 && l.0 >= high).count();
    if positives < 30 || anchored_above == 0 {
        return 1.0;
    }
    let found = blind
        .iter()
        .filter(|b| b.best.is_some_and(|w| w >= high))
        .count() as f64
        / blind.len().max(1) as f64;
    (found / (anchored_above as f64 / positives as f64)).clamp(0.01, 1.0)
}

/// The labels of the parties with ids, a group per party. A runner-up stands for the
/// unregistered parties (a relative, a namesake in the village: the non-matches parties with
/// ids rarely show otherwise), as many per registered party as the estimated shares say.
fn anchored(blind: &[Blind], registered: f64) -> Vec<Vec<(f64, bool, f64)>> {
    let runner_up_mass = ((1.0 - registered) / registered.max(0.01)).clamp(0.0, 10.0);
    blind
        .iter()
        .filter_map(|b| {
            let best = b.best?;
            match b.label {
                Label::None => None,
                Label::Other => Some(vec![(best, false, 1.0)]),
                Label::Holder { runner_up } => {
                    let mut group = vec![(best, true, 1.0)];
                    if let Some(weight) = runner_up
                        && runner_up_mass > 0.0
                    {
                        group.push((weight, false, runner_up_mass));
                    }
                    Some(group)
                }
            }
        })
        .collect()
}

/// Registered parties whose case says something of their best candidate needed before the
/// case's evidence is weighed.
const MIN_CASE_LABELS: f64 = 30.0;

/// The case household evidence's weights from the parties with ids, scored without them: how
/// often the best candidate shows each level of evidence when it is the person the id names,
/// against when it is someone else, each level's ratio taken against that of no evidence (the
/// level of every party alone in its case, and of every registry without households).
fn case_household_weights(blind: &[Blind]) -> Vec<f64> {
    let level = |case: CaseHousehold| match case {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    };
    let (mut person, mut other) = ([0.0_f64; 3], [0.0_f64; 3]);
    for b in blind.iter().filter(|b| b.best.is_some()) {
        match b.label {
            Label::Holder { .. } => person[level(b.best_case)] += 1.0,
            Label::Other => other[level(b.best_case)] += 1.0,
            Label::None => {}
        }
    }
    let (persons, others): (f64, f64) = (person.iter().sum(), other.iter().sum());
    if person[0] + person[1] < MIN_CASE_LABELS || others < MIN_CASE_LABELS {
        return Vec::new();
    }
    let rate = |counts: &[f64; 3], of: f64, l: usize| (counts[l] + 0.5) / (of + 1.5);
    let ratio = |l: usize| (rate(&person, persons, l) / rate(&other, others, l)).log2();
    vec![ratio(0) - ratio(2), ratio(1) - ratio(2)]
}

/// `work` over `items` on every core, results in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(part, slice)| {
                scope.spawn(move || {
                    slice
                        .iter()
                        .enumerate()
                        .map(|(n, item)| work(part * chunk + n, item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        parts
            .into_iter()
            // A worker that panicked would lose its items: the panic is passed on.
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The saved model: format, version (a digest of its values), when and on what it was
/// trained, and the report. `jiuzhu link train` writes it; the clue service adopts it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: u32,
    pub version: String,
    pub trained_on: String,
    pub model: Model,
    pub report: TrainingReport,
}

pub const MODEL_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("not a linkage model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("linkage model format {found}; this release reads format {MODEL_FORMAT}")]
    Format { found: u32 },
    #[error("linkage model: field {field} has {found} levels, this release compares {expected}")]
    Levels {
        field: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("linkage model {claimed}: its values digest to {actual} (edited or damaged)")]
    Version { claimed: String, actual: String },
}

/// A model's version: "link-" and the first 12 hex digits of the SHA-256 of its values.
pub fn version_of(model: &Model) -> String {
    let text = serde_json::to_string(model).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    format!("link-{}", &hex::encode(digest)[..12])
}

impl ModelFile {
    pub fn new(model: Model, report: TrainingReport, trained_on: impl Into<String>) -> Self {
        Self {
            format: MODEL_FORMAT,
            version: version_of(&model),
            trained_on: trained_on.into(),
            model,
            report,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a saved model, refusing one of another format, one whose levels do not fit this
    /// release's comparisons, and one whose values no longer match its version.
    pub fn from_json(text: &str) -> Result<Self, ModelFileError> {
        let file: Self = serde_json::from_str(text)?;
        if file.format != MODEL_FORMAT {
            return Err(ModelFileError::Format { found: file.format });
        }
        for (i, field) in FIELDS.iter().enumerate() {
            let expected = field.levels().len();
            for table in [&file.model.m, &file.model.u] {
                let found = table.get(i).map_or(0, Vec::len);
                if found != expected {
                    return Err(ModelFileError::Levels {
                        field: field.name(),
                        found,
                        expected,
                    });
                }
            }
        }
        let name_levels = crate::compare::Field::Name.levels().len();
        if !file.model.name_u_in_village.is_empty()
            && file.model.name_u_in_village.len() != name_levels
        {
            return Err(ModelFileError::Levels {
                field: "name (within a village)",
                found: file.model.name_u_in_village.len(),
                expected: name_levels,
            });
        }
        let actual = version_of(&file.model);
        if actual != file.version {
            return Err(ModelFileError::Version {
                claimed: file.version,
                actual,
            });
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_hold_a_tenth_of_the_pairs_each_and_intervals_narrow_with_more_pairs() {
        let scored: Vec<(f64, bool)> = (0..1000)
            .map(|i| (f64::from(i) / 1000.0, i % 10 < i / 100))
            .collect();
        let table = reliability_by_count(&scored);
        assert_eq!(table.len(), 10);
        assert!(table.iter().all(|b| b.pairs == 100));
        assert!(table.windows(2).all(|w| w[0].high <= w[1].low));
        // Decile 4 (0.3–0.4): 3 of every 10 match, as predicted on average.
        assert!((table[3].observed - 0.3).abs() < 1e-9);
        assert!(table[3].gap().abs() < 0.06);
        let few = ReliabilityBin {
            pairs: 20,
            ..table[3].clone()
        };
        let (low, high) = wilson_interval(&table[3]);
        let (few_low, few_high) = wilson_interval(&few);
        assert!(low < 0.3 && 0.3 < high);
        assert!(few_high - few_low > high - low);
        assert!(decile_text(&table).contains("largest gap"));
    }

    #[test]
    fn isotonic_calibration_follows_the_observed_rates() {
        // Weight w is a match with probability 0.1 below 0, 0.5 in [0, 10), 0.9 from 10.
        let mut labelled = Vec::new();
        for i in 0..3000 {
            let weight = f64::from(i % 30) - 10.0;
            let rate = if weight < 0.0 {
                1
            } else if weight < 10.0 {
                5
            } else {
                9
            };
            labelled.push((weight, (i / 30) % 10 < rate, 1.0));
        }
        let calibration = Calibration::fit(&mut labelled);
        let p = |w: f64| calibration.probability(w).unwrap_or(f64::NAN);
        assert!((p(-8.0) - 0.1).abs() < 0.02, "{}", p(-8.0));
        assert!((p(15.0) - 0.9).abs() < 0.02, "{}", p(15.0));
        assert!(p(5.0) > 0.3 && p(5.0) < 0.7, "{}", p(5.0));
        assert!(
            calibration.knots.windows(2).all(|w| w[0].1 <= w[1].1),
            "monotone"
        );
        assert!(p(1e9) < 1.0 && p(-1e9) > 0.0, "never certain");
    }

    #[test]
    fn a_saved_model_reads_back_and_an_edited_one_is_refused() {
        let file = ModelFile::new(Model::default(), TrainingReport::default(), "2026-12-05");
        let text = file.to_json();
        let read = ModelFile::from_json(&text);
        assert!(matches!(&read, Ok(f) if *f == file), "{read:?}");
        assert!(file.version.starts_with("link-") && file.version.len() == 17);
        // Values that are not short decimals survive the round trip exactly.
        let trained = Model {
            calibration: Calibration {
                knots: vec![
                    (-1.0 / 7.0, 0.123_456_789_012_345_67),
                    (7.0 / 3.0, 0.987_654_321),
                ],
            },
            prior: 1.0 / 3.0,
            ..Model::default()
        };
        let file_of_trained = ModelFile::new(trained, TrainingReport::default(), "2026-12-05");
        let reread = ModelFile::from_json(&file_of_trained.to_json());
        assert!(
            matches!(&reread, Ok(f) if *f == file_of_trained),
            "{reread:?}"
        );
        let edited = text.replacen("0.8", "0.9", 1);
        assert!(matches!(
            ModelFile::from_json(&edited),
            Err(ModelFileError::Version { .. })
        ));
        let other_format = text.replacen("\"format\": 1", "\"format\": 9", 1);
        assert!(matches!(
            ModelFile::from_json(&other_format),
            Err(ModelFileError::Format { found: 9 })
        ));
    }

    use crate::normalise::Written;
    use jiuzhu_identity::ResidentId;

    const GIVEN: [&str; 10] = ["伟", "芳", "秀英", "强", "军", "丽", "明", "华", "勇", "娟"];
    const SURNAMES: [&str; 4] = ["王", "李", "张", "刘"];

    fn record(name: &str, id: &str, birth: &str, village: &str) -> Normalised {
        Normalised::from_written(&Written {
            name,
            resident_id: id,
            birth_date: birth,
            region_code: "522701",
            village,
            ..Written::default()
        })
    }

    /// 2,000 registered persons in 20 villages; parties: registered persons written with and
    /// without their ids, and unregistered relatives (same surname and village, another given
    /// name and birth year).
    fn population() -> (Index, Vec<Normalised>, Vec<Review>) {
        let mut index = Index::default();
        let mut registered = Vec::new();
        for n in 0..2000_u32 {
            let birth =
                chrono::NaiveDate::from_ymd_opt(1940 + (n % 60) as i32, 1 + n % 12, 1 + n % 28)
                    .unwrap_or_default();
            let id = ResidentId::compose("522701", birth, u16::try_from(n % 999).unwrap_or(0))
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default();
            let name = format!(
                "{}{}{}",
                SURNAMES[n as usize % 4],
                GIVEN[(n as usize / 4) % 10],
                GIVEN[(n as usize / 40) % 10]
            );
            let village = format!("村{}", n % 20);
            let written = (name, id, birth.to_string(), village);
            index.insert(
                format!("p-{n}"),
                record(&written.0, &written.1, &written.2, &written.3),
            );
            registered.push(written);
        }
        let mut parties = Vec::new();
        let mut reviews = Vec::new();
        for (n, (name, id, birth, village)) in registered.iter().enumerate().take(1500) {
            let carried = if n % 2 == 0 { id.as_str() } else { "" };
            parties.push(record(name, carried, birth, village));
            if n % 3 == 0 {
                // A relative not in the registry: the same family name and village.
                let relative = format!("{}{}", &name[..3], GIVEN[(n + 3) % 10]);
                parties.push(record(&relative, "", "1999-05-05", village));
            }
            if n < 40 {
                reviews.push(Review {
                    party: record(name, "", "", village),
                    person: record(name, id, birth, village),
                    matched: true,
                });
            }
        }
        (index, parties, reviews)
    }

    #[test]
    fn the_case_household_is_weighed_by_how_often_the_person_shows_it() {
        let blind = |best_case: CaseHousehold, label: Label| Blind {
            best: Some(0.0),
            best_case,
            label,
        };
        let holder = || Label::Holder { runner_up: None };
        let mut parties = Vec::new();
        // The id's holders: 60 of 100 in a linked co-party's household, 40 alone in their case.
        parties.extend((0..60).map(|_| blind(Some(true), holder())));
        parties.extend((0..40).map(|_| blind(None, holder())));
        // Someone else: 5 of 100 in such a household, 5 in another, 90 alone.
        parties.extend((0..5).map(|_| blind(Some(true), Label::Other)));
        parties.extend((0..5).map(|_| blind(Some(false), Label::Other)));
        parties.extend((0..90).map(|_| blind(None, Label::Other)));
        // Parties without ids say nothing.
        parties.extend((0..500).map(|_| blind(Some(false), Label::None)));
        let weights = case_household_weights(&parties);
        let expected_household =
            ((60.5_f64 / 101.5) / (5.5 / 101.5) / ((40.5 / 101.5) / (90.5 / 101.5))).log2();
        assert_eq!(weights.len(), 2);
        assert!(
            (weights[0] - expected_household).abs() < 1e-9,
            "{weights:?}"
        );
        assert!(weights[0] > 4.0 && weights[1] < -2.0, "{weights:?}");
        // Too few of the holders' cases say anything: no weights, no evidence.
        assert!(case_household_weights(&parties[40..]).is_empty());
    }

    #[test]
    fn training_labels_calibrates_and_reports_what_it_saw() {
        let (index, parties, reviews) = population();
        let trained = train(
            &index,
            &parties,
            &[],
            &reviews,
            &Model::default(),
            TrainingOptions::default(),
        );
        let report = &trained.report;
        assert_eq!(report.parties, parties.len());
        assert!(report.anchored >= 700, "{report:?}");
        assert!(report.anchored_matches >= 600, "{report:?}");
        assert_eq!((report.reviews, report.reviews_confirmed), (40, 40));
        assert!(!trained.model.calibration.is_empty());
        assert!(
            !trained.model.candidate_calibration.is_empty(),
            "competitors' odds are calibrated"
        );
        assert!(
            trained
                .model
                .calibration
                .knots
                .windows(2)
                .all(|w| w[1].1 >= w[0].1),
            "calibration is monotone"
        );
        assert!(!report.reliability.is_empty());
        // Relatives in one village: a name one character off is far commoner there by chance.
        let one_off = usize::from(name_level::ONE_OFF);
        let in_village = trained.model.name_u_in_village.get(one_off).copied();
        assert!(
            in_village.is_some_and(|u| u > 5.0 * trained.model.u[0][one_off]),
            "{in_village:?} vs {}",
            trained.model.u[0][one_off]
        );
        // A registered person written whole is a match; their unregistered relative is not.
        let person = record("王伟伟", "", "1940-01-01", "村0");
        let scored = index.scored(&person, &trained.model);
        assert!(
            scored
                .first()
                .is_some_and(|c| c.person_id == "p-0" && c.score.probability > 0.9),
            "{scored:?}"
        );
        let relative = record("王伟华", "", "1999-05-05", "村0");
        let best = index.scored(&relative, &trained.model);
        assert!(
            best.first().is_none_or(|c| c.score.probability < 0.5),
            "{best:?}"
        );
    }
}
