//! Test support that talks to real components only: a fresh PostgreSQL database per test,
//! cloned from a template migrated once per service and migration set (so a suite of many
//! tests stays fast), an isolated namespace of topics and consumer groups on the real Kafka-
//! protocol broker, service binaries run as child processes, and an in-process OTLP receiver
//! that collects the spans services export.
//!
//! Environment: `JIUZHU_TEST_DATABASE_URL` (an admin connection, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `JIUZHU_TEST_KAFKA_BROKERS` (default
//! `127.0.0.1:19092`, where `make test` starts the broker).

mod database;
mod otlp;
mod process;

pub use database::{TestDatabase, admin_url, empty_database, fresh_database};
pub use otlp::{CollectedSpan, OtlpReceiver, hex_bytes};
pub use process::{ServiceProcess, binary_path};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use jiuzhu_access::dev::DevAuthority;
use jiuzhu_access::{Identity, TlsSettings};
use jiuzhu_runtime::Settings;
use tonic::transport::Channel;

/// Broker address for tests.
pub fn kafka_brokers() -> String {
    std::env::var("JIUZHU_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

/// A topic prefix no other test uses.
pub fn unique_namespace() -> String {
    format!("t{}.", uuid::Uuid::now_v7().simple())
}

/// Settings for running service `name` in-process against `database` in `namespace`, on an
/// ephemeral port, with short poll intervals so tests do not wait.
pub fn settings(name: &str, database: &TestDatabase, namespace: &str) -> Settings {
    let mut settings = Settings::local(name, &database.url, &kafka_brokers());
    settings.kafka.topic_prefix = namespace.to_owned();
    settings.kafka.partitions = 3;
    settings.outbox.poll_interval_ms = 10;
    settings.consumer.retry_backoff_ms = 10;
    settings.service.max_connections = 5;
    settings.vault.master_key = Some(jiuzhu_config::Secret::new(test_master_key(&database.url)));
    settings.audit.key = Some(jiuzhu_config::Secret::new(test_master_key(&format!(
        "audit {}",
        database.url
    ))));
    settings.audit.checkpoint_dir = std::env::temp_dir().join(format!(
        "jiuzhu-test-audit-{}",
        database.url.rsplit('/').next().unwrap_or("db")
    ));
    if let Some(registry) = peer(namespace, "registry") {
        settings.peers.registry = registry;
    }
    settings.tls = tls();
    settings
}

/// The test run's development certificates: an authority made once per test process, every
/// Jiuzhu system's certificate, and more issued on demand.
struct TestCerts {
    dir: PathBuf,
    authority: DevAuthority,
}

static CERTS: OnceLock<Result<TestCerts, String>> = OnceLock::new();

fn test_certs() -> Result<&'static TestCerts, TestkitError> {
    CERTS
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!(
                "jiuzhu-test-certs-{}",
                uuid::Uuid::now_v7().simple()
            ));
            let book = jiuzhu_policy::PolicyBook::compiled_in().map_err(|e| e.to_string())?;
            let scopes = jiuzhu_access::dev::Scopes {
                tiers: book.approval_tiers(),
                departments: book.departments(),
                extra_offices: vec![],
            };
            jiuzhu_access::dev::write_certs(&dir, "520102", &scopes).map_err(|e| e.to_string())?;
            // The authority that signed those is gone; this one signs what tests ask for, and
            // its certificate joins the trusted ones.
            let authority = DevAuthority::new().map_err(|e| e.to_string())?;
            let ca = dir.join("ca.pem");
            let mut trusted = std::fs::read_to_string(&ca).map_err(|e| e.to_string())?;
            trusted.push_str(authority.ca_pem());
            std::fs::write(&ca, trusted).map_err(|e| e.to_string())?;
            // The tests' own client: a Jiuzhu system of role `service` (nationwide), which no
            // installation has (the CLI acts as a role it is given).
            let client = authority
                .issue(
                    &Identity::new("jiuzhu", "000000", jiuzhu_access::Role::Service, CLIENT),
                    &jiuzhu_access::dev::HOSTS,
                )
                .map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("{CLIENT}.pem")), client.cert_pem)
                .map_err(|e| e.to_string())?;
            std::fs::write(dir.join(format!("{CLIENT}.key")), client.key_pem)
                .map_err(|e| e.to_string())?;
            Ok(TestCerts { dir, authority })
        })
        .as_ref()
        .map_err(|error| TestkitError::Process(format!("test certificates: {error}")))
}

/// `[tls]` for services and processes under test (a directory that does not exist when the
/// certificates could not be made, so that the start error says so).
pub fn tls() -> TlsSettings {
    match test_certs() {
        Ok(certs) => TlsSettings::in_dir(&certs.dir),
        Err(_) => TlsSettings::in_dir("/nonexistent/jiuzhu-test-certs"),
    }
}

/// The directory of the test certificates (for processes: `JIUZHU__TLS__DIR`).
pub fn certs_dir() -> Result<PathBuf, TestkitError> {
    Ok(test_certs()?.dir.clone())
}

/// The file name (in [`certs_dir`]) of the tests' own client certificate, role `service`.
pub const CLIENT: &str = "client";

/// A channel to a service under test as the tests' own client (role `service`).
pub async fn channel(addr: SocketAddr) -> Result<Channel, TestkitError> {
    connect(addr, CLIENT).await
}

/// A channel presenting a certificate for `identity`, issued on first use.
pub async fn channel_as(addr: SocketAddr, identity: &Identity) -> Result<Channel, TestkitError> {
    let name = issue(identity)?;
    connect(addr, &name).await
}

/// The certificate and key (PEM) of the test authority for `identity`, issued on first use:
/// what a department's system signs its inbound messages with.
pub fn certificate_of(identity: &Identity) -> Result<jiuzhu_access::dev::Issued, TestkitError> {
    let name = issue(identity)?;
    let dir = &test_certs()?.dir;
    Ok(jiuzhu_access::dev::Issued {
        cert_pem: std::fs::read_to_string(dir.join(format!("{name}.pem")))?,
        key_pem: std::fs::read_to_string(dir.join(format!("{name}.key")))?,
    })
}

/// A revocation list (PEM) of the test authority naming the certificates of `identities`.
pub fn revocation_list(identities: &[&Identity]) -> Result<String, TestkitError> {
    let mut certificates = Vec::new();
    for identity in identities {
        certificates.push(certificate_of(identity)?.cert_pem);
    }
    let pems: Vec<&str> = certificates.iter().map(String::as_str).collect();
    test_certs()?
        .authority
        .revocation_list(&pems)
        .map_err(|error| TestkitError::Process(error.to_string()))
}

/// Issues `identity`'s certificate into the test directory unless it is there; its file name.
fn issue(identity: &Identity) -> Result<String, TestkitError> {
    let certs = test_certs()?;
    let name = identity_file(identity);
    let cert = certs.dir.join(format!("{name}.pem"));
    if !cert.exists() {
        let issued = certs
            .authority
            .issue(identity, &jiuzhu_access::dev::HOSTS)
            .map_err(|error| TestkitError::Process(error.to_string()))?;
        std::fs::write(certs.dir.join(format!("{name}.key")), issued.key_pem)?;
        std::fs::write(&cert, issued.cert_pem)?;
    }
    Ok(name)
}

fn identity_file(identity: &Identity) -> String {
    format!(
        "id-{}-{}-{}-{}-{}",
        identity.agency,
        identity.office,
        identity.role,
        identity.scope.as_deref().unwrap_or("none"),
        identity.name
    )
}

/// The three headers by which `identity`'s system (after [`channel_as`]) says that `person`
/// acts on `method`, signed with its certificate's key now.
pub fn acting_headers(
    identity: &Identity,
    person: &str,
    method: &str,
) -> Result<[(&'static str, String); 3], TestkitError> {
    use jiuzhu_access::acting::{ACTING_AT_HEADER, ACTING_HEADER, ACTING_SIGNATURE_HEADER};
    let key = std::fs::read_to_string(
        test_certs()?
            .dir
            .join(format!("{}.key", identity_file(identity))),
    )?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let signature = jiuzhu_access::acting::sign(&key, person, method, at)
        .map_err(|error| TestkitError::Process(error.to_string()))?;
    Ok([
        (ACTING_HEADER, person.to_owned()),
        (ACTING_AT_HEADER, at.to_string()),
        (ACTING_SIGNATURE_HEADER, signature),
    ])
}

/// The four headers by which a console (`identity`, role `console`) says that `person`, who is
/// `acting_as` (`office/<code>/role/<role>[/tier/<tier>]`), acts on `method`, signed now.
pub fn console_headers(
    identity: &Identity,
    person: &str,
    acting_as: &str,
    method: &str,
) -> Result<[(&'static str, String); 4], TestkitError> {
    use jiuzhu_access::acting::{
        ACTING_AS_HEADER, ACTING_AT_HEADER, ACTING_HEADER, ACTING_SIGNATURE_HEADER,
    };
    let key = certificate_of(identity)?.key_pem;
    let key = jiuzhu_access::signing::SigningKey::from_pem(&key)
        .map_err(|error| TestkitError::Process(error.to_string()))?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let signature = jiuzhu_access::acting::sign_as(&key, person, acting_as, method, at)
        .map_err(|error| TestkitError::Process(error.to_string()))?;
    Ok([
        (ACTING_HEADER, person.to_owned()),
        (ACTING_AS_HEADER, acting_as.to_owned()),
        (ACTING_AT_HEADER, at.to_string()),
        (ACTING_SIGNATURE_HEADER, signature),
    ])
}

async fn connect(addr: SocketAddr, name: &str) -> Result<Channel, TestkitError> {
    let endpoint = tls()
        .endpoint(name, &format!("https://{addr}"))
        .map_err(|error| TestkitError::Process(error.to_string()))?;
    endpoint
        .connect()
        .await
        .map_err(|error| TestkitError::Process(format!("cannot reach {addr}: {error}")))
}

/// A port free at the moment of asking (for processes that must be told their port).
pub fn free_port() -> Result<u16, TestkitError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Where each namespace's services listen, so that a service started later finds its peers.
static PEERS: std::sync::Mutex<Vec<(String, String, String)>> = std::sync::Mutex::new(Vec::new());

/// Records that `service` of `namespace` now listens at `endpoint` (e.g. `http://127.0.0.1:4711`).
pub fn announce_peer(namespace: &str, service: &str, endpoint: String) {
    if let Ok(mut peers) = PEERS.lock() {
        peers.retain(|(ns, name, _)| !(ns == namespace && name == service));
        peers.push((namespace.to_owned(), service.to_owned(), endpoint));
    }
}

fn peer(namespace: &str, service: &str) -> Option<String> {
    PEERS.lock().ok().and_then(|peers| {
        peers
            .iter()
            .find(|(ns, name, _)| ns == namespace && name == service)
            .map(|(_, _, endpoint)| endpoint.clone())
    })
}

/// A master key that depends only on the database, so a restarted service (or a CLI run against
/// the same database) unwraps the keys the first run wrapped.
pub fn test_master_key(database_url: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(database_url.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "PostgreSQL is not reachable for tests ({url}): {source}; start it or set JIUZHU_TEST_DATABASE_URL"
    )]
    Postgres { url: String, source: sqlx::Error },
    #[error("database setup failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("template migration failed: {0}")]
    Migration(#[from] jiuzhu_runtime::StartError),
    #[error("{0}")]
    Process(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
