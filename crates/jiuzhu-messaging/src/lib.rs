//! Kafka plumbing shared by every Jiuzhu service: settings and topic provisioning, the outbox
//! relay that moves committed events to Kafka with an idempotent producer, projection consumers
//! that apply each event exactly once (inbox deduplication in the projection's own transaction,
//! offsets stored for the periodic commit only after it), dead-letter topics for messages that keep failing, and
//! rebuilds of a projection from its topic or from the local event store.

mod consumer;
mod dead_letter;
pub mod dead_letters;
mod delivery;
mod headers;
mod inbound;
mod rebuild;
mod relay;
mod settings;
mod topics;

pub use consumer::{Delivered, Projection, ProjectionError, ProjectionRunner, jitter};
pub use dead_letter::DLQ_SUFFIX;
pub use headers::{
    CONTENT_TYPE, ENVELOPE_CONTENT_TYPE, EVENT_ID_HEADER, EVENT_TYPE_HEADER, header_map,
    with_entries,
};
pub use inbound::{
    InboundHandler, InboundRecord, InboundRunner, MESSAGE_TYPE_HEADER, Reacting, Reaction,
    inbound_source, inbound_topic,
};
pub use rebuild::{RebuildError, RebuildProgress, rebuild_from_store, rebuild_from_topic};
pub use relay::{OutboxRelay, OutboxTable, PublishedBatch, RelayError};
pub use settings::{ConsumerSettings, KafkaSettings, RelaySettings};
pub use topics::{
    BrokerProbe, TopicError, dead_letter_topic, ensure_topics, never_written, service_topic,
};

/// Migrations for the consumer tables (versions 100..199).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
