//! Clue acquisition's read models, built only from events.

use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use std::collections::HashMap;

use jiuzhu_proto::registry::{
    HouseholdMemberAdded, HouseholdMemberRemoved, PersonErased, PersonMerged, PersonRegistered,
    PersonUnmerged, PersonUpdated,
};
use jiuzhu_vault::RemoteKeys;
use jiuzhu_vault::identity::sealed_person;

use jiuzhu_proto::clues::{ClueOrigin, ClueStatus};

use crate::domain::CluesEvent;
use crate::matching::{indexed_person, person_uuid};
use jiuzhu_errors::AppError;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

jiuzhu_eventstore::event_enum! {
    /// The registry events the linkage index reads.
    pub enum RegistryFeed {
        PersonRegistered(PersonRegistered),
        PersonUpdated(PersonUpdated),
        PersonErased(PersonErased),
        PersonMerged(PersonMerged),
        PersonUnmerged(PersonUnmerged),
        HouseholdMemberAdded(HouseholdMemberAdded),
        HouseholdMemberRemoved(HouseholdMemberRemoved),
    }
}

/// Registry persons for matching case parties. Identities arrive sealed; their keys come from
/// the registry's key service, once per batch, and are dropped after it. An erased person's row
/// is deleted, and a replay cannot bring it back (the key service answers "erased"). A record
/// the registry merged into another is not matched (its survivor is) until it is unmerged.
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
        // (record, the record it was merged into or None for an unmerge), in the order sent.
        let mut merges: Vec<(Uuid, Option<Uuid>)> = Vec::new();
        // (person, household, joined rather than left), in the order sent.
        let mut households: Vec<(Uuid, Uuid, bool)> = Vec::new();
        let mut applied = 0i64;
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            let envelope = &event.envelope;
            if let Some(e) = event.event::<RegistryFeed>()? {
                decoded.push((envelope.stream_version, e));
            }
        }
        let mut sealed: Vec<Uuid> = decoded
            .iter()
            .filter_map(|(_, e)| match e {
                RegistryFeed::PersonRegistered(e) => sealed_person(e),
                RegistryFeed::PersonUpdated(e) => sealed_person(e),
                _ => None,
            })
            .collect();
        sealed.sort_unstable();
        sealed.dedup();
        let keys = if sealed.is_empty() {
            HashMap::new()
        } else {
            self.keys
                .keys(&sealed)
                .await
                .map_err(|e| ProjectionError::from(AppError::from(e)))?
        };
        for (version, event) in decoded {
            let (opened, sealed) = match event {
                RegistryFeed::PersonRegistered(mut e) => {
                    let sealed = e.sealed_identity.clone();
                    (indexed_person(&mut e, &keys)?, sealed)
                }
                RegistryFeed::PersonUpdated(mut e) => {
                    let sealed = e.sealed_identity.clone();
                    (indexed_person(&mut e, &keys)?, sealed)
                }
                RegistryFeed::PersonErased(e) => {
                    applied += 1;
                    let person = person_uuid(&e.person_id)?;
                    newest.remove(&person);
                    erased.push(person);
                    continue;
                }
                RegistryFeed::PersonMerged(e) => {
                    applied += 1;
                    let survivor = person_uuid(&e.survivor_id)?;
                    merges.push((person_uuid(&e.person_id)?, Some(survivor)));
                    continue;
                }
                RegistryFeed::PersonUnmerged(e) => {
                    applied += 1;
                    merges.push((person_uuid(&e.person_id)?, None));
                    continue;
                }
                RegistryFeed::HouseholdMemberAdded(e) => {
                    applied += 1;
                    let household = ProjectionError::uuid("household_id", &e.household_id)?;
                    households.push((person_uuid(&e.person_id)?, household, true));
                    continue;
                }
                RegistryFeed::HouseholdMemberRemoved(e) => {
                    applied += 1;
                    let household = ProjectionError::uuid("household_id", &e.household_id)?;
                    households.push((person_uuid(&e.person_id)?, household, false));
                    continue;
                }
            };
            applied += 1;
            // An erased person's identity stays unreadable: nothing to index. (It was opened
            // only to tell; the row keeps it sealed, as the registry sealed it.)
            let (Some(indexed), Some(sealed)) = (opened, sealed) else {
                continue;
            };
            let person = indexed.person_id;
            let row = serde_json::json!({
                "person_id": person,
                "identity": hex::encode(sealed.encode_to_vec()),
                "region_code": indexed.region_code,
                "version": version,
                "male": indexed.male,
            });
            let newer = newest
                .get(&person)
                .and_then(|r| r["version"].as_i64())
                .is_none_or(|v| v < version);
            if newer && !erased.contains(&person) {
                newest.insert(person, row);
            }
        }
        // An erased person stays as a blank tombstone, for the processes following this table.
        erased.sort_unstable();
        erased.dedup();
        if !erased.is_empty() {
            sqlx::query(
                "INSERT INTO linkage_persons (person_id, region_code, version, erased) \
                 SELECT p, '', 0, TRUE FROM unnest($1::uuid[]) AS p \
                 ON CONFLICT (person_id) DO UPDATE SET identity = NULL, region_code = '', \
                 male = NULL, erased = TRUE, txid = pg_current_xact_id() \
                 WHERE NOT linkage_persons.erased",
            )
            .bind(&erased)
            .execute(&mut *conn)
            .await?;
        }
        // Only the merge column: a registration in the same batch, written below, keeps it.
        for (person, survivor) in merges {
            sqlx::query(
                "INSERT INTO linkage_persons (person_id, region_code, version, merged_into) \
                 VALUES ($1, '', 0, $2) ON CONFLICT (person_id) DO UPDATE \
                 SET merged_into = EXCLUDED.merged_into, txid = pg_current_xact_id()",
            )
            .bind(person)
            .bind(survivor)
            .execute(&mut *conn)
            .await?;
        }
        // Only the household column, as for merges. Household events travel on the household's
        // key, persons' on theirs: a member may be added before the person's row exists. A
        // person who left keeps no household unless they joined another since.
        for (person, household, joined) in households {
            sqlx::query(
                "INSERT INTO linkage_persons (person_id, region_code, version, household_id) \
                 VALUES ($1, '', 0, CASE WHEN $3 THEN $2 END) ON CONFLICT (person_id) DO UPDATE \
                 SET household_id = CASE WHEN $3 THEN $2 END, txid = pg_current_xact_id() \
                 WHERE NOT linkage_persons.erased \
                 AND ($3 OR linkage_persons.household_id = $2)",
            )
            .bind(person)
            .bind(household)
            .bind(joined)
            .execute(&mut *conn)
            .await?;
        }
        if applied == 0 {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = newest.into_values().collect();
        // A replayed older version writes nothing.
        sqlx::query(
            "INSERT INTO linkage_persons (person_id, identity, region_code, version, male) \
             SELECT person_id, decode(identity, 'hex'), region_code, version, male \
             FROM jsonb_to_recordset($1) AS x(person_id uuid, identity text, region_code text, \
             version bigint, male boolean) \
             ON CONFLICT (person_id) DO UPDATE SET identity = EXCLUDED.identity, \
             region_code = EXCLUDED.region_code, version = EXCLUDED.version, \
             male = EXCLUDED.male, txid = pg_current_xact_id() \
             WHERE linkage_persons.version < EXCLUDED.version AND NOT linkage_persons.erased",
        )
        .bind(serde_json::Value::Array(rows))
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
        let Some(decoded) = event.event::<CluesEvent>()? else {
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
                     explanation, status, procuratorate, version, region_code, detected_at, \
                     model_version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
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
                .bind(&e.model_version)
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
            CluesEvent::PartyReported(_)
            | CluesEvent::PartyScreenedOut(_)
            | CluesEvent::LinkageModelAdopted(_) => return Ok(()),
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
/// A detected clue as the API shows it before anything else happened to it.
pub(crate) fn clue_view(detected: &jiuzhu_proto::clues::ClueDetected) -> jiuzhu_proto::clues::Clue {
    use jiuzhu_proto::clues::{Clue, ClueOrigin, ClueOutcome, ClueStatus};
    Clue {
        clue_id: detected.clue_id.clone(),
        party_id: detected.party_id.clone(),
        case_no: detected.case_no.clone(),
        person_id: detected.person_id.clone(),
        probability: detected.probability,
        origin: detected.origin,
        explanation: detected.explanation.clone(),
        status: if detected.origin == ClueOrigin::Review as i32 {
            ClueStatus::AwaitingReview
        } else {
            ClueStatus::Detected
        } as i32,
        procuratorate: detected.procuratorate.clone(),
        reason: String::new(),
        region_code: detected.region_code.clone(),
        detected_at: Uuid::parse_str(&detected.clue_id)
            .ok()
            .map(|id| jiuzhu_proto::time::timestamp(detected_at(id))),
        outcome: ClueOutcome::Unspecified.into(),
        relief_case_id: String::new(),
        model_version: detected.model_version.clone(),
    }
}
