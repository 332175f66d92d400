use hmac::Mac;

use crate::{Vault, VaultError};

/// Keyed blind indexes: a searchable personal field (resident ID, phone, name) is stored as
/// HMAC-SHA-256 under a key derived from the master key, so that equality search works without
/// the plaintext. Unlike a plain hash, nobody without the master key can test guesses (a list
/// of every possible resident ID would invert a plain hash in minutes).
#[derive(Clone)]
pub struct BlindIndex {
    mac: hmac::Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex")
    }
}

impl BlindIndex {
    /// The index key for `purpose` (e.g. "registry.persons"), derived from the vault's master key.
    pub fn new(vault: &Vault, purpose: &str) -> Result<Self, VaultError> {
        let key = vault.derive_key(&format!("blind-index:{purpose}"))?;
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| VaultError::Seal)?;
        Ok(Self { mac })
    }

    /// The index of `parts` of field `field` (hex); empty when every part is empty (an unknown
    /// value is not searchable).
    pub fn of(&self, field: &str, parts: &[&str]) -> String {
        if parts.iter().all(|p| p.is_empty()) {
            return String::new();
        }
        let mut mac = self.mac.clone();
        mac.update(field.as_bytes());
        for part in parts {
            mac.update(&[0]);
            mac.update(part.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    #[test]
    fn indexes_are_stable_keyed_and_separate_fields() -> Result<(), VaultError> {
        let vault = Vault::new(MasterKey::new(&[7; 32]));
        let index = BlindIndex::new(&vault, "test")?;
        let id = index.of("resident_id", &["11010519491231002X"]);
        assert_eq!(id, index.of("resident_id", &["11010519491231002X"]));
        assert_eq!(id.len(), 64);
        assert!(!id.contains("1101051949"));
        assert_ne!(id, index.of("phone", &["11010519491231002X"]));
        assert_ne!(
            index.of("name", &["王", "秀英"]),
            index.of("name", &["王秀", "英"])
        );
        assert_eq!(index.of("phone", &[""]), "");
        let other = BlindIndex::new(&Vault::new(MasterKey::new(&[8; 32])), "test")?;
        assert_ne!(id, other.of("resident_id", &["11010519491231002X"]));
        Ok(())
    }
}
