//! The recommender: gradient-boosted trees on months of wage (or their log, whichever does
//! better on a validation split) for the amount, explained per case by each factor's exact
//! Shapley contribution; a ridge regression kept as a reference (and for models of format 1);
//! the nearest past cases for the methods and as precedents; and a baseline (median by
//! category and province) that every model must beat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::features::{CaseFeatures, METHODS, PastCase, TREE_INPUTS, feature_names};
use crate::gbm;
use crate::generate::Seeded;

/// The model file's format. 1: ridge only (files without `format`); 2: trees for the amount.
pub const MODEL_FORMAT: u32 = 2;
/// Neighbours that vote on the methods.
const NEIGHBOURS: usize = 15;
/// Precedents shown with a recommendation.
const PRECEDENTS: usize = 5;
/// Ridge penalty on standardised inputs.
const LAMBDA: f64 = 1.0;
/// Months below this are raised to it before taking the log (a zero amount has none).
const LOG_FLOOR_MONTHS: f64 = 0.01;
/// Training cases below which no validation split is kept (too few to spare).
const VALIDATE_FROM: usize = 200;
/// Followed-up cases needed before methods are chosen by their effect.
const FOLLOWED_UP_FROM: usize = 200;
/// Nearest past cases searched for the evidence shown with the methods.
const EVIDENCE: usize = 100;
/// Similar cases given the same methods needed before their share is quoted.
const QUOTE_FROM: usize = 5;
/// Similar followed-up cases needed on each side (given a method, and not) before the method
/// is judged by its effect: where nearly all or nearly none were given it, the data cannot
/// say what it does, and the decisions' vote stands.
const OVERLAP: usize = 8;
/// Effect-score points over which a method's support goes from 0.27 to 0.73 (logistic scale).
const GAIN_SCALE: f64 = 2.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("{0} past cases are too few to learn from (at least 50)")]
    TooFew(usize),
    #[error("past case {case}: {reason}")]
    BadCase { case: String, reason: String },
    #[error("boosting: {0}")]
    Trees(#[from] gbm::GbmError),
    #[error("training options: {0}")]
    Options(String),
}

/// What the trees learn: months of wage, or their logarithm (errors then count as ratios,
/// which suits amounts whose spread grows with their size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Months,
    LogMonths,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Self::Months => "months of wage",
            Self::LogMonths => "log months of wage",
        }
    }

    fn encode(self, months: f64) -> f64 {
        match self {
            Self::Months => months,
            Self::LogMonths => months.max(LOG_FLOOR_MONTHS).ln(),
        }
    }

    fn decode(self, value: f64) -> f64 {
        match self {
            Self::Months => value,
            Self::LogMonths => value.exp(),
        }
    }
}

/// Which model gives the amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learner {
    Trees,
    Ridge,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    pub learner: Learner,
    /// `None`: both targets are tried and the lower validation error in fen is kept.
    pub target: Option<Target>,
    pub trees: gbm::Params,
    /// Share of the training cases held back to stop boosting and choose the target.
    pub validation_share: f64,
    pub seed: u64,
    /// Per-case factor on the historic amount before learning (1 = as given), e.g. to undo a
    /// group's historic cut (see `fairness`); precedents still show what was given.
    pub target_factors: Option<Vec<f64>>,
    /// Learn from follow-up outcomes which methods help (the closed loop); `false` gives the
    /// decisions-only model that imitates what was decided.
    pub use_outcomes: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            learner: Learner::Trees,
            target: None,
            trees: gbm::Params::default(),
            validation_share: 0.1,
            seed: 1,
            target_factors: None,
            use_outcomes: true,
        }
    }
}

/// A target tried while training the trees, and how it did on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTried {
    pub target: Target,
    pub rounds: usize,
    pub validation_mae_fen: f64,
}

/// The tree model of the amount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AmountTrees {
    pub target: Target,
    pub ensemble: gbm::Ensemble,
    pub tried: Vec<TargetTried>,
    /// 10th and 90th percentile of the validation error: months added (months target) or a
    /// factor on the amount (log target).
    low: f64,
    high: f64,
}

/// A past case kept for similarity: standardised inputs and what was given.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Precedent {
    case_id: String,
    x: Vec<f32>,
    amount_fen: i64,
    /// The precedent's own monthly wage: its amount is compared in months of that wage, not of
    /// the new case's (a precedent from a province with other wages would be mis-scaled). 0 in
    /// models trained before it was kept.
    #[serde(default)]
    wage_fen: i64,
    /// Bit per method of [`METHODS`].
    methods: u16,
    /// The follow-up effect score, when followed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effect: Option<i32>,
    /// Whether the household did better at the latest visit (none at the first visit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    improved: Option<bool>,
}

/// What follow-up taught: the effect score expected from a case's factors and the methods it
/// is given (boosted trees whose leaves group similar past cases), so each method's expected
/// gain can be read off for a new case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EffectModel {
    pub ensemble: gbm::Ensemble,
    /// Followed-up cases it learnt from.
    pub followed_up: usize,
}

impl EffectModel {
    fn predict(&self, x: &[f64], methods: u16) -> f64 {
        let mut row = x.to_vec();
        row.extend((0..METHODS.len()).map(|i| f64::from(methods >> i & 1)));
        self.ensemble.predict(&row)
    }
}

/// A method's evidence for one case.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodEffect {
    pub method: String,
    /// Share of the similar decided cases that were given it (what the decisions say).
    pub vote: f64,
    /// The effect score expected with it minus without it (none without follow-up data).
    pub gain: Option<f64>,
    /// Among the similar followed-up cases: how many were given it, and the share of them
    /// that improved; how many were not, and their share.
    pub with_cases: usize,
    pub with_improved: f64,
    pub without_cases: usize,
    pub without_improved: f64,
}

/// A trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Stored")]
pub struct Recommender {
    /// See [`MODEL_FORMAT`].
    pub format: u32,
    pub version: String,
    pub trained_on: usize,
    names: Vec<String>,
    mean: Vec<f64>,
    scale: Vec<f64>,
    coefficients: Vec<f64>,
    intercept: f64,
    /// 10th and 90th percentile of the ridge's training residuals, in months.
    residual_low: f64,
    residual_high: f64,
    /// The amount model; a model without trees recommends the ridge's amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trees: Option<AmountTrees>,
    /// The effect of methods learnt from follow-up; none: methods are voted by decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effects: Option<EffectModel>,
    precedents: Vec<Precedent>,
    /// The precedents' inputs in one padded row-major block, built on load (not stored): the
    /// scan for neighbours runs on every recommendation.
    #[serde(skip)]
    scan: Scan,
}

/// A model file as stored: any format this program knows, checked before use.
#[derive(Deserialize)]
struct Stored {
    /// Absent in format 1 files.
    #[serde(default)]
    format: u32,
    version: String,
    trained_on: usize,
    names: Vec<String>,
    mean: Vec<f64>,
    scale: Vec<f64>,
    coefficients: Vec<f64>,
    intercept: f64,
    residual_low: f64,
    residual_high: f64,
    #[serde(default)]
    trees: Option<AmountTrees>,
    #[serde(default)]
    effects: Option<EffectModel>,
    precedents: Vec<Precedent>,
}

impl TryFrom<Stored> for Recommender {
    type Error = String;

    fn try_from(stored: Stored) -> Result<Self, String> {
        let format = stored.format.max(1);
        if format > MODEL_FORMAT {
            return Err(format!(
                "model format {format} is newer than this program reads (up to {MODEL_FORMAT}); \
                 use a newer jiuzhu or retrain the model"
            ));
        }
        let width = feature_names().len();
        if [
            stored.names.len(),
            stored.mean.len(),
            stored.scale.len(),
            stored.coefficients.len(),
        ]
        .iter()
        .any(|n| *n != width)
        {
            return Err(format!(
                "the model's ridge has {} inputs, this program's {width}; retrain the model",
                stored.coefficients.len()
            ));
        }
        if let Some(trees) = &stored.trees
            && trees.ensemble.inputs != TREE_INPUTS.len()
        {
            return Err(format!(
                "the model's trees have {} inputs, this program's {}; retrain the model",
                trees.ensemble.inputs,
                TREE_INPUTS.len()
            ));
        }
        Ok(Self {
            format,
            version: stored.version,
            trained_on: stored.trained_on,
            names: stored.names,
            mean: stored.mean,
            scale: stored.scale,
            coefficients: stored.coefficients,
            intercept: stored.intercept,
            residual_low: stored.residual_low,
            residual_high: stored.residual_high,
            trees: stored.trees,
            effects: stored.effects,
            scan: Scan::of(&stored.precedents),
            precedents: stored.precedents,
        })
    }
}

/// A factor that moved the amount: fen above (or below) the amount the model gives when
/// nothing is known about a case ([`Recommendation::base_fen`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    pub name: String,
    pub fen: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    pub case_id: String,
    pub amount_fen: i64,
    pub methods: Vec<String>,
    pub distance: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub model_version: String,
    /// Which model gave the amount (trees and their target, or the ridge).
    pub amount_model: String,
    pub amount_fen: i64,
    pub low_fen: i64,
    pub high_fen: i64,
    /// Set when the amount was clamped to the cap (never silently).
    pub clamped: Option<String>,
    /// The amount for a case of which nothing is known; `base_fen` plus every factor is the
    /// model's amount before it is floored at zero and capped.
    pub base_fen: i64,
    /// Every method with its support, recommended (0.5 and above) first. Without follow-up
    /// data the support is the share of similar decided cases given the method; with it, a
    /// logistic of the effect-score gain that similar past cases showed (0.5: no gain), so
    /// methods are ranked by the effect they achieved.
    pub methods: Vec<(String, f64)>,
    /// Each method's evidence, in the order of `methods`.
    pub method_effects: Vec<MethodEffect>,
    /// The evidence in a sentence ("of 37 similar cases given …, 81% improved …").
    pub effect_note: Option<String>,
    pub similar: Vec<Similar>,
    /// Every factor that moved the amount, largest first.
    pub factors: Vec<Factor>,
}

fn method_bits(methods: &[String]) -> u16 {
    methods
        .iter()
        .filter_map(|m| METHODS.iter().position(|known| known == m))
        .fold(0, |bits, i| bits | (1 << i))
}

fn months(case: &PastCase) -> f64 {
    case.amount_fen as f64 / case.features.wage()
}

/// Solves `a x = b` for a small symmetric positive definite `a` (Gaussian elimination with
/// partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|i, j| a[*i][col].abs().total_cmp(&a[*j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let p = a[col][col];
        if p.abs() < 1e-12 {
            continue;
        }
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / p;
            for (cell, top) in a[row].iter_mut().zip(&pivot_row).skip(col) {
                *cell -= f * top;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row].abs() < 1e-12 {
            0.0
        } else {
            (b[row] - s) / a[row][row]
        };
    }
    x
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Rounds `values` (fen) to integers that sum exactly to `total` (largest remainders get the
/// spare fen), so that an amount's factors add up to it to the fen.
fn round_to_total(values: &[f64], total: i64) -> Vec<i64> {
    let mut rounded: Vec<i64> = values.iter().map(|v| v.floor() as i64).collect();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| {
        let (ra, rb) = (
            values[*a] - values[*a].floor(),
            values[*b] - values[*b].floor(),
        );
        rb.total_cmp(&ra)
    });
    let mut spare = total - rounded.iter().sum::<i64>();
    let mut turn = 0;
    while spare != 0 && !order.is_empty() {
        let at = order[turn % order.len()];
        let step = spare.signum();
        rounded[at] += step;
        spare -= step;
        turn += 1;
    }
    rounded
}

/// Shuffles `0..n` with `seed` (Fisher–Yates).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Seeded::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(i);
        order.swap(i, j);
    }
    order
}

struct Ridge {
    mean: Vec<f64>,
    scale: Vec<f64>,
    coefficients: Vec<f64>,
    intercept: f64,
    residual_low: f64,
    residual_high: f64,
}

fn standardise(row: &[f64], mean: &[f64], scale: &[f64]) -> Vec<f64> {
    row.iter()
        .zip(mean)
        .zip(scale)
        .map(|((v, m), s)| (v - m) / s)
        .collect()
}

fn fit_ridge(rows: &[Vec<f64>], targets: &[f64]) -> Ridge {
    let width = rows.first().map_or(0, Vec::len);
    let count = rows.len().max(1) as f64;
    let mut mean = vec![0.0; width];
    for row in rows {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / count;
        }
    }
    let mut scale = vec![0.0; width];
    for row in rows {
        for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
            *s += (v - m).powi(2) / count;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let intercept = targets.iter().sum::<f64>() / count;
    let mut gram = vec![vec![0.0; width]; width];
    let mut moment = vec![0.0; width];
    for (row, y) in rows.iter().zip(targets) {
        let z = standardise(row, &mean, &scale);
        for i in 0..width {
            moment[i] += z[i] * (y - intercept);
            for j in 0..width {
                gram[i][j] += z[i] * z[j];
            }
        }
    }
    for (i, row) in gram.iter_mut().enumerate() {
        row[i] += LAMBDA;
    }
    let coefficients = solve(gram, moment);
    let mut residuals: Vec<f64> = rows
        .iter()
        .zip(targets)
        .map(|(row, y)| {
            let z = standardise(row, &mean, &scale);
            y - (intercept + z.iter().zip(&coefficients).map(|(a, b)| a * b).sum::<f64>())
        })
        .collect();
    residuals.sort_by(f64::total_cmp);
    Ridge {
        residual_low: quantile(&residuals, 0.1),
        residual_high: quantile(&residuals, 0.9),
        mean,
        scale,
        coefficients,
        intercept,
    }
}

fn fit_trees(
    cases: &[PastCase],
    targets: &[f64],
    options: &TrainOptions,
    progress: &mut impl FnMut(usize, usize),
) -> Result<AmountTrees, TrainError> {
    let rows: Vec<Vec<f64>> = cases.iter().map(|c| c.features.tree_vector()).collect();
    let order = shuffled(rows.len(), options.seed);
    let held = if rows.len() >= VALIDATE_FROM {
        ((rows.len() as f64) * options.validation_share).round() as usize
    } else {
        0
    };
    let (mut validation, mut train) = (order[..held].to_vec(), order[held..].to_vec());
    validation.sort_unstable();
    train.sort_unstable();
    let candidates = match options.target {
        Some(target) => vec![target],
        None => vec![Target::LogMonths, Target::Months],
    };
    let fit = |target: Target, progress: &mut dyn FnMut(usize, usize)| {
        let encoded: Vec<f64> = targets.iter().map(|m| target.encode(*m)).collect();
        gbm::fit(
            &rows,
            &encoded,
            &train,
            &validation,
            &options.trees,
            progress,
        )
        .map(|fitted| (target, fitted))
    };
    // The targets are boosted side by side (two cores); progress is the first one's.
    let fitted: Vec<Result<(Target, gbm::Fitted), gbm::GbmError>> = std::thread::scope(|scope| {
        let others: Vec<_> = candidates[1..]
            .iter()
            .map(|target| scope.spawn(|| fit(*target, &mut |_, _| {})))
            .collect();
        let mut all = vec![fit(candidates[0], progress)];
        for other in others {
            all.push(other.join().unwrap_or_else(|_| {
                Err(gbm::GbmError::Params(
                    "a boosting thread stopped".to_owned(),
                ))
            }));
        }
        all
    });
    let scored = if validation.is_empty() {
        &train
    } else {
        &validation
    };
    let mut tried = Vec::new();
    let mut best: Option<(f64, Target, gbm::Ensemble)> = None;
    for result in fitted {
        let (target, fitted) = result?;
        let mae = scored
            .iter()
            .map(|&r| {
                let predicted = target.decode(fitted.ensemble.predict(&rows[r])).max(0.0);
                (predicted - targets[r]).abs() * cases[r].features.wage()
            })
            .sum::<f64>()
            / scored.len().max(1) as f64;
        tried.push(TargetTried {
            target,
            rounds: fitted.rounds,
            validation_mae_fen: mae,
        });
        if best.as_ref().is_none_or(|(error, _, _)| mae < *error) {
            best = Some((mae, target, fitted.ensemble));
        }
    }
    let Some((_, target, ensemble)) = best else {
        return Err(TrainError::Options("no target to learn".to_owned()));
    };
    let mut errors: Vec<f64> = scored
        .iter()
        .map(|&r| {
            let predicted = target.decode(ensemble.predict(&rows[r]));
            match target {
                Target::Months => targets[r] - predicted,
                Target::LogMonths => targets[r].max(LOG_FLOOR_MONTHS) / predicted.max(1e-9),
            }
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    Ok(AmountTrees {
        target,
        ensemble,
        tried,
        low: quantile(&errors, 0.1),
        high: quantile(&errors, 0.9),
    })
}

impl Recommender {
    /// Learns from `cases` with the default options; `progress(done, total)` is called as it
    /// goes (boosting rounds).
    pub fn train(
        cases: &[PastCase],
        version: &str,
        progress: impl FnMut(usize, usize),
    ) -> Result<Self, TrainError> {
        Self::train_with(cases, version, &TrainOptions::default(), progress)
    }

    pub fn train_with(
        cases: &[PastCase],
        version: &str,
        options: &TrainOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self, TrainError> {
        if cases.len() < 50 {
            return Err(TrainError::TooFew(cases.len()));
        }
        for case in cases {
            if case.features.wage_fen <= 0 || case.amount_fen < 0 {
                return Err(TrainError::BadCase {
                    case: case.case_id.clone(),
                    reason: "needs a positive wage and a non-negative amount".to_owned(),
                });
            }
        }
        if !(0.0..0.9).contains(&options.validation_share) {
            return Err(TrainError::Options(format!(
                "validation share {} is not in [0, 0.9)",
                options.validation_share
            )));
        }
        let factors = match &options.target_factors {
            Some(f) if f.len() != cases.len() => {
                return Err(TrainError::Options(format!(
                    "{} target factors for {} cases",
                    f.len(),
                    cases.len()
                )));
            }
            Some(f) => {
                if let Some((at, bad)) = f
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !(v.is_finite() && **v > 0.0))
                {
                    return Err(TrainError::BadCase {
                        case: cases[at].case_id.clone(),
                        reason: format!("target factor {bad} is not a positive number"),
                    });
                }
                f.clone()
            }
            None => vec![1.0; cases.len()],
        };
        let targets: Vec<f64> = cases
            .iter()
            .zip(&factors)
            .map(|(c, f)| months(c) * f)
            .collect();
        let rows: Vec<Vec<f64>> = cases.iter().map(|c| c.features.vector()).collect();
        let ridge = fit_ridge(&rows, &targets);
        let precedents: Vec<Precedent> = rows
            .iter()
            .zip(cases)
            .map(|(row, case)| Precedent {
                case_id: case.case_id.clone(),
                x: standardise(row, &ridge.mean, &ridge.scale)
                    .iter()
                    .map(|v| *v as f32)
                    .collect(),
                amount_fen: case.amount_fen,
                wage_fen: case.features.wage_fen,
                methods: method_bits(&case.methods),
                effect: case.outcome.as_ref().map(|o| o.effect_score),
                improved: case.outcome.as_ref().and_then(|o| match o.trend.as_str() {
                    "better" => Some(true),
                    "same" | "worse" => Some(false),
                    _ => None,
                }),
            })
            .collect();
        let effects = if options.use_outcomes {
            fit_effects(cases, options)?
        } else {
            None
        };
        let trees = match options.learner {
            Learner::Trees => Some(fit_trees(cases, &targets, options, &mut progress)?),
            Learner::Ridge => None,
        };
        Ok(Self {
            format: MODEL_FORMAT,
            version: version.to_owned(),
            trained_on: cases.len(),
            names: feature_names(),
            mean: ridge.mean,
            scale: ridge.scale,
            coefficients: ridge.coefficients,
            intercept: ridge.intercept,
            residual_low: ridge.residual_low,
            residual_high: ridge.residual_high,
            trees,
            effects,
            scan: Scan::of(&precedents),
            precedents,
        })
    }

    /// The tree model, when the amount comes from trees.
    pub fn trees(&self) -> Option<&AmountTrees> {
        self.trees.as_ref()
    }

    /// Which model gives the amount.
    pub fn amount_model(&self) -> String {
        match &self.trees {
            Some(trees) => format!(
                "gradient-boosted trees on {} ({} trees)",
                trees.target.label(),
                trees.ensemble.trees.len()
            ),
            None => "ridge regression on months of wage".to_owned(),
        }
    }

    fn standardise(&self, features: &CaseFeatures) -> Vec<f64> {
        standardise(&features.vector(), &self.mean, &self.scale)
    }

    /// The ridge's amount in months of wage (the reference every evaluation keeps).
    pub fn ridge_months(&self, features: &CaseFeatures) -> f64 {
        let z = self.standardise(features);
        self.intercept
            + z.iter()
                .zip(&self.coefficients)
                .map(|(v, c)| v * c)
                .sum::<f64>()
    }

    /// The nearest precedents, nearest first.
    fn nearest(&self, z: &[f64], k: usize) -> Vec<(f64, &Precedent)> {
        let stride = self.scan.stride;
        let mut query = vec![0.0f32; stride];
        for (q, v) in query.iter_mut().zip(z) {
            *q = *v as f32;
        }
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        for (at, row) in self.scan.rows.chunks_exact(stride.max(1)).enumerate() {
            // Lanes of eight independent sums, so the compiler can use vector instructions.
            let mut lanes = [0.0f32; LANES];
            for (chunk, q) in row.chunks_exact(LANES).zip(query.chunks_exact(LANES)) {
                for lane in 0..LANES {
                    let t = chunk[lane] - q[lane];
                    lanes[lane] += t * t;
                }
            }
            let d: f32 = lanes.iter().sum();
            if best.len() < k || best.last().is_some_and(|(worst, _)| d < *worst) {
                let place = best.partition_point(|(other, _)| *other <= d);
                best.insert(place, (d, at));
                best.truncate(k);
            }
        }
        best.into_iter()
            .filter_map(|(d, at)| self.precedents.get(at).map(|p| (f64::from(d).sqrt(), p)))
            .collect()
    }

    /// The amount in months of wage the nearest precedents were given (for comparison).
    pub fn neighbour_months(&self, features: &CaseFeatures) -> f64 {
        let near = self.nearest(&self.standardise(features), NEIGHBOURS);
        let wage = features.wage();
        let mut months: Vec<f64> = near
            .iter()
            .map(|(_, p)| {
                let own = if p.wage_fen > 0 {
                    p.wage_fen as f64
                } else {
                    wage
                };
                p.amount_fen as f64 / own
            })
            .collect();
        months.sort_by(f64::total_cmp);
        quantile(&months, 0.5)
    }

    /// The amount in months of wage, the months of a case of which nothing is known, each
    /// factor's share in months (summing to the difference), and the range in months.
    fn amount_months(&self, features: &CaseFeatures) -> Explained {
        let Some(trees) = &self.trees else {
            let z = self.standardise(features);
            let factors: Vec<(String, f64)> = self
                .names
                .iter()
                .zip(z.iter().zip(&self.coefficients))
                .map(|(name, (v, c))| (name.clone(), v * c))
                .collect();
            let months = self.intercept + factors.iter().map(|(_, m)| m).sum::<f64>();
            return Explained {
                months,
                base: self.intercept,
                factors,
                low: months + self.residual_low,
                high: months + self.residual_high,
            };
        };
        let x = features.tree_vector();
        let raw = trees.ensemble.predict(&x);
        let base = trees.ensemble.expected_value();
        let phi = trees.ensemble.shap(&x);
        // Inputs are summed into their factor (Shapley values add up over a group).
        let mut grouped: Vec<(String, f64)> = Vec::new();
        for ((_, factor), value) in TREE_INPUTS.iter().zip(&phi) {
            let name = if *factor == "category" {
                format!("category {}", features.category)
            } else {
                (*factor).to_owned()
            };
            match grouped.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += value,
                None => grouped.push((name, *value)),
            }
        }
        match trees.target {
            Target::Months => Explained {
                months: raw,
                base,
                factors: grouped,
                low: raw + trees.low,
                high: raw + trees.high,
            },
            Target::LogMonths => {
                // Log contributions become months by the ratio of the change in months to
                // the change in log (exact: they sum to months minus base months).
                let (months, base_months) = (raw.exp(), base.exp());
                let change = raw - base;
                let per_log = if change.abs() < 1e-12 {
                    base_months
                } else {
                    (months - base_months) / change
                };
                Explained {
                    months,
                    base: base_months,
                    factors: grouped
                        .into_iter()
                        .map(|(name, v)| (name, v * per_log))
                        .collect(),
                    low: months * trees.low,
                    high: months * trees.high,
                }
            }
        }
    }

    /// A recommendation for `features`, clamped to `cap_fen` (saying so when it is).
    pub fn recommend(&self, features: &CaseFeatures, cap_fen: i64) -> Recommendation {
        let wage = features.wage();
        let explained = self.amount_months(features);
        let unfloored = (explained.months * wage).round() as i64;
        let base_fen = (explained.base * wage).round() as i64;
        let raw = unfloored.max(0);
        let (amount_fen, clamped) = if raw > cap_fen {
            (
                cap_fen,
                Some(format!(
                    "the model suggested {raw} fen; clamped to the cap of {cap_fen} fen"
                )),
            )
        } else {
            (raw, None)
        };
        let low = ((explained.low.max(0.0) * wage) as i64).min(amount_fen);
        let high =
            ((explained.high.max(0.0) * wage) as i64).clamp(amount_fen, cap_fen.max(amount_fen));
        let shares: Vec<f64> = explained.factors.iter().map(|(_, m)| m * wage).collect();
        let mut factors: Vec<Factor> = explained
            .factors
            .iter()
            .zip(round_to_total(&shares, unfloored - base_fen))
            .map(|((name, _), fen)| Factor {
                name: name.clone(),
                fen,
            })
            .filter(|f| f.fen != 0)
            .collect();
        factors.sort_by_key(|f| std::cmp::Reverse(f.fen.abs()));

        let near = self.nearest(&self.standardise(features), EVIDENCE);
        let (methods, method_effects, effect_note) =
            self.choose_methods(features, &near, self.effects.as_ref());
        let similar = near
            .iter()
            .take(PRECEDENTS)
            .map(|(d, p)| Similar {
                case_id: p.case_id.clone(),
                amount_fen: p.amount_fen,
                methods: METHODS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| p.methods & (1 << i) != 0)
                    .map(|(_, m)| (*m).to_owned())
                    .collect(),
                distance: *d,
            })
            .collect();
        Recommendation {
            model_version: self.version.clone(),
            amount_model: self.amount_model(),
            amount_fen,
            low_fen: low,
            high_fen: high,
            clamped,
            base_fen,
            methods,
            method_effects,
            effect_note,
            similar,
            factors,
        }
    }

    /// Whether methods are chosen by their effect (follow-up data was learnt from).
    pub fn effect_model(&self) -> Option<&EffectModel> {
        self.effects.as_ref()
    }

    /// The methods recommended (support 0.5 and above) for `features`, by the closed loop
    /// when `use_effects` and the model learnt from follow-up, else by the decisions.
    pub fn recommended_methods(&self, features: &CaseFeatures, use_effects: bool) -> Vec<String> {
        let near = self.nearest(&self.standardise(features), EVIDENCE);
        self.chosen(features, &near, use_effects)
    }

    /// The methods the closed loop and the decisions-only vote recommend, from one search.
    fn both_choices(&self, features: &CaseFeatures) -> (Vec<String>, Vec<String>) {
        let near = self.nearest(&self.standardise(features), EVIDENCE);
        (
            self.chosen(features, &near, true),
            self.chosen(features, &near, false),
        )
    }

    fn chosen(
        &self,
        features: &CaseFeatures,
        near: &[(f64, &Precedent)],
        use_effects: bool,
    ) -> Vec<String> {
        let effects = self.effects.as_ref().filter(|_| use_effects);
        self.choose_methods(features, near, effects)
            .0
            .into_iter()
            .filter(|(_, support)| *support >= 0.5)
            .map(|(m, _)| m)
            .collect()
    }

    fn choose_methods(
        &self,
        features: &CaseFeatures,
        near: &[(f64, &Precedent)],
        effects: Option<&EffectModel>,
    ) -> (Vec<(String, f64)>, Vec<MethodEffect>, Option<String>) {
        let voters = &near[..near.len().min(NEIGHBOURS)];
        let total: f64 = voters.iter().map(|(d, _)| 1.0 / (1.0 + d)).sum();
        let votes: Vec<f64> = (0..METHODS.len())
            .map(|i| {
                // fold from +0.0: an empty f64 sum is -0.0, which would print as such.
                let share = voters
                    .iter()
                    .filter(|(_, p)| p.methods & (1 << i) != 0)
                    .fold(0.0, |sum, (d, _)| sum + 1.0 / (1.0 + d));
                if total > 0.0 { share / total } else { 0.0 }
            })
            .collect();
        let followed: Vec<&Precedent> = near
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| p.effect.is_some())
            .collect();
        let judged: Vec<bool> = (0..METHODS.len())
            .map(|i| {
                let given = followed
                    .iter()
                    .filter(|p| p.methods & (1 << i) != 0)
                    .count();
                given >= OVERLAP && followed.len() - given >= OVERLAP
            })
            .collect();
        let gains: Option<Vec<Option<f64>>> = effects.map(|model| {
            // Start from what the decisions say, then keep each method whose effect with the
            // others is higher than without it (where the data can judge it), until the set
            // no longer changes.
            let x = features.tree_vector();
            let mut chosen: u16 = (0..METHODS.len())
                .filter(|i| votes[*i] >= 0.5)
                .fold(0, |bits, i| bits | 1 << i);
            let mut gains = vec![None; METHODS.len()];
            for _ in 0..4 {
                for (i, gain) in gains.iter_mut().enumerate() {
                    *gain = judged[i].then(|| {
                        model.predict(&x, chosen | 1 << i) - model.predict(&x, chosen & !(1 << i))
                    });
                }
                let next = (0..METHODS.len())
                    .filter(|i| gains[*i].map_or(votes[*i] >= 0.5, |g| g > 0.0))
                    .fold(0, |bits, i| bits | 1 << i);
                if next == chosen {
                    break;
                }
                chosen = next;
            }
            gains
        });
        // Improvement is known from the second visit on.
        let improved_share = |cases: &[&&Precedent]| {
            let seen = cases.iter().filter(|p| p.improved.is_some()).count();
            let better = cases.iter().filter(|p| p.improved == Some(true)).count();
            better as f64 / seen.max(1) as f64
        };
        let mut rows: Vec<(f64, MethodEffect)> = METHODS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (with, without): (Vec<&&Precedent>, Vec<&&Precedent>) =
                    followed.iter().partition(|p| p.methods & (1 << i) != 0);
                let gain = gains.as_ref().and_then(|g| g[i]);
                let support = match gain {
                    Some(g) => 1.0 / (1.0 + (-g / GAIN_SCALE).exp()),
                    None => votes[i],
                };
                (
                    support,
                    MethodEffect {
                        method: (*name).to_owned(),
                        vote: votes[i],
                        gain,
                        with_cases: with.len(),
                        with_improved: improved_share(&with),
                        without_cases: without.len(),
                        without_improved: improved_share(&without),
                    },
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        let chosen: Vec<&str> = rows
            .iter()
            .filter(|(support, _)| *support >= 0.5)
            .map(|(_, e)| e.method.as_str())
            .collect();
        let note = effects.map(|model| {
            let bits = method_bits(&chosen.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>());
            let (same, other): (Vec<&&Precedent>, Vec<&&Precedent>) =
                followed.iter().partition(|p| p.methods == bits);
            let mut line = if same.len() >= QUOTE_FROM {
                format!(
                    "of {} similar followed-up cases given {}, {:.0}% improved (of the other {}, {:.0}%)",
                    same.len(),
                    readable(&chosen),
                    100.0 * improved_share(&same),
                    other.len(),
                    100.0 * improved_share(&other)
                )
            } else {
                format!(
                    "{} of {} similar followed-up cases were given exactly {}",
                    same.len(),
                    followed.len(),
                    readable(&chosen)
                )
            };
            // The method the decisions would leave out (or add) that matters most.
            if let Some((_, e)) = rows
                .iter()
                .filter(|(support, e)| (*support >= 0.5) != (e.vote >= 0.5))
                .max_by(|a, b| {
                    let gain = |r: &(f64, MethodEffect)| r.1.gain.unwrap_or(0.0).abs();
                    gain(a).total_cmp(&gain(b))
                })
            {
                line.push_str(&format!(
                    "; {} is {} against the usual decision: {:.0}% of the {} similar cases given it improved, {:.0}% of the {} not given it (expected effect {:+.1} points)",
                    readable(&[e.method.as_str()]),
                    if e.gain.unwrap_or(0.0) > 0.0 {
                        "added"
                    } else {
                        "left out"
                    },
                    100.0 * e.with_improved,
                    e.with_cases,
                    100.0 * e.without_improved,
                    e.without_cases,
                    e.gain.unwrap_or(0.0)
                ));
            }
            line.push_str(&format!(
                " (methods ranked by the effect of {} followed-up past cases)",
                model.followed_up
            ));
            line
        });
        let (methods, method_effects) = rows
            .into_iter()
            .map(|(support, e)| ((e.method.clone(), support), e))
            .unzip();
        (methods, method_effects, note)
    }
}

/// Method names as a prosecutor reads them ("one-time payment plus medical help").
fn readable(methods: &[&str]) -> String {
    let names: Vec<&str> = methods
        .iter()
        .map(|m| match *m {
            "one_time_payment" => "one-time payment",
            "medical" => "medical help",
            "psychological" => "psychological help",
            "education" => "education support",
            "employment" => "employment help",
            "industrial" => "industrial support",
            "relocation" => "relocation",
            "minimum_living" => "the minimum living allowance",
            other => other,
        })
        .collect();
    match names.split_last() {
        None => "no method".to_owned(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} plus {last}", rest.join(", ")),
    }
}

/// The effect model, when enough cases were followed up.
fn fit_effects(
    cases: &[PastCase],
    options: &TrainOptions,
) -> Result<Option<EffectModel>, TrainError> {
    let followed: Vec<&PastCase> = cases.iter().filter(|c| c.outcome.is_some()).collect();
    if followed.len() < FOLLOWED_UP_FROM {
        return Ok(None);
    }
    let rows: Vec<Vec<f64>> = followed
        .iter()
        .map(|c| {
            let bits = method_bits(&c.methods);
            let mut row = c.features.tree_vector();
            row.extend((0..METHODS.len()).map(|i| f64::from(bits >> i & 1)));
            row
        })
        .collect();
    let targets: Vec<f64> = followed
        .iter()
        .map(|c| {
            c.outcome
                .as_ref()
                .map_or(0.0, |o| f64::from(o.effect_score))
        })
        .collect();
    let order = shuffled(rows.len(), options.seed.wrapping_add(1));
    let held = ((rows.len() as f64) * options.validation_share).round() as usize;
    let (mut validation, mut train) = (order[..held].to_vec(), order[held..].to_vec());
    validation.sort_unstable();
    train.sort_unstable();
    let fitted = gbm::fit(
        &rows,
        &targets,
        &train,
        &validation,
        &options.trees,
        |_, _| {},
    )?;
    Ok(Some(EffectModel {
        ensemble: fitted.ensemble,
        followed_up: followed.len(),
    }))
}

/// Lanes of the neighbour scan.
const LANES: usize = 8;

/// The precedents' standardised inputs, padded with zeros to a multiple of [`LANES`].
#[derive(Debug, Clone, Default)]
struct Scan {
    stride: usize,
    rows: Vec<f32>,
}

impl Scan {
    fn of(precedents: &[Precedent]) -> Self {
        let width = precedents.first().map_or(0, |p| p.x.len());
        let stride = width.div_ceil(LANES) * LANES;
        let mut rows = vec![0.0f32; stride * precedents.len()];
        for (row, p) in rows.chunks_exact_mut(stride.max(1)).zip(precedents) {
            for (cell, v) in row.iter_mut().zip(&p.x) {
                *cell = *v;
            }
        }
        Self { stride, rows }
    }
}

/// An amount in months with its explanation.
struct Explained {
    months: f64,
    base: f64,
    factors: Vec<(String, f64)>,
    low: f64,
    high: f64,
}

/// The baseline to beat: the median months of wage by category and province (by category
/// alone when the pair is unseen), and the methods most cases of the category got.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    by_group: BTreeMap<(String, String), f64>,
    by_category: BTreeMap<String, f64>,
    methods: BTreeMap<String, Vec<String>>,
}

impl Baseline {
    pub fn fit(cases: &[PastCase]) -> Self {
        let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut categories: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut counts: BTreeMap<String, (usize, [usize; METHODS.len()])> = BTreeMap::new();
        for case in cases {
            let f = &case.features;
            groups
                .entry((f.category.clone(), f.province().to_owned()))
                .or_default()
                .push(months(case));
            categories
                .entry(f.category.clone())
                .or_default()
                .push(months(case));
            let entry = counts.entry(f.category.clone()).or_default();
            entry.0 += 1;
            for (i, name) in METHODS.iter().enumerate() {
                if case.methods.iter().any(|m| m == name) {
                    entry.1[i] += 1;
                }
            }
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            quantile(&values, 0.5)
        };
        Self {
            by_group: groups.into_iter().map(|(k, v)| (k, median(v))).collect(),
            by_category: categories
                .into_iter()
                .map(|(k, v)| (k, median(v)))
                .collect(),
            methods: counts
                .into_iter()
                .map(|(category, (n, seen))| {
                    let common = METHODS
                        .iter()
                        .zip(seen)
                        .filter(|(_, s)| 2 * s >= n)
                        .map(|(m, _)| (*m).to_owned())
                        .collect();
                    (category, common)
                })
                .collect(),
        }
    }

    pub fn amount_fen(&self, features: &CaseFeatures) -> i64 {
        let months = self
            .by_group
            .get(&(features.category.clone(), features.province().to_owned()))
            .or_else(|| self.by_category.get(&features.category))
            .copied()
            .unwrap_or(0.0);
        (months * features.wage()).round() as i64
    }

    pub fn methods(&self, features: &CaseFeatures) -> Vec<String> {
        self.methods
            .get(&features.category)
            .cloned()
            .unwrap_or_default()
    }
}

/// How a model and the baseline did on held-out cases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub held_out: usize,
    /// The model that gave `amount_mae_fen` (see [`Recommender::amount_model`]).
    pub amount_model: String,
    pub amount_mae_fen: f64,
    /// The ridge reference, kept in every evaluation.
    pub ridge_amount_mae_fen: f64,
    pub neighbour_amount_mae_fen: f64,
    pub baseline_amount_mae_fen: f64,
    /// F1 of the methods recommended against those decided: the model's (the closed loop's
    /// when it learnt from follow-up, which departs from decisions on purpose), the
    /// decisions-only vote's, and the baseline's.
    pub method_f1: f64,
    pub decisions_only_method_f1: f64,
    pub baseline_method_f1: f64,
}

fn f1(true_positive: usize, predicted: usize, actual: usize) -> f64 {
    if predicted == 0 || actual == 0 {
        return 0.0;
    }
    let precision = true_positive as f64 / predicted as f64;
    let recall = true_positive as f64 / actual as f64;
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Evaluates `model` and `baseline` on `held_out` (the cap is not applied: truth is capped).
pub fn evaluate(model: &Recommender, baseline: &Baseline, held_out: &[PastCase]) -> Evaluation {
    let n = held_out.len().max(1) as f64;
    let (mut model_error, mut neighbour_error, mut baseline_error) = (0.0, 0.0, 0.0);
    let mut ridge_error = 0.0;
    let (mut tp, mut predicted, mut actual) = (0, 0, 0);
    let (mut base_tp, mut base_predicted) = (0, 0);
    let (mut vote_tp, mut vote_predicted) = (0, 0);
    for case in held_out {
        let f = &case.features;
        let recommendation = model.recommend(f, i64::MAX);
        model_error += (recommendation.amount_fen - case.amount_fen).abs() as f64;
        neighbour_error += (model.neighbour_months(f) * f.wage() - case.amount_fen as f64).abs();
        ridge_error +=
            ((model.ridge_months(f).max(0.0) * f.wage()).round() - case.amount_fen as f64).abs();
        baseline_error += (baseline.amount_fen(f) - case.amount_fen).abs() as f64;
        let chosen: Vec<&String> = recommendation
            .methods
            .iter()
            .filter(|(_, p)| *p >= 0.5)
            .map(|(m, _)| m)
            .collect();
        actual += case.methods.len();
        predicted += chosen.len();
        tp += chosen.iter().filter(|m| case.methods.contains(m)).count();
        let vote = model.recommended_methods(f, false);
        vote_predicted += vote.len();
        vote_tp += vote.iter().filter(|m| case.methods.contains(m)).count();
        let base = baseline.methods(f);
        base_predicted += base.len();
        base_tp += base.iter().filter(|m| case.methods.contains(m)).count();
    }
    Evaluation {
        held_out: held_out.len(),
        amount_model: model.amount_model(),
        amount_mae_fen: model_error / n,
        ridge_amount_mae_fen: ridge_error / n,
        neighbour_amount_mae_fen: neighbour_error / n,
        baseline_amount_mae_fen: baseline_error / n,
        method_f1: f1(tp, predicted, actual),
        decisions_only_method_f1: f1(vote_tp, vote_predicted, actual),
        baseline_method_f1: f1(base_tp, base_predicted, actual),
    }
}

/// How the methods a model picks do by their true expected effect, on held-out cases whose
/// truth is known (synthetic history): the closed loop against the decisions-only choice of
/// the same model, what was decided, and the best possible (exactly the needs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectEvaluation {
    pub cases: usize,
    pub closed_loop: f64,
    pub decisions_only: f64,
    pub as_decided: f64,
    pub best_possible: f64,
    /// Mean of closed loop minus decisions-only per case, and its 95% half-width.
    pub gain: f64,
    pub gain_half_width: f64,
    /// Shares of cases where the closed loop's choice is truly better, and worse.
    pub better_share: f64,
    pub worse_share: f64,
}

/// See [`EffectEvaluation`]; `None` when the model learnt nothing from follow-up or there are
/// no cases.
pub fn evaluate_effects<'a>(
    model: &Recommender,
    held_out: impl IntoIterator<Item = (&'a PastCase, &'a crate::generate::Truth)>,
) -> Option<EffectEvaluation> {
    model.effects.as_ref()?;
    let (mut closed, mut decisions, mut decided, mut best) = (0.0, 0.0, 0.0, 0.0);
    let mut differences = Vec::new();
    let (mut better, mut worse) = (0usize, 0usize);
    for (case, truth) in held_out {
        let (closed_loop, vote) = model.both_choices(&case.features);
        let loop_effect = truth.expected_effect(&closed_loop);
        let vote_effect = truth.expected_effect(&vote);
        closed += loop_effect;
        decisions += vote_effect;
        decided += truth.expected_effect(&case.methods);
        best += truth.expected_effect(&truth.needs);
        differences.push(loop_effect - vote_effect);
        better += usize::from(loop_effect > vote_effect + 1e-9);
        worse += usize::from(loop_effect < vote_effect - 1e-9);
    }
    let n = differences.len();
    if n == 0 {
        return None;
    }
    let count = n as f64;
    let gain = differences.iter().sum::<f64>() / count;
    let variance =
        differences.iter().map(|d| (d - gain).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
    Some(EffectEvaluation {
        cases: n,
        closed_loop: closed / count,
        decisions_only: decisions / count,
        as_decided: decided / count,
        best_possible: best / count,
        gain,
        gain_half_width: 1.96 * (variance / count).sqrt(),
        better_share: better as f64 / count,
        worse_share: worse as f64 / count,
    })
}
