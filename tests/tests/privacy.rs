//! No personal data in logs or traces: the whole path (registry, a clue, a relief case, a payee
//! and a payment through the simulator, the follow-up plan, the person file) runs in this
//! process under a subscriber that captures every log line and every span with its fields, at
//! debug level; a known resident ID number, phone number or bank card in the capture fails it.
//! The registry's and clue acquisition's tables hold them only sealed or as blind indexes.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiuzhu_clues::Clues;
use jiuzhu_decisions::Decisions;
use jiuzhu_followup::Followup;
use jiuzhu_payments::Payments;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::clues::{Harm, PartyRole, ReportPartyRequest};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::followup::GetPlanRequest;
use jiuzhu_proto::followup::followup_service_client::FollowupServiceClient;
use jiuzhu_proto::payments::DisbursementState;
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::registry::search_persons_request::Query;
use jiuzhu_proto::registry::{GetPersonFileRequest, SearchPersonsRequest};
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{channel, free_port, unique_namespace};
use jiuzhu_tests::payments::{
    ORDINARY, Paysim, allocate, approve_case, card, disbursement_in, provider_settings,
    register_payee,
};
use jiuzhu_tests::{PURPOSE, TestResult, eventually, registry_client, start, start_with, villager};
use tracing_subscriber::fmt::format::FmtSpan;

const WAIT: Duration = Duration::from_secs(60);

/// Everything the subscriber writes, kept.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut kept) = self.0.lock() {
            kept.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).into_owned())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_id_number_phone_or_bank_card_reaches_logs_or_spans() -> TestResult {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,h2=info,hyper=info,tower=info,rustls=info",
        ))
        .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .map_err(|e| anyhow::anyhow!("a subscriber was already set: {e}"))?;

    let ns = unique_namespace();
    let payments_port = free_port()?;
    let simulator = Paysim::spawn(Some(&format!("https://127.0.0.1:{payments_port}")), &[]).await?;
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let followup = start::<Followup>(&ns).await?;
    let endpoint = simulator.endpoint.clone();
    let payments = start_with::<Payments>(&ns, |s| {
        provider_settings(s, &endpoint, payments_port, 2_000)
    })
    .await?;

    let phone = "13985011234";
    let account = card(ORDINARY, 4_242);
    let mut registration = villager("privacy-zhang", "张桂芳", "rural_revitalization");
    registration.phone = phone.to_owned();
    let resident_id = registration.resident_id.clone();
    let mut people = registry_client(&registry.running).await?;
    let person_id = people
        .register_person(registration)
        .await?
        .into_inner()
        .person_id;

    CluesServiceClient::new(channel(clues.running.grpc_addr).await?)
        .report_party(ReportPartyRequest {
            request_id: "privacy-party".to_owned(),
            case_no: "(2026)京0105刑初91号".to_owned(),
            party_ref: "P1".to_owned(),
            procuratorate: "北京市朝阳区人民检察院".to_owned(),
            charge: "故意伤害罪".to_owned(),
            incident_date: "2026-03-01".to_owned(),
            role: PartyRole::Victim as i32,
            harm: Some(Harm {
                disability_grade: 6,
                ..Harm::default()
            }),
            full_name: "张桂芳".to_owned(),
            id_number: resident_id.clone(),
            phone: phone.to_owned(),
            region: Some(RegionCode {
                code: "110105".to_owned(),
            }),
            ..ReportPartyRequest::default()
        })
        .await?;
    let found = eventually("the person found by resident id", WAIT, || {
        let (mut people, resident_id) = (people.clone(), resident_id.clone());
        async move {
            let persons = people
                .search_persons(SearchPersonsRequest {
                    purpose: PURPOSE.to_owned(),
                    query: Some(Query::ResidentId(resident_id)),
                    ..SearchPersonsRequest::default()
                })
                .await?
                .into_inner()
                .persons;
            Ok((!persons.is_empty()).then_some(persons))
        }
    })
    .await?;
    assert_eq!(found[0].person_id, person_id);

    let mut money = PaymentsServiceClient::new(channel(payments.running.grpc_addr).await?);
    register_payee(&money, "privacy", &person_id, "张桂芳", &account).await?;
    allocate(&mut money, "privacy", 2_000_000).await?;
    let case_id = approve_case(
        decisions.running.grpc_addr,
        "991",
        &person_id,
        jiuzhu_tests::payments::PROCURATORATE,
        500_000,
    )
    .await?;
    disbursement_in(&money, &case_id, DisbursementState::Succeeded).await?;
    let care = FollowupServiceClient::new(channel(followup.running.grpc_addr).await?);
    eventually("the follow-up plan", WAIT, || {
        let (mut care, case_id) = (care.clone(), case_id.clone());
        async move {
            Ok(care
                .get_plan(GetPlanRequest {
                    purpose: PURPOSE.to_owned(),
                    case_id,
                    ..GetPlanRequest::default()
                })
                .await
                .ok())
        }
    })
    .await?;
    people
        .get_person_file(GetPersonFileRequest {
            purpose: PURPOSE.to_owned(),
            person_id: person_id.clone(),
            ..GetPersonFileRequest::default()
        })
        .await?;
    let by_phone = people
        .search_persons(SearchPersonsRequest {
            purpose: PURPOSE.to_owned(),
            query: Some(Query::Phone("139-8501-1234".to_owned())),
            ..SearchPersonsRequest::default()
        })
        .await?
        .into_inner()
        .persons;
    assert_eq!(by_phone.len(), 1);
    assert_eq!(by_phone[0].person_id, person_id);
    assert_eq!(
        by_phone[0].resident_id, resident_id,
        "the API opens the identity"
    );

    // The registry's tables hold neither the number nor the phone, in any column.
    let pool = sqlx::PgPool::connect(&registry.database.url).await?;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT p::text FROM persons p UNION ALL SELECT c::text FROM resident_id_claims c",
    )
    .fetch_all(&pool)
    .await?;
    assert!(rows.len() >= 2, "{rows:?}");
    for row in &rows {
        assert!(
            !row.contains(&resident_id) && !row.contains(phone),
            "personal data in the clear: {row}"
        );
    }
    pool.close().await;
    // Nor do clue acquisition's party records (sealed under the party's key) or their blocks.
    let pool = sqlx::PgPool::connect(&clues.database.url).await?;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT p::text FROM party_identities p UNION ALL SELECT b::text FROM party_blocks b",
    )
    .fetch_all(&pool)
    .await?;
    assert!(!rows.is_empty());
    for row in &rows {
        assert!(
            !row.contains(&resident_id) && !row.contains(phone) && !row.contains("张桂芳"),
            "a party's personal data in the clear: {row}"
        );
    }
    pool.close().await;
    for started in [payments, followup, decisions, clues, registry] {
        started.running.stop().await;
    }

    let text = capture.text();
    // The capture saw the work: spans of the calls and the services' own lines.
    for expected in ["RegisterPerson", "ReportParty", "serving gRPC", &person_id] {
        assert!(text.contains(expected), "the capture lacks `{expected}`");
    }
    for (what, secret) in [
        ("resident ID number", resident_id.as_str()),
        ("phone number", phone),
        ("bank card", account.as_str()),
    ] {
        let line = text.lines().find(|line| line.contains(secret));
        assert!(line.is_none(), "a {what} in the logs: {line:?}");
    }
    assert!(text.lines().count() > 200, "{} lines", text.lines().count());
    Ok(())
}
