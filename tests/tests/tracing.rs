//! (7) One trace follows a request from an agency's gRPC call through the registry's outbox and
//! Kafka into the clues service's projection. The services run as real processes exporting
//! OTLP over TLS to an in-process receiver that speaks nothing else (the exporter checks the
//! receiver's certificate against the authority it is given).

use std::time::Duration;

use jiuzhu_clues::Clues;
use jiuzhu_proto::clues::GetLinkageIndexStatusRequest;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::registry::BulkUpsertPersonsRequest;
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{OtlpReceiver, ServiceProcess, fresh_database, unique_namespace};
use jiuzhu_tests::{TestResult, eventually, registration, service_env};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_spans_the_grpc_call_the_kafka_hop_and_the_other_services_projection()
-> TestResult {
    let receiver = OtlpReceiver::start_tls().await?;
    assert!(receiver.endpoint.starts_with("https://"));
    let ns = unique_namespace();
    let registry_db = fresh_database::<Registry>().await?;
    let clues_db = fresh_database::<Clues>().await?;
    let (registry_port, clues_port) = (jiuzhu_testkit::free_port()?, jiuzhu_testkit::free_port()?);
    let collector_ca = (
        "JIUZHU__TELEMETRY__OTLP_CA_FILE".to_owned(),
        jiuzhu_testkit::certs_dir()?
            .join("ca.pem")
            .display()
            .to_string(),
    );
    let mut registry_env = service_env(
        "registry",
        &registry_db,
        registry_port,
        &ns,
        &receiver.endpoint,
        registry_port,
    );
    registry_env.push(collector_ca.clone());
    let registry = ServiceProcess::spawn("jiuzhu-registry", &registry_env)?;
    let mut clues_env = service_env(
        "clues",
        &clues_db,
        clues_port,
        &ns,
        &receiver.endpoint,
        registry_port,
    );
    clues_env.push(collector_ca);
    let clues = ServiceProcess::spawn("jiuzhu-clues", &clues_env)?;

    let registry_addr = std::net::SocketAddr::from(([127, 0, 0, 1], registry_port));
    let mut registry_client = eventually("the registry process to serve", WAIT, || async move {
        let channel = jiuzhu_testkit::channel(registry_addr).await.ok();
        Ok(channel.map(RegistryServiceClient::new))
    })
    .await?;
    let clues_addr = std::net::SocketAddr::from(([127, 0, 0, 1], clues_port));
    let clues_client = eventually("the clues process to serve", WAIT, || async move {
        let channel = jiuzhu_testkit::channel(clues_addr).await.ok();
        Ok(channel.map(CluesServiceClient::new))
    })
    .await?;

    // The agency's system starts the trace and sends its context, as a traced client would.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let mut request = tonic::Request::new(registration("traced-1", 1));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse()?,
    );
    let answer = registry_client.register_person(request).await?;
    // The answer names its trace, so a caller can hand an operator the id.
    let traceresponse = answer
        .metadata()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        traceresponse.starts_with(&format!("00-{trace_id}-")),
        "traceresponse `{traceresponse}`"
    );
    // An import's events stay in the import call's trace (its answers are streamed after the
    // handler returned).
    let import_trace = uuid::Uuid::new_v4().simple().to_string();
    let from = registration("traced-import", 2);
    let mut import = tonic::Request::new(futures::stream::iter([BulkUpsertPersonsRequest {
        source_department: "civil_affairs".to_owned(),
        records: vec![jiuzhu_tests::person_record("TR-1", 1, &from)],
    }]));
    import.metadata_mut().insert(
        "traceparent",
        format!("00-{import_trace}-00f067aa0ba902b7-01").parse()?,
    );
    let mut answers = registry_client
        .bulk_upsert_persons(import)
        .await?
        .into_inner();
    while answers.message().await?.is_some() {}
    // A refused call is traced with its status code too.
    let refused_trace = uuid::Uuid::new_v4().simple().to_string();
    let mut lookup = tonic::Request::new(jiuzhu_proto::registry::GetPersonRequest {
        person_id: uuid::Uuid::now_v7().to_string(),
        purpose: jiuzhu_tests::PURPOSE.to_owned(),
        as_of: String::new(),
    });
    lookup.metadata_mut().insert(
        "traceparent",
        format!("00-{refused_trace}-00f067aa0ba902b7-01").parse()?,
    );
    let missing = registry_client.get_person(lookup).await.err();
    assert_eq!(missing.map(|s| s.code()), Some(tonic::Code::NotFound));
    eventually("clues to apply the event", WAIT, || {
        let mut client = clues_client.clone();
        async move {
            let status = client
                .get_linkage_index_status(GetLinkageIndexStatusRequest {})
                .await?
                .into_inner();
            Ok((status.indexed_persons == 2).then_some(()))
        }
    })
    .await?;

    // A clean SIGTERM flushes the exporters.
    assert!(
        registry.terminate().await?,
        "registry did not exit cleanly on SIGTERM"
    );
    assert!(
        clues.terminate().await?,
        "clues did not exit cleanly on SIGTERM"
    );

    let (spans, names) = receiver.trace(&trace_id);
    let server = spans
        .iter()
        .find(|s| s.service_name == "jiuzhu-registry" && s.name.ends_with("/RegisterPerson"))
        .ok_or_else(|| anyhow::anyhow!("no registry server span in {names:?}"))?;
    assert_eq!(
        server.parent_span_id,
        jiuzhu_testkit::hex_bytes("00f067aa0ba902b7").unwrap_or_default(),
        "the server span continues the caller's trace"
    );
    assert_eq!(
        server
            .attributes
            .get("rpc.grpc.status_code")
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(
        server.attributes.get("trace_id"),
        Some(&trace_id),
        "log lines in the call name the trace"
    );
    let (refused, names) = receiver.trace(&refused_trace);
    let refused = refused
        .iter()
        .find(|s| s.service_name == "jiuzhu-registry" && s.name.ends_with("/GetPerson"))
        .ok_or_else(|| anyhow::anyhow!("no span of the refused call in {names:?}"))?;
    assert_eq!(
        refused
            .attributes
            .get("rpc.grpc.status_code")
            .map(String::as_str),
        Some("5"),
        "NOT_FOUND"
    );
    let (imported, names) = receiver.trace(&import_trace);
    for (service, name) in [
        ("jiuzhu-registry", "import batch"),
        ("jiuzhu-registry", "send "),
        ("jiuzhu-clues", "process "),
    ] {
        assert!(
            imported
                .iter()
                .any(|s| s.service_name == service && s.name.starts_with(name)),
            "no {service} `{name}…` span in the import's trace: {names:?}"
        );
    }
    // The audit record of the (refused) personal-data read names the caller's trace.
    let audit_pool = sqlx::PgPool::connect(&registry_db.url).await?;
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT outcome, trace_id FROM audit_log WHERE action LIKE '%/GetPerson' ORDER BY sequence",
    )
    .fetch_all(&audit_pool)
    .await?;
    assert_eq!(
        audited,
        vec![("NOT_FOUND".to_owned(), refused_trace.clone())],
        "audit records of GetPerson"
    );
    let publish = spans
        .iter()
        .find(|s| s.service_name == "jiuzhu-registry" && s.name.starts_with("send "))
        .ok_or_else(|| anyhow::anyhow!("no relay publish span in {names:?}"))?;
    let process = spans
        .iter()
        .find(|s| s.service_name == "jiuzhu-clues" && s.name.starts_with("process "))
        .ok_or_else(|| anyhow::anyhow!("no clues consumer span in {names:?}"))?;
    assert_eq!(
        process.parent_span_id, publish.span_id,
        "the consumer continues the publish span: {names:?}"
    );
    Ok(())
}
