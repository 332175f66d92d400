//! `jiuzhu audit verify`: walks a service's audit log in its database and holds it to the
//! service's signed checkpoints; says whether it is intact or the first record that was changed,
//! deleted, spliced, rewritten or cut from the end.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The service whose log it is (names its checkpoint file and certificate).
    #[arg(long)]
    service: String,
    /// The service's database.
    #[arg(long, env = "JIUZHU_AUDIT_DATABASE_URL")]
    database_url: String,
    /// The audit key (base64, as `[audit] key_file`); without it keyed records cannot be
    /// checked.
    #[arg(long, env = "JIUZHU__AUDIT__KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Where the service writes its checkpoints (`[audit] checkpoint_dir`).
    #[arg(
        long,
        env = "JIUZHU__AUDIT__CHECKPOINT_DIR",
        default_value = ".jiuzhu/audit"
    )]
    checkpoint_dir: PathBuf,
    /// The directory holding the service's certificate, `<service>.pem`, which signs them.
    #[arg(long, env = "JIUZHU_CERTS", default_value = ".jiuzhu/certs")]
    certs: PathBuf,
}

/// Whether the log is intact (`Ok(true)`), or broken (`Ok(false)`, said on standard output).
pub async fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let key = match &args.key_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--key-file {}", path.display()))?;
            Some(jiuzhu_audit::AuditKey::decode("--key-file", &text)?)
        }
    };
    let certificate = std::fs::read_to_string(args.certs.join(format!("{}.pem", args.service)))
        .with_context(|| {
            format!(
                "the certificate of {} in {}",
                args.service,
                args.certs.display()
            )
        })?;
    let certificate = jiuzhu_access::signing::certificate_der(&certificate)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.database_url)
        .await
        .context("cannot reach the database")?;
    let service = &args.service;
    let checkpoints = match jiuzhu_audit::read_service_checkpoints(
        &args.checkpoint_dir,
        &args.service,
        &certificate,
    ) {
        Ok(checkpoints) => checkpoints,
        Err(error) => {
            println!("{service} audit log: BROKEN: {error}");
            return Ok(false);
        }
    };
    if checkpoints.is_empty() {
        eprintln!(
            "jiuzhu: no checkpoints of {service} in {}: records cut from the end cannot be found",
            args.checkpoint_dir.display()
        );
    }
    let verification = jiuzhu_audit::Audit::new(pool, key)
        .verify(&checkpoints)
        .await?;
    match verification.broken {
        None => {
            println!(
                "{service} audit log: {} records ({} keyed), held to {} checkpoints: intact",
                verification.records, verification.keyed, verification.checkpoints
            );
            Ok(true)
        }
        Some((sequence, reason)) => {
            println!(
                "{service} audit log: BROKEN at record {sequence}: {reason} ({} records before it verify)",
                verification.records
            );
            Ok(false)
        }
    }
}
