//! `jiuzhu policy check | cap` and `jiuzhu calendar add-working-days`: the policy directory as
//! operators deploy it, checked as a whole, and the two answers it gives most often (the relief
//! cap of a region on a day, a deadline in working days), read from the same files the
//! services read.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{Datelike, NaiveDate};
use clap::Args;
use jiuzhu_calendar::{Calendar, Coverage};
use jiuzhu_policy::check::{Severity, check};
use jiuzhu_policy::relief::ReliefPolicy;
use jiuzhu_policy::wages::Wages;
use jiuzhu_policy::{CALENDAR, PolicyBook, RELIEF, WAGES};

/// Where the policy is, for every policy and calendar command.
#[derive(Debug, Args)]
pub struct DirArg {
    /// The policy directory (as `[policy] dir` of the services).
    #[arg(long, default_value = "policy")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy directory to check.
    #[arg(default_value = "policy")]
    pub dir: PathBuf,
    /// Check as of this day (YYYY-MM-DD; default today in Beijing time).
    #[arg(long)]
    pub on: Option<String>,
}

#[derive(Debug, Args)]
pub struct CapArgs {
    /// The county-level region code (GB/T 2260, 6 digits) of the case's jurisdiction.
    #[arg(long)]
    pub region: String,
    /// The decision date (YYYY-MM-DD).
    #[arg(long)]
    pub on: String,
    #[command(flatten)]
    pub dir: DirArg,
}

#[derive(Debug, Args)]
pub struct AddWorkingDaysArgs {
    /// The day the count starts from (it does not count itself), YYYY-MM-DD.
    #[arg(long)]
    pub from: String,
    /// How many working days (0: the first working day from `--from` on).
    #[arg(long)]
    pub days: String,
    #[command(flatten)]
    pub dir: DirArg,
}

fn date(flag: &str, text: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("{flag} `{text}` is not a YYYY-MM-DD date"))
}

fn book(dir: &Path) -> anyhow::Result<PolicyBook> {
    if !dir.is_dir() {
        bail!("policy directory {} does not exist (--dir)", dir.display());
    }
    Ok(PolicyBook::load(dir)?)
}

fn today() -> NaiveDate {
    jiuzhu_clock::Clock::system().today()
}

/// `jiuzhu policy check`: every set of the directory; findings as `file:line: kind: reason`.
/// Fails when any set has an error.
pub fn run_check(args: &CheckArgs) -> anyhow::Result<()> {
    let on = match &args.on {
        Some(text) => date("--on", text)?,
        None => today(),
    };
    let book = book(&args.dir)?;
    let mut errors = 0;
    for set in book.sets() {
        let report = check(set, on);
        let compiled_in = set.compiled_in_files();
        println!(
            "policy set {} (effective {}, adopted by {})",
            set.version(),
            set.effective_from,
            set.manifest.adopted_by
        );
        if !compiled_in.is_empty() {
            println!(
                "  not in {}, the compiled-in copy is used: {}",
                args.dir.display(),
                compiled_in.join(", ")
            );
        }
        for finding in &report.findings {
            println!("  {finding}");
        }
        let wages: Vec<String> = report
            .wage_statuses
            .iter()
            .map(|(status, n)| format!("{n} {}", status.as_str()))
            .collect();
        println!(
            "  wage figures: {}; official calendar years: {}",
            wages.join(", "),
            report
                .official_years
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let warnings = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        println!(
            "  {} errors, {warnings} warnings as of {on}",
            report.errors()
        );
        errors += report.errors();
    }
    if errors > 0 {
        bail!("{} has {errors} errors", args.dir.display());
    }
    println!("{}: ok", args.dir.display());
    Ok(())
}

use jiuzhu_proto::money::yuan;

/// `jiuzhu policy cap`: the normal cap of a region on a day, and everything it rests on.
pub fn run_cap(args: &CapArgs) -> anyhow::Result<()> {
    let region = args.region.trim();
    let Some(place) = jiuzhu_identity::lookup_region(region).filter(|_| region.len() == 6) else {
        bail!("--region `{region}` is not a 6-digit GB/T 2260 region code");
    };
    let on = date("--on", &args.on)?;
    let book = book(&args.dir.dir)?;
    let set = book.in_force(on);
    let relief = ReliefPolicy::parse(set.text(RELIEF))
        .with_context(|| format!("{RELIEF} of set {}", set.version()))?;
    // Facts (the wage table) come from the latest set, as in the decisions service.
    let wages = Wages::parse(book.latest().text(WAGES))?;
    let base = wages.base_on(region, on)?;
    let figure = &base.figure;
    let cap = figure.monthly_fen.saturating_mul(relief.cap_months);
    println!(
        "cap: {} yuan ({cap} fen) = {} × {} yuan, for {} {} ({region}) on {on}",
        yuan(cap),
        relief.cap_months,
        yuan(figure.monthly_fen),
        place.province,
        place.name,
    );
    let stand_in = if figure.year < base.wanted_year {
        format!(
            " ({} not published yet: the latest published year stands in)",
            base.wanted_year
        )
    } else {
        String::new()
    };
    println!(
        "wage: {} fen a month, year {}{stand_in}, {} level ({})",
        figure.monthly_fen,
        figure.year,
        figure.level.as_str(),
        figure.region
    );
    println!("source: {}", figure.source);
    println!("status: {}", figure.status.as_str());
    println!(
        "policy: set {} (effective {}), relief {}",
        set.version(),
        set.effective_from,
        relief.version
    );
    Ok(())
}

/// `jiuzhu calendar add-working-days`: the date on the first line, then how sure it is.
pub fn run_add_working_days(args: &AddWorkingDaysArgs) -> anyhow::Result<()> {
    let from = date("--from", &args.from)?;
    let days: u32 = args.days.trim().parse().with_context(|| {
        format!(
            "--days `{}` is not a whole number of days (0 or more)",
            args.days
        )
    })?;
    if days > 2_500 {
        bail!("--days {days} is more than ten years of working days");
    }
    let book = book(&args.dir.dir)?;
    let calendar = Calendar::parse(book.latest().text(CALENDAR))?;
    let due = calendar.due(from, days)?;
    println!("{}", due.date.format("%Y-%m-%d"));
    let provisional: Vec<String> = (from.year()..=due.date.year())
        .filter(|y| calendar.coverage(*y) == Coverage::Provisional)
        .map(|y| y.to_string())
        .collect();
    if due.provisional {
        println!(
            "calendar: provisional ({} without the State Council's notice; computed from {}, \
             swapped weekends not foreseen)",
            provisional.join(", "),
            calendar.decree()
        );
    } else {
        println!("calendar: official");
    }
    Ok(())
}
