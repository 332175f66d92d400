use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Decoded, decode, save_checkpoint};
use crate::headers::with_entries;

/// Suffix of dead-letter topics.
pub const DLQ_SUFFIX: &str = ".dlq";

/// Publishes messages a consumer gave up on to `<topic>.dlq`, with headers saying why:
/// `jiuzhu-dlq-reason`, `-consumer`, `-source-topic`, `-source-partition`, `-source-offset`,
/// `-attempts`, `-failed-at`, plus the original headers.
///
/// The producer is made on the first dead letter: most consumers never send one, and every
/// idle producer keeps a polling thread that wakes the CPU (a dozen per service).
pub(crate) struct DeadLetters {
    config: ClientConfig,
    producer: OnceLock<FutureProducer>,
}

impl DeadLetters {
    /// Dead letters sent with a producer of this configuration, once there is one to send.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            producer: OnceLock::new(),
        }
    }

    fn producer(&self) -> Result<&FutureProducer, String> {
        if let Some(producer) = self.producer.get() {
            return Ok(producer);
        }
        let made: FutureProducer = self.config.create().map_err(|e| e.to_string())?;
        Ok(self.producer.get_or_init(|| made))
    }

    /// Sends the message to its dead-letter topic, then records it as handled (inbox, local
    /// dead-letter log and checkpoint) so that the consumer moves on. Retries without end while
    /// Kafka or the database is unavailable; `false` if `shutdown` came first.
    pub async fn send(
        &self,
        pool: &PgPool,
        consumer: &str,
        message: &OwnedMessage,
        reason: &str,
        attempts: u32,
        shutdown: &CancellationToken,
    ) -> bool {
        let topic = format!("{}{DLQ_SUFFIX}", message.topic());
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts_text = attempts.to_string();
        let failed_at = chrono::Utc::now().to_rfc3339();
        let mut headers = message.headers().cloned().unwrap_or_else(OwnedHeaders::new);
        headers = with_entries(
            headers,
            [
                ("jiuzhu-dlq-reason", reason),
                ("jiuzhu-dlq-consumer", consumer),
                ("jiuzhu-dlq-source-topic", message.topic()),
                ("jiuzhu-dlq-source-partition", partition.as_str()),
                ("jiuzhu-dlq-source-offset", offset.as_str()),
                ("jiuzhu-dlq-attempts", attempts_text.as_str()),
                ("jiuzhu-dlq-failed-at", failed_at.as_str()),
            ],
        );
        let mut wait = Duration::from_millis(100);
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&topic).headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            let outcome = match self.producer() {
                Ok(producer) => match producer.send(record, Duration::from_secs(10)).await {
                    Ok(_) => self.record(pool, consumer, message, reason, attempts).await,
                    Err((error, _)) => Err(error.to_string()),
                },
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(%error, %topic, "dead-lettering failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn record(
        &self,
        pool: &PgPool,
        consumer: &str,
        message: &OwnedMessage,
        reason: &str,
        attempts: u32,
    ) -> Result<(), String> {
        let event_id = match decode(message) {
            Decoded::Event(event) => Some(event.event_id),
            Decoded::Poison { .. } => None,
        };
        let result: Result<(), sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            if let Some(event_id) = event_id {
                sqlx::query("INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(consumer)
                    .bind(event_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO dead_letters (consumer, topic, partition, \"offset\", event_id, reason, attempts) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(consumer)
            .bind(message.topic())
            .bind(message.partition())
            .bind(message.offset())
            .bind(event_id)
            .bind(reason)
            .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
            save_checkpoint(&mut tx, consumer, message.topic(), message.partition(), message.offset() + 1)
                .await?;
            tx.commit().await
        }
        .await;
        result.map_err(|e| e.to_string())
    }
}
