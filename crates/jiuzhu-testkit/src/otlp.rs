use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::TestkitError;

/// A span as the receiver saw it.
#[derive(Debug, Clone)]
pub struct CollectedSpan {
    pub service_name: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    /// The span's attributes, their values as text.
    pub attributes: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut collected = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|a| {
                            let value = match a.value.as_ref()?.value.as_ref()? {
                                Value::StringValue(s) => s.clone(),
                                Value::IntValue(i) => i.to_string(),
                                Value::BoolValue(b) => b.to_string(),
                                Value::DoubleValue(d) => d.to_string(),
                                _ => return None,
                            };
                            Some((a.key.clone(), value))
                        })
                        .collect();
                    collected.push(CollectedSpan {
                        attributes,
                        service_name: service_name.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(collected);
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC trace receiver on an ephemeral local port.
#[derive(Debug)]
pub struct OtlpReceiver {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

impl OtlpReceiver {
    pub async fn start() -> Result<Self, TestkitError> {
        Self::serve(None).await
    }

    /// A receiver that speaks only TLS, with the tests' own certificate (valid for
    /// `localhost`, signed by the authority in [`crate::certs_dir`]'s `ca.pem`), at
    /// `https://localhost:PORT`.
    pub async fn start_tls() -> Result<Self, TestkitError> {
        let dir = crate::certs_dir()?;
        let identity = tonic::transport::Identity::from_pem(
            std::fs::read(dir.join(format!("{}.pem", crate::CLIENT)))?,
            std::fs::read(dir.join(format!("{}.key", crate::CLIENT)))?,
        );
        Self::serve(Some(
            tonic::transport::ServerTlsConfig::new().identity(identity),
        ))
        .await
    }

    async fn serve(tls: Option<tonic::transport::ServerTlsConfig>) -> Result<Self, TestkitError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?;
        let collector = Collector::default();
        let spans = Arc::clone(&collector.spans);
        let endpoint = match &tls {
            Some(_) => format!("https://localhost:{}", address.port()),
            None => format!("http://{address}"),
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|error| TestkitError::Process(format!("OTLP receiver TLS: {error}")))?;
        }
        let server = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = builder
                .add_service(TraceServiceServer::new(collector))
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self {
            endpoint,
            spans,
            server,
        })
    }

    /// Spans received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Spans received so far of the trace `trace_id` (32 hex digits), and each as
    /// `service: name` for assertion messages.
    pub fn trace(&self, trace_id: &str) -> (Vec<CollectedSpan>, Vec<String>) {
        let wanted = hex_bytes(trace_id);
        let spans: Vec<CollectedSpan> = self
            .spans()
            .into_iter()
            .filter(|s| Some(&s.trace_id) == wanted.as_ref())
            .collect();
        let names = spans
            .iter()
            .map(|s| format!("{}: {}", s.service_name, s.name))
            .collect();
        (spans, names)
    }
}

/// Bytes of a hex string (as W3C trace context writes ids), `None` if it is not hex.
pub fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
