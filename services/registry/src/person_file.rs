//! The per-person file (一人一档): a projection of every service's topic that files each event
//! under the persons it names (its `person_id` fields), decoded to JSON with the contracts'
//! descriptors, so that new event types appear without code changes here. Redelivery and replay
//! change nothing: entries are keyed by person and event id.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, Value};
use sqlx::PgConnection;
use uuid::Uuid;

/// Services whose topics feed the file.
pub const SOURCES: [&str; 5] = ["registry", "clues", "decisions", "payments", "followup"];

pub(crate) static DESCRIPTORS: LazyLock<Option<DescriptorPool>> =
    LazyLock::new(|| DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET).ok());

/// Every UUID held by a field called `person_id` (or `survivor_id`) anywhere in the message.
pub(crate) fn person_ids(message: &DynamicMessage, found: &mut Vec<Uuid>) {
    for (field, value) in message.fields() {
        match value {
            Value::String(text) if matches!(field.name(), "person_id" | "survivor_id") => {
                if let Ok(id) = Uuid::parse_str(text)
                    && !found.contains(&id)
                {
                    found.push(id);
                }
            }
            Value::Message(inner) => person_ids(inner, found),
            Value::List(items) => {
                for item in items {
                    if let Value::Message(inner) = item {
                        person_ids(inner, found);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The file entries one event makes: one per person it names.
fn entries(event: &Delivered, rows: &mut Vec<serde_json::Value>) -> Result<(), ProjectionError> {
    let envelope = &event.envelope;
    let Some(pool) = DESCRIPTORS.as_ref() else {
        return Err(ProjectionError::Rejected(
            "contract descriptors cannot be read".to_owned(),
        ));
    };
    // A type this build does not know yet (a newer producer) is skipped, not rejected.
    let Some(descriptor) = pool.get_message_by_name(&envelope.event_type) else {
        return Ok(());
    };
    let message = DynamicMessage::decode(descriptor, envelope.payload.as_slice())?;
    let mut persons = Vec::new();
    person_ids(&message, &mut persons);
    if persons.is_empty() {
        return Ok(());
    }
    let detail = serde_json::to_value(&message)
        .map_err(|e| ProjectionError::Rejected(format!("event cannot be shown as JSON: {e}")))?;
    let occurred_at = envelope
        .occurred_at
        .as_ref()
        .and_then(|t| {
            DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
        })
        .unwrap_or_else(Utc::now);
    for person in persons {
        rows.push(serde_json::json!({
            "person_id": person,
            "event_id": event.event_id,
            "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "producer": envelope.producer,
            "event_type": message.descriptor().full_name(),
            "stream_id": envelope.stream_id,
            "stream_version": envelope.stream_version,
            "detail": detail,
        }));
    }
    Ok(())
}

#[derive(Debug)]
pub struct PersonFile;

impl Projection for PersonFile {
    fn name(&self) -> &str {
        "registry.person_file"
    }

    fn topics(&self) -> Vec<String> {
        SOURCES.iter().map(|s| service_topic(s)).collect()
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[event]).await
    }

    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&Delivered],
    ) -> Result<(), ProjectionError> {
        // One span per event, open until the batch is written, so each event's trace continues.
        let _spans: Vec<tracing::Span> = events.iter().map(|e| e.span(self.name())).collect();
        let mut rows = Vec::new();
        for event in events {
            entries(event, &mut rows)?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO person_file (person_id, event_id, occurred_at, producer, event_type, stream_id, \
             stream_version, detail) SELECT * FROM jsonb_to_recordset($1) AS x(person_id uuid, event_id uuid, \
             occurred_at timestamptz, producer text, event_type text, stream_id text, stream_version bigint, \
             detail jsonb) ON CONFLICT DO NOTHING",
        )
        .bind(serde_json::Value::Array(rows))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE person_file").execute(conn).await?;
        Ok(())
    }
}
