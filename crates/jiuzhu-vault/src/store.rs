use std::collections::HashMap;
use std::sync::Arc;

use jiuzhu_config::ConfigError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::settings::decode_master_key;
use crate::{DataKey, MasterKey, VaultError, VaultSettings};

/// What the key store holds for a person.
#[derive(Debug, Clone)]
pub enum KeyState {
    Live(DataKey),
    /// The person was erased: their sealed data can never be opened again.
    Erased,
}

impl KeyState {
    pub fn live(&self) -> Option<&DataKey> {
        match self {
            Self::Live(key) => Some(key),
            Self::Erased => None,
        }
    }
}

/// A new data key and its `person_keys` row (see [`Vault::mint`]).
#[derive(Debug)]
pub struct MintedKey {
    pub key: DataKey,
    pub wrapped: Vec<u8>,
    pub master_key_id: String,
}

/// The key store of a service that owns personal data. Reads and writes go through the
/// caller's connection, so creating a key, appending the events sealed under it and erasing it
/// are each part of the command's own transaction.
#[derive(Debug, Clone)]
pub struct Vault {
    master: Arc<MasterKey>,
    /// Earlier master keys by id: they still open what they wrapped.
    previous: Arc<HashMap<String, MasterKey>>,
    /// The key of keyed hashes, when it is not the master key.
    derivation: Option<Arc<MasterKey>>,
}

impl Vault {
    /// A key for `purpose` (blind indexes, pseudonyms), derived from the derivation key, or
    /// from the master key when none is set (see [`MasterKey::derive`]).
    pub fn derive_key(&self, purpose: &str) -> Result<[u8; 32], VaultError> {
        self.derivation
            .as_deref()
            .unwrap_or(&self.master)
            .derive(purpose)
    }

    pub fn new(master: MasterKey) -> Self {
        Self {
            master: Arc::new(master),
            previous: Arc::default(),
            derivation: None,
        }
    }

    /// Also opens what `keys` wrapped (earlier master keys).
    pub fn with_previous(self, keys: Vec<MasterKey>) -> Self {
        Self {
            previous: Arc::new(keys.into_iter().map(|k| (k.id().to_owned(), k)).collect()),
            ..self
        }
    }

    /// Derives keyed hashes from `key` instead of the master key.
    pub fn with_derivation_key(self, key: MasterKey) -> Self {
        Self {
            derivation: Some(Arc::new(key)),
            ..self
        }
    }

    /// Whether keyed hashes have a key of their own (a precondition of rotating the master key).
    pub fn has_own_derivation_key(&self) -> bool {
        self.derivation.is_some()
    }

    /// The master key from `[vault]`.
    pub fn from_settings(settings: &VaultSettings) -> Result<Self, VaultError> {
        let bad = |error: ConfigError| match error {
            ConfigError::Invalid { key, reason } => VaultError::BadMasterKey {
                key: if key.ends_with("file") {
                    "vault.master_key_file"
                } else {
                    "vault.master_key"
                },
                reason,
            },
            other => VaultError::BadMasterKey {
                key: "vault.master_key",
                reason: other.to_string(),
            },
        };
        let bytes = match (&settings.master_key, &settings.master_key_file) {
            (Some(key), _) => decode_master_key("vault.master_key", key.expose()).map_err(bad)?,
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|error| VaultError::BadMasterKey {
                        key: "vault.master_key_file",
                        reason: format!("cannot read {}: {error}", path.display()),
                    })?;
                decode_master_key("vault.master_key_file", &text).map_err(bad)?
            }
            (None, None) => return Err(VaultError::MissingMasterKey),
        };
        let read_file = |setting: &'static str, path: &std::path::Path| {
            let text = std::fs::read_to_string(path).map_err(|error| VaultError::BadMasterKey {
                key: setting,
                reason: format!("cannot read {}: {error}", path.display()),
            })?;
            decode_master_key(setting, &text)
                .map(|bytes| MasterKey::new(&bytes))
                .map_err(|error| VaultError::BadMasterKey {
                    key: setting,
                    reason: format!("{}: {error}", path.display()),
                })
        };
        let previous = settings
            .previous_master_key_files
            .iter()
            .map(|path| read_file("vault.previous_master_key_files", path))
            .collect::<Result<Vec<_>, _>>()?;
        let mut vault = Self::new(MasterKey::new(&bytes)).with_previous(previous);
        if let Some(path) = &settings.derivation_key_file {
            vault = vault.with_derivation_key(read_file("vault.derivation_key_file", path)?);
        }
        Ok(vault)
    }

    /// The master key that wrapped a stored key: the current one or an earlier one.
    fn wrapped_by(&self, person: Uuid, id: &str) -> Result<&MasterKey, VaultError> {
        if id == self.master.id() {
            return Ok(&self.master);
        }
        self.previous
            .get(id)
            .ok_or_else(|| VaultError::WrongMasterKey {
                person,
                stored: id.to_owned(),
                configured: self.master.id().to_owned(),
            })
    }

    /// Wraps again under the current master key up to `batch` live keys that an earlier one
    /// wraps; how many it did (0 when none is left). Each batch is one transaction, so a
    /// rotation can stop and go on.
    pub async fn rewrap(&self, conn: &mut PgConnection, batch: i64) -> Result<u64, VaultError> {
        let rows: Vec<(Uuid, Vec<u8>, String)> = sqlx::query_as(
            "SELECT person_id, wrapped_key, master_key_id FROM person_keys \
             WHERE wrapped_key IS NOT NULL AND master_key_id <> $1 \
             ORDER BY person_id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.master.id())
        .bind(batch)
        .fetch_all(&mut *conn)
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut wrapped = Vec::with_capacity(rows.len());
        for (person, old, id) in rows {
            let key = self.wrapped_by(person, &id)?.unwrap_key(person, &old)?;
            ids.push(person);
            wrapped.push(self.master.wrap(person, &key)?);
        }
        let done = sqlx::query(
            "UPDATE person_keys SET wrapped_key = t.w, master_key_id = $3 \
             FROM unnest($1::uuid[], $2::bytea[]) AS t(p, w) \
             WHERE person_keys.person_id = t.p AND person_keys.wrapped_key IS NOT NULL",
        )
        .bind(&ids)
        .bind(&wrapped)
        .bind(self.master.id())
        .execute(conn)
        .await?
        .rows_affected();
        Ok(done)
    }

    /// Live keys per master key id (to see what a rotation has left).
    pub async fn key_counts(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<(String, i64)>, VaultError> {
        Ok(sqlx::query_as(
            "SELECT master_key_id, count(*) FROM person_keys WHERE wrapped_key IS NOT NULL \
             GROUP BY master_key_id ORDER BY master_key_id",
        )
        .fetch_all(conn)
        .await?)
    }

    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    /// Keys for `persons`, creating one for every person that has none yet. An erased person
    /// stays erased (a new key is never made for them).
    pub async fn ensure_keys(
        &self,
        conn: &mut PgConnection,
        persons: &[Uuid],
    ) -> Result<HashMap<Uuid, KeyState>, VaultError> {
        let mut found = self.keys(conn, persons).await?;
        let missing: Vec<Uuid> = persons
            .iter()
            .filter(|p| !found.contains_key(p))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let mut ids = Vec::with_capacity(missing.len());
        let mut wrapped = Vec::with_capacity(missing.len());
        let mut fresh = HashMap::with_capacity(missing.len());
        for person in missing {
            let key = DataKey::generate();
            ids.push(person);
            wrapped.push(self.master.wrap(person, &key)?);
            fresh.insert(person, key);
        }
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO person_keys (person_id, wrapped_key, master_key_id) \
             SELECT p, w, $3 FROM unnest($1::uuid[], $2::bytea[]) AS t(p, w) \
             ON CONFLICT (person_id) DO NOTHING RETURNING person_id",
        )
        .bind(&ids)
        .bind(&wrapped)
        .bind(self.master.id())
        .fetch_all(&mut *conn)
        .await?;
        let raced = ids.len() != inserted.len();
        for person in inserted {
            if let Some(key) = fresh.remove(&person) {
                found.insert(person, KeyState::Live(key));
            }
        }
        if raced {
            // Another transaction created some of them first: theirs are the keys.
            let others: Vec<Uuid> = fresh.into_keys().collect();
            found.extend(self.keys(conn, &others).await?);
        }
        Ok(found)
    }

    /// A data key for a record created in this very command (an id just made, which no row
    /// can hold yet), and the row to store it as: its wrapped form and the master key's id.
    /// The caller inserts the row in its own statement, saving the look-up and the round
    /// trip that [`Vault::ensure_keys`] spends on ids that may exist.
    pub fn mint(&self, person: Uuid) -> Result<MintedKey, VaultError> {
        let key = DataKey::generate();
        Ok(MintedKey {
            wrapped: self.master.wrap(person, &key)?,
            master_key_id: self.master.id().to_owned(),
            key,
        })
    }

    /// The keys the store holds for `persons`; persons it never saw are absent.
    pub async fn keys(
        &self,
        conn: &mut PgConnection,
        persons: &[Uuid],
    ) -> Result<HashMap<Uuid, KeyState>, VaultError> {
        let rows: Vec<(Uuid, Option<Vec<u8>>, String)> = sqlx::query_as(
            "SELECT person_id, wrapped_key, master_key_id FROM person_keys WHERE person_id = ANY($1)",
        )
        .bind(persons)
        .fetch_all(conn)
        .await?;
        rows.into_iter()
            .map(|(person, wrapped, master_key_id)| {
                let state = match wrapped {
                    None => KeyState::Erased,
                    Some(wrapped) => KeyState::Live(
                        self.wrapped_by(person, &master_key_id)?
                            .unwrap_key(person, &wrapped)?,
                    ),
                };
                Ok((person, state))
            })
            .collect()
    }

    /// Destroys the person's key for good. Returns false when it was already erased.
    pub async fn erase(&self, conn: &mut PgConnection, person: Uuid) -> Result<bool, VaultError> {
        let erased: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO person_keys (person_id, wrapped_key, master_key_id, erased_at) \
             VALUES ($1, NULL, $2, now()) \
             ON CONFLICT (person_id) DO UPDATE SET wrapped_key = NULL, erased_at = now() \
             WHERE person_keys.erased_at IS NULL RETURNING person_id",
        )
        .bind(person)
        .bind(self.master.id())
        .fetch_optional(conn)
        .await?;
        Ok(erased.is_some())
    }
}
