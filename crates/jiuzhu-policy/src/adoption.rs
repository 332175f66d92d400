//! The record of every policy set a service adopted (table `policy_adoptions`, in each
//! service's database): version, effective date, who adopted it, the SHA-256 of its files and
//! where each file came from. A set is recorded once per digest, however often it is loaded.

use crate::PolicySet;

/// The migration of the adoption table (versions 400..499).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Records `set` as adopted by `service` unless a set with the same files was; whether it
/// was new.
pub async fn record(
    pool: &sqlx::PgPool,
    service: &str,
    set: &PolicySet,
) -> Result<bool, sqlx::Error> {
    let files: serde_json::Map<String, serde_json::Value> = crate::FILES
        .iter()
        .filter_map(|(name, _)| {
            set.file(name).map(|f| {
                (
                    (*name).to_owned(),
                    serde_json::Value::String(f.origin.to_string()),
                )
            })
        })
        .collect();
    let inserted = sqlx::query(
        "INSERT INTO policy_adoptions (version, effective_from, adopted_by, sha256, files, service) \
         VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(set.version())
    .bind(set.effective_from)
    .bind(&set.manifest.adopted_by)
    .bind(set.digest())
    .bind(serde_json::Value::Object(files).to_string())
    .bind(service)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
