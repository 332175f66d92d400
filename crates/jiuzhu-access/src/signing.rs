//! Detached signatures with the key of a system's certificate (ECDSA P-256, SHA-256, ASN.1
//! DER, hex): the acting-person claim, the audit log's checkpoints and the departments' inbound
//! messages are signed this way and checked against the signer's certificate.

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::AccessError;

/// A private key (PEM, PKCS#8, ECDSA P-256) ready to sign.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey")
    }
}

impl SigningKey {
    pub fn from_pem(key_pem: &str) -> Result<Self, AccessError> {
        let key = rcgen::KeyPair::from_pem(key_pem)
            .map_err(|error| AccessError::Certificate(format!("signing key: {error}")))?;
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &key.serialize_der(), &rng)
                .map_err(|_| {
                AccessError::Certificate("the signing key is not ECDSA P-256".to_owned())
            })?;
        Ok(Self { pair, rng })
    }

    /// The hex signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<String, AccessError> {
        let signature = self
            .pair
            .sign(&self.rng, message)
            .map_err(|_| AccessError::Certificate("signing failed".to_owned()))?;
        Ok(hex::encode(signature.as_ref()))
    }
}

/// Whether `signature` (hex) is the signature of `message` by the key of `certificate` (DER);
/// why not.
pub fn verify(certificate: &[u8], message: &[u8], signature: &str) -> Result<(), String> {
    let signature = hex::decode(signature).map_err(|_| "the signature is not hex".to_owned())?;
    let (_, certificate) =
        X509Certificate::from_der(certificate).map_err(|error| error.to_string())?;
    let key = certificate.public_key().subject_public_key.data.as_ref();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
        .verify(message, &signature)
        .map_err(|_| "the signature does not verify".to_owned())
}

/// The DER of the first certificate in `pem`.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, AccessError> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(_, pem)| pem.contents)
        .map_err(|error| AccessError::Certificate(format!("certificate PEM: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{DevAuthority, HOSTS};
    use crate::{Identity, Role};

    #[test]
    fn a_signature_verifies_only_for_its_message_and_signer()
    -> Result<(), Box<dyn std::error::Error>> {
        let authority = DevAuthority::new()?;
        let signer = authority.issue(
            &Identity::new("jiuzhu", "000000", Role::Service, "registry"),
            &HOSTS,
        )?;
        let other = authority.issue(
            &Identity::new("jiuzhu", "000000", Role::Service, "clues"),
            &HOSTS,
        )?;
        let signature = SigningKey::from_pem(&signer.key_pem)?.sign(b"checkpoint 7")?;
        let certificate = certificate_der(&signer.cert_pem)?;
        assert_eq!(verify(&certificate, b"checkpoint 7", &signature), Ok(()));
        assert!(verify(&certificate, b"checkpoint 8", &signature).is_err());
        assert!(
            verify(
                &certificate_der(&other.cert_pem)?,
                b"checkpoint 7",
                &signature
            )
            .is_err()
        );
        assert!(verify(&certificate, b"checkpoint 7", "zz").is_err());
        Ok(())
    }
}
