//! What every service gets from the runtime: health, reflection (and `jiuzhu call` through it),
//! clean stop, snapshots, and its retained events sent again to a broker that lost them.

use jiuzhu_eventstore::{Aggregate, Begun, CommandRequest, EventStore, Snapshotting};
use jiuzhu_proto::registry::PersonRegistered;
use jiuzhu_registry::Registry;
use jiuzhu_registry::domain::RegistryEvent;
use jiuzhu_testkit::unique_namespace;
use jiuzhu_tests::{TestResult, start};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_report_health_and_describe_themselves_by_reflection() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let channel = jiuzhu_testkit::channel(registry.running.grpc_addr).await?;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "jiuzhu.registry.v1.RegistryService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "health of `{service}`"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "jiuzhu.nothing.v1.Nothing".to_owned(),
        })
        .await;
    assert_eq!(unknown.err().map(|s| s.code()), Some(tonic::Code::NotFound));

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await?.and_then(|r| r.message_response)
    else {
        anyhow::bail!("reflection did not list services");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    // What this port serves, and nothing of the other services' ports.
    for served in [
        "jiuzhu.registry.v1.RegistryService",
        "jiuzhu.audit.v1.AuditService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.contains(&served.to_owned()), "{served}: {names:?}");
    }
    for elsewhere in [
        "jiuzhu.decisions.v1.DecisionsService",
        "jiuzhu.clues.v1.CluesService",
        "jiuzhu.payments.v1.PaymentsService",
        "jiuzhu.gateway.v1.PaymentGatewayService",
    ] {
        assert!(
            !names.contains(&elsewhere.to_owned()),
            "{elsewhere}: {names:?}"
        );
    }
    // Stock clients that speak v1alpha get the same list.
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
        let channel = jiuzhu_testkit::channel(registry.running.grpc_addr).await?;
        let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(AlphaRequest::ListServices(String::new())),
        };
        let mut responses = Alpha::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await?
            .into_inner();
        let Some(AlphaResponse::ListServicesResponse(list)) =
            responses.message().await?.and_then(|r| r.message_response)
        else {
            anyhow::bail!("reflection v1alpha did not list services");
        };
        let mut alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        alpha.sort();
        assert_eq!(alpha, names);
    }

    let addr = registry.running.grpc_addr;
    registry.running.stop().await;
    let after = jiuzhu_testkit::channel(addr).await;
    assert!(
        after.is_err(),
        "the server still accepts connections after stop"
    );
    Ok(())
}

/// Counts registrations; snapshots as the count in decimal.
#[derive(Debug, Default, PartialEq)]
struct Tally(u64);

impl Aggregate for Tally {
    type Event = RegistryEvent;
    fn apply(&mut self, _event: &RegistryEvent) {
        self.0 += 1;
    }
}

impl Snapshotting for Tally {
    fn to_snapshot(&self) -> Vec<u8> {
        self.0.to_string().into_bytes()
    }
    fn from_snapshot(bytes: &[u8]) -> Result<Self, String> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Tally)
            .ok_or_else(|| "not a decimal count".to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_shorten_loading_and_give_the_same_state() -> TestResult {
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let store = EventStore::new(
        sqlx::PgPool::connect(&database.url).await?,
        "registry",
        "unused",
    );
    let stream = uuid::Uuid::now_v7().to_string();
    let event = RegistryEvent::PersonRegistered(PersonRegistered::default());
    for n in 0..10i64 {
        let Begun::Fresh(mut work) = store
            .begin_command(CommandRequest::new(&format!("snap-{n}"), "test", &[]))
            .await?
        else {
            anyhow::bail!("fresh request replayed");
        };
        work.append(&stream, n, &stream, std::slice::from_ref(&event))
            .await?;
        work.commit(Vec::new()).await?;
        if n == 5 {
            let (tally, version) = store.load_aggregate::<Tally>(&stream).await?;
            store.save_snapshot(&stream, version, &tally).await?;
        }
    }
    // A stale snapshot never replaces a newer one.
    store.save_snapshot(&stream, 2, &Tally(2)).await?;
    let (from_snapshot, version) = store.load_snapshotted::<Tally>(&stream).await?;
    let (from_events, _) = store.load_aggregate::<Tally>(&stream).await?;
    assert_eq!((from_snapshot.0, version), (10, 10));
    assert_eq!(from_snapshot, from_events);

    sqlx::query("UPDATE snapshots SET state = 'garbage'")
        .execute(store.pool())
        .await?;
    assert!(
        store.load_snapshotted::<Tally>(&stream).await.is_err(),
        "a corrupt snapshot is an error, not a silent wrong state"
    );
    Ok(())
}

/// A broker that lost its log (the development broker restarted empty, a cluster rebuilt) gets
/// the events the outbox still retains once more, in order; a broker that kept them does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_lost_the_topic_gets_the_retained_events_again() -> TestResult {
    use jiuzhu_testkit::kafka_brokers;
    use rdkafka::admin::{AdminClient, AdminOptions};
    jiuzhu_tests::log_if_asked();
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let mut client = jiuzhu_tests::registry_client(&registry.running).await?;
    for n in 0..3 {
        client
            .register_person(jiuzhu_tests::registration(&format!("lost-{n}"), n))
            .await?;
    }
    let topic = format!("{ns}{}", jiuzhu_messaging::service_topic("registry"));
    let keys = |records: &[rdkafka::message::OwnedMessage]| -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = records
            .iter()
            .filter_map(|r| rdkafka::Message::key(r).map(<[u8]>::to_vec))
            .collect();
        keys.sort();
        keys
    };
    let sent = keys(&jiuzhu_tests::read_topic(&kafka_brokers(), &topic, 3)?);
    registry.running.stop().await;

    // The broker loses the topic while the service is down.
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    for deleted in admin
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await?
    {
        deleted.map_err(|(topic, code)| anyhow::anyhow!("deleting {topic}: {code}"))?;
    }
    let again = jiuzhu_tests::restart::<Registry>(&ns, &registry.database).await?;
    let resent = jiuzhu_tests::read_topic(&kafka_brokers(), &topic, 3)?;
    assert_eq!(keys(&resent), sent, "every retained event, once");
    again.stop().await;

    // Restarted against a broker that kept the topic: nothing is sent twice.
    let third = jiuzhu_tests::restart::<Registry>(&ns, &registry.database).await?;
    let unchanged = jiuzhu_tests::read_topic(&kafka_brokers(), &topic, 3)?;
    assert_eq!(keys(&unchanged), sent, "nothing sent again");
    third.stop().await;
    Ok(())
}

/// `jiuzhu call`: any unary RPC by reflection with JSON in and out; a request that is not the
/// method's message, or that the service refuses, ends with status 1 and says why (for a bad
/// request, every field the service named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jiuzhu_call_makes_unary_calls_by_reflection_and_names_what_was_wrong() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let url = format!("https://{}", registry.running.grpc_addr);
    let certs = jiuzhu_testkit::certs_dir()?;
    let call = |args: &[&str]| -> anyhow::Result<(Option<i32>, String, String)> {
        let output = std::process::Command::new(jiuzhu_testkit::binary_path("jiuzhu")?)
            .arg("call")
            .arg(&url)
            .args(args)
            .arg("--certs")
            .arg(&certs)
            .args(["--as", jiuzhu_testkit::CLIENT])
            .output()?;
        Ok((
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    };

    // The CLI has no identity of its own: without `--as` it asks for one.
    let unchosen = std::process::Command::new(jiuzhu_testkit::binary_path("jiuzhu")?)
        .args(["call", &url, "list", "--certs"])
        .arg(&certs)
        .output()?;
    let said = String::from_utf8_lossy(&unchosen.stderr);
    assert_eq!(unchosen.status.code(), Some(1), "{said}");
    assert!(said.contains("--as NAME"), "{said}");

    let (code, listed, _) = call(&["list"])?;
    assert_eq!(code, Some(0));
    assert!(
        listed.contains("jiuzhu.registry.v1.RegistryService"),
        "{listed}"
    );

    let registration = serde_json::json!({
        "requestId": "call-1",
        "fullName": "王秀英",
        "gender": "GENDER_FEMALE",
        "birthDate": "1949-12-31",
        "residentId": "11010519491231002X",
        "region": {"code": "110105"},
        "sourceDepartment": "rural_revitalization",
    })
    .to_string();
    let method = "jiuzhu.registry.v1.RegistryService/RegisterPerson";
    let (code, answer, stderr) = call(&[method, &registration])?;
    assert_eq!(code, Some(0), "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    assert!(
        answer["personId"].as_str().is_some_and(|id| id.len() == 36),
        "{answer}"
    );

    let (code, _, stderr) = call(&[method, r#"{"requestId": "call-2", "nickname": "x"}"#])?;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("nickname"), "{stderr}");

    let (code, _, stderr) = call(&[method, r#"{"requestId": "call-3"}"#])?;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("InvalidArgument"), "{stderr}");
    for field in ["full_name", "region.code"] {
        assert!(stderr.contains(field), "{field} not named: {stderr}");
    }

    let (code, _, stderr) = call(&["jiuzhu.registry.v1.RegistryService/Nothing"])?;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no method Nothing"), "{stderr}");
    registry.running.stop().await;
    Ok(())
}

/// Readiness tells the truth: while the database refuses connections `/readyz` answers 503
/// naming it and gRPC health says NOT_SERVING; once it answers again, both recover by
/// themselves. `/livez` answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_recovers_with_it() -> TestResult {
    let ns = unique_namespace();
    let registry = jiuzhu_tests::start_with::<Registry>(&ns, |s| {
        s.service.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await?;
    let metrics = registry
        .running
        .metrics_addr
        .ok_or_else(|| anyhow::anyhow!("no metrics port"))?;
    let mut health = HealthClient::new(jiuzhu_testkit::channel(registry.running.grpc_addr).await?);
    let status = |mut health: HealthClient<tonic::transport::Channel>| async move {
        anyhow::Ok(
            health
                .check(HealthCheckRequest {
                    service: "jiuzhu.registry.v1.RegistryService".to_owned(),
                })
                .await?
                .into_inner()
                .status,
        )
    };
    let wait = std::time::Duration::from_secs(90);
    jiuzhu_tests::eventually("ready", wait, || async {
        Ok((jiuzhu_tests::http_get(metrics, "/readyz")
            .await?
            .0
            .contains(" 200 "))
        .then_some(()))
    })
    .await?;
    assert_eq!(status(health.clone()).await?, ServingStatus::Serving as i32);
    // The calls just made are in the latency histogram, by method and status code, and the
    // exposition is OpenMetrics (it ends with `# EOF`).
    let (line, scraped) = jiuzhu_tests::http_get(metrics, "/metrics").await?;
    assert!(line.contains(" 200 "), "{line}");
    for expected in [
        "# TYPE jiuzhu_rpc_server_duration_seconds histogram",
        "jiuzhu_rpc_server_duration_seconds_count{rpc_method=\"/grpc.health.v1.Health/Check\",rpc_grpc_status_code=\"0\"}",
        "jiuzhu_build_info{service=\"registry\",version=",
        "# TYPE jiuzhu_task_restarts counter",
        "jiuzhu_task_restarts_total{service=\"registry\"} 0",
        "jiuzhu_outbox_oldest_unpublished_seconds{service=\"registry\"}",
        "# TYPE process_cpu_seconds counter",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(scraped.contains(expected), "{expected} not in:\n{scraped}");
    }
    assert!(scraped.ends_with("# EOF\n"), "{scraped}");
    // Once its consumers have applied the registry's own topic, they are behind by nothing.
    jiuzhu_tests::registry_client(&registry.running)
        .await?
        .register_person(jiuzhu_tests::registration("lag-1", 1))
        .await?;
    let lag = jiuzhu_tests::eventually("the consumers' lag", wait, || async {
        let (_, scraped) = jiuzhu_tests::http_get(metrics, "/metrics").await?;
        Ok(scraped
            .lines()
            .find(|l| {
                l.starts_with("jiuzhu_consumer_lag_messages{")
                    && l.contains("registry.events.v1")
                    && l.ends_with(" 0")
            })
            .map(str::to_owned))
    })
    .await?;
    assert!(lag.contains("consumer=\""), "{lag}");
    // The relay counts what it published (the registration's events, at least).
    let (_, scraped) = jiuzhu_tests::http_get(metrics, "/metrics").await?;
    let published: f64 = scraped
        .lines()
        .find_map(|l| l.strip_prefix("jiuzhu_outbox_published_total{service=\"registry\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(published >= 1.0, "relay throughput not counted:\n{scraped}");

    // The database stops taking connections and drops the service's.
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(registry.running.store.pool())
        .await?;
    let admin = sqlx::PgPool::connect(&jiuzhu_testkit::admin_url()).await?;
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await?;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&admin)
        .await?;
    let (line, body) = jiuzhu_tests::eventually("not ready", wait, || async {
        let (line, body) = jiuzhu_tests::http_get(metrics, "/readyz").await?;
        Ok(line.contains(" 503 ").then_some((line, body)))
    })
    .await?;
    assert!(body.contains("database: "), "{line}: {body}");
    assert_eq!(
        status(health.clone()).await?,
        ServingStatus::NotServing as i32
    );
    assert!(
        jiuzhu_tests::http_get(metrics, "/livez")
            .await?
            .0
            .contains(" 200 ")
    );

    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true"
    ))
    .execute(&admin)
    .await?;
    jiuzhu_tests::eventually("ready again", wait, || async {
        Ok((jiuzhu_tests::http_get(metrics, "/readyz")
            .await?
            .0
            .contains(" 200 "))
        .then_some(()))
    })
    .await?;
    assert_eq!(status(health.clone()).await?, ServingStatus::Serving as i32);
    health = HealthClient::new(jiuzhu_testkit::channel(registry.running.grpc_addr).await?);
    assert_eq!(status(health).await?, ServingStatus::Serving as i32);
    registry.running.stop().await;
    Ok(())
}

/// PostgreSQL over TLS: with `sslmode=verify-full` a service checks the server's certificate
/// and name, and its connections are encrypted as the server itself sees them (`pg_stat_ssl`);
/// against an authority that did not sign the server's certificate it refuses to start, saying
/// why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_is_reached_over_verified_tls() -> TestResult {
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Registry>().await?;
    let admin = sqlx::PgPool::connect(&jiuzhu_testkit::admin_url()).await?;
    let (ssl, certificate): (String, String) =
        sqlx::query_as("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
            .fetch_one(&admin)
            .await?;
    anyhow::ensure!(
        ssl == "on",
        "the test PostgreSQL server has ssl = {ssl}; this test needs its TLS"
    );
    // The name in the server's certificate (Debian's is made for localhost, self-signed: it
    // is its own authority).
    let verified = |authority: &str| {
        let url = database.url.replacen("@127.0.0.1:", "@localhost:", 1);
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}sslmode=verify-full&sslrootcert={authority}")
    };
    let registry = jiuzhu_tests::restart_with::<Registry>(&ns, &database, |s| {
        s.service.database_url = jiuzhu_config::Secret::new(verified(&certificate));
    })
    .await?;
    jiuzhu_tests::registry_client(&registry)
        .await?
        .register_person(jiuzhu_tests::registration("tls-1", 1))
        .await?;
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1",
    )
    .bind(&database.name)
    .fetch_one(&admin)
    .await?;
    assert!(
        encrypted > 0,
        "no encrypted connection to {}",
        database.name
    );
    assert_eq!(plain, 0, "the service also holds plaintext connections");
    registry.stop().await;

    let stranger = jiuzhu_testkit::certs_dir()?.join("ca.pem");
    let refused = jiuzhu_tests::restart_with::<Registry>(&ns, &database, |s| {
        s.service.database_url =
            jiuzhu_config::Secret::new(verified(&stranger.display().to_string()));
    })
    .await;
    let error = match refused {
        Ok(running) => {
            running.stop().await;
            anyhow::bail!("started against a server its authority did not sign");
        }
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.to_lowercase().contains("certificate") || error.contains("UnknownIssuer"),
        "{error}"
    );
    Ok(())
}
