//! Whether amounts differ by gender, age band or county for equal need, on historic amounts
//! (before training) and on recommended ones (from `jiuzhu recommend predict`).
//!
//! The reference for "equal need": a boosted model of the amount (log months of wage) on the
//! need factors ([`CaseFeatures::vector`]: harm, costs and income against the wage and the
//! local minimum line, household, poverty status; no region levels) *plus* the attributes as
//! explicit indicators. With need in the model, whatever the attributes still explain is
//! unequal treatment. Each group's amount is then the mean over **all** cases of the amount
//! the reference predicts with the attribute set to that group (everyone's need, only the
//! group changed); its ratio to the average over groups is the group's amount for equal need.
//!
//! Why not the other references: the category × province baseline holds only category and
//! province equal, so a group with more dependants (younger victims) would be flagged for a
//! legitimate difference; and "the same case with the attribute changed" in the recommender
//! itself is always equal, since the recommender never takes the attribute; it cannot show a
//! gap that comes through a proxy. Changing the attribute inside a reference that does see it
//! measures what either route carried.
//!
//! A group's gap is its amount for equal need against the rest of its attribute's groups
//! (women against men; one county against the others), flagged above 5%.
//!
//! Mitigation ([`mitigation`]): for an attribute with a flagged group, every group's historic
//! amounts are divided by its ratio to the groups' average for equal need before training
//! (de-biasing the target per group), so the model learns the amounts each group would have
//! had for its need; precedents still show what was given. Reweighting was not chosen: it
//! changes how much each case counts, not what a cut case was given, so a model can still
//! learn the cut.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::features::{CaseFeatures, TREE_INPUTS, feature_names};
use crate::gbm;

/// Groups with fewer cases are not judged (too few to tell a gap from chance).
pub const MIN_GROUP: usize = 30;
/// Gaps above this share are flagged.
pub const THRESHOLD: f64 = 0.05;
/// A standardised mean difference at which an input is named as a possible proxy.
const PROXY_SMD: f64 = 0.2;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FairnessError {
    #[error("{0} cases are too few for a fairness report (at least 100)")]
    TooFew(usize),
    #[error("case {case}: {reason}")]
    BadCase { case: usize, reason: String },
    #[error("the reference model: {0}")]
    Reference(#[from] gbm::GbmError),
}

/// A case as the report sees it: its need, an amount (historic or recommended), who.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub features: &'a CaseFeatures,
    pub amount_fen: i64,
    pub gender: Option<&'a str>,
    pub age: Option<u32>,
    pub county: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    Gender,
    AgeBand,
    County,
}

impl Attribute {
    pub const ALL: [Self; 3] = [Self::Gender, Self::AgeBand, Self::County];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gender => "gender",
            Self::AgeBand => "age band",
            Self::County => "county",
        }
    }

    fn group(self, subject: &Subject) -> Option<String> {
        match self {
            Self::Gender => subject.gender.map(str::to_owned),
            Self::AgeBand => subject.age.map(|a| age_band(a).to_owned()),
            Self::County => Some(subject.county.to_owned()),
        }
    }
}

pub fn age_band(age: u32) -> &'static str {
    match age {
        0..30 => "under 30",
        30..45 => "30-44",
        45..60 => "45-59",
        _ => "60 and over",
    }
}

/// One group's amounts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub attribute: Attribute,
    pub group: String,
    pub cases: usize,
    /// The group's mean months of wage over the rest's (no need held equal).
    pub raw_ratio: f64,
    /// The group's amount for equal need over the rest's (the other groups of the attribute,
    /// weighted by their cases).
    pub equal_need_ratio: f64,
    /// `equal_need_ratio - 1`.
    pub gap: f64,
    pub flagged: bool,
    /// The group's amount for equal need over the average of all groups (what mitigation
    /// divides by).
    pub to_average: f64,
}

/// An input whose values differ by group: it could stand in for the attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Proxy {
    pub attribute: Attribute,
    pub group: String,
    pub input: String,
    /// Standardised mean difference, group against the rest.
    pub difference: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub cases: usize,
    pub threshold: f64,
    pub rows: Vec<GroupRow>,
    /// Groups too small to judge, and their case counts.
    pub too_small: Vec<(Attribute, String, usize)>,
    /// The recommender's inputs that differ most by group.
    pub proxies: Vec<Proxy>,
}

impl Report {
    pub fn flagged(&self) -> impl Iterator<Item = &GroupRow> {
        self.rows.iter().filter(|r| r.flagged)
    }
}

impl GroupRow {
    /// The row as a table line: attribute, group, cases, raw ratio, ratio for equal need, gap.
    pub fn line(&self) -> String {
        format!(
            "{:<10} {:<12} {:>6} {:>10.3} {:>12.3} {:>+7.1}%{}",
            self.attribute.name(),
            self.group,
            self.cases,
            self.raw_ratio,
            self.equal_need_ratio,
            100.0 * self.gap,
            if self.flagged { "  FLAGGED" } else { "" }
        )
    }
}

/// Each attribute's groups judged (largest first), and the groups too small to judge.
type Groups = (
    Vec<(Attribute, Vec<String>)>,
    Vec<(Attribute, String, usize)>,
);

/// The groups judged for each attribute present, largest first.
fn groups(subjects: &[Subject]) -> Groups {
    let mut judged = Vec::new();
    let mut small = Vec::new();
    for attribute in Attribute::ALL {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for s in subjects {
            if let Some(g) = attribute.group(s) {
                *counts.entry(g).or_default() += 1;
            }
        }
        let mut big: Vec<(String, usize)> = Vec::new();
        for (group, n) in counts {
            if n >= MIN_GROUP {
                big.push((group, n));
            } else {
                small.push((attribute, group, n));
            }
        }
        big.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if big.len() >= 2 {
            judged.push((attribute, big.into_iter().map(|(g, _)| g).collect()));
        }
    }
    (judged, small)
}

/// The report for `subjects`; gaps above `threshold` are flagged.
pub fn report(subjects: &[Subject], threshold: f64) -> Result<Report, FairnessError> {
    if subjects.len() < 100 {
        return Err(FairnessError::TooFew(subjects.len()));
    }
    for (case, s) in subjects.iter().enumerate() {
        if s.features.wage_fen <= 0 || s.amount_fen < 0 {
            return Err(FairnessError::BadCase {
                case,
                reason: "needs a positive wage and a non-negative amount".to_owned(),
            });
        }
    }
    let (judged, too_small) = groups(subjects);
    let need: Vec<Vec<f64>> = subjects.iter().map(|s| s.features.vector()).collect();
    // The attribute indicators follow the need factors, one block per attribute.
    let mut blocks = Vec::new();
    let mut width = need.first().map_or(0, Vec::len);
    for (attribute, groups) in &judged {
        blocks.push((*attribute, width, groups.clone()));
        width += groups.len();
    }
    let row = |i: usize, set: Option<(Attribute, &str)>| -> Vec<f64> {
        let mut x = need[i].clone();
        for (attribute, _, groups) in &blocks {
            let own = attribute.group(&subjects[i]);
            let group = match set {
                Some((a, g)) if a == *attribute => Some(g.to_owned()),
                _ => own,
            };
            x.extend(
                groups
                    .iter()
                    .map(|g| f64::from(group.as_deref() == Some(g.as_str()))),
            );
        }
        x
    };
    let rows: Vec<Vec<f64>> = (0..subjects.len()).map(|i| row(i, None)).collect();
    let months: Vec<f64> = subjects
        .iter()
        .map(|s| s.amount_fen as f64 / s.features.wage())
        .collect();
    let targets: Vec<f64> = months.iter().map(|m| m.max(0.01).ln()).collect();
    let validation: Vec<usize> = (0..subjects.len()).filter(|i| i % 10 == 0).collect();
    let train: Vec<usize> = (0..subjects.len()).filter(|i| i % 10 != 0).collect();
    let reference = gbm::fit(
        &rows,
        &targets,
        &train,
        &validation,
        &gbm::Params::default(),
        |_, _| {},
    )?
    .ensemble;

    let mut out = Vec::new();
    for (attribute, _, groups) in &blocks {
        let members: Vec<(usize, String)> = subjects
            .iter()
            .enumerate()
            .filter_map(|(i, s)| attribute.group(s).map(|g| (i, g)))
            .filter(|(_, g)| groups.contains(g))
            .collect();
        let mut amounts = Vec::new();
        for group in groups {
            let amount = (0..subjects.len())
                .map(|i| {
                    let x = row(i, Some((*attribute, group)));
                    reference.predict(&x).exp() * subjects[i].features.wage()
                })
                .sum::<f64>()
                / subjects.len() as f64;
            let in_group: Vec<usize> = members
                .iter()
                .filter(|(_, g)| g == group)
                .map(|(i, _)| *i)
                .collect();
            let raw = in_group.iter().map(|i| months[*i]).sum::<f64>();
            amounts.push((group, in_group.len(), amount, raw));
        }
        let total = |skip: Option<&String>| {
            let kept = amounts.iter().filter(|(g, ..)| Some(*g) != skip);
            let (mut cases, mut need, mut raw) = (0usize, 0.0, 0.0);
            for (_, n, amount, months) in kept {
                cases += n;
                need += amount * *n as f64;
                raw += months;
            }
            let per = cases.max(1) as f64;
            (need / per, raw / per)
        };
        let (average, _) = total(None);
        for (group, cases, amount, raw) in &amounts {
            let (rest, rest_raw) = total(Some(group));
            let ratio = amount / rest.max(f64::MIN_POSITIVE);
            out.push(GroupRow {
                attribute: *attribute,
                group: (*group).clone(),
                cases: *cases,
                raw_ratio: (raw / (*cases).max(1) as f64) / rest_raw.max(f64::MIN_POSITIVE),
                equal_need_ratio: ratio,
                gap: ratio - 1.0,
                flagged: (ratio - 1.0).abs() > threshold,
                to_average: amount / average.max(f64::MIN_POSITIVE),
            });
        }
    }
    Ok(Report {
        cases: subjects.len(),
        threshold,
        rows: out,
        too_small,
        proxies: proxies(subjects, &judged),
    })
}

/// The recommender's inputs whose values differ most between a group and the rest.
fn proxies(subjects: &[Subject], judged: &[(Attribute, Vec<String>)]) -> Vec<Proxy> {
    let inputs: Vec<Vec<f64>> = subjects.iter().map(|s| s.features.tree_vector()).collect();
    let mut found = Vec::new();
    for (attribute, groups) in judged {
        for group in groups {
            let inside: Vec<bool> = subjects
                .iter()
                .map(|s| attribute.group(s).as_deref() == Some(group.as_str()))
                .collect();
            let mut best: Vec<Proxy> = Vec::new();
            for (j, (name, _)) in TREE_INPUTS.iter().enumerate() {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for (x, is) in inputs.iter().zip(&inside) {
                    if *is { a.push(x[j]) } else { b.push(x[j]) }
                }
                let stats = |v: &[f64]| {
                    let n = v.len().max(1) as f64;
                    let mean = v.iter().sum::<f64>() / n;
                    (mean, v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
                };
                let ((ma, va), (mb, vb)) = (stats(&a), stats(&b));
                let pooled = (0.5 * (va + vb)).sqrt();
                if pooled > 1e-12 {
                    let difference = (ma - mb) / pooled;
                    if difference.abs() >= PROXY_SMD {
                        best.push(Proxy {
                            attribute: *attribute,
                            group: group.clone(),
                            input: (*name).to_owned(),
                            difference,
                        });
                    }
                }
            }
            best.sort_by(|x, y| y.difference.abs().total_cmp(&x.difference.abs()));
            best.truncate(3);
            found.extend(best);
        }
    }
    found
}

/// Per case, the factor on its historic amount that undoes the gaps of every attribute with
/// a flagged group: each group of that attribute is brought to the groups' average for equal
/// need (1 for other cases); for `TrainOptions::target_factors`.
pub fn mitigation(subjects: &[Subject], report: &Report) -> Vec<f64> {
    let corrected: Vec<Attribute> = Attribute::ALL
        .into_iter()
        .filter(|a| report.flagged().any(|row| row.attribute == *a))
        .collect();
    subjects
        .iter()
        .map(|s| {
            report
                .rows
                .iter()
                .filter(|row| corrected.contains(&row.attribute))
                .filter(|row| row.attribute.group(s).as_deref() == Some(row.group.as_str()))
                .map(|row| 1.0 / row.to_average.max(1e-3))
                .product()
        })
        .collect()
}

/// The inputs named as possible proxies whatever the data shows (documented, so that none is
/// a silent stand-in): which protected attribute each could carry.
pub const KNOWN_PROXIES: [(&str, &str); 5] = [
    (
        "county",
        "money in yuan beside the same money in wages reveals the wage, hence the province (and the county where a province has one); income against the minimum line uses the county's line",
    ),
    (
        "age",
        "minors, dependants and household size (younger parents), disability and serious injury",
    ),
    (
        "gender",
        "victim died and dependants (most victims killed are men)",
    ),
    (
        "county",
        "registered poor, monitored and minimum living allowance (poorer counties)",
    ),
    (
        "all",
        "the region code, the wage and the minimum line are never inputs on their own",
    ),
];

/// The need factors the reference holds equal (for the report's header).
pub fn need_factors() -> Vec<String> {
    feature_names()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Bias, Synthetic, synthetic};

    fn subjects<'a>(cases: &'a [Synthetic], amounts: &[i64]) -> Vec<Subject<'a>> {
        cases
            .iter()
            .zip(amounts)
            .map(|(s, amount)| Subject {
                features: &s.case.features,
                amount_fen: *amount,
                gender: Some(&s.person.gender),
                age: Some(u32::from(s.person.age)),
                county: &s.case.features.region,
            })
            .collect()
    }

    fn row<'a>(report: &'a Report, attribute: Attribute, group: &str) -> &'a GroupRow {
        let found = report
            .rows
            .iter()
            .find(|r| r.attribute == attribute && r.group == group);
        let Some(found) = found else {
            panic!("no row for {group}: {report:?}");
        };
        found
    }

    /// A 12% cut for one county and 8% for women are found for equal need; the age bands,
    /// whose raw amounts differ because younger victims have more dependants, are not flagged;
    /// de-biasing the target removes every flag.
    #[test]
    fn a_historic_cut_is_found_for_equal_need_and_mitigation_removes_it() {
        let bias = Bias {
            counties: vec![("110105".to_owned(), 0.12)],
            women: 0.08,
        };
        let cases = synthetic(4000, 5, &bias);
        let amounts: Vec<i64> = cases.iter().map(|s| s.case.amount_fen).collect();
        let people = subjects(&cases, &amounts);
        let Ok(before) = report(&people, THRESHOLD) else {
            panic!("no report");
        };
        let county = row(&before, Attribute::County, "110105");
        assert!(
            county.flagged && (-0.17..-0.07).contains(&county.gap),
            "{county:?}"
        );
        let women = row(&before, Attribute::Gender, "female");
        assert!(
            women.flagged && (-0.13..-0.04).contains(&women.gap),
            "{women:?}"
        );
        assert!(
            before
                .rows
                .iter()
                .filter(|r| r.attribute == Attribute::AgeBand)
                .all(|r| !r.flagged),
            "{before:?}"
        );
        assert!(
            before
                .rows
                .iter()
                .filter(|r| r.attribute == Attribute::County && r.group != "110105")
                .all(|r| !r.flagged),
            "{before:?}"
        );
        // The county's proxies among the recommender's inputs are named.
        assert!(
            before
                .proxies
                .iter()
                .any(|p| p.group == "110105" && p.input.ends_with("in yuan")),
            "{:?}",
            before.proxies
        );

        let factors = mitigation(&people, &before);
        let corrected: Vec<i64> = amounts
            .iter()
            .zip(&factors)
            .map(|(a, f)| (*a as f64 * f).round() as i64)
            .collect();
        let Ok(after) = report(&subjects(&cases, &corrected), THRESHOLD) else {
            panic!("no report");
        };
        assert_eq!(after.flagged().count(), 0, "{after:?}");
    }

    #[test]
    fn history_without_a_cut_has_no_flag() {
        let cases = synthetic(3000, 8, &Bias::default());
        let amounts: Vec<i64> = cases.iter().map(|s| s.case.amount_fen).collect();
        let Ok(report) = report(&subjects(&cases, &amounts), THRESHOLD) else {
            panic!("no report");
        };
        assert_eq!(report.rows.len(), 2 + 4 + 6, "{report:?}");
        assert_eq!(report.flagged().count(), 0, "{report:?}");
    }
}
