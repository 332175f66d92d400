//! The five services as one signed-in member reaches them: one mutual-TLS channel per service,
//! opened once with the console's certificate, and per request a client that signs the
//! member's staff number, office, role and tier (`jiuzhu-acting-as`) for the exact RPC it
//! calls. The services judge every call as the member's: access table, jurisdiction, approval
//! tier, audit log.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderValue;
use jiuzhu_access::TlsSettings;
use jiuzhu_access::acting::{
    ACTING_AS_HEADER, ACTING_AT_HEADER, ACTING_HEADER, ACTING_SIGNATURE_HEADER,
};
use jiuzhu_access::signing::SigningKey;
use jiuzhu_clock::Clock;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::followup::followup_service_client::FollowupServiceClient;
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use tonic::transport::Channel;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::settings::ConsoleSettings;
use crate::staff::StaffMember;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("TLS: {0}")]
    Tls(#[from] jiuzhu_access::TlsError),
    #[error("the console's signing key: {0}")]
    Key(#[from] jiuzhu_access::AccessError),
}

/// The channels and the console's key, shared by every request.
#[derive(Clone)]
pub struct Platform {
    registry: Channel,
    clues: Channel,
    decisions: Channel,
    payments: Channel,
    followup: Channel,
    key: Arc<SigningKey>,
    clock: Clock,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Platform")
    }
}

impl Platform {
    /// Channels to the services (connected lazily: the console starts while a service is
    /// still starting, and a page says so when one is unreachable).
    pub fn new(settings: &ConsoleSettings, clock: Clock) -> Result<Self, PlatformError> {
        let tls = TlsSettings::in_dir(&settings.tls_dir);
        let name = &settings.certificate;
        let channel = |endpoint: &str| -> Result<Channel, PlatformError> {
            Ok(tls
                .endpoint(name, endpoint)?
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .connect_lazy())
        };
        Ok(Self {
            registry: channel(&settings.registry)?,
            clues: channel(&settings.clues)?,
            decisions: channel(&settings.decisions)?,
            payments: channel(&settings.payments)?,
            followup: channel(&settings.followup)?,
            key: Arc::new(SigningKey::from_pem(&tls.key_pem(name)?)?),
            clock,
        })
    }

    /// The services as `member` reaches them.
    pub fn as_member(&self, member: &StaffMember) -> Acting {
        Acting {
            platform: self.clone(),
            person: Arc::from(member.staff_no.as_str()),
            acting_as: Arc::from(member.acting_as().as_str()),
        }
    }
}

/// The services for one member.
#[derive(Clone)]
pub struct Acting {
    platform: Platform,
    person: Arc<str>,
    acting_as: Arc<str>,
}

impl Acting {
    fn signed(&self, channel: &Channel) -> Signed {
        Signed {
            channel: channel.clone(),
            key: Arc::clone(&self.platform.key),
            clock: self.platform.clock.clone(),
            person: Arc::clone(&self.person),
            acting_as: Arc::clone(&self.acting_as),
        }
    }

    pub fn registry(&self) -> RegistryServiceClient<Signed> {
        RegistryServiceClient::new(self.signed(&self.platform.registry))
    }

    pub fn clues(&self) -> CluesServiceClient<Signed> {
        CluesServiceClient::new(self.signed(&self.platform.clues))
    }

    pub fn decisions(&self) -> DecisionsServiceClient<Signed> {
        DecisionsServiceClient::new(self.signed(&self.platform.decisions))
    }

    pub fn payments(&self) -> PaymentsServiceClient<Signed> {
        PaymentsServiceClient::new(self.signed(&self.platform.payments))
    }

    pub fn followup(&self) -> FollowupServiceClient<Signed> {
        FollowupServiceClient::new(self.signed(&self.platform.followup))
    }
}

/// A channel that signs the acting member for each request's RPC path and sends the trace
/// context of the page being served.
#[derive(Clone)]
pub struct Signed {
    channel: Channel,
    key: Arc<SigningKey>,
    clock: Clock,
    person: Arc<str>,
    acting_as: Arc<str>,
}

impl Signed {
    fn headers(&self, method: &str) -> Option<[(&'static str, HeaderValue); 4]> {
        let at = u64::try_from(self.clock.now().timestamp()).unwrap_or_default();
        let signature =
            jiuzhu_access::acting::sign_as(&self.key, &self.person, &self.acting_as, method, at)
                .ok()?;
        Some([
            (ACTING_HEADER, HeaderValue::from_str(&self.person).ok()?),
            (
                ACTING_AS_HEADER,
                HeaderValue::from_str(&self.acting_as).ok()?,
            ),
            (
                ACTING_AT_HEADER,
                HeaderValue::from_str(&at.to_string()).ok()?,
            ),
            (
                ACTING_SIGNATURE_HEADER,
                HeaderValue::from_str(&signature).ok()?,
            ),
        ])
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Signed {
    type Response = <Channel as tower_service::Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as tower_service::Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Channel as tower_service::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = request.uri().path().to_owned();
        match self.headers(&method) {
            Some(headers) => {
                for (name, value) in headers {
                    request.headers_mut().insert(name, value);
                }
            }
            // Unsigned, the service refuses the call and the page says so.
            None => tracing::warn!(%method, "could not sign the acting member"),
        }
        let context = tracing::Span::current().context();
        for (name, value) in jiuzhu_telemetry::context_to_map(&context) {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                request.headers_mut().insert(name, value);
            }
        }
        tower_service::Service::call(&mut self.channel, request)
    }
}
