use std::sync::Arc;

use futures::future::BoxFuture;
use jiuzhu_access::signing::Authorities;
use jiuzhu_eventstore::EventStore;
use jiuzhu_messaging::{
    ConsumerSettings, InboundHandler, InboundRecord, InboundRunner, KafkaSettings, Projection,
    ProjectionError, ProjectionRunner, RebuildError, RebuildProgress, inbound_source,
    rebuild_from_store, rebuild_from_topic,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A projection as the runtime handles it, whatever its concrete type.
pub trait RegisteredProjection: Send + Sync {
    fn name(&self) -> &str;
    fn topics(&self) -> Vec<String>;
    /// Consumes its topics until `shutdown`.
    fn run(
        self: Arc<Self>,
        pool: PgPool,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        client_id: String,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()>;
    fn rebuild_from_topic<'a>(
        &'a self,
        pool: &'a PgPool,
        kafka: &'a KafkaSettings,
        settings: &'a ConsumerSettings,
        progress: Box<dyn FnMut(RebuildProgress) + Send + 'a>,
    ) -> BoxFuture<'a, Result<RebuildProgress, RebuildError>>;
    fn rebuild_from_store<'a>(
        &'a self,
        store: &'a EventStore,
        settings: &'a ConsumerSettings,
        progress: Box<dyn FnMut(RebuildProgress) + Send + 'a>,
    ) -> BoxFuture<'a, Result<RebuildProgress, RebuildError>>;
}

struct Registered<P>(Arc<P>);

/// Wraps a projection for the runtime.
pub fn register<P: Projection>(projection: P) -> Arc<dyn RegisteredProjection> {
    Arc::new(Registered(Arc::new(projection)))
}

impl<P: Projection> RegisteredProjection for Registered<P> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn topics(&self) -> Vec<String> {
        self.0.topics()
    }

    fn run(
        self: Arc<Self>,
        pool: PgPool,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        client_id: String,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        let projection = Arc::clone(&self.0);
        Box::pin(async move {
            let name = projection.name().to_owned();
            let runner = ProjectionRunner::new(pool, projection, kafka, settings, &client_id);
            if let Err(error) = runner.run(shutdown).await {
                tracing::error!(%error, projection = %name, "projection consumer could not run");
            }
        })
    }

    fn rebuild_from_topic<'a>(
        &'a self,
        pool: &'a PgPool,
        kafka: &'a KafkaSettings,
        settings: &'a ConsumerSettings,
        progress: Box<dyn FnMut(RebuildProgress) + Send + 'a>,
    ) -> BoxFuture<'a, Result<RebuildProgress, RebuildError>> {
        Box::pin(rebuild_from_topic(
            pool,
            self.0.as_ref(),
            kafka,
            settings,
            progress,
        ))
    }

    fn rebuild_from_store<'a>(
        &'a self,
        store: &'a EventStore,
        settings: &'a ConsumerSettings,
        progress: Box<dyn FnMut(RebuildProgress) + Send + 'a>,
    ) -> BoxFuture<'a, Result<RebuildProgress, RebuildError>> {
        Box::pin(rebuild_from_store(
            store,
            self.0.as_ref(),
            settings,
            progress,
        ))
    }
}

/// An inbound-topic handler as the runtime handles it.
pub trait RegisteredInbound: Send + Sync {
    fn name(&self) -> &str;
    fn topics(&self) -> Vec<String>;
    fn run(
        self: Arc<Self>,
        pool: PgPool,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        client_id: String,
        senders: Arc<Senders>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()>;
}

/// Who may send on inbound topics: certificates of these authorities, unless revoked.
#[derive(Debug)]
pub struct Senders {
    pub authorities: Authorities,
    pub revocations: Arc<jiuzhu_access::revocation::Revocations>,
}

struct Inbound<H>(Arc<H>);

/// A handler of inbound topics behind the check of their senders: a message on a department's
/// (or the case systems') topic is handled only when signed by a certificate of the
/// installation's authority that speaks for that topic; anything else is dead-lettered with
/// the reason. Other services' topics (reactions) are the platform's own and pass.
struct SignedOnly<H> {
    handler: Arc<H>,
    senders: Arc<Senders>,
}

impl<H: InboundHandler> InboundHandler for SignedOnly<H> {
    fn name(&self) -> &str {
        self.handler.name()
    }

    fn topics(&self) -> Vec<String> {
        self.handler.topics()
    }

    fn handles(&self, record: &InboundRecord) -> bool {
        self.handler.handles(record)
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        if let Some(source) = inbound_source(&record.topic)
            && self.handler.handles(record)
        {
            let revoked = |der: &[u8]| self.senders.revocations.is_revoked(der);
            self.senders
                .authorities
                .verify_inbound(source, &record.payload, &record.headers, &revoked)
                .map_err(|why| {
                    ProjectionError::Rejected(format!("inbound message refused: {why}"))
                })?;
        }
        self.handler.handle(record).await
    }
}

/// Wraps an inbound handler for the runtime.
pub fn register_inbound<H: InboundHandler>(handler: H) -> Arc<dyn RegisteredInbound> {
    Arc::new(Inbound(Arc::new(handler)))
}

/// Registers a typed reaction to other services' events.
pub fn register_reaction<R: jiuzhu_messaging::Reaction>(reaction: R) -> Arc<dyn RegisteredInbound> {
    register_inbound(jiuzhu_messaging::Reacting(reaction))
}

impl<H: InboundHandler> RegisteredInbound for Inbound<H> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn topics(&self) -> Vec<String> {
        self.0.topics()
    }

    fn run(
        self: Arc<Self>,
        pool: PgPool,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        client_id: String,
        senders: Arc<Senders>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()> {
        let handler = SignedOnly {
            handler: Arc::clone(&self.0),
            senders,
        };
        Box::pin(async move {
            let name = handler.name().to_owned();
            let runner = InboundRunner::new(pool, handler, kafka, settings, &client_id);
            if let Err(error) = runner.run(shutdown).await {
                tracing::error!(%error, handler = %name, "inbound consumer could not run");
            }
        })
    }
}
