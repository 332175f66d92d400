use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::headers::{
    CONTENT_TYPE, ENVELOPE_CONTENT_TYPE, EVENT_ID_HEADER, EVENT_TYPE_HEADER, with_entries,
};
use crate::{KafkaSettings, RelaySettings};

/// One relay publishes an outbox table at a time, so that per-key order holds even when
/// several replicas of a service run: the batch transaction takes an advisory lock, this one
/// for the service's own outbox and one derived from the name for any other table.
const RELAY_LOCK: i64 = 0x6a69_757a_6875_0001;

/// Which outbox table a relay publishes and how its rows name their topic. Every table has the
/// columns of `outbox` (`id`, `partition_key`, `event_type`, `event_id`, `envelope`,
/// `trace_context`, `published_at`), a column naming the topic, and any columns sent as extra
/// headers.
#[derive(Clone)]
pub struct OutboxTable {
    name: &'static str,
    topic_column: &'static str,
    topic_of: Arc<dyn Fn(&str) -> String + Send + Sync>,
    headers: Vec<(&'static str, &'static str)>,
    lock: i64,
}

impl std::fmt::Debug for OutboxTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxTable")
            .field("name", &self.name)
            .field("topic_column", &self.topic_column)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl OutboxTable {
    /// The service's own outbox: each row holds its topic.
    pub fn service() -> Self {
        Self {
            name: "outbox",
            topic_column: "topic",
            topic_of: Arc::new(str::to_owned),
            headers: Vec::new(),
            lock: RELAY_LOCK,
        }
    }

    /// Another outbox table: `topic_of` turns the value of `topic_column` into the topic.
    pub fn new(
        name: &'static str,
        topic_column: &'static str,
        topic_of: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        // FNV-1a of the name: a lock of its own, the same in every replica.
        let lock = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        Self {
            name,
            topic_column,
            topic_of: Arc::new(topic_of),
            headers: Vec::new(),
            lock: i64::from_ne_bytes(lock.to_ne_bytes()),
        }
    }

    /// Sends the value of `column` (a column or an SQL expression over the row, read as text) as
    /// the Kafka header `header` with every row.
    pub fn header(mut self, header: &'static str, column: &'static str) -> Self {
        self.headers.push((header, column));
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("Kafka producer could not be created: {0}")]
    Producer(#[source] KafkaError),
    #[error("publishing outbox row {outbox_id} to `{topic}` failed: {source}")]
    Publish {
        outbox_id: i64,
        topic: String,
        source: KafkaError,
    },
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Moves committed outbox rows to Kafka, marking them published only after the broker
/// acknowledged them. A crash between publish and mark republishes the batch: consumers
/// deduplicate on the event id, so the effect happens once.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    producer: FutureProducer,
    settings: RelaySettings,
    table: OutboxTable,
    /// Rows published since the process started (relay throughput), shared with the metrics.
    published: Arc<AtomicU64>,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("table", &self.table)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A batch the broker has acknowledged but the database does not yet know is published.
/// Dropping it without [`PublishedBatch::mark`] is exactly a relay crash after publishing.
#[derive(Debug)]
pub struct PublishedBatch {
    tx: Transaction<'static, Postgres>,
    table: &'static str,
    ids: Vec<i64>,
}

impl PublishedBatch {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Records the batch as published.
    pub async fn mark(mut self) -> Result<usize, RelayError> {
        if !self.ids.is_empty() {
            sqlx::query(&format!(
                "UPDATE {} SET published_at = now() WHERE id = ANY($1)",
                self.table
            ))
            .bind(&self.ids)
            .execute(&mut *self.tx)
            .await?;
        }
        self.tx.commit().await?;
        Ok(self.ids.len())
    }
}

struct OutboxRow {
    id: i64,
    topic: String,
    partition_key: String,
    event_type: String,
    event_id: String,
    envelope: Vec<u8>,
    trace_context: HashMap<String, String>,
    headers: Vec<(&'static str, String)>,
}

impl OutboxRelay {
    /// The relay of the service's own outbox.
    pub fn new(
        pool: PgPool,
        kafka: &KafkaSettings,
        settings: RelaySettings,
        client_id: &str,
    ) -> Result<Self, RelayError> {
        Self::for_table(pool, kafka, settings, client_id, OutboxTable::service())
    }

    /// The relay of another outbox table (the registry's department copies).
    pub fn for_table(
        pool: PgPool,
        kafka: &KafkaSettings,
        settings: RelaySettings,
        client_id: &str,
        table: OutboxTable,
    ) -> Result<Self, RelayError> {
        let producer = kafka
            .client_config()
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(RelayError::Producer)?;
        Ok(Self {
            pool,
            producer,
            settings,
            table,
            published: Arc::default(),
        })
    }

    /// Counts the rows this relay publishes into `counter` (shared by a service's relays and
    /// read by its metrics).
    pub fn counting(mut self, counter: Arc<AtomicU64>) -> Self {
        self.published = counter;
        self
    }

    /// Claims the oldest unpublished rows (holding the relay lock), publishes them and waits for
    /// every acknowledgement. `Ok(None)` when another relay holds the lock.
    pub async fn claim_and_publish(&self) -> Result<Option<PublishedBatch>, RelayError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(self.table.lock)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(None);
        }
        // Unpublished rows, not "rows after the last id": a transaction that committed late
        // with a lower id is picked up by the next poll.
        let table = &self.table;
        let extra: String = table
            .headers
            .iter()
            .enumerate()
            .map(|(i, (_, column))| format!(", ({column})::text AS header_{i}"))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT id, {topic}::text AS topic, partition_key, event_type, event_id::text AS event_id, \
             envelope, trace_context{extra} FROM {name} WHERE published_at IS NULL ORDER BY id \
             LIMIT $1",
            topic = table.topic_column,
            name = table.name,
        ))
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let trace_context: serde_json::Value = row.try_get("trace_context")?;
            let mut headers = Vec::with_capacity(table.headers.len());
            for (i, (header, _)) in table.headers.iter().enumerate() {
                headers.push((*header, row.try_get(format!("header_{i}").as_str())?));
            }
            let topic: String = row.try_get("topic")?;
            batch.push(OutboxRow {
                id: row.try_get("id")?,
                topic: (table.topic_of)(&topic),
                headers,
                partition_key: row.try_get("partition_key")?,
                event_type: row.try_get("event_type")?,
                event_id: row.try_get("event_id")?,
                envelope: row.try_get("envelope")?,
                trace_context: serde_json::from_value(trace_context).unwrap_or_default(),
            });
        }
        self.publish(&batch).await?;
        Ok(Some(PublishedBatch {
            tx,
            table: self.table.name,
            ids: batch.iter().map(|row| row.id).collect(),
        }))
    }

    async fn publish(&self, batch: &[OutboxRow]) -> Result<(), RelayError> {
        let mut pending = Vec::with_capacity(batch.len());
        for row in batch {
            let span = tracing::info_span!(
                "kafka.publish",
                otel.name = %format!("send {}", row.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.destination.name = %row.topic,
                messaging.operation.type = "send",
                messaging.operation.name = "send",
                messaging.message.id = %row.event_id,
                event_type = %row.event_type,
            );
            jiuzhu_telemetry::set_parent_from_map(&span, &row.trace_context);
            let context = span.in_scope(jiuzhu_telemetry::current_context_to_map);
            let mut entries: Vec<(&str, &str)> = vec![
                (EVENT_TYPE_HEADER, row.event_type.as_str()),
                (EVENT_ID_HEADER, row.event_id.as_str()),
                (CONTENT_TYPE, ENVELOPE_CONTENT_TYPE),
            ];
            entries.extend(row.headers.iter().map(|(k, v)| (*k, v.as_str())));
            entries.extend(context.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let headers = with_entries(OwnedHeaders::new(), entries);
            let mut record = FutureRecord::to(&row.topic)
                .key(&row.partition_key)
                .payload(&row.envelope)
                .headers(headers);
            let delivery = loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((source, _)) => {
                        return Err(RelayError::Publish {
                            outbox_id: row.id,
                            topic: row.topic.clone(),
                            source,
                        });
                    }
                }
            };
            pending.push((row, delivery.instrument(span)));
        }
        let (rows, deliveries): (Vec<_>, Vec<_>) = pending.into_iter().unzip();
        for (row, outcome) in rows.into_iter().zip(join_all(deliveries).await) {
            let source = match outcome {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => error,
                Err(_cancelled) => KafkaError::Canceled,
            };
            return Err(RelayError::Publish {
                outbox_id: row.id,
                topic: row.topic.clone(),
                source,
            });
        }
        Ok(())
    }

    /// Publishes and marks one batch; returns how many rows it published.
    pub async fn publish_pending(&self) -> Result<usize, RelayError> {
        match self.claim_and_publish().await? {
            Some(batch) => batch.mark().await,
            None => Ok(0),
        }
    }

    /// Deletes published rows older than the retention period.
    pub async fn prune(&self) -> Result<u64, RelayError> {
        let deleted = sqlx::query(&format!(
            "DELETE FROM {} WHERE published_at < now() - make_interval(hours => $1::int)",
            self.table.name
        ))
        .bind(self.settings.retention_hours)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    /// Reclaims the dead index entries published rows leave behind (outside any transaction).
    pub async fn vacuum(&self) -> Result<(), RelayError> {
        sqlx::query(&format!("VACUUM {}", self.table.name))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Runs until `shutdown`, then publishes what is left once more before returning.
    pub async fn run(self, shutdown: CancellationToken) {
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        let full = usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX);
        let mut failures: u32 = 0;
        let mut last_prune = std::time::Instant::now();
        let mut since_vacuum: u64 = 0;
        loop {
            let pause = match self.publish_pending().await {
                Ok(published) => {
                    self.published
                        .fetch_add(published as u64, Ordering::Relaxed);
                    failures = 0;
                    since_vacuum += published as u64;
                    if published >= full {
                        Duration::ZERO
                    } else {
                        if since_vacuum >= self.settings.vacuum_after_rows {
                            since_vacuum = 0;
                            match self.vacuum().await {
                                Ok(()) => tracing::debug!("vacuumed the outbox"),
                                Err(error) => tracing::warn!(%error, "outbox vacuum failed"),
                            }
                        }
                        idle
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, table = self.table.name, "outbox relay batch failed; will retry");
                    let pause = idle * 2u32.saturating_pow(failures.min(8));
                    pause + crate::jitter(pause / 2)
                }
            };
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = std::time::Instant::now();
                match self.prune().await {
                    Ok(deleted) => tracing::debug!(deleted, "pruned published outbox rows"),
                    Err(error) => tracing::warn!(%error, "outbox prune failed"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        match self.publish_pending().await {
            Ok(published) => {
                self.published
                    .fetch_add(published as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, table = self.table.name, "final outbox flush failed; rows stay for the next start");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outbox_table_has_its_own_relay_lock_the_same_in_every_replica() {
        let shares = OutboxTable::new("share_outbox", "department", str::to_owned);
        assert_eq!(
            shares.lock,
            OutboxTable::new("share_outbox", "department", str::to_owned).lock
        );
        assert_ne!(shares.lock, OutboxTable::service().lock);
        assert_ne!(
            shares.lock,
            OutboxTable::new("other_outbox", "department", str::to_owned).lock
        );
        let named = OutboxTable::new("share_outbox", "department", |d| format!("t.{d}"));
        assert_eq!((named.topic_of)("health"), "t.health");
    }
}
