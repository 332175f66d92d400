//! The foundation's guarantees, proved against the machine's PostgreSQL and the real broker.

use jiuzhu_errors::AppError;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use jiuzhu_clues::Clues;
use jiuzhu_eventstore::{Begun, CommandRequest, EventStore, StoreError};
use jiuzhu_messaging::{KafkaSettings, OutboxRelay, RelaySettings, header_map};
use jiuzhu_proto::registry::{GetPersonRequest, PersonRegistered};
use jiuzhu_registry::Registry;
use jiuzhu_registry::domain::RegistryEvent;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{
    TestResult, checkpoint_total, eventually, linkage_status, read_topic, register_and_index,
    registration, registry_client, resident_id_for, restart, start,
};
use rdkafka::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);
const LINKAGE: &str = "clues.linkage_index";

fn person_event(n: usize) -> RegistryEvent {
    RegistryEvent::PersonRegistered(PersonRegistered {
        person_id: uuid::Uuid::now_v7().to_string(),
        full_name: format!("并发{n}"),
        ..PersonRegistered::default()
    })
}

fn producer() -> anyhow::Result<FutureProducer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?)
}

/// (1) A command on the registry becomes an event that the clues service's projection applies,
/// through Kafka; the same request id again gives the same answer and no second event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_on_one_service_reaches_another_services_projection() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let mut client = registry_client(&registry.running).await?;

    let first = client
        .register_person(registration("req-1", 1))
        .await?
        .into_inner();
    let again = client
        .register_person(registration("req-1", 1))
        .await?
        .into_inner();
    assert_eq!(
        first.person_id, again.person_id,
        "a retried request id must give the same answer"
    );

    let (indexed, applied) = eventually("clues to index the person", WAIT, || async {
        let status = linkage_status(&clues.running).await?;
        Ok((status.0 >= 1).then_some(status))
    })
    .await?;
    assert_eq!((indexed, applied), (1, 1));
    // Indexed as the registry sealed it: the row holds no name.
    let row: String =
        sqlx::query_scalar("SELECT l::text FROM linkage_persons l WHERE person_id = $1::uuid")
            .bind(&first.person_id)
            .fetch_one(clues.running.store.pool())
            .await?;
    assert!(!row.contains("测试人1"), "{row}");

    // The registry's own read model is also built from the topic.
    let person = eventually("the registry's person view", WAIT, || {
        let mut client = client.clone();
        let id = first.person_id.clone();
        async move {
            match client
                .get_person(GetPersonRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id: id,
                    ..GetPersonRequest::default()
                })
                .await
            {
                Ok(found) => Ok(found.into_inner().person),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await?;
    assert_eq!(person.resident_id, resident_id_for("req-1").as_str());
    assert_eq!(person.version, 1);

    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(registry.running.store.pool())
        .await?;
    assert_eq!(events, 1, "the retry must not append a second event");

    // The same id with different content is refused, naming the field.
    let reused = client.register_person(registration("req-1", 2)).await;
    let status = reused
        .err()
        .ok_or_else(|| anyhow::anyhow!("reused request id was accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("request_id"),
        "{}",
        status.message()
    );

    registry.running.stop().await;
    clues.running.stop().await;
    Ok(())
}

/// Bad input gets INVALID_ARGUMENT with every bad field in `google.rpc.BadRequest` details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_field_details() -> TestResult {
    use tonic_types::StatusExt;
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let mut client = registry_client(&registry.running).await?;
    let mut request = registration("", 1);
    request.resident_id = "110105194912310021".to_owned();
    let status = client
        .register_person(request)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad request was accepted"))?;
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["request_id", "resident_id"]);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(registry.running.store.pool())
        .await?;
    assert_eq!(events, 0);
    registry.running.stop().await;
    Ok(())
}

/// (2) Delivering the same messages again changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_messages_change_nothing() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    register_and_index(&registry.running, &clues.running, "redeliver", 3).await?;

    // Put every record on the topic a second time, as a broker redelivery or a relay resend would.
    let topic = registry.running.store.topic().to_owned();
    let records = read_topic(&kafka_brokers(), &topic, 3)?;
    assert_eq!(records.len(), 3);
    let producer = producer()?;
    for record in &records {
        let mut again = FutureRecord::to(&topic)
            .payload(record.payload().unwrap_or_default())
            .key(record.key().unwrap_or_default());
        if let Some(headers) = record.headers() {
            again = again.headers(headers.clone());
        }
        producer
            .send(again, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    let end = 6;
    eventually("the duplicates to be consumed", WAIT, || async {
        Ok((checkpoint_total(clues.running.store.pool(), LINKAGE).await? == end).then_some(()))
    })
    .await?;
    assert_eq!(linkage_status(&clues.running).await?, (3, 3));
    registry.running.stop().await;
    clues.running.stop().await;
    Ok(())
}

/// (3a) A relay that dies after the broker acknowledged a batch but before marking it published
/// republishes it after restart; the consumer applies each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_crash_between_publish_and_mark_loses_and_doubles_nothing() -> TestResult {
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let kafka = KafkaSettings {
        brokers: kafka_brokers(),
        topic_prefix: ns.clone(),
        ..KafkaSettings::default()
    };
    let topic = kafka.topic("jiuzhu.registry.events.v1");
    jiuzhu_messaging::ensure_topics(&kafka, std::slice::from_ref(&topic)).await?;
    let store = EventStore::new(pool.clone(), "registry", topic.clone());
    for n in 0..5 {
        let Begun::Fresh(mut work) = store
            .begin_command(CommandRequest::new(&format!("crash-{n}"), "test", &[]))
            .await?
        else {
            anyhow::bail!("fresh request replayed");
        };
        let stream = uuid::Uuid::now_v7().to_string();
        work.append(&stream, 0, &stream, &[person_event(n)]).await?;
        work.commit(Vec::new()).await?;
    }

    let relay = OutboxRelay::new(pool.clone(), &kafka, RelaySettings::default(), "test-relay")?;
    let batch = relay
        .claim_and_publish()
        .await?
        .ok_or_else(|| anyhow::anyhow!("relay lock not taken"))?;
    assert_eq!(batch.len(), 5);
    drop(batch); // the crash: published, never marked
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await?;
    assert_eq!(unpublished, 5, "an unmarked batch must stay in the outbox");

    let restarted = OutboxRelay::new(
        pool.clone(),
        &kafka,
        RelaySettings::default(),
        "test-relay-2",
    )?;
    assert_eq!(restarted.publish_pending().await?, 5);
    assert_eq!(restarted.publish_pending().await?, 0);
    assert_eq!(
        read_topic(&kafka_brokers(), &topic, 10)?.len(),
        10,
        "the batch is on the topic twice"
    );

    let clues = start::<Clues>(&ns).await?;
    eventually("all ten records consumed", WAIT, || async {
        Ok((checkpoint_total(clues.running.store.pool(), LINKAGE).await? == 10).then_some(()))
    })
    .await?;
    // Each of the five events applied once (they carry no sealed identity, so the index, which
    // keeps identities only as the registry sealed them, files none of them).
    assert_eq!(linkage_status(&clues.running).await?.1, 5);
    clues.running.stop().await;
    Ok(())
}

/// (3b) A consumer that applied events but died before committing its offsets re-reads them
/// after restart and changes nothing; nothing is lost either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_crash_between_apply_and_offset_commit_changes_nothing() -> TestResult {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    register_and_index(&registry.running, &clues.running, "apply", 4).await?;
    let mut client = registry_client(&registry.running).await?;
    let clues_db = clues.database.clone();
    clues.running.stop().await;

    // Rewind the group's committed offsets to the start: the state a consumer leaves when it
    // committed its projection transaction but died before committing offsets.
    let topic = registry.running.store.topic().to_owned();
    let group: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", format!("{ns}jiuzhu.{LINKAGE}"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut rewind = TopicPartitionList::new();
    for partition in 0..3 {
        rewind.add_partition_offset(&topic, partition, Offset::Offset(0))?;
    }
    group.commit(&rewind, CommitMode::Sync)?;
    drop(group);

    // Meanwhile one more person arrives; after restart it must be applied, the rest skipped.
    client
        .register_person(registration("apply-late", 9))
        .await?;
    let restarted = restart::<Clues>(&ns, &clues_db).await?;
    eventually("the late person indexed", WAIT, || async {
        Ok((linkage_status(&restarted).await?.0 == 5).then_some(()))
    })
    .await?;
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE consumer = $1")
        .bind(LINKAGE)
        .fetch_one(restarted.store.pool())
        .await?;
    assert_eq!(linkage_status(&restarted).await?, (5, 5));
    assert_eq!(inbox, 5);
    restarted.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// (4) Of concurrent appends to one stream at the same expected version, exactly one wins and
/// the others get the typed conflict error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_stream_exactly_one_wins() -> TestResult {
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&database.url)
        .await?;
    let store = EventStore::new(pool, "registry", "unused");
    let stream = uuid::Uuid::now_v7().to_string();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut writers = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        let stream = stream.clone();
        let barrier = barrier.clone();
        writers.push(tokio::spawn(async move {
            let Begun::Fresh(mut work) = store
                .begin_command(CommandRequest::new(&format!("race-{n}"), "test", &[]))
                .await?
            else {
                anyhow::bail!("fresh request replayed");
            };
            barrier.wait().await;
            work.append(&stream, 0, &stream, &[person_event(n)]).await?;
            work.commit(Vec::new()).await?;
            Ok(())
        }));
    }
    let mut won = 0;
    let mut conflicts = 0;
    for writer in writers {
        match writer.await? {
            Ok(()) => won += 1,
            Err(error) => match error.downcast_ref::<StoreError>() {
                Some(StoreError::Conflict {
                    expected: 0,
                    actual: 1,
                    ..
                }) => conflicts += 1,
                _ => anyhow::bail!("unexpected error: {error}"),
            },
        }
    }
    assert_eq!((won, conflicts), (1, 7));
    assert_eq!(store.stream_version(&stream).await?, 1);
    let status = tonic::Status::from(AppError::from(StoreError::Conflict {
        stream_id: stream,
        expected: 0,
        actual: 1,
    }));
    assert_eq!(status.code(), Code::Aborted);
    Ok(())
}

/// The one command step on an existing stream: a stream with no events is not found (named by
/// its kind), a refusal appends nothing, a decision appends at the loaded version and returns the
/// aggregate after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_on_loads_decides_and_appends_or_refuses_without_a_trace() -> TestResult {
    use jiuzhu_registry::domain::Person;
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database.url)
        .await?;
    let store = EventStore::new(pool, "registry", "unused");
    let stream = uuid::Uuid::now_v7().to_string();
    let step = |key: &str, refuse: bool| {
        let (store, stream) = (store.clone(), stream.clone());
        let call = CommandRequest::internal("test/Step", key);
        async move {
            store
                .execute(call, AppError::from, move |work| {
                    Box::pin(async move {
                        let decided = work
                            .decide_on(&stream, |_: &Person| {
                                if refuse {
                                    Err(AppError::failed_precondition("refused"))
                                } else {
                                    Ok(vec![person_event(2)])
                                }
                            })
                            .await?;
                        Ok(decided.version)
                    })
                })
                .await
        }
    };
    let missing = step("step-1", false).await;
    assert!(
        matches!(&missing, Err(AppError::NotFound(m)) if *m == format!("no stream {stream}")),
        "{missing:?}"
    );
    let Begun::Fresh(mut work) = store
        .begin_command(CommandRequest::unrecorded("seed", "test/Seed"))
        .await?
    else {
        anyhow::bail!("an unrecorded command never replays");
    };
    work.append(&stream, 0, &stream, &[person_event(1)]).await?;
    work.commit(Vec::new()).await?;
    let refused = step("step-2", true).await;
    assert!(
        matches!(refused, Err(AppError::FailedPrecondition(_))),
        "{refused:?}"
    );
    assert_eq!(store.stream_version(&stream).await?, 1);
    assert_eq!(step("step-3", false).await?, 2);
    assert_eq!(store.stream_version(&stream).await?, 2);
    Ok(())
}

/// Appended events are written when the command next reads or commits: a load after an append
/// sees the command's own events, a savepoint rolls back the events after it, and what is
/// written commits together with the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sees_its_own_appends_and_commits_them_with_its_answer() -> TestResult {
    use jiuzhu_registry::domain::Person;
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database.url)
        .await?;
    let store = EventStore::new(pool.clone(), "registry", "unused");
    let (stream, other) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let Begun::Fresh(mut work) = store
        .begin_command(CommandRequest::new("own-appends", "test", &[]))
        .await?
    else {
        anyhow::bail!("fresh request replayed");
    };
    work.append(&stream, 0, &stream, &[person_event(1)]).await?;
    assert_eq!(work.load::<Person>(&stream).await?.1, 1, "its own append");
    assert!(
        work.appended().next().is_some_and(|e| e.position > 0),
        "written, so positioned"
    );
    work.savepoint().await?;
    work.append(&other, 0, &other, &[person_event(2)]).await?;
    assert_eq!(work.load::<Person>(&other).await?.1, 1);
    work.rollback_to_savepoint(1).await?;
    assert_eq!(work.load::<Person>(&other).await?.1, 0, "rolled back");
    work.append(&stream, 1, &stream, &[person_event(3)]).await?;
    assert_eq!(
        store.stream_version(&stream).await?,
        0,
        "nothing seen outside"
    );
    work.commit(b"done".to_vec()).await?;
    assert_eq!(store.stream_version(&stream).await?, 2);
    assert_eq!(store.stream_version(&other).await?, 0);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await?;
    assert_eq!(outbox, 2, "one outbox row per event kept");
    let Begun::Replay(answer) = store
        .begin_command(CommandRequest::new("own-appends", "test", &[]))
        .await?
    else {
        anyhow::bail!("the answer was not recorded");
    };
    assert_eq!(answer, b"done");
    Ok(())
}

/// Commands committing at the same moment share one statement (group commit) without sharing
/// their fate: of two calls with one request id both get the answer of the one that was
/// carried out and one event is written; of writers racing for one stream version only one
/// wins and the others get the conflict; every other command is carried out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_committed_together_keep_their_own_outcomes() -> TestResult {
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(40)
        .connect(&database.url)
        .await?;
    let store = EventStore::new(pool.clone(), "registry", "unused");
    // Calls (request id, stream, answer) that commit at once; each gets its answer or, if it
    // lost its stream's version, None.
    let race = |calls: Vec<(String, String, usize)>| {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(calls.len()));
        let calls: Vec<_> = calls
            .into_iter()
            .map(|(request_id, stream, n)| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    let Begun::Fresh(mut work) = store
                        .begin_command(CommandRequest::new(&request_id, "test", &[]))
                        .await?
                    else {
                        anyhow::bail!("{request_id} replayed before the race");
                    };
                    work.append(&stream, 0, &stream, &[person_event(n)]).await?;
                    barrier.wait().await;
                    match work.commit(n.to_le_bytes().to_vec()).await {
                        Ok(answer) => Ok(Some(answer)),
                        Err(StoreError::Conflict { .. }) => Ok(None),
                        Err(error) => Err(error.into()),
                    }
                })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for call in calls {
                answers.push(call.await??);
            }
            Ok::<_, anyhow::Error>(answers)
        }
    };
    // Pairs of calls under one request id, each call appending to a stream of its own: only
    // the claim keeps the second call's event out.
    let streams: Vec<String> = (0..30).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let pairs = (0..30)
        .map(|n| (format!("pair-{}", n / 2), streams[n].clone(), n))
        .collect();
    let answers = race(pairs).await?;
    for n in 0..15 {
        assert!(answers[2 * n].is_some(), "pair {n}");
        assert_eq!(answers[2 * n], answers[2 * n + 1], "both calls of pair {n}");
        let written = store.stream_version(&streams[2 * n]).await?
            + store.stream_version(&streams[2 * n + 1]).await?;
        assert_eq!(written, 1, "one event for pair {n}");
    }
    // Writers racing for one stream's first version, beside writers of streams of their own.
    let contested = uuid::Uuid::now_v7().to_string();
    let calls = (0..10)
        .map(|n| {
            let stream = if n % 2 == 0 {
                contested.clone()
            } else {
                uuid::Uuid::now_v7().to_string()
            };
            (format!("contest-{n}"), stream, n)
        })
        .collect();
    let answers = race(calls).await?;
    let lost: Vec<usize> = (0..10).filter(|n| answers[*n].is_none()).collect();
    assert_eq!(lost.len(), 4, "4 of the 5 on one stream lose: {lost:?}");
    assert!(lost.iter().all(|n| n % 2 == 0), "only they: {lost:?}");
    assert_eq!(store.stream_version(&contested).await?, 1);
    let (events, outbox, commands): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM outbox), \
         (SELECT count(*) FROM commands)",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!((events, outbox, commands), (21, 21, 21));
    Ok(())
}

/// The one command path: an API call replays its answer for the same request and refuses the
/// same id with other content; an internal command is identified by its key alone, so a key
/// whose answer was stored under an older fingerprint still replays; nothing is appended twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_path_replays_api_calls_and_internal_keys_once() -> TestResult {
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&database.url)
        .await?;
    let store = EventStore::new(pool.clone(), "registry", "unused");
    let stream = uuid::Uuid::now_v7().to_string();
    let run = |call: CommandRequest, answer: bool| {
        let (store, stream) = (store.clone(), stream.clone());
        async move {
            store
                .execute(call, AppError::from, move |work| {
                    Box::pin(async move {
                        let version = work
                            .load::<jiuzhu_registry::domain::Person>(&stream)
                            .await
                            .map_err(AppError::from)?
                            .1;
                        work.append(&stream, version, &stream, &[person_event(1)])
                            .await
                            .map_err(AppError::from)?;
                        Ok(answer)
                    })
                })
                .await
        }
    };
    let request = GetPersonRequest {
        person_id: "p-1".to_owned(),
        ..GetPersonRequest::default()
    };
    let api = || CommandRequest::api("test/Api", "api-1", &request);
    assert!(run(api(), true).await?);
    // The same call again: the first answer, nothing appended.
    assert!(run(api(), false).await?);
    let other = GetPersonRequest {
        person_id: "p-2".to_owned(),
        ..GetPersonRequest::default()
    };
    let reused = run(CommandRequest::api("test/Api", "api-1", &other), true).await;
    assert_eq!(
        reused.err().map(|error| tonic::Status::from(error).code()),
        Some(Code::InvalidArgument),
        "the same id with other content"
    );
    // An internal command: its key is its identity.
    let internal = || CommandRequest::internal("test/Timer", "overdue-x-2027-01-05");
    assert!(run(internal(), true).await?);
    assert!(run(internal(), false).await?);
    // Another command type under the same key is refused.
    assert!(
        run(
            CommandRequest::internal("test/Other", "overdue-x-2027-01-05"),
            true
        )
        .await
        .is_err()
    );
    // A key whose answer was stored before internal keys had their own namespace (bare, under
    // a borrowed message's fingerprint) replays too.
    sqlx::query(
        "UPDATE commands SET request_id = 'overdue-x-2027-01-05', fingerprint = '\\x0102'::bytea \
         WHERE request_id = 'internal overdue-x-2027-01-05'",
    )
    .execute(&pool)
    .await?;
    assert!(run(internal(), false).await?);
    // A caller's request id that happens to be an internal key takes nothing from it: both are
    // carried out, once each.
    let order = || CommandRequest::internal("test/Orders", "order-case-7");
    let collide = || CommandRequest::api("test/Allocate", "order-case-7", &request);
    assert!(run(collide(), true).await?);
    assert!(run(order(), true).await?);
    assert!(run(collide(), false).await?);
    assert!(run(order(), false).await?);
    assert_eq!(
        store.stream_version(&stream).await?,
        4,
        "one event per first call"
    );

    // The same request id, racing: every caller gets the answer of the one that committed.
    // (Three, each holding one of the pool's four connections until it commits or fails.)
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    let racing = (0..3).map(|n| {
        let (store, stream, barrier) = (store.clone(), stream.clone(), barrier.clone());
        let request = request.clone();
        tokio::spawn(async move {
            store
                .execute(
                    CommandRequest::api("test/Api", "api-race", &request),
                    AppError::from,
                    move |work| {
                        Box::pin(async move {
                            let version = work
                                .load::<jiuzhu_registry::domain::Person>(&stream)
                                .await
                                .map_err(AppError::from)?
                                .1;
                            barrier.wait().await;
                            work.append(&stream, version, &stream, &[person_event(1)])
                                .await
                                .map_err(AppError::from)?;
                            Ok(GetPersonRequest {
                                person_id: format!("answer-{n}"),
                                ..GetPersonRequest::default()
                            })
                        })
                    },
                )
                .await
        })
    });
    let mut answers = std::collections::BTreeSet::new();
    for answer in futures::future::join_all(racing).await {
        answers.insert(answer?.map_err(tonic::Status::from)?.person_id);
    }
    assert_eq!(
        answers.len(),
        1,
        "one answer for every racing call: {answers:?}"
    );
    assert_eq!(store.stream_version(&stream).await?, 5, "one event");
    Ok(())
}

/// A database that asks for the transaction again (serialization failure, deadlock) or is
/// shutting down is an outage: consumers retry it instead of dead-lettering a valid event.
/// Any other database error of an event is bounded by `max_attempts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_database_errors_are_outages_not_poison() -> TestResult {
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database.url)
        .await?;
    let raise = |state: &'static str| {
        let pool = pool.clone();
        async move {
            let sql =
                format!("DO $$ BEGIN RAISE EXCEPTION 'drill' USING ERRCODE = '{state}'; END $$");
            let error = sqlx::query(&sql).execute(&pool).await.err();
            error.map(jiuzhu_messaging::ProjectionError::from)
        }
    };
    for state in ["40001", "40P01", "57P01", "08006"] {
        let error = raise(state).await;
        assert!(
            error.as_ref().is_some_and(|e| e.is_infrastructure()),
            "{state}: {error:?}"
        );
    }
    for state in ["23505", "22012", "57014"] {
        let error = raise(state).await;
        assert!(
            error
                .as_ref()
                .is_some_and(|e| !e.is_infrastructure() && !e.is_permanent()),
            "{state}: {error:?}"
        );
    }
    Ok(())
}

/// (5) Many writers on many streams, committing out of order while the relay runs: every event
/// reaches the topic, none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_publishes_every_event_of_concurrent_writers() -> TestResult {
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(12)
        .connect(&database.url)
        .await?;
    let kafka = KafkaSettings {
        brokers: kafka_brokers(),
        topic_prefix: ns.clone(),
        ..KafkaSettings::default()
    };
    let topic = kafka.topic("jiuzhu.registry.events.v1");
    jiuzhu_messaging::ensure_topics(&kafka, std::slice::from_ref(&topic)).await?;
    let store = EventStore::new(pool.clone(), "registry", topic.clone());
    let relay = OutboxRelay::new(
        pool.clone(),
        &kafka,
        RelaySettings {
            poll_interval_ms: 1,
            batch_size: 50,
            ..RelaySettings::default()
        },
        "test-relay",
    )?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relay_task = tokio::spawn(relay.clone().run(shutdown.clone()));

    const WRITERS: usize = 8;
    const PER_WRITER: usize = 60;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let Begun::Fresh(mut work) = store
                    .begin_command(CommandRequest::new(&format!("w{w}-{i}"), "test", &[]))
                    .await?
                else {
                    anyhow::bail!("fresh request replayed");
                };
                let stream = uuid::Uuid::now_v7().to_string();
                work.append(&stream, 0, &stream, &[person_event(i)]).await?;
                // Hold some transactions open so that later ids commit before earlier ones.
                if (w + i) % 3 == 0 {
                    tokio::time::sleep(Duration::from_millis(((w * 7 + i) % 15) as u64)).await;
                }
                work.commit(Vec::new()).await?;
            }
            Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    eventually("the outbox to drain", WAIT, || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await?;
        Ok((left == 0).then_some(()))
    })
    .await?;
    shutdown.cancel();
    relay_task.await?;

    let stored: BTreeSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT event_id FROM events")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|id| id.to_string())
            .collect();
    assert_eq!(stored.len(), WRITERS * PER_WRITER);
    let records = read_topic(&kafka_brokers(), &topic, WRITERS * PER_WRITER)?;
    let mut published: HashMap<String, usize> = HashMap::new();
    for record in &records {
        let headers = header_map(record.headers());
        let id = headers
            .get(jiuzhu_messaging::EVENT_ID_HEADER)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("record without event id header"))?;
        *published.entry(id).or_default() += 1;
    }
    let published_ids: BTreeSet<String> = published.keys().cloned().collect();
    let missing: Vec<&String> = stored.difference(&published_ids).collect();
    let unknown: Vec<&String> = published_ids.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} stored events never reached the topic, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(
        unknown.is_empty(),
        "{} records on the topic are not stored events",
        unknown.len()
    );
    assert!(
        published.values().all(|&n| n == 1),
        "no event was published twice without a crash"
    );
    Ok(())
}

/// (6) A poison message goes to the dead-letter topic with the reason in its headers, and the
/// consumer carries on with the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_topic_and_consumption_continues() -> TestResult {
    use prost::Message as _;
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let topic = registry.running.store.topic().to_owned();
    let producer = producer()?;

    // Not an envelope at all.
    producer
        .send(
            FutureRecord::to(&topic)
                .key("poison")
                .payload(&b"\xff\xfenot protobuf"[..]),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    // A well-formed envelope whose event the projection rejects (person id is not a UUID).
    let rejected = jiuzhu_proto::common::EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "jiuzhu.registry.v1.PersonRegistered".to_owned(),
        stream_id: "x".to_owned(),
        stream_version: 1,
        payload: PersonRegistered {
            person_id: "not-a-uuid".to_owned(),
            ..PersonRegistered::default()
        }
        .encode_to_vec(),
        ..Default::default()
    };
    producer
        .send(
            FutureRecord::to(&topic)
                .key("poison")
                .payload(&rejected.encode_to_vec()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    // Then a good event, on the same partition as the poison (same key is not needed: the
    // consumer must carry on whatever the partition).
    let mut client = registry_client(&registry.running).await?;
    client
        .register_person(registration("after-poison", 1))
        .await?;

    eventually("the good event to be applied", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 1).then_some(()))
    })
    .await?;
    // Every consumer of the topic dead-letters on its own (the registry's read models and clues'
    // reverse correlation read it too, and the person file skips an event naming no valid
    // person rather than rejecting it): the not-an-envelope record comes from every consumer,
    // the rejected event from three.
    let dead = read_topic(&kafka_brokers(), &format!("{topic}.dlq"), 8)?;
    let mut by_consumer: HashMap<String, usize> = HashMap::new();
    for message in &dead {
        let consumer = header_map(message.headers())
            .get("jiuzhu-dlq-consumer")
            .cloned()
            .unwrap_or_default();
        *by_consumer.entry(consumer).or_default() += 1;
    }
    assert_eq!(
        by_consumer,
        HashMap::from([
            (LINKAGE.to_owned(), 2),
            ("clues.reverse_correlation".to_owned(), 2),
            ("registry.persons".to_owned(), 2),
            ("registry.person_file".to_owned(), 1),
            // Sharing decodes only what an agreement names: the bad envelope alone.
            ("registry.sharing".to_owned(), 1),
        ])
    );
    let dead: Vec<_> = dead
        .into_iter()
        .filter(|m| {
            header_map(m.headers())
                .get("jiuzhu-dlq-consumer")
                .map(String::as_str)
                == Some(LINKAGE)
        })
        .collect();
    assert_eq!(dead.len(), 2);
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            header_map(m.headers())
                .get("jiuzhu-dlq-reason")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not an EventEnvelope")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not-a-uuid")),
        "{reasons:?}"
    );
    for message in &dead {
        let headers = header_map(message.headers());
        assert_eq!(
            headers.get("jiuzhu-dlq-consumer").map(String::as_str),
            Some(LINKAGE)
        );
        assert_eq!(headers.get("jiuzhu-dlq-source-topic"), Some(&topic));
    }
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM dead_letters WHERE consumer = $1 ORDER BY id")
            .bind(LINKAGE)
            .fetch_all(clues.running.store.pool())
            .await?;
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts,
        [1, 1],
        "neither can ever apply, so neither is retried: {attempts:?}"
    );
    assert_eq!(linkage_status(&clues.running).await?, (1, 1));
    registry.running.stop().await;
    clues.running.stop().await;
    Ok(())
}

/// A projection rebuilt from its topic (clues' linkage index) or from the service's own event
/// store (the registry's person view) ends where the live one was, reports progress, and the
/// live consumer then continues without applying anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_rebuild_from_topic_and_from_store() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    register_and_index(&registry.running, &clues.running, "rebuild", 6).await?;
    let mut client = registry_client(&registry.running).await?;
    let clues_db = clues.database.clone();
    clues.running.stop().await;

    // Damage the read model, then rebuild it from the topic.
    let settings = jiuzhu_testkit::settings("clues", &clues_db, &ns);
    let pool = jiuzhu_runtime::connect::<Clues>(&settings).await?;
    sqlx::query(
        "DELETE FROM linkage_persons WHERE person_id <> (SELECT person_id FROM linkage_persons ORDER BY person_id LIMIT 1)",
    )
    .execute(&pool)
    .await?;
    let (context, components) = jiuzhu_runtime::assemble::<Clues>(pool.clone(), settings)?;
    let linkage = components
        .projections()
        .iter()
        .find(|p| p.name() == LINKAGE)
        .ok_or_else(|| anyhow::anyhow!("clues has no linkage projection"))?;
    let mut reports = Vec::new();
    let done = linkage
        .rebuild_from_topic(
            &pool,
            &context.settings.kafka,
            &context.settings.consumer,
            Box::new(|p| reports.push(p)),
        )
        .await?;
    assert_eq!(done.applied, 6);
    assert_eq!(
        reports.last().map(|p| p.applied),
        Some(6),
        "progress ends with the total"
    );
    let persons: i64 = sqlx::query_scalar("SELECT count(*) FROM linkage_persons")
        .fetch_one(&pool)
        .await?;
    assert_eq!(persons, 6);
    pool.close().await;

    // The live consumer resumes after the rebuild: one new person, nothing doubled.
    let restarted = restart::<Clues>(&ns, &clues_db).await?;
    client
        .register_person(registration("rebuild-late", 7))
        .await?;
    eventually("the late person indexed", WAIT, || async {
        Ok((linkage_status(&restarted).await?.0 == 7).then_some(()))
    })
    .await?;
    assert_eq!(linkage_status(&restarted).await?, (7, 7));
    restarted.stop().await;

    // The registry's person view from its own event store.
    let registry_db = registry.database.clone();
    registry.running.stop().await;
    let (pool, done) =
        jiuzhu_tests::rebuild_person_view(&ns, &registry_db, "TRUNCATE persons").await?;
    assert_eq!(done, (7, 7));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM persons")
        .fetch_one(&pool)
        .await?;
    assert_eq!(rows, 7);
    pool.close().await;
    Ok(())
}

/// Consumers joining and leaving a projection's group while events flow (rebalances) neither
/// lose nor double-apply an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_neither_lose_nor_double_apply() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let first = start::<Clues>(&ns).await?;
    register_and_index(&registry.running, &first.running, "before-join", 20).await?;

    // A second member of the same group over the same projection database.
    let second = restart::<Clues>(&ns, &first.database).await?;
    let mut client = registry_client(&registry.running).await?;
    for n in 0..20 {
        client
            .register_person(registration(&format!("during-join-{n}"), n))
            .await?;
    }
    first.running.stop().await; // the first member leaves: its partitions move
    for n in 0..20 {
        client
            .register_person(registration(&format!("after-leave-{n}"), n))
            .await?;
    }
    let caught_up = eventually("all sixty persons indexed", WAIT, || async {
        Ok((linkage_status(&second).await?.0 == 60).then_some(()))
    })
    .await;
    if let Err(error) = caught_up {
        anyhow::bail!(
            "{error}; the remaining member has {:?} (persons, events)",
            linkage_status(&second).await?
        );
    }
    assert_eq!(linkage_status(&second).await?, (60, 60));
    second.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// An event a consumer could not apply (its table was missing, as after a failed migration) is
/// dead-lettered after its bounded attempts, listed by `jiuzhu dlq list`; once the table is
/// back, `jiuzhu dlq replay` sends it again to that consumer only, it is applied once, and the
/// replay is recorded with who did it and why (a second replay is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_replayed_through_the_idempotent_path() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let pool = clues.running.store.pool().clone();
    sqlx::query("ALTER TABLE linkage_persons RENAME TO linkage_persons_away")
        .execute(&pool)
        .await?;
    let mut client = registry_client(&registry.running).await?;
    client
        .register_person(registration("dead-then-replayed", 3))
        .await?;
    let consumer = "clues.linkage_index";
    let id: i64 = eventually("the event dead-lettered", WAIT, || async {
        Ok(sqlx::query_scalar(
            "SELECT id FROM dead_letters WHERE consumer = $1 AND resolution IS NULL",
        )
        .bind(consumer)
        .fetch_optional(&pool)
        .await?)
    })
    .await?;
    sqlx::query("ALTER TABLE linkage_persons_away RENAME TO linkage_persons")
        .execute(&pool)
        .await?;

    let jiuzhu = |args: &[&str]| -> anyhow::Result<(Option<i32>, String, String)> {
        let output = std::process::Command::new(jiuzhu_testkit::binary_path("jiuzhu")?)
            .arg("dlq")
            .args(args)
            .args(["--database-url", &clues.database.url])
            .output()?;
        Ok((
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    };
    let (code, listed, _) = jiuzhu(&["list", "--consumer", consumer])?;
    assert_eq!(code, Some(0));
    assert!(
        listed.contains(consumer) && listed.contains("linkage_persons"),
        "{listed}"
    );
    let brokers = kafka_brokers();
    let id_text = id.to_string();
    let replay = [
        "replay",
        "--brokers",
        &brokers,
        "--by",
        "operator-7",
        "--note",
        "the table is back",
        &id_text,
    ];
    let (code, said, stderr) = jiuzhu(&replay)?;
    assert_eq!(code, Some(0), "{said}{stderr}");
    eventually("the replayed person indexed", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 1).then_some(()))
    })
    .await?;
    let (resolution, by): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT resolution, resolved_by FROM dead_letters WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(
        (resolution.as_deref(), by.as_deref()),
        (Some("replayed"), Some("operator-7"))
    );
    let (code, _, stderr) = jiuzhu(&replay)?;
    assert_eq!(code, Some(1), "a second replay: {stderr}");
    assert!(stderr.contains("already replayed"), "{stderr}");
    // Applied once: the other consumers of the topic had it already and skipped it.
    let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM linkage_persons")
        .fetch_one(&pool)
        .await?;
    assert_eq!(indexed, 1);
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}
