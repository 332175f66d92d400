//! Clue acquisition end to end on real PostgreSQL and the broker: a registry person reaches the
//! clues service's linkage index through the registry's topic; case parties are screened by
//! policy, matched (automatically or for review), reported idempotently, and clues go through
//! review and referral with their events on `jiuzhu.clues.events.v1`.

use std::time::Duration;

use jiuzhu_clues::Clues;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::clues::*;
use jiuzhu_proto::common::{Money, RegionCode};
use jiuzhu_proto::registry::{AddHouseholdMemberRequest, Relationship};
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{
    Started, TestResult, bad_fields, eventually, linkage_status, read_topic, registry_client,
    resident_id_for, start, villager,
};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

/// The gender a resident id encodes, as a case file writes it.
fn written_gender(id: &jiuzhu_identity::ResidentId) -> &'static str {
    match id.sex() {
        jiuzhu_identity::Sex::Male => "男",
        jiuzhu_identity::Sex::Female => "女",
    }
}

fn party(request_id: &str, party_ref: &str, name: &str) -> ReportPartyRequest {
    ReportPartyRequest {
        request_id: request_id.to_owned(),
        case_no: "(2026)京0105刑初77号".to_owned(),
        party_ref: party_ref.to_owned(),
        procuratorate: "北京市朝阳区人民检察院".to_owned(),
        charge: "故意伤害罪".to_owned(),
        incident_date: "2026-03-01".to_owned(),
        role: PartyRole::Victim as i32,
        harm: Some(Harm {
            disability_grade: 6,
            ..Harm::default()
        }),
        full_name: name.to_owned(),
        gender: written_gender(&resident_id_for("clue-person")).to_owned(),
        region: Some(RegionCode {
            code: "110105".to_owned(),
        }),
        ..ReportPartyRequest::default()
    }
}

/// The clue board once it lists at least `count` clues (it is a projection: waited for).
async fn board_with(
    client: &CluesServiceClient<tonic::transport::Channel>,
    count: usize,
    what: &str,
) -> anyhow::Result<Vec<jiuzhu_proto::clues::Clue>> {
    eventually(what, WAIT, || {
        let mut client = client.clone();
        async move {
            let clues = client
                .list_clues(ListCluesRequest::default())
                .await?
                .into_inner()
                .clues;
            Ok((clues.len() >= count).then_some(clues))
        }
    })
    .await
}

/// A registry and a clues service in a fresh namespace, with one registered person (王秀英 of
/// 新场村, 110105) already in the clues service's linkage index.
async fn registry_with_one_person() -> anyhow::Result<(String, Started, Started)> {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    registry_client(&registry.running)
        .await?
        .register_person(villager("clue-person", "王秀英", "rural_revitalization"))
        .await?;
    eventually("the person in the linkage index", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 1).then_some(()))
    })
    .await?;
    // Reverse correlation has seen every registry event too (the registration and the status
    // it came with): a party reported later is matched by intake alone, whatever the load on
    // the machine. A registry event handled late compares that party again, and reverse
    // correlation does not know intake's one-clue-per-person rule.
    let (registry_pool, clues_pool) = (
        registry.running.store.pool().clone(),
        clues.running.store.pool().clone(),
    );
    eventually(
        "reverse correlation past every registry event",
        WAIT,
        || async {
            let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(&registry_pool)
                .await?;
            let reversed =
                jiuzhu_tests::checkpoint_total(&clues_pool, "clues.reverse_correlation").await?;
            Ok((events > 0 && reversed >= events).then_some(()))
        },
    )
    .await?;
    Ok((ns, registry, clues))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_are_screened_matched_reviewed_and_referred() -> TestResult {
    let (_ns, registry, clues) = registry_with_one_person().await?;
    let id = resident_id_for("clue-person");
    let mut client =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);

    // No id number, the date written the Chinese way, the village only in the address.
    let mut victim = party("r-1", "P1", "王秀英");
    victim.birth_date = id.birth_date().format("%Y年%m月%d日").to_string();
    victim.address = "北京市朝阳区新场村5号".to_owned();
    let first = client.report_party(victim.clone()).await?.into_inner();
    let clue = first
        .clue
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no clue raised"))?;
    assert_eq!(clue.origin, ClueOrigin::Automatic as i32, "{clue:?}");
    assert!(clue.probability >= 0.95, "{clue:?}");
    assert!(
        clue.explanation.contains("birth_date: exact"),
        "{}",
        clue.explanation
    );
    assert!(first.screened_out.is_empty());

    // The same case party again (another request id): the same answer, nothing new.
    let again = client
        .report_party(ReportPartyRequest {
            request_id: "r-1-again".to_owned(),
            ..victim
        })
        .await?
        .into_inner();
    assert_eq!(again, first);

    // A witness with a small loss is screened out, and told why.
    let mut witness = party("r-2", "P2", "李强");
    witness.role = PartyRole::Witness as i32;
    witness.harm = Some(Harm {
        property_loss: Some(Money { fen: 20_000 }),
        ..Harm::default()
    });
    let screened = client.report_party(witness).await?.into_inner();
    assert!(screened.clue.is_none());
    assert!(
        screened.screened_out.contains("no serious harm"),
        "{}",
        screened.screened_out
    );

    // A homophone of the name, no date: good enough only for a reviewer.
    let review = client
        .report_party(party("r-3", "P3", "王秀瑛"))
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("no review clue"))?;
    assert_eq!(review.origin, ClueOrigin::Review as i32, "{review:?}");
    let early = client
        .refer_clue(ReferClueRequest {
            request_id: "refer-early".to_owned(),
            clue_id: review.clue_id.clone(),
            referred_by: "prosecutor-1".to_owned(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unreviewed clue was referred"))?;
    assert_eq!(early.code(), Code::FailedPrecondition);
    client
        .confirm_clue(ConfirmClueRequest {
            request_id: "confirm-1".to_owned(),
            clue_id: review.clue_id.clone(),
            reviewer: "reviewer-1".to_owned(),
            reason: "same village and household".to_owned(),
        })
        .await?;
    client
        .refer_clue(ReferClueRequest {
            request_id: "refer-1".to_owned(),
            clue_id: review.clue_id.clone(),
            referred_by: "prosecutor-1".to_owned(),
        })
        .await?;
    let late = client
        .reject_clue(RejectClueRequest {
            request_id: "reject-late".to_owned(),
            clue_id: review.clue_id.clone(),
            reviewer: "reviewer-2".to_owned(),
            reason: "second thoughts".to_owned(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a referred clue was rejected"))?;
    assert_eq!(late.code(), Code::FailedPrecondition);

    // The relief prosecutor opens a case for it: the clue is closed, once.
    let close = CloseClueRequest {
        request_id: "close-1".to_owned(),
        clue_id: review.clue_id.clone(),
        outcome: ClueOutcome::ReliefCaseOpened as i32,
        relief_case_id: "relief-case-1".to_owned(),
        reason: String::new(),
        closed_by: "relief-prosecutor-1".to_owned(),
    };
    client.close_clue(close.clone()).await?;
    client.close_clue(close.clone()).await?;
    let twice = client
        .close_clue(CloseClueRequest {
            request_id: "close-2".to_owned(),
            ..close.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a closed clue was closed again"))?;
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let undecided = client
        .close_clue(CloseClueRequest {
            request_id: "close-3".to_owned(),
            outcome: ClueOutcome::Declined as i32,
            relief_case_id: String::new(),
            ..close
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a decline without reason was taken"))?;
    assert_eq!(undecided.code(), Code::InvalidArgument);
    assert!(undecided.message().contains("reason"), "{undecided:?}");

    // Bad input names every bad field.
    let bad = client
        .report_party(ReportPartyRequest {
            request_id: "r-bad".to_owned(),
            harm: Some(Harm {
                disability_grade: 11,
                ..Harm::default()
            }),
            birth_date: "yesterday".to_owned(),
            gender: "unknown".to_owned(),
            ..ReportPartyRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad input was accepted"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields = bad_fields(&bad);
    for field in [
        "case_no",
        "party_ref",
        "procuratorate",
        "full_name",
        "role",
        "harm.disability_grade",
        "birth_date",
        "gender",
        "region.code",
    ] {
        assert!(
            fields.iter().any(|f| f == field),
            "{field} missing from {fields:?}"
        );
    }
    // A region that is no GB/T 2260 code would put the victim on no office's clue board.
    let mut nowhere = party("r-bad-region", "P9", "王秀英");
    nowhere.region = Some(RegionCode {
        code: "999999".to_owned(),
    });
    let nowhere = client
        .report_party(nowhere)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("region 999999 was accepted"))?;
    assert_eq!(bad_fields(&nowhere), ["region.code"]);

    // A party of another procuratorate and province, found by id number.
    let mut elsewhere = party("r-4", "P4", "王秀英");
    elsewhere.case_no = "(2026)黔0102刑初5号".to_owned();
    elsewhere.procuratorate = "贵阳市南明区人民检察院".to_owned();
    elsewhere.region = Some(RegionCode {
        code: "520102".to_owned(),
    });
    elsewhere.id_number = id.as_str().to_owned();
    let far = client
        .report_party(elsewhere)
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("no clue for the id number"))?;

    // The read model and the topic tell the same story.
    let closed = eventually("the closing in the clue list", WAIT, || {
        let mut client = client.clone();
        async move {
            let clues = client
                .list_clues(ListCluesRequest {
                    status: ClueStatus::Closed as i32,
                    ..ListCluesRequest::default()
                })
                .await?
                .into_inner()
                .clues;
            Ok((clues.len() == 1).then_some(clues))
        }
    })
    .await?;
    assert_eq!(closed[0].clue_id, review.clue_id);
    assert_eq!(closed[0].outcome, ClueOutcome::ReliefCaseOpened as i32);
    assert_eq!(closed[0].relief_case_id, "relief-case-1");

    // Filters: jurisdiction, region prefix, score, age.
    let listed = |filter: ListCluesRequest| {
        let mut client = client.clone();
        async move {
            let mut ids: Vec<String> = client
                .list_clues(filter)
                .await?
                .into_inner()
                .clues
                .into_iter()
                .map(|c| c.clue_id)
                .collect();
            ids.sort();
            anyhow::Ok(ids)
        }
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    eventually("every clue in the list", WAIT, || async {
        Ok((listed(ListCluesRequest::default()).await?.len() == 3).then_some(()))
    })
    .await?;
    assert_eq!(
        listed(ListCluesRequest {
            procuratorate: "北京市朝阳区人民检察院".to_owned(),
            ..ListCluesRequest::default()
        })
        .await?,
        sorted(vec![clue.clue_id.clone(), review.clue_id.clone()])
    );
    assert_eq!(
        listed(ListCluesRequest {
            region_code: "52".to_owned(),
            ..ListCluesRequest::default()
        })
        .await?,
        vec![far.clue_id.clone()]
    );
    assert_eq!(
        listed(ListCluesRequest {
            min_probability: review.probability + 1e-9,
            ..ListCluesRequest::default()
        })
        .await?,
        sorted(vec![clue.clue_id.clone(), far.clue_id.clone()])
    );
    let detected_at = far
        .detected_at
        .ok_or_else(|| anyhow::anyhow!("no detection time"))?;
    assert_eq!(
        listed(ListCluesRequest {
            detected_after: Some(detected_at),
            ..ListCluesRequest::default()
        })
        .await?,
        vec![far.clue_id.clone()]
    );
    assert_eq!(
        listed(ListCluesRequest {
            detected_before: Some(detected_at),
            ..ListCluesRequest::default()
        })
        .await?,
        sorted(vec![clue.clue_id.clone(), review.clue_id.clone()])
    );
    let refused = client
        .list_clues(ListCluesRequest {
            region_code: "52%".to_owned(),
            min_probability: 1.5,
            ..ListCluesRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad filters were taken"))?;
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields = bad_fields(&refused);
    assert_eq!(fields, ["min_probability", "region_code"]);

    let topic = clues.running.store.topic().to_owned();
    // The starting linkage model's adoption is on the topic too.
    let records = read_topic(&kafka_brokers(), &topic, 12)?;
    let mut types: Vec<String> = records
        .iter()
        .filter_map(|r| {
            use rdkafka::Message as _;
            r.headers().and_then(|h| {
                use rdkafka::message::Headers as _;
                h.iter()
                    .find(|h| h.key == "jiuzhu-event-type")
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        })
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "jiuzhu.clues.v1.ClueClosed",
            "jiuzhu.clues.v1.ClueConfirmed",
            "jiuzhu.clues.v1.ClueDetected",
            "jiuzhu.clues.v1.ClueDetected",
            "jiuzhu.clues.v1.ClueDetected",
            "jiuzhu.clues.v1.ClueReferred",
            "jiuzhu.clues.v1.LinkageModelAdopted",
            "jiuzhu.clues.v1.PartyReported",
            "jiuzhu.clues.v1.PartyReported",
            "jiuzhu.clues.v1.PartyReported",
            "jiuzhu.clues.v1.PartyReported",
            "jiuzhu.clues.v1.PartyScreenedOut",
        ]
    );
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_system_feed_is_applied_like_the_api_and_bad_records_go_to_the_dlq() -> TestResult {
    use prost::Message as _;
    let (ns, registry, clues) = registry_with_one_person().await?;
    let id = resident_id_for("clue-person");
    let topic = format!("{ns}jiuzhu.inbound.cases.v1");
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let mut good = party("", "F1", "王秀英");
    good.id_number = id.as_str().to_owned();
    let bad = ReportPartyRequest {
        full_name: "无案号".to_owned(),
        ..ReportPartyRequest::default()
    };
    for value in [
        good.encode_to_vec(),
        bad.encode_to_vec(),
        good.encode_to_vec(),
    ] {
        let signer = jiuzhu_tests::case_system();
        jiuzhu_tests::send_inbound(&producer, &ns, "cases", "F1", &value, None, Some(&signer))
            .await?;
    }
    let client = CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    let found = board_with(&client, 1, "the fed party's clue")
        .await?
        .remove(0);
    assert!(
        found.explanation.contains("resident_id: same"),
        "{}",
        found.explanation
    );
    let dead = read_topic(&kafka_brokers(), &format!("{topic}.dlq"), 1)?;
    assert_eq!(dead.len(), 1);
    let reason = jiuzhu_messaging::header_map(rdkafka::Message::headers(&dead[0]))
        .get("jiuzhu-dlq-reason")
        .cloned()
        .unwrap_or_default();
    assert!(
        reason.contains("case_no") && reason.contains("role"),
        "{reason}"
    );
    let pool = clues.running.store.pool().clone();
    eventually("all three feed records handled", WAIT, || {
        let pool = pool.clone();
        async move {
            Ok(
                (jiuzhu_tests::checkpoint_total(&pool, "clues.case_feed").await? == 3)
                    .then_some(()),
            )
        }
    })
    .await?;
    let detected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.clues.v1.ClueDetected'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(detected, 1, "the repeated record raised nothing new");

    // The rural revitalization department sends a clue of its own, typed as such on its topic.
    let reported = || async {
        anyhow::Ok(
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.clues.v1.PartyReported'",
            )
            .fetch_one(&pool)
            .await?,
        )
    };
    let before = reported().await?;
    let mut sent = party("", "R1", "王秀英");
    sent.case_no = "(2026)京0105刑初78号".to_owned();
    jiuzhu_tests::send_inbound(
        &producer,
        &ns,
        "rural_revitalization",
        "R1",
        &sent.encode_to_vec(),
        Some("jiuzhu.clues.v1.ReportPartyRequest"),
        Some(&jiuzhu_tests::integrator("rural_revitalization")),
    )
    .await?;
    eventually("the department's clue", WAIT, || async {
        Ok((reported().await? == before + 1).then_some(()))
    })
    .await?;
    // Its party names the same registered person in another criminal case: a clue of its own
    // reaches the board beside the case system's (the board is a projection: waited for).
    let listed = board_with(&client, 2, "the department's clue on the board").await?;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let case_numbers: std::collections::BTreeSet<&str> =
        listed.iter().map(|c| c.case_no.as_str()).collect();
    assert_eq!(
        case_numbers,
        ["（2026）京0105刑初77号", "（2026）京0105刑初78号"].into(),
        "{listed:#?}"
    );
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_parties_gets_one_answer_each_in_order_errors_included() -> TestResult {
    let (_ns, registry, clues) = registry_with_one_person().await?;
    let mut client =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    let mut matched = party("s-1", "S1", "王秀英");
    matched.id_number = resident_id_for("clue-person").as_str().to_owned();
    let bad = ReportPartyRequest {
        request_id: "s-2".to_owned(),
        full_name: "缺案号".to_owned(),
        ..ReportPartyRequest::default()
    };
    let unknown = party("s-3", "S3", "赵六");
    let mut answers = client
        .report_parties(futures::stream::iter(
            [matched, bad, unknown].map(|party| ReportPartiesRequest { party: Some(party) }),
        ))
        .await?
        .into_inner();
    let mut got = Vec::new();
    while let Some(answer) = answers.message().await? {
        got.push(answer);
    }
    assert_eq!(
        got.iter()
            .map(|a| a.request_id.as_str())
            .collect::<Vec<_>>(),
        ["s-1", "s-2", "s-3"]
    );
    assert!(
        got[0].answer.as_ref().is_some_and(|a| a.clue.is_some()),
        "{:?}",
        got[0]
    );
    assert_eq!(got[1].error_code, "InvalidArgument");
    assert!(
        got[1].field_errors.iter().any(|f| f.field == "case_no"),
        "{:?}",
        got[1]
    );
    assert!(
        got[2]
            .answer
            .as_ref()
            .is_some_and(|a| a.clue.is_none() && a.screened_out.is_empty())
    );
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// The other direction: a party reported before the person entered the registry is matched
/// when they do, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_entering_the_registry_is_checked_against_recent_parties() -> TestResult {
    let (_ns, registry, clues) = registry_with_one_person().await?;
    let mut client =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    let later = resident_id_for("later-person");
    let mut early = party("rev-1", "R1", "郑春梅");
    early.gender = written_gender(&later).to_owned();
    early.birth_date = later.birth_date().format("%Y-%m-%d").to_string();
    early.address = "北京市朝阳区新场村9号".to_owned();
    let answer = client.report_party(early).await?.into_inner();
    assert!(
        answer.clue.is_none() && answer.screened_out.is_empty(),
        "{answer:?}"
    );

    let person = registry_client(&registry.running)
        .await?
        .register_person(villager("later-person", "鄭春梅", "civil_affairs"))
        .await?
        .into_inner()
        .person_id;
    let clue = board_with(&client, 1, "the clue found from the registry side")
        .await?
        .remove(0);
    assert_eq!(clue.person_id, person);
    assert_eq!(clue.party_id, answer.party_id);
    assert!(
        clue.explanation.contains("name: exact"),
        "{}",
        clue.explanation
    );

    // A later change of the person raises nothing new for the matched party.
    registry_client(&registry.running)
        .await?
        .update_person(jiuzhu_proto::registry::UpdatePersonRequest {
            request_id: "later-update".to_owned(),
            person_id: person.clone(),
            phone: "13900000000".to_owned(),
            ..jiuzhu_proto::registry::UpdatePersonRequest::default()
        })
        .await?;
    // So does a status recorded for them: the re-check finds the party already matched.
    registry_client(&registry.running)
        .await?
        .record_status(jiuzhu_proto::registry::RecordStatusRequest {
            request_id: "later-status".to_owned(),
            person_id: person.clone(),
            kind: jiuzhu_proto::registry::StatusKind::RegisteredPoor as i32,
            source_department: "rural_revitalization".to_owned(),
            reference: "建档立卡-2026-17".to_owned(),
            effective_from: "2026-06-01".to_owned(),
            ..jiuzhu_proto::registry::RecordStatusRequest::default()
        })
        .await?;
    let pool = clues.running.store.pool().clone();
    eventually(
        "the update and status seen by reverse correlation",
        WAIT,
        || {
            let pool = pool.clone();
            async move {
                Ok(
                    (jiuzhu_tests::checkpoint_total(&pool, "clues.reverse_correlation").await?
                        >= 4)
                        .then_some(()),
                )
            }
        },
    )
    .await?;
    let detected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.clues.v1.ClueDetected'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(detected, 1);
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clues_process_matches_against_the_registry_as_it_is_now() -> TestResult {
    let (ns, registry, clues) = registry_with_one_person().await?;
    // A second process on the same database: it consumes none of the partitions the first
    // holds, and follows the linkage projection instead.
    let second = jiuzhu_tests::restart::<Clues>(&ns, &clues.database).await?;
    let processes = [&clues.running, &second];
    for running in processes {
        assert_eq!(linkage_status(running).await?.0, 1);
    }
    let mut registry_api = registry_client(&registry.running).await?;
    let person = registry_api
        .register_person(villager("second-person", "赵德胜", "civil_affairs"))
        .await?
        .into_inner()
        .person_id;
    for running in processes {
        eventually("both processes to hold the newcomer", WAIT, || async {
            Ok((linkage_status(running).await?.0 == 2).then_some(()))
        })
        .await?;
    }

    // Renamed in the registry: the second process matches the new name, and no longer the old.
    registry_api
        .update_person(jiuzhu_proto::registry::UpdatePersonRequest {
            request_id: "rename".to_owned(),
            person_id: person.clone(),
            full_name: "赵德升".to_owned(),
            ..jiuzhu_proto::registry::UpdatePersonRequest::default()
        })
        .await?;
    let id = resident_id_for("second-person");
    let mut client = CluesServiceClient::new(jiuzhu_testkit::channel(second.grpc_addr).await?);
    let renamed = |request_id: &str, name: &str| {
        let mut request = party(request_id, request_id, name);
        request.gender = written_gender(&id).to_owned();
        request.birth_date = id.birth_date().format("%Y-%m-%d").to_string();
        request.address = "北京市朝阳区新场村2号".to_owned();
        request
    };
    let clue = eventually("the new name matched", WAIT, || {
        let mut client = client.clone();
        let request = renamed(&format!("rename-{}", uuid::Uuid::now_v7()), "赵德升");
        async move {
            let answer = client.report_party(request).await?.into_inner();
            Ok(answer
                .clue
                .filter(|c| c.explanation.contains("name: exact")))
        }
    })
    .await?;
    assert_eq!(clue.person_id, person);

    // Erased: gone from every process's index, and nothing matches the person any more.
    registry_api
        .erase_person(jiuzhu_proto::registry::ErasePersonRequest {
            request_id: "erase-second".to_owned(),
            person_id: person.clone(),
            legal_basis: "个人信息保护法 第47条".to_owned(),
            reason: "the person asked".to_owned(),
            decided_by: "officer-1".to_owned(),
        })
        .await?;
    for running in processes {
        eventually("both processes to drop the erased person", WAIT, || async {
            Ok((linkage_status(running).await?.0 == 1).then_some(()))
        })
        .await?;
    }
    let after = client
        .report_party(renamed("after-erasure", "赵德升"))
        .await?
        .into_inner();
    assert!(
        after.clue.is_none_or(|c| c.person_id != person),
        "an erased person was matched"
    );
    second.stop().await;
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// The linkage adoptions the service recorded, in order.
async fn adoptions(
    store: &jiuzhu_eventstore::EventStore,
) -> anyhow::Result<Vec<LinkageModelAdopted>> {
    let mut found = Vec::new();
    for event in store
        .load_stream(jiuzhu_clues::domain::LINKAGE_MODEL_STREAM, 0)
        .await?
    {
        if let Some(jiuzhu_clues::domain::CluesEvent::LinkageModelAdopted(adopted)) =
            event.decode::<jiuzhu_clues::domain::CluesEvent>()?
        {
            found.push(adopted);
        }
    }
    Ok(found)
}

fn linkage(
    model: Option<std::path::PathBuf>,
    train_every_seconds: u64,
) -> jiuzhu_clues::settings::LinkageSettings {
    jiuzhu_clues::settings::LinkageSettings {
        model,
        train_every_seconds,
        min_labels: 100,
        max_gap: 0.2,
        ..jiuzhu_clues::settings::LinkageSettings::default()
    }
}

/// A model file as `jiuzhu link train` writes it; `prior` makes versions differ.
fn model_file(prior: f64) -> anyhow::Result<(std::path::PathBuf, jiuzhu_linkage::ModelFile)> {
    model_file_of(jiuzhu_linkage::Model {
        prior,
        ..jiuzhu_linkage::Model::default()
    })
}

fn model_file_of(
    model: jiuzhu_linkage::Model,
) -> anyhow::Result<(std::path::PathBuf, jiuzhu_linkage::ModelFile)> {
    let file = jiuzhu_linkage::ModelFile::new(
        model,
        jiuzhu_linkage::TrainingReport::default(),
        "2026-12-05",
    );
    let path = std::env::temp_dir().join(format!("jiuzhu-linkage-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&path, file.to_json())?;
    Ok((path, file))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_linkage_model_is_adopted_once_and_names_every_clue() -> TestResult {
    let ns = unique_namespace();
    let (path, file) = model_file(0.02)?;
    let registry = start::<Registry>(&ns).await?;
    let settings = linkage(Some(path.clone()), 0);
    let clues = jiuzhu_tests::start_with::<Clues>(&ns, |s| s.own.set(&settings)).await?;
    registry_client(&registry.running)
        .await?
        .register_person(villager("model-person", "王秀英", "rural_revitalization"))
        .await?;
    eventually("the person in the linkage index", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 1).then_some(()))
    })
    .await?;
    let store = clues.running.store.clone();
    let adopted = eventually("the file's model adopted", WAIT, || async {
        let found = adoptions(&store).await?;
        Ok((!found.is_empty()).then_some(found))
    })
    .await?;
    assert_eq!(adopted.len(), 1);
    assert_eq!(
        (adopted[0].version.as_str(), adopted[0].source.as_str()),
        (file.version.as_str(), "file")
    );
    assert_eq!(
        jiuzhu_linkage::ModelFile::from_json(&adopted[0].model_json)?.version,
        file.version,
        "the event carries the model itself"
    );

    let id = resident_id_for("model-person");
    let mut victim = party("m-1", "M1", "王秀英");
    victim.case_no = "(2026)京0105刑初78号".to_owned();
    victim.gender = written_gender(&id).to_owned();
    victim.birth_date = id.birth_date().format("%Y-%m-%d").to_string();
    victim.address = "北京市朝阳区新场村5号".to_owned();
    let mut client =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    let clue = client
        .report_party(victim)
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("no clue raised"))?;
    assert_eq!(clue.model_version, file.version, "{clue:?}");
    let listed = board_with(&client, 1, "the clue on the board").await?;
    assert_eq!(listed[0].model_version, file.version);
    // Without a schedule the learning task stays up: the service keeps serving.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        jiuzhu_testkit::channel(clues.running.grpc_addr).await?,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status;
    assert_eq!(
        serving,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Started again with the same file: nothing new; with another file: adopted, replacing it.
    clues.running.stop().await;
    let again =
        jiuzhu_tests::restart_with::<Clues>(&ns, &clues.database, |s| s.own.set(&settings)).await?;
    let (other_path, other) = model_file(0.03)?;
    let store = again.store.clone();
    let reread = eventually("the model taken up again", WAIT, || async {
        let found = adoptions(&store).await?;
        Ok(Some(found))
    })
    .await?;
    assert_eq!(reread.len(), 1, "the same version is not adopted twice");
    again.stop().await;
    let next = linkage(Some(other_path.clone()), 0);
    let third =
        jiuzhu_tests::restart_with::<Clues>(&ns, &clues.database, |s| s.own.set(&next)).await?;
    let store = third.store.clone();
    let both = eventually("the other file's model adopted", WAIT, || async {
        let found = adoptions(&store).await?;
        Ok((found.len() == 2).then_some(found))
    })
    .await?;
    assert_eq!(both[1].version, other.version);
    assert_eq!(both[1].replaced, file.version);
    third.stop().await;
    registry.running.stop().await;
    for file in [path, other_path] {
        std::fs::remove_file(file)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_estimates_a_model_from_the_parties_it_has_seen_and_reviews() -> TestResult {
    jiuzhu_tests::log_if_asked();
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let settings = linkage(None, 2);
    let clues = jiuzhu_tests::start_with::<Clues>(&ns, |s| s.own.set(&settings)).await?;
    const SURNAMES: [&str; 12] = [
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
    ];
    const GIVEN: [&str; 20] = [
        "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
        "涛", "明", "超", "秀兰", "霞",
    ];
    let persons = 240;
    let mut registry_api = registry_client(&registry.running).await?;
    for n in 0..persons {
        let name = format!("{}{}", SURNAMES[n % 12], GIVEN[(n / 12) % 20]);
        registry_api
            .register_person(villager(&format!("est-{n}"), &name, "rural_revitalization"))
            .await?;
    }
    eventually("the persons in the linkage index", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == persons as i64).then_some(()))
    })
    .await?;
    // Parties as case files write them: every one with its resident id (the labels), half
    // without a birth date.
    let mut client =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    let mut confirmed = None;
    for n in 0..persons {
        let id = resident_id_for(&format!("est-{n}"));
        let mut victim = party(
            &format!("est-r-{n}"),
            &format!("E{n}"),
            &format!("{}{}", SURNAMES[n % 12], GIVEN[(n / 12) % 20]),
        );
        victim.id_number = id.as_str().to_owned();
        victim.gender = written_gender(&id).to_owned();
        if n % 2 == 0 {
            victim.birth_date = id.birth_date().format("%Y-%m-%d").to_string();
        }
        let answer = client.report_party(victim).await?.into_inner();
        if confirmed.is_none()
            && let Some(clue) = answer.clue
        {
            confirmed = Some(clue.clue_id);
        }
    }
    let clue_id = confirmed.ok_or_else(|| anyhow::anyhow!("no clue raised"))?;
    board_with(&client, 1, "the clue on the board").await?;
    client
        .confirm_clue(ConfirmClueRequest {
            request_id: "est-confirm".to_owned(),
            clue_id,
            reviewer: "reviewer-1".to_owned(),
            reason: "same id".to_owned(),
        })
        .await?;
    let store = clues.running.store.clone();
    let first = adoptions(&store).await?;
    assert_eq!(
        first.first().map(|a| a.source.as_str()),
        Some("starting"),
        "the starting values are on record before anything is estimated"
    );
    let estimated = eventually("an estimated model adopted", WAIT, || async {
        let found = adoptions(&store).await?;
        Ok(found
            .into_iter()
            .find(|a| a.source == "estimated" && a.reviews_confirmed >= 1))
    })
    .await?;
    assert!(estimated.anchored >= 100, "{estimated:?}");
    assert_eq!(estimated.parties, persons as i64, "{estimated:?}");
    assert!(estimated.largest_gap <= 0.2, "{estimated:?}");
    assert!(!estimated.reliability.is_empty());
    // What is adopted is what scores: the next clue names it.
    let id = resident_id_for("est-0");
    let mut late = party(
        "est-late",
        "E-late",
        &format!("{}{}", SURNAMES[0], GIVEN[0]),
    );
    late.case_no = "(2026)京0105刑初79号".to_owned();
    late.gender = written_gender(&id).to_owned();
    late.birth_date = id.birth_date().format("%Y-%m-%d").to_string();
    let current = adoptions(&store).await?;
    let clue = client
        .report_party(late)
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("no clue raised"))?;
    let versions: Vec<&str> = current.iter().map(|a| a.version.as_str()).collect();
    assert!(
        versions.contains(&clue.model_version.as_str()),
        "{} not in {versions:?}",
        clue.model_version
    );

    // A model of a format this release cannot read (as after an upgrade that changed the
    // comparison levels): the starting values take over on record, and a model is estimated at
    // once rather than after the day-long schedule.
    let older = LinkageModelAdopted {
        version: "link-older".to_owned(),
        model_json: estimated
            .model_json
            .replacen("\"format\": 1", "\"format\": 0", 1),
        ..estimated.clone()
    };
    let mut work = match store
        .begin_command(jiuzhu_eventstore::CommandRequest::internal(
            "test/older-model",
            "older-1",
        ))
        .await?
    {
        jiuzhu_eventstore::Begun::Fresh(work) => work,
        jiuzhu_eventstore::Begun::Replay(_) => anyhow::bail!("a fresh command replayed"),
    };
    let (_, version) = work
        .load::<jiuzhu_clues::domain::LinkageModels>(jiuzhu_clues::domain::LINKAGE_MODEL_STREAM)
        .await?;
    work.append(
        jiuzhu_clues::domain::LINKAGE_MODEL_STREAM,
        version,
        jiuzhu_clues::domain::LINKAGE_MODEL_STREAM,
        &[jiuzhu_clues::domain::CluesEvent::LinkageModelAdopted(older)],
    )
    .await?;
    work.commit(Vec::new()).await?;
    clues.running.stop().await;
    let daily = linkage(None, 86_400);
    let again =
        jiuzhu_tests::restart_with::<Clues>(&ns, &clues.database, |s| s.own.set(&daily)).await?;
    let store = again.store.clone();
    let after = eventually("a model estimated at start", WAIT, || async {
        let found = adoptions(&store).await?;
        let at = found.iter().position(|a| a.version == "link-older");
        Ok(at.and_then(|at| {
            let later = found[at + 1..].to_vec();
            later
                .iter()
                .any(|a| a.source == "estimated")
                .then_some(later)
        }))
    })
    .await?;
    assert_eq!(
        (after[0].source.as_str(), after[0].replaced.as_str()),
        ("starting", "link-older"),
        "the starting values are on record first: {after:?}"
    );
    again.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// A victim's relative reported in the same case is looked for first in the victim's household:
/// of two namesakes in the village, the one who lives with the linked victim is the clue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_in_the_case_is_found_in_the_linked_victims_household() -> TestResult {
    let ns = unique_namespace();
    let (path, _) = model_file_of(jiuzhu_linkage::Model {
        case_household: vec![3.0, -6.0],
        ..jiuzhu_linkage::Model::default()
    })?;
    let registry = start::<Registry>(&ns).await?;
    let settings = linkage(Some(path), 0);
    let clues = jiuzhu_tests::start_with::<Clues>(&ns, |s| s.own.set(&settings)).await?;
    let mut registry_api = registry_client(&registry.running).await?;
    let register = |request_id: &'static str, name: &'static str| {
        let mut api = registry_api.clone();
        async move {
            anyhow::Ok(
                api.register_person(villager(request_id, name, "rural_revitalization"))
                    .await?
                    .into_inner()
                    .person_id,
            )
        }
    };
    let mother = register("case-mother", "李秀英").await?;
    let son = register("case-son", "王德明").await?;
    let namesake = register("case-namesake", "王德明").await?;
    let mut household = String::new();
    for (n, (person, relationship)) in [
        (&mother, Relationship::Head),
        (&son, Relationship::Child),
        (&namesake, Relationship::Head),
    ]
    .into_iter()
    .enumerate()
    {
        let joined = registry_api
            .add_household_member(AddHouseholdMemberRequest {
                request_id: format!("case-hh-{n}"),
                // The namesake heads a household of their own.
                household_id: if person == &namesake {
                    String::new()
                } else {
                    household.clone()
                },
                person_id: person.clone(),
                relationship: relationship as i32,
            })
            .await?
            .into_inner()
            .household_id;
        if household.is_empty() {
            household = joined;
        }
    }
    // The households in the linkage index, and reverse correlation past every registry event
    // (a registration it handled late would compare the parties below again, alone).
    let registry_pool = registry.running.store.pool().clone();
    let clues_pool = clues.running.store.pool().clone();
    eventually("the households in the linkage index", WAIT, || async {
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&registry_pool)
            .await?;
        let (persons, applied) = linkage_status(&clues.running).await?;
        let reversed =
            jiuzhu_tests::checkpoint_total(&clues_pool, "clues.reverse_correlation").await?;
        Ok((persons == 3 && applied >= events && reversed >= events).then_some(()))
    })
    .await?;

    let mut client =
        CluesServiceClient::new(jiuzhu_testkit::channel(clues.running.grpc_addr).await?);
    // The same relative in a case of their own: the two namesakes are alike.
    // The son as a relative writes him (name and village), and his mother with her id.
    let relative_in = |request_id: &str, party_ref: &str, case_no: &str| {
        let mut relative = party(request_id, party_ref, "王德明");
        relative.case_no = case_no.to_owned();
        relative.role = PartyRole::Dependant as i32;
        relative.gender.clear();
        relative.address = "北京市朝阳区新场村".to_owned();
        relative
    };
    let id = resident_id_for("case-mother");
    let victim_in = |request_id: &str, party_ref: &str, case_no: &str| {
        let mut victim = party(request_id, party_ref, "李秀英");
        victim.case_no = case_no.to_owned();
        victim.id_number = id.as_str().to_owned();
        victim.gender = written_gender(&id).to_owned();
        victim.birth_date = id.birth_date().format("%Y-%m-%d").to_string();
        victim.address = "北京市朝阳区新场村5号".to_owned();
        victim
    };
    let alone = client
        .report_party(relative_in("case-alone", "A1", "(2026)京0105刑初90号"))
        .await?
        .into_inner();

    let victim = client
        .report_party(victim_in("case-victim", "V1", "(2026)京0105刑初91号"))
        .await?
        .into_inner();
    let victim_clue = victim
        .clue
        .ok_or_else(|| anyhow::anyhow!("the victim raised no clue"))?;
    assert_eq!(victim_clue.person_id, mother);
    assert_eq!(
        victim_clue.origin,
        ClueOrigin::Automatic as i32,
        "{victim_clue:?}"
    );

    // The same case number written with full-width parentheses.
    let relative = client
        .report_party(relative_in("case-relative", "R1", "（2026）京0105刑初91号"))
        .await?
        .into_inner()
        .clue
        .ok_or_else(|| anyhow::anyhow!("the relative raised no clue"))?;
    assert_eq!(relative.person_id, son, "{relative:?}");
    assert!(
        relative
            .explanation
            .contains("case: of a household the case's other parties are linked to (+3.0)"),
        "{}",
        relative.explanation
    );
    let alone_probability = alone.clue.map_or(0.0, |c| c.probability);
    assert!(
        relative.probability > alone_probability + 0.1,
        "in the case {}, alone {alone_probability}",
        relative.probability
    );

    // The other order: the relative first, left unmatched, is weighed again once the victim
    // of the same case is linked.
    let first = client
        .report_party(relative_in(
            "case-relative-first",
            "R2",
            "(2026)京0105刑初92号",
        ))
        .await?
        .into_inner();
    assert!(first.clue.is_none(), "alone in the case: {first:?}");
    let later = client
        .report_party(victim_in("case-victim-later", "V2", "(2026)京0105刑初92号"))
        .await?
        .into_inner();
    assert!(later.clue.is_some(), "{later:?}");
    let found = eventually("the relative's clue from case correlation", WAIT, || {
        let mut client = client.clone();
        let party_id = first.party_id.clone();
        async move {
            let clues = client
                .list_clues(ListCluesRequest::default())
                .await?
                .into_inner()
                .clues;
            Ok(clues.into_iter().find(|c| c.party_id == party_id))
        }
    })
    .await?;
    assert_eq!(found.person_id, son, "{found:?}");
    assert!(
        found.explanation.contains("case: of a household"),
        "{found:?}"
    );
    Ok(())
}
