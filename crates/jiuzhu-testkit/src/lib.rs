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

pub use database::{TestDatabase, fresh_database};
pub use otlp::{CollectedSpan, OtlpReceiver};
pub use process::{ServiceProcess, binary_path};

use jiuzhu_runtime::Settings;

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
    settings
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
