//! Follow-up on real PostgreSQL and the broker: a plan opens from a payment event exactly once
//! (redelivered, and a second instalment), its schedule comes from the policy, missed visits are
//! found across restarts exactly once, visits are validated item by item, scored, trended and
//! flagged, a plan closes early, and the effect statistics and metrics add up. Decision and
//! payment events are published on their topics as those services would.

use std::time::Duration;

use jiuzhu_followup::Followup;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::{CaseOpened, DecisionApproved, ReliefMethod};
use jiuzhu_proto::followup::followup_service_client::FollowupServiceClient;
use jiuzhu_proto::followup::*;
use jiuzhu_proto::payments::DisbursementSucceeded;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{
    TestResult, bad_fields, eventually, publish, read_topic, registry_client, restart_with, scrape,
    start, start_with, villager,
};
use rdkafka::producer::FutureProducer;
use tonic::Code;
use tonic::transport::Channel as Connection;

const WAIT: Duration = Duration::from_secs(60);
const OFFICE: &str = "贵阳市南明区人民检察院";

fn on(today: &'static str) -> impl FnOnce(&mut jiuzhu_runtime::Settings) {
    move |settings| {
        settings.clock.start = Some(today.to_owned());
        settings.deadlines.scan_seconds = 1;
        settings.service.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    }
}

fn evaluation(income_fen: i64, phq9: [i32; 9]) -> Evaluation {
    Evaluation {
        income_per_head: Some(Money { fen: income_fen }),
        employment: Employment::Employed.into(),
        medical_burden: Level::Low.into(),
        housing_safe: true,
        children_out_of_school: 0,
        scales: Some(ScaleAnswers {
            phq9: phq9.to_vec(),
            ..ScaleAnswers::default()
        }),
        measures: vec![MeasureReceived {
            measure: "medical".to_owned(),
            received: true,
        }],
        notes: "独居，右腿伤残未愈".to_owned(),
    }
}

/// Publishes a relief case of `person` in Nanming and its approval of `fen` with `methods`, as
/// the decisions service would; returns the case id.
async fn decided_case(
    producer: &FutureProducer,
    ns: &str,
    person: &str,
    fen: i64,
    methods: &[ReliefMethod],
) -> anyhow::Result<String> {
    let case_id = uuid::Uuid::now_v7().to_string();
    publish(
        producer,
        ns,
        "decisions",
        person,
        &CaseOpened {
            case_id: case_id.clone(),
            person_id: person.to_owned(),
            procuratorate: OFFICE.to_owned(),
            region_code: "520102".to_owned(),
            category: "other_in_need".to_owned(),
            ..CaseOpened::default()
        },
    )
    .await?;
    publish(
        producer,
        ns,
        "decisions",
        person,
        &DecisionApproved {
            case_id: case_id.clone(),
            person_id: person.to_owned(),
            amount: Some(Money { fen }),
            methods: methods.iter().map(|m| *m as i32).collect(),
            procuratorate: OFFICE.to_owned(),
            ..DecisionApproved::default()
        },
    )
    .await?;
    Ok(case_id)
}

async fn count(pool: &sqlx::PgPool, event_type: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(format!("jiuzhu.followup.v1.{event_type}"))
            .fetch_one(pool)
            .await?,
    )
}

async fn visits(
    client: &FollowupServiceClient<Connection>,
    overdue: bool,
) -> anyhow::Result<Vec<DueVisit>> {
    Ok(client
        .clone()
        .list_visits(ListVisitsRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            office: OFFICE.to_owned(),
            overdue,
            due_before: "2026-12-31".to_owned(),
            ..ListVisitsRequest::default()
        })
        .await?
        .into_inner()
        .visits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_case_is_followed_up_scored_flagged_and_counted() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let person_id = registry_client(&registry.running)
        .await?
        .register_person(villager("fu-wang", "王秀英", "rural_revitalization"))
        .await?
        .into_inner()
        .person_id;
    let mut kafka = jiuzhu_messaging::KafkaSettings {
        brokers: kafka_brokers(),
        ..jiuzhu_messaging::KafkaSettings::default()
    };
    kafka.partitions = 3;
    let topics: Vec<String> = ["decisions", "payments"]
        .map(|s| format!("{ns}{}", jiuzhu_messaging::service_topic(s)))
        .into();
    jiuzhu_messaging::ensure_topics(&kafka, &topics).await?;
    let followup = start_with::<Followup>(&ns, on("2026-06-15")).await?;
    let mut client =
        FollowupServiceClient::new(jiuzhu_testkit::channel(followup.running.grpc_addr).await?);

    // The case and its decision, then its payment delivered twice and a second instalment.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let case_id = decided_case(
        &producer,
        &ns,
        &person_id,
        800_000,
        &[ReliefMethod::OneTimePayment, ReliefMethod::Medical],
    )
    .await?;
    let paid = |disbursement: &str| DisbursementSucceeded {
        disbursement_id: disbursement.to_owned(),
        person_id: person_id.clone(),
        case_id: case_id.clone(),
        amount: Some(Money { fen: 400_000 }),
        ..DisbursementSucceeded::default()
    };
    let first = uuid::Uuid::now_v7().to_string();
    publish(&producer, &ns, "payments", &person_id, &paid(&first)).await?;
    publish(&producer, &ns, "payments", &person_id, &paid(&first)).await?;
    publish(
        &producer,
        &ns,
        "payments",
        &person_id,
        &paid(&uuid::Uuid::now_v7().to_string()),
    )
    .await?;

    let plan = eventually("the plan to open", WAIT, || {
        let (mut client, case_id) = (client.clone(), case_id.clone());
        async move {
            Ok(
                match client
                    .get_plan(GetPlanRequest {
                        purpose: jiuzhu_tests::PURPOSE.to_owned(),
                        case_id,
                        ..GetPlanRequest::default()
                    })
                    .await
                {
                    Ok(answer) => answer.into_inner().plan,
                    Err(status) if status.code() == Code::NotFound => None,
                    Err(status) => return Err(status.into()),
                },
            )
        }
    })
    .await?;
    // Paid on 1 June (Beijing): visits 1, 6 and 12 months on, by phone then at home.
    let schedule: Vec<(String, i32)> = plan
        .visits
        .iter()
        .filter_map(|v| v.scheduled.as_ref())
        .map(|s| (s.due_date.clone(), s.channel))
        .collect();
    assert_eq!(
        schedule,
        [
            ("2026-07-01".to_owned(), Channel::Phone as i32),
            ("2026-12-01".to_owned(), Channel::HomeVisit as i32),
            ("2027-06-01".to_owned(), Channel::HomeVisit as i32)
        ]
    );
    assert_eq!(plan.policy_version, "followup-2026.3");
    let pool = sqlx::PgPool::connect(&followup.database.url).await?;
    let consumed = || jiuzhu_tests::checkpoint_total(&pool, "followup.payment_plans");
    eventually("every payment consumed", WAIT, || async {
        Ok((consumed().await? >= 3).then_some(()))
    })
    .await?;
    assert_eq!(count(&pool, "PlanOpened").await?, 1, "one plan per case");
    eventually("the visit board", WAIT, || async {
        Ok((visits(&client, false).await?.len() == 2).then_some(()))
    })
    .await?;
    assert!(visits(&client, true).await?.is_empty(), "nothing late yet");

    // Ten days after the first visit was due: overdue, found once across restarts.
    followup.running.stop().await;
    let running = restart_with::<Followup>(&ns, &followup.database, on("2026-07-10")).await?;
    eventually("the missed visit", WAIT, || async {
        Ok((count(&pool, "VisitOverdue").await? == 1).then_some(()))
    })
    .await?;
    running.stop().await;
    let running = restart_with::<Followup>(&ns, &followup.database, on("2026-07-10")).await?;
    client = FollowupServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let late = eventually("the overdue list", WAIT, || async {
        let late = visits(&client, true).await?;
        Ok((!late.is_empty()).then_some(late))
    })
    .await?;
    assert_eq!((late.len(), late[0].number), (1, 1));
    tokio::time::sleep(Duration::from_millis(1_500)).await; // another scan
    assert_eq!(count(&pool, "VisitOverdue").await?, 1, "reported once");

    // Validation names the item; nothing is recorded.
    let record =
        |request_id: &str, number: i32, on: &str, evaluation: Evaluation| RecordVisitRequest {
            request_id: request_id.to_owned(),
            plan_id: plan.plan_id.clone(),
            number,
            visited_on: on.to_owned(),
            visited_by: "follow-up-officer-1".to_owned(),
            channel: Channel::Phone as i32,
            evaluation: Some(evaluation),
        };
    let refused = client
        .record_visit(record(
            "v-bad",
            1,
            "2026-07-08",
            evaluation(500_000, [0, 0, 0, 0, 4, 0, 0, 0, 0]),
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a PHQ-9 item of 4 was taken"))?;
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&refused), ["evaluation.scales.phq9[4]"]);
    assert_eq!(count(&pool, "VisitRecorded").await?, 0);

    // Below the line and depressed: scored, flagged.
    let first_visit = record(
        "v-1",
        1,
        "2026-07-08",
        evaluation(500_000, [2, 2, 1, 1, 1, 1, 1, 1, 1]),
    );
    let answer = client.record_visit(first_visit.clone()).await?.into_inner();
    let outcome = answer.outcome.clone().unwrap_or_default();
    assert_eq!(
        (outcome.effect_score, outcome.trend),
        (72, Trend::Baseline as i32)
    );
    assert_eq!(
        answer.risk_reasons,
        ["income_below_line", "depression_moderate"]
    );
    assert_eq!(
        client.record_visit(first_visit).await?.into_inner(),
        answer,
        "a retry"
    );
    // The evaluation is sealed: its words are nowhere in the stored events.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE position(convert_to('独居', 'UTF8') IN payload) > 0",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(leaked, 0);

    // Six months on: better, measured against the first visit.
    running.stop().await;
    let running = restart_with::<Followup>(&ns, &followup.database, on("2026-12-05")).await?;
    client = FollowupServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let answer = client
        .record_visit(record(
            "v-2",
            2,
            "2026-12-03",
            evaluation(900_000, [0, 0, 1, 0, 0, 0, 0, 0, 0]),
        ))
        .await?
        .into_inner();
    let outcome = answer.outcome.unwrap_or_default();
    assert_eq!(outcome.trend, Trend::Better as i32);
    assert_eq!(outcome.income_change, Some(Money { fen: 400_000 }));
    assert_eq!(outcome.phq9_change, -10);
    assert!(answer.risk_reasons.is_empty());

    let trend = eventually("the person's trend", WAIT, || {
        let (mut client, person_id) = (client.clone(), person_id.clone());
        async move {
            let trend = client
                .get_person_trend(GetPersonTrendRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id,
                })
                .await?
                .into_inner();
            Ok((trend.visits.len() == 2).then_some(trend))
        }
    })
    .await?;
    assert_eq!(trend.trend, Trend::Better as i32);
    // Registered again by another department and merged: the survivor's trend holds the
    // merged record's visits.
    let mut people = registry_client(&registry.running).await?;
    let survivor = people
        .register_person(jiuzhu_proto::registry::RegisterPersonRequest {
            request_id: "fu-wang-again".to_owned(),
            resident_id: String::new(),
            source_department: "civil_affairs".to_owned(),
            ..villager("fu-wang", "王秀英", "rural_revitalization")
        })
        .await?
        .into_inner()
        .person_id;
    people
        .merge_persons(jiuzhu_proto::registry::MergePersonsRequest {
            request_id: "fu-merge".to_owned(),
            survivor_id: survivor.clone(),
            absorbed_id: person_id.clone(),
            reason: "one woman, two departments".to_owned(),
            ..Default::default()
        })
        .await?;
    eventually("the survivor's trend", WAIT, || {
        let (mut client, survivor) = (client.clone(), survivor.clone());
        async move {
            let trend = client
                .get_person_trend(GetPersonTrendRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id: survivor,
                })
                .await?
                .into_inner();
            Ok((trend.visits.len() == 2).then_some(()))
        }
    })
    .await?;
    let stats = client
        .get_effect_statistics(GetEffectStatisticsRequest {})
        .await?
        .into_inner();
    assert_eq!(stats.scoring_method, "effect-v1");
    let medical = stats
        .groups
        .iter()
        .find(|g| g.dimension == "method" && g.value == "medical")
        .ok_or_else(|| anyhow::anyhow!("no group for the medical method: {stats:?}"))?;
    assert_eq!(medical.visits, 2);
    assert!((medical.improved_percent - 100.0).abs() < 1e-9);
    assert_eq!(medical.median_income_change, Some(Money { fen: 400_000 }));
    assert!((medical.mean_phq9_change + 10.0).abs() < 1e-9);
    let metrics = scrape(&running).await?;
    for line in [
        "jiuzhu_followup_risk_flags{reason=\"income_below_line\"} 1",
        "jiuzhu_followup_improved_ratio{method=\"medical\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }

    // Moving away closes the plan early, handed to the new office; its last visit is off.
    let close = ClosePlanRequest {
        request_id: "close-1".to_owned(),
        plan_id: plan.plan_id.clone(),
        reason: ClosureReason::MovedAway as i32,
        note: "moved to her daughter in Zunyi".to_owned(),
        handed_to_office: String::new(),
        closed_by: "follow-up-officer-1".to_owned(),
    };
    let refused = client
        .close_plan(close.clone())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a move without the new office was taken"))?;
    assert_eq!(bad_fields(&refused), ["handed_to_office"]);
    let successor = client
        .close_plan(ClosePlanRequest {
            request_id: "close-2".to_owned(),
            handed_to_office: "遵义市人民检察院".to_owned(),
            ..close
        })
        .await?
        .into_inner()
        .successor_plan_id;
    // The new office's plan takes the visit not made yet; the case now points at it.
    let taken_over = client
        .get_plan(GetPlanRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            case_id: case_id.clone(),
            ..GetPlanRequest::default()
        })
        .await?
        .into_inner()
        .plan
        .unwrap_or_default();
    assert_eq!(taken_over.plan_id, successor);
    assert_eq!(taken_over.office, "遵义市人民检察院");
    let remaining: Vec<i32> = taken_over
        .visits
        .iter()
        .filter_map(|v| v.scheduled.as_ref().map(|s| s.number))
        .collect();
    assert_eq!(remaining, [3]);
    let closed = client
        .get_plan(GetPlanRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            plan_id: plan.plan_id.clone(),
            ..GetPlanRequest::default()
        })
        .await?
        .into_inner()
        .plan
        .unwrap_or_default();
    assert!(closed.closed);
    assert_eq!(closed.visits[2].state, VisitState::Cancelled as i32);
    let topic = running.store.topic().to_owned();
    // Opened, overdue, two visits, a flag, closed, and the new office's plan (and the second
    // visit's overdue when the monitor scanned before it was recorded).
    let published = read_topic(&kafka_brokers(), &topic, 7)?;
    let flagged = published.iter().any(|r| {
        jiuzhu_messaging::header_map(rdkafka::Message::headers(r))
            .get("jiuzhu-event-type")
            .is_some_and(|t| t == "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged")
    });
    assert!(flagged, "the risk flag is on the topic for departments");
    // The registry's person file shows it.
    let people = registry_client(&registry.running).await?;
    eventually("the flag in the person file", WAIT, || {
        let (mut people, person_id) = (people.clone(), person_id.clone());
        async move {
            let file = people
                .get_person_file(jiuzhu_proto::registry::GetPersonFileRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok(file
                .entries
                .iter()
                .any(|e| e.event_type == "jiuzhu.followup.v1.ReturnToPovertyRiskFlagged")
                .then_some(()))
        }
    })
    .await?;
    running.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// Between visits, the registry tells of a risk: a department records sudden hardship for a
/// person whose plan is open, and the plan is flagged at once (visit 0, the rule that names the
/// status). A status of a year long past, recorded late, flags nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitoring_status_in_the_registry_flags_an_open_plan_between_visits() -> TestResult {
    use jiuzhu_proto::registry::{RecordStatusRequest, StatusKind};
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let mut people = registry_client(&registry.running).await?;
    let person_id = people
        .register_person(villager("fu-risk", "张桂兰", "rural_revitalization"))
        .await?
        .into_inner()
        .person_id;
    let followup = start_with::<Followup>(&ns, on("2026-06-15")).await?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let case_id = decided_case(
        &producer,
        &ns,
        &person_id,
        600_000,
        &[ReliefMethod::OneTimePayment],
    )
    .await?;
    publish(
        &producer,
        &ns,
        "payments",
        &person_id,
        &DisbursementSucceeded {
            disbursement_id: uuid::Uuid::now_v7().to_string(),
            person_id: person_id.clone(),
            case_id: case_id.clone(),
            amount: Some(Money { fen: 600_000 }),
            ..DisbursementSucceeded::default()
        },
    )
    .await?;
    let pool = sqlx::PgPool::connect(&followup.database.url).await?;
    eventually("the plan to open", WAIT, || async {
        Ok((count(&pool, "PlanOpened").await? == 1).then_some(()))
    })
    .await?;
    let status = |request_id: &str, kind: StatusKind, from: &str, to: &str| RecordStatusRequest {
        request_id: request_id.to_owned(),
        person_id: person_id.clone(),
        kind: kind as i32,
        source_department: "rural_revitalization".to_owned(),
        reference: "黔乡振监测〔2026〕9号".to_owned(),
        effective_from: from.to_owned(),
        effective_to: to.to_owned(),
        ..RecordStatusRequest::default()
    };
    // A year long past, and a status no rule names: nothing. Then sudden hardship from 10 June.
    people
        .record_status(status(
            "fu-risk-old",
            StatusKind::MonitoredSuddenHardship,
            "2025-01-01",
            "2025-12-31",
        ))
        .await?;
    people
        .record_status(status("fu-risk-minor", StatusKind::Minor, "2026-06-01", ""))
        .await?;
    people
        .record_status(status(
            "fu-risk-now",
            StatusKind::MonitoredSuddenHardship,
            "2026-06-10",
            "",
        ))
        .await?;
    let flags: Vec<(i32, Vec<String>)> = eventually("the flag between visits", WAIT, || async {
        let flags: Vec<(i32, Vec<String>)> =
            sqlx::query_as("SELECT visit_number, reasons FROM risk_flags ORDER BY visit_number")
                .fetch_all(&pool)
                .await?;
        Ok((!flags.is_empty()).then_some(flags))
    })
    .await?;
    assert_eq!(flags, [(0, vec!["registry_monitored".to_owned()])]);
    eventually("all three statuses considered", WAIT, || async {
        Ok(
            (jiuzhu_tests::checkpoint_total(&pool, "followup.registry_risks").await? >= 4)
                .then_some(()),
        )
    })
    .await?;
    assert_eq!(
        count(&pool, "ReturnToPovertyRiskFlagged").await?,
        1,
        "only the status in effect flags"
    );
    for service in [followup, registry] {
        service.running.stop().await;
    }
    Ok(())
}
