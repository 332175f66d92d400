//! `jiuzhu gen relief-history`, `jiuzhu recommend history`, `train`, `predict` and `report`:
//! synthetic past relief cases (with a historic bias on request), a model trained on past cases
//! with its evaluation against the ridge and the baseline on held-out cases (and, with
//! follow-up outcomes, the closed loop against the decisions), that model's recommendation for
//! each case of a file (amount, methods, factors, precedents) so that recommendations can be
//! audited offline, and the fairness report of recommended and historic amounts.
//!
//! History files are JSON Lines (`.jsonl`, one past case per line) or CSV (`.csv`, a header
//! row), with the fields of `jiuzhu_recommend::PastCase`: `case_id`, `category`, `region`,
//! `deceased`, `serious_injury`, `disability_grade` (0–10), `medical_costs_fen`,
//! `property_loss_fen`, `compensation_received_fen`, `minor_fault`, `income_per_head_fen`
//! (yearly), `household_size`, `dependants`, `minors`, `registered_poor`, `monitored`,
//! `minimum_living`, `wage_fen` and `minimum_line_fen` (monthly), `amount_fen`, `methods`
//! (names; in CSV separated by `;`), and optionally `outcome` (JSON Lines only: `effect_score`,
//! `scoring_method`, `trend`, `last_visit`, `months_since_payment`). Beside the case, never
//! model inputs: `gender`, `age`, `county` (for the fairness report; `county` defaults to
//! `region`) and `truth` (the generator's, to score the methods picked). Booleans are
//! `true`/`false`. A bad line is reported with its number and field. Cases to predict for have
//! the same fields; `amount_fen` and `methods` are optional there (when given, they are written
//! beside the recommendation).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use jiuzhu_recommend::{
    Baseline, CaseFeatures, Learner, PastCase, Recommender, TrainOptions, evaluate,
    evaluate_effects, fairness, generate,
};
use serde::de::DeserializeOwned;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Past cases (JSON Lines).
    #[arg(long)]
    history: PathBuf,
    /// Where to write the model (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Share of the cases held out for evaluation (the last ones in the file).
    #[arg(long, default_value_t = 0.2)]
    holdout: f64,
    /// Model version recorded with every recommendation (default: from the time of training).
    #[arg(long)]
    version: Option<String>,
    /// Held-out cases evaluated at most (each is compared with every training case).
    #[arg(long, default_value_t = 5000)]
    evaluate: usize,
    /// Ignore follow-up outcomes: methods imitate the decisions (to compare with the closed
    /// loop).
    #[arg(long)]
    decisions_only: bool,
    /// The amount from the ridge regression instead of the trees.
    #[arg(long)]
    ridge: bool,
    /// Mitigate a historic bias: for gender, age band or county with a group whose amounts for
    /// equal need differ by more than 5% from the rest, every group's historic amounts are
    /// brought to the groups' average before learning (precedents keep what was given).
    #[arg(long)]
    debias: bool,
}

pub fn write_history(cases: u64, seed: u64, out: Option<&Path>) -> anyhow::Result<()> {
    write_synthetic(cases, seed, &generate::Bias::default(), out)
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Number of cases.
    #[arg(long, default_value_t = 10_000)]
    cases: u64,
    /// Seed: the same seed gives the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file (JSON Lines).
    #[arg(long)]
    out: PathBuf,
    /// A historic cut for one county, as `REGION:SHARE` (`522325:0.12` gives that county's
    /// cases 12% less than their need); repeatable.
    #[arg(long = "cut-county", value_parser = county_cut)]
    cut_county: Vec<(String, f64)>,
    /// A historic cut for women (`0.08`: 8% less).
    #[arg(long, default_value_t = 0.0)]
    cut_women: f64,
}

fn county_cut(text: &str) -> Result<(String, f64), String> {
    let (region, share) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not REGION:SHARE"))?;
    let share: f64 = share
        .parse()
        .map_err(|_| format!("`{share}` is not a share such as 0.12"))?;
    if !(0.0..1.0).contains(&share) {
        return Err(format!("a cut of {share} is not between 0 and 1"));
    }
    Ok((region.to_owned(), share))
}

/// Synthetic history with a historic bias built in, to show the fairness report finding it.
pub fn write_biased_history(args: HistoryArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..1.0).contains(&args.cut_women),
        "--cut-women must be between 0 and 1"
    );
    let bias = generate::Bias {
        counties: args.cut_county,
        women: args.cut_women,
    };
    write_synthetic(args.cases, args.seed, &bias, Some(&args.out))?;
    println!("wrote {} cases to {}", args.cases, args.out.display());
    Ok(())
}

/// Each case with the person (gender, age) and the generator's truth beside it: neither is a
/// model input; the person is for the fairness report, the truth for scoring methods.
fn write_synthetic(
    cases: u64,
    seed: u64,
    bias: &generate::Bias,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    for synthetic in generate::synthetic(cases, seed, bias) {
        let mut line = serde_json::to_value(&synthetic.case)?;
        if let Some(fields) = line.as_object_mut() {
            fields.insert("gender".to_owned(), synthetic.person.gender.into());
            fields.insert("age".to_owned(), synthetic.person.age.into());
            fields.insert("truth".to_owned(), serde_json::to_value(&synthetic.truth)?);
        }
        serde_json::to_writer(&mut sink, &line)?;
        sink.write_all(b"\n")?;
    }
    sink.flush()?;
    Ok(())
}

/// A case from its fields, an error naming the field that is wrong. The features are
/// flattened into the case, where serde loses the field's name: they are read alone to find it.
fn case_from<T: DeserializeOwned>(value: serde_json::Value) -> anyhow::Result<T> {
    let named = |error: &serde_path_to_error::Error<serde_json::Error>| {
        let path = error.path().to_string();
        (path != ".").then(|| anyhow::anyhow!("field {path}: {}", error.inner()))
    };
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(case) => Ok(case),
        Err(error) => Err(named(&error)
            .or_else(|| {
                serde_path_to_error::deserialize::<_, CaseFeatures>(value)
                    .err()
                    .and_then(|inner| named(&inner))
            })
            .unwrap_or_else(|| anyhow::anyhow!("{}", error.inner()))),
    }
}

/// What is beside a case, an error naming the field that is wrong.
fn beside_from(value: serde_json::Value) -> anyhow::Result<Beside> {
    serde_path_to_error::deserialize::<_, Beside>(value)
        .map_err(|error| anyhow::anyhow!("field {}: {}", error.path(), error.inner()))
}

/// The fields a history or case file may carry (the rest are reported, not used).
fn known_fields() -> std::collections::BTreeSet<String> {
    let case = PastCase {
        case_id: String::new(),
        features: CaseFeatures::default(),
        amount_fen: 0,
        methods: Vec::new(),
        outcome: Some(Default::default()),
    };
    match serde_json::to_value(case) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Default::default(),
    }
}

/// Fields beside a case that the model never takes as inputs: the person's protected
/// attributes (carried into predictions for the fairness report) and, in synthetic history,
/// the generator's truth (to score the methods recommended).
#[derive(Debug, Default, Clone, serde::Deserialize)]
struct Beside {
    #[serde(default)]
    gender: Option<String>,
    #[serde(default)]
    age: Option<u32>,
    #[serde(default)]
    county: Option<String>,
    #[serde(default)]
    truth: Option<generate::Truth>,
}

/// Cases read from a file, what was beside each, and the fields the file had that the model
/// does not use.
struct Read<T> {
    cases: Vec<T>,
    beside: Vec<Beside>,
    unused: std::collections::BTreeSet<String>,
}

impl<T> Read<T> {
    /// Says on stderr which fields were left out: a field such as gender or age is never an
    /// input, and the user should know it was not silently taken.
    fn report_unused(&self, path: &Path) {
        if !self.unused.is_empty() {
            let names: Vec<&str> = self
                .unused
                .iter()
                .map(|name| match name.as_str() {
                    "truth" => "truth (the generator's, used only to score the methods picked)",
                    other => other,
                })
                .collect();
            eprintln!(
                "{}: fields the model does not use, left out: {}",
                path.display(),
                names.join(", ")
            );
        }
    }
}

fn read_csv<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Read<T>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let known = known_fields();
    let unused = headers
        .iter()
        .filter(|h| !known.contains(*h))
        .map(str::to_owned)
        .collect();
    let (mut cases, mut beside) = (Vec::new(), Vec::new());
    for (n, row) in reader.records().enumerate() {
        let line = n + 2;
        let row = row.with_context(|| format!("{} line {line}", path.display()))?;
        let mut fields = serde_json::Map::new();
        for (name, cell) in headers.iter().zip(row.iter()) {
            let value = match name {
                "case_id" | "category" | "region" | "gender" | "county" => {
                    serde_json::Value::String(cell.to_owned())
                }
                "age" if cell.trim().is_empty() => serde_json::Value::Null,
                "methods" => serde_json::Value::Array(
                    cell.split(';')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(|m| serde_json::Value::String(m.to_owned()))
                        .collect(),
                ),
                _ => serde_json::from_str(cell.trim()).with_context(|| {
                    format!(
                        "{} line {line}: field {name}: `{cell}` is not a number or true/false",
                        path.display()
                    )
                })?,
            };
            fields.insert(name.to_owned(), value);
        }
        let value = serde_json::Value::Object(fields);
        let case: T =
            case_from(value.clone()).with_context(|| format!("{} line {line}", path.display()))?;
        cases.push(case);
        beside.push(beside_from(value).with_context(|| format!("{} line {line}", path.display()))?);
    }
    Ok(Read {
        cases,
        beside,
        unused,
    })
}

fn read_history<T: DeserializeOwned>(path: &Path) -> anyhow::Result<Read<T>> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return read_csv(path);
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let known = known_fields();
    let mut read = Read {
        cases: Vec::new(),
        beside: Vec::new(),
        unused: Default::default(),
    };
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{} line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let (case, beside): (T, Beside) = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(anyhow::Error::from)
            .and_then(|value| {
                if let Some(fields) = value.as_object() {
                    read.unused
                        .extend(fields.keys().filter(|k| !known.contains(*k)).cloned());
                }
                Ok((case_from(value.clone())?, beside_from(value)?))
            })
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        read.cases.push(case);
        read.beside.push(beside);
    }
    Ok(read)
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.01..=0.5).contains(&args.holdout),
        "--holdout must be between 0.01 and 0.5"
    );
    let read: Read<PastCase> = read_history(&args.history)?;
    read.report_unused(&args.history);
    let mut cases = read.cases;
    let mut beside = read.beside;
    let held = ((cases.len() as f64) * args.holdout).round() as usize;
    let held_out = cases.split_off(cases.len().saturating_sub(held));
    let held_beside = beside.split_off(cases.len());
    let version = args.version.unwrap_or_else(|| {
        format!(
            "recommender-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        )
    });
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("boosting {bar:40} round {pos}/{len} (stops early) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    // History is judged before training: amounts for equal need by gender, age band, county.
    let people: Vec<fairness::Subject> = cases
        .iter()
        .zip(&beside)
        .map(|(case, beside)| subject(&case.features, case.amount_fen, beside))
        .collect();
    let history_report = if people.len() >= 100 {
        let report = fairness::report(&people, fairness::THRESHOLD)?;
        print_fairness("history before training (historic amounts)", &report);
        Some(report)
    } else {
        None
    };
    let target_factors = match (&history_report, args.debias) {
        (Some(report), true) if report.flagged().count() > 0 => {
            let factors = fairness::mitigation(&people, report);
            let corrected: Vec<fairness::Subject> = people
                .iter()
                .zip(&factors)
                .map(|(p, f)| fairness::Subject {
                    amount_fen: (p.amount_fen as f64 * f).round() as i64,
                    ..*p
                })
                .collect();
            print_fairness(
                "history after mitigation (the targets learnt from)",
                &fairness::report(&corrected, fairness::THRESHOLD)?,
            );
            Some(factors)
        }
        (_, true) => {
            println!("--debias: no gap over 5% in the history, nothing to mitigate");
            None
        }
        _ => None,
    };
    let options = TrainOptions {
        target_factors,
        use_outcomes: !args.decisions_only,
        learner: if args.ridge {
            Learner::Ridge
        } else {
            Learner::Trees
        },
        ..TrainOptions::default()
    };
    let model = Recommender::train_with(&cases, &version, &options, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let trained_in = started.elapsed();
    let baseline = Baseline::fit(&cases);
    let evaluated = &held_out[..held_out.len().min(args.evaluate)];
    let evaluation = evaluate(&model, &baseline, evaluated);

    let mut latencies: Vec<u128> = held_out
        .iter()
        .take(2000)
        .map(|case| {
            let started = Instant::now();
            let _ = model.recommend(&case.features, i64::MAX);
            started.elapsed().as_micros()
        })
        .collect();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    serde_json::to_writer(BufWriter::new(file), &model)?;
    println!(
        "model {version}: trained on {} cases in {:.1?}; held out {}, evaluated on {}",
        cases.len(),
        trained_in,
        held_out.len(),
        evaluation.held_out
    );
    println!("amount model: {}", evaluation.amount_model);
    if let Some(trees) = model.trees() {
        for tried in &trees.tried {
            println!(
                "  target {}: {} rounds, validation MAE {:.0} fen{}",
                tried.target.label(),
                tried.rounds,
                tried.validation_mae_fen,
                if tried.target == trees.target {
                    " (chosen)"
                } else {
                    ""
                }
            );
        }
    }
    println!(
        "amount MAE on held-out cases: model {:.0} fen, ridge {:.0} fen, nearest cases {:.0} fen, baseline {:.0} fen (the model's error is {:.0}% of the baseline's, {:.0}% of the ridge's)",
        evaluation.amount_mae_fen,
        evaluation.ridge_amount_mae_fen,
        evaluation.neighbour_amount_mae_fen,
        evaluation.baseline_amount_mae_fen,
        100.0 * evaluation.amount_mae_fen / evaluation.baseline_amount_mae_fen.max(1.0),
        100.0 * evaluation.amount_mae_fen / evaluation.ridge_amount_mae_fen.max(1.0)
    );
    match model.effect_model() {
        Some(effects) => println!(
            "methods: ranked by the effect of {} followed-up past cases (closed loop)",
            effects.followed_up
        ),
        None => println!(
            "methods: voted by similar decided cases ({})",
            if args.decisions_only {
                "--decisions-only"
            } else {
                "too few follow-up outcomes in the history"
            }
        ),
    }
    println!(
        "method F1 against the methods decided: model {:.3}, decisions-only vote {:.3}, baseline {:.3}{}",
        evaluation.method_f1,
        evaluation.decisions_only_method_f1,
        evaluation.baseline_method_f1,
        if model.effect_model().is_some() {
            " (the closed loop departs from decisions where their effect was poor)"
        } else {
            ""
        }
    );
    let truths: Vec<(&PastCase, &generate::Truth)> = evaluated
        .iter()
        .zip(&held_beside)
        .filter_map(|(case, beside)| beside.truth.as_ref().map(|truth| (case, truth)))
        .collect();
    if let Some(e) = evaluate_effects(&model, truths) {
        println!(
            "true expected effect of the methods picked for {} held-out cases: closed loop {:.2}, decisions-only {:.2} ({:+.2} ± {:.2}; better for {:.0}% of cases, worse for {:.0}%), as decided {:.2}, best possible {:.2}",
            e.cases,
            e.closed_loop,
            e.decisions_only,
            e.gain,
            e.gain_half_width,
            100.0 * e.better_share,
            100.0 * e.worse_share,
            e.as_decided,
            e.best_possible
        );
    }
    println!(
        "recommendation latency over {} cases: p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        at(0.5),
        at(0.99)
    );
    if evaluated.len() >= 100 {
        let amounts: Vec<i64> = evaluated
            .iter()
            .map(|case| model.recommend(&case.features, i64::MAX).amount_fen)
            .collect();
        let recommended: Vec<fairness::Subject> = evaluated
            .iter()
            .zip(&held_beside)
            .zip(&amounts)
            .map(|((case, beside), amount)| subject(&case.features, *amount, beside))
            .collect();
        print_fairness(
            "the model's recommendations for the held-out cases",
            &fairness::report(&recommended, fairness::THRESHOLD)?,
        );
    }

    println!("wrote {}", args.out.display());
    Ok(())
}

fn subject<'a>(
    features: &'a CaseFeatures,
    amount_fen: i64,
    beside: &'a Beside,
) -> fairness::Subject<'a> {
    fairness::Subject {
        features,
        amount_fen,
        gender: beside.gender.as_deref(),
        age: beside.age,
        county: beside.county.as_deref().unwrap_or(&features.region),
    }
}

/// The fairness table: each group's amount for equal need against the rest, gaps over the
/// threshold flagged, and the inputs that could stand in for an attribute.
fn print_fairness(title: &str, report: &fairness::Report) {
    println!(
        "fairness, {title}: amount for equal need by group against the rest of its attribute, {} cases (gaps over {:.0}% flagged)",
        report.cases,
        100.0 * report.threshold
    );
    println!(
        "  {:<10} {:<12} {:>6} {:>10} {:>12} {:>8}",
        "attribute", "group", "cases", "raw ratio", "equal need", "gap"
    );
    for row in &report.rows {
        println!("  {}", row.line());
    }
    for (attribute, group, cases) in &report.too_small {
        println!(
            "  {:<10} {:<12} {:>6}  too few to judge",
            attribute.name(),
            group,
            cases
        );
    }
    if !report.proxies.is_empty() {
        let named: Vec<String> = report
            .proxies
            .iter()
            .map(|p| {
                format!(
                    "{} for {} {} ({:+.2} sd)",
                    p.input,
                    p.attribute.name(),
                    p.group,
                    p.difference
                )
            })
            .collect();
        println!(
            "  inputs that differ by group (possible proxies): {}",
            named.join("; ")
        );
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Predictions written by `jiuzhu recommend predict` (their cases' gender, age and county
    /// are carried there when the cases file had them).
    #[arg(long)]
    predictions: PathBuf,
    /// The history the model learnt from: its historic amounts are judged the same way.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Gaps over this share are flagged.
    #[arg(long, default_value_t = fairness::THRESHOLD)]
    threshold: f64,
}

/// A line of predict's output, as the fairness report reads it.
#[derive(Debug, serde::Deserialize)]
struct Predicted {
    amount_fen: i64,
    features: CaseFeatures,
    #[serde(default)]
    gender: Option<String>,
    #[serde(default)]
    age: Option<u32>,
    #[serde(default)]
    county: Option<String>,
}

/// The fairness report of a predictions file (and of the history, when given).
pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.threshold > 0.0 && args.threshold < 1.0,
        "--threshold must be between 0 and 1"
    );
    if let Some(path) = &args.history {
        let read: Read<PastCase> = read_history(path)?;
        let people: Vec<fairness::Subject> = read
            .cases
            .iter()
            .zip(&read.beside)
            .map(|(case, beside)| subject(&case.features, case.amount_fen, beside))
            .collect();
        print_fairness(
            &format!("history {} (historic amounts)", path.display()),
            &fairness::report(&people, args.threshold)?,
        );
    }
    let file = std::fs::File::open(&args.predictions)
        .with_context(|| format!("opening {}", args.predictions.display()))?;
    let mut predicted = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let at = || format!("{} line {}", args.predictions.display(), n + 1);
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let mut reader = serde_json::Deserializer::from_str(&line);
        let p: Predicted = serde_path_to_error::deserialize(&mut reader)
            .map_err(|e| anyhow::anyhow!("field {}: {}", e.path(), e.inner()))
            .with_context(at)?;
        predicted.push(p);
    }
    let people: Vec<fairness::Subject> = predicted
        .iter()
        .map(|p| fairness::Subject {
            features: &p.features,
            amount_fen: p.amount_fen,
            gender: p.gender.as_deref(),
            age: p.age,
            county: p.county.as_deref().unwrap_or(&p.features.region),
        })
        .collect();
    if people.iter().all(|p| p.gender.is_none() && p.age.is_none()) {
        println!(
            "{}: no gender or age carried (the cases file had none); judging by county only",
            args.predictions.display()
        );
    }
    let report = fairness::report(&people, args.threshold)?;
    print_fairness(
        &format!("recommendations {}", args.predictions.display()),
        &report,
    );
    println!("the model's inputs that could stand in for a protected attribute (never silent):");
    for (attribute, inputs) in fairness::KNOWN_PROXIES {
        println!("  {attribute}: {inputs}");
    }
    let flagged = report.flagged().count();
    println!(
        "{flagged} group{} with a gap over {:.0}%",
        if flagged == 1 { "" } else { "s" },
        100.0 * args.threshold
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// Cases to recommend for (the history format, JSON Lines or CSV; amounts and methods
    /// optional).
    #[arg(long)]
    cases: PathBuf,
    /// A model written by `jiuzhu recommend train`.
    #[arg(long)]
    model: PathBuf,
    /// Where to write one recommendation per case, in the cases' order (JSON Lines).
    #[arg(long)]
    out: PathBuf,
    /// The cap every amount is clamped to, in fen (each clamp is said in `clamped`).
    #[arg(long)]
    cap_fen: Option<i64>,
}

/// A case to recommend for: its features, and what was given if it was decided.
#[derive(Debug, serde::Deserialize)]
struct CaseToPredict {
    case_id: String,
    #[serde(flatten)]
    features: CaseFeatures,
    #[serde(default)]
    amount_fen: Option<i64>,
    #[serde(default)]
    methods: Option<Vec<String>>,
}

/// Writes the model's recommendation for every case of a file.
pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let cap = args.cap_fen.unwrap_or(i64::MAX);
    anyhow::ensure!(cap >= 0, "--cap-fen must not be negative");
    let model: Recommender = serde_json::from_reader(BufReader::new(
        std::fs::File::open(&args.model)
            .with_context(|| format!("opening {}", args.model.display()))?,
    ))
    .with_context(|| {
        format!(
            "{} is not a model written by `jiuzhu recommend train`",
            args.model.display()
        )
    })?;
    let read: Read<CaseToPredict> = read_history(&args.cases)?;
    read.report_unused(&args.cases);
    let cases = read.cases;
    let beside = read.beside;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut sink = BufWriter::new(file);
    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("recommending {bar:40} {pos}/{len} cases {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut errors, mut clamped) = (Vec::new(), 0_usize);
    for (case, beside) in cases.iter().zip(&beside) {
        let r = model.recommend(&case.features, cap);
        if let Some(given) = case.amount_fen {
            errors.push((r.amount_fen - given).unsigned_abs());
        }
        clamped += usize::from(r.clamped.is_some());
        let line = serde_json::json!({
            "case_id": case.case_id,
            "model_version": r.model_version,
            "amount_model": r.amount_model,
            "amount_fen": r.amount_fen,
            "low_fen": r.low_fen,
            "high_fen": r.high_fen,
            "clamped": r.clamped,
            "base_fen": r.base_fen,
            "methods": r.methods.iter().zip(&r.method_effects).map(|((method, support), e)| serde_json::json!({
                "method": method,
                "support": support,
                "recommended": *support >= 0.5,
                "vote": e.vote,
                "effect_gain": e.gain,
                "similar_given": e.with_cases,
                "similar_given_improved": e.with_improved,
                "similar_not_given": e.without_cases,
                "similar_not_given_improved": e.without_improved,
            })).collect::<Vec<_>>(),
            "effect_note": r.effect_note,
            "factors": r.factors.iter().map(|f| serde_json::json!({
                "name": f.name, "fen": f.fen,
            })).collect::<Vec<_>>(),
            "similar": r.similar.iter().map(|s| serde_json::json!({
                "case_id": s.case_id, "amount_fen": s.amount_fen,
                "methods": s.methods, "distance": s.distance,
            })).collect::<Vec<_>>(),
            "given_amount_fen": case.amount_fen,
            "given_methods": case.methods,
            // Carried for the fairness report, never model inputs.
            "gender": beside.gender,
            "age": beside.age,
            "county": beside.county.clone().unwrap_or_else(|| case.features.region.clone()),
            "features": case.features,
        });
        serde_json::to_writer(&mut sink, &line)?;
        sink.write_all(b"\n")?;
        bar.inc(1);
    }
    sink.flush()?;
    bar.finish_and_clear();
    println!(
        "model {}: recommended for {} cases ({clamped} clamped to the cap)",
        model.version,
        cases.len()
    );
    if !errors.is_empty() {
        let mean = errors.iter().map(|e| *e as f64).sum::<f64>() / errors.len() as f64;
        println!(
            "against the {} amounts given: mean absolute difference {mean:.0} fen",
            errors.len()
        );
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The decisions service's gRPC endpoint.
    #[arg(long, default_value = "https://127.0.0.1:50053")]
    decisions: String,
    #[command(flatten)]
    connection: crate::Connection,
    /// Where to write the decided cases (JSON Lines, the history format).
    #[arg(long)]
    out: PathBuf,
}

/// Writes the platform's own decided cases as history, to train the next model on.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use jiuzhu_proto::decisions::ExportDecidedCasesRequest;
    use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
    // Training data is for Jiuzhu's trainer only (the access table names the system).
    let channel = args
        .connection
        .channel(&args.decisions, Some(jiuzhu_access::dev::TRAINER))
        .await?;
    let mut client = DecisionsServiceClient::new(channel);
    let mut stream = client
        .export_decided_cases(ExportDecidedCasesRequest {})
        .await?
        .into_inner();
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut sink = BufWriter::new(file);
    let mut written = 0u64;
    while let Some(record) = stream.message().await? {
        sink.write_all(record.json.as_bytes())?;
        sink.write_all(b"\n")?;
        written += 1;
    }
    sink.flush()?;
    println!("wrote {written} decided cases to {}", args.out.display());
    Ok(())
}
