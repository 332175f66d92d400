use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use jiuzhu_proto::common::Sealed;
use sha2::Digest;
use uuid::Uuid;

use crate::VaultError;

const NONCE_LEN: usize = 12;

fn encrypt(
    cipher: &Aes256Gcm,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::Seal)?;
    Ok((nonce.to_vec(), ciphertext))
}

fn decrypt(
    cipher: &Aes256Gcm,
    aad: &[u8],
    nonce: &[u8],
    ciphertext: &[u8],
    person: Uuid,
) -> Result<Vec<u8>, VaultError> {
    if nonce.len() != NONCE_LEN {
        return Err(VaultError::Unauthentic { person });
    }
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| VaultError::Unauthentic { person })
}

/// One person's data key. Never printed.
#[derive(Clone)]
pub struct DataKey(Key<Aes256Gcm>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        Self(Aes256Gcm::generate_key(OsRng))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        if bytes.len() != 32 {
            return Err(VaultError::BadDataKey(bytes.len()));
        }
        Ok(Self(*Key::<Aes256Gcm>::from_slice(bytes)))
    }

    /// The raw key, for handing to a reader that is entitled to it.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Seals `message` for `person`.
    pub fn seal(&self, person: Uuid, message: &impl prost::Message) -> Result<Sealed, VaultError> {
        let (nonce, ciphertext) = encrypt(
            &Aes256Gcm::new(&self.0),
            person.as_bytes(),
            &message.encode_to_vec(),
        )?;
        Ok(Sealed {
            person_id: person.to_string(),
            nonce,
            ciphertext,
        })
    }

    /// Seals `message` for whoever holds this key, bound to `context` (a department's pseudonym
    /// of the person, say), which travels in the clear as `Sealed.person_id`.
    pub fn seal_for(
        &self,
        context: &str,
        message: &impl prost::Message,
    ) -> Result<Sealed, VaultError> {
        let (nonce, ciphertext) = encrypt(
            &Aes256Gcm::new(&self.0),
            context.as_bytes(),
            &message.encode_to_vec(),
        )?;
        Ok(Sealed {
            person_id: context.to_owned(),
            nonce,
            ciphertext,
        })
    }

    /// Opens what [`DataKey::seal_for`] sealed under this key.
    pub fn open_for<M: prost::Message + Default>(&self, sealed: &Sealed) -> Result<M, VaultError> {
        let plaintext = decrypt(
            &Aes256Gcm::new(&self.0),
            sealed.person_id.as_bytes(),
            &sealed.nonce,
            &sealed.ciphertext,
            Uuid::nil(),
        )?;
        M::decode(plaintext.as_slice()).map_err(|source| VaultError::Decode {
            person: Uuid::nil(),
            source,
        })
    }

    /// Opens a value sealed for `person`; fails when it was sealed under another key or for
    /// another person, or was altered.
    pub fn open<M: prost::Message + Default>(
        &self,
        person: Uuid,
        sealed: &Sealed,
    ) -> Result<M, VaultError> {
        let plaintext = decrypt(
            &Aes256Gcm::new(&self.0),
            person.as_bytes(),
            &sealed.nonce,
            &sealed.ciphertext,
            person,
        )?;
        M::decode(plaintext.as_slice()).map_err(|source| VaultError::Decode { person, source })
    }
}

/// The master key that wraps data keys at rest. Its id (a digest prefix) is stored with every
/// wrapped key, so a wrong master key is reported as such, not as corrupt data.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
    /// HMAC-SHA256 under the master key, for keys derived from it (never the key itself).
    deriver: Option<hmac::Hmac<sha2::Sha256>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    pub fn new(bytes: &[u8; 32]) -> Self {
        let digest = sha2::Sha256::digest(bytes);
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
            id: hex::encode(&digest[..4]),
            // HMAC takes keys of any length, so this is always `Some`.
            deriver: <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(bytes).ok(),
        }
    }

    /// A key for `purpose` (e.g. "sharing-pseudonyms"), derived from the master key: the same
    /// master key always gives the same key, and no derived key reveals the master key.
    pub fn derive(&self, purpose: &str) -> Result<[u8; 32], VaultError> {
        let mut mac = self.deriver.clone().ok_or(VaultError::Seal)?;
        hmac::Mac::update(&mut mac, purpose.as_bytes());
        Ok(hmac::Mac::finalize(mac).into_bytes().into())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `nonce || ciphertext` of the data key, bound to the person.
    pub fn wrap(&self, person: Uuid, key: &DataKey) -> Result<Vec<u8>, VaultError> {
        let (mut wrapped, ciphertext) = encrypt(&self.cipher, person.as_bytes(), key.as_bytes())?;
        wrapped.extend(ciphertext);
        Ok(wrapped)
    }

    pub fn unwrap_key(&self, person: Uuid, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let (nonce, ciphertext) = wrapped.split_at(wrapped.len().min(NONCE_LEN));
        let bytes = decrypt(&self.cipher, person.as_bytes(), nonce, ciphertext, person)?;
        DataKey::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiuzhu_proto::common::RegionCode;

    fn message() -> RegionCode {
        RegionCode {
            code: "张三 110105".to_owned(),
        }
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_person() -> Result<(), VaultError> {
        let key = DataKey::generate();
        let person = Uuid::now_v7();
        let sealed = key.seal(person, &message())?;
        assert!(!sealed.ciphertext.windows(6).any(|w| w == "张三".as_bytes()));
        assert_eq!(key.open::<RegionCode>(person, &sealed)?, message());

        let other_key = DataKey::generate();
        assert!(matches!(
            other_key.open::<RegionCode>(person, &sealed),
            Err(VaultError::Unauthentic { .. })
        ));
        assert!(matches!(
            key.open::<RegionCode>(Uuid::now_v7(), &sealed),
            Err(VaultError::Unauthentic { .. })
        ));
        let mut tampered = sealed.clone();
        if let Some(byte) = tampered.ciphertext.first_mut() {
            *byte ^= 1;
        }
        assert!(key.open::<RegionCode>(person, &tampered).is_err());
        Ok(())
    }

    #[test]
    fn wrapped_keys_unwrap_only_under_their_master_key() -> Result<(), VaultError> {
        let master = MasterKey::new(&[7; 32]);
        let person = Uuid::now_v7();
        let key = DataKey::generate();
        let wrapped = master.wrap(person, &key)?;
        assert_eq!(
            master.unwrap_key(person, &wrapped)?.as_bytes(),
            key.as_bytes()
        );
        assert!(
            MasterKey::new(&[8; 32])
                .unwrap_key(person, &wrapped)
                .is_err()
        );
        assert!(master.unwrap_key(Uuid::now_v7(), &wrapped).is_err());
        assert!(master.unwrap_key(person, &wrapped[..5]).is_err());
        assert_ne!(MasterKey::new(&[8; 32]).id(), master.id());
        assert!(!format!("{key:?}{master:?}").contains("07"));
        Ok(())
    }
}
