//! What a consumer has received: a record decoded into an event envelope (or found poison,
//! with the reason), and the checkpoint that records how far a consumer got. Shared by the
//! projection and inbound consumers, the dead-letter path and rebuilds.

use std::collections::HashMap;

use jiuzhu_proto::common::EventEnvelope;
use prost::Message as _;
use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgConnection;

use crate::ProjectionError;
use crate::headers::header_map;

/// An event as a consumer receives it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub envelope: EventEnvelope,
    pub event_id: uuid::Uuid,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Record headers (trace context among them).
    pub headers: HashMap<String, String>,
}

impl Delivered {
    /// The event as one of the family `E`; `None` for a type `E` does not know (another
    /// service's event on the same topic, or a newer producer's).
    pub fn event<E: jiuzhu_eventstore::EventCodec>(&self) -> Result<Option<E>, ProjectionError> {
        Ok(E::decode_payload(
            &self.envelope.event_type,
            &self.envelope.payload,
        )?)
    }

    /// The span of applying this event in `consumer`, continuing the trace that produced it.
    pub fn span(&self, consumer: &str) -> tracing::Span {
        let span = tracing::info_span!(
            "kafka.process",
            otel.name = %format!("process {}", self.topic),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = %self.topic,
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.consumer.group.name = %consumer,
            messaging.destination.partition.id = self.partition,
            messaging.kafka.offset = self.offset,
            messaging.message.id = %self.event_id,
            trace_id = tracing::field::Empty,
        );
        jiuzhu_telemetry::set_parent_from_map(&span, &self.headers);
        jiuzhu_telemetry::record_trace_id(&span);
        span
    }
}

pub(crate) enum Decoded {
    Event(Box<Delivered>),
    Poison { reason: String },
}

pub(crate) fn decode(message: &OwnedMessage) -> Decoded {
    let Some(payload) = message.payload() else {
        return Decoded::Poison {
            reason: "record has no value".to_owned(),
        };
    };
    let envelope = match EventEnvelope::decode(payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            return Decoded::Poison {
                reason: format!("value is not an EventEnvelope: {error}"),
            };
        }
    };
    let event_id = match uuid::Uuid::parse_str(&envelope.event_id) {
        Ok(id) => id,
        Err(error) => {
            return Decoded::Poison {
                reason: format!(
                    "envelope event_id `{}` is not a UUID: {error}",
                    envelope.event_id
                ),
            };
        }
    };
    Decoded::Event(Box::new(Delivered {
        envelope,
        event_id,
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        headers: header_map(message.headers()),
    }))
}

pub(crate) async fn save_checkpoint(
    conn: &mut PgConnection,
    consumer: &str,
    topic: &str,
    partition: i32,
    next_offset: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO checkpoints (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (consumer, topic, partition) DO UPDATE SET \
         next_offset = GREATEST(checkpoints.next_offset, EXCLUDED.next_offset), updated_at = now()",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .execute(conn)
    .await?;
    Ok(())
}
