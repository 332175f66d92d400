//! Clue acquisition's read models, built only from events.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use std::collections::HashMap;

use jiuzhu_linkage::blocking_keys;
use jiuzhu_proto::registry::{PersonErased, PersonRegistered, PersonUpdated};
use jiuzhu_vault::RemoteKeys;
use jiuzhu_vault::identity::sealed_person;

use jiuzhu_proto::clues::{ClueOrigin, ClueStatus};

use crate::domain::CluesEvent;
use crate::matching::{indexed_person, person_uuid, vault_error};
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
                RegistryFeed::PersonRegistered(mut e) => indexed_person(&mut e, &keys)?,
                RegistryFeed::PersonUpdated(mut e) => indexed_person(&mut e, &keys)?,
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
            let Some(indexed) = opened else {
                continue;
            };
            let person = indexed.person_id;
            let normalised = indexed.normalised();
            let row = serde_json::json!({
                "person_id": person,
                "full_name": indexed.full_name,
                "birth_date": indexed.birth_date,
                "resident_id": indexed.resident_id,
                "region_code": indexed.region_code,
                "version": version,
                "norm_name": normalised.name,
                "male": indexed.male,
                "phone": indexed.phone,
                "township": indexed.township,
                "village": indexed.village,
                "keys": blocking_keys(&normalised),
            });
            let newer = newest
                .get(&person)
                .and_then(|r| r["version"].as_i64())
                .is_none_or(|v| v < version);
            if newer && !erased.contains(&person) {
                newest.insert(person, row);
            }
        }
        // Names before this batch, for the per-name counts.
        let touched: Vec<Uuid> = newest.keys().chain(erased.iter()).copied().collect();
        let old_names: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
            "SELECT person_id, norm_name FROM linkage_persons WHERE person_id = ANY($1)",
        )
        .bind(&touched)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let mut name_deltas: HashMap<String, i64> = HashMap::new();
        for person in &erased {
            if let Some(old) = old_names.get(person) {
                *name_deltas.entry(old.clone()).or_default() -= 1;
            }
        }
        let mut removed = 0i64;
        if !erased.is_empty() {
            sqlx::query("DELETE FROM linkage_blocks WHERE person_id = ANY($1)")
                .bind(&erased)
                .execute(&mut *conn)
                .await?;
            let deleted = sqlx::query("DELETE FROM linkage_persons WHERE person_id = ANY($1)")
                .bind(&erased)
                .execute(&mut *conn)
                .await?;
            removed = i64::try_from(deleted.rows_affected()).unwrap_or(0);
        }
        if applied == 0 {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = newest.into_values().collect();
        // Which rows this batch actually wrote (a replayed older version writes nothing), and
        // how many of them are new persons.
        let written: Vec<(Uuid, bool)> = sqlx::query_as(
            "INSERT INTO linkage_persons (person_id, full_name, birth_date, resident_id, region_code, \
             version, norm_name, male, phone, township, village) \
             SELECT person_id, full_name, birth_date, resident_id, region_code, version, norm_name, male, \
             phone, township, village FROM jsonb_to_recordset($1) AS x(person_id uuid, full_name text, \
             birth_date text, resident_id text, region_code text, version bigint, norm_name text, \
             male boolean, phone text, township text, village text) \
             ON CONFLICT (person_id) DO UPDATE SET full_name = EXCLUDED.full_name, \
             birth_date = EXCLUDED.birth_date, resident_id = EXCLUDED.resident_id, \
             region_code = EXCLUDED.region_code, version = EXCLUDED.version, \
             norm_name = EXCLUDED.norm_name, male = EXCLUDED.male, phone = EXCLUDED.phone, \
             township = EXCLUDED.township, village = EXCLUDED.village \
             WHERE linkage_persons.version < EXCLUDED.version \
             RETURNING person_id, (xmax = 0) AS inserted",
        )
        .bind(serde_json::Value::Array(rows.clone()))
        .fetch_all(&mut *conn)
        .await?;
        let written_ids: Vec<Uuid> = written.iter().map(|(id, _)| *id).collect();
        for row in &rows {
            let Some(person) = row["person_id"]
                .as_str()
                .and_then(|id| Uuid::parse_str(id).ok())
                .filter(|id| written_ids.contains(id))
            else {
                continue;
            };
            if let Some(old) = old_names.get(&person) {
                *name_deltas.entry(old.clone()).or_default() -= 1;
            }
            let new = row["norm_name"].as_str().unwrap_or_default().to_owned();
            *name_deltas.entry(new).or_default() += 1;
        }
        name_deltas.retain(|_, delta| *delta != 0);
        if !name_deltas.is_empty() {
            let (names, deltas): (Vec<String>, Vec<i64>) = name_deltas.into_iter().unzip();
            sqlx::query(
                "INSERT INTO linkage_names (norm_name, persons) SELECT * FROM unnest($1::text[], $2::bigint[]) \
                 ON CONFLICT (norm_name) DO UPDATE SET persons = linkage_names.persons + EXCLUDED.persons",
            )
            .bind(&names)
            .bind(&deltas)
            .execute(&mut *conn)
            .await?;
        }
        let added = i64::try_from(written.iter().filter(|(_, new)| *new).count()).unwrap_or(0);
        if !written_ids.is_empty() {
            sqlx::query("DELETE FROM linkage_blocks WHERE person_id = ANY($1)")
                .bind(&written_ids)
                .execute(&mut *conn)
                .await?;
            let blocks: Vec<serde_json::Value> = rows
                .iter()
                .filter(|row| {
                    row["person_id"]
                        .as_str()
                        .and_then(|id| Uuid::parse_str(id).ok())
                        .is_some_and(|id| written_ids.contains(&id))
                })
                .flat_map(|row| {
                    let person = row["person_id"].clone();
                    row["keys"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |key| serde_json::json!({"key": key, "person_id": person}))
                })
                .collect();
            sqlx::query(
                "INSERT INTO linkage_blocks (key, person_id) SELECT * FROM \
                 jsonb_to_recordset($1) AS x(key text, person_id uuid) ON CONFLICT DO NOTHING",
            )
            .bind(serde_json::Value::Array(blocks))
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "UPDATE linkage_index_stats SET applied_events = applied_events + $1, \
             persons = persons + $2 - $3",
        )
        .bind(applied)
        .bind(added)
        .bind(removed)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE linkage_persons, linkage_blocks, linkage_names")
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE linkage_index_stats SET applied_events = 0, persons = 0")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Clues and where they stand, from the service's own topic.
#[derive(Debug)]
pub struct ClueBoard;

impl Projection for ClueBoard {
    fn name(&self) -> &str {
        "clues.clues"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("clues")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let envelope = &event.envelope;
        let Some(decoded) = CluesEvent::decode_payload(&envelope.event_type, &envelope.payload)?
        else {
            return Ok(());
        };
        let version = envelope.stream_version;
        let (clue, status, reason, outcome, relief_case_id) = match decoded {
            CluesEvent::ClueDetected(e) => {
                let status = if e.origin == ClueOrigin::Review as i32 {
                    ClueStatus::AwaitingReview
                } else {
                    ClueStatus::Detected
                };
                let clue_id = clue_uuid(&e.clue_id)?;
                sqlx::query(
                    "INSERT INTO clues (clue_id, party_id, case_no, person_id, probability, origin, \
                     explanation, status, procuratorate, version, region_code, detected_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (clue_id) DO NOTHING",
                )
                .bind(clue_id)
                .bind(clue_uuid(&e.party_id)?)
                .bind(&e.case_no)
                .bind(person_uuid(&e.person_id)?)
                .bind(e.probability)
                .bind(e.origin)
                .bind(&e.explanation)
                .bind(status as i32)
                .bind(&e.procuratorate)
                .bind(version)
                .bind(&e.region_code)
                .bind(detected_at(clue_id))
                .execute(conn)
                .await?;
                return Ok(());
            }
            CluesEvent::ClueConfirmed(e) => (e.clue_id, ClueStatus::Confirmed, e.reason, 0, None),
            CluesEvent::ClueRejected(e) => (e.clue_id, ClueStatus::Rejected, e.reason, 0, None),
            CluesEvent::ClueReferred(e) => (
                e.clue_id,
                ClueStatus::Referred,
                format!("referred by {}", e.referred_by),
                0,
                None,
            ),
            CluesEvent::ClueClosed(e) => (
                e.clue_id,
                ClueStatus::Closed,
                e.reason,
                e.outcome,
                Some(e.relief_case_id),
            ),
            CluesEvent::PartyReported(_) | CluesEvent::PartyScreenedOut(_) => return Ok(()),
        };
        sqlx::query(
            "UPDATE clues SET status = $2, reason = $3, version = $4, outcome = $5, \
             relief_case_id = coalesce($6, relief_case_id) WHERE clue_id = $1 AND version < $4",
        )
        .bind(clue_uuid(&clue)?)
        .bind(status as i32)
        .bind(reason)
        .bind(version)
        .bind(outcome)
        .bind(relief_case_id)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE clues").execute(conn).await?;
        Ok(())
    }
}

/// When a clue was detected: its id is a UUIDv7, minted at that moment.
pub(crate) fn detected_at(clue_id: Uuid) -> chrono::DateTime<chrono::Utc> {
    clue_id
        .get_timestamp()
        .and_then(|t| {
            let (seconds, nanos) = t.to_unix();
            chrono::DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)
        })
        .unwrap_or_default()
}

fn clue_uuid(text: &str) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(text).map_err(|_| ProjectionError::Rejected(format!("`{text}` is not a UUID")))
}
