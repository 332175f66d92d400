use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiuzhu_eventstore::{EventStore, StoreError, StoredEvent};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::consumer::{Applier, Delivered, ProjectionError, fresh_events, next_offsets};
use crate::dead_letter::DeadLetters;
use crate::{ConsumerSettings, KafkaSettings, Projection};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("Kafka error during rebuild: {0}")]
    Kafka(#[from] KafkaError),
    #[error("database error during rebuild: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("rebuild stopped before it finished")]
    Interrupted,
}

/// How far a rebuild has got; `total` is what it knew of at the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    pub applied: u64,
    pub total: u64,
}

async fn reset<P: Projection>(pool: &PgPool, projection: &P) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    projection.reset(&mut tx).await?;
    for table in ["inbox", "checkpoints", "dead_letters"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE consumer = $1"))
            .bind(projection.name())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Empties the projection and re-applies every event of its topics, from the earliest retained
/// offset up to the end as it was when the rebuild started, then commits those offsets for the
/// projection's consumer group so that the live consumer continues from there. Stop the live
/// consumer first. Calls `progress` at most about once a second and once at the end.
pub async fn rebuild_from_topic<P: Projection>(
    pool: &PgPool,
    projection: &P,
    kafka: &KafkaSettings,
    settings: &ConsumerSettings,
    mut progress: impl FnMut(RebuildProgress),
) -> Result<RebuildProgress, RebuildError> {
    reset(pool, projection).await?;
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", kafka.group_id(projection.name()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut total = 0u64;
    for topic in projection.topics().iter().map(|t| kafka.topic(t)) {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(&topic, partition.id(), timeout)?;
            assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning)?;
            if high > low {
                ends.insert((topic.clone(), partition.id()), high);
                total += u64::try_from(high - low).unwrap_or(0);
            }
        }
    }
    let mut config = kafka.client_config();
    config.set("enable.idempotence", "true");
    let dead_letters = DeadLetters::new(config);
    let applier = Applier {
        pool,
        projection,
        settings,
        dead_letters: &dead_letters,
    };
    let never = CancellationToken::new();
    let mut report = RebuildProgress { applied: 0, total };
    let mut last_report = Instant::now();
    consumer.assign(&assignment)?;
    let mut committed = TopicPartitionList::new();
    // Read until every partition reached the end it had when the rebuild started, then until
    // the topics stay quiet for a moment: events that arrived meanwhile are applied too, and
    // the end is not trusted alone (some brokers undercount it).
    let mut quiet_since: Option<Instant> = None;
    while !ends.is_empty() || quiet_since.is_none_or(|t| t.elapsed() < Duration::from_secs(1)) {
        let mut batch = Vec::new();
        while batch.len() < settings.batch_size {
            match consumer.poll(Duration::from_millis(if batch.is_empty() {
                200
            } else {
                0
            })) {
                Some(Ok(message)) => {
                    let key = (message.topic().to_owned(), message.partition());
                    if ends
                        .get(&key)
                        .is_some_and(|end| message.offset() + 1 >= *end)
                    {
                        ends.remove(&key);
                    }
                    batch.push(message.detach());
                }
                Some(Err(error)) => return Err(error.into()),
                None => break,
            }
        }
        if batch.is_empty() {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            // An end that cannot be reached (records deleted meanwhile) must not hang the rebuild.
            if since.elapsed() > Duration::from_secs(30) {
                ends.clear();
            }
            continue;
        }
        quiet_since = None;
        if !applier.apply_batch(&batch, &never).await {
            return Err(RebuildError::Interrupted);
        }
        report.applied += batch.len() as u64;
        report.total = report.total.max(report.applied);
        for element in next_offsets(&batch).elements() {
            let _ = committed.add_partition_offset(
                element.topic(),
                element.partition(),
                element.offset(),
            );
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            progress(report);
            last_report = Instant::now();
        }
    }
    if committed.count() > 0 {
        consumer.commit(&committed, CommitMode::Sync)?;
    }
    progress(report);
    Ok(report)
}

/// Empties the projection and re-applies the service's own events from its event store, in
/// commit order per stream. For projections of a service's own events; run it while the
/// service is stopped. Events the live consumer redelivers later are skipped by the inbox.
pub async fn rebuild_from_store<P: Projection>(
    store: &EventStore,
    projection: &P,
    settings: &ConsumerSettings,
    mut progress: impl FnMut(RebuildProgress),
) -> Result<RebuildProgress, RebuildError> {
    reset(store.pool(), projection).await?;
    let (count, _) = store.totals().await?;
    let mut report = RebuildProgress {
        applied: 0,
        total: u64::try_from(count).unwrap_or(0),
    };
    let page = i64::try_from(settings.batch_size).unwrap_or(500);
    let mut after = 0;
    let mut last_report = Instant::now();
    loop {
        let events = store.read_all(after, page).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        let delivered: Vec<Delivered> = events
            .iter()
            .map(|e| delivered_from_store(store, e))
            .collect();
        let mut tx = store.pool().begin().await?;
        let fresh = fresh_events(&mut tx, projection.name(), &delivered).await?;
        projection.apply_many(&mut tx, &fresh).await?;
        tx.commit().await?;
        report.applied += events.len() as u64;
        if last_report.elapsed() >= Duration::from_secs(1) {
            progress(report);
            last_report = Instant::now();
        }
    }
    progress(report);
    Ok(report)
}

fn delivered_from_store(store: &EventStore, event: &StoredEvent) -> Delivered {
    Delivered {
        envelope: event.envelope(store.producer()),
        event_id: event.event_id,
        topic: store.topic().to_owned(),
        partition: -1,
        offset: event.position,
        headers: std::collections::HashMap::new(),
    }
}
