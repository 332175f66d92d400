//! W3C trace-context propagation across gRPC metadata and string maps (outbox rows, Kafka
//! headers). The global propagator is installed by [`crate::init`]; before that the helpers
//! carry nothing, which is the correct behaviour for a process with tracing off.

use std::collections::HashMap;
use std::sync::Arc;

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

/// `/package.Service/Method` as (service, method).
fn rpc_parts(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

/// Span for one incoming gRPC request, continuing the caller's trace; pass to tonic's
/// `Server::builder().trace_fn`.
pub fn grpc_server_span(request: &http::Request<()>) -> Span {
    let path = request.uri().path();
    let (service, method) = rpc_parts(path);
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    record_trace_id(&span);
    span
}

/// The W3C trace id of `span` (32 hex digits); `None` while tracing is off.
pub fn trace_id(span: &Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Puts the trace id in `span`'s `trace_id` field (declared empty), so that log lines inside
/// it name their trace and an operator can go from a log line to the trace.
pub fn record_trace_id(span: &Span) {
    if let Some(id) = trace_id(span) {
        span.record("trace_id", id);
    }
}

/// What a server call ended with: its path (`/package.Service/Method`), gRPC status code and
/// the time until its answer's headers.
pub type CallObserver = Arc<dyn Fn(&str, i64, std::time::Duration) + Send + Sync>;

/// Answers every gRPC call with its trace (`traceresponse: 00-<trace id>-<span id>-01`, the W3C
/// trace-context response header), records the call's gRPC status code on its server span
/// (`rpc.grpc.status_code`), and tells an observer (the metrics) how the call ended. Layer it
/// outside the access guard, so refusals have all of it too.
#[derive(Clone, Default)]
pub struct TraceResponseLayer {
    observe: Option<CallObserver>,
}

impl std::fmt::Debug for TraceResponseLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceResponseLayer").finish_non_exhaustive()
    }
}

impl TraceResponseLayer {
    /// The layer, telling `observe` how each call ended.
    pub fn observed_by(observe: CallObserver) -> Self {
        Self {
            observe: Some(observe),
        }
    }
}

impl<S> tower_layer::Layer<S> for TraceResponseLayer {
    type Service = TraceResponse<S>;

    fn layer(&self, inner: S) -> TraceResponse<S> {
        TraceResponse {
            inner,
            observe: self.observe.clone(),
        }
    }
}

#[derive(Clone)]
pub struct TraceResponse<S> {
    inner: S,
    observe: Option<CallObserver>,
}

type Answer<E> =
    std::pin::Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for TraceResponse<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let (observe, path, began) = (
            self.observe.clone(),
            request.uri().path().to_owned(),
            std::time::Instant::now(),
        );
        // Polled inside the call's server span (tonic's `trace_fn`).
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            let span = Span::current();
            // An error comes in the headers ("trailers only"); a success in the trailers.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            span.record("rpc.grpc.status_code", code);
            if let Some(observe) = &observe {
                observe(&path, code, began.elapsed());
            }
            let context = span.context();
            let span_context = {
                use opentelemetry::trace::TraceContextExt;
                context.span().span_context().clone()
            };
            if span_context.is_valid()
                && let Ok(value) = http::HeaderValue::from_str(&format!(
                    "00-{}-{}-01",
                    span_context.trace_id(),
                    span_context.span_id()
                ))
            {
                response.headers_mut().insert("traceresponse", value);
            }
            Ok(response)
        })
    }
}

/// Span for one outgoing gRPC call of `path` (`/package.Service/Method`), a child of the
/// current span; run the call inside it and put its context in the request with
/// [`inject_current`].
pub fn grpc_client_span(path: &str) -> Span {
    let (service, method) = rpc_parts(path);
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
