//! `jiuzhu registry import`: streams a department's file to the registry's bulk API over
//! several concurrent streams, with a progress bar, a rejects file naming line, field and reason,
//! and a summary. Memory stays bounded: batches are read as they are sent.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::SinkExt;
use indicatif::{ProgressBar, ProgressStyle};
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_proto::registry::{BulkUpsertPersonsRequest, PersonRecord, RecordRejection};
use tokio::sync::{Mutex, mpsc};

use crate::records::{self, Charset, Format, Item};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Department the file comes from, e.g. rural_revitalization, civil_affairs.
    #[arg(long)]
    department: String,
    /// CSV (header line with the documented columns) or JSON Lines file.
    file: PathBuf,
    /// Registry gRPC address.
    #[arg(
        long,
        env = "JIUZHU_REGISTRY_ADDR",
        default_value = "https://127.0.0.1:50051"
    )]
    registry: String,
    #[command(flatten)]
    connection: crate::Connection,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Character set of the file; auto tells UTF-8 from GB18030.
    #[arg(long, value_enum, default_value_t = Charset::Auto)]
    encoding: Charset,
    /// Records per batch (one transaction each), 1 to 1000.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent streams to the registry, 1 to 16.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Where rejected records are listed (default: FILE.rejects.csv).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Default)]
struct Tally {
    read: u64,
    created: i64,
    updated: i64,
    unchanged: i64,
    linked: i64,
    rejected: u64,
}

/// Imports the file; returns how many records were rejected (listed in the rejects file).
pub async fn run(args: ImportArgs) -> anyhow::Result<u64> {
    let department = args.department.trim().to_owned();
    if department.is_empty() {
        bail!("--department must name the department the file comes from");
    }
    if !(1..=1000).contains(&args.batch) {
        bail!("--batch must be between 1 and 1000");
    }
    if !(1..=16).contains(&args.streams) {
        bail!("--streams must be between 1 and 16");
    }
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    // The department's own integrator by default: the registry takes a department's records
    // only from its certificate.
    let integrator = format!("as-department_integrator.{department}");
    let channel = args
        .connection
        .channel(&args.registry, Some(&integrator))
        .await?;
    let client = RegistryServiceClient::new(channel);
    let format = records::format_of(&args.file, args.format);
    let (reader, bytes_read, encoding) = records::open(&args.file, args.encoding)?;

    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        let mut name = args.file.clone().into_os_string();
        name.push(".rejects.csv");
        PathBuf::from(name)
    });
    let mut rejects = csv::Writer::from_path(&rejects_path)
        .with_context(|| format!("cannot write {}", rejects_path.display()))?;
    rejects.write_record(["line", "source_record_id", "field", "reason"])?;

    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(size)
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();

    let (batches_tx, batches_rx) = mpsc::channel::<Vec<PersonRecord>>(args.streams * 2);
    let (rejected_tx, mut rejected_rx) = mpsc::unbounded_channel::<RecordRejection>();
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));

    // Reading runs on a blocking thread: files are read synchronously.
    let reader_rejected = rejected_tx.clone();
    let reader_tally = Arc::clone(&tally);
    let batch_size = args.batch;
    let reading = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(batch_size);
        let mut emit = |item: Item| -> anyhow::Result<()> {
            if let Ok(mut t) = reader_tally.lock() {
                t.read += 1;
            }
            match item {
                Item::Record(record) => {
                    batch.push(*record);
                    if batch.len() == batch_size {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                        batches_tx
                            .blocking_send(full)
                            .context("the import stopped")?;
                    }
                }
                Item::Rejected(rejection) => {
                    let _ = reader_rejected.send(rejection);
                }
            }
            Ok(())
        };
        match format {
            Format::Jsonl => records::read_jsonl(reader, &mut emit)?,
            Format::Csv | Format::Auto => {
                records::read_csv(reader, &mut emit)?;
            }
        }
        if !batch.is_empty() {
            batches_tx
                .blocking_send(batch)
                .context("the import stopped")?;
        }
        Ok(())
    });

    let batches_rx = Arc::new(Mutex::new(batches_rx));
    let mut senders = Vec::new();
    for _ in 0..args.streams {
        let mut client = client.clone();
        let batches_rx = Arc::clone(&batches_rx);
        let rejected_tx = rejected_tx.clone();
        let tally = Arc::clone(&tally);
        let department = department.clone();
        senders.push(tokio::spawn(async move {
            let (mut requests, outbound) =
                futures::channel::mpsc::channel::<BulkUpsertPersonsRequest>(1);
            let mut answers = client.bulk_upsert_persons(outbound).await?.into_inner();
            loop {
                let next = batches_rx.lock().await.recv().await;
                let Some(records) = next else { break };
                requests
                    .send(BulkUpsertPersonsRequest {
                        source_department: department.clone(),
                        records,
                    })
                    .await
                    .context("the registry closed the stream")?;
                let answer = answers
                    .message()
                    .await?
                    .context("the registry ended the stream early")?;
                if let Ok(mut t) = tally.lock() {
                    t.created += answer.created;
                    t.updated += answer.updated;
                    t.unchanged += answer.unchanged;
                    t.linked += answer.linked;
                }
                for rejection in answer.rejections {
                    let _ = rejected_tx.send(rejection);
                }
            }
            drop(requests);
            anyhow::Ok(())
        }));
    }
    drop(rejected_tx);

    let ticker = {
        let progress = progress.clone();
        let tally = Arc::clone(&tally);
        tokio::spawn(async move {
            loop {
                progress.set_position(bytes_read.load(Ordering::Relaxed));
                if let Ok(t) = tally.lock() {
                    progress.set_message(format!(
                        "{} read, {} created, {} updated, {} linked, {} unchanged, {} rejected",
                        t.read, t.created, t.updated, t.linked, t.unchanged, t.rejected
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // Rejections are written as they come, so a long import's problems are visible early.
    let mut rejected = 0u64;
    while let Some(rejection) = rejected_rx.recv().await {
        rejected += 1;
        if let Ok(mut t) = tally.lock() {
            t.rejected = rejected;
        }
        rejects.write_record([
            rejection.line.to_string(),
            rejection.source_record_id,
            rejection.field,
            rejection.reason,
        ])?;
    }
    rejects.flush()?;
    reading.await.context("the reader stopped")??;
    for sender in senders {
        sender.await.context("a stream stopped")??;
    }
    ticker.abort();
    progress.finish_and_clear();

    let elapsed = started.elapsed();
    let t = tally
        .lock()
        .map(|t| (t.read, t.created, t.updated, t.unchanged, t.linked))
        .unwrap_or_default();
    let rate = t.0 as f64 / elapsed.as_secs_f64().max(0.001);
    eprintln!(
        "imported {} ({encoding}, {format:?}) for {department} in {:.1} s: {} records read, {} created, {} updated, {} unchanged, {rejected} rejected{}{}; {rate:.0} records/s",
        args.file.display(),
        elapsed.as_secs_f64(),
        t.0,
        t.1,
        t.2,
        t.3,
        if rejected > 0 {
            format!(" (see {})", rejects_path.display())
        } else {
            String::new()
        },
        if t.4 > 0 {
            format!(
                ", {} linked to persons already registered by another department",
                t.4
            )
        } else {
            String::new()
        },
    );
    Ok(rejected)
}
