//! Relief cases on real PostgreSQL and the broker: opened once per person per criminal case
//! (and not at all where another agency gave relief), materials with what is missing, eligibility
//! naming its rule, acceptance with its working-day deadline, a decision within the cap approved
//! by the tier its amount needs, and the events on `jiuzhu.decisions.events.v1`.

use jiuzhu_decisions::Decisions;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::decisions::*;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::payments::approver;
use jiuzhu_tests::{
    TestResult, bad_fields, eventually, read_topic, registry_client, scrape, start, villager,
};
use tonic::Code;

/// A relief case as `GetCase` answers it.
async fn relief_case(
    client: &mut DecisionsServiceClient<tonic::transport::Channel>,
    case_id: &str,
) -> anyhow::Result<ReliefCase> {
    client
        .get_case(GetCaseRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            case_id: case_id.to_owned(),
        })
        .await?
        .into_inner()
        .relief_case
        .ok_or_else(|| anyhow::anyhow!("no case {case_id}"))
}

fn application(request_id: &str, person_id: &str, case_no: &str) -> OpenCaseRequest {
    OpenCaseRequest {
        request_id: request_id.to_owned(),
        origin: CaseOrigin::Application as i32,
        person_id: person_id.to_owned(),
        case_no: case_no.to_owned(),
        procuratorate: "贵阳市南明区人民检察院".to_owned(),
        region_code: "520102".to_owned(),
        category: "serious_injury_unpaid".to_owned(),
        applicant_relation: "self".to_owned(),
        opened_by: "online".to_owned(),
        ..OpenCaseRequest::default()
    }
}

fn material(request_id: &str, case_id: &str, name: &str) -> RegisterMaterialRequest {
    RegisterMaterialRequest {
        request_id: request_id.to_owned(),
        case_id: case_id.to_owned(),
        material: name.to_owned(),
        file_id: format!("doc-{name}"),
        sha256: "0f".repeat(32),
        centre: "南明区12309服务中心".to_owned(),
        received_by: "clerk-7".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relief_case_is_opened_once_assessed_accepted_and_decided_within_the_cap() -> TestResult {
    let ns = unique_namespace();
    let decisions = start::<Decisions>(&ns).await?;
    let mut client =
        DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions.running.grpc_addr).await?);
    let person = jiuzhu_tests::announced_person(&ns).await?;
    let case_no = "(2026)黔0102刑初5号";

    let opened =
        jiuzhu_tests::open_case_once_known(&mut client, application("open-1", &person, case_no))
            .await?;
    assert_eq!(
        opened.missing_materials,
        [
            "application",
            "identity_proof",
            "proof_of_harm",
            "proof_of_hardship"
        ]
    );
    // A retry is the same answer; a second application for the same party and case is refused
    // with the existing case's id.
    let retried = client
        .open_case(application("open-1", &person, case_no))
        .await?
        .into_inner();
    assert_eq!(retried, opened);
    let second = client
        .open_case(application("open-2", &person, case_no))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a second case was opened"))?;
    assert_eq!(second.code(), Code::AlreadyExists);
    assert!(second.message().contains(&opened.case_id), "{second:?}");
    // The same case number typed with other brackets, full-width digits or spaces is the same
    // criminal case.
    let retyped = "〔2026〕 黔０１０２刑初5号";
    assert_eq!(case_no, "(2026)黔0102刑初5号");
    let third = client
        .open_case(application("open-2b", &person, retyped))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a retyped case number opened a second case"))?;
    assert_eq!(third.code(), Code::AlreadyExists, "{third:?}");

    // Another agency's relief, recorded as a fact, refuses a case for that criminal case.
    client
        .record_other_agency_relief(RecordOtherAgencyReliefRequest {
            request_id: "other-1".to_owned(),
            person_id: person.clone(),
            case_no: "(2026)黔0102刑初9号".to_owned(),
            agency: "南明区民政局".to_owned(),
            reference: "临时救助 2026-88".to_owned(),
            region_code: "520102".to_owned(),
        })
        .await?;
    let refused = client
        .open_case(application("open-3", &person, "(2026)黔0102刑初9号"))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a case already relieved elsewhere was opened"))?;
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("南明区民政局"));

    // Bad input names its fields.
    let bad = client
        .open_case(OpenCaseRequest {
            request_id: "open-bad".to_owned(),
            origin: CaseOrigin::Referral as i32,
            person_id: "someone".to_owned(),
            region_code: "52".to_owned(),
            ..OpenCaseRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad input was accepted"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    for field in [
        "case_no",
        "procuratorate",
        "person_id",
        "region_code",
        "clue_id",
    ] {
        assert!(
            bad_fields(&bad).iter().any(|f| f == field),
            "{field} missing: {bad:?}"
        );
    }

    // Materials: each answer says what is still missing; a bad hash is refused.
    let case_id = opened.case_id.clone();
    let mut bad_hash = material("m-bad", &case_id, "identity_proof");
    bad_hash.sha256 = "not-a-hash".to_owned();
    let refused = client
        .register_material(bad_hash)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a bad hash was accepted"))?;
    assert_eq!(bad_fields(&refused), ["sha256"]);
    let mut missing = Vec::new();
    for (n, name) in ["application", "identity_proof", "proof_of_harm"]
        .into_iter()
        .enumerate()
    {
        missing = client
            .register_material(material(&format!("m-{n}"), &case_id, name))
            .await?
            .into_inner()
            .missing_materials;
    }
    assert_eq!(missing, ["proof_of_hardship"]);

    // Eligibility names the rule that decided.
    let assess = |request_id: &str, facts: &[&str]| AssessEligibilityRequest {
        request_id: request_id.to_owned(),
        case_id: case_id.clone(),
        facts: facts.iter().map(|f| (*f).to_owned()).collect(),
        assessed_by: "relief-prosecutor-1".to_owned(),
        category: String::new(),
    };
    let excluded = client
        .assess_eligibility(assess(
            "assess-1",
            &[
                "seriously_injured_or_disabled",
                "offender_cannot_pay_or_unknown",
                "waived_civil_claim",
            ],
        ))
        .await?
        .into_inner();
    assert!(!excluded.eligible);
    assert_eq!(excluded.rule, "exclusion:waived_civil_claim");
    let eligible = client
        .assess_eligibility(assess(
            "assess-2",
            &[
                "seriously_injured_or_disabled",
                "offender_cannot_pay_or_unknown",
            ],
        ))
        .await?
        .into_inner();
    assert_eq!(eligible.rule, "category:serious_injury_unpaid");

    let due = client
        .accept_case(AcceptCaseRequest {
            request_id: "accept-1".to_owned(),
            case_id: case_id.clone(),
            accepted_by: "relief-prosecutor-1".to_owned(),
        })
        .await?
        .into_inner()
        .opinion_due;
    // An interview and a home visit review the case.
    for (request_id, kind, left) in [
        (
            "review-1",
            ReviewKind::HomeVisit,
            vec![ReviewKind::Interview as i32],
        ),
        ("review-2", ReviewKind::Interview, vec![]),
    ] {
        let outstanding = client
            .record_review(RecordReviewRequest {
                request_id: request_id.to_owned(),
                case_id: case_id.clone(),
                kind: kind as i32,
                record_file_id: format!("record-{request_id}"),
                sha256: "ab".repeat(32),
                reviewed_by: "relief-prosecutor-1".to_owned(),
            })
            .await?
            .into_inner()
            .outstanding;
        assert_eq!(outstanding, left);
    }
    let propose = |request_id: &str, fen: i64| ProposeDecisionRequest {
        request_id: request_id.to_owned(),
        case_id: case_id.clone(),
        amount: Some(Money { fen }),
        methods: vec![
            ReliefMethod::OneTimePayment as i32,
            ReliefMethod::Psychological as i32,
        ],
        proposed_by: "relief-prosecutor-1".to_owned(),
        ..ProposeDecisionRequest::default()
    };
    let early = client
        .propose_decision(propose("propose-0", 500_000))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a decision with a material missing was taken"))?;
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("proof_of_hardship"), "{early:?}");
    client
        .register_material(material("m-3", &case_id, "proof_of_hardship"))
        .await?;
    let above = client
        .propose_decision(propose("propose-1", 99_000_000))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an amount above the cap was taken"))?;
    assert_eq!(bad_fields(&above), ["amount"]);
    let proposed = client
        .propose_decision(propose("propose-2", 1_500_000))
        .await?
        .into_inner();
    assert_eq!(proposed.required_approver, "chief_prosecutors_meeting");
    assert!(proposed.cap.is_some_and(|cap| cap.fen > 1_500_000));
    // The tier is the approver certificate's: a lower tier is refused, and so is a lower tier
    // that writes the required one into the request, and a system without a tier at all.
    let addr = decisions.running.grpc_addr;
    let mut head = approver(addr, "department_head").await?;
    let approve = |id: &str, tier: &str| ApproveDecisionRequest {
        request_id: id.to_owned(),
        case_id: case_id.clone(),
        approver_role: tier.to_owned(),
        approved_by: "typed text, never recorded".to_owned(),
    };
    let lower = head.approve_decision(approve("approve-0", "")).await.err();
    assert_eq!(lower.map(|s| s.code()), Some(Code::PermissionDenied));
    let forged = head
        .approve_decision(approve("approve-0b", "chief_prosecutors_meeting"))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a forged tier approved"))?;
    assert_eq!(bad_fields(&forged), ["approver_role"]);
    let untiered = client
        .approve_decision(approve("approve-0c", ""))
        .await
        .err();
    assert_eq!(untiered.map(|s| s.code()), Some(Code::PermissionDenied));
    approver(addr, "chief_prosecutors_meeting")
        .await?
        .approve_decision(approve("approve-1", ""))
        .await?;

    let case = relief_case(&mut client, &case_id).await?;
    assert_eq!(case.stage, Stage::Approved as i32);
    let stages: Vec<i32> = case.stages.iter().map(|s| s.stage).collect();
    assert_eq!(
        stages,
        [
            Stage::Applied as i32,
            Stage::Accepted as i32,
            Stage::Reviewed as i32,
            Stage::ApprovalOpinion as i32,
            Stage::Approved as i32
        ]
    );
    let accepted = &case.stages[1];
    assert_eq!(accepted.due_date, due);
    assert!(
        !accepted.due_date.is_empty() || accepted.due_unknown.contains("does not cover"),
        "{accepted:?}"
    );
    assert!(case.missing_materials.is_empty());
    assert_eq!(
        case.approval.and_then(|a| a.amount),
        Some(Money { fen: 1_500_000 })
    );

    // The psychological help went to the health department, which answers on its topic; an
    // answer from another department is refused to the dead-letter topic.
    assert_eq!(case.referrals.len(), 1);
    let referral_id = case.referrals[0].referral_id.clone();
    assert_eq!(case.referrals[0].department, "health");
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let send = |department: &str, status: ReferralStatus| {
        use prost::Message as _;
        let (producer, ns, department) = (producer.clone(), ns.clone(), department.to_owned());
        let value = ReferralUpdate {
            referral_id: referral_id.clone(),
            status: status as i32,
            outcome: "counselling arranged".to_owned(),
            handled_by: format!("{department}-officer"),
        }
        .encode_to_vec();
        async move {
            // Each department signs what it sends on its own topic.
            let signer = jiuzhu_tests::integrator(&department);
            jiuzhu_tests::send_inbound(
                &producer,
                &ns,
                &department,
                "referral",
                &value,
                Some("jiuzhu.decisions.v1.ReferralUpdate"),
                Some(&signer),
            )
            .await
        }
    };
    send("education", ReferralStatus::Acknowledged).await?;
    send("health", ReferralStatus::Completed).await?;
    let completed = jiuzhu_tests::referral_in(&client, &case_id, ReferralStatus::Completed).await?;
    assert_eq!(completed.outcome, "counselling arranged");
    let dead = read_topic(
        &kafka_brokers(),
        &format!("{ns}jiuzhu.inbound.education.v1.dlq"),
        1,
    )?;
    let reason = jiuzhu_messaging::header_map(rdkafka::Message::headers(&dead[0]))
        .get("jiuzhu-dlq-reason")
        .cloned()
        .unwrap_or_default();
    // Health's referral id is health's reference of the case: education cannot even name it.
    assert!(
        reason.contains("is not one Jiuzhu issued to education"),
        "{reason}"
    );

    // Every event on the topic, keyed by the person.
    let topic = decisions.running.store.topic().to_owned();
    let records = read_topic(&kafka_brokers(), &topic, 18)?;
    assert_eq!(records.len(), 18);
    use rdkafka::Message as _;
    assert!(
        records.iter().all(|r| r.key() == Some(person.as_bytes())),
        "every relief event is keyed by its person"
    );
    // Who did each step is the caller's verified identity, never the name the request typed.
    use prost::Message as _;
    let store = decisions.running.store.pool();
    let received: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'jiuzhu.decisions.v1.MaterialReceived'",
    )
    .fetch_all(store)
    .await?;
    let reviewed: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'jiuzhu.decisions.v1.ReviewRecorded'",
    )
    .fetch_all(store)
    .await?;
    let mut recorded = Vec::new();
    for payload in &received {
        recorded.push(MaterialReceived::decode(payload.as_slice())?.received_by);
    }
    for payload in &reviewed {
        recorded.push(ReviewRecorded::decode(payload.as_slice())?.reviewed_by);
    }
    assert!(!received.is_empty() && !reviewed.is_empty());
    assert!(
        recorded.iter().all(|by| by.starts_with("spiffe://jiuzhu/")),
        "{recorded:?}"
    );
    decisions.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referred_clue_opens_a_relief_case_and_the_case_closes_the_clue() -> TestResult {
    use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
    use jiuzhu_proto::clues::*;
    let wait = std::time::Duration::from_secs(60);
    let ns = unique_namespace();
    let registry = start::<jiuzhu_registry::Registry>(&ns).await?;
    let clues = start::<jiuzhu_clues::Clues>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let person = registry_client(&registry.running)
        .await?
        .register_person(villager(
            "referral-person",
            "马桂兰",
            "rural_revitalization",
        ))
        .await?
        .into_inner()
        .person_id;
    eventually("the person in the linkage index", wait, || async {
        Ok((jiuzhu_tests::linkage_status(&clues.running).await?.0 == 1).then_some(()))
    })
    .await?;
    let id = jiuzhu_tests::resident_id_for("referral-person");
    let mut clues_api =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    let clue = clues_api
        .report_party(ReportPartyRequest {
            request_id: "party-1".to_owned(),
            case_no: "(2026)京0105刑初88号".to_owned(),
            party_ref: "V1".to_owned(),
            procuratorate: "北京市朝阳区人民检察院".to_owned(),
            incident_date: "2026-05-01".to_owned(),
            role: PartyRole::Victim as i32,
            harm: Some(Harm {
                serious_injury: true,
                ..Harm::default()
            }),
            full_name: "马桂兰".to_owned(),
            id_number: id.as_str().to_owned(),
            region: Some(jiuzhu_proto::common::RegionCode {
                code: "110105".to_owned(),
            }),
            ..ReportPartyRequest::default()
        })
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("no clue"))?;
    clues_api
        .refer_clue(ReferClueRequest {
            request_id: "refer-1".to_owned(),
            clue_id: clue.clue_id.clone(),
            referred_by: "case-prosecutor-3".to_owned(),
        })
        .await?;

    // The decisions service opens the case; clue acquisition closes the clue with its id.
    let closed = eventually("the clue closed by its relief case", wait, || {
        let mut clues_api = clues_api.clone();
        let clue_id = clue.clue_id.clone();
        async move {
            // Not found until the clue board has the clue.
            let found = clues_api
                .get_clue(GetClueRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    clue_id,
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().clue);
            Ok(found.filter(|c| c.status == ClueStatus::Closed as i32))
        }
    })
    .await?;
    assert_eq!(closed.outcome, ClueOutcome::ReliefCaseOpened as i32);
    let mut decisions_api =
        DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions.running.grpc_addr).await?);
    let case = relief_case(&mut decisions_api, &closed.relief_case_id).await?;
    assert_eq!(case.origin, CaseOrigin::Referral as i32);
    assert_eq!(case.person_id, person);
    // The case number in its canonical form (full-width parentheses).
    assert_eq!(case.case_no, "（2026）京0105刑初88号");
    assert_eq!(case.region_code, "110105");
    assert_eq!(case.stage, Stage::Informed as i32);
    assert_eq!(case.missing_materials, ["application", "identity_proof"]);

    // The household as the registry describes it reaches the decisions service's facts.
    {
        use jiuzhu_proto::registry::*;
        let mut registry_api = registry_client(&registry.running).await?;
        let child = registry_api
            .register_person(villager("referral-child", "马小军", "civil_affairs"))
            .await?
            .into_inner()
            .person_id;
        let household = registry_api
            .add_household_member(AddHouseholdMemberRequest {
                request_id: "hh-1".to_owned(),
                household_id: String::new(),
                person_id: person.clone(),
                relationship: Relationship::Head as i32,
            })
            .await?
            .into_inner()
            .household_id;
        registry_api
            .add_household_member(AddHouseholdMemberRequest {
                request_id: "hh-2".to_owned(),
                household_id: household.clone(),
                person_id: child.clone(),
                relationship: Relationship::Child as i32,
            })
            .await?;
        registry_api
            .record_household_income(RecordHouseholdIncomeRequest {
                request_id: "hh-income".to_owned(),
                household_id: household.clone(),
                year: 2025,
                income_per_head: Some(jiuzhu_proto::common::Money { fen: 420_000 }),
                source_department: "rural_revitalization".to_owned(),
            })
            .await?;
        for (request_id, who, kind) in [
            ("st-1", &person, StatusKind::RegisteredPoor),
            ("st-2", &child, StatusKind::Minor),
        ] {
            registry_api
                .record_status(RecordStatusRequest {
                    request_id: request_id.to_owned(),
                    person_id: who.clone(),
                    kind: kind as i32,
                    source_department: "rural_revitalization".to_owned(),
                    reference: "2026-9".to_owned(),
                    effective_from: "2026-01-01".to_owned(),
                    ..RecordStatusRequest::default()
                })
                .await?;
        }
        let pool = decisions.running.store.pool().clone();
        let person_id = uuid::Uuid::parse_str(&person)?;
        // Statuses of the two persons travel on their own partitions: wait for all of them.
        let expected = jiuzhu_decisions::projections::Household {
            registered_poor: true,
            monitored: false,
            minimum_living: false,
            size: 2,
            minors: 1,
            income_per_head_fen: Some(420_000),
        };
        let facts = eventually("the household facts", wait, || {
            let pool = pool.clone();
            let expected = expected.clone();
            async move {
                let on = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default();
                let facts = jiuzhu_decisions::projections::household(&pool, person_id, on).await?;
                Ok((facts == expected).then_some(facts))
            }
        })
        .await?;
        assert!(facts.registered_poor);
    }

    // The same person and criminal case again, by application: refused with the case's id.
    let again = decisions_api
        .open_case(OpenCaseRequest {
            region_code: "110105".to_owned(),
            ..application("apply-again", &person, "(2026)京0105刑初88号")
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a second case was opened"))?;
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(again.message().contains(&case.case_id));
    decisions.running.stop().await;
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

async fn alarms(pool: &sqlx::PgPool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'jiuzhu.decisions.v1.StageDeadlineApproaching'), \
         count(*) FILTER (WHERE event_type = 'jiuzhu.decisions.v1.StageDeadlineBreached') FROM events",
    )
    .fetch_one(pool)
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_deadlines_follow_the_holiday_calendar_and_alarm_exactly_once_across_restarts()
-> TestResult {
    jiuzhu_tests::log_if_asked();
    let wait = std::time::Duration::from_secs(60);
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Decisions>().await?;
    // Monday 28 September 2026, just before the National Day week.
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-09-28").await?;
    let mut client = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let person = jiuzhu_tests::announced_person(&ns).await?;
    let mut request = application("deadline-open", &person, "(2026)黔0102刑初40号");
    request.category = "other_in_need".to_owned();
    let case_id = jiuzhu_tests::open_case_once_known(&mut client, request)
        .await?
        .case_id;
    let case = relief_case(&mut client, &case_id).await?;
    // Seven working days: 29, 30 September; 8, 9, 10 (a make-up Saturday), 12, 13 October.
    assert_eq!(case.stages[0].due_date, "2026-10-13");
    running.stop().await;

    // Saturday 10 October, a working day: two working days left, so approaching.
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-10-10").await?;
    eventually("the approaching alarm", wait, || async {
        Ok((alarms(&pool).await? == (1, 0)).then_some(()))
    })
    .await?;
    let mut client = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let soon = client
        .list_deadlines(ListDeadlinesRequest {
            filter: DeadlineFilter::DueSoon as i32,
            ..ListDeadlinesRequest::default()
        })
        .await?
        .into_inner()
        .deadlines;
    assert_eq!(soon.len(), 1);
    assert_eq!(soon[0].working_days_left, 2);
    // The work list holds it as well, as every open case with a due date.
    let open = client
        .list_deadlines(ListDeadlinesRequest {
            filter: DeadlineFilter::Open as i32,
            ..ListDeadlinesRequest::default()
        })
        .await?
        .into_inner()
        .deadlines;
    assert_eq!(
        open.iter().map(|d| d.case_id.as_str()).collect::<Vec<_>>(),
        [case_id.as_str()]
    );
    running.stop().await;

    // Wednesday 14 October: breached, once, and not again after another restart.
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-10-14").await?;
    eventually("the breach alarm", wait, || async {
        Ok((alarms(&pool).await? == (1, 1)).then_some(()))
    })
    .await?;
    running.stop().await;
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-10-14").await?;
    let mut client = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let overdue = eventually("the breach on the board", wait, || {
        let mut client = client.clone();
        async move {
            let overdue = client
                .list_deadlines(ListDeadlinesRequest {
                    filter: DeadlineFilter::Overdue as i32,
                    procuratorate: "贵阳市南明区人民检察院".to_owned(),
                    ..ListDeadlinesRequest::default()
                })
                .await?
                .into_inner()
                .deadlines;
            Ok((!overdue.is_empty()).then_some(overdue))
        }
    })
    .await?;
    assert_eq!(overdue[0].case_id, case_id);
    assert_eq!(overdue[0].working_days_left, -1);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(alarms(&pool).await?, (1, 1), "an alarm was raised twice");
    let statistics = client
        .get_stage_statistics(GetStageStatisticsRequest::default())
        .await?
        .into_inner()
        .stages;
    assert!(
        statistics
            .iter()
            .any(|s| s.stage == Stage::Applied as i32 && s.open_cases == 1 && s.overdue_cases == 1),
        "{statistics:?}"
    );
    let metrics = scrape(&running).await?;
    assert!(
        metrics.contains("jiuzhu_relief_cases_overdue{stage=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jiuzhu_outbox_unpublished{service=\"decisions\"}"),
        "{metrics}"
    );

    // Accepting completes the stage: the new one has its own clock, and nothing is raised
    // for the old one.
    let due = client
        .accept_case(AcceptCaseRequest {
            request_id: "deadline-accept".to_owned(),
            case_id: case_id.clone(),
            accepted_by: "relief-prosecutor-1".to_owned(),
        })
        .await?
        .into_inner()
        .opinion_due;
    assert_eq!(due, "2026-10-28");
    let statistics = eventually("the accepted stage in the statistics", wait, || {
        let mut client = client.clone();
        async move {
            let stages = client
                .get_stage_statistics(GetStageStatisticsRequest::default())
                .await?
                .into_inner()
                .stages;
            Ok(stages
                .iter()
                .any(|s| s.stage == Stage::Applied as i32 && s.completed == 1)
                .then_some(stages))
        }
    })
    .await?;
    assert!(
        statistics
            .iter()
            .any(|s| s.stage == Stage::Applied as i32 && s.max_days == 16),
        "{statistics:?}"
    );
    running.stop().await;
    pool.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recommendation_names_its_model_precedents_and_factors_and_a_departure_says_why()
-> TestResult {
    // A model trained on synthetic past cases, as `jiuzhu recommend train` writes it.
    let history = jiuzhu_recommend::generate::past_cases(3000, 21);
    let model = jiuzhu_recommend::Recommender::train(&history, "test-model-1", |_, _| {})?;
    let path = std::env::temp_dir().join(format!("jiuzhu-model-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&path, serde_json::to_vec(&model)?)?;

    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Decisions>().await?;
    let mut settings = jiuzhu_testkit::settings("decisions", &database, &ns);
    settings
        .own
        .set(&jiuzhu_decisions::settings::RecommenderSettings {
            model: Some(path.clone()),
        });
    let running = jiuzhu_runtime::start::<Decisions>(settings).await?;
    let mut client = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let person = jiuzhu_tests::announced_person(&ns).await?;
    let case_id = jiuzhu_tests::open_case_once_known(
        &mut client,
        application("rec-open", &person, "(2026)黔0102刑初61号"),
    )
    .await?
    .case_id;
    let features = CaseFeatures {
        serious_injury: true,
        disability_grade: 4,
        medical_costs: Some(Money { fen: 2_400_000 }),
        income_per_head: Some(Money { fen: 500_000 }),
        household_size: 4,
        dependants: 2,
        minors: 2,
        registered_poor: true,
        minimum_line: Some(Money { fen: 80_000 }),
        ..CaseFeatures::default()
    };
    let bad = client
        .recommend_relief(RecommendReliefRequest {
            request_id: "rec-bad".to_owned(),
            case_id: case_id.clone(),
            features: Some(CaseFeatures {
                disability_grade: 12,
                ..CaseFeatures::default()
            }),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad features were taken"))?;
    assert_eq!(
        bad_fields(&bad),
        ["features.minimum_line", "features.disability_grade"]
    );
    let recommended = client
        .recommend_relief(RecommendReliefRequest {
            request_id: "rec-1".to_owned(),
            case_id: case_id.clone(),
            features: Some(features),
        })
        .await?
        .into_inner();
    assert_eq!(recommended.model_version, "test-model-1");
    assert_eq!(recommended.precedents.len(), 5);
    assert!(!recommended.factors.is_empty());
    let amount = recommended.amount.map_or(0, |m| m.fen);
    let cap = recommended.cap.map_or(0, |m| m.fen);
    assert!(amount > 0 && amount <= cap, "{recommended:?}");
    assert!(recommended.low.map_or(0, |m| m.fen) <= amount);
    let methods: Vec<i32> = recommended
        .methods
        .iter()
        .filter(|m| m.probability >= 0.5)
        .map(|m| m.method)
        .collect();
    assert!(methods.contains(&(ReliefMethod::OneTimePayment as i32)));

    // Ready to decide: materials, eligibility, acceptance.
    for (n, name) in [
        "application",
        "identity_proof",
        "proof_of_harm",
        "proof_of_hardship",
    ]
    .into_iter()
    .enumerate()
    {
        client
            .register_material(material(&format!("rec-m-{n}"), &case_id, name))
            .await?;
    }
    client
        .assess_eligibility(AssessEligibilityRequest {
            request_id: "rec-assess".to_owned(),
            case_id: case_id.clone(),
            facts: vec![
                "seriously_injured_or_disabled".to_owned(),
                "offender_cannot_pay_or_unknown".to_owned(),
            ],
            assessed_by: "relief-prosecutor-1".to_owned(),
            category: String::new(),
        })
        .await?;
    client
        .accept_case(AcceptCaseRequest {
            request_id: "rec-accept".to_owned(),
            case_id: case_id.clone(),
            accepted_by: "relief-prosecutor-1".to_owned(),
        })
        .await?;
    let propose = |request_id: &str, fen: i64, reason: &str| ProposeDecisionRequest {
        request_id: request_id.to_owned(),
        case_id: case_id.clone(),
        amount: Some(Money { fen }),
        methods: methods.clone(),
        departure_reason: reason.to_owned(),
        proposed_by: "relief-prosecutor-1".to_owned(),
        ..ProposeDecisionRequest::default()
    };
    let high = recommended.high.map_or(0, |m| m.fen);
    let unexplained = client
        .propose_decision(propose("rec-p-1", high + 100_000, ""))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unexplained departure was taken"))?;
    assert_eq!(bad_fields(&unexplained), ["departure_reason"]);
    let proposed = client
        .propose_decision(propose("rec-p-2", amount, ""))
        .await?
        .into_inner();
    approver(running.grpc_addr, &proposed.required_approver)
        .await?
        .approve_decision(ApproveDecisionRequest {
            request_id: "rec-approve".to_owned(),
            case_id: case_id.clone(),
            ..ApproveDecisionRequest::default()
        })
        .await?;

    // The decided case comes back as training data in the history format, to the trainer only.
    let refused = client
        .export_decided_cases(ExportDecidedCasesRequest {})
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(
        refused,
        Some(Code::PermissionDenied),
        "another system exported"
    );
    let mut trainer = trainer(running.grpc_addr).await?;
    let mut exported = trainer
        .export_decided_cases(ExportDecidedCasesRequest {})
        .await?
        .into_inner();
    let mut cases = Vec::new();
    while let Some(record) = exported.message().await? {
        cases.push(serde_json::from_str::<jiuzhu_recommend::PastCase>(
            &record.json,
        )?);
    }
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].case_id, case_id);
    assert_eq!(cases[0].amount_fen, amount);
    assert!(cases[0].features.serious_injury);
    assert_eq!(cases[0].features.category, "serious_injury_unpaid");
    assert!(cases[0].methods.contains(&"one_time_payment".to_owned()));
    assert_eq!(cases[0].outcome, None, "not followed up yet");

    // Follow-up's visit comes back with the case as its training label.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", jiuzhu_testkit::kafka_brokers())
        .create()?;
    let mut kafka = jiuzhu_messaging::KafkaSettings {
        brokers: jiuzhu_testkit::kafka_brokers(),
        ..jiuzhu_messaging::KafkaSettings::default()
    };
    kafka.partitions = 3;
    jiuzhu_messaging::ensure_topics(
        &kafka,
        &[format!(
            "{ns}{}",
            jiuzhu_messaging::service_topic("followup")
        )],
    )
    .await?;
    jiuzhu_tests::publish(
        &producer,
        &ns,
        "followup",
        &case_id,
        &jiuzhu_proto::followup::VisitRecorded {
            plan_id: uuid::Uuid::now_v7().to_string(),
            case_id: case_id.clone(),
            number: 1,
            visited_on: "2026-12-20".to_owned(),
            months_since_payment: 1,
            outcome: Some(jiuzhu_proto::followup::VisitOutcome {
                effect_score: 64,
                scoring_method: "effect-v1".to_owned(),
                trend: jiuzhu_proto::followup::Trend::Baseline as i32,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await?;
    let labelled = eventually(
        "the outcome label",
        std::time::Duration::from_secs(60),
        || {
            let mut trainer = trainer.clone();
            async move {
                let mut exported = trainer
                    .export_decided_cases(ExportDecidedCasesRequest {})
                    .await?
                    .into_inner();
                let mut outcome = None;
                while let Some(record) = exported.message().await? {
                    outcome =
                        serde_json::from_str::<jiuzhu_recommend::PastCase>(&record.json)?.outcome;
                }
                Ok(outcome)
            }
        },
    )
    .await?;
    assert_eq!(
        (
            labelled.effect_score,
            labelled.trend.as_str(),
            labelled.last_visit
        ),
        (64, "baseline", 1)
    );
    running.stop().await;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_relief_is_paid_first_and_its_owed_materials_are_watched() -> TestResult {
    let wait = std::time::Duration::from_secs(60);
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Decisions>().await?;
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-11-02").await?;
    let mut client = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let person = jiuzhu_tests::announced_person(&ns).await?;
    let mut request = application("urgent-open", &person, "(2026)黔0102刑初77号");
    request.category = "urgent_medical".to_owned();
    let case_id = jiuzhu_tests::open_case_once_known(&mut client, request)
        .await?
        .case_id;
    client
        .register_material(material("urgent-m-1", &case_id, "application"))
        .await?;
    client
        .assess_eligibility(AssessEligibilityRequest {
            request_id: "urgent-assess".to_owned(),
            case_id: case_id.clone(),
            facts: vec![
                "urgent_medical_need".to_owned(),
                "cannot_pay_treatment".to_owned(),
            ],
            assessed_by: "relief-prosecutor-1".to_owned(),
            category: String::new(),
        })
        .await?;
    // Not accepted, materials missing: decided and approved all the same.
    let proposed = client
        .propose_decision(ProposeDecisionRequest {
            request_id: "urgent-propose".to_owned(),
            case_id: case_id.clone(),
            amount: Some(Money { fen: 600_000 }),
            methods: vec![ReliefMethod::OneTimePayment as i32],
            proposed_by: "relief-prosecutor-1".to_owned(),
            ..ProposeDecisionRequest::default()
        })
        .await?
        .into_inner();
    approver(running.grpc_addr, &proposed.required_approver)
        .await?
        .approve_decision(ApproveDecisionRequest {
            request_id: "urgent-approve".to_owned(),
            case_id: case_id.clone(),
            ..ApproveDecisionRequest::default()
        })
        .await?;
    let case = relief_case(&mut client, &case_id).await?;
    assert_eq!(case.stage, Stage::Approved as i32);
    assert_eq!(case.owed_materials, ["identity_proof", "medical_urgency"]);
    assert_eq!(case.owed_by, "2026-11-30");
    running.stop().await;

    // 1 December: the materials are late, and the breach is raised once.
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let breaches = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.decisions.v1.MaterialsObligationBreached'",
        )
        .fetch_one(&pool)
    };
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-12-01").await?;
    eventually("the obligation breach", wait, || async {
        Ok((breaches().await? == 1).then_some(()))
    })
    .await?;
    running.stop().await;
    let running = jiuzhu_tests::decisions_on(&ns, &database, "2026-12-01").await?;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(breaches().await?, 1, "a breach was raised twice");
    running.stop().await;
    pool.close().await;
    Ok(())
}

/// The decisions client of Jiuzhu's trainer, the one system that exports decided cases.
async fn trainer(
    addr: std::net::SocketAddr,
) -> anyhow::Result<DecisionsServiceClient<tonic::transport::Channel>> {
    let identity = jiuzhu_access::Identity::new(
        "jiuzhu",
        "000000",
        jiuzhu_access::Role::Service,
        jiuzhu_access::dev::TRAINER,
    );
    Ok(DecisionsServiceClient::new(
        jiuzhu_testkit::channel_as(addr, &identity).await?,
    ))
}
