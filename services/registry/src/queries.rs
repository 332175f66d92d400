//! Reads of the registry's projections for the gRPC layer.

use jiuzhu_errors::AppError;
use jiuzhu_proto::common::{Money, RegionCode};
use jiuzhu_proto::registry::{
    Household, HouseholdIncome, HouseholdMember, Person, SourceRecord, Status,
};
use std::collections::HashMap;

use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_vault::{BlindIndex, KeyState, Vault};
use prost::Message as _;

use AppError as GrpcStatus;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

const PERSON_COLUMNS: &str = "person_id, identity, gender, region_code, \
    source_department, version, flags, merged_into, erased, \
    (SELECT (array_agg(m.household_id))[1] FROM household_members m WHERE m.person_id = persons.person_id) \
    AS household_id";

/// The identities sealed in `rows` (column `identity`), opened with the persons' keys; an
/// erased person's (or one never sealed) is empty.
async fn identities(
    pool: &PgPool,
    vault: &Vault,
    rows: &[PgRow],
) -> Result<HashMap<Uuid, PersonalIdentity>, GrpcStatus> {
    let mut sealed = Vec::new();
    for row in rows {
        let person: Uuid = row.try_get("person_id").map_err(AppError::storage)?;
        let bytes: Option<Vec<u8>> = row.try_get("identity").map_err(AppError::storage)?;
        if let Some(bytes) = bytes {
            let sealed_identity = Sealed::decode(bytes.as_slice())
                .map_err(|e| GrpcStatus::internal(format!("sealed identity of {person}: {e}")))?;
            sealed.push((person, sealed_identity));
        }
    }
    if sealed.is_empty() {
        return Ok(HashMap::new());
    }
    let persons: Vec<Uuid> = sealed.iter().map(|(person, _)| *person).collect();
    let mut conn = pool.acquire().await.map_err(AppError::storage)?;
    let keys = vault
        .keys(&mut conn, &persons)
        .await
        .map_err(AppError::from)?;
    let mut opened = HashMap::with_capacity(sealed.len());
    for (person, sealed_identity) in sealed {
        if let Some(KeyState::Live(key)) = keys.get(&person) {
            let identity = key
                .open::<PersonalIdentity>(person, &sealed_identity)
                .map_err(AppError::from)?;
            opened.insert(person, identity);
        }
    }
    Ok(opened)
}

fn person_from_row(
    row: &PgRow,
    identities: &HashMap<Uuid, PersonalIdentity>,
) -> Result<Person, sqlx::Error> {
    let person_id: Uuid = row.try_get("person_id")?;
    let merged_into: Option<Uuid> = row.try_get("merged_into")?;
    let household_id: Option<Uuid> = row.try_get("household_id")?;
    let mut person = Person {
        person_id: person_id.to_string(),
        gender: row.try_get("gender")?,
        region: Some(RegionCode {
            code: row.try_get("region_code")?,
        }),
        source_department: row.try_get("source_department")?,
        version: row.try_get("version")?,
        flags: row.try_get("flags")?,
        merged_into: merged_into.map(|id| id.to_string()).unwrap_or_default(),
        household_id: household_id.map(|id| id.to_string()).unwrap_or_default(),
        erased: row.try_get("erased")?,
        ..Person::default()
    };
    put_identity(
        &mut person,
        identities.get(&person_id).cloned().unwrap_or_default(),
    );
    Ok(person)
}

/// The opened personal fields into a person's view.
pub fn put_identity(person: &mut Person, identity: PersonalIdentity) {
    person.full_name = identity.full_name;
    person.birth_date = identity.birth_date;
    person.resident_id = identity.resident_id;
    person.township = identity.township;
    person.village = identity.village;
    person.address_text = identity.address_text;
    person.phone = identity.phone;
}

/// A person with their statuses and those of every record merged into them.
pub async fn person(
    pool: &PgPool,
    vault: &Vault,
    person_id: Uuid,
    as_of: Option<chrono::NaiveDate>,
) -> Result<Option<Person>, GrpcStatus> {
    // The record and the records merged into it in one round trip.
    let row = sqlx::query(&format!(
        "SELECT {PERSON_COLUMNS}, ARRAY(SELECT m.person_id FROM persons m WHERE m.merged_into = $1 \
         ORDER BY m.person_id) AS merged FROM persons WHERE person_id = $1"
    ))
    .bind(person_id)
    .fetch_optional(pool)
    .await
    .map_err(AppError::storage)?;
    let Some(row) = row else { return Ok(None) };
    let opened = identities(pool, vault, std::slice::from_ref(&row)).await?;
    let mut person = person_from_row(&row, &opened).map_err(AppError::storage)?;
    let merged: Vec<Uuid> = row.try_get("merged").map_err(AppError::storage)?;
    let statuses = sqlx::query(
        "SELECT status_id, person_id, kind, source_department, reference, effective_from, effective_to, \
         detail, ended, end_reason FROM person_statuses WHERE person_id = ANY($1) \
         AND ($2::text IS NULL OR (effective_from <= $2 AND (effective_to = '' OR effective_to >= $2))) \
         ORDER BY effective_from, status_id",
    )
    .bind(merged.iter().copied().chain([person_id]).collect::<Vec<_>>())
    .bind(as_of.map(|day| day.format("%Y-%m-%d").to_string()))
    .fetch_all(pool)
    .await
    .map_err(AppError::storage)?;
    for row in statuses {
        person
            .statuses
            .push(status_from_row(&row).map_err(AppError::storage)?);
    }
    person.merged_person_ids = merged.iter().map(Uuid::to_string).collect();
    person.other_sources = sqlx::query_as::<_, (String, String, Vec<String>)>(
        "SELECT department, source_record_id, conflicting_fields FROM person_sources \
         WHERE person_id = $1 ORDER BY department, source_record_id",
    )
    .bind(person_id)
    .fetch_all(pool)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .map(
        |(department, source_record_id, conflicting_fields)| SourceRecord {
            department,
            source_record_id,
            conflicting_fields,
        },
    )
    .collect();
    Ok(Some(person))
}

fn status_from_row(row: &PgRow) -> Result<Status, sqlx::Error> {
    let status_id: Uuid = row.try_get("status_id")?;
    let recorded_on: Uuid = row.try_get("person_id")?;
    Ok(Status {
        status_id: status_id.to_string(),
        kind: row.try_get("kind")?,
        source_department: row.try_get("source_department")?,
        reference: row.try_get("reference")?,
        effective_from: row.try_get("effective_from")?,
        effective_to: row.try_get("effective_to")?,
        detail: row.try_get("detail")?,
        ended: row.try_get("ended")?,
        end_reason: row.try_get("end_reason")?,
        recorded_on_person_id: recorded_on.to_string(),
    })
}

/// A household's members now, or (`as_of`) those it had at that instant, with its incomes.
pub async fn household(
    pool: &PgPool,
    vault: &Vault,
    household_id: Uuid,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<Household>, GrpcStatus> {
    let members = match as_of {
        None => sqlx::query(
            "SELECT m.person_id, m.relationship, p.identity \
             FROM household_members m LEFT JOIN persons p USING (person_id) \
             WHERE m.household_id = $1 ORDER BY m.relationship, m.person_id",
        )
        .bind(household_id),
        Some(at) => sqlx::query(
            "SELECT DISTINCT ON (m.person_id) m.person_id, m.relationship, p.identity \
             FROM household_memberships m LEFT JOIN persons p USING (person_id) \
             WHERE m.household_id = $1 AND m.joined_at <= $2 AND (m.left_at IS NULL OR m.left_at > $2) \
             ORDER BY m.person_id, m.joined_at DESC",
        )
        .bind(household_id)
        .bind(at),
    }
    .fetch_all(pool)
    .await
    .map_err(AppError::storage)?;
    let names = identities(pool, vault, &members).await?;
    household_from_rows(household_id, members, &names, pool)
        .await
        .map_err(AppError::storage)
}

async fn household_from_rows(
    household_id: Uuid,
    members: Vec<PgRow>,
    names: &HashMap<Uuid, PersonalIdentity>,
    pool: &PgPool,
) -> Result<Option<Household>, sqlx::Error> {
    let incomes = sqlx::query(
        "SELECT year, income_per_head, source_department FROM household_incomes \
         WHERE household_id = $1 ORDER BY year DESC",
    )
    .bind(household_id)
    .fetch_all(pool)
    .await?;
    if members.is_empty() && incomes.is_empty() {
        return Ok(None);
    }
    let mut household = Household {
        household_id: household_id.to_string(),
        ..Household::default()
    };
    for row in members {
        let person_id: Uuid = row.try_get("person_id")?;
        household.members.push(HouseholdMember {
            person_id: person_id.to_string(),
            relationship: row.try_get("relationship")?,
            full_name: names
                .get(&person_id)
                .map(|identity| identity.full_name.clone())
                .unwrap_or_default(),
        });
    }
    for row in incomes {
        household.incomes.push(HouseholdIncome {
            year: row.try_get("year")?,
            income_per_head: Some(Money {
                fen: row.try_get("income_per_head")?,
            }),
            source_department: row.try_get("source_department")?,
        });
    }
    Ok(Some(household))
}

/// What to search by.
#[derive(Debug, Clone)]
pub enum Search {
    ResidentId(String),
    Phone(String),
    NameAndBirthDate(String, String),
    NameAndRegion(String, String),
}

/// The blind indexes of a person's searchable fields, as the persons view stores them.
pub fn blind_indexes(index: &BlindIndex, identity: &PersonalIdentity) -> [String; 4] {
    let phone_digits: String = identity
        .phone
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    [
        index.of("resident_id", &[&identity.resident_id]),
        index.of("phone", &[&phone_digits]),
        index.of("name", &[&identity.full_name]),
        if identity.full_name.is_empty() {
            String::new()
        } else {
            index.of("name_birth", &[&identity.full_name, &identity.birth_date])
        },
    ]
}

/// One page of matches ordered by person id, after `after` (exclusive), found through the
/// blind indexes.
pub async fn search(
    pool: &PgPool,
    vault: &Vault,
    index: &BlindIndex,
    search: &Search,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Person>, GrpcStatus> {
    let after = after.unwrap_or(Uuid::nil());
    let (condition, key, region) = match search {
        Search::ResidentId(id) => (
            "resident_id_index = $1",
            index.of("resident_id", &[id]),
            None,
        ),
        Search::Phone(phone) => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            ("phone_index = $1", index.of("phone", &[&digits]), None)
        }
        Search::NameAndBirthDate(name, birth) => (
            "name_birth_index = $1",
            index.of("name_birth", &[name, birth]),
            None,
        ),
        Search::NameAndRegion(name, region) => (
            "name_index = $1 AND region_code = $4",
            index.of("name", &[name]),
            Some(region.clone()),
        ),
    };
    let sql = format!(
        "SELECT {PERSON_COLUMNS} FROM persons WHERE {condition} AND person_id > $2 \
         ORDER BY person_id LIMIT $3"
    );
    let mut query = sqlx::query(&sql).bind(key).bind(after).bind(limit);
    if let Some(region) = region {
        query = query.bind(region);
    }
    let rows = query.fetch_all(pool).await.map_err(AppError::storage)?;
    let opened = identities(pool, vault, &rows).await?;
    rows.iter()
        .map(|row| person_from_row(row, &opened).map_err(AppError::storage))
        .collect()
}

/// One page of a person's file (their own entries and those of records merged into them).
/// The cursor is `(occurred_at in microseconds, event id)` of the last entry returned.
pub async fn person_file(
    pool: &PgPool,
    vault: &Vault,
    person_id: Uuid,
    newest_first: bool,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<jiuzhu_proto::registry::PersonFileEntry>, GrpcStatus> {
    let (comparison, order) = if newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let cursor_clause = if after.is_some() {
        format!(
            "AND (f.occurred_at, f.event_id) {comparison} (timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3)"
        )
    } else {
        "AND $2::bigint IS NOT NULL AND $3::uuid IS NOT NULL".to_owned()
    };
    let (micros, event) = after.unwrap_or((0, Uuid::nil()));
    let rows = sqlx::query(&format!(
        "SELECT f.person_id, f.event_id, f.occurred_at, f.producer, f.event_type, f.stream_id, \
         f.stream_version, f.detail::text AS detail FROM person_file f \
         WHERE f.person_id IN (SELECT $1 UNION SELECT person_id FROM persons WHERE merged_into = $1) \
         {cursor_clause} ORDER BY f.occurred_at {order}, f.event_id {order} LIMIT $4"
    ))
    .bind(person_id)
    .bind(micros)
    .bind(event)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(AppError::storage)?;
    // Sealed identities are opened here, at read time, so the file itself never holds personal
    // data in the clear and an erasure needs no rewrite of it.
    let mut details = Vec::with_capacity(rows.len());
    let mut sealed = Vec::new();
    for row in &rows {
        let text: String = row.try_get("detail").map_err(AppError::storage)?;
        let detail: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| GrpcStatus::internal(format!("a person file entry is not JSON: {e}")))?;
        if let Some(person) = detail
            .pointer("/sealedIdentity/personId")
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
        {
            sealed.push(person);
        }
        details.push(detail);
    }
    sealed.sort_unstable();
    sealed.dedup();
    let keys = if sealed.is_empty() {
        Default::default()
    } else {
        let mut conn = pool.acquire().await.map_err(AppError::storage)?;
        vault
            .keys(&mut conn, &sealed)
            .await
            .map_err(AppError::from)?
    };
    let mut entries = Vec::with_capacity(rows.len());
    for (row, mut detail) in rows.iter().zip(details) {
        crate::sealing::open_json(&mut detail, &keys).map_err(AppError::from)?;
        let filed_under: Uuid = row.try_get("person_id").map_err(AppError::storage)?;
        let event_id: Uuid = row.try_get("event_id").map_err(AppError::storage)?;
        let occurred_at: chrono::DateTime<chrono::Utc> =
            row.try_get("occurred_at").map_err(AppError::storage)?;
        entries.push(jiuzhu_proto::registry::PersonFileEntry {
            event_id: event_id.to_string(),
            occurred_at: Some(jiuzhu_proto::time::timestamp(occurred_at)),
            producer: row.try_get("producer").map_err(AppError::storage)?,
            event_type: row.try_get("event_type").map_err(AppError::storage)?,
            stream_id: row.try_get("stream_id").map_err(AppError::storage)?,
            stream_version: row.try_get("stream_version").map_err(AppError::storage)?,
            detail_json: detail.to_string(),
            person_id: filed_under.to_string(),
        });
    }
    Ok(entries)
}

/// The household `person` belonged to at the instant `at`, if any.
pub async fn household_on(
    pool: &PgPool,
    person: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Uuid>, GrpcStatus> {
    sqlx::query_scalar(
        "SELECT household_id FROM household_memberships WHERE person_id = $1 AND joined_at <= $2 \
         AND (left_at IS NULL OR left_at > $2) ORDER BY joined_at DESC LIMIT 1",
    )
    .bind(person)
    .bind(at)
    .fetch_optional(pool)
    .await
    .map_err(AppError::storage)
}
