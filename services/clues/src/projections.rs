//! Clue acquisition's read models, built only from events.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::registry::{PersonRegistered, PersonUpdated};
use sqlx::PgConnection;
use uuid::Uuid;

jiuzhu_eventstore::event_enum! {
    /// The registry events the linkage index reads.
    pub enum RegistryFeed {
        PersonRegistered(PersonRegistered),
        PersonUpdated(PersonUpdated),
    }
}

/// Registry persons for matching case parties.
#[derive(Debug)]
pub struct LinkageIndex;

impl Projection for LinkageIndex {
    fn name(&self) -> &str {
        "clues.linkage_index"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        self.apply_many(conn, &[event]).await
    }

    /// The newest version of each person in the batch, in one upsert.
    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&Delivered],
    ) -> Result<(), ProjectionError> {
        // One span per event, open until the batch is written, so each event's trace continues.
        let _spans: Vec<tracing::Span> = events.iter().map(|e| e.span(self.name())).collect();
        let mut newest: std::collections::HashMap<Uuid, serde_json::Value> =
            std::collections::HashMap::new();
        let mut applied = 0i64;
        for event in events {
            let envelope = &event.envelope;
            let Some(decoded) =
                RegistryFeed::decode_payload(&envelope.event_type, &envelope.payload)?
            else {
                continue;
            };
            let (person_id, full_name, birth_date, resident_id, region) = match decoded {
                RegistryFeed::PersonRegistered(e) => (
                    e.person_id,
                    e.full_name,
                    e.birth_date,
                    e.resident_id,
                    e.region,
                ),
                RegistryFeed::PersonUpdated(e) => (
                    e.person_id,
                    e.full_name,
                    e.birth_date,
                    e.resident_id,
                    e.region,
                ),
            };
            let person = Uuid::parse_str(&person_id).map_err(|_| {
                ProjectionError::Rejected(format!("person_id `{person_id}` is not a UUID"))
            })?;
            applied += 1;
            let row = serde_json::json!({
                "person_id": person,
                "full_name": full_name,
                "birth_date": birth_date,
                "resident_id": resident_id,
                "region_code": region.map(|r| r.code).unwrap_or_default(),
                "version": envelope.stream_version,
            });
            let newer = newest
                .get(&person)
                .and_then(|r| r["version"].as_i64())
                .is_none_or(|v| v < envelope.stream_version);
            if newer {
                newest.insert(person, row);
            }
        }
        if newest.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO linkage_persons (person_id, full_name, birth_date, resident_id, region_code, version) \
             SELECT * FROM jsonb_to_recordset($1) AS x(person_id uuid, full_name text, birth_date text, \
             resident_id text, region_code text, version bigint) \
             ON CONFLICT (person_id) DO UPDATE SET full_name = EXCLUDED.full_name, \
             birth_date = EXCLUDED.birth_date, resident_id = EXCLUDED.resident_id, \
             region_code = EXCLUDED.region_code, version = EXCLUDED.version \
             WHERE linkage_persons.version < EXCLUDED.version",
        )
        .bind(serde_json::Value::Array(newest.into_values().collect()))
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE linkage_index_stats SET applied_events = applied_events + $1")
            .bind(applied)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE linkage_persons")
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE linkage_index_stats SET applied_events = 0")
            .execute(conn)
            .await?;
        Ok(())
    }
}
