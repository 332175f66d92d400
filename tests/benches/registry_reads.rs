//! Registry read benchmark: GetPerson and SearchPersons-by-resident-id latency at a fixed
//! request rate (default 1,000 requests/s) against a registry holding a generated population,
//! loaded through the bulk API. Prints p50/p99/max; no assertions.
//!
//! `cargo bench -p jiuzhu-tests --bench registry_reads` (PostgreSQL and the broker as for the
//! tests). Sizes: BENCH_PERSONS (20000), BENCH_RATE (1000 per second), BENCH_SECONDS (10).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::search_persons_request::Query;
use jiuzhu_proto::registry::{
    BulkUpsertPersonsRequest, GetPersonRequest, PersonRecord, SearchPersonsRequest,
};
use jiuzhu_registry::Registry;
use jiuzhu_testkit::unique_namespace;
use jiuzhu_tests::{bench_setting, eventually, gender_of, registry_client, resident_id_for, start};
use tokio::sync::mpsc;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let persons = bench_setting("BENCH_PERSONS", 20_000);
    let rate = bench_setting("BENCH_RATE", 1000).max(1);
    let seconds = bench_setting("BENCH_SECONDS", 10).max(1);
    let started = start::<Registry>(&unique_namespace()).await?;
    let mut client = registry_client(&started.running).await?;

    eprintln!("loading {persons} persons through BulkUpsertPersons...");
    let load_started = Instant::now();
    let (tx, rx) = futures::channel::mpsc::channel::<BulkUpsertPersonsRequest>(2);
    let mut answers = client.bulk_upsert_persons(rx).await?.into_inner();
    let feeder = tokio::spawn(async move {
        use futures::SinkExt;
        let mut tx = tx;
        for chunk in 0..persons.div_ceil(1000) {
            let records = (chunk * 1000..((chunk + 1) * 1000).min(persons))
                .map(|n| {
                    let id = resident_id_for(&format!("bench-{n}"));
                    PersonRecord {
                        line: i64::try_from(n).unwrap_or(0),
                        source_record_id: format!("B{n}"),
                        full_name: format!("基准{n}"),
                        gender: gender_of(&id) as i32,
                        birth_date: id.birth_date().format("%Y-%m-%d").to_string(),
                        resident_id: id.as_str().to_owned(),
                        region: Some(RegionCode {
                            code: "110105".to_owned(),
                        }),
                        ..PersonRecord::default()
                    }
                })
                .collect();
            tx.send(BulkUpsertPersonsRequest {
                source_department: "bench".to_owned(),
                records,
            })
            .await?;
        }
        anyhow::Ok(())
    });
    let mut created = 0;
    while let Some(answer) = answers.message().await? {
        created += answer.created;
        if created + i64::try_from(answer.rejections.len()).unwrap_or(0) >= i64::try_from(persons)?
        {
            break;
        }
    }
    feeder.await??;
    let pool = started.running.store.pool().clone();
    eventually(
        "the read model to hold everyone",
        Duration::from_secs(600),
        || {
            let pool = pool.clone();
            async move {
                // Every read model caught up, so that the reads below do not compete with them.
                let (persons, filed): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM person_file)",
                )
                .fetch_one(&pool)
                .await?;
                Ok((persons >= created && filed >= created).then_some(()))
            }
        },
    )
    .await?;
    eprintln!(
        "loaded {created} in {:.1} s (commands and projection)",
        load_started.elapsed().as_secs_f64()
    );
    // The view keeps resident ids only as blind indexes: the bench knows them from the records.
    let ids: Vec<(String, String)> = sqlx::query_as::<_, (String, String)>(
        "SELECT person_id::text, source_record_id FROM source_records ORDER BY person_id",
    )
    .fetch_all(&pool)
    .await?
    .into_iter()
    .map(|(person, record)| {
        let n = record.trim_start_matches('B');
        (
            person,
            resident_id_for(&format!("bench-{n}")).as_str().to_owned(),
        )
    })
    .collect();

    for phase in ["GetPerson", "SearchPersons by resident id"] {
        let total = rate * seconds;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Duration, tonic::Status>>();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let begin = Instant::now();
        for n in 0..total {
            let due = begin + interval * u32::try_from(n).unwrap_or(u32::MAX);
            tokio::time::sleep_until(due.into()).await;
            let (person_id, resident_id) = ids[usize::try_from(n).unwrap_or(0) % ids.len()].clone();
            let mut client = client.clone();
            let done = done_tx.clone();
            let search = phase.starts_with("Search");
            tokio::spawn(async move {
                let sent = Instant::now();
                let outcome = if search {
                    client
                        .search_persons(SearchPersonsRequest {
                            purpose: jiuzhu_tests::PURPOSE.to_owned(),
                            query: Some(Query::ResidentId(resident_id)),
                            ..SearchPersonsRequest::default()
                        })
                        .await
                        .map(|_| ())
                } else {
                    client
                        .get_person(GetPersonRequest {
                            purpose: jiuzhu_tests::PURPOSE.to_owned(),
                            person_id,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                };
                let _ = done.send(outcome.map(|()| sent.elapsed()));
            });
        }
        drop(done_tx);
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut failed = 0;
        while let Some(outcome) = done_rx.recv().await {
            match outcome {
                Ok(latency) => {
                    histogram.record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX))?
                }
                Err(_) => failed += 1,
            }
        }
        let achieved = total as f64 / begin.elapsed().as_secs_f64();
        println!(
            "{phase:<30} {total} requests at {achieved:.0}/s over {} persons: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {failed} failed",
            ids.len(),
            histogram.value_at_quantile(0.50) as f64 / 1000.0,
            histogram.value_at_quantile(0.99) as f64 / 1000.0,
            histogram.max() as f64 / 1000.0,
        );
    }
    started.running.stop().await;
    Ok(())
}
