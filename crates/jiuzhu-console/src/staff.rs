//! The staff directory: who may sign in, with which office, role and approval tier (the
//! console states these to the services for every call the member makes), their password
//! (Argon2id) and second factor (TOTP, RFC 6238). Every change is written to `staff_audit`.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use jiuzhu_access::Role;
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::PgPool;

/// A staff member as the directory holds them (never the password or secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub staff_no: String,
    pub display_name: String,
    pub office: String,
    pub role: Role,
    pub tier: Option<String>,
    pub administrator: bool,
    pub active: bool,
}

impl StaffMember {
    /// What the console states to the services: `office/<code>/role/<role>[/tier/<tier>]`.
    pub fn acting_as(&self) -> String {
        jiuzhu_access::acting::acting_as(&self.office, self.role, self.tier.as_deref())
    }
}

/// A member to add, as an administrator typed it.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub staff_no: String,
    pub display_name: String,
    pub office: String,
    pub role: String,
    pub tier: String,
    pub administrator: bool,
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// A field is wrong: which one, and why.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("staff number {0} is already in the directory")]
    Exists(String),
    #[error("no staff member {0}")]
    NotFound(String),
    #[error("the staff number, password or code is wrong")]
    Refused,
    #[error("too many failed sign-ins: this account may try again after {0} (UTC)")]
    Locked(String),
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> StaffError {
    StaffError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Minimum password length: long passphrases beat composition rules (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 12;

impl NewStaff {
    fn checked(&self) -> Result<(Role, Option<String>), StaffError> {
        let staff_no = self.staff_no.trim();
        if staff_no.is_empty()
            || staff_no.len() > 64
            || !staff_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid("staff_no", "1 to 64 letters, digits and hyphens"));
        }
        if self.display_name.trim().is_empty() || self.display_name.chars().count() > 64 {
            return Err(invalid("display_name", "1 to 64 characters"));
        }
        if self.office.len() != 6 || !self.office.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("office", "a six-digit region code"));
        }
        let role = Role::parse(self.role.trim())
            .filter(|role| role.is_staff())
            .ok_or_else(|| {
                invalid(
                    "role",
                    "one of case_prosecutor, relief_prosecutor, approver, finance_officer, followup_officer, auditor",
                )
            })?;
        let tier = self.tier.trim();
        let tier = match (role, tier.is_empty()) {
            (Role::Approver, true) => return Err(invalid("tier", "an approver needs a tier")),
            (Role::Approver, false) => Some(tier.to_owned()),
            (_, true) => None,
            (_, false) => return Err(invalid("tier", "only an approver has a tier")),
        };
        if self.password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(invalid(
                "password",
                format!("at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        Ok((role, tier))
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StaffError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StaffError::Hashing("the system's random source failed".to_owned()))?;
    Ok(bytes)
}

/// The Argon2id PHC string of `password` (slow on purpose: run it off the async threads).
pub fn hash_password(password: &str) -> Result<String, StaffError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|error| StaffError::Hashing(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| StaffError::Hashing(error.to_string()))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// TOTP as authenticator apps do it: SHA-1, six digits, 30-second steps.
const TOTP_STEP_SECONDS: u64 = 30;

fn totp(secret_base32: &str) -> Result<totp_rs::TOTP, StaffError> {
    let bytes = totp_rs::Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .map_err(|_| StaffError::Hashing("a stored TOTP secret is not base32".to_owned()))?;
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, TOTP_STEP_SECONDS, bytes)
        .map_err(|error| StaffError::Hashing(error.to_string()))
}

/// A fresh TOTP secret (160 bits, base32), as an authenticator app takes it.
pub fn new_totp_secret() -> Result<String, StaffError> {
    Ok(totp_rs::Secret::Raw(random_bytes::<20>()?.to_vec())
        .to_encoded()
        .to_string())
}

/// The code of `secret` at `at` (for the demo's `jiuzhu-console staff code`, and tests).
pub fn totp_code(secret_base32: &str, at: DateTime<Utc>) -> Result<String, StaffError> {
    Ok(totp(secret_base32)?.generate(u64::try_from(at.timestamp()).unwrap_or_default()))
}

/// The step `code` belongs to, if it is the code of the step at `at` or of the one before or
/// after (clocks drift, people type slowly).
fn totp_step(
    secret_base32: &str,
    code: &str,
    at: DateTime<Utc>,
) -> Result<Option<i64>, StaffError> {
    let totp = totp(secret_base32)?;
    let now = u64::try_from(at.timestamp()).unwrap_or_default();
    let step = now / TOTP_STEP_SECONDS;
    for candidate in [step.saturating_sub(1), step, step + 1] {
        // `check` compares in constant time: it does not tell how many digits were right.
        if totp.check(code, candidate * TOTP_STEP_SECONDS) {
            return Ok(i64::try_from(candidate).ok());
        }
    }
    Ok(None)
}

type Row = (String, String, String, String, Option<String>, bool, bool);

fn member((staff_no, display_name, office, role, tier, administrator, active): Row) -> StaffMember {
    StaffMember {
        staff_no,
        display_name,
        office,
        // Written only from a checked role.
        role: Role::parse(&role).unwrap_or(Role::Auditor),
        tier,
        administrator,
        active,
    }
}

const COLUMNS: &str = "staff_no, display_name, office, role, tier, administrator, active";

async fn audit(
    tx: &mut sqlx::PgConnection,
    at: DateTime<Utc>,
    actor: &str,
    staff_no: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), StaffError> {
    sqlx::query(
        "INSERT INTO staff_audit (at, actor, staff_no, action, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(staff_no)
    .bind(action)
    .bind(detail)
    .execute(tx)
    .await?;
    Ok(())
}

/// Adds a member on `actor`'s word; returns the new TOTP secret (shown once, to be entered in
/// the member's authenticator app).
pub async fn add(
    pool: &PgPool,
    actor: &str,
    new: &NewStaff,
    at: DateTime<Utc>,
) -> Result<String, StaffError> {
    let (role, tier) = new.checked()?;
    let password = new.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| StaffError::Hashing(error.to_string()))??;
    let secret = new_totp_secret()?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO staff (staff_no, display_name, office, role, tier, password_hash, totp_secret,
                            administrator, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (staff_no) DO NOTHING",
    )
    .bind(new.staff_no.trim())
    .bind(new.display_name.trim())
    .bind(&new.office)
    .bind(role.name())
    .bind(&tier)
    .bind(&hash)
    .bind(&secret)
    .bind(new.administrator)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StaffError::Exists(new.staff_no.trim().to_owned()));
    }
    audit(
        &mut tx,
        at,
        actor,
        new.staff_no.trim(),
        "added",
        serde_json::json!({
            "display_name": new.display_name.trim(),
            "office": new.office,
            "role": role.name(),
            "tier": tier,
            "administrator": new.administrator,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(secret)
}

/// Turns a member's access on or off on `actor`'s word; switching off ends their sessions.
pub async fn set_active(
    pool: &PgPool,
    actor: &str,
    staff_no: &str,
    active: bool,
    at: DateTime<Utc>,
) -> Result<(), StaffError> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query("UPDATE staff SET active = $2, updated_at = $3 WHERE staff_no = $1")
        .bind(staff_no)
        .bind(active)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() == 0 {
        return Err(StaffError::NotFound(staff_no.to_owned()));
    }
    if !active {
        sqlx::query("DELETE FROM sessions WHERE staff_no = $1")
            .bind(staff_no)
            .execute(&mut *tx)
            .await?;
    }
    audit(
        &mut tx,
        at,
        actor,
        staff_no,
        if active { "enabled" } else { "disabled" },
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn find(pool: &PgPool, staff_no: &str) -> Result<Option<StaffMember>, StaffError> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM staff WHERE staff_no = $1"))
            .bind(staff_no)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(member))
}

pub async fn list(pool: &PgPool) -> Result<Vec<StaffMember>, StaffError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM staff ORDER BY office, role, staff_no"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(member).collect())
}

/// One line of the directory's audit.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub staff_no: String,
    pub action: String,
    pub detail: String,
}

pub async fn audit_log(pool: &PgPool, limit: i64) -> Result<Vec<AuditEntry>, StaffError> {
    let rows: Vec<(DateTime<Utc>, String, String, String, serde_json::Value)> = sqlx::query_as(
        "SELECT at, actor, staff_no, action, detail FROM staff_audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at, actor, staff_no, action, detail)| AuditEntry {
            at,
            actor,
            staff_no,
            action,
            detail: detail.to_string(),
        })
        .collect())
}

/// The TOTP secret of a member (the demo prints codes from it).
pub async fn totp_secret(pool: &PgPool, staff_no: &str) -> Result<String, StaffError> {
    sqlx::query_scalar("SELECT totp_secret FROM staff WHERE staff_no = $1")
        .bind(staff_no)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StaffError::NotFound(staff_no.to_owned()))
}

/// How sign-in failures are limited.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub max_failures: u32,
    pub minutes: u32,
}

/// Password hash, TOTP secret, last TOTP step, failures, locked until, active.
type SignInRow = (String, String, i64, i32, Option<DateTime<Utc>>, bool);

/// Checks a sign-in: password and a TOTP code not used before. Every failure looks the same
/// to the person trying (no telling which part was wrong, or whether the account exists);
/// failures in a row lock the account for a while.
pub async fn sign_in(
    pool: &PgPool,
    staff_no: &str,
    password: &str,
    code: &str,
    at: DateTime<Utc>,
    lockout: Lockout,
) -> Result<StaffMember, StaffError> {
    let row: Option<SignInRow> = sqlx::query_as(
        "SELECT password_hash, totp_secret, totp_last_step, failed_signins, locked_until, active
         FROM staff WHERE staff_no = $1",
    )
    .bind(staff_no.trim())
    .fetch_optional(pool)
    .await?;
    let Some((hash, secret, last_step, _failures, locked_until, active)) = row else {
        // The same work as for a real account, so timing does not tell who exists.
        let password = password.to_owned();
        let _ = tokio::task::spawn_blocking(move || {
            static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let decoy = DECOY.get_or_init(|| hash_password("no such account").unwrap_or_default());
            password_matches(&password, decoy)
        })
        .await;
        return Err(StaffError::Refused);
    };
    if let Some(until) = locked_until.filter(|until| *until > at) {
        return Err(StaffError::Locked(
            until.format("%Y-%m-%d %H:%M").to_string(),
        ));
    }
    let password = password.to_owned();
    let password_ok = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .map_err(|error| StaffError::Hashing(error.to_string()))?;
    let step = if password_ok {
        totp_step(&secret, code.trim(), at)?.filter(|step| *step > last_step)
    } else {
        None
    };
    let Some(step) = step.filter(|_| active) else {
        sqlx::query(
            "UPDATE staff SET failed_signins = failed_signins + 1,
                    locked_until = CASE WHEN failed_signins + 1 >= $2
                                        THEN $3 + make_interval(mins => $4) END
             WHERE staff_no = $1",
        )
        .bind(staff_no.trim())
        .bind(i32::try_from(lockout.max_failures).unwrap_or(i32::MAX))
        .bind(at)
        .bind(i32::try_from(lockout.minutes).unwrap_or(i32::MAX))
        .execute(pool)
        .await?;
        return Err(StaffError::Refused);
    };
    sqlx::query(
        "UPDATE staff SET failed_signins = 0, locked_until = NULL, totp_last_step = $2
         WHERE staff_no = $1",
    )
    .bind(staff_no.trim())
    .bind(step)
    .execute(pool)
    .await?;
    find(pool, staff_no.trim())
        .await?
        .ok_or_else(|| StaffError::NotFound(staff_no.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() -> Result<(), StaffError> {
        let hash = hash_password("correct horse battery")?;
        assert!(hash.starts_with("$argon2id$"));
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse battery!", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
        Ok(())
    }

    #[test]
    fn a_code_counts_for_its_step_and_the_neighbours_only() -> Result<(), StaffError> {
        let secret = new_totp_secret()?;
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let code = totp_code(&secret, at)?;
        assert_eq!(code.len(), 6);
        let step = 1_800_000_000 / 30;
        assert_eq!(totp_step(&secret, &code, at)?, Some(step));
        let later = at + chrono::Duration::seconds(30);
        assert_eq!(totp_step(&secret, &code, later)?, Some(step));
        let much_later = at + chrono::Duration::seconds(95);
        assert_eq!(totp_step(&secret, &code, much_later)?, None);
        assert_eq!(totp_step(&secret, "12345", at)?, None);
        Ok(())
    }

    #[test]
    fn a_new_member_is_refused_with_the_field_that_is_wrong() {
        let good = NewStaff {
            staff_no: "P-1001".into(),
            display_name: "王检察官".into(),
            office: "520121".into(),
            role: "approver".into(),
            tier: "department_head".into(),
            administrator: false,
            password: "a long enough passphrase".into(),
        };
        assert!(good.checked().is_ok());
        type Change = fn(&mut NewStaff);
        let cases: [(&str, Change); 6] = [
            ("staff_no", |s| s.staff_no = "P 1001".into()),
            ("office", |s| s.office = "5201".into()),
            ("role", |s| s.role = "service".into()),
            ("tier", |s| s.tier = String::new()),
            ("tier", |s| {
                s.role = "finance_officer".into();
            }),
            ("password", |s| s.password = "short".into()),
        ];
        for (field, change) in cases {
            let mut new = good.clone();
            change(&mut new);
            let error = new.checked().err();
            assert!(
                matches!(&error, Some(StaffError::Invalid { field: f, .. }) if *f == field),
                "{field}: {error:?}"
            );
        }
    }
}
