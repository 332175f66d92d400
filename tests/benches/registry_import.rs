//! Registry import benchmark, end to end: `jiuzhu gen registry` writes a population (with
//! households), `jiuzhu registry import` sends it through the bulk API of a registry running
//! beside clue acquisition, and the clock runs until every read model has applied every event
//! (the registry's person view and person file, clues' linkage index). Prints progress every
//! ten seconds and the figures at the end: generation, CLI import (and the CLI's peak memory),
//! outbox drained, and each read model caught up; no assertions.
//!
//! `cargo build --release --bins && cargo bench -p jiuzhu-tests --bench registry_import`
//! (PostgreSQL and the broker as for the tests). BENCH_PERSONS (default 100000), BENCH_SEED (1).

use std::time::{Duration, Instant};

use jiuzhu_clues::Clues;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{binary_path, unique_namespace};
use jiuzhu_tests::{bench_setting, start};
use sqlx::PgPool;

const READ_MODELS: [(&str, bool); 3] = [
    ("registry.persons", false),
    ("registry.person_file", false),
    ("clues.linkage_index", true),
];

/// Peak resident memory of a running process, in MiB (from /proc; 0 where unavailable).
fn peak_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

async fn applied(pool: &PgPool, consumer: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(pool)
            .await?,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let persons = bench_setting("BENCH_PERSONS", 100_000);
    let seed = bench_setting("BENCH_SEED", 1);
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let registry_pool = registry.running.store.pool().clone();
    let clues_pool = clues.running.store.pool().clone();

    let file = std::env::temp_dir().join(format!("jiuzhu-bench-{persons}-{seed}.csv"));
    let jiuzhu = binary_path("jiuzhu")?;
    let started = Instant::now();
    let generated = std::process::Command::new(&jiuzhu)
        .args(["gen", "registry", "--persons", &persons.to_string()])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(&file)
        .status()?;
    anyhow::ensure!(generated.success(), "jiuzhu gen failed");
    let generation = started.elapsed();
    eprintln!("generated {persons} persons in {generation:.1?}");

    let import_started = Instant::now();
    let mut cli = std::process::Command::new(&jiuzhu)
        .args(["registry", "import", "--department", "rural_revitalization"])
        .args([
            "--registry",
            &format!("https://{}", registry.running.grpc_addr),
            "--certs",
            &jiuzhu_testkit::certs_dir()?.display().to_string(),
        ])
        .arg("--quiet")
        .arg(&file)
        .spawn()?;
    let mut cli_peak = 0;
    let cli_time = loop {
        cli_peak = cli_peak.max(peak_mib(cli.id()));
        if let Some(status) = cli.try_wait()? {
            anyhow::ensure!(status.success(), "jiuzhu registry import failed");
            break import_started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let events = count(&registry_pool, "SELECT count(*) FROM events").await?;
    let created = count(&registry_pool, "SELECT count(*) FROM person_keys").await?;
    eprintln!(
        "CLI import: {cli_time:.1?} ({:.0} persons/s), {created} persons and {events} events stored, CLI peak memory {cli_peak} MiB",
        persons as f64 / cli_time.as_secs_f64()
    );

    let mut drained = None;
    let mut caught_up: Vec<Option<Duration>> = vec![None; READ_MODELS.len()];
    let mut last_report = Instant::now();
    while caught_up.iter().any(Option::is_none) {
        let pending = count(
            &registry_pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await?;
        if pending == 0 && drained.is_none() {
            drained = Some(import_started.elapsed());
        }
        let mut progress = Vec::new();
        for (n, (consumer, in_clues)) in READ_MODELS.iter().enumerate() {
            let pool = if *in_clues {
                &clues_pool
            } else {
                &registry_pool
            };
            let done = applied(pool, consumer).await?;
            if done >= events && caught_up[n].is_none() {
                caught_up[n] = Some(import_started.elapsed());
            }
            progress.push(format!("{consumer} {done}"));
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "{:>5.0?}: outbox pending {pending}; applied: {}",
                import_started.elapsed(),
                progress.join(", ")
            );
        }
        if import_started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!(
                "read models not caught up after an hour: {}",
                progress.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    println!("registry import, {persons} persons ({events} events), seed {seed}");
    println!("  generate file       {generation:>8.1?}");
    println!(
        "  CLI import          {cli_time:>8.1?}  ({:.0} persons/s, peak memory {cli_peak} MiB)",
        persons as f64 / cli_time.as_secs_f64()
    );
    if let Some(drained) = drained {
        println!("  outbox drained      {drained:>8.1?}  after the import started");
    }
    for ((consumer, _), done) in READ_MODELS.iter().zip(&caught_up) {
        if let Some(done) = done {
            println!("  {consumer:<20}{done:>8.1?}  after the import started");
        }
    }
    let _ = std::fs::remove_file(&file);
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}
