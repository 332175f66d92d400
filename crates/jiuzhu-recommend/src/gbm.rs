//! Gradient-boosted regression trees on histograms, with exact path-dependent TreeSHAP.
//!
//! Written here rather than taken from a crate so that the stored model is our own, versioned
//! JSON (a crate's internal layout would tie saved models to its release) and so the explainer
//! is exactly the algorithm we document. The learner follows the usual recipe (LightGBM,
//! scikit-learn's HistGradientBoosting): inputs cut into at most 255 quantile bins, trees grown
//! best-leaf-first up to a number of leaves and a depth, leaf values shrunk by an L2 penalty and
//! a learning rate, at least `min_samples_leaf` rows per leaf, and boosting stopped when the
//! loss on a validation split has not improved for `patience` rounds (the best round is kept).
//!
//! TreeSHAP is Lundberg, Erion & Lee (2018), Algorithm 2: per case, each input's Shapley value
//! where "input unknown" means following both branches weighted by their training cover. The
//! values of a case sum to its prediction minus [`Ensemble::expected_value`].

use serde::{Deserialize, Serialize};

/// Bins per input (one byte per binned value).
const MAX_BINS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub learning_rate: f64,
    pub max_leaves: usize,
    pub max_depth: usize,
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values (added to the leaf's row count).
    pub l2: f64,
    /// At most 256.
    pub max_bins: usize,
    pub max_rounds: usize,
    /// Rounds without a better validation loss before stopping.
    pub patience: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 10,
            min_samples_leaf: 20,
            l2: 1.0,
            max_bins: 255,
            max_rounds: 1000,
            patience: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GbmError {
    #[error("no rows to learn from")]
    Empty,
    #[error("row {row} has {got} inputs, expected {expected}")]
    Width {
        row: usize,
        got: usize,
        expected: usize,
    },
    #[error("row {row}, input {input}: {value} is not a finite number")]
    NotFinite {
        row: usize,
        input: usize,
        value: f64,
    },
    #[error("row {row}: target {value} is not a finite number")]
    BadTarget { row: usize, value: f64 },
    #[error("bad parameters: {0}")]
    Params(String),
}

/// An internal node's test: `x[input] <= threshold` goes left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub input: usize,
    pub threshold: f64,
    pub left: usize,
    pub right: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// A leaf's contribution (learning rate applied); 0 for internal nodes.
    pub value: f64,
    /// Training rows that reached the node (the weights TreeSHAP follows).
    pub cover: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Node 0 is the root.
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut at = 0;
        while let Some(node) = self.nodes.get(at) {
            match &node.split {
                Some(s) => {
                    at = if x.get(s.input).copied().unwrap_or(0.0) <= s.threshold {
                        s.left
                    } else {
                        s.right
                    }
                }
                None => return node.value,
            }
        }
        0.0
    }

    /// The cover-weighted mean of the leaves: the tree's prediction when nothing is known.
    pub fn expected_value(&self) -> f64 {
        let root = self.nodes.first().map_or(0.0, |n| n.cover);
        if root <= 0.0 {
            return 0.0;
        }
        self.nodes
            .iter()
            .filter(|n| n.split.is_none())
            .map(|n| n.value * n.cover)
            .sum::<f64>()
            / root
    }
}

/// A boosted model: `init` plus the sum of its trees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    pub inputs: usize,
    pub init: f64,
    pub trees: Vec<Tree>,
}

/// One element of TreeSHAP's path of unique features.
#[derive(Debug, Clone, Copy, Default)]
struct PathElement {
    input: Option<usize>,
    zero: f64,
    one: f64,
    weight: f64,
}

/// Appends an element to `path[..depth]` (the caller's slice has room for it).
fn extend_path(path: &mut [PathElement], depth: usize, zero: f64, one: f64, input: Option<usize>) {
    path[depth] = PathElement {
        input,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / (depth + 1) as f64;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / (depth + 1) as f64;
    }
}

/// Removes element `at` from `path` (all of it in use).
fn unwind_path(path: &mut [PathElement], at: usize) {
    let depth = path.len() - 1;
    let (one, zero) = (path[at].one, path[at].zero);
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            next = kept - path[i].weight * zero * (depth - i) as f64 / (depth + 1) as f64;
        } else {
            path[i].weight = path[i].weight * (depth + 1) as f64 / (zero * (depth - i) as f64);
        }
    }
    for i in at..depth {
        path[i].input = path[i + 1].input;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

fn unwound_path_sum(path: &[PathElement], at: usize) -> f64 {
    let depth = path.len() - 1;
    let (one, zero) = (path[at].one, path[at].zero);
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let part = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            total += part;
            next = path[i].weight - part * zero * ((depth - i) as f64 / (depth + 1) as f64);
        } else if zero != 0.0 {
            total += (path[i].weight / zero) / ((depth - i) as f64 / (depth + 1) as f64);
        }
    }
    total
}

/// One case's walk through a tree. Each level's path is a segment of one buffer, after its
/// parent's (no allocation per node: this runs for every recommendation).
struct Walk<'a> {
    tree: &'a Tree,
    x: &'a [f64],
    phi: &'a mut [f64],
    buffer: &'a mut Vec<PathElement>,
}

impl Walk<'_> {
    fn recurse(
        &mut self,
        node: usize,
        parent: (usize, usize),
        zero: f64,
        one: f64,
        input: Option<usize>,
    ) {
        let Some(here) = self.tree.nodes.get(node) else {
            return;
        };
        let (parent_start, parent_len) = parent;
        let start = parent_start + parent_len;
        if self.buffer.len() < start + parent_len + 1 {
            self.buffer
                .resize(start + parent_len + 1, PathElement::default());
        }
        self.buffer
            .copy_within(parent_start..parent_start + parent_len, start);
        extend_path(&mut self.buffer[start..], parent_len, zero, one, input);
        let mut len = parent_len + 1;
        let Some(split) = &here.split else {
            let path = &self.buffer[start..start + len];
            for i in 1..len {
                let w = unwound_path_sum(path, i);
                let element = path[i];
                if let Some(slot) = element.input.and_then(|at| self.phi.get_mut(at)) {
                    *slot += w * (element.one - element.zero) * here.value;
                }
            }
            return;
        };
        let goes_left = self.x.get(split.input).copied().unwrap_or(0.0) <= split.threshold;
        let (hot, cold) = if goes_left {
            (split.left, split.right)
        } else {
            (split.right, split.left)
        };
        let cover_of = |n: usize| self.tree.nodes.get(n).map_or(0.0, |n| n.cover);
        let total = here.cover.max(f64::MIN_POSITIVE);
        let (hot_zero, cold_zero) = (cover_of(hot) / total, cover_of(cold) / total);
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        // A feature met again on the path: undo its earlier split so it counts once.
        let path = &mut self.buffer[start..start + len];
        if let Some(at) = path.iter().position(|e| e.input == Some(split.input)) {
            incoming_zero = path[at].zero;
            incoming_one = path[at].one;
            unwind_path(path, at);
            len -= 1;
        }
        self.recurse(
            hot,
            (start, len),
            hot_zero * incoming_zero,
            incoming_one,
            Some(split.input),
        );
        self.recurse(
            cold,
            (start, len),
            cold_zero * incoming_zero,
            0.0,
            Some(split.input),
        );
    }
}

impl Ensemble {
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.init + self.trees.iter().map(|t| t.predict(x)).sum::<f64>()
    }

    /// The prediction when nothing about the case is known (SHAP's base value).
    pub fn expected_value(&self) -> f64 {
        self.init + self.trees.iter().map(Tree::expected_value).sum::<f64>()
    }

    /// Each input's exact Shapley value for `x` (path-dependent TreeSHAP); they sum to
    /// `predict(x) - expected_value()`.
    pub fn shap(&self, x: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.inputs];
        let mut buffer = Vec::with_capacity(128);
        for tree in &self.trees {
            let mut walk = Walk {
                tree,
                x,
                phi: &mut phi,
                buffer: &mut buffer,
            };
            walk.recurse(0, (0, 0), 1.0, 1.0, None);
        }
        phi
    }
}

/// Cut points per input: a value `v` falls in the first bin whose edge is `>= v`.
#[derive(Debug, Clone)]
struct Binner {
    edges: Vec<Vec<f64>>,
}

impl Binner {
    fn fit(rows: &[Vec<f64>], use_rows: &[usize], width: usize, max_bins: usize) -> Self {
        let edges = (0..width)
            .map(|input| {
                let mut values: Vec<f64> = use_rows.iter().map(|&r| rows[r][input]).collect();
                values.sort_by(f64::total_cmp);
                let mut distinct = values.clone();
                distinct.dedup();
                let midpoints = |points: &[f64]| -> Vec<f64> {
                    points.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
                };
                if distinct.len() <= max_bins {
                    return midpoints(&distinct);
                }
                // Quantiles: the edge between the values either side of each cut position.
                let mut cuts: Vec<f64> = (1..max_bins)
                    .filter_map(|k| {
                        let at = k * values.len() / max_bins;
                        let (below, above) = (values[at.saturating_sub(1)], values[at]);
                        (below < above).then_some(0.5 * (below + above))
                    })
                    .collect();
                cuts.dedup();
                cuts
            })
            .collect();
        Self { edges }
    }

    fn bin(&self, input: usize, value: f64) -> u8 {
        let at = self.edges[input].partition_point(|e| *e < value);
        u8::try_from(at).unwrap_or(u8::MAX)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    gradient: f64,
    count: u32,
}

/// The best split of a leaf.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    gain: f64,
    input: usize,
    bin: u8,
}

/// A leaf still open to splitting.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    gradient: f64,
    histogram: Vec<Cell>,
    best: Option<Candidate>,
}

struct Grower<'a> {
    params: &'a Params,
    binner: &'a Binner,
    bins: &'a [u8],
    width: usize,
    gradients: &'a [f64],
}

impl Grower<'_> {
    fn histogram(&self, rows: &[usize]) -> Vec<Cell> {
        let mut histogram = vec![Cell::default(); self.width * MAX_BINS];
        for &row in rows {
            let g = self.gradients[row];
            let binned = &self.bins[row * self.width..(row + 1) * self.width];
            for (input, &bin) in binned.iter().enumerate() {
                let cell = &mut histogram[input * MAX_BINS + usize::from(bin)];
                cell.gradient += g;
                cell.count += 1;
            }
        }
        histogram
    }

    fn score(&self, gradient: f64, count: f64) -> f64 {
        gradient * gradient / (count + self.params.l2)
    }

    fn best_split(&self, histogram: &[Cell], gradient: f64, count: usize) -> Option<Candidate> {
        let min = self.params.min_samples_leaf.max(1);
        if count < 2 * min {
            return None;
        }
        let parent = self.score(gradient, count as f64);
        let mut best: Option<Candidate> = None;
        for input in 0..self.width {
            let bins = self.binner.edges[input].len() + 1;
            let (mut left_g, mut left_n) = (0.0, 0usize);
            for bin in 0..bins.saturating_sub(1) {
                let cell = histogram[input * MAX_BINS + bin];
                left_g += cell.gradient;
                left_n += cell.count as usize;
                if left_n < min {
                    continue;
                }
                let right_n = count - left_n;
                if right_n < min {
                    break;
                }
                let gain = self.score(left_g, left_n as f64)
                    + self.score(gradient - left_g, right_n as f64)
                    - parent;
                if gain > 1e-12 && best.is_none_or(|b| gain > b.gain) {
                    best = Some(Candidate {
                        gain,
                        input,
                        bin: u8::try_from(bin).unwrap_or(u8::MAX),
                    });
                }
            }
        }
        best
    }

    /// Grows one tree on `order` (the training rows, reordered in place by leaf) and returns
    /// it with each leaf's row range.
    fn grow(&self, order: &mut [usize]) -> (Tree, Vec<(usize, usize, usize)>) {
        let gradient: f64 = order.iter().map(|&r| self.gradients[r]).sum();
        let histogram = self.histogram(order);
        let mut nodes = vec![Node {
            split: None,
            value: 0.0,
            cover: order.len() as f64,
        }];
        let best = if self.params.max_depth > 0 {
            self.best_split(&histogram, gradient, order.len())
        } else {
            None
        };
        let mut open = vec![Open {
            node: 0,
            start: 0,
            end: order.len(),
            depth: 0,
            gradient,
            histogram,
            best,
        }];
        let mut closed: Vec<Open> = Vec::new();
        let mut leaves = 1;
        while leaves < self.params.max_leaves.max(1) {
            let Some(at) = open
                .iter()
                .enumerate()
                .filter_map(|(i, o)| o.best.map(|b| (i, b.gain)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
            else {
                break;
            };
            let leaf = open.swap_remove(at);
            let Some(candidate) = leaf.best else {
                closed.push(leaf);
                continue;
            };
            let rows = &mut order[leaf.start..leaf.end];
            let mut mid = 0;
            for i in 0..rows.len() {
                if self.bins[rows[i] * self.width + candidate.input] <= candidate.bin {
                    rows.swap(i, mid);
                    mid += 1;
                }
            }
            let (left_rows, right_rows) = rows.split_at(mid);
            let left_g: f64 = left_rows.iter().map(|&r| self.gradients[r]).sum();
            let right_g = leaf.gradient - left_g;
            // Histogram subtraction: count the smaller child, the larger is parent minus it.
            let (small, small_is_left) = if left_rows.len() <= right_rows.len() {
                (left_rows, true)
            } else {
                (right_rows, false)
            };
            let small_histogram = self.histogram(small);
            let mut large_histogram = leaf.histogram;
            for (big, little) in large_histogram.iter_mut().zip(&small_histogram) {
                big.gradient -= little.gradient;
                big.count -= little.count;
            }
            let (left_histogram, right_histogram) = if small_is_left {
                (small_histogram, large_histogram)
            } else {
                (large_histogram, small_histogram)
            };
            let (left_node, right_node) = (nodes.len(), nodes.len() + 1);
            let left_len = left_rows.len();
            let right_len = right_rows.len();
            nodes.push(Node {
                split: None,
                value: 0.0,
                cover: left_len as f64,
            });
            nodes.push(Node {
                split: None,
                value: 0.0,
                cover: right_len as f64,
            });
            nodes[leaf.node].split = Some(Split {
                input: candidate.input,
                threshold: self.binner.edges[candidate.input]
                    .get(usize::from(candidate.bin))
                    .copied()
                    .unwrap_or(f64::INFINITY),
                left: left_node,
                right: right_node,
            });
            let depth = leaf.depth + 1;
            let can_split = depth < self.params.max_depth;
            for (node, start, end, gradient, histogram) in [
                (
                    left_node,
                    leaf.start,
                    leaf.start + left_len,
                    left_g,
                    left_histogram,
                ),
                (
                    right_node,
                    leaf.start + left_len,
                    leaf.end,
                    right_g,
                    right_histogram,
                ),
            ] {
                let best = if can_split {
                    self.best_split(&histogram, gradient, end - start)
                } else {
                    None
                };
                open.push(Open {
                    node,
                    start,
                    end,
                    depth,
                    gradient,
                    histogram,
                    best,
                });
            }
            leaves += 1;
        }
        let mut ranges = Vec::with_capacity(open.len() + closed.len());
        for leaf in open.into_iter().chain(closed) {
            let count = (leaf.end - leaf.start) as f64;
            let value = -self.params.learning_rate * leaf.gradient / (count + self.params.l2);
            nodes[leaf.node].value = value;
            ranges.push((leaf.node, leaf.start, leaf.end));
        }
        (Tree { nodes }, ranges)
    }
}

/// What boosting did.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub ensemble: Ensemble,
    /// Trees kept (the best validation round).
    pub rounds: usize,
    /// Mean squared error on the validation rows at the best round (the training rows when
    /// there are none).
    pub loss: f64,
}

/// Boosts squared-error trees on `train` rows of `rows`/`targets`, stopping early on
/// `validation` rows (none: all `max_rounds`). `progress(round, max_rounds)` is called as it
/// goes.
pub fn fit(
    rows: &[Vec<f64>],
    targets: &[f64],
    train: &[usize],
    validation: &[usize],
    params: &Params,
    mut progress: impl FnMut(usize, usize),
) -> Result<Fitted, GbmError> {
    if params.max_bins < 2 || params.max_bins > MAX_BINS {
        return Err(GbmError::Params(format!(
            "max_bins must be 2 to {MAX_BINS}, not {}",
            params.max_bins
        )));
    }
    if !(params.learning_rate > 0.0 && params.learning_rate <= 1.0) || params.l2 < 0.0 {
        return Err(GbmError::Params(
            "learning_rate must be in (0, 1] and l2 not negative".to_owned(),
        ));
    }
    let width = rows.first().map_or(0, Vec::len);
    if train.is_empty() || rows.len() != targets.len() {
        return Err(GbmError::Empty);
    }
    for (row, values) in rows.iter().enumerate() {
        if values.len() != width {
            return Err(GbmError::Width {
                row,
                got: values.len(),
                expected: width,
            });
        }
        if let Some((input, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(GbmError::NotFinite {
                row,
                input,
                value: *value,
            });
        }
        if !targets[row].is_finite() {
            return Err(GbmError::BadTarget {
                row,
                value: targets[row],
            });
        }
    }
    if train.iter().chain(validation).any(|&r| r >= rows.len()) {
        return Err(GbmError::Empty);
    }
    let binner = Binner::fit(rows, train, width, params.max_bins);
    let mut bins = vec![0u8; rows.len() * width];
    for &row in train {
        for input in 0..width {
            bins[row * width + input] = binner.bin(input, rows[row][input]);
        }
    }
    let init = train.iter().map(|&r| targets[r]).sum::<f64>() / train.len() as f64;
    let mut predicted = vec![init; rows.len()];
    let mut gradients = vec![0.0; rows.len()];
    let mut order: Vec<usize> = train.to_vec();
    let mut trees = Vec::new();
    let loss_of = |predicted: &[f64], on: &[usize]| -> f64 {
        on.iter()
            .map(|&r| (predicted[r] - targets[r]).powi(2))
            .sum::<f64>()
            / on.len().max(1) as f64
    };
    let watched = if validation.is_empty() {
        train
    } else {
        validation
    };
    let mut best = (loss_of(&predicted, watched), 0usize);
    for round in 0..params.max_rounds {
        for &r in train {
            gradients[r] = predicted[r] - targets[r];
        }
        let grower = Grower {
            params,
            binner: &binner,
            bins: &bins,
            width,
            gradients: &gradients,
        };
        let (tree, ranges) = grower.grow(&mut order);
        for (node, start, end) in ranges {
            let value = tree.nodes[node].value;
            for &r in &order[start..end] {
                predicted[r] += value;
            }
        }
        for &r in validation {
            predicted[r] += tree.predict(&rows[r]);
        }
        trees.push(tree);
        let loss = loss_of(&predicted, watched);
        if loss < best.0 - 1e-12 * best.0.abs().max(1e-12) {
            best = (loss, trees.len());
        } else if trees.len() - best.1 >= params.patience && !validation.is_empty() {
            break;
        }
        progress(round + 1, params.max_rounds);
    }
    trees.truncate(best.1);
    Ok(Fitted {
        rounds: trees.len(),
        loss: best.0,
        ensemble: Ensemble {
            inputs: width,
            init,
            trees,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Seeded;

    /// y = 10·[x0 > 0.5]·[x1 > 0.3] + 3·x2 + noise; x3 is pure noise the trees may use,
    /// x4 is constant (never split on).
    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = Seeded::new(seed);
        let mut rows = Vec::with_capacity(n);
        let mut targets = Vec::with_capacity(n);
        for _ in 0..n {
            let x = vec![rng.unit(), rng.unit(), rng.unit(), rng.unit(), 7.0];
            let y =
                if x[0] > 0.5 && x[1] > 0.3 { 10.0 } else { 0.0 } + 3.0 * x[2] + 0.1 * rng.normal();
            rows.push(x);
            targets.push(y);
        }
        (rows, targets)
    }

    fn fitted(n: usize) -> (Vec<Vec<f64>>, Vec<f64>, Fitted) {
        let (rows, targets) = data(n, 3);
        let train: Vec<usize> = (0..n * 9 / 10).collect();
        let validation: Vec<usize> = (n * 9 / 10..n).collect();
        let result = fit(
            &rows,
            &targets,
            &train,
            &validation,
            &Params::default(),
            |_, _| {},
        );
        let Ok(model) = result else {
            panic!("{result:?}");
        };
        (rows, targets, model)
    }

    #[test]
    fn boosting_learns_an_interaction_and_stops_early() {
        let (rows, targets, model) = fitted(4000);
        assert!(model.rounds < 1000, "stopped at {}", model.rounds);
        let error: f64 = rows[3600..]
            .iter()
            .zip(&targets[3600..])
            .map(|(x, y)| (model.ensemble.predict(x) - y).abs())
            .sum::<f64>()
            / 400.0;
        // Predicting the mean would be off by about 4.7; the rule itself leaves 0.08.
        assert!(error < 0.5, "mean absolute error {error}");
    }

    #[test]
    fn shap_values_sum_to_the_prediction_minus_the_base_value() {
        let (rows, _, model) = fitted(3000);
        let base = model.ensemble.expected_value();
        for x in rows.iter().take(50) {
            let phi = model.ensemble.shap(x);
            let total: f64 = phi.iter().sum();
            let gap = model.ensemble.predict(x) - base;
            assert!((total - gap).abs() < 1e-6, "{total} vs {gap}");
            assert_eq!(phi[4], 0.0, "a constant input is never split on");
        }
        // The interaction inputs carry the step, the linear one its slope.
        let high = model.ensemble.shap(&[0.9, 0.9, 0.5, 0.5, 7.0]);
        assert!(high[0] > 2.0 && high[1] > 1.0, "{high:?}");
        assert!(high[3].abs() < 0.5, "{high:?}");
    }

    /// Brute force: the Shapley value over all subsets, "unknown" inputs following both
    /// branches by cover, must equal TreeSHAP's on every input.
    #[test]
    fn shap_matches_the_shapley_formula_by_enumeration() {
        fn value(tree: &Tree, node: usize, x: &[f64], known: u32) -> f64 {
            let n = &tree.nodes[node];
            match &n.split {
                None => n.value,
                Some(s) if known & (1 << s.input) != 0 => {
                    let next = if x[s.input] <= s.threshold {
                        s.left
                    } else {
                        s.right
                    };
                    value(tree, next, x, known)
                }
                Some(s) => {
                    let (l, r) = (&tree.nodes[s.left], &tree.nodes[s.right]);
                    (l.cover * value(tree, s.left, x, known)
                        + r.cover * value(tree, s.right, x, known))
                        / n.cover
                }
            }
        }
        fn factorial(n: usize) -> f64 {
            (1..=n).map(|k| k as f64).product()
        }
        let (rows, targets) = data(600, 9);
        let params = Params {
            max_rounds: 5,
            max_leaves: 12,
            min_samples_leaf: 5,
            ..Params::default()
        };
        let all: Vec<usize> = (0..600).collect();
        let Ok(model) = fit(&rows, &targets, &all, &[], &params, |_, _| {}) else {
            panic!("fit failed");
        };
        let m = 5;
        for x in rows.iter().take(10) {
            let phi = model.ensemble.shap(x);
            for (i, got) in phi.iter().enumerate() {
                let mut expected = 0.0;
                for subset in 0u32..(1 << m) {
                    if subset & (1 << i) != 0 {
                        continue;
                    }
                    let size = subset.count_ones() as usize;
                    let weight = factorial(size) * factorial(m - size - 1) / factorial(m);
                    for tree in &model.ensemble.trees {
                        expected += weight
                            * (value(tree, 0, x, subset | (1 << i)) - value(tree, 0, x, subset));
                    }
                }
                assert!(
                    (got - expected).abs() < 1e-9,
                    "input {i}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn bad_rows_are_refused_by_number() {
        let rows = vec![vec![1.0, 2.0], vec![1.0, f64::NAN]];
        let refused = fit(
            &rows,
            &[1.0, 2.0],
            &[0, 1],
            &[],
            &Params::default(),
            |_, _| {},
        );
        assert!(
            matches!(
                refused,
                Err(GbmError::NotFinite {
                    row: 1,
                    input: 1,
                    ..
                })
            ),
            "{refused:?}"
        );
        let short = vec![vec![1.0, 2.0], vec![1.0]];
        let refused = fit(
            &short,
            &[1.0, 2.0],
            &[0, 1],
            &[],
            &Params::default(),
            |_, _| {},
        );
        assert!(
            matches!(
                refused,
                Err(GbmError::Width {
                    row: 1,
                    got: 1,
                    expected: 2
                })
            ),
            "{refused:?}"
        );
    }
}
