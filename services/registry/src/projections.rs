//! The registry's read models, built only from `jiuzhu.registry.events.v1`: persons (with
//! search indexes), their statuses, and households.

use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::RegistryEvent;
use crate::sealing::{open, sealed_persons};
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_vault::{BlindIndex, Vault, VaultError};
use prost::Message as _;

use crate::queries::blind_indexes;

fn id(field: &str, value: &str) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(value)
        .map_err(|_| ProjectionError::Rejected(format!("{field} `{value}` is not a UUID")))
}

/// Persons, statuses and households as the registry's queries read them. Identities arrive
/// sealed; the projection opens them with the registry's own key store (one lookup per batch),
/// and an erased person's stay empty, also when the topic is replayed later.
#[derive(Debug)]
pub struct Persons {
    vault: Vault,
    index: BlindIndex,
}

/// The purpose the persons view's blind-index key is derived for.
pub const BLIND_INDEX: &str = "registry.persons";

impl Persons {
    pub fn new(vault: Vault) -> Result<Self, VaultError> {
        let index = BlindIndex::new(&vault, BLIND_INDEX)?;
        Ok(Self { vault, index })
    }

    /// Decodes a batch and opens the identities in it.
    async fn open_batch<'e>(
        &self,
        conn: &mut PgConnection,
        events: &[&'e Delivered],
    ) -> Result<Vec<(&'e Delivered, RegistryEvent)>, ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if let Some(e) = event.event::<RegistryEvent>()? {
                decoded.push((*event, e));
            }
        }
        let sealed = sealed_persons(decoded.iter().map(|(_, e)| e));
        if sealed.is_empty() {
            return Ok(decoded);
        }
        let keys = self
            .vault
            .keys(conn, &sealed)
            .await
            .map_err(jiuzhu_errors::AppError::from)?;
        for (_, event) in &mut decoded {
            open(event, &keys).map_err(jiuzhu_errors::AppError::from)?;
        }
        Ok(decoded)
    }
}

impl Projection for Persons {
    fn name(&self) -> &str {
        "registry.persons"
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

    /// Registrations (the bulk of any import) go in as one statement; a person's registration
    /// always precedes their other events, so applying the rest afterwards keeps every person's
    /// order.
    async fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&Delivered],
    ) -> Result<(), ProjectionError> {
        // One span per event, open until the batch is written, so each event's trace continues.
        let _spans: Vec<tracing::Span> = events.iter().map(|e| e.span(self.name())).collect();
        let mut registrations = Vec::new();
        let mut joined = Vec::new();
        let mut removals = false;
        let mut rest = Vec::new();
        for (event, decoded) in self.open_batch(conn, events).await? {
            let envelope = &event.envelope;
            let at = envelope
                .occurred_at
                .as_ref()
                .and_then(jiuzhu_proto::time::utc)
                .ok_or_else(|| {
                    ProjectionError::Rejected("the event says nothing of when it happened".into())
                })?;
            match decoded {
                RegistryEvent::PersonRegistered(e) => {
                    registrations.push(registration_row(&self.index, e, envelope.stream_version)?)
                }
                RegistryEvent::HouseholdMemberAdded(e) => {
                    joined.push(serde_json::json!({
                        "household_id": id("household_id", &e.household_id)?,
                        "person_id": id("person_id", &e.person_id)?,
                        "relationship": e.relationship,
                        "joined_at": at,
                    }));
                    rest.push((
                        envelope.stream_version,
                        at,
                        RegistryEvent::HouseholdMemberAdded(e),
                    ));
                }
                RegistryEvent::HouseholdMemberRemoved(e) => {
                    removals = true;
                    rest.push((
                        envelope.stream_version,
                        at,
                        RegistryEvent::HouseholdMemberRemoved(e),
                    ));
                }
                other => rest.push((envelope.stream_version, at, other)),
            }
        }
        if !registrations.is_empty() {
            insert_registrations(conn, registrations).await?;
        }
        // Memberships in one statement too, unless the batch also removes members (then the
        // order of joins and leaves matters and they go one by one).
        if !joined.is_empty() && !removals {
            sqlx::query(
                "WITH x AS (SELECT * FROM jsonb_to_recordset($1) AS x(household_id uuid, \
                 person_id uuid, relationship int, joined_at timestamptz)), \
                 history AS (INSERT INTO household_memberships (household_id, person_id, \
                 relationship, joined_at) SELECT household_id, person_id, relationship, joined_at \
                 FROM x ON CONFLICT DO NOTHING) \
                 INSERT INTO household_members (household_id, person_id, relationship) \
                 SELECT household_id, person_id, relationship FROM x \
                 ON CONFLICT (household_id, person_id) DO UPDATE SET relationship = EXCLUDED.relationship",
            )
            .bind(serde_json::Value::Array(joined))
            .execute(&mut *conn)
            .await?;
            rest.retain(|(_, _, e)| !matches!(e, RegistryEvent::HouseholdMemberAdded(_)));
        }
        for (version, at, event) in rest {
            apply_one(conn, &self.index, event, version, at).await?;
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "TRUNCATE persons, person_statuses, household_members, household_memberships, \
             household_incomes, person_sources",
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Applies one opened event.
async fn apply_one(
    conn: &mut PgConnection,
    index: &BlindIndex,
    decoded: RegistryEvent,
    version: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ProjectionError> {
    match decoded {
        RegistryEvent::PersonRegistered(e) => {
            insert_registrations(conn, vec![registration_row(index, e, version)?]).await?;
        }
        RegistryEvent::PersonUpdated(e) => {
            let [resident_id, phone, name, name_birth] = blind_indexes(index, &personal_of(&e));
            sqlx::query(
                "UPDATE persons SET identity = $2, gender = $3, region_code = $4, \
                     resident_id_index = $5, phone_index = $6, name_index = $7, \
                     name_birth_index = $8, flags = $9, version = $10 \
                     WHERE person_id = $1 AND version < $10",
            )
            .bind(id("person_id", &e.person_id)?)
            .bind(e.sealed_identity.as_ref().map(|s| s.encode_to_vec()))
            .bind(e.gender)
            .bind(e.region.map(|r| r.code).unwrap_or_default())
            .bind(resident_id)
            .bind(phone)
            .bind(name)
            .bind(name_birth)
            .bind(&e.flags)
            .bind(version)
            .execute(conn)
            .await?;
        }
        RegistryEvent::StatusRecorded(e) => {
            let person = id("person_id", &e.person_id)?;
            sqlx::query(
                    "INSERT INTO person_statuses (status_id, person_id, kind, source_department, reference, \
                     effective_from, effective_to, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (status_id) DO NOTHING",
                )
                .bind(id("status_id", &e.status_id)?)
                .bind(person)
                .bind(e.kind)
                .bind(&e.source_department)
                .bind(&e.reference)
                .bind(&e.effective_from)
                .bind(&e.effective_to)
                .bind(&e.detail)
                .execute(&mut *conn)
                .await?;
            bump(conn, person, version).await?;
        }
        RegistryEvent::StatusEnded(e) => {
            let person = id("person_id", &e.person_id)?;
            sqlx::query(
                    "UPDATE person_statuses SET ended = TRUE, effective_to = $2, end_reason = $3 WHERE status_id = $1",
                )
                .bind(id("status_id", &e.status_id)?)
                .bind(&e.effective_to)
                .bind(&e.reason)
                .execute(&mut *conn)
                .await?;
            bump(conn, person, version).await?;
        }
        RegistryEvent::PersonMerged(e) => {
            let person = id("person_id", &e.person_id)?;
            sqlx::query("UPDATE persons SET merged_into = $2 WHERE person_id = $1")
                .bind(person)
                .bind(id("survivor_id", &e.survivor_id)?)
                .execute(&mut *conn)
                .await?;
            bump(conn, person, version).await?;
        }
        RegistryEvent::PersonUnmerged(e) => {
            let person = id("person_id", &e.person_id)?;
            sqlx::query("UPDATE persons SET merged_into = NULL WHERE person_id = $1")
                .bind(person)
                .execute(&mut *conn)
                .await?;
            bump(conn, person, version).await?;
        }
        RegistryEvent::PersonErased(e) => {
            let person = id("person_id", &e.person_id)?;
            sqlx::query(
                "UPDATE persons SET erased = TRUE, identity = NULL, resident_id_index = '', \
                     phone_index = '', name_index = '', name_birth_index = '' WHERE person_id = $1",
            )
            .bind(person)
            .execute(&mut *conn)
            .await?;
            bump(conn, person, version).await?;
        }
        RegistryEvent::HouseholdMemberAdded(e) => {
            let (household, person) = (
                id("household_id", &e.household_id)?,
                id("person_id", &e.person_id)?,
            );
            sqlx::query(
                "WITH history AS (INSERT INTO household_memberships (household_id, person_id, \
                 relationship, joined_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING) \
                 INSERT INTO household_members (household_id, person_id, relationship) VALUES ($1, $2, $3) \
                 ON CONFLICT (household_id, person_id) DO UPDATE SET relationship = EXCLUDED.relationship",
            )
            .bind(household)
            .bind(person)
            .bind(e.relationship)
            .bind(at)
            .execute(conn)
            .await?;
        }
        RegistryEvent::HouseholdMemberRemoved(e) => {
            let (household, person) = (
                id("household_id", &e.household_id)?,
                id("person_id", &e.person_id)?,
            );
            sqlx::query(
                "WITH history AS (UPDATE household_memberships SET left_at = $3 \
                 WHERE household_id = $1 AND person_id = $2 AND left_at IS NULL) \
                 DELETE FROM household_members WHERE household_id = $1 AND person_id = $2",
            )
            .bind(household)
            .bind(person)
            .bind(at)
            .execute(conn)
            .await?;
        }
        RegistryEvent::SourceRecordLinked(e) => {
            let person = id("person_id", &e.person_id)?;
            sqlx::query(
                "INSERT INTO person_sources (person_id, department, source_record_id, conflicting_fields) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (person_id, department, source_record_id) \
                 DO UPDATE SET conflicting_fields = EXCLUDED.conflicting_fields",
            )
            .bind(person)
            .bind(&e.source_department)
            .bind(&e.source_record_id)
            .bind(&e.conflicting_fields)
            .execute(&mut *conn)
            .await?;
            bump(conn, person, version).await?;
        }
        RegistryEvent::HouseholdIncomeRecorded(e) => {
            sqlx::query(
                    "INSERT INTO household_incomes (household_id, year, income_per_head, source_department) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (household_id, year) DO UPDATE SET \
                     income_per_head = EXCLUDED.income_per_head, source_department = EXCLUDED.source_department",
                )
                .bind(id("household_id", &e.household_id)?)
                .bind(e.year)
                .bind(e.income_per_head.map(|m| m.fen).unwrap_or_default())
                .bind(&e.source_department)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// The opened personal fields of an event (what its blind indexes are computed from).
fn personal_of<E: jiuzhu_vault::identity::CarriesIdentity + Clone>(event: &E) -> PersonalIdentity {
    event.clone().take_personal()
}

/// The view keeps the identity exactly as the event sealed it, and the blind indexes of what it
/// holds; never the plaintext.
fn registration_row(
    index: &BlindIndex,
    e: jiuzhu_proto::registry::PersonRegistered,
    version: i64,
) -> Result<serde_json::Value, ProjectionError> {
    let [resident_id, phone, name, name_birth] = blind_indexes(index, &personal_of(&e));
    Ok(serde_json::json!({
        "person_id": id("person_id", &e.person_id)?,
        "identity": e.sealed_identity.as_ref().map(|s| hex::encode(s.encode_to_vec())),
        "gender": e.gender,
        "region_code": e.region.map(|r| r.code).unwrap_or_default(),
        "source_department": e.source_department,
        "version": version,
        "flags": e.flags,
        "resident_id_index": resident_id,
        "phone_index": phone,
        "name_index": name,
        "name_birth_index": name_birth,
    }))
}

/// Registrations in one statement whatever their number. (A person's household is not kept
/// on the person row: it is read from the memberships, which may arrive before or after the
/// registration since household events travel on the household's partition.)
async fn insert_registrations(
    conn: &mut PgConnection,
    rows: Vec<serde_json::Value>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "INSERT INTO persons (person_id, identity, gender, region_code, source_department, version, \
         flags, resident_id_index, phone_index, name_index, name_birth_index) \
         SELECT person_id, decode(identity, 'hex'), gender, region_code, source_department, version, \
         flags, resident_id_index, phone_index, name_index, name_birth_index \
         FROM jsonb_to_recordset($1) AS x(person_id uuid, identity text, gender int, \
         region_code text, source_department text, version bigint, flags int[], \
         resident_id_index text, phone_index text, name_index text, name_birth_index text) \
         ON CONFLICT (person_id) DO NOTHING",
    )
    .bind(serde_json::Value::Array(rows))
    .execute(conn)
    .await?;
    Ok(())
}

async fn bump(conn: &mut PgConnection, person: Uuid, version: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE persons SET version = GREATEST(version, $2) WHERE person_id = $1")
        .bind(person)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}
