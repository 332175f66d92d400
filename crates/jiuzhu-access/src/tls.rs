use std::path::{Path, PathBuf};

use jiuzhu_config::{ConfigError, Validate};
use serde::Deserialize;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "{path}: {source} (make development certificates with `jiuzhu dev certs`, or point [tls] at the installation's)"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
}

/// `[tls]`: mutual TLS for every gRPC server and client. Each system holds `<name>.pem` and
/// `<name>.key` (its certificate and key) and trusts the authority in `ca.pem`, all in `dir`
/// unless a file is given on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    pub dir: PathBuf,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The authority's certificate revocation lists (PEM); `<dir>/crl.pem` when not given. It
    /// may not exist (nothing is revoked); it is read again when it changes.
    pub crl: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(".jiuzhu/certs"),
            ca: None,
            cert: None,
            key: None,
            crl: None,
        }
    }
}

impl Validate for TlsSettings {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl TlsSettings {
    /// Everything in one directory.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.ca.clone().unwrap_or_else(|| self.dir.join("ca.pem"))
    }

    fn ca(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read(&self.ca_path())?))
    }

    /// The revocation lists of the authority, honoured for clients and inbound signers.
    pub fn revocations(&self) -> Result<crate::revocation::Revocations, crate::AccessError> {
        let authorities = crate::signing::Authorities::from_pem(
            &self
                .ca_pem()
                .map_err(|error| crate::AccessError::Certificate(error.to_string()))?,
        )?;
        let path = self.crl.clone().unwrap_or_else(|| self.dir.join("crl.pem"));
        crate::revocation::Revocations::from_file(path, authorities)
    }

    /// The authorities trusted (`ca.pem`), PEM: whose certificates may sign inbound messages.
    pub fn ca_pem(&self) -> Result<String, TlsError> {
        Ok(String::from_utf8_lossy(&read(&self.ca_path())?).into_owned())
    }

    fn cert_path(&self, name: &str) -> PathBuf {
        (self.cert.clone()).unwrap_or_else(|| self.dir.join(format!("{name}.pem")))
    }

    fn key_path(&self, name: &str) -> PathBuf {
        (self.key.clone()).unwrap_or_else(|| self.dir.join(format!("{name}.key")))
    }

    fn identity(&self, name: &str) -> Result<Identity, TlsError> {
        Ok(Identity::from_pem(
            read(&self.cert_path(name))?,
            read(&self.key_path(name))?,
        ))
    }

    /// `name`'s certificate, PEM (to check what it signed).
    pub fn cert_pem(&self, name: &str) -> Result<String, TlsError> {
        Ok(String::from_utf8_lossy(&read(&self.cert_path(name))?).into_owned())
    }

    /// `name`'s private key, PEM (to sign with it).
    pub fn key_pem(&self, name: &str) -> Result<String, TlsError> {
        Ok(String::from_utf8_lossy(&read(&self.key_path(name))?).into_owned())
    }

    /// A server that presents `name`'s certificate and admits only clients with a certificate
    /// from the authority.
    pub fn server(&self, name: &str) -> Result<ServerTlsConfig, TlsError> {
        Ok(ServerTlsConfig::new()
            .identity(self.identity(name)?)
            .client_ca_root(self.ca()?)
            .client_auth_optional(false))
    }

    /// A client that presents `name`'s certificate and trusts only the authority's servers.
    pub fn client(&self, name: &str) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(self.ca()?)
            .identity(self.identity(name)?))
    }

    /// An endpoint (`https://host:port`; `http://` is taken as `https://`) reached as `name`.
    pub fn endpoint(&self, name: &str, endpoint: &str) -> Result<Endpoint, TlsError> {
        let url = match endpoint.strip_prefix("http://") {
            Some(rest) => format!("https://{rest}"),
            None => endpoint.to_owned(),
        };
        let refuse = |reason: String| TlsError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        Endpoint::from_shared(url)
            .map_err(|error| refuse(error.to_string()))?
            .tls_config(self.client(name)?)
            .map_err(|error| refuse(error.to_string()))
    }
}
