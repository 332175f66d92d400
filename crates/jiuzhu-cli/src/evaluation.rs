//! `jiuzhu gen linkage-eval` and `jiuzhu gen relief-eval`: data sets from the independent
//! generators of `jiuzhu-evalgen`, so that every model figure can be reported on data the
//! model was not developed against.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

pub fn write_linkage_set(
    persons: u64,
    parties: u64,
    seed: u64,
    registry: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let summary = jiuzhu_evalgen::linkage::write(persons, parties, seed, registry, out)
        .with_context(|| format!("writing {} and {}", registry.display(), out.display()))?;
    eprintln!(
        "{} persons to {}, {} parties ({} registered) to {}",
        summary.persons,
        registry.display(),
        summary.parties,
        summary.registered_parties,
        out.display()
    );
    Ok(())
}

pub fn write_relief_history(
    cases: u64,
    seed: u64,
    biased: bool,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    jiuzhu_evalgen::relief::write_jsonl_with(cases, seed, biased, &mut sink)?;
    sink.flush()?;
    Ok(())
}
