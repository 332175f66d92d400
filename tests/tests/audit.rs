//! The audit log holds up to someone who can write its table: a changed, deleted, spliced or
//! cut record, a chain rewritten with or without the audit key, and a forged checkpoint are
//! each found, by the library and by `jiuzhu audit verify`, which says which record.

use std::path::{Path, PathBuf};
use std::process::Command;

use jiuzhu_access::signing::{SigningKey, certificate_der};
use jiuzhu_access::{Caller, Identity, Role};
use jiuzhu_audit::{
    Audit, AuditKey, Checkpointer, checkpoint_file, checkpoint_files, read_checkpoints,
    read_service_checkpoints,
};
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{binary_path, certs_dir, fresh_database};
use sqlx::PgPool;
use tonic::Code;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KEY: [u8; 32] = [7; 32];

fn caller(n: usize) -> Caller {
    Caller {
        identity: Identity::new(
            "procuratorate",
            "520102",
            Role::ReliefProsecutor,
            "case-system",
        ),
        nationwide: false,
        acting: Some(format!("P-{n:04}")),
        method: "/jiuzhu.registry.v1.RegistryService/GetPerson".to_owned(),
        table_version: "test".to_owned(),
    }
}

/// A log of `records` records under `key`, from record `from` on.
async fn write(audit: &Audit, from: usize, records: usize) -> anyhow::Result<()> {
    for n in from..from + records {
        audit
            .record(
                &caller(n),
                &format!("person-{n}"),
                "relief review",
                Code::Ok,
            )
            .await?;
    }
    Ok(())
}

/// A fresh log of 12 keyed records, checkpointed after the tenth; its pool and checkpoint
/// directory.
async fn logged() -> anyhow::Result<(PgPool, String, PathBuf)> {
    let database = fresh_database::<Registry>().await?;
    let pool = PgPool::connect(&database.url).await?;
    let audit = Audit::new(pool.clone(), Some(AuditKey::new(KEY)));
    write(&audit, 1, 10).await?;
    let dir = std::env::temp_dir().join(format!("jiuzhu-audit-{}", database.name));
    let key = std::fs::read_to_string(certs_dir()?.join("registry.key"))?;
    // Two replicas share the directory, each with a file of its own.
    for instance in ["registry-a", "registry-b"] {
        let mut checkpointer = Checkpointer::new(
            audit.clone(),
            "registry",
            checkpoint_file(&dir, "registry", instance),
            SigningKey::from_pem(&key)?,
        );
        let written = checkpointer.checkpoint(chrono::Utc::now()).await?;
        assert_eq!(written.map(|c| c.sequence), Some(10));
        assert_eq!(
            checkpointer.checkpoint(chrono::Utc::now()).await?,
            None,
            "nothing new"
        );
    }
    assert_eq!(checkpoint_files(&dir, "registry")?.len(), 2);
    write(&audit, 11, 2).await?;
    Ok((pool, database.url, dir))
}

/// Runs `sql` with the append-only triggers off, as a database superuser could.
async fn tamper(pool: &PgPool, sql: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql).execute(&mut *tx).await?;
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn verdict(
    pool: &PgPool,
    dir: &Path,
    key: Option<[u8; 32]>,
) -> anyhow::Result<(i64, String)> {
    let certificate =
        certificate_der(&std::fs::read_to_string(certs_dir()?.join("registry.pem"))?)?;
    let checkpoints = read_service_checkpoints(dir, "registry", &certificate)?;
    let verification = Audit::new(pool.clone(), key.map(AuditKey::new))
        .verify(&checkpoints)
        .await?;
    Ok(verification.broken.unwrap_or((0, "intact".to_owned())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_tampering_is_found_and_named() -> TestResult {
    // Intact: every record keyed, held to the checkpoint.
    let (pool, _, dir) = logged().await?;
    let certificate =
        certificate_der(&std::fs::read_to_string(certs_dir()?.join("registry.pem"))?)?;
    let checkpoints = read_service_checkpoints(&dir, "registry", &certificate)?;
    let intact = Audit::new(pool.clone(), Some(AuditKey::new(KEY)))
        .verify(&checkpoints)
        .await?;
    assert_eq!(
        (
            intact.records,
            intact.keyed,
            intact.checkpoints,
            intact.broken
        ),
        (12, 12, 1, None)
    );
    // Without the key a keyed record cannot be vouched for.
    let (at, why) = verdict(&pool, &dir, None).await?;
    assert_eq!(at, 1);
    assert!(why.contains("audit key"), "{why}");

    // A changed record.
    tamper(
        &pool,
        "UPDATE audit_log SET purpose = 'curiosity' WHERE sequence = 5",
    )
    .await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 5);
    assert!(why.contains("changed"), "{why}");

    // A record pointed at another trace (an operator would follow it to the wrong call).
    let (pool, _, dir) = logged().await?;
    tamper(
        &pool,
        "UPDATE audit_log SET trace_id = '4bf92f3577b34da6a3ce929d0e0e4736' WHERE sequence = 6",
    )
    .await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 6);
    assert!(why.contains("changed"), "{why}");

    // A record deleted from the middle.
    let (pool, _, dir) = logged().await?;
    tamper(&pool, "DELETE FROM audit_log WHERE sequence = 4").await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 4);
    assert!(why.contains("missing"), "{why}");

    // The newest records cut, beyond the checkpoint: the chain left is sound, the checkpoint
    // says it went further.
    let (pool, _, dir) = logged().await?;
    tamper(&pool, "DELETE FROM audit_log WHERE sequence > 8").await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 9);
    assert!(why.contains("cut from the end"), "{why}");

    // The whole chain rewritten as plain SHA-256 (what the table alone allows).
    let (pool, _, dir) = logged().await?;
    tamper(&pool, "DELETE FROM audit_log").await?;
    write(&Audit::new(pool.clone(), None), 1, 12).await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 10, "sound as SHA-256 until the checkpoint: {why}");
    assert!(why.contains("rewritten"), "{why}");

    // Unkeyed records after keyed ones.
    let (pool, _, dir) = logged().await?;
    write(&Audit::new(pool.clone(), None), 13, 1).await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 13);
    assert!(why.contains("not keyed"), "{why}");

    // Even with the key (an insider), a rewritten chain differs where a checkpoint vouches.
    let (pool, _, dir) = logged().await?;
    tamper(&pool, "DELETE FROM audit_log").await?;
    write(&Audit::new(pool.clone(), Some(AuditKey::new(KEY))), 101, 12).await?;
    let (at, why) = verdict(&pool, &dir, Some(KEY)).await?;
    assert_eq!(at, 10);
    assert!(why.contains("rewritten"), "{why}");

    // A checkpoint edited to vouch for less: its signature no longer verifies.
    let (_pool, _, dir) = logged().await?;
    let file = checkpoint_file(&dir, "registry", "registry-b");
    let edited = std::fs::read_to_string(&file)?.replace("\"sequence\":10", "\"sequence\":8");
    std::fs::write(&file, edited)?;
    let refused = read_checkpoints(&file, &certificate);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("does not verify")),
        "{refused:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jiuzhu_audit_verify_says_intact_or_which_record_and_exits_one() -> TestResult {
    let (pool, url, dir) = logged().await?;
    let key_file = dir.join("audit.key");
    {
        use base64::Engine;
        std::fs::write(
            &key_file,
            base64::engine::general_purpose::STANDARD.encode(KEY),
        )?;
    }
    let run = || {
        Command::new(binary_path("jiuzhu")?)
            .args([
                "audit",
                "verify",
                "--service",
                "registry",
                "--database-url",
                &url,
            ])
            .arg("--key-file")
            .arg(&key_file)
            .arg("--checkpoint-dir")
            .arg(&dir)
            .arg("--certs")
            .arg(certs_dir()?)
            .output()
            .map_err(anyhow::Error::from)
    };
    let intact = run()?;
    let said = String::from_utf8_lossy(&intact.stdout);
    assert!(
        intact.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(
        said.contains("12 records (12 keyed), held to 1 checkpoints: intact"),
        "{said}"
    );
    tamper(
        &pool,
        "UPDATE audit_log SET person_id = 'someone-else' WHERE sequence = 3",
    )
    .await?;
    let broken = run()?;
    let said = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{said}");
    assert!(said.contains("BROKEN at record 3"), "{said}");
    assert!(said.contains("changed"), "{said}");
    Ok(())
}
