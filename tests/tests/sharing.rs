//! Department sharing on real PostgreSQL and the broker: events of the services' topics reach
//! each department's `jiuzhu.share.<department>.v1` with exactly the agreed fields (every
//! message is decoded and any field outside the agreement fails the test), the person under a
//! pseudonym stable for the department and different across departments; an event type or a
//! referral no agreement names goes nowhere; and the sharing log and the person file say what
//! went to whom under which agreement version.

use std::collections::BTreeMap;
use std::time::Duration;

use jiuzhu_proto::common::{EventEnvelope, Money};
use jiuzhu_proto::decisions::{ReferralIssued, ReliefDistributed, ReliefMethod};
use jiuzhu_proto::followup::ReturnToPovertyRiskFlagged;
use jiuzhu_proto::payments::DisbursementOrdered;
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_proto::registry::{GetPersonFileRequest, ListSharingRequest};
use jiuzhu_registry::Registry;
use jiuzhu_sharing::Agreements;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{TestResult, eventually, publish, read_topic, registry_client, start, villager};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use rdkafka::producer::FutureProducer;

const WAIT: Duration = Duration::from_secs(60);

/// Every field path set in `message` ("amount.fen" for nested ones).
fn set_paths(message: &DynamicMessage, prefix: &str, found: &mut Vec<String>) {
    for (field, value) in message.fields() {
        let path = format!("{prefix}{}", field.name());
        match value {
            Value::Message(inner) => set_paths(inner, &format!("{path}."), found),
            _ => found.push(path),
        }
    }
}

/// Registers `name` of 新场村 and records them as registered poor from `from` (to `to`, when
/// given), waiting until the registry's view holds the status.
async fn poor_villager(
    people: &mut RegistryServiceClient<tonic::transport::Channel>,
    request_id: &str,
    name: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<String> {
    let person = people
        .register_person(villager(request_id, name, "rural_revitalization"))
        .await?
        .into_inner()
        .person_id;
    people
        .record_status(jiuzhu_proto::registry::RecordStatusRequest {
            request_id: format!("{request_id}-poor"),
            person_id: person.clone(),
            kind: jiuzhu_proto::registry::StatusKind::RegisteredPoor as i32,
            source_department: "rural_revitalization".to_owned(),
            reference: format!("黔乡振〔2026〕{request_id}"),
            effective_from: from.to_owned(),
            effective_to: to.to_owned(),
            ..Default::default()
        })
        .await?;
    eventually("the status in the registry", WAIT, || {
        let (mut people, person) = (people.clone(), person.clone());
        async move {
            match people
                .get_person(jiuzhu_proto::registry::GetPersonRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id: person,
                    ..Default::default()
                })
                .await
            {
                Ok(view) => Ok(view
                    .into_inner()
                    .person
                    .filter(|p| !p.statuses.is_empty())
                    .map(|_| ())),
                // The person view has not caught up yet.
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await?;
    Ok(person)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_department_receives_exactly_what_its_agreement_allows() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let mut people = registry_client(&registry.running).await?;
    // A registered poor household member: payments to her reach rural revitalization.
    let person = poor_villager(&mut people, "share-li", "李春花", "2026-01-01", "").await?;
    // A neighbour who was registered poor only until 31 May: relief paid to her on 1 June (the
    // day every event here happens) is not rural revitalization's to know, since an agreement's
    // statuses count on the event's day, whatever they are when the copy is made.
    let former = poor_villager(
        &mut people,
        "share-zhao",
        "赵秋菊",
        "2026-01-01",
        "2026-05-31",
    )
    .await?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    publish(
        &producer,
        &ns,
        "decisions",
        &former,
        &ReliefDistributed {
            case_id: uuid::Uuid::now_v7().to_string(),
            disbursement_id: uuid::Uuid::now_v7().to_string(),
            amount: Some(Money { fen: 500_000 }),
            provider_reference: "SIM00000002".to_owned(),
            person_id: former.clone(),
        },
    )
    .await?;
    let case_id = uuid::Uuid::now_v7().to_string();
    publish(
        &producer,
        &ns,
        "followup",
        &person,
        &ReturnToPovertyRiskFlagged {
            plan_id: uuid::Uuid::now_v7().to_string(),
            person_id: person.clone(),
            visit_number: 1,
            reasons: vec!["income_below_line".to_owned()],
            policy_version: "followup-2026.1".to_owned(),
            region_code: "520102".to_owned(),
        },
    )
    .await?;
    publish(
        &producer,
        &ns,
        "decisions",
        &person,
        &ReliefDistributed {
            case_id: case_id.clone(),
            disbursement_id: uuid::Uuid::now_v7().to_string(),
            amount: Some(Money { fen: 800_000 }),
            provider_reference: "SIM00000001".to_owned(),
            person_id: person.clone(),
        },
    )
    .await?;
    for department in ["education", "finance"] {
        publish(
            &producer,
            &ns,
            "decisions",
            &person,
            &ReferralIssued {
                case_id: case_id.clone(),
                referral_id: format!("{case_id}:{department}"),
                method: ReliefMethod::Education.into(),
                department: department.to_owned(),
                person_id: person.clone(),
                procuratorate: "贵阳市南明区人民检察院".to_owned(),
                subject: None,
                acknowledge_by: String::new(),
            },
        )
        .await?;
    }
    // No agreement names payments' orders: the payee's account goes nowhere.
    publish(
        &producer,
        &ns,
        "payments",
        &person,
        &DisbursementOrdered {
            disbursement_id: uuid::Uuid::now_v7().to_string(),
            case_id: case_id.clone(),
            person_id: person.clone(),
            payee_account_masked: "6222 **** 1234".to_owned(),
            ..DisbursementOrdered::default()
        },
    )
    .await?;

    // An overdue referral reminds the department it was addressed to, and only it.
    publish(
        &producer,
        &ns,
        "decisions",
        &person,
        &jiuzhu_proto::decisions::ReferralOverdue {
            case_id: case_id.clone(),
            referral_id: format!("{case_id}:education"),
            department: "education".to_owned(),
            acknowledge_by: "2026-11-09".to_owned(),
            procuratorate: "贵阳市南明区人民检察院".to_owned(),
        },
    )
    .await?;
    // Case progress of a poor party reaches rural revitalization too (its reason stays here).
    publish(
        &producer,
        &ns,
        "decisions",
        &person,
        &jiuzhu_proto::decisions::CaseOpened {
            case_id: case_id.clone(),
            person_id: person.clone(),
            region_code: "520102".to_owned(),
            category: "serious_injury_unpaid".to_owned(),
            case_no: "(2026)黔0102刑初700号".to_owned(),
            ..Default::default()
        },
    )
    .await?;
    publish(
        &producer,
        &ns,
        "decisions",
        &person,
        &jiuzhu_proto::decisions::DecisionRejected {
            case_id: case_id.clone(),
            person_id: person.clone(),
            reason: "病历显示既往病史".to_owned(),
            rejected_by: "approver-1".to_owned(),
        },
    )
    .await?;

    let agreements = Agreements::shipped()?;
    let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
    let mut pseudonyms: BTreeMap<(String, String), String> = BTreeMap::new();
    // Per copy: (department, type) → (event id, event id header, traceparent header).
    let mut copies: BTreeMap<(String, String), (String, String, String)> = BTreeMap::new();
    for (department, expected) in [
        ("rural_revitalization", 4),
        ("civil_affairs", 1),
        ("education", 2),
    ] {
        let topic = format!("{ns}jiuzhu.share.{department}.v1");
        let records = read_topic(&kafka_brokers(), &topic, expected)?;
        assert_eq!(records.len(), expected, "{department}");
        for record in &records {
            let headers = jiuzhu_messaging::header_map(rdkafka::Message::headers(record));
            assert_eq!(
                headers.get("jiuzhu-agreement-version").map(String::as_str),
                Some("sharing-2026.3")
            );
            let envelope =
                EventEnvelope::decode(rdkafka::Message::payload(record).unwrap_or_default())?;
            assert!(envelope.stream_id.is_empty() && envelope.correlation_id.is_empty());
            let share = agreements.departments[department]
                .shares
                .iter()
                .find(|s| s.event_type == envelope.event_type)
                .ok_or_else(|| anyhow::anyhow!("{department} got {}", envelope.event_type))?;
            let descriptor = pool
                .get_message_by_name(&envelope.event_type)
                .ok_or_else(|| anyhow::anyhow!("unknown type"))?;
            let message = DynamicMessage::decode(descriptor, envelope.payload.as_slice())?;
            let mut fields = Vec::new();
            set_paths(&message, "", &mut fields);
            for field in &fields {
                assert!(
                    share.fields.contains(field),
                    "{department} received `{field}` of {}, which its agreement does not name",
                    envelope.event_type
                );
            }
            copies.insert(
                (department.to_owned(), envelope.event_type.clone()),
                (
                    envelope.event_id.clone(),
                    headers.get("jiuzhu-event-id").cloned().unwrap_or_default(),
                    headers.get("traceparent").cloned().unwrap_or_default(),
                ),
            );
            // A case is known to each department by its own reference, never by its id.
            if let Some(Value::String(reference)) = message
                .get_field_by_name("case_id")
                .as_deref()
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                assert_ne!(*reference, case_id);
                assert_eq!(*reference, jiuzhu_sharing::case_ref(department, &case_id));
            }
            if let Some(Value::String(alias)) = message.get_field_by_name("person_id").as_deref() {
                assert!(alias.starts_with("ps-") && *alias != person, "{alias}");
                assert_eq!(rdkafka::Message::key(record), Some(alias.as_bytes()));
                pseudonyms.insert(
                    (department.to_owned(), envelope.event_type.clone()),
                    alias.clone(),
                );
            }
        }
    }
    // The one risk flag went to two departments: their copies share no id and no trace.
    let flag = "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged";
    let copy = |d: &str| copies.get(&(d.to_owned(), flag.to_owned())).cloned();
    let (rural, civil) = (copy("rural_revitalization"), copy("civil_affairs"));
    let ((rural_id, rural_header, rural_trace), (civil_id, civil_header, civil_trace)) = rural
        .zip(civil)
        .ok_or_else(|| anyhow::anyhow!("both departments got the flag: {copies:?}"))?;
    assert_eq!((&rural_id, &civil_id), (&rural_header, &civil_header));
    assert_ne!(rural_id, civil_id, "one event id for two departments");
    let trace_id = |traceparent: &str| traceparent.split('-').nth(1).map(str::to_owned);
    assert!(
        trace_id(&rural_trace).is_none() || trace_id(&rural_trace) != trace_id(&civil_trace),
        "one trace for two departments: {rural_trace} {civil_trace}"
    );
    let alias = |d: &str, t: &str| pseudonyms.get(&(d.to_owned(), t.to_owned())).cloned();
    let rural_flag = alias(
        "rural_revitalization",
        "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged",
    );
    assert!(rural_flag.is_some());
    assert_eq!(
        rural_flag,
        alias(
            "rural_revitalization",
            "jiuzhu.decisions.v1.ReliefDistributed"
        ),
        "stable within a department"
    );
    assert_ne!(
        rural_flag,
        alias(
            "civil_affairs",
            "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged"
        ),
        "different across departments"
    );

    // The sharing log, by person and by department (auditors only: it maps persons to their
    // pseudonyms), and the person file.
    let auditor = jiuzhu_access::Identity::new(
        "procuratorate",
        "000000",
        jiuzhu_access::Role::Auditor,
        "audit-office",
    );
    let mut audit = RegistryServiceClient::new(
        jiuzhu_testkit::channel_as(registry.running.grpc_addr, &auditor).await?,
    );
    let log = eventually("the sharing log", WAIT, || {
        let (mut people, person) = (audit.clone(), person.clone());
        async move {
            let log = people
                .list_sharing(ListSharingRequest {
                    person_id: person,
                    ..ListSharingRequest::default()
                })
                .await?
                .into_inner()
                .entries;
            Ok((log.len() >= 6).then_some(log))
        }
    })
    .await?;
    let mut shared: Vec<(String, String)> = log
        .iter()
        .map(|e| (e.department.clone(), e.event_type.clone()))
        .collect();
    shared.sort();
    assert_eq!(
        shared,
        [
            (
                "civil_affairs".to_owned(),
                "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged".to_owned()
            ),
            (
                "education".to_owned(),
                "jiuzhu.decisions.v1.ReferralIssued".to_owned()
            ),
            (
                "rural_revitalization".to_owned(),
                "jiuzhu.decisions.v1.CaseOpened".to_owned()
            ),
            (
                "rural_revitalization".to_owned(),
                "jiuzhu.decisions.v1.DecisionRejected".to_owned()
            ),
            (
                "rural_revitalization".to_owned(),
                "jiuzhu.decisions.v1.ReliefDistributed".to_owned()
            ),
            (
                "rural_revitalization".to_owned(),
                "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged".to_owned()
            ),
        ],
        "nothing for finance (no agreement), nothing of the order"
    );
    assert!(log.iter().all(|e| e.agreement_version == "sharing-2026.3"));
    let education = audit
        .list_sharing(ListSharingRequest {
            department: "education".to_owned(),
            ..ListSharingRequest::default()
        })
        .await?
        .into_inner()
        .entries;
    let mut types: Vec<&str> = education.iter().map(|e| e.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "jiuzhu.decisions.v1.ReferralIssued",
            "jiuzhu.decisions.v1.ReferralOverdue"
        ],
        "the referral and its reminder; an overdue referral names no person"
    );
    let refused = audit
        .list_sharing(ListSharingRequest::default())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a log query without person or department was taken"))?;
    assert_eq!(jiuzhu_tests::bad_fields(&refused), ["person_id"]);
    let not_an_auditor = people
        .list_sharing(ListSharingRequest {
            department: "education".to_owned(),
            ..ListSharingRequest::default()
        })
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(not_an_auditor, Some(tonic::Code::PermissionDenied));
    let file = eventually("the shares in the person file", WAIT, || {
        let (mut people, person) = (people.clone(), person.clone());
        async move {
            let file = people
                .get_person_file(GetPersonFileRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id: person,
                    ..GetPersonFileRequest::default()
                })
                .await?
                .into_inner();
            let shares = file
                .entries
                .iter()
                .filter(|e| e.event_type == "jiuzhu.registry.v1.DataShared")
                .count();
            Ok((shares == 6).then_some(file))
        }
    })
    .await?;
    assert!(
        file.entries
            .iter()
            .any(|e| e.detail_json.contains("rural_revitalization"))
    );

    // The agreements in force are on the record once, however often the registry starts.
    let adopted = || async {
        let pool = sqlx::PgPool::connect(&registry.database.url).await?;
        let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
            "SELECT version, sha256, departments_added FROM sharing_agreements ORDER BY id",
        )
        .fetch_all(&pool)
        .await?;
        anyhow::Ok(rows)
    };
    let first = adopted().await?;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, "sharing-2026.3");
    assert_eq!(first[0].1, jiuzhu_sharing::Agreements::shipped()?.digest);
    assert_eq!(first[0].2.len(), agreements.departments.len());
    registry.running.stop().await;
    let again = jiuzhu_tests::restart::<Registry>(&ns, &registry.database).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        adopted().await?.len(),
        1,
        "unchanged agreements are not recorded again"
    );
    again.stop().await;
    Ok(())
}
