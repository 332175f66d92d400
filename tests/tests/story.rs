//! The paper's whole path as the agencies live it, with the five services as separate processes
//! on their own databases, the real broker, the provider simulator and an OTLP receiver:
//! rural revitalization imports its register (the `jiuzhu` CLI) → a case-handling system
//! reports a victim without an ID number → the clue is matched and referred → the relief case
//! opens, the materials checklist fills, the case is assessed, reviewed, proposed and approved →
//! the payment goes through the simulator → the follow-up plan opens and a visit is recorded →
//! rural revitalization's topic receives what its agreement allows → the person file shows
//! every step. States are read through the public APIs and topics only. Every call belongs to
//! one trace, which the receiver must see cross all five services, the payment simulator (the
//! provider call and its notice) and their Kafka hops. The
//! second scenario kills the payments process (SIGKILL) the moment the decision is approved,
//! restarts it, and must end in the same state: one payment, one share, one plan. The third
//! runs the whole path with every process's clock set to 2027-01-05: a year whose wage
//! bulletin and holiday notice are not out, so the cap uses the latest published wage and the
//! deadlines are provisional, and the case still ends closed and reported, never overdue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiuzhu_demo::seed::Resident;
use jiuzhu_demo::{Platform, trace_for};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::decisions::{CaseOrigin, Stage};
use jiuzhu_proto::registry::{GetPersonFileRequest, PersonFileEntry};
use jiuzhu_testkit::{OtlpReceiver, ServiceProcess, TestDatabase, kafka_brokers, unique_namespace};
use jiuzhu_tests::payments::Paysim;
use jiuzhu_tests::{TestResult, eventually, read_topic};
use prost::Message;

use jiuzhu_tests::SERVICES;
const REGION: &str = "520102";
const PROCURATORATE: &str = "贵阳市南明区人民检察院";
const RESIDENTS: usize = 200;
const FEN: i64 = 1_200_000;
const WAIT: Duration = Duration::from_secs(90);

/// The platform as separate processes.
struct Story {
    namespace: String,
    receiver: OtlpReceiver,
    simulator: Paysim,
    environments: BTreeMap<&'static str, Vec<(String, String)>>,
    processes: BTreeMap<&'static str, ServiceProcess>,
    ports: BTreeMap<&'static str, u16>,
    platform: Platform,
    _databases: Vec<TestDatabase>,
}

impl Story {
    async fn start(clock: Option<&str>) -> anyhow::Result<Self> {
        let receiver = OtlpReceiver::start().await?;
        let namespace = unique_namespace();
        let ports = jiuzhu_tests::service_ports()?;
        let port = |service: &str| ports.get(service).copied().unwrap_or_default();
        let simulator = Paysim::spawn(
            Some(&format!("https://127.0.0.1:{}", port("payments"))),
            &[
                "--asynchronous",
                "--duplicate-notices",
                "1",
                "--otlp-endpoint",
                &receiver.endpoint,
            ],
        )
        .await?;
        let (databases, environments) = jiuzhu_tests::process_environments(
            &ports,
            &jiuzhu_tests::ProcessOptions {
                namespace: &namespace,
                otlp: &receiver.endpoint,
                // Five processes per test, tests in parallel.
                max_connections: 5,
                instance_prefix: "story",
                provider: &simulator.endpoint,
                provider_poll_ms: 20,
                resend_after_ms: 2000,
                extra: clock
                    .map(|start| vec![("JIUZHU__CLOCK__START".to_owned(), start.to_owned())])
                    .unwrap_or_default(),
            },
        )
        .await?;
        let databases: Vec<TestDatabase> = databases.into_values().collect();
        let mut processes = BTreeMap::new();
        for service in SERVICES {
            processes.insert(
                service,
                jiuzhu_tests::spawn_service(service, &environments)?,
            );
        }
        for service in SERVICES {
            jiuzhu_tests::serving(port(service), WAIT).await?;
        }
        let endpoints = jiuzhu_tests::endpoints(&ports);
        let mut platform = Platform::connect(&jiuzhu_testkit::tls(), &endpoints).await?;
        platform.patience = WAIT;
        Ok(Self {
            namespace,
            receiver,
            simulator,
            environments,
            processes,
            ports,
            platform,
            _databases: databases,
        })
    }

    /// SIGKILL, then the same binary on the same database again.
    async fn crash_and_restart(&mut self, service: &'static str) -> TestResult {
        let process = self
            .processes
            .remove(service)
            .ok_or_else(|| anyhow::anyhow!("{service} is not running"))?;
        process.kill().await?;
        self.processes.insert(
            service,
            jiuzhu_tests::spawn_service(service, &self.environments)?,
        );
        jiuzhu_tests::serving(self.ports.get(service).copied().unwrap_or_default(), WAIT).await
    }

    /// SIGTERM to every process (a clean stop flushes the trace exporters).
    async fn stop(mut self) -> anyhow::Result<OtlpReceiver> {
        for service in SERVICES.iter().rev() {
            if let Some(process) = self.processes.remove(service) {
                assert!(process.terminate().await?, "{service} did not stop cleanly");
            }
        }
        assert!(
            self.simulator.process.terminate().await?,
            "the simulator did not stop cleanly"
        );
        Ok(self.receiver)
    }
}

/// Rural revitalization's register of the county, imported with the CLI as the department
/// would; returns the residents as the file has them.
fn import_register(story: &Story, dir: &std::path::Path) -> anyhow::Result<Vec<Resident>> {
    let registry_port = story.ports.get("registry").copied().unwrap_or_default();
    jiuzhu_tests::import_register(
        registry_port,
        &dir.join("register.csv"),
        RESIDENTS,
        5,
        REGION,
    )
}

/// What the story ends in, read through the public APIs and topics.
#[derive(Debug, PartialEq)]
struct Outcome {
    stage: Stage,
    reached_distribution: bool,
    distributed_fen: i64,
    paid_disbursements: usize,
    provider_payments: usize,
    plan_visits_done: usize,
    shared_types: Vec<String>,
}

/// Walks the story; `crash` is the service killed and restarted right after the approval.
async fn walk(
    crash: Option<&'static str>,
    clock: Option<&str>,
) -> anyhow::Result<(Outcome, Story, String, jiuzhu_proto::decisions::ReliefCase)> {
    let mut story = Story::start(clock).await?;
    let dir = std::env::temp_dir().join(format!("jiuzhu-story-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let residents = import_register(&story, &dir)?;
    let tag = format!("story-{}", story.namespace.trim_end_matches('.'));
    let (trace_id, traceparent) = trace_for(&tag);
    let platform = story.platform.traced(&traceparent)?;

    // The victim: an adult of the register, whose case file lacks the ID number.
    let resident = residents
        .iter()
        .find(|r| r.resident_id.len() == 18 && r.birth_date.as_str() < "1990")
        .ok_or_else(|| anyhow::anyhow!("the register has no adult with an id"))?
        .clone();
    let person_id = platform.find_person(&resident.resident_id).await?;
    platform.record_registered_poor(&tag, &person_id).await?;
    platform
        .wait_for_linkage_index(i64::try_from(RESIDENTS)?)
        .await?;

    let victim = jiuzhu_demo::seed::victim_of(&resident, false);
    let reported = platform
        .report_victim(&tag, "(2026)黔0102刑初77号", PROCURATORATE, &victim)
        .await?;
    let clue = reported
        .clue
        .ok_or_else(|| anyhow::anyhow!("no clue: {}", reported.screened_out))?;
    assert_eq!(clue.person_id, person_id, "matched without the id number");
    assert!(clue.probability >= 0.5, "{}", clue.probability);
    assert!(!clue.explanation.is_empty());
    platform.confirm_if_awaiting_review(&tag, &clue).await?;

    let case_id = platform.refer(&tag, &clue.clue_id).await?;
    let opened = platform.case(&case_id).await?;
    assert_eq!(opened.origin, CaseOrigin::Referral as i32);
    assert_eq!(opened.person_id, person_id);
    assert_eq!(opened.stage, Stage::Informed as i32);
    assert!(!opened.missing_materials.is_empty());
    assert_eq!(platform.clue(&clue.clue_id).await?.relief_case_id, case_id);

    let missing = platform.complete_and_accept(&tag, &case_id).await?;
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(platform.case(&case_id).await?.stage, Stage::Accepted as i32);
    platform.review(&tag, &case_id).await?;
    platform.allocate(&tag, PROCURATORATE, 10_000_000).await?;
    platform
        .register_payee(&tag, &person_id, &resident.full_name, 77)
        .await?;
    let proposed = platform.propose(&tag, &case_id, FEN).await?;
    assert!(proposed.cap.is_some_and(|cap| cap.fen >= FEN));
    platform
        .approve(&tag, &case_id, &proposed.required_approver)
        .await?;
    if let Some(service) = crash {
        story.crash_and_restart(service).await?;
    }

    let paid = platform.paid(&case_id).await?;
    let distributed = eventually("the case to reach distribution", WAIT, || {
        let platform = platform.clone();
        let case_id = case_id.clone();
        async move {
            let case = platform.case(&case_id).await?;
            Ok((case.stage == Stage::Distributed as i32).then_some(case))
        }
    })
    .await?;
    // The applicant is told; the case closes; she is registered poor, so the closed case owes
    // rural revitalization its report, which the registry's share delivers.
    let report_due = platform.notify(&tag, &case_id).await?;
    assert!(
        !report_due.is_empty(),
        "a poor party's closed case owes its report"
    );
    let closed = eventually(
        "the closed case reported to rural revitalization",
        WAIT,
        || {
            let platform = platform.clone();
            let case_id = case_id.clone();
            async move {
                let case = platform.case(&case_id).await?;
                Ok((case.stage == Stage::Closed as i32 && case.reported).then_some(case))
            }
        },
    )
    .await?;
    assert_eq!(
        closed.stages.iter().map(|s| s.stage).collect::<Vec<_>>()[closed.stages.len() - 3..],
        [
            Stage::Distributed as i32,
            Stage::Notified as i32,
            Stage::Closed as i32
        ]
    );
    let overdue = platform
        .decisions()
        .list_deadlines(jiuzhu_proto::decisions::ListDeadlinesRequest {
            filter: jiuzhu_proto::decisions::DeadlineFilter::Overdue as i32,
            page_size: 500,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(
        overdue.deadlines.iter().all(|d| d.case_id != case_id),
        "a closed case is not overdue"
    );
    let plan = platform.plan(&case_id).await?;
    assert_eq!(plan.person_id, person_id);
    platform
        .record_first_visit(&tag, &plan, 300_000, [2, 2, 2, 1, 1, 1, 1, 1, 0])
        .await?;
    let visited = eventually("the visit on the plan", WAIT, || {
        let platform = platform.clone();
        let case_id = case_id.clone();
        async move {
            let plan = platform.plan(&case_id).await?;
            let done = plan
                .visits
                .iter()
                .filter(|v| !v.visited_on.is_empty())
                .count();
            Ok((done > 0).then_some(done))
        }
    })
    .await?;

    // Rural revitalization's topic: the distribution (she is registered poor) and the risk
    // flag, under a pseudonym, with nothing else.
    let topic = format!("{}jiuzhu.share.rural_revitalization.v1", story.namespace);
    let records =
        tokio::task::spawn_blocking(move || read_topic(&kafka_brokers(), &topic, 3)).await??;
    let mut shared_types = Vec::new();
    for record in &records {
        let envelope =
            EventEnvelope::decode(rdkafka::Message::payload(record).unwrap_or_default())?;
        assert!(
            !envelope.payload.is_empty()
                && !String::from_utf8_lossy(&envelope.payload).contains(&person_id),
            "the person's own id left the platform"
        );
        shared_types.push(envelope.event_type);
    }
    shared_types.sort();

    // The person file: every step, from every service.
    let file_types = eventually("every step in the person file", WAIT, || {
        let mut registry = platform.registry();
        let person_id = person_id.clone();
        async move {
            let entries: Vec<PersonFileEntry> = registry
                .get_person_file(GetPersonFileRequest {
                    purpose: jiuzhu_demo::PURPOSE.to_owned(),
                    person_id,
                    page_size: 500,
                    ..GetPersonFileRequest::default()
                })
                .await?
                .into_inner()
                .entries;
            let types: BTreeSet<String> = entries.into_iter().map(|e| e.event_type).collect();
            Ok(FILE_STEPS
                .iter()
                .all(|step| types.contains(*step))
                .then_some(types))
        }
    })
    .await?;

    let provider_payments = {
        let mut keys = BTreeSet::new();
        for disbursement in &paid {
            for payment in story
                .simulator
                .payments_for(&disbursement.disbursement_id)
                .await?
            {
                keys.insert(payment.idempotency_key);
            }
        }
        keys.len()
    };
    std::fs::remove_dir_all(&dir)?;
    let outcome = Outcome {
        stage: Stage::try_from(closed.stage)?,
        reached_distribution: distributed.stage == Stage::Distributed as i32,
        distributed_fen: paid
            .iter()
            .map(|d| d.amount.as_ref().map_or(0, |m| m.fen))
            .sum(),
        paid_disbursements: paid.len(),
        provider_payments,
        plan_visits_done: visited,
        shared_types,
    };
    assert!(
        FILE_STEPS.iter().all(|s| file_types.contains(*s)),
        "{file_types:?}"
    );
    Ok((outcome, story, trace_id, closed))
}

/// Steps every service records in the person's file.
const FILE_STEPS: [&str; 9] = [
    "jiuzhu.registry.v1.PersonRegistered",
    "jiuzhu.registry.v1.StatusRecorded",
    "jiuzhu.clues.v1.ClueDetected",
    "jiuzhu.clues.v1.ClueReferred",
    "jiuzhu.decisions.v1.DecisionApproved",
    "jiuzhu.payments.v1.DisbursementSucceeded",
    "jiuzhu.decisions.v1.ReliefDistributed",
    "jiuzhu.followup.v1.VisitRecorded",
    "jiuzhu.registry.v1.DataShared",
];

/// Where every story ends, however it got there.
fn expected() -> Outcome {
    Outcome {
        stage: Stage::Closed,
        reached_distribution: true,
        distributed_fen: FEN,
        paid_disbursements: 1,
        provider_payments: 1,
        plan_visits_done: 1,
        shared_types: vec![
            "jiuzhu.decisions.v1.CaseClosed".to_owned(),
            "jiuzhu.decisions.v1.CaseOpened".to_owned(),
            "jiuzhu.decisions.v1.DecisionApproved".to_owned(),
            "jiuzhu.decisions.v1.ReliefDistributed".to_owned(),
            "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged".to_owned(),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_victim_without_an_id_number_is_found_relieved_paid_once_and_followed_up() -> TestResult {
    jiuzhu_tests::log_if_asked();
    let (outcome, story, trace_id, _) = walk(None, None).await?;
    assert_eq!(outcome, expected());

    // One trace: a server span in each of the five services, and the Kafka hops that carried
    // the work on (each consumer's span continues a publish span of the same trace).
    let receiver = story.stop().await?;
    let (spans, names) = receiver.trace(&trace_id);
    for service in SERVICES {
        let process = format!("jiuzhu-{service}");
        assert!(
            spans
                .iter()
                .any(|s| s.service_name == process && s.name.contains(".v1.")),
            "no {process} server span in the trace: {names:?}"
        );
    }
    let hops: BTreeSet<(String, String)> = spans
        .iter()
        .filter(|s| s.name.starts_with("process "))
        .filter_map(|consumer| {
            spans
                .iter()
                .find(|p| p.span_id == consumer.parent_span_id && p.name.starts_with("send "))
                .map(|publisher| {
                    (
                        publisher.service_name.clone(),
                        consumer.service_name.clone(),
                    )
                })
        })
        .collect();
    // The payment half stays in the story: payments calls the provider (a client span the
    // simulator's server span continues), and the provider's notice (the simulator's client
    // span, which payments' server span continues) records the payment, whose events go on.
    let child_of = |child: &str, child_service: &str, parent: &str, parent_service: &str| {
        spans.iter().any(|c| {
            c.service_name == child_service
                && c.name.ends_with(child)
                && spans.iter().any(|p| {
                    p.span_id == c.parent_span_id
                        && p.service_name == parent_service
                        && p.name.ends_with(parent)
                })
        })
    };
    assert!(
        child_of(
            "PaymentGatewayService/Pay",
            "jiuzhu-paysim",
            "PaymentGatewayService/Pay",
            "jiuzhu-payments"
        ),
        "no provider call from payments to the simulator in the trace: {names:?}"
    );
    assert!(
        child_of(
            "GatewayNoticeService/Notify",
            "jiuzhu-payments",
            "GatewayNoticeService/Notify",
            "jiuzhu-paysim"
        ),
        "no notice from the simulator to payments in the trace: {names:?}"
    );
    for (from, to) in [
        ("jiuzhu-registry", "jiuzhu-clues"),
        ("jiuzhu-clues", "jiuzhu-decisions"),
        ("jiuzhu-decisions", "jiuzhu-payments"),
        ("jiuzhu-decisions", "jiuzhu-followup"),
        ("jiuzhu-payments", "jiuzhu-decisions"),
    ] {
        assert!(
            hops.contains(&(from.to_owned(), to.to_owned())),
            "no Kafka hop {from} → {to} in the trace: {hops:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payments_crash_right_after_approval_ends_in_the_same_state() -> TestResult {
    jiuzhu_tests::log_if_asked();
    let (outcome, story, _, _) = walk(Some("payments"), None).await?;
    assert_eq!(outcome, expected());
    story.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_path_holds_on_2027_01_05_with_every_clock_set_there() -> TestResult {
    jiuzhu_tests::log_if_asked();
    let (outcome, story, _, case) = walk(None, Some("2027-01-05")).await?;
    assert_eq!(outcome, expected());
    story.stop().await?;
    // The case lived in 2027: entered on the drill's days, its deadlines counted over a year
    // without its holiday notice (provisional), the cap on the latest published wage (2025)
    // in place of the 2026 bulletin, with the figure's source and status named.
    assert!(
        case.stages
            .iter()
            .all(|s| s.entered_on.starts_with("2027-")),
        "{:?}",
        case.stages
    );
    assert!(
        case.stages
            .iter()
            .any(|s| s.due_provisional && !s.due_date.is_empty())
    );
    let proposal = case.proposal.unwrap_or_default();
    assert_eq!(
        (proposal.wage_year, proposal.wage_wanted_year),
        (2025, 2026)
    );
    assert_eq!(
        (proposal.wage_region.as_str(), proposal.wage_level.as_str()),
        ("52", "province")
    );
    assert!(!proposal.wage_source.is_empty() && !proposal.wage_status.is_empty());
    assert_eq!(
        case.closed.map(|c| c.closed_on.starts_with("2027-")),
        Some(true)
    );
    Ok(())
}
