//! Relief method and amount recommendation ("matching analysis of relief method and amount"),
//! learned from past relief cases. Pure Rust, no I/O.
//!
//! - The amount: gradient-boosted trees ([`gbm`], written here so the stored model is our own
//!   versioned format) on months of the regional wage or their log, explained per case by each
//!   factor's exact Shapley value; a ridge regression and a category-and-region median
//!   baseline are kept as references in every evaluation.
//! - The methods: voted by the most similar decided cases (shown as precedents) and, when the
//!   history carries follow-up outcomes, ranked by the effect similar cases achieved with and
//!   without each method (the closed loop of the paper's "effect statistics fed back").
//! - [`fairness`]: amounts for equal need by gender, age band and county, on history and on
//!   recommendations, with a mitigation that de-biases the target per group.
//! - [`generate`]: synthetic past cases with a documented truth (needs, the true effect of any
//!   choice of methods, optional historic bias) for tests, demos and measurement.

pub mod fairness;
pub mod features;
pub mod gbm;
pub mod generate;
pub mod model;

pub use features::{CATEGORIES, CaseFeatures, METHODS, PastCase};
pub use model::{
    AmountTrees, Baseline, EffectEvaluation, EffectModel, Evaluation, Factor, Learner,
    MODEL_FORMAT, MethodEffect, Recommendation, Recommender, Similar, Target, TargetTried,
    TrainError, TrainOptions, evaluate, evaluate_effects,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn split() -> (Vec<PastCase>, Vec<PastCase>) {
        let mut cases = generate::past_cases(6000, 11);
        let held_out = cases.split_off(5000);
        (cases, held_out)
    }

    #[test]
    fn the_model_beats_the_baseline_by_a_wide_margin() {
        let (train, held_out) = split();
        let model = Recommender::train(&train, "test", |_, _| {});
        let Ok(model) = model else {
            panic!("training failed: {model:?}");
        };
        let evaluation = evaluate(&model, &Baseline::fit(&train), &held_out);
        assert!(
            evaluation.amount_mae_fen < 0.7 * evaluation.baseline_amount_mae_fen,
            "{evaluation:?}"
        );
        // Imitating the decisions, the vote beats the category's usual methods.
        assert!(
            evaluation.decisions_only_method_f1 > evaluation.baseline_method_f1 + 0.05,
            "{evaluation:?}"
        );
    }

    /// The closed loop: a model that learnt from follow-up picks methods with a higher true
    /// effect than the decisions (with their mistakes) would, on cases it has not seen; and
    /// each recommendation says what similar cases achieved.
    #[test]
    fn follow_up_outcomes_lead_to_methods_with_a_higher_true_effect() {
        let synthetic = generate::synthetic(6000, 11, &generate::Bias::default());
        let (train, test) = synthetic.split_at(5000);
        let train: Vec<PastCase> = train.iter().map(|s| s.case.clone()).collect();
        let Ok(model) = Recommender::train(&train, "loop", |_, _| {}) else {
            panic!("training failed");
        };
        let Some(e) = evaluate_effects(&model, test.iter().map(|s| (&s.case, &s.truth))) else {
            panic!("the model learnt nothing from follow-up");
        };
        assert!(e.gain - e.gain_half_width > 2.0, "{e:?}");
        assert!(
            e.closed_loop > e.as_decided && e.closed_loop <= e.best_possible,
            "{e:?}"
        );
        assert!(e.worse_share < 0.15, "{e:?}");
        let r = model.recommend(&test[0].case.features, i64::MAX);
        assert!(
            r.effect_note
                .as_deref()
                .is_some_and(|n| n.contains("similar followed-up cases")),
            "{r:?}"
        );
        assert_eq!(r.method_effects.len(), METHODS.len());
        assert!(r.method_effects.iter().any(|m| m.gain.is_some()), "{r:?}");

        // Without outcomes the same trainer only imitates the decisions.
        let stripped: Vec<PastCase> = train
            .iter()
            .cloned()
            .map(|mut c| {
                c.outcome = None;
                c
            })
            .collect();
        let Ok(blind) = Recommender::train(&stripped, "blind", |_, _| {}) else {
            panic!("training failed");
        };
        assert!(blind.effect_model().is_none());
        assert!(
            blind
                .recommend(&test[0].case.features, i64::MAX)
                .effect_note
                .is_none()
        );
    }

    #[test]
    fn a_recommendation_explains_itself_and_is_clamped_out_loud() {
        let (train, held_out) = split();
        let Ok(model) = Recommender::train(&train, "test", |_, _| {}) else {
            panic!("training failed");
        };
        let case = &held_out[0].features;
        let free = model.recommend(case, i64::MAX);
        assert_eq!(free.similar.len(), 5);
        assert!(
            free.similar
                .windows(2)
                .all(|w| w[0].distance <= w[1].distance)
        );
        assert!(!free.factors.is_empty());
        assert!(free.low_fen <= free.amount_fen && free.amount_fen <= free.high_fen);
        assert!(free.clamped.is_none());
        assert_eq!(free.model_version, "test");
        let cap = free.amount_fen / 2;
        let clamped = model.recommend(case, cap);
        assert_eq!(clamped.amount_fen, cap);
        assert!(clamped.high_fen <= cap);
        assert!(
            clamped
                .clamped
                .is_some_and(|why| why.contains("clamped to the cap"))
        );
    }

    /// Precedents are compared in months of their own wage: cases that all got six months of
    /// their province's wage are six months to a case of any province.
    #[test]
    fn precedents_are_scaled_by_their_own_wage() {
        let mut cases = generate::past_cases(200, 5);
        for (n, case) in cases.iter_mut().enumerate() {
            case.features.wage_fen = if n % 2 == 0 { 400_000 } else { 1_200_000 };
            case.amount_fen = 6 * case.features.wage_fen;
        }
        let Ok(model) = Recommender::train(&cases, "wages", |_, _| {}) else {
            panic!("training failed");
        };
        for wage in [400_000, 1_200_000, 800_000] {
            let mut features = cases[0].features.clone();
            features.wage_fen = wage;
            let months = model.neighbour_months(&features);
            assert!(
                (months - 6.0).abs() < 1e-9,
                "{months} months at a wage of {wage}"
            );
        }
    }

    /// Every factor is an exact share: the base plus the factors is the amount, to the fen,
    /// for the trees and for the ridge.
    #[test]
    fn factors_add_up_to_the_amount_to_the_fen() {
        let (train, held_out) = split();
        let ridge_only = TrainOptions {
            learner: Learner::Ridge,
            ..TrainOptions::default()
        };
        for options in [TrainOptions::default(), ridge_only] {
            let Ok(model) = Recommender::train_with(&train, "sum", &options, |_, _| {}) else {
                panic!("training failed");
            };
            for case in held_out.iter().take(200) {
                let r = model.recommend(&case.features, i64::MAX);
                let total: i64 = r.factors.iter().map(|f| f.fen).sum();
                if r.amount_fen > 0 {
                    assert_eq!(r.base_fen + total, r.amount_fen, "{r:?}");
                }
                assert!(
                    r.factors
                        .windows(2)
                        .all(|w| w[0].fen.abs() >= w[1].fen.abs())
                );
            }
        }
    }

    /// The trees learn what the ridge cannot (the generator's minor-fault factor multiplies
    /// everything, and amounts are floored and capped): a lower held-out error.
    #[test]
    fn the_trees_do_better_than_the_ridge_they_keep_as_reference() {
        let (train, held_out) = split();
        let Ok(model) = Recommender::train(&train, "trees", |_, _| {}) else {
            panic!("training failed");
        };
        let evaluation = evaluate(&model, &Baseline::fit(&train), &held_out);
        assert!(evaluation.amount_model.contains("trees"), "{evaluation:?}");
        assert!(
            evaluation.amount_mae_fen < 0.95 * evaluation.ridge_amount_mae_fen,
            "{evaluation:?}"
        );
    }

    /// A format 1 file (ridge only, no `format`) still loads and recommends; a newer format
    /// is refused with a message that says what to do.
    #[test]
    fn old_model_files_load_and_newer_ones_are_refused_clearly() {
        let (train, held_out) = split();
        let ridge_only = TrainOptions {
            learner: Learner::Ridge,
            ..TrainOptions::default()
        };
        let Ok(model) = Recommender::train_with(&train, "old", &ridge_only, |_, _| {}) else {
            panic!("training failed");
        };
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::to_value(&model) else {
            panic!("a model is an object");
        };
        fields.remove("format");
        let old = serde_json::Value::Object(fields.clone());
        let loaded: Result<Recommender, _> = serde_json::from_value(old);
        let Ok(loaded) = loaded else {
            panic!("a format 1 file did not load: {loaded:?}");
        };
        assert_eq!(loaded.format, 1);
        assert_eq!(
            loaded.recommend(&held_out[0].features, i64::MAX),
            model.recommend(&held_out[0].features, i64::MAX)
        );
        fields.insert("format".to_owned(), serde_json::json!(MODEL_FORMAT + 1));
        let newer: Result<Recommender, _> =
            serde_json::from_value(serde_json::Value::Object(fields));
        let message = newer.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("newer than this program reads") && message.contains("retrain"),
            "{message}"
        );
    }

    #[test]
    fn too_few_cases_are_refused_and_generation_is_seeded() {
        let few = generate::past_cases(10, 1);
        assert_eq!(
            Recommender::train(&few, "x", |_, _| {}).err(),
            Some(TrainError::TooFew(10))
        );
        assert_eq!(generate::past_cases(20, 5), generate::past_cases(20, 5));
        assert_ne!(generate::past_cases(20, 5), generate::past_cases(20, 6));
    }
}
