//! `jiuzhu keys rotate`: wraps every live data key of a service's key store (registry, clues)
//! again under a new master key, in batches (each its own transaction, so it can stop and go
//! on), with progress. The services keep opening keys wrapped by the old master key as long as
//! it is listed in `[vault] previous_master_key_files`; once this reports nothing left under
//! it, retire it there.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The service's database (its `person_keys`).
    #[arg(long, env = "JIUZHU_KEYS_DATABASE_URL")]
    database_url: String,
    /// The new master key (base64, 32 bytes): what the services' `[vault] master_key_file`
    /// names from now on.
    #[arg(long)]
    master_key_file: PathBuf,
    /// An earlier master key whose data keys are to be wrapped again; repeatable.
    #[arg(long = "previous-key-file", required = true)]
    previous_key_files: Vec<PathBuf>,
    /// Keys per transaction.
    #[arg(long, default_value_t = 1000)]
    batch: i64,
}

pub async fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    if !(1..=100_000).contains(&args.batch) {
        anyhow::bail!("--batch must be between 1 and 100000, not {}", args.batch);
    }
    let settings = jiuzhu_vault::VaultSettings {
        master_key_file: Some(args.master_key_file.clone()),
        previous_master_key_files: args.previous_key_files.clone(),
        ..jiuzhu_vault::VaultSettings::default()
    };
    let vault = jiuzhu_vault::Vault::from_settings(&settings)?;
    // One connection counts, one runs the batches.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await
        .context("cannot reach the database")?;
    let mut conn = pool.acquire().await?;
    let before = vault.key_counts(&mut conn).await?;
    let total: i64 = before
        .iter()
        .filter(|(id, _)| id != vault.master_key_id())
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "jiuzhu: {total} data keys to wrap under master key {}",
        vault.master_key_id()
    );
    let mut done = 0_u64;
    loop {
        let mut tx = pool.begin().await?;
        let rewrapped = vault.rewrap(&mut tx, args.batch).await?;
        tx.commit().await?;
        if rewrapped == 0 {
            break;
        }
        done += rewrapped;
        eprintln!("jiuzhu: wrapped {done} of {total}");
    }
    for (id, count) in vault.key_counts(&mut conn).await? {
        println!("master key {id}: {count} live data keys");
    }
    println!(
        "rotated {done} data keys to master key {}; retire the previous key files once no keys \
         are left under them (keyed hashes use [vault] derivation_key_file, which must not change)",
        vault.master_key_id()
    );
    Ok(())
}
