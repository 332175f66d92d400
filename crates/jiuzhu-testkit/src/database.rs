use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};

use crate::TestkitError;
use jiuzhu_runtime::Service;

/// Prefix of every database the test suite creates; `make test` drops leftovers.
pub const TEST_DATABASE_PREFIX: &str = "jiuzhu_test_";

/// A database created for one test. Left in place afterwards for inspection; `make test`
/// drops all `jiuzhu_test_*` databases before a run.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

/// The admin connection tests use (`JIUZHU_TEST_DATABASE_URL`).
pub fn admin_url() -> String {
    std::env::var("JIUZHU_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    match admin.rfind('/') {
        Some(slash) => format!("{}/{database}", &admin[..slash]),
        None => format!("{admin}/{database}"),
    }
}

/// A new, empty database named for `owner` (for a component that migrates its own, such as
/// the console).
pub async fn empty_database(owner: &str) -> Result<TestDatabase, TestkitError> {
    let name = format!(
        "{TEST_DATABASE_PREFIX}{owner}_{}",
        uuid::Uuid::now_v7().simple()
    );
    let mut admin = PgConnection::connect(&admin_url()).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(TestDatabase {
        url: url_for(&name),
        name,
    })
}

/// Identifies a service's migration set, so that a changed migration gets a new template.
fn migration_fingerprint<S: Service>() -> String {
    let mut hasher = Sha256::new();
    for migrator in jiuzhu_runtime::migrators_of::<S>() {
        for migration in migrator.iter() {
            hasher.update(migration.version.to_le_bytes());
            hasher.update(&migration.checksum);
        }
    }
    hex::encode(&hasher.finalize()[..6])
}

/// A new database for service `S`, with every migration applied, cloned from a template that
/// is built once per migration set (under an advisory lock, so parallel tests build it once).
pub async fn fresh_database<S: Service>() -> Result<TestDatabase, TestkitError> {
    let admin_url = admin_url();
    let mut admin =
        PgConnection::connect(&admin_url)
            .await
            .map_err(|source| TestkitError::Postgres {
                url: admin_url.clone(),
                source,
            })?;
    let template = format!("jiuzhu_tpl_{}_{}", S::NAME, migration_fingerprint::<S>());
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(&template)
        .execute(&mut admin)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await?;
    let built = if exists {
        Ok(())
    } else {
        build_template::<S>(&mut admin, &template).await
    };
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(&template)
        .execute(&mut admin)
        .await?;
    built?;

    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        S::NAME,
        uuid::Uuid::now_v7().simple()
    );
    execute_retrying(
        &mut admin,
        &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
    )
    .await?;
    admin.close().await?;
    Ok(TestDatabase {
        url: url_for(&name),
        name,
    })
}

async fn build_template<S: Service>(
    admin: &mut PgConnection,
    template: &str,
) -> Result<(), TestkitError> {
    let building = format!("{template}_building");
    execute_retrying(admin, &format!("DROP DATABASE IF EXISTS \"{building}\"")).await?;
    sqlx::query(&format!("CREATE DATABASE \"{building}\""))
        .execute(&mut *admin)
        .await?;
    // One plain connection, closed before the rename: a pool may still hold it a moment later.
    let mut conn = PgConnection::connect(&url_for(&building)).await?;
    jiuzhu_runtime::migrate::<S>(&mut conn).await?;
    conn.close().await?;
    // Renamed only once complete, so a half-built template is never used.
    execute_retrying(
        admin,
        &format!("ALTER DATABASE \"{building}\" RENAME TO \"{template}\""),
    )
    .await?;
    Ok(())
}

/// Runs a database-level statement, retrying while PostgreSQL refuses because another session
/// is still connected to the source database: a test copying the same template at the same
/// moment, or a just-closed connection the server has not yet let go of.
async fn execute_retrying(admin: &mut PgConnection, statement: &str) -> Result<(), TestkitError> {
    let mut attempt: u64 = 0;
    loop {
        match sqlx::query(statement).execute(&mut *admin).await {
            Ok(_) => return Ok(()),
            Err(error)
                if attempt < 100 && error.to_string().contains("accessed by other users") =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 + 10 * attempt.min(20)))
                    .await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
