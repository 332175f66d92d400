use std::path::PathBuf;

use base64::Engine;
use jiuzhu_config::{ConfigError, Secret, Validate};
use serde::Deserialize;

/// `[vault]`: the master key that wraps the per-person data keys. Given inline (best from the
/// environment, `JIUZHU__VAULT__MASTER_KEY`) or as a file holding it; one of the two is needed by
/// services that own personal data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultSettings {
    /// 32 random bytes, base64.
    pub master_key: Option<Secret>,
    /// A file holding the base64 master key (read at start).
    pub master_key_file: Option<PathBuf>,
    /// Files of earlier master keys: data keys still wrapped by one of them open until
    /// `jiuzhu keys rotate` has wrapped them again under the current key; then retire the file.
    pub previous_master_key_files: Vec<PathBuf>,
    /// The key of the keyed hashes (blind indexes, department pseudonyms), its own: a master
    /// key rotation must not change what a search finds or the pseudonyms departments know.
    /// When not set these derive from the master key, which can then not be rotated: set it
    /// to the current master key's file before the first rotation (same hashes, no rebuild).
    pub derivation_key_file: Option<PathBuf>,
}

pub(crate) fn decode_master_key(key: &'static str, text: &str) -> Result<[u8; 32], ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ConfigError::invalid(key, "is not base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::invalid(key, format!("must decode to 32 bytes, not {}", bytes.len()))
    })
}

impl Validate for VaultSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return Err(ConfigError::invalid(
                format!("{prefix}.master_key"),
                "give master_key or master_key_file, not both",
            ));
        }
        if let Some(key) = &self.master_key {
            decode_master_key("vault.master_key", key.expose())?;
        }
        Ok(())
    }
}
