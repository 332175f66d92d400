//! The event store every Jiuzhu service writes its facts to: an append-only PostgreSQL table of
//! events per stream with optimistic concurrency (`(stream_id, version)` is unique, so of two
//! writers that read the same version exactly one wins), optional snapshots, a command log that
//! makes every command idempotent on the caller's request id, and a transactional outbox: the
//! Kafka-bound envelope of each event is written in the same statement as the event, so an
//! event is either stored and eventually published, or neither. Commands that need no
//! transaction of their own commit together (group commit, `group`).

mod command;
mod error;
mod event;
mod group;
mod store;
mod unit_of_work;
mod write;

pub mod given_when_then;

pub use command::Decision;
pub use error::StoreError;
pub use event::{Aggregate, EventCodec, NewEvent, Snapshotting, StoredEvent};

/// Events for one stream in a multi-stream append ([`UnitOfWork::append_many`]).
#[derive(Debug, Clone)]
pub struct Append {
    pub stream_id: String,
    /// 0 for a new stream.
    pub expected_version: i64,
    pub partition_key: String,
    pub events: Vec<NewEvent>,
}
pub use store::EventStore;
pub use unit_of_work::{Begun, CommandRequest, Decided, UnitOfWork};

/// Migrations for the platform tables (versions 1..99); run before a service's own.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Declares an enum over prost event messages and implements [`EventCodec`] for it, using each
/// message's full protobuf name as its event type. Unknown types decode to `None` so that a
/// consumer keeps working when a producer adds events.
#[macro_export]
macro_rules! event_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident($message:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name { $($variant($message)),+ }

        impl $crate::EventCodec for $name {
            fn event_type(&self) -> String {
                match self { $(Self::$variant(_) => <$message as ::prost::Name>::full_name()),+ }
            }

            fn encode_payload(&self) -> Vec<u8> {
                match self { $(Self::$variant(m) => ::prost::Message::encode_to_vec(m)),+ }
            }

            fn decode_payload(event_type: &str, payload: &[u8]) -> Result<Option<Self>, ::prost::DecodeError> {
                $(if event_type == <$message as ::prost::Name>::full_name() {
                    return <$message as ::prost::Message>::decode(payload).map(|m| Some(Self::$variant(m)));
                })+
                Ok(None)
            }
        }
    };
}
