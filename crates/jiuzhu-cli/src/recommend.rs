//! `jiuzhu gen relief-history` and `jiuzhu recommend train`: synthetic past relief cases, and a
//! model trained on past cases with its evaluation against the baseline on held-out cases.
//!
//! History files are JSON Lines (`.jsonl`, one past case per line) or CSV (`.csv`, a header
//! row), with the fields of `jiuzhu_recommend::PastCase`: `case_id`, `category`, `region`,
//! `deceased`, `serious_injury`, `disability_grade` (0–10), `medical_costs_fen`,
//! `property_loss_fen`, `compensation_received_fen`, `minor_fault`, `income_per_head_fen`
//! (yearly), `household_size`, `dependants`, `minors`, `registered_poor`, `monitored`,
//! `minimum_living`, `wage_fen` and `minimum_line_fen` (monthly), `amount_fen`, `methods`
//! (names; in CSV separated by `;`). Booleans are `true`/`false`. A bad line is reported with
//! its number and field.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use jiuzhu_recommend::{Baseline, PastCase, Recommender, evaluate, generate};

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
}

pub fn write_history(cases: u64, seed: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    for case in generate::past_cases(cases, seed) {
        serde_json::to_writer(&mut sink, &case)?;
        sink.write_all(b"\n")?;
    }
    sink.flush()?;
    Ok(())
}

fn read_csv(path: &Path) -> anyhow::Result<Vec<PastCase>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let mut cases = Vec::new();
    for (n, row) in reader.records().enumerate() {
        let line = n + 2;
        let row = row.with_context(|| format!("{} line {line}", path.display()))?;
        let mut fields = serde_json::Map::new();
        for (name, cell) in headers.iter().zip(row.iter()) {
            let value = match name {
                "case_id" | "category" | "region" => serde_json::Value::String(cell.to_owned()),
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
        let case: PastCase = serde_json::from_value(serde_json::Value::Object(fields))
            .with_context(|| format!("{} line {line}", path.display()))?;
        cases.push(case);
    }
    Ok(cases)
}

fn read_history(path: &Path) -> anyhow::Result<Vec<PastCase>> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return read_csv(path);
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut cases = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{} line {}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let case: PastCase = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        cases.push(case);
    }
    Ok(cases)
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.01..=0.5).contains(&args.holdout),
        "--holdout must be between 0.01 and 0.5"
    );
    let mut cases = read_history(&args.history)?;
    let held = ((cases.len() as f64) * args.holdout).round() as usize;
    let held_out = cases.split_off(cases.len().saturating_sub(held));
    let version = args.version.unwrap_or_else(|| {
        format!(
            "recommender-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        )
    });
    let bar = ProgressBar::new(cases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("training {bar:40} {pos}/{len} cases {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let model = Recommender::train(&cases, &version, |done, _| bar.set_position(done as u64))?;
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
    println!(
        "amount MAE: model {:.0} fen, nearest cases {:.0} fen, baseline {:.0} fen ({:.0}% of the baseline's error)",
        evaluation.amount_mae_fen,
        evaluation.neighbour_amount_mae_fen,
        evaluation.baseline_amount_mae_fen,
        100.0 * evaluation.amount_mae_fen / evaluation.baseline_amount_mae_fen.max(1.0)
    );
    println!(
        "method F1: model {:.3}, baseline {:.3}",
        evaluation.method_f1, evaluation.baseline_method_f1
    );
    println!(
        "recommendation latency over {} cases: p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        at(0.5),
        at(0.99)
    );
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
