//! Detached signatures with the key of a system's certificate (ECDSA P-256, SHA-256, ASN.1
//! DER, hex): the acting-person claim, the audit log's checkpoints and the departments' inbound
//! messages are signed this way and checked against the signer's certificate.
//!
//! An inbound message (`jiuzhu.inbound.<source>.v1`) carries its sender's certificate in
//! `jiuzhu-signer` (base64 DER) and in `jiuzhu-signature` the hex signature of
//! `"jiuzhu-inbound\n" + <source> + "\n"` followed by the payload bytes. It counts only when the
//! certificate was issued by the installation's authority and speaks for the source: a
//! department's integrator (its department in the certificate) for a department's topic, a
//! case-handling system (role `case_prosecutor`) for `cases`.

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use std::collections::HashMap;

use base64::Engine;

use crate::{AccessError, Identity, Role};

/// Header of an inbound message: the sender's certificate, base64 DER.
pub const SIGNER_HEADER: &str = "jiuzhu-signer";
/// Header of an inbound message: the hex signature of [`inbound_signed_bytes`].
pub const SIGNATURE_HEADER: &str = "jiuzhu-signature";

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

/// What the sender of an inbound message on `source`'s topic signs.
pub fn inbound_signed_bytes(source: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = format!("jiuzhu-inbound\n{source}\n").into_bytes();
    bytes.extend_from_slice(payload);
    bytes
}

/// The two headers a sender puts on an inbound message for `source` (certificate and key PEM).
pub fn sign_inbound(
    cert_pem: &str,
    key_pem: &str,
    source: &str,
    payload: &[u8],
) -> Result<[(&'static str, String); 2], AccessError> {
    let certificate = certificate_der(cert_pem)?;
    let signature = SigningKey::from_pem(key_pem)?.sign(&inbound_signed_bytes(source, payload))?;
    Ok([
        (
            SIGNER_HEADER,
            base64::engine::general_purpose::STANDARD.encode(certificate),
        ),
        (SIGNATURE_HEADER, signature),
    ])
}

/// The authorities whose certificates may sign (the installation's `ca.pem`).
#[derive(Debug, Clone)]
pub struct Authorities(Vec<Vec<u8>>);

impl Authorities {
    /// Every certificate in `pem`.
    pub fn from_pem(pem: &str) -> Result<Self, AccessError> {
        let mut found = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            let block = block
                .map_err(|error| AccessError::Certificate(format!("authority PEM: {error}")))?;
            found.push(block.contents);
        }
        if found.is_empty() {
            return Err(AccessError::Certificate(
                "no certificate in the authority file".to_owned(),
            ));
        }
        Ok(Self(found))
    }

    /// Whether `verifies` holds for the public key of one of the authorities.
    pub fn signed(
        &self,
        verifies: impl Fn(&x509_parser::x509::SubjectPublicKeyInfo<'_>) -> bool,
    ) -> bool {
        self.0.iter().any(|authority| {
            X509Certificate::from_der(authority)
                .is_ok_and(|(_, authority)| verifies(authority.public_key()))
        })
    }

    /// The sender of an inbound message on `source`'s topic, if its headers prove it may speak
    /// for `source`; why not.
    pub fn verify_inbound(
        &self,
        source: &str,
        payload: &[u8],
        headers: &HashMap<String, String>,
        revoked: &dyn Fn(&[u8]) -> bool,
    ) -> Result<Identity, String> {
        let (Some(signer), Some(signature)) =
            (headers.get(SIGNER_HEADER), headers.get(SIGNATURE_HEADER))
        else {
            return Err(format!(
                "unsigned: an inbound message needs the headers {SIGNER_HEADER} and {SIGNATURE_HEADER}"
            ));
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(signer.trim())
            .map_err(|_| format!("{SIGNER_HEADER} is not base64"))?;
        let (_, certificate) = X509Certificate::from_der(&der)
            .map_err(|error| format!("{SIGNER_HEADER} is not a certificate: {error}"))?;
        let issued = self.signed(|key| certificate.verify_signature(Some(key)).is_ok());
        if !issued {
            return Err(
                "the signer's certificate was not issued by the installation's authority"
                    .to_owned(),
            );
        }
        if revoked(&der) {
            return Err("the signer's certificate was revoked".to_owned());
        }
        if !certificate.validity().is_valid() {
            return Err("the signer's certificate has expired or is not yet valid".to_owned());
        }
        let identity = Identity::from_certificate(&der).map_err(|error| error.to_string())?;
        let speaks_for = match identity.role {
            Role::DepartmentIntegrator => identity.scope.as_deref() == Some(source),
            Role::CaseProsecutor => source == "cases",
            _ => false,
        };
        if !speaks_for {
            return Err(format!(
                "signed by {} (role {}{}), which does not speak for `{source}`",
                identity.name,
                identity.role,
                identity
                    .scope
                    .as_deref()
                    .map(|scope| format!(", {scope}"))
                    .unwrap_or_default()
            ));
        }
        verify(&der, &inbound_signed_bytes(source, payload), signature)?;
        Ok(identity)
    }
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

    #[test]
    fn an_inbound_message_counts_only_from_its_department() -> Result<(), Box<dyn std::error::Error>>
    {
        let authority = DevAuthority::new()?;
        let trusted = Authorities::from_pem(authority.ca_pem())?;
        let integrator = |department: &str| {
            Identity::new(department, "000000", Role::DepartmentIntegrator, "feed")
                .scoped(department)
        };
        let civil = authority.issue(&integrator("civil_affairs"), &HOSTS)?;
        let payload = b"a person record";
        let headers = |issued: &crate::dev::Issued, source: &str, payload: &[u8]| {
            sign_inbound(&issued.cert_pem, &issued.key_pem, source, payload).map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect::<HashMap<_, _>>()
            })
        };
        let signed = headers(&civil, "civil_affairs", payload)?;
        let sender = trusted.verify_inbound("civil_affairs", payload, &signed, &|_| false);
        assert_eq!(
            sender.map(|s| s.scope),
            Ok(Some("civil_affairs".to_owned()))
        );
        // Another payload, another topic, no headers, another department, another authority.
        assert!(
            trusted
                .verify_inbound("civil_affairs", b"changed", &signed, &|_| false)
                .is_err()
        );
        let moved = trusted.verify_inbound("education", payload, &signed, &|_| false);
        assert!(moved.is_err_and(|why| why.contains("does not speak for")));
        let unsigned =
            trusted.verify_inbound("civil_affairs", payload, &HashMap::new(), &|_| false);
        assert!(unsigned.is_err_and(|why| why.starts_with("unsigned")));
        let education = authority.issue(&integrator("education"), &HOSTS)?;
        let wrong = headers(&education, "civil_affairs", payload)?;
        assert!(
            trusted
                .verify_inbound("civil_affairs", payload, &wrong, &|_| false)
                .is_err()
        );
        let stranger = DevAuthority::new()?.issue(&integrator("civil_affairs"), &HOSTS)?;
        let forged = headers(&stranger, "civil_affairs", payload)?;
        let refused = trusted.verify_inbound("civil_affairs", payload, &forged, &|_| false);
        assert!(refused.is_err_and(|why| why.contains("authority")));
        let revoked = trusted.verify_inbound("civil_affairs", payload, &signed, &|_| true);
        assert!(revoked.is_err_and(|why| why.contains("revoked")));
        Ok(())
    }
}
