//! Master key rotation: `jiuzhu keys rotate` wraps every live data key again under the new
//! master key; until it has, the old key keeps opening what it wrapped when listed as previous;
//! erased persons stay erased; keyed hashes follow the derivation key, not the master key.

use std::process::Command;

use base64::Engine;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{binary_path, fresh_database};
use jiuzhu_vault::{KeyState, MasterKey, Vault, VaultError};
use sqlx::PgPool;
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const OLD: [u8; 32] = [1; 32];
const NEW: [u8; 32] = [2; 32];

fn live(state: Option<&KeyState>) -> Option<Vec<u8>> {
    state
        .and_then(KeyState::live)
        .map(|k| k.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_rewraps_every_live_key_and_old_ids_work_until_then() -> TestResult {
    let database = fresh_database::<Registry>().await?;
    let pool = PgPool::connect(&database.url).await?;
    let mut conn = pool.acquire().await?;
    let persons: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let old = Vault::new(MasterKey::new(&OLD));
    let before = old.ensure_keys(&mut conn, &persons).await?;
    assert!(old.erase(&mut conn, persons[2]).await?);

    // The new key alone cannot open the old keys; listed as previous, the old key still can.
    let new_only = Vault::new(MasterKey::new(&NEW));
    assert!(matches!(
        new_only.keys(&mut conn, &persons).await,
        Err(VaultError::WrongMasterKey { .. })
    ));
    let both = Vault::new(MasterKey::new(&NEW)).with_previous(vec![MasterKey::new(&OLD)]);
    let during = both.keys(&mut conn, &persons).await?;
    assert_eq!(live(during.get(&persons[0])), live(before.get(&persons[0])));

    // The rotation, one key per transaction, as an operator runs it.
    let dir = std::env::temp_dir().join(format!("jiuzhu-keys-{}", database.name));
    std::fs::create_dir_all(&dir)?;
    let encode = |bytes: &[u8; 32]| base64::engine::general_purpose::STANDARD.encode(bytes);
    std::fs::write(dir.join("new.key"), encode(&NEW))?;
    std::fs::write(dir.join("old.key"), encode(&OLD))?;
    let output = Command::new(binary_path("jiuzhu")?)
        .args([
            "keys",
            "rotate",
            "--database-url",
            &database.url,
            "--batch",
            "1",
        ])
        .arg("--master-key-file")
        .arg(dir.join("new.key"))
        .arg("--previous-key-file")
        .arg(dir.join("old.key"))
        .output()?;
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("rotated 2 data keys"), "{said}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("wrapped 2 of 2"),
        "progress is shown"
    );

    // Now the new key alone opens every live key, the same keys; the erased stays erased.
    let after = new_only.keys(&mut conn, &persons).await?;
    for person in &persons[..2] {
        assert_eq!(live(after.get(person)), live(before.get(person)));
        assert!(live(after.get(person)).is_some());
    }
    assert!(matches!(after.get(&persons[2]), Some(KeyState::Erased)));
    assert!(matches!(
        old.keys(&mut conn, &persons).await,
        Err(VaultError::WrongMasterKey { .. })
    ));
    assert_eq!(
        new_only.key_counts(&mut conn).await?,
        [(new_only.master_key_id().to_owned(), 2)]
    );

    // Keyed hashes (search, pseudonyms) stay what they were when the old master key becomes
    // the derivation key.
    let derived = Vault::new(MasterKey::new(&NEW)).with_derivation_key(MasterKey::new(&OLD));
    assert_eq!(
        derived.derive_key("blind-index:registry.persons")?,
        old.derive_key("blind-index:registry.persons")?
    );
    assert_ne!(
        new_only.derive_key("blind-index:registry.persons")?,
        old.derive_key("blind-index:registry.persons")?
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
