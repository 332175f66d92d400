//! Clue acquisition's read models, built only from events.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::registry::{PersonErased, PersonRegistered, PersonUpdated};
use jiuzhu_vault::identity::{Opened, open_identity, sealed_person};
use jiuzhu_vault::{RemoteKeys, VaultError};
use sqlx::PgConnection;
use uuid::Uuid;

jiuzhu_eventstore::event_enum! {
    /// The registry events the linkage index reads.
    pub enum RegistryFeed {
        PersonRegistered(PersonRegistered),
        PersonUpdated(PersonUpdated),
        PersonErased(PersonErased),
    }
}

/// Registry persons for matching case parties. Identities arrive sealed; their keys come from
/// the registry's key service, once per batch, and are dropped after it. An erased person's row
/// is deleted, and a replay cannot bring it back (the key service answers "erased").
#[derive(Debug)]
pub struct LinkageIndex {
    keys: RemoteKeys,
}

impl LinkageIndex {
    pub fn new(keys: RemoteKeys) -> Self {
        Self { keys }
    }
}

fn vault_error(error: VaultError) -> ProjectionError {
    if error.is_transient() {
        ProjectionError::Unavailable(error.to_string())
    } else {
        ProjectionError::Rejected(error.to_string())
    }
}

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
        let mut erased = Vec::new();
        let mut applied = 0i64;
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            let envelope = &event.envelope;
            if let Some(e) = RegistryFeed::decode_payload(&envelope.event_type, &envelope.payload)?
            {
                decoded.push((envelope.stream_version, e));
            }
        }
        let mut sealed: Vec<Uuid> = decoded
            .iter()
            .filter_map(|(_, e)| match e {
                RegistryFeed::PersonRegistered(e) => sealed_person(e),
                RegistryFeed::PersonUpdated(e) => sealed_person(e),
                RegistryFeed::PersonErased(_) => None,
            })
            .collect();
        sealed.sort_unstable();
        sealed.dedup();
        let keys = if sealed.is_empty() {
            std::collections::HashMap::new()
        } else {
            self.keys.keys(&sealed).await.map_err(vault_error)?
        };
        for (version, event) in decoded {
            let (person_id, full_name, birth_date, resident_id, region) = match event {
                RegistryFeed::PersonRegistered(mut e) => {
                    if open_identity(&mut e, &keys).map_err(vault_error)? == Opened::Erased {
                        applied += 1;
                        continue;
                    }
                    (
                        e.person_id,
                        e.full_name,
                        e.birth_date,
                        e.resident_id,
                        e.region,
                    )
                }
                RegistryFeed::PersonUpdated(mut e) => {
                    if open_identity(&mut e, &keys).map_err(vault_error)? == Opened::Erased {
                        applied += 1;
                        continue;
                    }
                    (
                        e.person_id,
                        e.full_name,
                        e.birth_date,
                        e.resident_id,
                        e.region,
                    )
                }
                RegistryFeed::PersonErased(e) => {
                    applied += 1;
                    let person = Uuid::parse_str(&e.person_id).map_err(|_| {
                        ProjectionError::Rejected(format!(
                            "person_id `{}` is not a UUID",
                            e.person_id
                        ))
                    })?;
                    newest.remove(&person);
                    erased.push(person);
                    continue;
                }
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
                "version": version,
            });
            let newer = newest
                .get(&person)
                .and_then(|r| r["version"].as_i64())
                .is_none_or(|v| v < version);
            if newer && !erased.contains(&person) {
                newest.insert(person, row);
            }
        }
        if !erased.is_empty() {
            sqlx::query("DELETE FROM linkage_persons WHERE person_id = ANY($1)")
                .bind(&erased)
                .execute(&mut *conn)
                .await?;
        }
        if applied == 0 {
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
