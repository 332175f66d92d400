//! `jiuzhu link`: batch linkage of case parties against a registry extract, for back-fills and
//! evaluation. The model's m/u probabilities are estimated from the files themselves (EM over
//! the candidate pairs, pairs sharing a valid resident id held as matches), then every party
//! gets its best registry person, a match probability, a decision and an explanation. Parties
//! that carry their `true_person_id` (as `jiuzhu gen parties` writes) are also evaluated: a
//! reliability table by decile of probability (does 0.95 mean 95%?) and precision, recall and F1
//! at both thresholds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use jiuzhu_linkage::{Decision, Index, Model, Normalised, Thresholds, Written, normalise};

use crate::records::{Charset, open};

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// Registry extract: person_id, name, id_number, gender, birth_date, phone, region_code,
    /// township, village (the import columns source_record_id, full_name, resident_id work too;
    /// extra columns are ignored).
    #[arg(long)]
    registry: PathBuf,
    /// Case parties: party_id, case_no, name, id_number, gender, birth_date, phone, region_code,
    /// address, role; with true_person_id (empty: not registered) the linkage is evaluated.
    #[arg(long)]
    parties: PathBuf,
    /// Output: party_id, person_id, score, decision, explanation.
    #[arg(long)]
    out: PathBuf,
    /// Match probability from which a pair goes to human review.
    #[arg(long, default_value_t = 0.5)]
    review: f64,
    /// Match probability from which a clue is raised automatically.
    #[arg(long, default_value_t = 0.95)]
    automatic: f64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// A CSV file's columns found by name (first of the aliases present); rows are streamed.
struct Table {
    path: PathBuf,
    columns: Vec<(&'static str, Option<usize>)>,
}

type Rows = csv::Reader<Box<dyn std::io::BufRead + Send>>;

impl Table {
    fn open(
        path: &Path,
        wanted: &[(&'static str, &[&str])],
    ) -> anyhow::Result<(Self, Rows, Arc<AtomicU64>)> {
        let (reader, read, _) = open(path, Charset::Auto)?;
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let headers: Vec<String> = csv
            .headers()
            .with_context(|| format!("{}: cannot read the header line", path.display()))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        let columns = wanted
            .iter()
            .map(|(name, aliases)| {
                let found = aliases
                    .iter()
                    .find_map(|alias| headers.iter().position(|h| h == alias));
                (*name, found)
            })
            .collect();
        Ok((
            Self {
                path: path.to_owned(),
                columns,
            },
            csv,
            read,
        ))
    }

    fn has(&self, column: &str) -> bool {
        self.columns
            .iter()
            .any(|(name, index)| *name == column && index.is_some())
    }

    fn require(&self, column: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.has(column),
            "{}: no `{column}` column",
            self.path.display()
        );
        Ok(())
    }

    fn get<'r>(&self, row: &'r csv::StringRecord, column: &str) -> &'r str {
        self.columns
            .iter()
            .find(|(name, _)| *name == column)
            .and_then(|(_, index)| index.and_then(|i| row.get(i)))
            .map(str::trim)
            .unwrap_or("")
    }

    fn line_error(&self, line: usize) -> String {
        format!("{} line {line}", self.path.display())
    }
}

const REGISTRY_COLUMNS: [(&str, &[&str]); 9] = [
    ("person_id", &["person_id", "source_record_id"]),
    ("name", &["name", "full_name"]),
    ("id_number", &["id_number", "resident_id"]),
    ("gender", &["gender"]),
    ("birth_date", &["birth_date"]),
    ("phone", &["phone"]),
    ("region_code", &["region_code"]),
    ("township", &["township"]),
    ("village", &["village"]),
];

const PARTY_COLUMNS: [(&str, &[&str]); 9] = [
    ("party_id", &["party_id"]),
    ("name", &["name"]),
    ("id_number", &["id_number"]),
    ("gender", &["gender"]),
    ("birth_date", &["birth_date"]),
    ("phone", &["phone"]),
    ("region_code", &["region_code"]),
    ("address", &["address"]),
    ("true_person_id", &["true_person_id"]),
];

fn progress(quiet: bool, total: u64, what: &str, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Parties scored per EM sample: enough to estimate, few enough to stay quick.
const ESTIMATION_SAMPLE: usize = 20_000;

pub fn run(args: LinkArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let thresholds = Thresholds {
        review: args.review,
        automatic: args.automatic,
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.review)
            && args.review <= args.automatic
            && args.automatic <= 1.0,
        "--review and --automatic must be probabilities with review <= automatic"
    );
    // The registry is streamed into the index (progress by bytes read): memory is the index's.
    let (registry, mut rows, read) = Table::open(&args.registry, &REGISTRY_COLUMNS)?;
    registry.require("person_id")?;
    registry.require("name")?;
    let size = std::fs::metadata(&args.registry).map_or(0, |m| m.len());
    let bar = progress(
        args.quiet,
        size,
        "registry",
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    );
    let mut index = Index::default();
    for (n, row) in rows.records().enumerate() {
        let row = row.with_context(|| registry.line_error(n + 2))?;
        let person_id = registry.get(&row, "person_id");
        anyhow::ensure!(
            !person_id.is_empty(),
            "{}: person_id is empty",
            registry.line_error(n + 2)
        );
        let get = |c| registry.get(&row, c);
        index.insert(
            person_id,
            Normalised::from_written(&Written {
                name: get("name"),
                resident_id: get("id_number"),
                gender: get("gender"),
                birth_date: get("birth_date"),
                phone: get("phone"),
                region_code: get("region_code"),
                township: get("township"),
                village: get("village"),
            }),
        );
        if n % 4096 == 0 {
            bar.set_position(read.load(Ordering::Relaxed));
        }
    }
    bar.finish_and_clear();

    let (parties, mut rows, _) = Table::open(&args.parties, &PARTY_COLUMNS)?;
    parties.require("party_id")?;
    parties.require("name")?;
    let mut normalised: Vec<(String, Normalised)> = Vec::new();
    let evaluated = parties.has("true_person_id");
    let mut truth: std::collections::HashMap<String, String> = Default::default();
    for (n, row) in rows.records().enumerate() {
        let row = row.with_context(|| parties.line_error(n + 2))?;
        let get = |c| parties.get(&row, c);
        let village = normalise::village_from_address(get("address"));
        let party = Normalised::from_written(&Written {
            name: get("name"),
            resident_id: get("id_number"),
            gender: get("gender"),
            birth_date: get("birth_date"),
            phone: get("phone"),
            region_code: get("region_code"),
            township: "",
            village: &village,
        });
        if evaluated {
            truth.insert(get("party_id").to_owned(), get("true_person_id").to_owned());
        }
        normalised.push((get("party_id").to_owned(), party));
    }

    let sample: Vec<_> = normalised
        .iter()
        .take(ESTIMATION_SAMPLE)
        .flat_map(|(_, party)| index.comparisons(party))
        .collect();
    let random: Vec<_> = normalised
        .iter()
        .take(ESTIMATION_SAMPLE)
        .enumerate()
        .flat_map(|(n, (_, party))| index.random_comparisons(party, 5, n as u64))
        .collect();
    let model = Model::default().estimate(&sample, &random, |c| (c[1] == 1).then_some(true), 10);

    let bar = progress(
        args.quiet,
        normalised.len() as u64,
        "parties",
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    );
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = normalised.len().div_ceil(threads).max(1);
    // Each party's row and its best candidate (kept for the evaluation even when not linked).
    let rows: Vec<Vec<([String; 5], String)>> = std::thread::scope(|scope| -> anyhow::Result<_> {
        let workers: Vec<_> = normalised
            .chunks(chunk)
            .map(|part| {
                let (index, model, bar) = (&index, &model, &bar);
                scope.spawn(move || {
                    part.iter()
                        .map(|(party_id, party)| {
                            bar.inc(1);
                            let best = index.scored(party, model).into_iter().next();
                            match best {
                                Some(c) => {
                                    let decision = thresholds.decide(c.score.probability);
                                    (
                                        [
                                            party_id.clone(),
                                            if decision == Decision::None {
                                                String::new()
                                            } else {
                                                c.person_id.to_owned()
                                            },
                                            format!("{:.4}", c.score.probability),
                                            decision_name(decision).to_owned(),
                                            c.score.explanation(),
                                        ],
                                        c.person_id.to_owned(),
                                    )
                                }
                                None => (
                                    [
                                        party_id.clone(),
                                        String::new(),
                                        "0.0000".to_owned(),
                                        "none".to_owned(),
                                        "no registry person shares a blocking key".to_owned(),
                                    ],
                                    String::new(),
                                ),
                            }
                        })
                        .collect()
                })
            })
            .collect();
        // A worker that failed would leave its parties out of the file: refuse instead.
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a linkage worker stopped; nothing was written"))
            })
            .collect()
    })?;
    bar.finish_and_clear();

    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = csv::Writer::from_writer(std::io::BufWriter::new(file));
    out.write_record(["party_id", "person_id", "score", "decision", "explanation"])?;
    let mut counts = [0usize; 3];
    for (row, _) in rows.iter().flatten() {
        counts[match row[3].as_str() {
            "match" => 0,
            "review" => 1,
            _ => 2,
        }] += 1;
        out.write_record(row)?;
    }
    out.flush()?;
    let mut stderr = std::io::stderr();
    writeln!(
        stderr,
        "linked {} parties against {} registry persons in {:.1} s: {} match, {} review, {} none; written to {}",
        normalised.len(),
        index.len(),
        started.elapsed().as_secs_f64(),
        counts[0],
        counts[1],
        counts[2],
        args.out.display()
    )?;
    if evaluated {
        let scored: Vec<Scored> = rows
            .iter()
            .flatten()
            .map(|(row, best)| {
                let truth = truth.get(&row[0]).map_or("", String::as_str);
                Scored {
                    probability: row[2].parse().unwrap_or(0.0),
                    right: !best.is_empty() && best == truth,
                    decision: row[3].clone(),
                }
            })
            .collect();
        let registered = truth.values().filter(|t| !t.is_empty()).count();
        write!(stderr, "{}", evaluation(&scored, registered, &thresholds))?;
    }
    Ok(())
}

/// A party's best candidate: its probability, whether it is the true person, the decision.
struct Scored {
    probability: f64,
    right: bool,
    decision: String,
}

/// The reliability table by decile of probability (parties, mean probability, share whose best
/// candidate is the true person, and the gap) and precision, recall and F1 at both thresholds.
/// `registered`: parties that have a true person.
fn evaluation(scored: &[Scored], registered: usize, thresholds: &Thresholds) -> String {
    let mut text = String::from(
        "reliability by decile of probability (best candidate is the true person):\n\
         probability  parties  mean predicted  observed     gap\n",
    );
    for decile in 0..10 {
        let low = f64::from(decile) / 10.0;
        let inside: Vec<&Scored> = scored
            .iter()
            .filter(|s| ((s.probability * 10.0).floor() as i32).clamp(0, 9) == decile)
            .collect();
        if inside.is_empty() {
            continue;
        }
        let n = inside.len() as f64;
        let predicted = inside.iter().map(|s| s.probability).sum::<f64>() / n;
        let observed = inside.iter().filter(|s| s.right).count() as f64 / n;
        text.push_str(&format!(
            "{low:.1}–{:.1}  {:>9}  {predicted:>14.3}  {observed:>8.3}  {:>+6.3}\n",
            low + 0.1,
            inside.len(),
            observed - predicted
        ));
    }
    for (name, threshold, decisions) in [
        ("match", thresholds.automatic, &["match"][..]),
        (
            "match or review",
            thresholds.review,
            &["match", "review"][..],
        ),
    ] {
        let linked: Vec<&Scored> = scored
            .iter()
            .filter(|s| decisions.contains(&s.decision.as_str()))
            .collect();
        let right = linked.iter().filter(|s| s.right).count() as f64;
        let precision = right / (linked.len() as f64).max(1.0);
        let recall = right / (registered as f64).max(1.0);
        let f1 = 2.0 * precision * recall / (precision + recall).max(f64::MIN_POSITIVE);
        text.push_str(&format!(
            "at {name} (p >= {threshold}): precision {precision:.3}, recall {recall:.3}, F1 {f1:.3}\n"
        ));
    }
    text
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Match => "match",
        Decision::Review => "review",
        Decision::None => "none",
    }
}
