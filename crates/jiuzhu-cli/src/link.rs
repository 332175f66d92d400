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
use jiuzhu_linkage::index::{Kept, within_reach};
use jiuzhu_linkage::train::case_contexts;
use jiuzhu_linkage::train::{decile_text, reliability, reliability_by_count, reliability_text};
use jiuzhu_linkage::{
    Candidate, CaseContext, Decision, Index, Model, ModelFile, Normalised, Review, Thresholds,
    Trained, TrainingOptions, Written, normalise, train,
};

use crate::records::{Charset, open};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LinkArgs {
    #[command(subcommand)]
    command: Option<LinkCommand>,
    /// Registry extract: person_id, name, id_number, gender, birth_date, phone, region_code,
    /// township, village, household_ref (the import columns source_record_id, full_name,
    /// resident_id work too; extra columns are ignored).
    #[arg(long, required = true)]
    registry: Option<PathBuf>,
    /// Case parties: party_id, case_no, name, id_number, gender, birth_date, phone, region_code,
    /// address, role; with true_person_id (empty: not registered) the linkage is evaluated. A
    /// party's co-parties of the same case_no, once linked, are evidence for its household.
    #[arg(long, required = true)]
    parties: Option<PathBuf>,
    /// Output: party_id, person_id, score, decision, explanation, model_version.
    #[arg(long, required = true)]
    out: Option<PathBuf>,
    /// A model written by `jiuzhu link train` (or adopted by the clue service); without it, a
    /// model is trained on these files first, as `jiuzhu link train` would.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Reviewers' decisions to train with (see `jiuzhu link train --reviews`).
    #[arg(long, conflicts_with = "model")]
    reviews: Option<PathBuf>,
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

#[derive(Debug, clap::Subcommand)]
enum LinkCommand {
    /// Estimate and calibrate a linkage model on a registry extract and case parties (and
    /// reviewers' decisions), print its report (held-out reliability table), and write it as
    /// JSON: the model the clue service adopts and `jiuzhu link --model` uses.
    Train(TrainArgs),
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Registry extract (as for `jiuzhu link`).
    #[arg(long)]
    registry: PathBuf,
    /// Case parties to train on: the kind of records the model will score.
    #[arg(long)]
    parties: PathBuf,
    /// Reviewers' decisions: the party's columns (name, id_number, gender, birth_date, phone,
    /// region_code, address), the registry `person_id` reviewed, and `matched` (true/false, or
    /// confirmed/rejected).
    #[arg(long)]
    reviews: Option<PathBuf>,
    /// Where to write the model (JSON).
    #[arg(long)]
    out: PathBuf,
    /// The date recorded as the training date (default: today, UTC).
    #[arg(long)]
    trained_on: Option<String>,
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

const REGISTRY_COLUMNS: [(&str, &[&str]); 10] = [
    ("person_id", &["person_id", "source_record_id"]),
    ("name", &["name", "full_name"]),
    ("id_number", &["id_number", "resident_id"]),
    ("gender", &["gender"]),
    ("birth_date", &["birth_date"]),
    ("phone", &["phone"]),
    ("region_code", &["region_code"]),
    ("township", &["township"]),
    ("village", &["village"]),
    ("household", &["household_ref", "household_id", "household"]),
];

/// What a case file says of a party (reviews and party files both carry it).
const WRITTEN_COLUMNS: [(&str, &[&str]); 7] = [
    ("name", &["name"]),
    ("id_number", &["id_number"]),
    ("gender", &["gender"]),
    ("birth_date", &["birth_date"]),
    ("phone", &["phone"]),
    ("region_code", &["region_code"]),
    ("address", &["address"]),
];

type Columns = Vec<(&'static str, &'static [&'static str])>;

/// `first`, the written columns, then `last`.
fn written_between(
    first: (&'static str, &'static [&'static str]),
    last: (&'static str, &'static [&'static str]),
) -> Columns {
    std::iter::once(first)
        .chain(WRITTEN_COLUMNS)
        .chain(std::iter::once(last))
        .collect()
}

fn review_columns() -> Columns {
    written_between(
        ("person_id", &["person_id"]),
        ("matched", &["matched", "decision"]),
    )
}

fn party_columns() -> Columns {
    let mut columns = written_between(
        ("party_id", &["party_id"]),
        ("true_person_id", &["true_person_id"]),
    );
    columns.push(("case_no", &["case_no"]));
    columns
}

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

/// Parties a model is trained on at most: enough to estimate, few enough to stay quick.
const TRAINING_SAMPLE: usize = 10_000;

/// The registry streamed into the index (progress by bytes read): memory is the index's.
fn load_registry(path: &Path, quiet: bool) -> anyhow::Result<Index> {
    let (registry, mut rows, read) = Table::open(path, &REGISTRY_COLUMNS)?;
    registry.require("person_id")?;
    registry.require("name")?;
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let bar = progress(
        quiet,
        size,
        "registry",
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    );
    // Three stages on their own threads: reading rows, normalising them (the costly part),
    // filing them in the index.
    const CHUNK: usize = 8192;
    let (rows_out, rows_in) =
        std::sync::mpsc::sync_channel::<anyhow::Result<Vec<csv::StringRecord>>>(4);
    let (people_out, people_in) =
        std::sync::mpsc::sync_channel::<anyhow::Result<Vec<(String, Normalised)>>>(4);
    let mut index = Index::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (registry, bar) = (&registry, &bar);
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for (n, row) in rows.records().enumerate() {
                let row = match row.with_context(|| registry.line_error(n + 2)) {
                    Ok(row) => row,
                    Err(error) => {
                        let _ = rows_out.send(Err(error));
                        return;
                    }
                };
                if registry.get(&row, "person_id").is_empty() {
                    let _ = rows_out.send(Err(anyhow::anyhow!(
                        "{}: person_id is empty",
                        registry.line_error(n + 2)
                    )));
                    return;
                }
                chunk.push(row);
                if chunk.len() == CHUNK {
                    bar.set_position(read.load(Ordering::Relaxed));
                    if rows_out.send(Ok(std::mem::take(&mut chunk))).is_err() {
                        return;
                    }
                }
            }
            let _ = rows_out.send(Ok(chunk));
        });
        scope.spawn(move || {
            for chunk in rows_in {
                let people = chunk.map(|rows| {
                    rows.iter()
                        .map(|row| {
                            let get = |c| registry.get(row, c);
                            let mut person =
                                normalised_row(registry, row, get("township"), get("village"));
                            person.household = normalise::household(get("household"));
                            (get("person_id").to_owned(), person)
                        })
                        .collect()
                });
                if people_out.send(people).is_err() {
                    return;
                }
            }
        });
        for people in people_in {
            for (person_id, person) in people? {
                index.insert(person_id, person);
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(index)
}

/// A row's person as the linker compares them, living in `township` and `village`.
fn normalised_row(
    table: &Table,
    row: &csv::StringRecord,
    township: &str,
    village: &str,
) -> Normalised {
    let get = |c| table.get(row, c);
    Normalised::from_written(&Written {
        name: get("name"),
        resident_id: get("id_number"),
        gender: get("gender"),
        birth_date: get("birth_date"),
        phone: get("phone"),
        region_code: get("region_code"),
        township,
        village,
    })
}

/// A party row as the linker reads it (the village taken from the address).
fn written_party(table: &Table, row: &csv::StringRecord) -> Normalised {
    let village = normalise::village_from_address(table.get(row, "address"));
    normalised_row(table, row, "", &village)
}

/// Parties by id, their cases (empty where the file does not say), and their true persons
/// when the file says them.
struct Parties {
    normalised: Vec<(String, Normalised)>,
    cases: Vec<String>,
    truth: Option<std::collections::HashMap<String, String>>,
}

fn load_parties(path: &Path) -> anyhow::Result<Parties> {
    let (parties, mut rows, _) = Table::open(path, &party_columns())?;
    parties.require("party_id")?;
    parties.require("name")?;
    let mut normalised: Vec<(String, Normalised)> = Vec::new();
    let mut cases = Vec::new();
    let mut truth: Option<std::collections::HashMap<String, String>> =
        parties.has("true_person_id").then(Default::default);
    for (n, row) in rows.records().enumerate() {
        let row = row.with_context(|| parties.line_error(n + 2))?;
        let party_id = parties.get(&row, "party_id").to_owned();
        if let Some(truth) = &mut truth {
            truth.insert(
                party_id.clone(),
                parties.get(&row, "true_person_id").to_owned(),
            );
        }
        normalised.push((party_id, written_party(&parties, &row)));
        cases.push(jiuzhu_identity::canonical_case_number(
            parties.get(&row, "case_no"),
        ));
    }
    Ok(Parties {
        normalised,
        cases,
        truth,
    })
}

/// Reviewers' decisions, each party paired with the registry person as the index holds them.
fn load_reviews(path: &Path, index: &Index) -> anyhow::Result<Vec<Review>> {
    let (table, mut rows, _) = Table::open(path, &review_columns())?;
    for column in ["person_id", "name", "matched"] {
        table.require(column)?;
    }
    let mut reviews = Vec::new();
    for (n, row) in rows.records().enumerate() {
        let line = table.line_error(n + 2);
        let row = row.with_context(|| line.clone())?;
        let person_id = table.get(&row, "person_id");
        let person = index.person(person_id).with_context(|| {
            format!("{line}: person_id {person_id} is not in the registry file")
        })?;
        let matched = match table.get(&row, "matched").to_ascii_lowercase().as_str() {
            "true" | "confirmed" | "yes" | "1" => true,
            "false" | "rejected" | "no" | "0" => false,
            other => anyhow::bail!(
                "{line}: matched is `{other}`; write true/false (or confirmed/rejected)"
            ),
        };
        reviews.push(Review {
            party: written_party(&table, &row),
            person: person.clone(),
            matched,
        });
    }
    Ok(reviews)
}

/// Trains on (at most [`TRAINING_SAMPLE`] of) the parties, spread over the whole file, a case's
/// parties together (their co-parties are evidence).
fn train_on(index: &Index, parties: &Parties, reviews: &[Review]) -> Trained {
    let every = parties.normalised.len().div_ceil(TRAINING_SAMPLE).max(1) as u64;
    let (mut sample, mut cases) = (Vec::new(), Vec::new());
    for ((party_id, party), case) in parties.normalised.iter().zip(&parties.cases) {
        let key = if case.is_empty() { party_id } else { case };
        if normalise::digest(key).is_multiple_of(every) {
            sample.push(party.clone());
            cases.push(case.clone());
        }
    }
    train(
        index,
        &sample,
        &cases,
        reviews,
        &Model::default(),
        TrainingOptions::default(),
    )
}

fn report_text(file: &ModelFile) -> String {
    let report = &file.report;
    format!(
        "model {}: trained on {} parties ({} candidate pairs, {} random pairs), {} anchored by \
         resident id ({} of them the best candidate), {} reviews ({} confirmed); estimated {:.0}% \
         of parties registered\n{}\
         held-out reliability of the best candidate (calibrated on the other half of the labels):\n{}",
        file.version,
        report.parties,
        report.candidate_pairs,
        report.random_pairs,
        report.anchored,
        report.anchored_matches,
        report.reviews,
        report.reviews_confirmed,
        report.registered_share * 100.0,
        match file.model.case_household.as_slice() {
            [of_household, not_of_household] => format!(
                "{} parties' co-parties were linked: a candidate of their households weighs \
                 {of_household:+.1}, another {not_of_household:+.1}\n",
                report.case_contexts
            ),
            _ => format!(
                "{} parties' co-parties were linked: too few labels to weigh what that says\n",
                report.case_contexts
            ),
        },
        reliability_text(&report.reliability),
    )
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

pub fn train_command(args: TrainArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let index = load_registry(&args.registry, args.quiet)?;
    let parties = load_parties(&args.parties)?;
    let reviews = match &args.reviews {
        Some(path) => load_reviews(path, &index)?,
        None => Vec::new(),
    };
    let trained = train_on(&index, &parties, &reviews);
    let file = ModelFile::new(
        trained.model,
        trained.report,
        args.trained_on.unwrap_or_else(today),
    );
    std::fs::write(&args.out, file.to_json())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let mut stderr = std::io::stderr();
    write!(stderr, "{}", report_text(&file))?;
    writeln!(
        stderr,
        "written to {} in {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    )?;
    // As in `run`: the exit frees the index at once.
    std::mem::forget(index);
    Ok(())
}

pub fn run(args: LinkArgs) -> anyhow::Result<()> {
    if let Some(LinkCommand::Train(train)) = args.command {
        return train_command(train);
    }
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
    let (Some(registry), Some(parties), Some(out)) = (args.registry, args.parties, args.out) else {
        anyhow::bail!("jiuzhu link needs --registry, --parties and --out");
    };
    let saved = match &args.model {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(ModelFile::from_json(&text).with_context(|| path.display().to_string())?)
        }
        None => None,
    };
    let index = load_registry(&registry, args.quiet)?;
    let parties = load_parties(&parties)?;
    let file = match saved {
        Some(file) => file,
        None => {
            let reviews = match &args.reviews {
                Some(path) => load_reviews(path, &index)?,
                None => Vec::new(),
            };
            let trained = train_on(&index, &parties, &reviews);
            let file = ModelFile::new(trained.model, trained.report, today());
            eprint!("{}", report_text(&file));
            file
        }
    };
    let model = &file.model;

    let normalised = &parties.normalised;
    let bar = progress(
        args.quiet,
        normalised.len() as u64,
        "parties",
        "{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    );
    // Parties of a case with others are weighed again once those are linked: their
    // candidates within reach are kept meanwhile.
    let mut case_sizes: std::collections::HashMap<&str, usize> = Default::default();
    for case in parties.cases.iter().filter(|c| !c.is_empty()) {
        *case_sizes.entry(case).or_default() += 1;
    }
    let in_case = |n: usize| case_sizes.get(parties.cases[n].as_str()) > Some(&1);
    let no_case = CaseContext::default();
    let first: Vec<(Linked, Vec<Kept<'_>>)> =
        parallel(&(0..normalised.len()).collect::<Vec<_>>(), |n| {
            bar.inc(1);
            let party = &normalised[*n].1;
            let frequency = index.name_frequency(&party.name);
            let scored = index.scored_in_case(party, model, frequency, &no_case);
            let row = linked_row(&normalised[*n].0, scored.first(), &thresholds);
            let kept = if in_case(*n) {
                within_reach(&scored, model)
            } else {
                Vec::new()
            };
            (row, kept)
        })?;
    bar.finish_and_clear();
    let (mut rows, mut kept): (Vec<Linked>, Vec<Vec<Kept<'_>>>) = first.into_iter().unzip();
    // What the co-parties' links say of each candidate (a victim's relatives are mostly one
    // household).
    let linked: Vec<Option<&str>> = rows
        .iter()
        .map(|(row, _)| (row[3] == "match").then_some(row[1].as_str()))
        .collect();
    let contexts = case_contexts(&index, &parties.cases, &linked);
    let again: Vec<(usize, Vec<Kept<'_>>)> = (0..normalised.len())
        .filter(|n| !contexts[*n].is_empty())
        .map(|n| (n, std::mem::take(&mut kept[n])))
        .collect();
    drop(kept);
    let rescored = parallel(&again, |(n, scored)| {
        let party = &normalised[*n].1;
        let frequency = index.name_frequency(&party.name);
        let scored = index.rescored_in_case(party, scored, model, frequency, &contexts[*n]);
        linked_row(&normalised[*n].0, scored.first(), &thresholds)
    })?;
    for ((n, _), row) in again.iter().zip(rescored) {
        rows[*n] = row;
    }

    let written =
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = csv::Writer::from_writer(std::io::BufWriter::new(written));
    csv.write_record([
        "party_id",
        "person_id",
        "score",
        "decision",
        "explanation",
        "model_version",
    ])?;
    let mut counts = [0usize; 3];
    for (row, _) in &rows {
        counts[match row[3].as_str() {
            "match" => 0,
            "review" => 1,
            _ => 2,
        }] += 1;
        csv.write_record(
            row.iter()
                .map(String::as_str)
                .chain([file.version.as_str()]),
        )?;
    }
    csv.flush()?;
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
        out.display()
    )?;
    if let Some(truth) = &parties.truth {
        let scored: Vec<Scored> = rows
            .iter()
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
    // The process ends here: taking a million persons apart piece by piece costs seconds and
    // gives the system nothing the exit does not.
    std::mem::forget(index);
    Ok(())
}

/// A party's output row (party, person, score, decision, explanation) and its best candidate
/// (kept for the evaluation even when not linked).
type Linked = ([String; 5], String);

/// `work` over `items` on every core, results in the items' order.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
) -> anyhow::Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    let work = &work;
    let parts: Vec<Vec<R>> = std::thread::scope(|scope| -> anyhow::Result<_> {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(work).collect()))
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
    Ok(parts.into_iter().flatten().collect())
}

fn linked_row(party_id: &str, best: Option<&Candidate<'_>>, thresholds: &Thresholds) -> Linked {
    match best {
        Some(c) => {
            let decision = thresholds.decide(c.score.probability);
            (
                [
                    party_id.to_owned(),
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
                party_id.to_owned(),
                String::new(),
                "0.0000".to_owned(),
                "none".to_owned(),
                "no registry person shares a blocking key".to_owned(),
            ],
            String::new(),
        ),
    }
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
    let pairs: Vec<(f64, bool)> = scored.iter().map(|s| (s.probability, s.right)).collect();
    let mut text = format!(
        "reliability by bins of probability 0.1 wide (best candidate is the true person):\n{}\
         reliability by decile of the parties (ten equal groups by probability):\n{}",
        reliability_text(&reliability(&pairs)),
        decile_text(&reliability_by_count(&pairs))
    );
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
