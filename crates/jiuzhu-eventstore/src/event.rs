use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;

/// A service's event type family, encoded as protobuf payloads named by their full type name.
/// Implemented by [`crate::event_enum!`].
pub trait EventCodec: Sized {
    fn event_type(&self) -> String;
    fn encode_payload(&self) -> Vec<u8>;
    /// `Ok(None)` for a type this family does not know (a newer producer's event).
    fn decode_payload(event_type: &str, payload: &[u8])
    -> Result<Option<Self>, prost::DecodeError>;
}

/// Domain state rebuilt from its own events; it decides, events record.
pub trait Aggregate: Default {
    type Event: EventCodec;
    /// What one stream of this aggregate is called in messages ("relief case").
    const KIND: &'static str = "stream";
    fn apply(&mut self, event: &Self::Event);
    /// The key that orders this aggregate's events on Kafka: the person they are about, so one
    /// person's events keep their order across streams. `None` uses the stream id.
    fn partition_key(&self) -> Option<&str> {
        None
    }
}

/// An aggregate whose state can be saved as a snapshot, so that long streams load quickly.
pub trait Snapshotting: Aggregate {
    fn to_snapshot(&self) -> Vec<u8>;
    fn from_snapshot(bytes: &[u8]) -> Result<Self, String>;
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub payload: Vec<u8>,
}

impl NewEvent {
    pub fn from_codec<E: EventCodec>(event: &E) -> Self {
        Self {
            event_type: event.event_type(),
            payload: event.encode_payload(),
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    pub causation_id: String,
    pub partition_key: String,
    pub payload: Vec<u8>,
}

impl StoredEvent {
    /// Decodes the payload; `Ok(None)` for a type `E` does not know.
    pub fn decode<E: EventCodec>(&self) -> Result<Option<E>, StoreError> {
        E::decode_payload(&self.event_type, &self.payload).map_err(|source| StoreError::Decode {
            event_id: self.event_id,
            event_type: self.event_type.clone(),
            source,
        })
    }

    /// The envelope published to Kafka for this event.
    pub fn envelope(&self, producer: &str) -> jiuzhu_proto::common::EventEnvelope {
        jiuzhu_proto::common::EventEnvelope {
            event_id: self.event_id.to_string(),
            event_type: self.event_type.clone(),
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
            occurred_at: Some(jiuzhu_proto::time::timestamp(self.occurred_at)),
            producer: producer.to_owned(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            payload: self.payload.clone(),
            partition_key: self.partition_key.clone(),
        }
    }
}
