//! One person across the services: a person registered twice (by two departments) and merged
//! in the registry is one person for the once-only relief rule and for clue matching, whichever
//! of the two records a caller names; the merge is recorded as the verified caller; an unmerge
//! makes two persons again. A case cannot be opened for a person the registry never registered.
//! Statuses and identity answer as of a date; a referral reaches the department that must act,
//! sealed for it, and is answered or alarmed; a rejected applicant objects and is relieved once.
//! The last test tells one woman's whole story across the services.

use std::time::Duration;

use jiuzhu_clues::Clues;
use jiuzhu_decisions::Decisions;
use jiuzhu_persons::Standing;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::clues::{Harm, PartyRole, ReportPartyRequest};
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::decisions::{CaseOrigin, OpenCaseRequest};
use jiuzhu_proto::registry::{
    MergePersonsRequest, PersonMerged, RegisterPersonRequest, UnmergePersonRequest,
};
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::payments::approver_named;
use jiuzhu_tests::{
    TestResult, eventually, linkage_status, open_case_once_known, read_topic, registry_client,
    start, villager,
};
use prost::Message as _;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

fn application(request_id: &str, person_id: &str, case_no: &str) -> OpenCaseRequest {
    OpenCaseRequest {
        request_id: request_id.to_owned(),
        origin: CaseOrigin::Application as i32,
        person_id: person_id.to_owned(),
        case_no: case_no.to_owned(),
        procuratorate: "北京市朝阳区人民检察院".to_owned(),
        region_code: "110105".to_owned(),
        category: "serious_injury_unpaid".to_owned(),
        applicant_relation: "self".to_owned(),
        ..OpenCaseRequest::default()
    }
}

/// How many events of `event_type` a service's store holds.
async fn recorded(pool: &sqlx::PgPool, event_type: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(pool)
            .await?,
    )
}

/// An urgent-medical application of `person` for the crime `case_no` at Yunyan's office
/// (520103), assessed eligible: ready to be decided. Its case id.
async fn assessed_application(
    office: &mut DecisionsServiceClient<tonic::transport::Channel>,
    tag: &str,
    person: &str,
    case_no: &str,
) -> anyhow::Result<String> {
    use jiuzhu_proto::decisions::AssessEligibilityRequest;
    let case_id = open_case_once_known(
        office,
        OpenCaseRequest {
            region_code: "520103".to_owned(),
            procuratorate: "贵阳市云岩区人民检察院".to_owned(),
            category: "urgent_medical".to_owned(),
            ..application(&format!("{tag}-open"), person, case_no)
        },
    )
    .await?
    .case_id;
    office
        .assess_eligibility(AssessEligibilityRequest {
            request_id: format!("{tag}-assess"),
            case_id: case_id.clone(),
            facts: vec!["urgent_medical_need".to_owned()],
            ..AssessEligibilityRequest::default()
        })
        .await?;
    Ok(case_id)
}

/// The villager of `by_civil_affairs` as two departments recorded her: civil affairs with her
/// resident id, rural revitalization without it (its request id: the first's with `-rural`).
/// The two record ids.
async fn registered_twice(
    people: &mut jiuzhu_proto::registry::registry_service_client::RegistryServiceClient<
        tonic::transport::Channel,
    >,
    by_civil_affairs: &RegisterPersonRequest,
) -> anyhow::Result<(String, String)> {
    let first = people
        .register_person(by_civil_affairs.clone())
        .await?
        .into_inner()
        .person_id;
    let second = people
        .register_person(RegisterPersonRequest {
            request_id: format!("{}-rural", by_civil_affairs.request_id),
            resident_id: String::new(),
            source_department: "rural_revitalization".to_owned(),
            ..by_civil_affairs.clone()
        })
        .await?
        .into_inner()
        .person_id;
    Ok((first, second))
}

/// The first referral on health's share topic in namespace `ns`, as health reads it.
fn health_referral(ns: &str) -> anyhow::Result<jiuzhu_proto::decisions::ReferralIssued> {
    use jiuzhu_proto::common::EventEnvelope;
    use jiuzhu_proto::decisions::ReferralIssued;
    read_topic(&kafka_brokers(), &format!("{ns}jiuzhu.share.health.v1"), 1)?
        .iter()
        .filter_map(|record| {
            use rdkafka::Message as _;
            let envelope = EventEnvelope::decode(record.payload()?).ok()?;
            (envelope.event_type == "jiuzhu.decisions.v1.ReferralIssued")
                .then(|| ReferralIssued::decode(envelope.payload.as_slice()).ok())?
        })
        .next()
        .ok_or_else(|| anyhow::anyhow!("no referral on health's topic"))
}

/// Waits until the decisions service has `record` standing for `survivor`.
async fn decisions_sees(pool: &sqlx::PgPool, record: &str, survivor: &str) -> anyhow::Result<()> {
    let (record, survivor) = (
        uuid::Uuid::parse_str(record)?,
        uuid::Uuid::parse_str(survivor)?,
    );
    eventually(
        &format!("decisions to see {record} as {survivor}"),
        WAIT,
        || async move {
            let mut conn = pool.acquire().await?;
            let standing = jiuzhu_persons::lookup(&mut conn, record).await?;
            Ok((standing
                == Standing::Person {
                    survivor,
                    erased: false,
                })
            .then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_registered_twice_and_merged_gets_one_relief_per_crime() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let decisions_pool = decisions.running.store.pool().clone();
    let mut people = registry_client(&registry.running).await?;
    let mut relief =
        DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions.running.grpc_addr).await?);

    let by_civil_affairs = villager("one-1", "龙秀英", "civil_affairs");
    let (first, second) = registered_twice(&mut people, &by_civil_affairs).await?;
    assert_ne!(first, second, "two records before the merge");

    // A person the registry never registered gets no case.
    let stranger = uuid::Uuid::now_v7().to_string();
    let refused = relief
        .open_case(application("stranger", &stranger, "(2026)京0105刑初300号"))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a case was opened for an unregistered person"))?;
    assert_eq!(refused.code(), Code::NotFound);
    assert!(
        refused.message().contains(&stranger),
        "{}",
        refused.message()
    );

    // Relief for the crime under the first record.
    let crime = "(2026)京0105刑初301号";
    let case = open_case_once_known(&mut relief, application("first-case", &first, crime)).await?;
    assert_eq!(case.person_id, first);
    eventually("both records in the linkage index", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 2).then_some(()))
    })
    .await?;

    // The registry merges the first record into the second.
    people
        .merge_persons(MergePersonsRequest {
            request_id: "one-merge".to_owned(),
            survivor_id: second.clone(),
            absorbed_id: first.clone(),
            reason: "one woman, registered by two departments".to_owned(),
            decided_by: "whoever the request says".to_owned(),
        })
        .await?;
    decisions_sees(&decisions_pool, &first, &second).await?;

    // A second relief for the same crime under the other record is refused, naming the case.
    let again = relief
        .open_case(application("second-case", &second, crime))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a second relief for one crime was opened"))?;
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(
        again.message().contains(&case.case_id),
        "{}",
        again.message()
    );
    // Another crime under the absorbed record: the case is the survivor's.
    let other = relief
        .open_case(application("other-crime", &first, "(2026)京0105刑初302号"))
        .await?
        .into_inner();
    assert_eq!(
        other.person_id, second,
        "a merged record's case is its survivor's"
    );

    // Who merged is the verified caller, not the request's text.
    let topic = registry.running.store.topic().to_owned();
    let merged: Vec<PersonMerged> = read_topic(&kafka_brokers(), &topic, 3)?
        .iter()
        .filter_map(|record| {
            use rdkafka::Message as _;
            let envelope = jiuzhu_proto::common::EventEnvelope::decode(record.payload()?).ok()?;
            (envelope.event_type == "jiuzhu.registry.v1.PersonMerged")
                .then(|| PersonMerged::decode(envelope.payload.as_slice()).ok())?
        })
        .collect();
    assert_eq!(merged.len(), 1);
    assert!(
        merged[0].decided_by.starts_with("spiffe://jiuzhu/"),
        "{}",
        merged[0].decided_by
    );

    // Clue matching knows one person: the merged record leaves the index and a party who is
    // her is matched to the survivor.
    eventually(
        "the merged record out of the linkage index",
        WAIT,
        || async { Ok((linkage_status(&clues.running).await?.0 == 1).then_some(())) },
    )
    .await?;
    let clue = CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?)
        .report_party(ReportPartyRequest {
            request_id: "one-party".to_owned(),
            case_no: "(2026)京0105刑初303号".to_owned(),
            party_ref: "V1".to_owned(),
            procuratorate: "北京市朝阳区人民检察院".to_owned(),
            role: PartyRole::Victim as i32,
            harm: Some(Harm {
                serious_injury: true,
                ..Harm::default()
            }),
            full_name: by_civil_affairs.full_name.clone(),
            birth_date: by_civil_affairs.birth_date.clone(),
            id_number: by_civil_affairs.resident_id.clone(),
            address: "新场村".to_owned(),
            region: by_civil_affairs.region.clone(),
            ..ReportPartyRequest::default()
        })
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("no clue for the merged person"))?;
    assert_eq!(clue.person_id, second);

    // An unmerge makes two persons again: the second record may have its own relief.
    people
        .unmerge_person(UnmergePersonRequest {
            request_id: "one-unmerge".to_owned(),
            absorbed_id: first.clone(),
            reason: "two women after all".to_owned(),
            decided_by: String::new(),
        })
        .await?;
    decisions_sees(&decisions_pool, &first, &first).await?;
    let own = relief
        .open_case(application("second-own-case", &second, crime))
        .await?
        .into_inner();
    assert_eq!(own.person_id, second);
    assert_ne!(own.case_id, case.case_id);
    eventually(
        "the unmerged record back in the linkage index",
        WAIT,
        || async { Ok((linkage_status(&clues.running).await?.0 == 2).then_some(())) },
    )
    .await?;

    for service in [clues, decisions, registry] {
        service.running.stop().await;
    }
    Ok(())
}

/// "Was she registered poor on the day of the crime?": the registry and the decisions service
/// answer for a date, from the dates a status was in effect, not from how it stands today.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_answers_as_of_a_date() -> TestResult {
    use jiuzhu_proto::registry::{
        EndStatusRequest, GetPersonRequest, RecordStatusRequest, StatusKind,
    };
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let mut people = registry_client(&registry.running).await?;
    let person = people
        .register_person(villager("asof-1", "杨秀珍", "civil_affairs"))
        .await?
        .into_inner()
        .person_id;
    // Registered poor from 1 November; the status ended on 20 November.
    let status_id = people
        .record_status(RecordStatusRequest {
            request_id: "asof-status".to_owned(),
            person_id: person.clone(),
            kind: StatusKind::RegisteredPoor as i32,
            source_department: "rural_revitalization".to_owned(),
            reference: "黔乡振〔2026〕88号".to_owned(),
            effective_from: "2026-11-01".to_owned(),
            ..RecordStatusRequest::default()
        })
        .await?
        .into_inner()
        .status_id;
    people
        .end_status(EndStatusRequest {
            request_id: "asof-end".to_owned(),
            person_id: person.clone(),
            status_id: status_id.clone(),
            effective_to: "2026-11-20".to_owned(),
            reason: "income above the line".to_owned(),
        })
        .await?;
    let (reader, whom) = (people.clone(), person.clone());
    let person_on = move |as_of: &str| {
        let mut people = reader.clone();
        let request = GetPersonRequest {
            person_id: whom.clone(),
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            as_of: as_of.to_owned(),
        };
        async move {
            let found = people.get_person(request).await?.into_inner().person;
            anyhow::Ok(found.unwrap_or_default())
        }
    };
    let statuses_on = |as_of: &str| {
        let found = person_on(as_of);
        async move {
            anyhow::Ok(
                found
                    .await?
                    .statuses
                    .into_iter()
                    .map(|s| s.status_id)
                    .collect::<Vec<_>>(),
            )
        }
    };
    // The registry's view is built from its events: wait for the end to reach it.
    eventually("the ended status in the registry's view", WAIT, || {
        let mut people = people.clone();
        let request = GetPersonRequest {
            person_id: person.clone(),
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            as_of: String::new(),
        };
        async move {
            Ok(match people.get_person(request).await {
                Ok(found) => found
                    .into_inner()
                    .person
                    .filter(|p| p.statuses.iter().any(|s| s.ended)),
                Err(status) if status.code() == Code::NotFound => None,
                Err(status) => return Err(status.into()),
            })
        }
    })
    .await?;
    let recorded = vec![status_id];
    assert_eq!(statuses_on("2026-11-10").await?, recorded);
    assert_eq!(
        statuses_on("2026-11-20").await?,
        recorded,
        "the end day counts"
    );
    assert!(statuses_on("2026-11-21").await?.is_empty());
    assert!(statuses_on("2026-10-31").await?.is_empty());
    assert_eq!(
        statuses_on("").await?,
        recorded,
        "without a date: all, ended marked"
    );
    let bad = people
        .get_person(GetPersonRequest {
            person_id: person.clone(),
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            as_of: "10 November".to_owned(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a date that is not one was taken"))?;
    assert_eq!(jiuzhu_tests::bad_fields(&bad), ["as_of"]);

    // Her identity as the registry held it on a day: registered on 5 November as 杨秀珍, her
    // name corrected to 杨秀贞 on the 16th (the events' recording times are set to those days).
    people
        .update_person(jiuzhu_proto::registry::UpdatePersonRequest {
            request_id: "asof-rename".to_owned(),
            person_id: person.clone(),
            full_name: "杨秀贞".to_owned(),
            ..jiuzhu_proto::registry::UpdatePersonRequest::default()
        })
        .await?;
    let registry_pool = registry.running.store.pool().clone();
    for (event_type, at) in [
        (
            "jiuzhu.registry.v1.PersonRegistered",
            "2026-11-05T02:00:00Z",
        ),
        ("jiuzhu.registry.v1.PersonUpdated", "2026-11-15T17:30:00Z"),
    ] {
        sqlx::query(
            "UPDATE events SET occurred_at = $3::timestamptz WHERE stream_id = $1 AND event_type = $2",
        )
        .bind(&person)
        .bind(event_type)
        .bind(at)
        .execute(&registry_pool)
        .await?;
    }
    let name_on = |as_of: &str| {
        let found = person_on(as_of);
        async move { anyhow::Ok(found.await?.full_name) }
    };
    assert_eq!(name_on("2026-11-10").await?, "杨秀珍");
    assert_eq!(
        name_on("2026-11-15").await?,
        "杨秀珍",
        "17:30 UTC on the 15th is the 16th in Beijing"
    );
    assert_eq!(name_on("2026-11-16").await?, "杨秀贞");
    assert_eq!(
        name_on("2026-10-01").await?,
        "杨秀珍",
        "before her registration: as first registered"
    );

    // The decisions service keeps the dates too: poor on the 10th, not on the 25th.
    let pool = decisions.running.store.pool().clone();
    let person_id = uuid::Uuid::parse_str(&person)?;
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default();
    eventually("the ended status in decisions", WAIT, || {
        let pool = pool.clone();
        async move {
            let ended = !jiuzhu_decisions::projections::household(&pool, person_id, day(25))
                .await?
                .registered_poor;
            let held = jiuzhu_decisions::projections::household(&pool, person_id, day(10))
                .await?
                .registered_poor;
            Ok((held && ended).then_some(()))
        }
    })
    .await?;
    for service in [decisions, registry] {
        service.running.stop().await;
    }
    Ok(())
}

/// 申诉/复查: a rejected applicant objects in time; the approver who rejected may not review
/// it; another approver amends the decision to an amount, which payments orders once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_applicant_objects_and_another_approver_amends_to_an_amount_paid_once()
-> TestResult {
    use jiuzhu_proto::common::Money;
    use jiuzhu_proto::decisions::{
        FileObjectionRequest, GetCaseRequest, ObjectionOutcome, RejectDecisionRequest,
        ReviewObjectionRequest, Stage,
    };
    let ns = unique_namespace();
    let decisions = start::<Decisions>(&ns).await?;
    let payments = start::<jiuzhu_payments::Payments>(&ns).await?;
    let at = decisions.running.grpc_addr;
    let mut office = DecisionsServiceClient::new(jiuzhu_testkit::channel(at).await?);
    let person = jiuzhu_tests::announced_person(&ns).await?;
    let case_id =
        assessed_application(&mut office, "objection", &person, "(2026)黔0103刑初500号").await?;
    let mut first = approver_named(at, "520103", "approver-wang", "department_head").await?;
    let mut second = approver_named(at, "520103", "approver-li", "department_head").await?;
    first
        .reject_decision(RejectDecisionRequest {
            request_id: "objection-reject".to_owned(),
            case_id: case_id.clone(),
            reason: "inability to pay for treatment not shown".to_owned(),
            ..RejectDecisionRequest::default()
        })
        .await?;
    let objected = office
        .file_objection(FileObjectionRequest {
            request_id: "objection-file".to_owned(),
            case_id: case_id.clone(),
            grounds: "the hospital's bill and the family's income, now attached".to_owned(),
            filed_on: String::new(),
        })
        .await?
        .into_inner();
    assert!(!objected.review_due.is_empty(), "the review has a deadline");

    let amended = ReviewObjectionRequest {
        request_id: "objection-review".to_owned(),
        case_id: case_id.clone(),
        outcome: ObjectionOutcome::Amended as i32,
        amount: Some(Money { fen: 600_000 }),
        methods: Vec::new(),
        reason: "inability to pay shown by the bill".to_owned(),
    };
    let own = first
        .review_objection(ReviewObjectionRequest {
            request_id: "objection-own-review".to_owned(),
            ..amended.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("the rejecting approver reviewed the objection"))?;
    assert_eq!(own.code(), Code::PermissionDenied);
    let no_amount = second
        .review_objection(ReviewObjectionRequest {
            request_id: "objection-bad-review".to_owned(),
            amount: None,
            outcome: 9,
            ..amended.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a review without an outcome was taken"))?;
    assert_eq!(jiuzhu_tests::bad_fields(&no_amount), ["outcome"]);
    second.review_objection(amended.clone()).await?;
    second.review_objection(amended).await?; // a retry changes nothing

    let case = office
        .get_case(GetCaseRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            case_id: case_id.clone(),
        })
        .await?
        .into_inner()
        .relief_case
        .unwrap_or_default();
    let stages: Vec<i32> = case.stages.iter().map(|s| s.stage).collect();
    assert_eq!(
        stages[stages.len() - 3..],
        [
            Stage::Rejected as i32,
            Stage::ObjectionReview as i32,
            Stage::Approved as i32
        ]
    );
    // Payments orders the amended amount, once.
    let pool = payments.running.store.pool().clone();
    let ordered = "jiuzhu.payments.v1.DisbursementOrdered";
    eventually("the amended amount ordered", WAIT, || async {
        Ok((recorded(&pool, ordered).await? >= 1).then_some(()))
    })
    .await?;
    let approvals = recorded(
        decisions.running.store.pool(),
        "jiuzhu.decisions.v1.DecisionApproved",
    )
    .await?;
    assert_eq!(approvals, 1, "one approval, whatever the retries");
    assert_eq!(recorded(&pool, ordered).await?, 1, "paid once");
    for service in [payments, decisions] {
        service.running.stop().await;
    }
    Ok(())
}

/// A medical referral reaches health with whom to treat and how to reach her, sealed for health
/// alone under its key (which only health's integrator gets), as its agreement's referral
/// clause allows; health acknowledges it and the case shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_medical_referral_reaches_health_with_its_subject_sealed_and_is_acknowledged()
-> TestResult {
    use jiuzhu_proto::decisions::{ReferralStatus, ReferralUpdate, ReliefMethod};
    use jiuzhu_proto::registry::PersonalIdentity;
    use jiuzhu_proto::registry::person_key_service_client::PersonKeyServiceClient;
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let registration = villager("referral-1", "吴桂芬", "civil_affairs");
    let person = registry_client(&registry.running)
        .await?
        .register_person(RegisterPersonRequest {
            phone: "13800001234".to_owned(),
            ..registration.clone()
        })
        .await?
        .into_inner()
        .person_id;
    let at = decisions.running.grpc_addr;
    let office = DecisionsServiceClient::new(jiuzhu_testkit::channel(at).await?);
    let case_id = jiuzhu_tests::payments::approve_with_methods(
        at,
        "600",
        &person,
        "贵阳市云岩区人民检察院",
        500_000,
        1,
        &[ReliefMethod::OneTimePayment, ReliefMethod::Medical],
    )
    .await?;

    // Health's copy of the referral, on its share topic.
    let referral = health_referral(&ns)?;
    assert!(
        referral.person_id.starts_with("ps-"),
        "a pseudonym, not the id"
    );
    let subject = referral
        .subject
        .ok_or_else(|| anyhow::anyhow!("the referral names no one to help"))?;
    assert_eq!(
        subject.person_id, referral.person_id,
        "bound to the pseudonym"
    );

    // Only health's integrator gets health's key; it opens the subject: the clause's fields.
    let registry_at = registry.running.grpc_addr;
    let other = PersonKeyServiceClient::new(
        jiuzhu_testkit::channel_as(registry_at, &jiuzhu_tests::integrator("education")).await?,
    )
    .get_department_key(jiuzhu_proto::registry::GetDepartmentKeyRequest {})
    .await?
    .into_inner();
    let key = PersonKeyServiceClient::new(
        jiuzhu_testkit::channel_as(registry_at, &jiuzhu_tests::integrator("health")).await?,
    )
    .get_department_key(jiuzhu_proto::registry::GetDepartmentKeyRequest {})
    .await?
    .into_inner();
    assert_eq!(key.department, "health");
    let refused = PersonKeyServiceClient::new(jiuzhu_testkit::channel(registry_at).await?)
        .get_department_key(jiuzhu_proto::registry::GetDepartmentKeyRequest {})
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a service got a department's key"))?;
    assert_eq!(refused.code(), Code::PermissionDenied);
    let wrong = jiuzhu_vault::DataKey::from_bytes(&other.subject_key)?;
    assert!(
        wrong.open_for::<PersonalIdentity>(&subject).is_err(),
        "another department's key opens nothing"
    );
    let opened: PersonalIdentity =
        jiuzhu_vault::DataKey::from_bytes(&key.subject_key)?.open_for(&subject)?;
    assert_eq!(opened.full_name, "吴桂芬");
    assert_eq!(opened.phone, "13800001234");
    assert_eq!(opened.village, "新场村");
    assert!(opened.resident_id.is_empty(), "not in the clause");

    // Health acknowledges on its inbound topic; the case shows it.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let update = ReferralUpdate {
        referral_id: referral.referral_id.clone(),
        status: ReferralStatus::Acknowledged as i32,
        outcome: "admitted to the county hospital".to_owned(),
        handled_by: "health-officer-3".to_owned(),
    }
    .encode_to_vec();
    jiuzhu_tests::send_inbound(
        &producer,
        &ns,
        "health",
        "referral",
        &update,
        Some("jiuzhu.decisions.v1.ReferralUpdate"),
        Some(&jiuzhu_tests::integrator("health")),
    )
    .await?;
    let acknowledged =
        jiuzhu_tests::referral_in(&office, &case_id, ReferralStatus::Acknowledged).await?;
    assert_eq!(acknowledged.outcome, "admitted to the county hospital");
    for service in [decisions, registry] {
        service.running.stop().await;
    }
    Ok(())
}

/// A referral health has not acknowledged by its day raises `ReferralOverdue`, once, like a
/// stage past its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_unacknowledged_past_its_day_alarms() -> TestResult {
    use jiuzhu_proto::decisions::ReliefMethod;
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Decisions>().await?;
    let on = |today: &'static str| jiuzhu_tests::decisions_on(&ns, &database, today);
    // Monday 2 November 2026: approved with medical help, referred to health.
    let running = on("2026-11-02").await?;
    let person = jiuzhu_tests::announced_person(&ns).await?;
    jiuzhu_tests::payments::approve_with_methods(
        running.grpc_addr,
        "800",
        &person,
        "贵阳市云岩区人民检察院",
        300_000,
        1,
        &[ReliefMethod::Medical],
    )
    .await?;
    running.stop().await;

    // Tuesday 10 November: past the fifth working day, and health never answered.
    let running = on("2026-11-10").await?;
    let pool = running.store.pool().clone();
    eventually("the referral overdue", WAIT, || async {
        Ok((recorded(&pool, "jiuzhu.decisions.v1.ReferralOverdue").await? == 1).then_some(()))
    })
    .await?;
    // And the dashboard counts it.
    let metrics = jiuzhu_tests::scrape(&running).await?;
    assert!(
        metrics.contains("jiuzhu_relief_referrals_overdue{department=\"health\"} 1"),
        "{metrics}"
    );
    running.stop().await;
    Ok(())
}

/// An objection to an approved amount has its own review day: past it, `ObjectionReviewOverdue`
/// is raised once, the dashboard counts it, and `ListDeadlines` lists it beside the case's own
/// stage, page by page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_objection_unreviewed_past_its_day_alarms_and_is_listed() -> TestResult {
    use jiuzhu_proto::decisions::{
        DeadlineFilter, FileObjectionRequest, ListDeadlinesRequest, Stage,
    };
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Decisions>().await?;
    let on = |today: &'static str| jiuzhu_tests::decisions_on(&ns, &database, today);
    // Approved on Monday 2 November 2026; the applicant objected to the amount the same day.
    let running = on("2026-11-02").await?;
    let person = jiuzhu_tests::announced_person(&ns).await?;
    let case_id = jiuzhu_tests::payments::approve_case(
        running.grpc_addr,
        "810",
        &person,
        "贵阳市云岩区人民检察院",
        300_000,
    )
    .await?;
    let mut office = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let due = office
        .file_objection(FileObjectionRequest {
            request_id: "late-review-object".to_owned(),
            case_id: case_id.clone(),
            grounds: "the loss of income was left out".to_owned(),
            filed_on: String::new(),
        })
        .await?
        .into_inner()
        .review_due;
    // Ten working days from Monday 2 November.
    assert_eq!(due, "2026-11-16");
    running.stop().await;

    // Friday 20 November: nobody has reviewed it.
    let running = on("2026-11-20").await?;
    let pool = running.store.pool().clone();
    eventually("the review overdue", WAIT, || async {
        Ok(
            (recorded(&pool, "jiuzhu.decisions.v1.ObjectionReviewOverdue").await? == 1)
                .then_some(()),
        )
    })
    .await?;
    let metrics = jiuzhu_tests::scrape(&running).await?;
    assert!(
        metrics.contains("jiuzhu_relief_amount_objections_overdue 1"),
        "{metrics}"
    );
    let mut office = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = office
            .list_deadlines(ListDeadlinesRequest {
                filter: DeadlineFilter::Overdue as i32,
                procuratorate: String::new(),
                page_size: 1,
                page_token,
            })
            .await?
            .into_inner();
        listed.extend(
            page.deadlines
                .into_iter()
                .filter(|d| d.case_id == case_id)
                .map(|d| (d.stage, d.due_date)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    listed.sort();
    let approved_due = listed
        .iter()
        .find(|(stage, _)| *stage == Stage::Approved as i32)
        .map(|(_, due)| due.clone());
    assert_eq!(
        listed,
        [
            (Stage::Approved as i32, approved_due.unwrap_or_default()),
            (Stage::ObjectionReview as i32, "2026-11-16".to_owned())
        ],
        "the payment overdue and the review overdue, one page each"
    );
    running.stop().await;
    Ok(())
}

/// Relief given twice before anyone knew: two records, each with a case for the same crime,
/// merged; the later case is flagged, once, for the office.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_that_joins_two_cases_for_one_crime_flags_the_later_one() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let mut people = registry_client(&registry.running).await?;
    let mut relief =
        DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions.running.grpc_addr).await?);
    let by_civil_affairs = villager("double-1", "石玉梅", "civil_affairs");
    let (first, second) = registered_twice(&mut people, &by_civil_affairs).await?;
    let crime = "(2026)京0105刑初900号";
    let earlier = open_case_once_known(&mut relief, application("double-a", &first, crime))
        .await?
        .case_id;
    let later = open_case_once_known(&mut relief, application("double-b", &second, crime))
        .await?
        .case_id;
    people
        .merge_persons(MergePersonsRequest {
            request_id: "double-merge".to_owned(),
            survivor_id: first.clone(),
            absorbed_id: second.clone(),
            reason: "the same woman".to_owned(),
            decided_by: String::new(),
        })
        .await?;
    let pool = decisions.running.store.pool().clone();
    let flagged: (String, String) = eventually("the double relief flagged", WAIT, || async {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT stream_id, payload FROM events \
             WHERE event_type = 'jiuzhu.decisions.v1.DuplicateReliefFlagged'",
        )
        .fetch_all(&pool)
        .await?;
        Ok(match rows.as_slice() {
            [(stream, payload)] => {
                let flag =
                    jiuzhu_proto::decisions::DuplicateReliefFlagged::decode(payload.as_slice())?;
                assert_eq!(flag.person_id, first);
                assert!(
                    flag.merged_by.starts_with("spiffe://jiuzhu/"),
                    "{}",
                    flag.merged_by
                );
                Some((stream.clone(), flag.other_case_id))
            }
            _ => None,
        })
    })
    .await?;
    assert_eq!(flagged, (later, earlier));
    for service in [decisions, registry] {
        service.running.stop().await;
    }
    Ok(())
}

/// One woman's story across the services, as the "done when" tells it: registered by
/// two departments and merged, so a second relief for one crime under her other record is
/// refused; a status recorded last month answers "as of"; her medical referral reaches health,
/// which acknowledges it; her application for another crime is rejected, she objects, and a
/// second approver amends it to an amount, paid once (the simulator is the witness).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_merged_referred_and_relieved_on_objection_end_to_end() -> TestResult {
    use jiuzhu_proto::common::Money;
    use jiuzhu_proto::decisions::{
        FileObjectionRequest, ObjectionOutcome, ReferralStatus, ReferralUpdate,
        RejectDecisionRequest, ReliefMethod, ReviewObjectionRequest,
    };
    use jiuzhu_proto::payments::DisbursementState;
    use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
    use jiuzhu_proto::registry::{GetPersonRequest, RecordStatusRequest, StatusKind};
    use jiuzhu_tests::payments::{
        ORDINARY, PROCURATORATE, Paysim, allocate, approve_with_methods, card, disbursement_in,
        provider_settings, register_payee,
    };
    let ns = unique_namespace();
    let payments_port = jiuzhu_testkit::free_port()?;
    let simulator = Paysim::spawn(Some(&format!("https://127.0.0.1:{payments_port}")), &[]).await?;
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let endpoint = simulator.endpoint.clone();
    let payments = jiuzhu_tests::start_with::<jiuzhu_payments::Payments>(&ns, |s| {
        provider_settings(s, &endpoint, payments_port, 2_000)
    })
    .await?;
    let at = decisions.running.grpc_addr;
    let mut office = DecisionsServiceClient::new(jiuzhu_testkit::channel(at).await?);
    let mut finance = PaymentsServiceClient::new(
        jiuzhu_testkit::channel(std::net::SocketAddr::from(([127, 0, 0, 1], payments_port)))
            .await?,
    );
    let mut people = registry_client(&registry.running).await?;

    // Registered by civil affairs (with her resident id and phone) and by rural
    // revitalization (without): two records, merged into the second.
    let by_civil_affairs = RegisterPersonRequest {
        phone: "13800005678".to_owned(),
        ..villager("story-1", "龙秀英", "civil_affairs")
    };
    let (first, second) = registered_twice(&mut people, &by_civil_affairs).await?;
    people
        .merge_persons(MergePersonsRequest {
            request_id: "story-merge".to_owned(),
            survivor_id: second.clone(),
            absorbed_id: first.clone(),
            reason: "one woman, registered by two departments".to_owned(),
            decided_by: String::new(),
        })
        .await?;
    decisions_sees(decisions.running.store.pool(), &first, &second).await?;

    // Relief for the first crime under her civil-affairs record, with medical help; a second
    // relief for that crime under her other record is refused, naming the case.
    allocate(&mut finance, "story", 2_000_000).await?;
    register_payee(&finance, "story", &second, "龙秀英", &card(ORDINARY, 11)).await?;
    let first_case = approve_with_methods(
        at,
        "701",
        &first,
        PROCURATORATE,
        500_000,
        1,
        &[ReliefMethod::OneTimePayment, ReliefMethod::Medical],
    )
    .await?;
    let again = office
        .open_case(OpenCaseRequest {
            region_code: "520103".to_owned(),
            procuratorate: PROCURATORATE.to_owned(),
            category: "urgent_medical".to_owned(),
            ..application("story-again", &second, "(2026)黔0103刑初701号")
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a second relief for one crime was opened"))?;
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(again.message().contains(&first_case), "{}", again.message());

    // Registered poor since 2 November, recorded now: as of 1 November she was not, as of the
    // 15th she was.
    people
        .record_status(RecordStatusRequest {
            request_id: "story-status".to_owned(),
            person_id: second.clone(),
            kind: StatusKind::RegisteredPoor as i32,
            source_department: "rural_revitalization".to_owned(),
            reference: "黔乡振〔2026〕91号".to_owned(),
            effective_from: "2026-11-02".to_owned(),
            ..RecordStatusRequest::default()
        })
        .await?;
    let statuses_on = |as_of: &'static str| {
        let (mut people, person) = (people.clone(), second.clone());
        async move {
            let found = people
                .get_person(GetPersonRequest {
                    person_id: person,
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    as_of: as_of.to_owned(),
                })
                .await?
                .into_inner()
                .person
                .unwrap_or_default();
            anyhow::Ok(found.statuses.len())
        }
    };
    eventually("the status in the registry's view", WAIT, || async {
        Ok((statuses_on("2026-11-15").await? == 1).then_some(()))
    })
    .await?;
    assert_eq!(statuses_on("2026-11-01").await?, 0, "not yet on the 1st");

    // Health reads the referral on its topic and acknowledges it on its inbound topic.
    let referral = health_referral(&ns)?;
    assert!(
        referral.subject.is_some(),
        "whom to help, sealed for health"
    );
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let acknowledged = ReferralUpdate {
        referral_id: referral.referral_id.clone(),
        status: ReferralStatus::Acknowledged as i32,
        outcome: "admitted to the county hospital".to_owned(),
        handled_by: "health-officer-5".to_owned(),
    };
    jiuzhu_tests::send_inbound(
        &producer,
        &ns,
        "health",
        "story-referral",
        &acknowledged.encode_to_vec(),
        Some("jiuzhu.decisions.v1.ReferralUpdate"),
        Some(&jiuzhu_tests::integrator("health")),
    )
    .await?;
    jiuzhu_tests::referral_in(&office, &first_case, ReferralStatus::Acknowledged).await?;

    // Another crime: rejected by one approver, objected to, amended by another, paid once.
    let second_case =
        assessed_application(&mut office, "story-2", &second, "(2026)黔0103刑初702号").await?;
    approver_named(at, "520103", "approver-wang", "department_head")
        .await?
        .reject_decision(RejectDecisionRequest {
            request_id: "story-reject".to_owned(),
            case_id: second_case.clone(),
            reason: "inability to pay for treatment not shown".to_owned(),
            ..RejectDecisionRequest::default()
        })
        .await?;
    office
        .file_objection(FileObjectionRequest {
            request_id: "story-object".to_owned(),
            case_id: second_case.clone(),
            grounds: "the hospital's bill, now attached".to_owned(),
            filed_on: String::new(),
        })
        .await?;
    let amended = ReviewObjectionRequest {
        request_id: "story-review".to_owned(),
        case_id: second_case.clone(),
        outcome: ObjectionOutcome::Amended as i32,
        amount: Some(Money { fen: 600_000 }),
        methods: Vec::new(),
        reason: "inability to pay shown by the bill".to_owned(),
    };
    let mut reviewer = approver_named(at, "520103", "approver-li", "department_head").await?;
    reviewer.review_objection(amended.clone()).await?;
    reviewer.review_objection(amended).await?; // a retry changes nothing

    for (case_id, fen) in [(&first_case, 500_000), (&second_case, 600_000)] {
        let paid = disbursement_in(&finance, case_id, DisbursementState::Succeeded).await?;
        assert_eq!(paid.amount, Some(Money { fen }));
        let witnessed = simulator.payments_for(&paid.disbursement_id).await?;
        assert_eq!(witnessed.len(), 1, "paid once");
        assert_eq!(witnessed[0].pay_calls, 1);
    }
    let paid_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.payments.v1.DisbursementSucceeded'",
    )
    .fetch_one(payments.running.store.pool())
    .await?;
    assert_eq!(paid_events, 2, "two crimes, two payments, nothing more");
    for service in [payments, decisions, registry] {
        service.running.stop().await;
    }
    Ok(())
}
