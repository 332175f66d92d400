//! Signed-in sessions, kept in PostgreSQL so that any console process serves any session and
//! signing a member out (or disabling them) takes effect everywhere at once. The browser holds
//! a random 256-bit token in a cookie; the table holds only its SHA-256. A session not used for
//! the idle timeout is gone.

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::i18n::Language;
use crate::staff::StaffMember;

/// A signed-in member's session as a page sees it.
#[derive(Debug, Clone)]
pub struct Session {
    pub staff: StaffMember,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
    pub language: Language,
}

fn random_token() -> Result<String, sqlx::Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| sqlx::Error::Protocol("the system's random source failed".to_owned()))?;
    Ok(hex::encode(bytes))
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Opens a session for `staff`; returns the cookie's token.
pub async fn open(
    pool: &PgPool,
    staff: &StaffMember,
    language: Language,
    at: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let token = random_token()?;
    sqlx::query(
        "INSERT INTO sessions (token_sha256, staff_no, csrf_token, language, created_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(digest(&token))
    .bind(&staff.staff_no)
    .bind(random_token()?)
    .bind(language.code())
    .bind(at)
    .execute(pool)
    .await?;
    Ok(token)
}

/// The live session of `token`, touched; `None` when there is none, it idled out, or its
/// member was disabled.
pub async fn find(
    pool: &PgPool,
    token: &str,
    at: DateTime<Utc>,
    idle_minutes: u32,
) -> Result<Option<Session>, sqlx::Error> {
    let idle_since = at - chrono::Duration::minutes(i64::from(idle_minutes));
    let row: Option<(String, String, String)> = sqlx::query_as(
        "UPDATE sessions s SET last_seen_at = $2
         FROM staff m
         WHERE s.token_sha256 = $1 AND s.last_seen_at > $3 AND m.staff_no = s.staff_no AND m.active
         RETURNING s.staff_no, s.csrf_token, s.language",
    )
    .bind(digest(token))
    .bind(at)
    .bind(idle_since)
    .fetch_optional(pool)
    .await?;
    let Some((staff_no, csrf, language)) = row else {
        sqlx::query("DELETE FROM sessions WHERE last_seen_at <= $1")
            .bind(idle_since)
            .execute(pool)
            .await?;
        return Ok(None);
    };
    let staff = crate::staff::find(pool, &staff_no)
        .await
        .map_err(|error| sqlx::Error::Protocol(error.to_string()))?;
    Ok(staff.map(|staff| Session {
        staff,
        csrf,
        language: Language::from_code(&language),
    }))
}

/// Switches the session's language.
pub async fn set_language(
    pool: &PgPool,
    token: &str,
    language: Language,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET language = $2 WHERE token_sha256 = $1")
        .bind(digest(token))
        .bind(language.code())
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn close(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
        .bind(digest(token))
        .execute(pool)
        .await?;
    Ok(())
}
