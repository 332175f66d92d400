//! Consumers of inbound topics (`jiuzhu.inbound.<source>.v1`): records that departments and
//! case-handling systems write in their own message types, not our event envelopes. Handlers
//! apply one record at a time and must be idempotent on the record's own natural key (a record
//! can arrive again after a crash), because there is no envelope event id to deduplicate on. A
//! record that cannot apply goes to `<topic>.dlq` with the reason, never half-applied.

use std::collections::HashMap;
use std::future::Future;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::consumer::{backoff, dead_letters, group_consumer, leave_group, next_offsets, receive};
use crate::dead_letter::DeadLetters;
use crate::delivery::save_checkpoint;
use crate::headers::header_map;
use crate::{ConsumerSettings, KafkaSettings, ProjectionError};

/// `jiuzhu.inbound.<source>.v1`.
pub fn inbound_topic(source: &str) -> String {
    format!("jiuzhu.inbound.{source}.v1")
}

/// The source an inbound topic is named after (`cases`, `civil_affairs`, …), whatever the
/// environment's prefix; `None` for a topic that is not inbound.
pub fn inbound_source(topic: &str) -> Option<&str> {
    let start = topic.rfind("jiuzhu.inbound.")? + "jiuzhu.inbound.".len();
    topic[start..].strip_suffix(".v1")
}

/// Header naming the protobuf message of an inbound record, for topics that carry more than
/// one kind (a department's topic carries registry records and referral updates).
pub const MESSAGE_TYPE_HEADER: &str = "jiuzhu-message-type";

/// One record of an inbound topic.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl InboundRecord {
    /// A record of a service topic: its event envelope, and the event as one of the family
    /// `E` (`None` for a type `E` does not know). A record that is not an envelope is rejected.
    pub fn event<E: jiuzhu_eventstore::EventCodec>(
        &self,
    ) -> Result<(jiuzhu_proto::common::EventEnvelope, Option<E>), ProjectionError> {
        use prost::Message as _;
        let envelope = jiuzhu_proto::common::EventEnvelope::decode(self.payload.as_slice())?;
        let event = E::decode_payload(&envelope.event_type, &envelope.payload)?;
        Ok((envelope, event))
    }

    /// The message type the sender named (`jiuzhu-message-type`), if any.
    pub fn message_type(&self) -> Option<&str> {
        self.headers.get(MESSAGE_TYPE_HEADER).map(String::as_str)
    }
}

/// Applies inbound records. `handle` runs its own transactions and must be idempotent.
pub trait InboundHandler: Send + Sync + 'static {
    /// Unique within the platform; names the consumer group.
    fn name(&self) -> &str;
    /// Topics read (before the environment's prefix).
    fn topics(&self) -> Vec<String>;
    /// Whether the record is one this handler applies: a department's topic carries messages
    /// for several services, and only a handler's own are checked (and dead-lettered) by it.
    fn handles(&self, _record: &InboundRecord) -> bool {
        true
    }
    /// Applies one record. `Rejected`/`Decode` errors send it to the dead-letter topic at once.
    fn handle(
        &self,
        record: &InboundRecord,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// A shared handler is a handler.
impl<H: InboundHandler> InboundHandler for std::sync::Arc<H> {
    fn name(&self) -> &str {
        H::name(self)
    }
    fn topics(&self) -> Vec<String> {
        H::topics(self)
    }
    fn handles(&self, record: &InboundRecord) -> bool {
        H::handles(self, record)
    }
    fn handle(
        &self,
        record: &InboundRecord,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        H::handle(self, record)
    }
}

/// A service's typed reaction to other services' events, named by what it does. The consumer
/// decodes the envelope into the family `Events` (a type the family does not know is skipped:
/// a newer producer's event) and classifies a failure once (see [`ProjectionError`]); the
/// reaction runs its own commands, under keys derived from the event, so redelivery does
/// nothing twice.
pub trait Reaction: Send + Sync + 'static {
    type Events: jiuzhu_eventstore::EventCodec + Send;
    /// Unique within the platform; names the consumer group.
    fn name(&self) -> &str;
    /// Service topics read (before the environment's prefix).
    fn topics(&self) -> Vec<String>;
    /// Reacts to one event of the family, with the envelope it came in.
    fn react(
        &self,
        envelope: &jiuzhu_proto::common::EventEnvelope,
        event: Self::Events,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
}

/// A reaction consumes like any inbound handler.
#[derive(Debug)]
pub struct Reacting<R>(pub R);

impl<R: Reaction> InboundHandler for Reacting<R> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn topics(&self) -> Vec<String> {
        self.0.topics()
    }
    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        match record.event::<R::Events>()? {
            (envelope, Some(event)) => self.0.react(&envelope, event).await,
            (_, None) => Ok(()),
        }
    }
}

/// Runs an inbound handler as a member of its consumer group.
pub struct InboundRunner<H: InboundHandler> {
    pool: PgPool,
    handler: H,
    kafka: KafkaSettings,
    settings: ConsumerSettings,
    client_id: String,
}

impl<H: InboundHandler> std::fmt::Debug for InboundRunner<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundRunner")
            .field("handler", &self.handler.name())
            .finish_non_exhaustive()
    }
}

impl<H: InboundHandler> InboundRunner<H> {
    pub fn new(
        pool: PgPool,
        handler: H,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        client_id: &str,
    ) -> Self {
        Self {
            pool,
            handler,
            kafka,
            settings,
            client_id: client_id.to_owned(),
        }
    }

    /// Consumes until `shutdown`; a record's offset is stored for commit once it is handled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), KafkaError> {
        let consumer = group_consumer(
            &self.kafka,
            &self.settings,
            self.handler.name(),
            &self.client_id,
        )?;
        let topics: Vec<String> = self
            .handler
            .topics()
            .iter()
            .map(|t| self.kafka.topic(t))
            .collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
        let dead_letters = dead_letters(&self.kafka, &self.client_id);
        tracing::info!(
            handler = self.handler.name(),
            ?topics,
            "inbound consumer started"
        );
        loop {
            let Some(message) = receive(&consumer, &shutdown, self.handler.name()).await else {
                break;
            };
            if !self.process(&message, &dead_letters, &shutdown).await {
                break;
            }
            if let Err(error) =
                consumer.store_offsets(&next_offsets(std::slice::from_ref(&message)))
            {
                tracing::warn!(%error, "offset not stored for commit");
            }
        }
        leave_group(consumer, self.handler.name()).await;
        tracing::info!(handler = self.handler.name(), "inbound consumer stopped");
        Ok(())
    }

    /// Saves the checkpoint after a handled record. While the database is down it is tried
    /// again: a checkpoint lost to an outage would leave the partition's lag one behind for
    /// ever (until the next record) and hide real stalls. Any other failure is only reported,
    /// since the offset commit moves the group on. `false` if stopped first (the record is then
    /// handled again after a restart, which its idempotence makes harmless).
    async fn record_progress(&self, record: &InboundRecord, shutdown: &CancellationToken) -> bool {
        let mut outages = 0u32;
        loop {
            let saved = async {
                let mut tx = self.pool.begin().await?;
                save_checkpoint(
                    &mut tx,
                    self.handler.name(),
                    &record.topic,
                    record.partition,
                    record.offset + 1,
                )
                .await?;
                tx.commit().await
            }
            .await;
            match saved {
                Ok(()) => return true,
                Err(error) if jiuzhu_errors::is_outage(&error) => {
                    outages = outages.saturating_add(1);
                    tracing::warn!(%error, outages, "inbound checkpoint not saved; retrying");
                    if !backoff(&self.settings, outages, shutdown).await {
                        return false;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "inbound checkpoint not saved");
                    return true;
                }
            }
        }
    }

    /// Handles one record to the end: applied, or dead-lettered. `false` if stopped first.
    async fn process(
        &self,
        message: &OwnedMessage,
        dead_letters: &DeadLetters,
        shutdown: &CancellationToken,
    ) -> bool {
        let record = InboundRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers: header_map(message.headers()),
        };
        let mut attempts = 0u32;
        let mut outages = 0u32;
        loop {
            let span = tracing::info_span!(
                "kafka.process",
                otel.name = %format!("process {}", record.topic),
                otel.kind = "consumer",
                messaging.system = "kafka",
                messaging.destination.name = %record.topic,
                messaging.operation.type = "process",
                messaging.operation.name = "process",
                messaging.kafka.offset = record.offset,
                trace_id = tracing::field::Empty,
            );
            jiuzhu_telemetry::set_parent_from_map(&span, &record.headers);
            jiuzhu_telemetry::record_trace_id(&span);
            let outcome = self.handler.handle(&record).instrument(span).await;
            let error = match outcome {
                Ok(()) => return self.record_progress(&record, shutdown).await,
                Err(error) => error,
            };
            if error.is_infrastructure() {
                outages = outages.saturating_add(1);
                tracing::warn!(%error, "inbound handler's store unavailable; retrying");
                if !backoff(&self.settings, outages, shutdown).await {
                    return false;
                }
                continue;
            }
            attempts += 1;
            if error.is_permanent() || attempts >= self.settings.max_attempts {
                tracing::warn!(%error, attempts, topic = %record.topic, offset = record.offset, "inbound record dead-lettered");
                return dead_letters
                    .send(
                        &self.pool,
                        self.handler.name(),
                        message,
                        &error.to_string(),
                        attempts,
                        shutdown,
                    )
                    .await;
            }
            if !backoff(&self.settings, attempts, shutdown).await {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::inbound_source;

    #[test]
    fn the_source_comes_from_the_topic_name() {
        assert_eq!(
            inbound_source("jiuzhu.inbound.civil_affairs.v1"),
            Some("civil_affairs")
        );
        assert_eq!(
            inbound_source("staging.jiuzhu.inbound.health.v1"),
            Some("health")
        );
        assert_eq!(inbound_source("jiuzhu.registry.events.v1"), None);
    }
}
