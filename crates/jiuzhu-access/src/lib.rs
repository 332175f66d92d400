//! Who may call what. A caller is an agency's system (or one of Jiuzhu's services) holding a
//! client certificate from the installation's certificate authority; its identity (agency,
//! office, role) is read from the certificate's SPIFFE URI. The access table
//! (`policy/security/access.toml`) gives every RPC the roles that may call it, and whether it
//! reads personal data; [`Guard`] enforces it in front of every gRPC server, with a rate limit
//! per caller, and hands the handler the [`Caller`]. [`TlsSettings`] configures mutual TLS for
//! servers and clients, and [`dev`] makes a development authority and certificates.

pub mod acting;
pub mod dev;
mod guard;
mod identity;
pub mod revocation;
pub mod signing;
mod table;
mod tls;

pub use guard::{Actor, Caller, Guard, GuardLayer, LimitSettings};
pub use identity::{Identity, Role, office_covers, office_prefix};
pub use table::{AccessTable, Rule, SHIPPED};
pub use tls::{TlsError, TlsSettings};

/// Why a caller or a table was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("client certificate: {0}")]
    Certificate(String),
    #[error("identity `{uri}`: {reason}")]
    Identity { uri: String, reason: String },
    #[error("access table: {0}")]
    Table(String),
    #[error(transparent)]
    Config(#[from] jiuzhu_config::ConfigError),
}
