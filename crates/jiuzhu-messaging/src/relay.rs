use std::collections::HashMap;
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

/// One relay publishes a database's outbox at a time, so that per-key order holds even when
/// several replicas of a service run: the batch transaction takes this advisory lock.
const RELAY_LOCK: i64 = 0x6a69_757a_6875_0001;

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
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A batch the broker has acknowledged but the database does not yet know is published.
/// Dropping it without [`PublishedBatch::mark`] is exactly a relay crash after publishing.
#[derive(Debug)]
pub struct PublishedBatch {
    tx: Transaction<'static, Postgres>,
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
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
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
}

impl OutboxRelay {
    pub fn new(
        pool: PgPool,
        kafka: &KafkaSettings,
        settings: RelaySettings,
        client_id: &str,
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
        })
    }

    /// Claims the oldest unpublished rows (holding the relay lock), publishes them and waits for
    /// every acknowledgement. `Ok(None)` when another relay holds the lock.
    pub async fn claim_and_publish(&self) -> Result<Option<PublishedBatch>, RelayError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(None);
        }
        // Unpublished rows, not "rows after the last id": a transaction that committed late
        // with a lower id is picked up by the next poll.
        let rows = sqlx::query(
            "SELECT id, topic, partition_key, event_type, event_id::text AS event_id, envelope, \
             trace_context FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let trace_context: serde_json::Value = row.try_get("trace_context")?;
            batch.push(OutboxRow {
                id: row.try_get("id")?,
                topic: row.try_get("topic")?,
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
            ids: batch.iter().map(|row| row.id).collect(),
        }))
    }

    async fn publish(&self, batch: &[OutboxRow]) -> Result<(), RelayError> {
        let mut pending = Vec::with_capacity(batch.len());
        for row in batch {
            let span = tracing::info_span!(
                "kafka.publish",
                otel.name = %format!("{} publish", row.topic),
                otel.kind = "producer",
                messaging.system = "kafka",
                messaging.destination.name = %row.topic,
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
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1::int)",
        )
        .bind(self.settings.retention_hours)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    /// Reclaims the dead index entries published rows leave behind (outside any transaction).
    pub async fn vacuum(&self) -> Result<(), RelayError> {
        sqlx::query("VACUUM outbox").execute(&self.pool).await?;
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
                    tracing::warn!(%error, failures, "outbox relay batch failed; will retry");
                    idle * 2u32.saturating_pow(failures.min(8))
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
        if let Err(error) = self.publish_pending().await {
            tracing::warn!(%error, "final outbox flush failed; rows stay for the next start");
        }
    }
}
