//! Helpers shared by the end-to-end tests and the pipeline benchmark: starting services
//! in-process on fresh databases in an isolated Kafka namespace, clients, and waiting for
//! eventually consistent read models without fixed sleeps.

use std::future::Future;
use std::time::{Duration, Instant};

use jiuzhu_proto::clues::GetLinkageIndexStatusRequest;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_proto::registry::{Gender, RegisterPersonRequest};
use jiuzhu_runtime::{Running, Service};
use jiuzhu_testkit::TestDatabase;
use tonic::transport::Channel;

pub type TestResult = anyhow::Result<()>;

pub mod payments;

/// `JIUZHU__…` variables for running `service` as a process on `database` at `port` in
/// `namespace`, exporting traces to `otlp` (empty: none), with the registry at `registry_port`.
pub fn service_env(
    service: &str,
    database: &TestDatabase,
    port: u16,
    namespace: &str,
    otlp: &str,
    registry_port: u16,
) -> Vec<(String, String)> {
    let section = service.to_uppercase();
    // The audit key and checkpoints the in-process services of this database would have.
    let audit = jiuzhu_testkit::settings(service, database, namespace).audit;
    [
        (
            "JIUZHU__AUDIT__KEY".to_owned(),
            audit
                .key
                .map(|key| key.expose().to_owned())
                .unwrap_or_default(),
        ),
        (
            "JIUZHU__AUDIT__CHECKPOINT_DIR".to_owned(),
            audit.checkpoint_dir.display().to_string(),
        ),
        (
            format!("JIUZHU__{section}__LISTEN"),
            format!("127.0.0.1:{port}"),
        ),
        (
            format!("JIUZHU__{section}__DATABASE_URL"),
            database.url.clone(),
        ),
        (
            "JIUZHU__KAFKA__BROKERS".to_owned(),
            jiuzhu_testkit::kafka_brokers(),
        ),
        (
            "JIUZHU__KAFKA__TOPIC_PREFIX".to_owned(),
            namespace.to_owned(),
        ),
        (
            "JIUZHU__TELEMETRY__OTLP_ENDPOINT".to_owned(),
            otlp.to_owned(),
        ),
        (
            "JIUZHU__OUTBOX__POLL_INTERVAL_MS".to_owned(),
            "10".to_owned(),
        ),
        (
            "JIUZHU__VAULT__MASTER_KEY".to_owned(),
            jiuzhu_testkit::test_master_key(&database.url),
        ),
        (
            "JIUZHU__PEERS__REGISTRY".to_owned(),
            format!("https://127.0.0.1:{registry_port}"),
        ),
        (
            "JIUZHU__TLS__DIR".to_owned(),
            jiuzhu_testkit::tls().dir.display().to_string(),
        ),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ]
    .into_iter()
    .collect()
}

/// Starts service `S` on a fresh database in `namespace`, with `configure` applied to its
/// test settings.
pub async fn start_with<S: Service>(
    namespace: &str,
    configure: impl FnOnce(&mut jiuzhu_runtime::Settings),
) -> anyhow::Result<Started> {
    let database = jiuzhu_testkit::fresh_database::<S>().await?;
    let mut settings = jiuzhu_testkit::settings(S::NAME, &database, namespace);
    configure(&mut settings);
    let running = jiuzhu_runtime::start::<S>(settings).await?;
    jiuzhu_testkit::announce_peer(namespace, S::NAME, format!("http://{}", running.grpc_addr));
    Ok(Started { running, database })
}

/// The decisions service on `database` with its clock set to `today` (`YYYY-MM-DD`), scanning
/// deadlines every second, with a metrics port.
pub async fn decisions_on(
    namespace: &str,
    database: &TestDatabase,
    today: &str,
) -> anyhow::Result<Running> {
    let mut settings = jiuzhu_testkit::settings("decisions", database, namespace);
    settings.deadlines = jiuzhu_runtime::DeadlineSettings { scan_seconds: 1 };
    settings.clock.start = Some(today.to_owned());
    settings.service.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    Ok(jiuzhu_runtime::start::<jiuzhu_decisions::Decisions>(settings).await?)
}

/// Starts service `S` again on an existing database, with `configure` applied.
pub async fn restart_with<S: Service>(
    namespace: &str,
    database: &TestDatabase,
    configure: impl FnOnce(&mut jiuzhu_runtime::Settings),
) -> anyhow::Result<Running> {
    let mut settings = jiuzhu_testkit::settings(S::NAME, database, namespace);
    configure(&mut settings);
    let running = jiuzhu_runtime::start::<S>(settings).await?;
    Ok(running)
}

/// `GET /metrics` as Prometheus scrapes it.
pub async fn scrape(running: &jiuzhu_runtime::Running) -> anyhow::Result<String> {
    let addr = running
        .metrics_addr
        .ok_or_else(|| anyhow::anyhow!("no metrics endpoint"))?;
    let (status, body) = http_get(addr, "/metrics").await?;
    anyhow::ensure!(status.contains(" 200 "), "{status}\n{body}");
    Ok(body)
}

/// `GET path` over plain HTTP (the server closes the connection after answering): the status
/// line and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
}

/// Publishes `event` on `service`'s topic in `namespace` as that service's relay would (an
/// envelope dated 1 June 2026, 10:00 Beijing), for tests of a consumer on its own.
pub async fn publish<E: prost::Message + prost::Name>(
    producer: &rdkafka::producer::FutureProducer,
    namespace: &str,
    service: &str,
    key: &str,
    event: &E,
) -> TestResult {
    use chrono::TimeZone;
    let envelope = jiuzhu_proto::common::EventEnvelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: E::full_name(),
        stream_id: key.to_owned(),
        stream_version: 1,
        occurred_at: Some(jiuzhu_proto::time::timestamp(
            chrono::Utc
                .with_ymd_and_hms(2026, 6, 1, 2, 0, 0)
                .single()
                .unwrap_or_default(),
        )),
        producer: service.to_owned(),
        payload: event.encode_to_vec(),
        partition_key: key.to_owned(),
        ..Default::default()
    };
    let topic = format!("{namespace}{}", jiuzhu_messaging::service_topic(service));
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key(key)
                .payload(&prost::Message::encode_to_vec(&envelope)),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)?;
    Ok(())
}

/// The integrator of `department` as its certificate names it (the sender of its inbound
/// messages).
pub fn integrator(department: &str) -> jiuzhu_access::Identity {
    jiuzhu_access::Identity::new(
        &department.replace('_', "-"),
        "000000",
        jiuzhu_access::Role::DepartmentIntegrator,
        &format!("{department}-feed"),
    )
    .scoped(department)
}

/// A case-handling system, the sender on `jiuzhu.inbound.cases.v1`.
pub fn case_system() -> jiuzhu_access::Identity {
    jiuzhu_access::Identity::new(
        "procuratorate",
        "110105",
        jiuzhu_access::Role::CaseProsecutor,
        "case-system",
    )
}

/// Sends `payload` on the inbound topic of `source` in `namespace`, as `signer` signs it
/// (unsigned when `None`), with a message type header when given.
pub async fn send_inbound(
    producer: &rdkafka::producer::FutureProducer,
    namespace: &str,
    source: &str,
    key: &str,
    payload: &[u8],
    message_type: Option<&str>,
    signer: Option<&jiuzhu_access::Identity>,
) -> TestResult {
    use rdkafka::message::{Header, OwnedHeaders};
    let mut headers = OwnedHeaders::new();
    if let Some(message_type) = message_type {
        headers = headers.insert(Header {
            key: jiuzhu_messaging::MESSAGE_TYPE_HEADER,
            value: Some(message_type),
        });
    }
    if let Some(signer) = signer {
        let issued = jiuzhu_testkit::certificate_of(signer)?;
        let signed = jiuzhu_access::signing::sign_inbound(
            &issued.cert_pem,
            &issued.key_pem,
            source,
            payload,
        )?;
        for (name, value) in &signed {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_str()),
            });
        }
    }
    let topic = format!("{namespace}{}", jiuzhu_messaging::inbound_topic(source));
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key(key)
                .payload(payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)?;
    Ok(())
}

/// A service started in-process for a test.
pub struct Started {
    pub running: Running,
    pub database: TestDatabase,
}

/// Starts service `S` on a fresh database in `namespace`.
pub async fn start<S: Service>(namespace: &str) -> anyhow::Result<Started> {
    let database = jiuzhu_testkit::fresh_database::<S>().await?;
    let settings = jiuzhu_testkit::settings(S::NAME, &database, namespace);
    let running = jiuzhu_runtime::start::<S>(settings).await?;
    jiuzhu_testkit::announce_peer(namespace, S::NAME, format!("http://{}", running.grpc_addr));
    Ok(Started { running, database })
}

/// Starts service `S` again on an existing database (a restart).
pub async fn restart<S: Service>(
    namespace: &str,
    database: &TestDatabase,
) -> anyhow::Result<Running> {
    let settings = jiuzhu_testkit::settings(S::NAME, database, namespace);
    let running = jiuzhu_runtime::start::<S>(settings).await?;
    jiuzhu_testkit::announce_peer(namespace, S::NAME, format!("http://{}", running.grpc_addr));
    Ok(running)
}

/// As a service is deployed, not as the tests speed it up: the relay polls and the pool is
/// sized as the service's defaults say. Benchmarks that time requests run services so.
pub fn as_deployed(settings: &mut jiuzhu_runtime::Settings) {
    let defaults = jiuzhu_runtime::Settings::local("any", "", "");
    settings.outbox = defaults.outbox;
    settings.consumer = defaults.consumer;
    settings.service.max_connections = defaults.service.max_connections;
}

pub async fn registry_client(running: &Running) -> anyhow::Result<RegistryServiceClient<Channel>> {
    Ok(RegistryServiceClient::new(
        jiuzhu_testkit::channel(running.grpc_addr).await?,
    ))
}

pub async fn clues_client(running: &Running) -> anyhow::Result<CluesServiceClient<Channel>> {
    Ok(CluesServiceClient::new(
        jiuzhu_testkit::channel(running.grpc_addr).await?,
    ))
}

/// A valid registration; `n` varies the name, and the resident id (with the birth date it
/// encodes) is derived from the request id, so different requests never share a resident id.
/// The import record (line `line`, the department's id `source`) of the person `from`
/// registers.
pub fn person_record(
    source: &str,
    line: i64,
    from: &RegisterPersonRequest,
) -> jiuzhu_proto::registry::PersonRecord {
    jiuzhu_proto::registry::PersonRecord {
        line,
        source_record_id: source.to_owned(),
        full_name: from.full_name.clone(),
        gender: from.gender,
        birth_date: from.birth_date.clone(),
        resident_id: from.resident_id.clone(),
        region: from.region.clone(),
        ..jiuzhu_proto::registry::PersonRecord::default()
    }
}

pub fn registration(request_id: &str, n: usize) -> RegisterPersonRequest {
    let resident_id = resident_id_for(request_id);
    RegisterPersonRequest {
        request_id: request_id.to_owned(),
        full_name: format!("测试人{n}"),
        gender: gender_of(&resident_id) as i32,
        birth_date: resident_id.birth_date().format("%Y-%m-%d").to_string(),
        resident_id: resident_id.as_str().to_owned(),
        region: Some(RegionCode {
            code: "110105".to_owned(),
        }),
        source_department: "rural_revitalization".to_owned(),
        ..RegisterPersonRequest::default()
    }
}

/// The gender a resident id encodes.
pub fn gender_of(id: &jiuzhu_identity::ResidentId) -> Gender {
    match id.sex() {
        jiuzhu_identity::Sex::Male => Gender::Male,
        jiuzhu_identity::Sex::Female => Gender::Female,
    }
}

/// A registration of `full_name` of 新场村 (110105) from `department`, with a resident id (and
/// the birth date and gender it encodes) derived from the request id.
pub fn villager(request_id: &str, full_name: &str, department: &str) -> RegisterPersonRequest {
    RegisterPersonRequest {
        full_name: full_name.to_owned(),
        village: "新场村".to_owned(),
        source_department: department.to_owned(),
        ..registration(request_id, 0)
    }
}

/// A valid resident id that depends only on `seed`.
pub fn resident_id_for(seed: &str) -> jiuzhu_identity::ResidentId {
    let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let base = chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap_or_default();
    let birth = base + chrono::Days::new(hash % 25_000);
    let sequence = u16::try_from((hash >> 32) % 1000).unwrap_or(0);
    jiuzhu_identity::ResidentId::compose("110105", birth, sequence).unwrap_or_else(|_| {
        unreachable!("a six-digit region, a date and a sequence always compose")
    })
}

/// (indexed persons, applied events) of a clues service's linkage index.
pub async fn linkage_status(clues: &Running) -> anyhow::Result<(i64, i64)> {
    let status = clues_client(clues)
        .await?
        .get_linkage_index_status(GetLinkageIndexStatusRequest {})
        .await?
        .into_inner();
    Ok((status.indexed_persons, status.applied_events))
}

/// Registers `count` persons through the registry's API (request ids `<prefix>-<n>`) and waits
/// until the clues service has applied that many events in all.
pub async fn register_and_index(
    registry: &Running,
    clues: &Running,
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    let mut client = registry_client(registry).await?;
    let before = linkage_status(clues).await?.1;
    for n in 0..count {
        client
            .register_person(registration(&format!("{prefix}-{n}"), n))
            .await?;
    }
    let wanted = before + i64::try_from(count)?;
    eventually(
        "the persons to be indexed",
        Duration::from_secs(60),
        || async { Ok((linkage_status(clues).await?.1 >= wanted).then_some(())) },
    )
    .await
}

/// Rebuilds the stopped registry's person view (`registry.persons`) from its own event store
/// after `damage` (SQL run first, e.g. a TRUNCATE), and returns a pool on its database with the
/// rebuild's (applied, total) counts.
pub async fn rebuild_person_view(
    namespace: &str,
    database: &TestDatabase,
    damage: &str,
) -> anyhow::Result<(sqlx::PgPool, (u64, u64))> {
    use jiuzhu_registry::Registry;
    let settings = jiuzhu_testkit::settings("registry", database, namespace);
    let pool = jiuzhu_runtime::connect::<Registry>(&settings).await?;
    sqlx::query(damage).execute(&pool).await?;
    let (context, components) = jiuzhu_runtime::assemble::<Registry>(pool.clone(), settings)?;
    let persons = components
        .projections()
        .iter()
        .find(|p| p.name() == "registry.persons")
        .ok_or_else(|| anyhow::anyhow!("registry has no person view"))?;
    let done = persons
        .rebuild_from_store(&context.store, &context.settings.consumer, Box::new(|_| {}))
        .await?;
    Ok((pool, (done.applied, done.total)))
}

/// A benchmark size from the environment (`BENCH_PERSONS=1000000`), or `default`.
pub fn bench_setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `check` until it returns `Some`, or fails after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() > limit {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Next offsets a consumer has applied, summed over partitions (records consumed, as offsets
/// are dense per partition).
pub async fn checkpoint_total(pool: &sqlx::PgPool, consumer: &str) -> anyhow::Result<i64> {
    let total: Option<i64> =
        sqlx::query_scalar("SELECT sum(next_offset)::bigint FROM checkpoints WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(pool)
            .await?;
    Ok(total.unwrap_or(0))
}

/// Every record of `topic` from the beginning: at least `expected`, plus whatever else arrives
/// until the topic has been quiet for a second (so duplicates are seen too). Reads by
/// consuming, not by watermarks: the development broker's high watermark undercounts records
/// produced in multi-record batches.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
) -> anyhow::Result<Vec<rdkafka::message::OwnedMessage>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("jiuzhu-test-reader-{}", uuid::Uuid::now_v7()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_arrival = Instant::now();
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            messages.push(message?.detach());
            last_arrival = Instant::now();
        } else if messages.len() >= expected && last_arrival.elapsed() > Duration::from_secs(1) {
            return Ok(messages);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "read {} of at least {expected} records of {topic}",
                messages.len()
            );
        }
    }
}

/// The fields an `INVALID_ARGUMENT` names (its `google.rpc.BadRequest` details), in order.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Service logs in a test's output when `JIUZHU_TEST_LOG` names a filter (e.g. `info,jiuzhu=debug`):
/// the way to see why a test waited.
pub fn log_if_asked() {
    if let Ok(filter) = std::env::var("JIUZHU_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The purpose tests state when they read personal data (it is recorded in the audit log).
pub const PURPOSE: &str = "automated test of the platform";

/// Rural revitalization's register of `county` (`persons` generated with `seed`), written to
/// `file` and imported into the registry at `registry_port` with the CLI as the department
/// would; returns the residents as the file has them.
pub fn import_register(
    registry_port: u16,
    file: &std::path::Path,
    persons: usize,
    seed: u64,
    county: &str,
) -> anyhow::Result<Vec<jiuzhu_demo::seed::Resident>> {
    let jiuzhu = jiuzhu_testkit::binary_path("jiuzhu")?;
    let generated = std::process::Command::new(&jiuzhu)
        .args(["gen", "registry", "--persons", &persons.to_string()])
        .args(["--seed", &seed.to_string(), "--county", county, "--out"])
        .arg(file)
        .status()?;
    anyhow::ensure!(generated.success(), "jiuzhu gen registry: {generated}");
    let registry = format!("https://127.0.0.1:{registry_port}");
    let imported = std::process::Command::new(&jiuzhu)
        .args(["registry", "import", "--department", "rural_revitalization"])
        .args(["--registry", &registry, "--quiet", "--certs"])
        .arg(jiuzhu_testkit::certs_dir()?)
        .args(["--as", "as-department_integrator.rural_revitalization"])
        .arg(file)
        .output()?;
    anyhow::ensure!(
        imported.status.code() == Some(0),
        "jiuzhu registry import ended {:?}: {}",
        imported.status.code(),
        String::from_utf8_lossy(&imported.stderr)
    );
    Ok(jiuzhu_demo::seed::read_residents(file)?)
}

/// A fresh database for `service` (one of the five), migrated from its template.
pub async fn service_database(service: &str) -> anyhow::Result<TestDatabase> {
    Ok(match service {
        "registry" => jiuzhu_testkit::fresh_database::<jiuzhu_registry::Registry>().await?,
        "clues" => jiuzhu_testkit::fresh_database::<jiuzhu_clues::Clues>().await?,
        "decisions" => jiuzhu_testkit::fresh_database::<jiuzhu_decisions::Decisions>().await?,
        "payments" => jiuzhu_testkit::fresh_database::<jiuzhu_payments::Payments>().await?,
        "followup" => jiuzhu_testkit::fresh_database::<jiuzhu_followup::Followup>().await?,
        other => anyhow::bail!("no service `{other}`"),
    })
}

/// The five services, in the order they start.
pub const SERVICES: [&str; 5] = ["registry", "clues", "decisions", "payments", "followup"];

/// A free port for each of the five services.
pub fn service_ports() -> anyhow::Result<std::collections::BTreeMap<&'static str, u16>> {
    SERVICES
        .iter()
        .map(|service| Ok((*service, jiuzhu_testkit::free_port()?)))
        .collect()
}

/// `https://127.0.0.1:<port>` of each of the five services.
pub fn endpoints(ports: &std::collections::BTreeMap<&'static str, u16>) -> jiuzhu_demo::Endpoints {
    let at = |service: &str| {
        format!(
            "https://127.0.0.1:{}",
            ports.get(service).copied().unwrap_or_default()
        )
    };
    jiuzhu_demo::Endpoints {
        registry: at("registry"),
        clues: at("clues"),
        decisions: at("decisions"),
        payments: at("payments"),
        followup: at("followup"),
    }
}

/// Starts `service`'s binary with its environment from [`process_environments`].
pub fn spawn_service(
    service: &'static str,
    environments: &std::collections::BTreeMap<&'static str, Vec<(String, String)>>,
) -> anyhow::Result<jiuzhu_testkit::ServiceProcess> {
    let environment = environments
        .get(service)
        .ok_or_else(|| anyhow::anyhow!("no environment for {service}"))?;
    Ok(jiuzhu_testkit::ServiceProcess::spawn(
        &format!("jiuzhu-{service}"),
        environment,
    )?)
}

/// Waits until the service on `port` reports SERVING: every task of it up, not merely the
/// port open.
pub async fn serving(port: u16, limit: Duration) -> TestResult {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    eventually(
        &format!("a service to serve on :{port}"),
        limit,
        || async move {
            let Ok(channel) = jiuzhu_testkit::channel(addr).await else {
                return Ok(None);
            };
            let status = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|answer| answer.into_inner().status);
            let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
            Ok((status.ok() == Some(serving)).then_some(()))
        },
    )
    .await
}

/// What differs between runs of the five services as processes.
pub struct ProcessOptions<'a> {
    pub namespace: &'a str,
    /// The OTLP endpoint, or empty for none.
    pub otlp: &'a str,
    /// Connections each process may hold (several platforms at once stay inside PostgreSQL's 100).
    pub max_connections: u32,
    /// Static group members `<prefix>-<service>`: a process that comes back takes its
    /// partitions back at once.
    pub instance_prefix: &'a str,
    /// The payment provider: its endpoint, how often payments polls and when it resends.
    pub provider: &'a str,
    pub provider_poll_ms: u32,
    pub resend_after_ms: u32,
    /// Further variables for every process.
    pub extra: Vec<(String, String)>,
}

/// A fresh database and the environment of each of the five services.
pub async fn process_environments(
    ports: &std::collections::BTreeMap<&'static str, u16>,
    options: &ProcessOptions<'_>,
) -> anyhow::Result<(
    std::collections::BTreeMap<&'static str, TestDatabase>,
    std::collections::BTreeMap<&'static str, Vec<(String, String)>>,
)> {
    let port = |service: &str| ports.get(service).copied().unwrap_or_default();
    let mut databases = std::collections::BTreeMap::new();
    let mut environments = std::collections::BTreeMap::new();
    for service in SERVICES {
        let database = service_database(service).await?;
        let mut environment = service_env(
            service,
            &database,
            port(service),
            options.namespace,
            options.otlp,
            port("registry"),
        );
        environment.extend([
            (
                format!("JIUZHU__{}__MAX_CONNECTIONS", service.to_uppercase()),
                options.max_connections.to_string(),
            ),
            (
                "JIUZHU__KAFKA__INSTANCE_ID".to_owned(),
                format!("{}-{service}", options.instance_prefix),
            ),
        ]);
        environment.extend(options.extra.iter().cloned());
        if service == "payments" {
            for (key, value) in [
                ("ENDPOINT", options.provider.to_owned()),
                ("POLL_MS", options.provider_poll_ms.to_string()),
                ("REQUEST_TIMEOUT_MS", "2000".to_owned()),
                ("RESEND_AFTER_MS", options.resend_after_ms.to_string()),
            ] {
                environment.push((format!("JIUZHU__PROVIDER__{key}"), value));
            }
        }
        environments.insert(service, environment);
        databases.insert(service, database);
    }
    Ok((databases, environments))
}

/// Announces `persons` as registered on the registry topic of `namespace`, as the registry's
/// relay publishes a registration (without the sealed identity), for a service tested without
/// a running registry that must know its persons exist.
pub async fn announce_registered(namespace: &str, persons: &[String]) -> TestResult {
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", jiuzhu_testkit::kafka_brokers())
        .create()?;
    let kafka = jiuzhu_messaging::KafkaSettings {
        brokers: jiuzhu_testkit::kafka_brokers(),
        ..jiuzhu_messaging::KafkaSettings::default()
    };
    let topic = format!("{namespace}{}", jiuzhu_messaging::service_topic("registry"));
    jiuzhu_messaging::ensure_topics(&kafka, &[topic]).await?;
    for person in persons {
        let registered = jiuzhu_proto::registry::PersonRegistered {
            person_id: person.clone(),
            ..Default::default()
        };
        publish(&producer, namespace, "registry", person, &registered).await?;
    }
    Ok(())
}

/// A new person id, announced as registered in `namespace` (see [`announce_registered`]).
pub async fn announced_person(namespace: &str) -> anyhow::Result<String> {
    let person = uuid::Uuid::now_v7().to_string();
    announce_registered(namespace, std::slice::from_ref(&person)).await?;
    Ok(person)
}

/// Opens a relief case, waiting (up to 30 s) while the decisions service has not yet heard of
/// the person's registration (it answers NOT_FOUND until the registry's event arrives).
pub async fn open_case_once_known(
    client: &mut jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient<Channel>,
    request: jiuzhu_proto::decisions::OpenCaseRequest,
) -> anyhow::Result<jiuzhu_proto::decisions::OpenCaseResponse> {
    eventually(
        "decisions to know the person",
        Duration::from_secs(30),
        || {
            let (mut client, request) = (client.clone(), request.clone());
            async move {
                match client.open_case(request).await {
                    Ok(opened) => Ok(Some(opened.into_inner())),
                    Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                    Err(status) => Err(status.into()),
                }
            }
        },
    )
    .await
}

/// Waits (up to a minute) until the case shows a referral in `status`, and returns it.
pub async fn referral_in(
    client: &jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient<Channel>,
    case_id: &str,
    status: jiuzhu_proto::decisions::ReferralStatus,
) -> anyhow::Result<jiuzhu_proto::decisions::ReferralUpdated> {
    let case = case_when(client, case_id, "the referral's answer", |case| {
        case.referrals.iter().any(|r| r.status == status as i32)
    })
    .await?;
    case.referrals
        .into_iter()
        .find(|r| r.status == status as i32)
        .ok_or_else(|| anyhow::anyhow!("no referral"))
}

/// Waits (up to a minute) until `ready` holds of the case as `GetCase` shows it, and returns it.
pub async fn case_when(
    client: &jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient<Channel>,
    case_id: &str,
    what: &str,
    ready: impl Fn(&jiuzhu_proto::decisions::ReliefCase) -> bool,
) -> anyhow::Result<jiuzhu_proto::decisions::ReliefCase> {
    let ready = &ready;
    eventually(what, Duration::from_secs(60), || {
        let (mut client, case_id) = (client.clone(), case_id.to_owned());
        async move {
            let case = client
                .get_case(jiuzhu_proto::decisions::GetCaseRequest {
                    purpose: PURPOSE.to_owned(),
                    case_id,
                })
                .await?
                .into_inner()
                .relief_case
                .unwrap_or_default();
            Ok(ready(&case).then_some(case))
        }
    })
    .await
}

/// The locked npm packages of `dir` (a directory of the repository with `package.json` and
/// `package-lock.json`), installed from the npm registry once per lock file under
/// `~/.cache/jiuzhu/<cache>`; the `node_modules` directory, for `NODE_PATH`.
pub fn npm_packages(dir: &str, cache: &str) -> anyhow::Result<std::path::PathBuf> {
    let home = std::env::var("HOME")?;
    let installed_at = std::path::PathBuf::from(home)
        .join(".cache/jiuzhu")
        .join(cache);
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let lock = std::fs::read(source.join("package-lock.json"))?;
    let stamp = installed_at.join("installed-lock.json");
    if std::fs::read(&stamp).ok().as_ref() != Some(&lock) {
        std::fs::create_dir_all(&installed_at)?;
        std::fs::copy(
            source.join("package.json"),
            installed_at.join("package.json"),
        )?;
        std::fs::write(installed_at.join("package-lock.json"), &lock)?;
        let status = std::process::Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&installed_at)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "npm ci in {} failed",
            installed_at.display()
        );
        std::fs::write(&stamp, &lock)?;
    }
    Ok(installed_at.join("node_modules"))
}
