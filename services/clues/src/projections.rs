//! Clue acquisition's read models, built only from events.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use std::collections::HashMap;

use jiuzhu_proto::registry::{PersonErased, PersonRegistered, PersonUpdated, PersonalIdentity};
use jiuzhu_vault::identity::{CarriesIdentity, Opened, open_identity, sealed_person};
use jiuzhu_vault::{KeyState, RemoteKeys, VaultError};
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

fn person_uuid(text: &str) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(text)
        .map_err(|_| ProjectionError::Rejected(format!("person_id `{text}` is not a UUID")))
}

/// The event's person, opened identity and region; `None` for an erased person.
fn opened_identity<E: CarriesIdentity>(
    event: &mut E,
    keys: &HashMap<Uuid, KeyState>,
) -> Result<Option<(Uuid, PersonalIdentity, String)>, ProjectionError> {
    let person = person_uuid(event.person_id())?;
    if open_identity(event, keys).map_err(vault_error)? == Opened::Erased {
        return Ok(None);
    }
    let region = event.region_code().to_owned();
    Ok(Some((person, event.take_personal(), region)))
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
        let mut newest: HashMap<Uuid, serde_json::Value> = HashMap::new();
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
            HashMap::new()
        } else {
            self.keys.keys(&sealed).await.map_err(vault_error)?
        };
        for (version, event) in decoded {
            let opened = match event {
                RegistryFeed::PersonRegistered(mut e) => opened_identity(&mut e, &keys)?,
                RegistryFeed::PersonUpdated(mut e) => opened_identity(&mut e, &keys)?,
                RegistryFeed::PersonErased(e) => {
                    applied += 1;
                    let person = person_uuid(&e.person_id)?;
                    newest.remove(&person);
                    erased.push(person);
                    continue;
                }
            };
            applied += 1;
            // An erased person's identity stays unreadable: nothing to index.
            let Some((person, identity, region_code)) = opened else {
                continue;
            };
            let row = serde_json::json!({
                "person_id": person,
                "full_name": identity.full_name,
                "birth_date": identity.birth_date,
                "resident_id": identity.resident_id,
                "region_code": region_code,
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
