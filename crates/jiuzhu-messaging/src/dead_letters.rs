//! Working with dead letters (`jiuzhu dlq`): list what each consumer of a service gave up on and
//! why, look at one, replay it, or discard it. A replay sends the original message to its topic
//! again and forgets it in that consumer's inbox only, so it goes through the same idempotent
//! path as any delivery: the consumer applies it once, every other consumer of the topic skips
//! it as already seen. Each replay and discard records who did it and why.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use uuid::Uuid;

use crate::KafkaSettings;

/// One message a consumer gave up on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_id: Option<Uuid>,
    pub reason: String,
    pub attempts: i32,
    pub dead_at: chrono::DateTime<chrono::Utc>,
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("no dead letter {0}")]
    NotFound(i64),
    #[error("dead letter {id} was already {resolution} by {by}")]
    Resolved {
        id: i64,
        resolution: String,
        by: String,
    },
    #[error(
        "the original message ({topic} partition {partition} offset {offset}) is no longer on the broker: {why}"
    )]
    Gone {
        topic: String,
        partition: i32,
        offset: i64,
        why: String,
    },
    #[error("say who you are (--by) and why (--note)")]
    Unsigned,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub consumer: Option<String>,
    pub topic: Option<String>,
    pub reason_contains: Option<String>,
    /// Replayed and discarded ones too.
    pub resolved: bool,
}

const COLUMNS: &str = "id, consumer, topic, partition, \"offset\", event_id, reason, attempts, \
                       dead_at, resolution, resolved_by, note";

/// The dead letters `filter` selects, oldest first.
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Vec<DeadLetter>, DeadLetterError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters \
         WHERE ($1::text IS NULL OR consumer = $1) AND ($2::text IS NULL OR topic = $2) \
         AND ($3::text IS NULL OR strpos(reason, $3) > 0) AND ($4 OR resolution IS NULL) \
         ORDER BY id"
    ))
    .bind(&filter.consumer)
    .bind(&filter.topic)
    .bind(&filter.reason_contains)
    .bind(filter.resolved)
    .fetch_all(pool)
    .await?)
}

/// One dead letter.
pub async fn get(pool: &PgPool, id: i64) -> Result<DeadLetter, DeadLetterError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM dead_letters WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(DeadLetterError::NotFound(id))
}

/// Unresolved dead letters per consumer (for `/metrics`).
pub async fn open_by_consumer(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT consumer, count(*) FROM dead_letters WHERE resolution IS NULL \
         GROUP BY consumer ORDER BY consumer",
    )
    .fetch_all(pool)
    .await
}

/// The original message of a dead letter, read from its topic (key, payload, headers).
pub struct Original {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Reads the message the dead letter was made from, where it was first delivered.
pub fn original(kafka: &KafkaSettings, letter: &DeadLetter) -> Result<Original, DeadLetterError> {
    let gone = |why: String| DeadLetterError::Gone {
        topic: letter.topic.clone(),
        partition: letter.partition,
        offset: letter.offset,
        why,
    };
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "jiuzhu-dlq-tool")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(
        &letter.topic,
        letter.partition,
        Offset::Offset(letter.offset),
    )?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.offset() == letter.offset => {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(Original {
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
            Some(Ok(message)) if message.offset() > letter.offset => {
                return Err(gone(format!(
                    "the partition now starts at offset {}",
                    message.offset()
                )));
            }
            Some(Ok(_)) | None => {}
            Some(Err(error)) => return Err(gone(error.to_string())),
        }
    }
    Err(gone("nothing was read within 15 s".to_owned()))
}

fn signed(by: &str, note: &str) -> Result<(), DeadLetterError> {
    if by.trim().is_empty() || note.trim().is_empty() {
        return Err(DeadLetterError::Unsigned);
    }
    Ok(())
}

/// Locks the unresolved dead letter `id` in `tx`, or says why it cannot be resolved.
async fn lock_open(tx: &mut sqlx::PgConnection, id: i64) -> Result<DeadLetter, DeadLetterError> {
    let letter: DeadLetter = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(DeadLetterError::NotFound(id))?;
    if let Some(resolution) = &letter.resolution {
        return Err(DeadLetterError::Resolved {
            id,
            resolution: resolution.clone(),
            by: letter.resolved_by.clone().unwrap_or_default(),
        });
    }
    Ok(letter)
}

async fn resolve(
    tx: &mut sqlx::PgConnection,
    id: i64,
    resolution: &str,
    by: &str,
    note: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE dead_letters SET resolution = $2, resolved_by = $3, resolved_at = now(), \
         note = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(resolution)
    .bind(by.trim())
    .bind(note.trim())
    .execute(tx)
    .await?;
    Ok(())
}

/// Sends dead letter `id`'s original message to its topic again, for its consumer only (see the
/// module documentation), and records the replay. The consumer's inbox forgets the event in the
/// same transaction that records the replay, committed only once the broker has the message:
/// a consumer meeting it meanwhile waits for that transaction.
pub async fn replay(
    pool: &PgPool,
    kafka: &KafkaSettings,
    id: i64,
    by: &str,
    note: &str,
) -> Result<DeadLetter, DeadLetterError> {
    signed(by, note)?;
    let letter = get(pool, id).await?;
    let settings = kafka.clone();
    let fetched = letter.clone();
    let original = tokio::task::spawn_blocking(move || original(&settings, &fetched))
        .await
        .map_err(|error| DeadLetterError::Gone {
            topic: letter.topic.clone(),
            partition: letter.partition,
            offset: letter.offset,
            why: error.to_string(),
        })??;
    let producer: FutureProducer = kafka
        .client_config()
        .set("client.id", "jiuzhu-dlq-tool")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    let mut tx = pool.begin().await?;
    let letter = lock_open(&mut tx, id).await?;
    if let Some(event_id) = letter.event_id {
        sqlx::query("DELETE FROM inbox WHERE consumer = $1 AND event_id = $2")
            .bind(&letter.consumer)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
    }
    resolve(&mut tx, id, "replayed", by, note).await?;
    let mut headers = OwnedHeaders::new();
    for (key, value) in &original.headers {
        headers = headers.insert(rdkafka::message::Header {
            key,
            value: Some(value.as_slice()),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&letter.topic).headers(headers);
    if let Some(key) = &original.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &original.payload {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, Duration::from_secs(15))
        .await
        .map_err(|(error, _)| error)?;
    tx.commit().await?;
    get(pool, id).await
}

/// Records that dead letter `id` is not to be applied, by whom and why.
pub async fn discard(
    pool: &PgPool,
    id: i64,
    by: &str,
    note: &str,
) -> Result<DeadLetter, DeadLetterError> {
    signed(by, note)?;
    let mut tx = pool.begin().await?;
    lock_open(&mut tx, id).await?;
    resolve(&mut tx, id, "discarded", by, note).await?;
    tx.commit().await?;
    get(pool, id).await
}
