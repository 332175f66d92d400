//! The recommender: ridge regression on months of wage for the amount (so every amount comes
//! with the factors that moved it), the nearest past cases for the methods and as precedents,
//! and a baseline (median by category and province) it must beat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::features::{CaseFeatures, METHODS, PastCase, feature_names};

/// Neighbours that vote on the methods.
const NEIGHBOURS: usize = 15;
/// Precedents shown with a recommendation.
const PRECEDENTS: usize = 5;
/// Ridge penalty on standardised inputs.
const LAMBDA: f64 = 1.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("{0} past cases are too few to learn from (at least 50)")]
    TooFew(usize),
    #[error("past case {case}: {reason}")]
    BadCase { case: String, reason: String },
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
}

/// A trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recommender {
    pub version: String,
    pub trained_on: usize,
    names: Vec<String>,
    mean: Vec<f64>,
    scale: Vec<f64>,
    coefficients: Vec<f64>,
    intercept: f64,
    /// 10th and 90th percentile of the training residuals, in months.
    residual_low: f64,
    residual_high: f64,
    precedents: Vec<Precedent>,
}

/// A factor that moved the amount (fen above or below the average case).
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
    pub amount_fen: i64,
    pub low_fen: i64,
    pub high_fen: i64,
    /// Set when the amount was clamped to the cap (never silently).
    pub clamped: Option<String>,
    /// Every method with its probability, most likely first.
    pub methods: Vec<(String, f64)>,
    pub similar: Vec<Similar>,
    /// The largest contributions, largest first.
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

impl Recommender {
    /// Learns from `cases`; `progress(done, total)` is called as it goes.
    pub fn train(
        cases: &[PastCase],
        version: &str,
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
        let rows: Vec<Vec<f64>> = cases.iter().map(|c| c.features.vector()).collect();
        let width = rows.first().map_or(0, Vec::len);
        let count = rows.len() as f64;
        let mut mean = vec![0.0; width];
        for row in &rows {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / count;
            }
        }
        let mut scale = vec![0.0; width];
        for row in &rows {
            for ((s, v), m) in scale.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2) / count;
            }
        }
        for s in &mut scale {
            *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
        }
        let standard = |row: &[f64]| -> Vec<f64> {
            row.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((v, m), s)| (v - m) / s)
                .collect()
        };
        let targets: Vec<f64> = cases.iter().map(months).collect();
        let intercept = targets.iter().sum::<f64>() / count;
        let mut gram = vec![vec![0.0; width]; width];
        let mut moment = vec![0.0; width];
        let mut precedents = Vec::with_capacity(cases.len());
        for (n, ((row, case), y)) in rows.iter().zip(cases).zip(&targets).enumerate() {
            let z = standard(row);
            for i in 0..width {
                moment[i] += z[i] * (y - intercept);
                for j in 0..width {
                    gram[i][j] += z[i] * z[j];
                }
            }
            precedents.push(Precedent {
                case_id: case.case_id.clone(),
                x: z.iter().map(|v| *v as f32).collect(),
                amount_fen: case.amount_fen,
                wage_fen: case.features.wage_fen,
                methods: method_bits(&case.methods),
            });
            if n % 10_000 == 0 {
                progress(n, cases.len());
            }
        }
        for (i, row) in gram.iter_mut().enumerate() {
            row[i] += LAMBDA;
        }
        let coefficients = solve(gram, moment);
        let mut residuals: Vec<f64> = rows
            .iter()
            .zip(&targets)
            .map(|(row, y)| {
                let z = standard(row);
                y - (intercept + z.iter().zip(&coefficients).map(|(a, b)| a * b).sum::<f64>())
            })
            .collect();
        residuals.sort_by(f64::total_cmp);
        progress(cases.len(), cases.len());
        Ok(Self {
            version: version.to_owned(),
            trained_on: cases.len(),
            names: feature_names(),
            residual_low: quantile(&residuals, 0.1),
            residual_high: quantile(&residuals, 0.9),
            mean,
            scale,
            coefficients,
            intercept,
            precedents,
        })
    }

    fn standardise(&self, features: &CaseFeatures) -> Vec<f64> {
        features
            .vector()
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    }

    /// The nearest precedents, nearest first.
    fn nearest(&self, z: &[f64], k: usize) -> Vec<(f64, &Precedent)> {
        let mut best: Vec<(f64, &Precedent)> = Vec::with_capacity(k + 1);
        for precedent in &self.precedents {
            let d: f64 = precedent
                .x
                .iter()
                .zip(z)
                .map(|(a, b)| (f64::from(*a) - b).powi(2))
                .sum();
            if best.len() < k || best.last().is_some_and(|(worst, _)| d < *worst) {
                let at = best.partition_point(|(other, _)| *other <= d);
                best.insert(at, (d, precedent));
                best.truncate(k);
            }
        }
        best.into_iter().map(|(d, p)| (d.sqrt(), p)).collect()
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

    /// A recommendation for `features`, clamped to `cap_fen` (saying so when it is).
    pub fn recommend(&self, features: &CaseFeatures, cap_fen: i64) -> Recommendation {
        let z = self.standardise(features);
        let wage = features.wage();
        let contributions: Vec<f64> = z
            .iter()
            .zip(&self.coefficients)
            .map(|(v, c)| v * c)
            .collect();
        let predicted = (self.intercept + contributions.iter().sum::<f64>()).max(0.0);
        let raw = (predicted * wage).round() as i64;
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
        let low = (((predicted + self.residual_low).max(0.0) * wage) as i64).min(amount_fen);
        let high = (((predicted + self.residual_high).max(0.0) * wage) as i64)
            .clamp(amount_fen, cap_fen.max(amount_fen));
        let mut factors: Vec<Factor> = self
            .names
            .iter()
            .zip(&contributions)
            .map(|(name, months)| Factor {
                name: name.clone(),
                fen: (months * wage).round() as i64,
            })
            .filter(|f| f.fen != 0)
            .collect();
        factors.sort_by_key(|f| std::cmp::Reverse(f.fen.abs()));
        factors.truncate(5);

        let near = self.nearest(&z, NEIGHBOURS);
        let total: f64 = near.iter().map(|(d, _)| 1.0 / (1.0 + d)).sum();
        let mut methods: Vec<(String, f64)> = METHODS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let share: f64 = near
                    .iter()
                    .filter(|(_, p)| p.methods & (1 << i) != 0)
                    .map(|(d, _)| 1.0 / (1.0 + d))
                    .sum();
                (
                    (*name).to_owned(),
                    if total > 0.0 { share / total } else { 0.0 },
                )
            })
            .collect();
        methods.sort_by(|a, b| b.1.total_cmp(&a.1));
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
            amount_fen,
            low_fen: low,
            high_fen: high,
            clamped,
            methods,
            similar,
            factors,
        }
    }
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
    pub amount_mae_fen: f64,
    pub neighbour_amount_mae_fen: f64,
    pub baseline_amount_mae_fen: f64,
    pub method_f1: f64,
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
    let (mut tp, mut predicted, mut actual) = (0, 0, 0);
    let (mut base_tp, mut base_predicted) = (0, 0);
    for case in held_out {
        let f = &case.features;
        let recommendation = model.recommend(f, i64::MAX);
        model_error += (recommendation.amount_fen - case.amount_fen).abs() as f64;
        neighbour_error += (model.neighbour_months(f) * f.wage() - case.amount_fen as f64).abs();
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
        let base = baseline.methods(f);
        base_predicted += base.len();
        base_tp += base.iter().filter(|m| case.methods.contains(m)).count();
    }
    Evaluation {
        held_out: held_out.len(),
        amount_mae_fen: model_error / n,
        neighbour_amount_mae_fen: neighbour_error / n,
        baseline_amount_mae_fen: baseline_error / n,
        method_f1: f1(tp, predicted, actual),
        baseline_method_f1: f1(base_tp, base_predicted, actual),
    }
}
