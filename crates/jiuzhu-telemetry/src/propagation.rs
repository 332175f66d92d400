//! W3C trace-context propagation across gRPC metadata and string maps (outbox rows, Kafka
//! headers). The global propagator is installed by [`crate::init`]; before that the helpers
//! carry nothing, which is the correct behaviour for a process with tracing off.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Adapts tonic metadata to the OpenTelemetry carrier traits.
pub struct MetadataCarrier<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Serialises a context into a string map (`traceparent`, `tracestate`).
pub fn context_to_map(context: &Context) -> HashMap<String, String> {
    let mut map = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(context, &mut map));
    map
}

/// The current span's context as a string map, for storing beside an event.
pub fn current_context_to_map() -> HashMap<String, String> {
    context_to_map(&Span::current().context())
}

/// Reads a context back from a string map.
pub fn context_from_map(map: &HashMap<String, String>) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(map))
}

/// Makes `span` a child of the context carried in `map` (no-op when the map carries none).
pub fn set_parent_from_map(span: &Span, map: &HashMap<String, String>) {
    let parent = context_from_map(map);
    let _ = span.set_parent(parent);
}

/// Span for one incoming gRPC request, continuing the caller's trace; pass to tonic's
/// `Server::builder().trace_fn`.
pub fn grpc_server_span(request: &http::Request<()>) -> Span {
    let path = request.uri().path();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    span
}

/// Span for one outgoing gRPC call of `path` (`/package.Service/Method`), a child of the
/// current span; run the call inside it and put its context in the request with
/// [`inject_current`].
pub fn grpc_client_span(path: &str) -> Span {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    tracing::info_span!(
        "grpc.client",
        otel.name = %path,
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    )
}

/// Puts the current span's trace context (`traceparent`) into an outgoing request.
pub fn inject_current<T>(request: &mut tonic::Request<T>) {
    let context = Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataCarrier(request.metadata_mut()))
    });
}

/// Client interceptor that sends the current trace context with every gRPC call.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTracePropagation;

impl tonic::service::Interceptor for GrpcTracePropagation {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&context, &mut MetadataCarrier(request.metadata_mut()))
        });
        Ok(request)
    }
}
