//! Certificate revocation: the installation's certificate revocation lists (PEM `X509 CRL`,
//! signed by the authority), honoured by every server for its clients and by every consumer for
//! the signers of inbound messages. The file is read again when it changes, so a revocation
//! takes effect without a restart; a list that is not the authority's is refused (and the lists
//! held before stay in force).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::SystemTime;

use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};

use crate::AccessError;
use crate::signing::Authorities;

/// The serial numbers revoked by the lists in one file.
#[derive(Debug)]
pub struct Revocations {
    path: Option<PathBuf>,
    authorities: Authorities,
    state: RwLock<Loaded>,
}

#[derive(Debug, Default)]
struct Loaded {
    modified: Option<SystemTime>,
    serials: HashSet<Vec<u8>>,
}

/// A serial number as compared: its big-endian bytes without leading zeros.
fn serial(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

impl Revocations {
    /// None revoked, ever (no `[tls] crl`).
    pub fn none(authorities: Authorities) -> Self {
        Self {
            path: None,
            authorities,
            state: RwLock::default(),
        }
    }

    /// The lists in `path` (it may not exist yet: nothing is revoked until it does), checked
    /// against `authorities`.
    pub fn from_file(path: PathBuf, authorities: Authorities) -> Result<Self, AccessError> {
        let revocations = Self {
            path: Some(path),
            authorities,
            state: RwLock::default(),
        };
        revocations.refresh()?;
        Ok(revocations)
    }

    /// Reads the file again if it changed; how many serials are revoked now.
    pub fn refresh(&self) -> Result<usize, AccessError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let current = self.read().serials.len();
        if modified.is_none() || modified == self.read().modified {
            return Ok(current);
        }
        let text = std::fs::read_to_string(path).map_err(|error| {
            AccessError::Certificate(format!("revocation list {}: {error}", path.display()))
        })?;
        let mut serials = HashSet::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
            let block = block.map_err(|error| {
                AccessError::Certificate(format!("revocation list {}: {error}", path.display()))
            })?;
            let (_, list) =
                CertificateRevocationList::from_der(&block.contents).map_err(|error| {
                    AccessError::Certificate(format!("revocation list {}: {error}", path.display()))
                })?;
            if !self
                .authorities
                .signed(|key| list.verify_signature(key).is_ok())
            {
                return Err(AccessError::Certificate(format!(
                    "revocation list {} is not signed by the installation's authority",
                    path.display()
                )));
            }
            serials.extend(
                list.iter_revoked_certificates()
                    .map(|r| serial(r.raw_serial())),
            );
        }
        let count = serials.len();
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = Loaded { modified, serials };
        Ok(count)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the certificate (DER) is revoked.
    pub fn is_revoked(&self, certificate: &[u8]) -> bool {
        let state = self.read();
        if state.serials.is_empty() {
            return false;
        }
        X509Certificate::from_der(certificate)
            .is_ok_and(|(_, c)| state.serials.contains(&serial(c.raw_serial())))
    }
}
