//! Command-side claim tables, read and written inside a command's transaction: a resident id
//! belongs to one person, a person to one household, a department's record to one person.

use sqlx::PgConnection;
use uuid::Uuid;

use jiuzhu_errors::AppError;
use jiuzhu_vault::{BlindIndex, Vault};

/// The blind index of a resident id, as claims and the persons view hold it (never the number).
pub fn resident_id_index(vault: &Vault) -> Result<BlindIndex, AppError> {
    BlindIndex::new(vault, crate::projections::BLIND_INDEX).map_err(AppError::from)
}

/// Claims `resident_id` for `person`; returns the other person already holding it, if any.
pub async fn claim_resident_id(
    conn: &mut PgConnection,
    vault: &Vault,
    resident_id: &str,
    person: Uuid,
) -> Result<Option<Uuid>, AppError> {
    if resident_id.is_empty() {
        return Ok(None);
    }
    let resident_id = resident_id_index(vault)?.of("resident_id", &[resident_id]);
    let owner: Option<Uuid> = sqlx::query_scalar(
        "WITH claimed AS (INSERT INTO resident_id_claims (resident_id_index, person_id) VALUES ($1, $2) \
         ON CONFLICT (resident_id_index) DO NOTHING RETURNING person_id) \
         SELECT person_id FROM resident_id_claims WHERE resident_id_index = $1 AND NOT EXISTS (SELECT 1 FROM claimed)",
    )
    .bind(&resident_id)
    .bind(person)
    .fetch_optional(&mut *conn)
    .await
    .map_err(AppError::storage)?;
    Ok(owner.filter(|owner| *owner != person))
}

pub async fn release_resident_id(
    conn: &mut PgConnection,
    vault: &Vault,
    resident_id: &str,
    person: Uuid,
) -> Result<(), AppError> {
    let resident_id = resident_id_index(vault)?.of("resident_id", &[resident_id]);
    sqlx::query("DELETE FROM resident_id_claims WHERE resident_id_index = $1 AND person_id = $2")
        .bind(&resident_id)
        .bind(person)
        .execute(conn)
        .await
        .map_err(AppError::storage)?;
    Ok(())
}

/// Claims a place in `household` for `person`; returns the household already holding them.
pub async fn claim_household_place(
    conn: &mut PgConnection,
    person: Uuid,
    household: Uuid,
) -> Result<Option<Uuid>, AppError> {
    sqlx::query_scalar(
        "WITH claimed AS (INSERT INTO household_claims (person_id, household_id) VALUES ($1, $2) \
         ON CONFLICT (person_id) DO NOTHING RETURNING household_id) \
         SELECT household_id FROM household_claims WHERE person_id = $1 AND NOT EXISTS (SELECT 1 FROM claimed)",
    )
    .bind(person)
    .bind(household)
    .fetch_optional(conn)
    .await
    .map_err(AppError::storage)
}

pub async fn release_household_place(
    conn: &mut PgConnection,
    person: Uuid,
    household: Uuid,
) -> Result<(), AppError> {
    sqlx::query("DELETE FROM household_claims WHERE person_id = $1 AND household_id = $2")
        .bind(person)
        .bind(household)
        .execute(conn)
        .await
        .map_err(AppError::storage)?;
    Ok(())
}

/// The person a department's record became, with the fingerprint of its last content.
pub async fn source_record(
    conn: &mut PgConnection,
    department: &str,
    source_record_id: &str,
) -> Result<Option<(Uuid, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT person_id, fingerprint FROM source_records WHERE department = $1 AND source_record_id = $2 FOR UPDATE",
    )
    .bind(department)
    .bind(source_record_id)
    .fetch_optional(conn)
    .await
}

pub async fn save_source_record(
    conn: &mut PgConnection,
    department: &str,
    source_record_id: &str,
    person: Uuid,
    fingerprint: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO source_records (department, source_record_id, person_id, fingerprint) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (department, source_record_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
    )
    .bind(department)
    .bind(source_record_id)
    .bind(person)
    .bind(fingerprint)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `person` takes no new household membership, saying why.
pub async fn mark_inactive(
    conn: &mut PgConnection,
    person: Uuid,
    reason: &str,
) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO inactive_persons (person_id, reason) VALUES ($1, $2) \
         ON CONFLICT (person_id) DO UPDATE SET reason = EXCLUDED.reason",
    )
    .bind(person)
    .bind(reason)
    .execute(conn)
    .await
    .map_err(AppError::storage)?;
    Ok(())
}

pub async fn mark_active(conn: &mut PgConnection, person: Uuid) -> Result<(), AppError> {
    sqlx::query("DELETE FROM inactive_persons WHERE person_id = $1")
        .bind(person)
        .execute(conn)
        .await
        .map_err(AppError::storage)?;
    Ok(())
}
