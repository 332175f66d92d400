use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiuzhu_config::{ConfigError, Validate, check_range};
use serde::Deserialize;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::{AccessTable, Identity, Role};

use crate::acting::{ACTING_AS_HEADER, ACTING_AT_HEADER, ACTING_HEADER, ACTING_SIGNATURE_HEADER};

/// `[limits]`: what one caller may ask of a service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Calls per second per caller (certificate), sustained …
    pub calls_per_second: u32,
    /// … and in a burst.
    pub burst: u32,
    /// Largest request message accepted.
    pub max_message_bytes: usize,
    /// Longest a call may run; a caller's shorter `grpc-timeout` wins.
    pub request_timeout_ms: u64,
    /// Concurrent streams per connection (bounds streaming calls too).
    pub max_concurrent_streams: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            calls_per_second: 500,
            burst: 1_000,
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 30_000,
            max_concurrent_streams: 200,
        }
    }
}

impl Validate for LimitSettings {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        check_range(
            prefix,
            "calls_per_second",
            self.calls_per_second,
            1..=1_000_000,
        )?;
        check_range(prefix, "burst", self.burst, 1..=1_000_000)?;
        check_range(
            prefix,
            "max_message_bytes",
            self.max_message_bytes,
            1_024..=256 * 1024 * 1024,
        )?;
        check_range(
            prefix,
            "request_timeout_ms",
            self.request_timeout_ms,
            10..=3_600_000,
        )?;
        check_range(
            prefix,
            "max_concurrent_streams",
            self.max_concurrent_streams,
            1..=100_000,
        )
    }
}

/// The authenticated caller of one request, for handlers (audit, jurisdiction).
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// The role sees every jurisdiction.
    pub nationwide: bool,
    /// The person acting through the calling system, when it says so.
    pub acting: Option<String>,
    /// The RPC's gRPC path.
    pub method: String,
    /// The access table version that let the call in.
    pub table_version: String,
}

impl Caller {
    /// The caller of a request that passed the guard.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the request has no authenticated caller"))
    }

    /// Whether the caller may see data of `region_code`.
    pub fn may_see(&self, region_code: &str) -> bool {
        self.nationwide || self.identity.covers(region_code)
    }

    /// What every region code the caller may see starts with: empty for a nationwide role.
    /// Lists filter by it (`region_code LIKE prefix || '%'`; only digits, so no wildcards).
    pub fn region_prefix(&self) -> &str {
        if self.nationwide {
            ""
        } else {
            self.identity.region_prefix()
        }
    }

    /// `PERMISSION_DENIED` unless the caller may see data of `region_code`.
    pub fn check_jurisdiction(&self, region_code: &str) -> Result<(), Status> {
        Ok(self.office_check(region_code)?)
    }

    /// For the application layer: refused unless a resource of `region_code` (a case, its
    /// disbursements, its follow-up plan: the office holding the case) is within the caller's
    /// jurisdiction, or the caller's role is nationwide.
    pub fn office_check(&self, region_code: &str) -> Result<(), jiuzhu_errors::AppError> {
        if self.may_see(region_code) {
            return Ok(());
        }
        Err(jiuzhu_errors::AppError::permission_denied(format!(
            "region {region_code} is outside the jurisdiction of office {}",
            self.identity.office
        )))
    }

    /// Who a command is recorded as done by: the verified identity of the calling system and,
    /// when it signed one, the person acting through it. Never text from the request.
    pub fn recorded_as(&self) -> String {
        match &self.acting {
            Some(person) => format!("{person} via {}", self.identity.uri()),
            None => self.identity.uri(),
        }
    }

    /// An approver's tier as its certificate states it.
    pub fn approval_tier(&self) -> Option<&str> {
        match self.identity.role {
            crate::Role::Approver => self.identity.scope.as_deref(),
            _ => None,
        }
    }

    /// The department an integrator's certificate speaks for.
    pub fn department(&self) -> Option<&str> {
        match self.identity.role {
            crate::Role::DepartmentIntegrator => self.identity.scope.as_deref(),
            _ => None,
        }
    }
}

/// Who runs a command on a resource: an API caller, who must hold the resource's office (or be
/// nationwide), or the platform itself (a reaction, a timer), which acts wherever its events
/// lead.
#[derive(Debug, Clone)]
pub enum Actor {
    Caller(Caller),
    Platform,
}

impl Actor {
    /// Who the command is recorded as done by: a caller's verified identity (never text from
    /// its request), or, for the platform, what the platform's own code states.
    pub fn recorded_as(&self, platform_states: &str) -> String {
        match self {
            Actor::Caller(caller) => caller.recorded_as(),
            Actor::Platform => platform_states.to_owned(),
        }
    }

    /// Refused unless the actor may act on a resource of `region_code`.
    pub fn office_check(&self, region_code: &str) -> Result<(), jiuzhu_errors::AppError> {
        match self {
            Actor::Caller(caller) => caller.office_check(region_code),
            Actor::Platform => Ok(()),
        }
    }
}

/// What the guard adds to every admitted request's extensions besides the [`Caller`].
type Extend = Arc<dyn Fn(&mut http::Extensions) + Send + Sync>;

struct GuardState {
    table: AccessTable,
    limiter: DefaultKeyedRateLimiter<String>,
    limits: LimitSettings,
}

/// Puts a [`Guard`] in front of every gRPC service of a server.
#[derive(Clone)]
pub struct GuardLayer {
    state: Arc<GuardState>,
    extend: Option<Extend>,
    revocations: Option<Arc<crate::revocation::Revocations>>,
}

impl std::fmt::Debug for GuardLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardLayer")
            .field("table", &self.state.table.version)
            .finish()
    }
}

impl GuardLayer {
    pub fn new(table: AccessTable, limits: &LimitSettings) -> Self {
        let quota =
            Quota::per_second(NonZeroU32::new(limits.calls_per_second).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN));
        Self {
            state: Arc::new(GuardState {
                table,
                limiter: RateLimiter::keyed(quota),
                limits: limits.clone(),
            }),
            extend: None,
            revocations: None,
        }
    }

    /// Refuses clients whose certificate `revocations` lists (`UNAUTHENTICATED`).
    pub fn revoking(self, revocations: Arc<crate::revocation::Revocations>) -> Self {
        Self {
            revocations: Some(revocations),
            ..self
        }
    }

    /// Also hands every admitted request `value` in its extensions (what handlers need for
    /// every call, e.g. the audit log).
    pub fn extended_with<T: Clone + Send + Sync + 'static>(self, value: T) -> Self {
        Self {
            extend: Some(Arc::new(move |extensions: &mut http::Extensions| {
                extensions.insert(value.clone());
            })),
            ..self
        }
    }
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            state: Arc::clone(&self.state),
            extend: self.extend.clone(),
            revocations: self.revocations.clone(),
        }
    }
}

/// Admits a request only from a caller with a valid client certificate whose role the access
/// table allows for the RPC, within the caller's rate; refuses everything else with the gRPC
/// status that says why.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    state: Arc<GuardState>,
    extend: Option<Extend>,
    revocations: Option<Arc<crate::revocation::Revocations>>,
}

impl<S> std::fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("table", &self.state.table.version)
            .finish()
    }
}

impl GuardState {
    fn admit<B>(
        &self,
        request: &mut http::Request<B>,
        revocations: Option<&crate::revocation::Revocations>,
    ) -> Result<(), Status> {
        let path = request.uri().path().to_owned();
        let certificate = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|certs| certs.first().cloned())
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        if revocations.is_some_and(|r| r.is_revoked(certificate.as_ref())) {
            return Err(Status::unauthenticated(
                "the client certificate was revoked (the installation's revocation list)",
            ));
        }
        let identity = Identity::from_certificate(certificate.as_ref())
            .map_err(|error| Status::unauthenticated(error.to_string()))?;
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let verify = |person: &str, acting_as: Option<&str>| {
            crate::acting::verify_as(
                certificate.as_ref(),
                person,
                acting_as,
                &path,
                &header(ACTING_AT_HEADER).unwrap_or_default(),
                &header(ACTING_SIGNATURE_HEADER).unwrap_or_default(),
                now,
            )
            .map_err(|reason| Status::unauthenticated(format!("{ACTING_HEADER}: {reason}")))
        };
        // The console is judged as the staff member it signs for; anyone else as itself.
        let (identity, acting, delegated) = match (identity.role, header(ACTING_AS_HEADER)) {
            (Role::Console, Some(acting_as)) => {
                let person = header(ACTING_HEADER).ok_or_else(|| {
                    Status::unauthenticated(format!(
                        "{ACTING_AS_HEADER} needs the signed {ACTING_HEADER}"
                    ))
                })?;
                verify(&person, Some(&acting_as))?;
                let staff =
                    crate::acting::delegated_identity(&identity, &acting_as).map_err(|reason| {
                        Status::permission_denied(format!("{ACTING_AS_HEADER}: {reason}"))
                    })?;
                (staff, Some(person), true)
            }
            (_, Some(_)) => {
                return Err(Status::permission_denied(format!(
                    "only the staff console states {ACTING_AS_HEADER}"
                )));
            }
            (_, None) => {
                let acting = match header(ACTING_HEADER) {
                    None => None,
                    Some(person) => {
                        verify(&person, None)?;
                        Some(person)
                    }
                };
                (identity, acting, false)
            }
        };
        let version = &self.table.version;
        let rule = self.table.rule(&path).ok_or_else(|| {
            Status::permission_denied(format!("{path} has no rule in access table {version}"))
        })?;
        if !rule.allows(identity.role) {
            return Err(Status::permission_denied(format!(
                "role {} may not call {path} (access table {version})",
                identity.role
            )));
        }
        if !rule.admits(&identity) {
            return Err(Status::permission_denied(format!(
                "system {} may not call {path}: only {} (access table {version})",
                identity.name,
                rule.systems.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        // A console's members are limited one by one, as separate callers would be.
        let limited_as = match &acting {
            Some(person) if delegated => format!("{}#{person}", identity.uri()),
            _ => identity.uri(),
        };
        if self.limiter.check_key(&limited_as).is_err() {
            return Err(Status::resource_exhausted(format!(
                "{} calls more than {} times a second; slow down and retry",
                identity.name, self.limits.calls_per_second
            )));
        }
        let caller = Caller {
            nationwide: self.table.is_nationwide(identity.role),
            identity,
            acting,
            method: path,
            table_version: version.clone(),
        };
        request.extensions_mut().insert(caller);

        Ok(())
    }
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Guard<S>
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.state.admit(&mut request, self.revocations.as_deref()) {
            Ok(()) => {
                if let Some(extend) = &self.extend {
                    extend(request.extensions_mut());
                }
                // The service that was polled ready serves; a fresh clone waits for the next.
                let ready = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, ready);
                Box::pin(inner.call(request))
            }
            Err(status) => {
                tracing::info!(code = ?status.code(), reason = status.message(), "call refused");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}
