//! Telemetry for every Jiuzhu binary: one [`init`] that installs `tracing` output (human or
//! JSON, filtered by `RUST_LOG`) and OpenTelemetry spans exported over OTLP/gRPC (to Jaeger's
//! 4317) when an endpoint is configured, plus the W3C trace-context helpers that let one trace
//! follow a request through gRPC calls and Kafka hops. Spans always get real trace ids, even
//! when nothing is exported, so that context still propagates to services that do export.

mod propagation;

use std::collections::HashMap;

use jiuzhu_config::{ConfigError, Validate};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use propagation::{
    CallObserver, GrpcTracePropagation, MetadataCarrier, TraceResponse, TraceResponseLayer,
    context_from_map, context_to_map, current_context_to_map, grpc_client_span, grpc_server_span,
    inject_current, record_trace_id, set_parent_from_map, trace_id,
};

/// Standard OpenTelemetry variable, honoured when the config file names no endpoint.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Standard OpenTelemetry variables for an `https://` endpoint, honoured when the config file
/// names no file: the authority that signed the collector's certificate, and the exporter's own
/// certificate and key where the collector asks for one.
pub const OTLP_CERTIFICATE_VAR: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
pub const OTLP_CLIENT_CERTIFICATE_VAR: &str = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
pub const OTLP_CLIENT_KEY_VAR: &str = "OTEL_EXPORTER_OTLP_CLIENT_KEY";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `human` for terminals, `json` for log collectors.
    pub format: LogFormat,
    /// OTLP/gRPC endpoint such as `http://127.0.0.1:4317`; empty turns export off. An
    /// `https://` endpoint is reached over TLS.
    pub otlp_endpoint: String,
    /// PEM file of the authority that signed the collector's certificate (`https://` only);
    /// empty: the system's trusted authorities.
    pub otlp_ca_file: String,
    /// PEM certificate and key the exporter presents when the collector asks for one
    /// (mutual TLS); both or neither.
    pub otlp_client_cert_file: String,
    pub otlp_client_key_file: String,
}

impl Validate for TelemetrySettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let endpoint = self.otlp_endpoint.trim();
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !endpoint.is_empty() && !scheme_ok {
            return Err(ConfigError::invalid(
                format!("{prefix}.otlp_endpoint"),
                "must start with http:// or https://",
            ));
        }
        let files = [
            ("otlp_ca_file", &self.otlp_ca_file),
            ("otlp_client_cert_file", &self.otlp_client_cert_file),
            ("otlp_client_key_file", &self.otlp_client_key_file),
        ];
        for (key, file) in files {
            if file.trim().is_empty() {
                continue;
            }
            if endpoint.starts_with("http://") {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    "applies to an https:// otlp_endpoint only (this one is http://)",
                ));
            }
            if !std::path::Path::new(file.trim()).is_file() {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    format!("`{}` is not a readable file", file.trim()),
                ));
            }
        }
        if self.otlp_client_cert_file.trim().is_empty()
            != self.otlp_client_key_file.trim().is_empty()
        {
            return Err(ConfigError::invalid(
                format!("{prefix}.otlp_client_cert_file"),
                "needs otlp_client_key_file beside it (both or neither)",
            ));
        }
        Ok(())
    }
}

/// A setting from the config file, else from the standard variable `var`.
fn configured_or_env(configured: &str, var: &str) -> Option<String> {
    let configured = configured.trim();
    if !configured.is_empty() {
        return Some(configured.to_owned());
    }
    std::env::var(var)
        .ok()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
}

impl TelemetrySettings {
    fn endpoint(&self) -> Option<String> {
        configured_or_env(&self.otlp_endpoint, OTLP_ENDPOINT_VAR)
    }

    /// TLS towards an `https://` collector: its authority (else the system's) and the
    /// exporter's own certificate if one is set.
    fn tls(&self) -> Result<tonic::transport::ClientTlsConfig, TelemetryError> {
        let read = |path: &str| {
            std::fs::read(path).map_err(|source| TelemetryError::TlsFile {
                path: path.to_owned(),
                source,
            })
        };
        let mut tls = tonic::transport::ClientTlsConfig::new();
        match configured_or_env(&self.otlp_ca_file, OTLP_CERTIFICATE_VAR) {
            Some(ca) => {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(&ca)?));
            }
            None => tls = tls.with_native_roots(),
        }
        let cert = configured_or_env(&self.otlp_client_cert_file, OTLP_CLIENT_CERTIFICATE_VAR);
        let key = configured_or_env(&self.otlp_client_key_file, OTLP_CLIENT_KEY_VAR);
        if let (Some(cert), Some(key)) = (cert, key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(&cert)?,
                read(&key)?,
            ));
        }
        Ok(tls)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP TLS file {path} could not be read: {source}")]
    TlsFile {
        path: String,
        source: std::io::Error,
    },
    #[error("OTLP exporter could not be built: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the tracer provider alive; [`TelemetryGuard::shutdown`] flushes spans still buffered.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl TelemetryGuard {
    /// Whether spans leave the process.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Flushes and stops export. Runs the blocking flush off the async worker threads.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            eprintln!("telemetry shutdown: {error}");
        }
    }
}

/// Spans held for export, unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise: the SDK's 2,048
/// overflowed during the demo import (thousands of records, several spans each, in seconds),
/// and a dropped span breaks a story's trace.
const QUEUE: usize = 65_536;
/// Spans per export request, unless `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` says otherwise (a few MB,
/// under the receivers' usual 4 MiB message limit).
const EXPORT_BATCH: usize = 4_096;

fn batch_config() -> opentelemetry_sdk::trace::BatchConfig {
    let mut config = opentelemetry_sdk::trace::BatchConfigBuilder::default();
    if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        config = config.with_max_queue_size(QUEUE);
    }
    if std::env::var_os("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").is_none() {
        config = config.with_max_export_batch_size(EXPORT_BATCH);
    }
    config.build()
}

/// Installs logging and tracing for the binary `service_name`. Call once, inside the Tokio
/// runtime, before anything else logs.
pub fn init(
    service_name: &str,
    settings: &TelemetrySettings,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    let mut provider = SdkTracerProvider::builder().with_resource(resource);
    let endpoint = settings.endpoint();
    if let Some(endpoint) = &endpoint {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone());
        if endpoint.starts_with("https://") {
            exporter = exporter.with_tls_config(settings.tls()?);
        }
        let exporter = exporter.build()?;
        provider = provider.with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                .with_batch_config(batch_config())
                .build(),
        );
    }
    let provider = provider.build();
    let tracer = provider.tracer(service_name.to_owned());
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    match settings.format {
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_target(true))
            .try_init()?,
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .flatten_event(true),
            )
            .try_init()?,
    }
    tracing::info!(
        service = service_name,
        otlp_export = endpoint.is_some(),
        "telemetry initialised"
    );
    Ok(TelemetryGuard {
        provider,
        exporting: endpoint.is_some(),
    })
}

/// A string map carrying `traceparent`/`tracestate`, as stored in the outbox.
pub type TraceHeaders = HashMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    /// Runs `body` under a subscriber that gives spans OpenTelemetry contexts, as `init` does.
    fn traced<T>(body: impl FnOnce() -> T) -> T {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, body)
    }

    #[test]
    fn outgoing_grpc_calls_carry_the_current_trace() {
        let (sent, trace_id) = traced(|| {
            let span = tracing::info_span!("caller");
            let _entered = span.enter();
            let map = current_context_to_map();
            let request = GrpcTracePropagation.call(tonic::Request::new(()));
            let sent = request.ok().and_then(|r| {
                r.metadata()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok().map(str::to_owned))
            });
            (sent, map.get("traceparent").cloned())
        });
        let sent = sent.unwrap_or_default();
        assert!(sent.starts_with("00-"), "traceparent missing: {sent:?}");
        assert_eq!(Some(sent), trace_id);
    }

    #[test]
    fn a_stored_context_becomes_the_parent_of_a_later_span() {
        traced(|| {
            let mut stored = HashMap::new();
            stored.insert(
                "traceparent".to_owned(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            );
            let child = tracing::info_span!("consumer");
            set_parent_from_map(&child, &stored);
            let carried = child.in_scope(current_context_to_map);
            let traceparent = carried.get("traceparent").cloned().unwrap_or_default();
            assert!(
                traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{traceparent}"
            );
            assert!(
                !traceparent.contains("00f067aa0ba902b7"),
                "the child has its own span id"
            );
        });
    }

    #[test]
    fn endpoint_must_be_http() {
        let settings = TelemetrySettings {
            otlp_endpoint: "127.0.0.1:4317".to_owned(),
            ..TelemetrySettings::default()
        };
        let error = settings
            .validate("telemetry")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("telemetry.otlp_endpoint"), "{error}");
    }

    fn error_of(settings: &TelemetrySettings) -> String {
        settings
            .validate("telemetry")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn tls_files_need_an_https_endpoint_that_exists_and_come_in_pairs() {
        let cargo_toml = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_owned();
        let plain = TelemetrySettings {
            otlp_endpoint: "http://collector:4317".to_owned(),
            otlp_ca_file: cargo_toml.clone(),
            ..TelemetrySettings::default()
        };
        assert!(error_of(&plain).contains("telemetry.otlp_ca_file"));
        let missing = TelemetrySettings {
            otlp_endpoint: "https://collector:4317".to_owned(),
            otlp_ca_file: "/nonexistent/ca.pem".to_owned(),
            ..TelemetrySettings::default()
        };
        assert!(error_of(&missing).contains("/nonexistent/ca.pem"));
        let half = TelemetrySettings {
            otlp_endpoint: "https://collector:4317".to_owned(),
            otlp_client_cert_file: cargo_toml.clone(),
            ..TelemetrySettings::default()
        };
        assert!(error_of(&half).contains("otlp_client_key_file"));
        let whole = TelemetrySettings {
            otlp_endpoint: "https://collector:4317".to_owned(),
            otlp_ca_file: cargo_toml.clone(),
            otlp_client_cert_file: cargo_toml.clone(),
            otlp_client_key_file: cargo_toml,
            ..TelemetrySettings::default()
        };
        assert_eq!(error_of(&whole), "");
    }
}
