use std::net::SocketAddr;

use jiuzhu_access::{LimitSettings, TlsSettings};
use jiuzhu_clock::ClockSettings;
use jiuzhu_config::{ConfigError, Layers, OwnSections, Secret, Validate, check_range};
use jiuzhu_messaging::{ConsumerSettings, KafkaSettings, RelaySettings};
use jiuzhu_policy::PolicySettings;
use jiuzhu_telemetry::TelemetrySettings;
use jiuzhu_vault::VaultSettings;
use serde::Deserialize;

/// `[peers]`: where the other services' APIs are, for the few calls one service makes to
/// another (never to read its database).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerSettings {
    /// The registry's gRPC endpoint (its `PersonKeyService` hands out data keys).
    pub registry: String,
}

impl Default for PeerSettings {
    fn default() -> Self {
        Self {
            registry: "https://127.0.0.1:50051".to_owned(),
        }
    }
}

impl Validate for PeerSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if !(self.registry.starts_with("http://") || self.registry.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("{prefix}.registry"),
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}

/// `[deadlines]`: how often deadline monitors (relief stages, follow-up visits) scan. What
/// "today" is comes from the clock (`[clock]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadlineSettings {
    pub scan_seconds: u64,
}

impl Default for DeadlineSettings {
    fn default() -> Self {
        Self { scan_seconds: 60 }
    }
}

impl Validate for DeadlineSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_range(prefix, "scan_seconds", self.scan_seconds, 1..=86_400)
    }
}

/// The service's own section (`[registry]`, `[clues]`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// PostgreSQL URL of the service's own database (never shared with another service).
    pub database_url: Secret,
    /// Connection pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Seconds to wait for in-flight work on shutdown.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
    /// Where Prometheus scrapes `GET /metrics`; no metrics endpoint when absent.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_max_connections() -> u32 {
    10
}

fn default_shutdown_grace() -> u64 {
    10
}

impl ServiceSettings {
    /// Defaults for a service: its standard port and a local database named after it.
    pub fn defaults_for(name: &str, port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: Secret::new(format!("postgres://postgres@127.0.0.1:5432/jiuzhu_{name}")),
            max_connections: default_max_connections(),
            shutdown_grace_seconds: default_shutdown_grace(),
            metrics_listen: None,
        }
    }
}

impl Validate for ServiceSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let url = self.database_url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid(
                format!("{prefix}.database_url"),
                "must be a postgres:// URL",
            ));
        }
        check_range(prefix, "max_connections", self.max_connections, 1..=1000)?;
        check_range(
            prefix,
            "shutdown_grace_seconds",
            self.shutdown_grace_seconds,
            0..=600,
        )
    }
}

/// Everything one service binary needs, read from the layered configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub kafka: KafkaSettings,
    pub outbox: RelaySettings,
    pub consumer: ConsumerSettings,
    pub telemetry: TelemetrySettings,
    pub vault: VaultSettings,
    pub peers: PeerSettings,
    pub deadlines: DeadlineSettings,
    pub clock: ClockSettings,
    pub policy: PolicySettings,
    /// The sections the service owns (`Service::SECTIONS`), read by the service itself.
    pub own: OwnSections,
    pub tls: TlsSettings,
    pub limits: LimitSettings,
    pub audit: jiuzhu_audit::AuditSettings,
}

impl Settings {
    /// Reads `[kafka]`, `[outbox]`, `[consumer]`, `[telemetry]`, `[vault]`, `[peers]`,
    /// `[deadlines]`, `[clock]`, `[policy]`, `[tls]`, `[limits]`, `[audit]`, the service's section
    /// (`[payments]`: listen address, database) and, unread, the sections it owns (`own`).
    pub fn from_layers(
        layers: &Layers,
        name: &str,
        port: u16,
        own: &[&'static str],
    ) -> Result<Self, ConfigError> {
        let service = layers
            .section::<ServicePatch>(name)?
            .over(ServiceSettings::defaults_for(name, port));
        service.validate(name)?;
        Ok(Self {
            service,
            kafka: layers.section("kafka")?,
            outbox: layers.section("outbox")?,
            consumer: layers.section("consumer")?,
            telemetry: layers.section("telemetry")?,
            vault: layers.section("vault")?,
            peers: layers.section("peers")?,
            deadlines: layers.section("deadlines")?,
            clock: layers.section("clock")?,
            policy: layers.section("policy")?,
            own: OwnSections::from_layers(layers, own)?,
            tls: layers.section("tls")?,
            limits: layers.section("limits")?,
            audit: layers.section("audit")?,
        })
    }

    /// Settings for a service with every default, pointing at `database_url` and `brokers`.
    pub fn local(name: &str, database_url: &str, brokers: &str) -> Self {
        let mut service = ServiceSettings::defaults_for(name, 0);
        service.database_url = Secret::new(database_url);
        Self {
            service,
            kafka: KafkaSettings {
                brokers: brokers.to_owned(),
                ..KafkaSettings::default()
            },
            outbox: RelaySettings::default(),
            consumer: ConsumerSettings::default(),
            telemetry: TelemetrySettings::default(),
            vault: VaultSettings::default(),
            peers: PeerSettings::default(),
            deadlines: DeadlineSettings::default(),
            clock: ClockSettings::default(),
            policy: PolicySettings::default(),
            own: OwnSections::default(),
            tls: TlsSettings::default(),
            limits: LimitSettings::default(),
            audit: jiuzhu_audit::AuditSettings::default(),
        }
    }
}

/// The keys of a service section that are set; the rest keep the service's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ServicePatch {
    listen: Option<SocketAddr>,
    database_url: Option<Secret>,
    max_connections: Option<u32>,
    shutdown_grace_seconds: Option<u64>,
    metrics_listen: Option<SocketAddr>,
}

impl ServicePatch {
    fn over(self, defaults: ServiceSettings) -> ServiceSettings {
        ServiceSettings {
            listen: self.listen.unwrap_or(defaults.listen),
            database_url: self.database_url.unwrap_or(defaults.database_url),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            shutdown_grace_seconds: self
                .shutdown_grace_seconds
                .unwrap_or(defaults.shutdown_grace_seconds),
            metrics_listen: self.metrics_listen.or(defaults.metrics_listen),
        }
    }
}

impl Validate for ServicePatch {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_section_defaults_and_errors() -> Result<(), ConfigError> {
        let empty = Settings::from_layers(&Layers::from_toml("")?, "registry", 50051, &[])?;
        assert_eq!(empty.service.listen.port(), 50051);
        assert!(
            empty
                .service
                .database_url
                .expose()
                .ends_with("/jiuzhu_registry")
        );

        let bad = Layers::from_toml(
            "[registry]\nlisten = \"127.0.0.1:1\"\ndatabase_url = \"mysql://x\"\n",
        )?;
        let error = Settings::from_layers(&bad, "registry", 50051, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("registry.database_url"), "{error}");

        let bad_port = Layers::from_toml(
            "[registry]\nlisten = \"nowhere\"\ndatabase_url = \"postgres://x\"\n",
        )?;
        let error = Settings::from_layers(&bad_port, "registry", 50051, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("registry"), "{error}");
        Ok(())
    }
}
