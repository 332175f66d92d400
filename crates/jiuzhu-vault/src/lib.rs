//! Crypto-shredding for personal data. Every person gets a random AES-256 data key; personal
//! fields are sealed under it (AES-256-GCM, the person id as associated data) before they enter
//! an event, so the event store, the outbox and Kafka only ever hold ciphertext. Data keys live
//! in the owning service's PostgreSQL (`person_keys`), each wrapped by a master key from
//! configuration. Erasing a person destroys their data key, which makes every copy of their
//! sealed data unreadable at once, past events and replays included. Services that only read
//! sealed data get keys from the owner through [`RemoteKeys`]. Searchable fields are found
//! through keyed [`BlindIndex`]es, never stored in the clear.

mod blind;
pub mod identity;
mod keys;
mod remote;
mod settings;
mod store;

pub use blind::BlindIndex;
pub use keys::{DataKey, MasterKey};
pub use remote::RemoteKeys;
pub use settings::VaultSettings;
pub use store::{KeyState, MintedKey, Vault};

/// Migrations for the key store (versions 200..299); the other sets' versions in the same
/// database are not its business.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "vault.master_key (or vault.master_key_file) is not set: it must hold 32 random bytes in \
         base64, e.g. from `head -c 32 /dev/urandom | base64`"
    )]
    MissingMasterKey,
    #[error("{key}: {reason}")]
    BadMasterKey { key: &'static str, reason: String },
    #[error(
        "the key of person {person} was wrapped by master key {stored}, but the configured master \
         key is {configured}"
    )]
    WrongMasterKey {
        person: uuid::Uuid,
        stored: String,
        configured: String,
    },
    #[error(
        "sealed data of person {person} fails authentication (tampered, or sealed for someone else)"
    )]
    Unauthentic { person: uuid::Uuid },
    #[error("no data key is known for person {person}")]
    NoKey { person: uuid::Uuid },
    #[error("a data key must be 32 bytes, got {0}")]
    BadDataKey(usize),
    #[error("sealed data of person {person} does not decode: {source}")]
    Decode {
        person: uuid::Uuid,
        source: prost::DecodeError,
    },
    #[error("sealing failed")]
    Seal,
    #[error("key store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the registry's key service is unavailable: {0}")]
    Unavailable(String),
    #[error("the registry's key service refused: {0}")]
    Refused(String),
}

/// Key-store failures by the one classification; never with personal data in the message. A
/// record that will never open is a fault of ours (internal): a consumer retries it a bounded
/// number of times and dead-letters it.
impl From<VaultError> for jiuzhu_errors::AppError {
    fn from(error: VaultError) -> Self {
        match error {
            VaultError::Database(error) => Self::storage(error),
            VaultError::Refused(reason) => {
                Self::permission_denied(format!("the registry's key service refused: {reason}"))
            }
            other if other.is_transient() => {
                tracing::warn!(error = %other, "key store unavailable");
                Self::unavailable(other.to_string())
            }
            other => {
                tracing::error!(error = %other, "key store failure");
                Self::internal(other.to_string())
            }
        }
    }
}

impl VaultError {
    /// Errors that a retry (or an operator fixing configuration) can cure, as opposed to data
    /// that will never open.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Database(_)
                | Self::Unavailable(_)
                | Self::WrongMasterKey { .. }
                | Self::MissingMasterKey
                | Self::BadMasterKey { .. }
        )
    }
}
