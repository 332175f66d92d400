use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiuzhu_clock::Clock;
use jiuzhu_eventstore::EventStore;
use jiuzhu_messaging::{
    OutboxRelay, RelayError, TopicError, dead_letter_topic, ensure_topics, never_written,
    service_topic,
};
use jiuzhu_policy::PolicyBook;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::{RegisteredInbound, RegisteredProjection, Service, Settings};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot connect to the service database: {0}")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error(
        "cannot provision Kafka topics (is the broker at the configured kafka.brokers up?): {0}"
    )]
    Topics(#[from] TopicError),
    #[error("cannot start the outbox relay: {0}")]
    Relay(#[from] RelayError),
    #[error("cannot queue the outbox for sending again: {0}")]
    Republish(#[from] jiuzhu_eventstore::StoreError),
    #[error("{0}")]
    Setup(String),
    #[error("configuration: {0}")]
    Config(#[from] jiuzhu_config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] jiuzhu_access::TlsError),
    #[error("{0}")]
    Access(#[from] jiuzhu_access::AccessError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What a service's `components` can use.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    pub store: EventStore,
    pub pool: PgPool,
    pub settings: Settings,
    /// The service's audit log of personal-data access.
    pub audit: jiuzhu_audit::Audit,
    /// The service's name, which is also the name of its certificate.
    pub name: &'static str,
    /// The policy sets read at start (`[policy] dir`).
    pub policy: Arc<PolicyBook>,
    /// What every command, job and consumer takes "now" from (`[clock]`).
    pub clock: Clock,
}

impl ServiceContext {
    /// An endpoint of another system, reached over mutual TLS with this service's certificate.
    pub fn endpoint(
        &self,
        setting: &str,
        url: &str,
    ) -> Result<tonic::transport::Endpoint, StartError> {
        self.settings
            .tls
            .endpoint(self.name, url)
            .map_err(|error| StartError::Setup(format!("{setting}: {error}")))
    }
}

/// A background task of a service: started with it, told to stop through the token.
type Task = crate::supervise::Start;

/// A service's gRPC services, projections, inbound consumers and background tasks.
pub struct Components {
    routes: Option<Routes>,
    served: Vec<&'static str>,
    pub(crate) projections: Vec<Arc<dyn RegisteredProjection>>,
    inbound: Vec<Arc<dyn RegisteredInbound>>,
    tasks: Vec<(&'static str, Task)>,
    metrics: Vec<crate::metrics::Collector>,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components")
            .field("served", &self.served)
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Components {
    fn default() -> Self {
        Self::new()
    }
}

impl Components {
    pub fn new() -> Self {
        Self {
            routes: None,
            served: Vec::new(),
            projections: Vec::new(),
            inbound: Vec::new(),
            tasks: Vec::new(),
            metrics: Vec::new(),
        }
    }

    /// Adds gauges to the service's `/metrics` (rendered at scrape time from its database).
    pub fn metrics<F, Fut>(mut self, collect: F) -> Self
    where
        F: Fn(sqlx::PgPool) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, sqlx::Error>> + Send + 'static,
    {
        self.metrics
            .push(Arc::new(move |pool| Box::pin(collect(pool))));
        self
    }

    /// Adds a background task (a scheduler, a follower): it runs while the service runs and
    /// must return soon after `shutdown` is cancelled. `run` makes a fresh run: a run that
    /// ends or panics before then is started again (supervised).
    pub fn task<F, Fut>(mut self, name: &'static str, run: F) -> Self
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .push((name, Arc::new(move |shutdown| Box::pin(run(shutdown)))));
        self
    }

    /// Adds a generated tonic server; its health status is reported under its full name.
    pub fn grpc<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.served.push(S::NAME);
        self.routes = Some(match self.routes.take() {
            Some(routes) => routes.add_service(service),
            None => Routes::new(service),
        });
        self
    }

    /// Adds a projection consumer.
    pub fn projection(mut self, projection: Arc<dyn RegisteredProjection>) -> Self {
        self.projections.push(projection);
        self
    }

    /// Adds a consumer of inbound topics.
    pub fn inbound(mut self, handler: Arc<dyn RegisteredInbound>) -> Self {
        self.inbound.push(handler);
        self
    }

    pub fn projections(&self) -> &[Arc<dyn RegisteredProjection>] {
        &self.projections
    }
}

/// A started service. Drop does not stop it: call [`Running::stop`].
#[derive(Debug)]
pub struct Running {
    pub name: &'static str,
    /// Where the gRPC server listens (the real port when configured with port 0).
    pub grpc_addr: SocketAddr,
    /// Where `/metrics` is served, when configured.
    pub metrics_addr: Option<SocketAddr>,
    pub store: EventStore,
    shutdown: CancellationToken,
    health: HealthReporter,
    served: Vec<&'static str>,
    tasks: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl Running {
    /// Stops serving (health goes NOT_SERVING first), lets consumers finish their batch and the
    /// relay flush, and waits up to the configured grace period.
    pub async fn stop(self) {
        for name in &self.served {
            self.health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.shutdown.cancel();
        let aborts: Vec<_> = self.tasks.iter().map(|t| t.abort_handle()).collect();
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(self.grace, all).await.is_err() {
            // Whatever is still running must not linger (a consumer would keep its partitions).
            tracing::warn!(
                service = self.name,
                "shutdown grace period ran out; aborting what is left"
            );
            for abort in aborts {
                abort.abort();
            }
        }
        self.store.pool().close().await;
        tracing::info!(service = self.name, "stopped");
    }

    /// Resolves when the service was asked to stop (for supervisors).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Connects and migrates the service's database.
pub async fn connect<S: Service>(settings: &Settings) -> Result<PgPool, StartError> {
    let pool = PgPoolOptions::new()
        .max_connections(settings.service.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each use: on one machine it was a third of a command's round trips
        // (ReportParty p99 8.6 -> 6.9 ms). A connection that died with its server fails its
        // next statement instead, which is classified as an outage and retried like any other.
        .test_before_acquire(false)
        .connect(settings.service.database_url.expose())
        .await
        .map_err(StartError::Database)?;
    let mut conn = pool.acquire().await.map_err(StartError::Database)?;
    migrate::<S>(&mut conn).await?;
    drop(conn);
    Ok(pool)
}

/// The platform's migrators: event store (versions 1..99), consumers (100..199), the
/// personal-data key store (200..299), the audit log (300..399) and the policy adoptions
/// (400..499).
fn platform_migrators() -> [Migrator; 5] {
    [
        jiuzhu_eventstore::migrator(),
        jiuzhu_messaging::migrator(),
        jiuzhu_vault::migrator(),
        jiuzhu_audit::migrator(),
        jiuzhu_policy::adoption::migrator(),
    ]
}

/// The policy sets of `[policy] dir`; a set that cannot be read or parsed refuses the start.
pub fn policy_book(settings: &Settings) -> Result<Arc<PolicyBook>, StartError> {
    let book = PolicyBook::load(&settings.policy.dir)
        .map_err(|error| StartError::Setup(format!("policy: {error}")))?;
    for set in book.sets() {
        let compiled_in = set.compiled_in_files();
        if !compiled_in.is_empty() {
            tracing::warn!(
                set = set.version(),
                dir = %settings.policy.dir.display(),
                files = ?compiled_in,
                "policy files not in the policy directory: the copies compiled into this build are used"
            );
        }
    }
    Ok(Arc::new(book))
}

/// Every migration set of service `S`, in the order they run: the platform's, the shared
/// projections' it keeps, its own.
pub fn migrators_of<S: Service>() -> Vec<Migrator> {
    let mut migrators = Vec::from(platform_migrators());
    migrators.extend(S::shared_migrators());
    let mut own = S::migrator();
    own.set_ignore_missing(true);
    migrators.push(own);
    migrators
}

/// Applies the platform's and the service's migrations.
pub async fn migrate<S: Service>(conn: &mut sqlx::PgConnection) -> Result<(), StartError> {
    for migrator in migrators_of::<S>() {
        migrator.run(&mut *conn).await?;
    }
    Ok(())
}

/// The service's context and components over a connected pool.
pub fn assemble<S: Service>(
    pool: PgPool,
    settings: Settings,
) -> Result<(ServiceContext, Components), StartError> {
    let policy = policy_book(&settings)?;
    let clock = settings.clock.clock();
    if !clock.is_system() {
        tracing::warn!(now = %clock.now(), "the clock is set by [clock] start: a drill or a test, never production");
    }
    let topic = settings.kafka.topic(&service_topic(S::NAME));
    let store = EventStore::new(pool.clone(), S::NAME, topic).with_clock(clock.clone());
    let audit_key = settings.audit.key()?;
    if audit_key.is_none() {
        tracing::warn!(
            "no [audit] key: the audit chain is plain SHA-256, which whoever can write the table can recompute (development only)"
        );
    }
    let context = ServiceContext {
        store,
        audit: jiuzhu_audit::Audit::new(pool.clone(), audit_key),
        name: S::NAME,
        pool,
        settings,
        policy,
        clock,
    };
    let components = S::components(&context)?;
    Ok((context, components))
}

/// Starts a service: database, topics, gRPC, relay and consumers.
pub async fn start<S: Service>(settings: Settings) -> Result<Running, StartError> {
    // Refuse at once, before any connection, to run without TLS or with a broken access table.
    let tls = settings.tls.server(S::NAME)?;
    let policy = policy_book(&settings)?;
    let access = jiuzhu_access::AccessTable::parse(policy.latest().text(jiuzhu_policy::ACCESS))?;
    // Revoked certificates: refused as clients and as signers of inbound messages.
    let revocations = Arc::new(settings.tls.revocations()?);
    let guard =
        jiuzhu_access::GuardLayer::new(access, &settings.limits).revoking(Arc::clone(&revocations));
    // The key that signs the audit log's checkpoints: the service's own certificate's.
    let checkpoint_key =
        jiuzhu_access::signing::SigningKey::from_pem(&settings.tls.key_pem(S::NAME)?)?;
    // Listen before opening any connection: an outgoing connection's local port is drawn from
    // the ephemeral range, which holds the service ports too (50051… on Linux's 32768–60999).
    let listener = tokio::net::TcpListener::bind(settings.service.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.service.listen,
            source,
        })?;
    let grpc_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: settings.service.listen,
        source,
    })?;
    let metrics_listener = match settings.service.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr, source })?,
        ),
        None => None,
    };
    let pool = connect::<S>(&settings).await?;
    // Every set goes on the record before anything is decided under it.
    for set in policy.sets() {
        if jiuzhu_policy::adoption::record(&pool, S::NAME, set)
            .await
            .map_err(StartError::Database)?
        {
            tracing::info!(set = set.version(), effective_from = %set.effective_from, "policy set adopted");
        }
    }
    let (context, mut components) = assemble::<S>(pool, settings)?;
    let settings = &context.settings;

    let own_topic_name = context.store.topic().to_owned();
    let mut topics = vec![dead_letter_topic(&own_topic_name), own_topic_name.clone()];
    let consumed = components
        .projections
        .iter()
        .flat_map(|p| p.topics())
        .chain(components.inbound.iter().flat_map(|h| h.topics()));
    {
        for topic in consumed.map(|t| settings.kafka.topic(&t)) {
            topics.push(dead_letter_topic(&topic));
            topics.push(topic);
        }
    }
    topics.sort();
    topics.dedup();
    ensure_topics(&settings.kafka, &topics).await?;
    if never_written(&settings.kafka, &own_topic_name).await? {
        // The broker has never held a record of this service's topic: new, or it lost its log
        // (another service may have created the topic again first). Whatever the outbox still
        // retains is sent again, so consumers miss nothing.
        let republished = context.store.republish_outbox().await?;
        if republished > 0 {
            tracing::warn!(
                topic = %own_topic_name,
                events = republished,
                "the broker had lost this service's topic: sending the retained events again"
            );
        }
    }

    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    // Every long-running task is supervised: started again when it ends or panics, and the
    // service says NOT_SERVING while one is down.
    let (health, health_service) = tonic_health::server::health_reporter();
    let supervision = crate::supervise::Supervision::new(health.clone(), components.served.clone());

    let calls = crate::metrics::CallMetrics::new(S::NAME);
    let relay_name = format!("jiuzhu-{}-relay", S::NAME);
    // The first relay is made now, so that bad settings stop the start; restarts make their own.
    let first_relay = std::sync::Mutex::new(Some(
        OutboxRelay::new(
            context.pool.clone(),
            &settings.kafka,
            settings.outbox.clone(),
            &relay_name,
        )?
        .counting(calls.published_events()),
    ));
    let relay_start: crate::supervise::Start = {
        let (pool, kafka, outbox, name, published) = (
            context.pool.clone(),
            settings.kafka.clone(),
            settings.outbox.clone(),
            relay_name.clone(),
            calls.published_events(),
        );
        Arc::new(move |token| {
            let first = first_relay.lock().ok().and_then(|mut first| first.take());
            let relay = match first {
                Some(relay) => Ok(relay),
                None => OutboxRelay::new(pool.clone(), &kafka, outbox.clone(), &name)
                    .map(|relay| relay.counting(Arc::clone(&published))),
            };
            Box::pin(async move {
                match relay {
                    Ok(relay) => relay.run(token).await,
                    Err(error) => tracing::error!(%error, "cannot start the outbox relay"),
                }
            })
        })
    };
    tasks.push(supervision.spawn(relay_name, relay_start, shutdown.clone()));

    for projection in &components.projections {
        let client_id = format!("jiuzhu-{}-{}", S::NAME, projection.name());
        let start: crate::supervise::Start = {
            let (projection, pool, kafka, consumer, client_id) = (
                Arc::clone(projection),
                context.pool.clone(),
                settings.kafka.clone(),
                settings.consumer.clone(),
                client_id.clone(),
            );
            Arc::new(move |token| {
                Arc::clone(&projection).run(
                    pool.clone(),
                    kafka.clone(),
                    consumer.clone(),
                    client_id.clone(),
                    token,
                )
            })
        };
        tasks.push(supervision.spawn(client_id, start, shutdown.clone()));
    }

    // Who may send on inbound topics: certificates of the installation's authority, unless
    // revoked.
    let senders = Arc::new(crate::projection::Senders {
        authorities: jiuzhu_access::signing::Authorities::from_pem(&settings.tls.ca_pem()?)?,
        revocations: Arc::clone(&revocations),
    });
    for handler in &components.inbound {
        let client_id = format!("jiuzhu-{}-{}", S::NAME, handler.name());
        let start: crate::supervise::Start = {
            let (handler, pool, kafka, consumer, client_id, senders) = (
                Arc::clone(handler),
                context.pool.clone(),
                settings.kafka.clone(),
                settings.consumer.clone(),
                client_id.clone(),
                Arc::clone(&senders),
            );
            Arc::new(move |token| {
                Arc::clone(&handler).run(
                    pool.clone(),
                    kafka.clone(),
                    consumer.clone(),
                    client_id.clone(),
                    Arc::clone(&senders),
                    token,
                )
            })
        };
        tasks.push(supervision.spawn(client_id, start, shutdown.clone()));
    }

    let broker = jiuzhu_messaging::BrokerProbe::new(&context.settings.kafka)
        .map_err(|error| StartError::Setup(format!("broker probe: {error}")))?;
    let metrics_addr = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr().map_err(|source| StartError::Listen {
                addr: grpc_addr,
                source,
            })?;
            tasks.push(crate::metrics::serve(
                listener,
                crate::metrics::Sources {
                    service: S::NAME,
                    pool: context.pool.clone(),
                    collectors: std::mem::take(&mut components.metrics),
                    supervision: Arc::clone(&supervision),
                    calls: calls.clone(),
                    broker: broker.clone(),
                },
                shutdown.child_token(),
            ));
            tracing::info!(service = S::NAME, %addr, "serving metrics");
            Some(addr)
        }
        None => None,
    };

    for (name, run) in std::mem::take(&mut components.tasks) {
        tracing::debug!(task = name, "starting background task");
        tasks.push(supervision.spawn(name.to_owned(), run, shutdown.clone()));
    }
    // Replicas share a directory: each appends to a file of its own instance.
    let checkpoints = jiuzhu_audit::checkpoint_file(
        &context.settings.audit.checkpoint_dir,
        S::NAME,
        &context.settings.kafka.instance_id,
    );
    tasks.push(tokio::spawn(reread_revocations(
        Arc::clone(&revocations),
        shutdown.child_token(),
    )));
    tasks.push(tokio::spawn(checkpoint_audit(
        jiuzhu_audit::Checkpointer::new(
            context.audit.clone(),
            S::NAME,
            checkpoints.clone(),
            checkpoint_key,
        ),
        Duration::from_secs(context.settings.audit.checkpoint_every_s),
        context.clock.clone(),
        shutdown.child_token(),
    )));

    for name in &components.served {
        health
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    health.set_service_status("", ServingStatus::Serving).await;
    tasks.push(tokio::spawn(crate::readiness::watch(
        context.pool.clone(),
        broker,
        Arc::clone(&supervision),
        shutdown.child_token(),
    )));
    // Both reflection versions (stock clients still speak v1alpha), listing only what this
    // port serves.
    let mut listed = components.served.clone();
    listed.extend(["jiuzhu.audit.v1.AuditService", "grpc.health.v1.Health"]);
    let reflection =
        jiuzhu_proto::reflection::services(&listed, &[tonic_health::pb::FILE_DESCRIPTOR_SET]);
    let limits = &context.settings.limits;
    let mut server = tonic::transport::Server::builder()
        .tls_config(tls)
        .map_err(|error| StartError::Setup(format!("TLS: {error}")))?
        .timeout(Duration::from_millis(limits.request_timeout_ms))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .trace_fn(jiuzhu_telemetry::grpc_server_span)
        .layer(jiuzhu_telemetry::TraceResponseLayer::observed_by({
            let calls = calls.clone();
            Arc::new(move |path, code, elapsed| calls.observe(path, code, elapsed))
        }))
        .layer(guard.extended_with(context.audit.clone()));
    let audit = jiuzhu_proto::audit::audit_service_server::AuditServiceServer::new(
        jiuzhu_audit::AuditApi::new(context.audit.clone()).with_checkpoints(
            checkpoints.clone(),
            jiuzhu_access::signing::certificate_der(&context.settings.tls.cert_pem(S::NAME)?)?,
        ),
    )
    .max_decoding_message_size(limits.max_message_bytes);
    let routes = match components.routes.take() {
        Some(routes) => routes.add_service(audit),
        None => Routes::new(audit),
    };
    let router = server.add_routes(routes);
    let router = match reflection {
        Ok((v1, v1alpha)) => router.add_service(v1).add_service(v1alpha),
        Err(error) => {
            tracing::warn!(%error, "gRPC reflection unavailable");
            router
        }
    };
    let router = router.add_service(health_service);
    let stop = shutdown.clone();
    let name = S::NAME;
    tasks.push(tokio::spawn(async move {
        // Without TCP_NODELAY a response written in several pieces waits for the client's
        // delayed ACK: a steady 40 ms on answers of a few hundred bytes.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        if let Err(error) = router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
        {
            tracing::error!(%error, service = name, "gRPC server failed");
        }
    }));
    tracing::info!(service = S::NAME, %grpc_addr, "serving gRPC");

    Ok(Running {
        name: S::NAME,
        grpc_addr,
        metrics_addr,
        grace: Duration::from_secs(context.settings.service.shutdown_grace_seconds),
        store: context.store,
        shutdown,
        health,
        served: components.served,
        tasks,
    })
}

/// Appends a signed checkpoint of the audit chain every `every` (and once more on the way out).
async fn checkpoint_audit(
    mut checkpointer: jiuzhu_audit::Checkpointer,
    every: Duration,
    clock: jiuzhu_clock::Clock,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            () = stop.cancelled() => true,
        };
        if let Err(error) = checkpointer.checkpoint(clock.now()).await {
            tracing::error!(%error, "audit checkpoint not written");
        }
        if stopping {
            return;
        }
    }
}

/// How often the revocation lists are looked at again.
const REVOCATIONS_EVERY: Duration = Duration::from_secs(5);

/// Reads the revocation lists again when they change, so a revocation needs no restart.
async fn reread_revocations(
    revocations: Arc<jiuzhu_access::revocation::Revocations>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(REVOCATIONS_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = revocations.refresh() {
            tracing::error!(%error, "revocation list not taken: the lists held before stay in force");
        }
    }
}
