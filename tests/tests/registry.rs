//! The registry's API against real PostgreSQL and the broker: commands, their validation and
//! idempotency, and the read models the topic builds.

use std::time::Duration;

use jiuzhu_proto::common::{Money, RegionCode};
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_proto::registry::search_persons_request::{NameAndBirthDate, Query};
use jiuzhu_proto::registry::*;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::unique_namespace;
use jiuzhu_tests::{
    Started, TestResult, bad_fields, eventually, registration, registry_client, start,
};
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(60);

async fn registry() -> anyhow::Result<(Started, RegistryServiceClient<Channel>)> {
    let started = start::<Registry>(&unique_namespace()).await?;
    let client = registry_client(&started.running).await?;
    Ok((started, client))
}

/// Waits until the person view reaches `version` and returns it.
async fn person_at(
    client: &RegistryServiceClient<Channel>,
    id: &str,
    version: i64,
) -> anyhow::Result<Person> {
    eventually("the person view", WAIT, || {
        let mut client = client.clone();
        let person_id = id.to_owned();
        async move {
            match client
                .get_person(GetPersonRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id,
                    ..Default::default()
                })
                .await
            {
                Ok(found) => Ok(found.into_inner().person.filter(|p| p.version >= version)),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_id_is_registered_once_and_the_refusal_names_the_holder() -> TestResult {
    let (started, mut client) = registry().await?;
    let first = client
        .register_person(registration("dup-1", 1))
        .await?
        .into_inner();
    let mut same_id = registration("dup-1", 1);
    same_id.request_id = "dup-2".to_owned();
    let refused = client
        .register_person(same_id)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("duplicate accepted"))?;
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(
        refused.message().contains(&first.person_id),
        "{}",
        refused.message()
    );

    // Kept, not silently fixed: a birth date that disagrees with the id is flagged.
    let mut mismatched = registration("flagged", 2);
    mismatched.birth_date = "2001-01-01".to_owned();
    let answer = client.register_person(mismatched).await?.into_inner();
    assert_eq!(answer.flags, [IdentityFlag::BirthDateDiffersFromId as i32]);
    let person = person_at(&client, &answer.person_id, 1).await?;
    assert_eq!(person.birth_date, "2001-01-01");
    assert_eq!(person.flags, [IdentityFlag::BirthDateDiffersFromId as i32]);
    started.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_statuses_and_their_errors() -> TestResult {
    let (started, mut client) = registry().await?;
    let person_id = client
        .register_person(registration("u-1", 1))
        .await?
        .into_inner()
        .person_id;

    let moved = client
        .update_person(UpdatePersonRequest {
            request_id: "u-2".to_owned(),
            person_id: person_id.clone(),
            village: "王家寨".to_owned(),
            phone: "13900000000".to_owned(),
            fields: vec!["village".to_owned()],
            source_department: "civil_affairs".to_owned(),
            ..UpdatePersonRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        moved.changed_fields,
        ["village"],
        "only the named field changes"
    );

    let bad = client
        .update_person(UpdatePersonRequest {
            request_id: "u-3".to_owned(),
            person_id: person_id.clone(),
            fields: vec!["region".to_owned(), "nickname".to_owned()],
            region: Some(RegionCode {
                code: "999999".to_owned(),
            }),
            ..UpdatePersonRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad update accepted"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["fields"]);

    let status_id = client
        .record_status(RecordStatusRequest {
            request_id: "s-1".to_owned(),
            person_id: person_id.clone(),
            kind: StatusKind::Disability as i32,
            source_department: "civil_affairs".to_owned(),
            reference: "残联-2025-17".to_owned(),
            effective_from: "2025-03-01".to_owned(),
            detail: "2".to_owned(),
            ..RecordStatusRequest::default()
        })
        .await?
        .into_inner()
        .status_id;
    let early_end = client
        .end_status(EndStatusRequest {
            request_id: "s-2".to_owned(),
            person_id: person_id.clone(),
            status_id: status_id.clone(),
            effective_to: "2024-01-01".to_owned(),
            reason: "typo".to_owned(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("end before start accepted"))?;
    assert_eq!(early_end.code(), Code::FailedPrecondition);
    client
        .end_status(EndStatusRequest {
            request_id: "s-3".to_owned(),
            person_id: person_id.clone(),
            status_id: status_id.clone(),
            effective_to: "2026-03-01".to_owned(),
            reason: "reassessed".to_owned(),
        })
        .await?;

    let person = person_at(&client, &person_id, 4).await?;
    assert_eq!(person.village, "王家寨");
    assert_eq!(person.phone, "", "phone was not named in `fields`");
    assert_eq!(person.statuses.len(), 1);
    let status = &person.statuses[0];
    assert_eq!(
        (status.kind, status.detail.as_str(), status.ended),
        (StatusKind::Disability as i32, "2", true)
    );
    assert_eq!(status.effective_to, "2026-03-01");

    let unknown = client
        .record_status(RecordStatusRequest {
            request_id: "s-4".to_owned(),
            person_id: uuid::Uuid::now_v7().to_string(),
            kind: StatusKind::MinimumLivingAllowance as i32,
            source_department: "civil_affairs".to_owned(),
            effective_from: "2025-01-01".to_owned(),
            ..RecordStatusRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("status for nobody accepted"))?;
    assert_eq!(unknown.code(), Code::NotFound);
    started.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_and_unmerge_keep_both_histories() -> TestResult {
    let (started, mut client) = registry().await?;
    let survivor = client
        .register_person(registration("m-1", 1))
        .await?
        .into_inner()
        .person_id;
    let duplicate = client
        .register_person(registration("m-2", 2))
        .await?
        .into_inner()
        .person_id;
    client
        .record_status(RecordStatusRequest {
            request_id: "m-3".to_owned(),
            person_id: duplicate.clone(),
            kind: StatusKind::MinimumLivingAllowance as i32,
            source_department: "civil_affairs".to_owned(),
            effective_from: "2025-01-01".to_owned(),
            ..RecordStatusRequest::default()
        })
        .await?;
    let merge = MergePersonsRequest {
        request_id: "m-4".to_owned(),
        survivor_id: survivor.clone(),
        absorbed_id: duplicate.clone(),
        reason: "same person, two departments".to_owned(),
        decided_by: "officer-7".to_owned(),
    };
    client.merge_persons(merge.clone()).await?;
    client.merge_persons(merge).await?; // a retry changes nothing

    let merged = eventually("the merge in the survivor's view", WAIT, || {
        let mut client = client.clone();
        let survivor = survivor.clone();
        async move {
            match client
                .get_person(GetPersonRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id: survivor,
                    ..Default::default()
                })
                .await
            {
                Ok(found) => Ok(found
                    .into_inner()
                    .person
                    .filter(|p| !p.merged_person_ids.is_empty())),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await?;
    assert_eq!(merged.merged_person_ids, std::slice::from_ref(&duplicate));
    assert_eq!(
        merged.statuses.len(),
        1,
        "the absorbed record's status shows on the survivor"
    );
    assert_eq!(merged.statuses[0].recorded_on_person_id, duplicate);
    let absorbed = person_at(&client, &duplicate, 3).await?;
    assert_eq!(absorbed.merged_into, survivor);

    let blocked = client
        .update_person(UpdatePersonRequest {
            request_id: "m-5".to_owned(),
            person_id: duplicate.clone(),
            village: "x".to_owned(),
            ..UpdatePersonRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("update of a merged record accepted"))?;
    assert_eq!(blocked.code(), Code::FailedPrecondition);

    client
        .unmerge_person(UnmergePersonRequest {
            request_id: "m-6".to_owned(),
            absorbed_id: duplicate.clone(),
            reason: "different people after all".to_owned(),
            decided_by: "officer-8".to_owned(),
        })
        .await?;
    let restored = person_at(&client, &duplicate, 4).await?;
    assert_eq!(restored.merged_into, "");
    assert_eq!(restored.statuses.len(), 1, "its own history is intact");
    let survivor_view = person_at(&client, &survivor, 1).await?;
    assert!(survivor_view.merged_person_ids.is_empty());
    assert!(survivor_view.statuses.is_empty());
    started.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_and_search_by_every_key_with_paging() -> TestResult {
    let (started, mut client) = registry().await?;
    let mut ids = Vec::new();
    for n in 0..5 {
        let mut request = registration(&format!("h-{n}"), n);
        request.full_name = "张伟".to_owned(); // the commonest name: five different people
        request.birth_date = "1980-05-05".to_owned();
        ids.push(
            client
                .register_person(request)
                .await?
                .into_inner()
                .person_id,
        );
    }
    let household_id = client
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "hh-1".to_owned(),
            person_id: ids[0].clone(),
            relationship: Relationship::Head as i32,
            ..AddHouseholdMemberRequest::default()
        })
        .await?
        .into_inner()
        .household_id;
    client
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "hh-2".to_owned(),
            household_id: household_id.clone(),
            person_id: ids[1].clone(),
            relationship: Relationship::Spouse as i32,
        })
        .await?;
    let elsewhere = client
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "hh-3".to_owned(),
            person_id: ids[1].clone(),
            relationship: Relationship::Head as i32,
            ..AddHouseholdMemberRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a second household accepted"))?;
    assert_eq!(elsewhere.code(), Code::FailedPrecondition);
    assert!(elsewhere.message().contains(&household_id));
    client
        .record_household_income(RecordHouseholdIncomeRequest {
            request_id: "hh-4".to_owned(),
            household_id: household_id.clone(),
            year: 2025,
            income_per_head: Some(Money { fen: 612_000 }),
            source_department: "rural_revitalization".to_owned(),
        })
        .await?;
    let household = eventually("the household view", WAIT, || {
        let mut client = client.clone();
        let household_id = household_id.clone();
        async move {
            match client
                .get_household(GetHouseholdRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    household_id,
                    ..GetHouseholdRequest::default()
                })
                .await
            {
                Ok(found) => Ok(found
                    .into_inner()
                    .household
                    .filter(|h| h.members.len() == 2 && !h.incomes.is_empty())),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await?;
    assert_eq!(household.members[0].person_id, ids[0]);
    assert_eq!(
        household.incomes[0].income_per_head.as_ref().map(|m| m.fen),
        Some(612_000)
    );

    // Registrations reach the read model through the topic: wait until all five are there.
    eventually("all five persons searchable", WAIT, || {
        let mut client = client.clone();
        async move {
            let page = client
                .search_persons(SearchPersonsRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    query: Some(Query::NameAndBirthDate(NameAndBirthDate {
                        full_name: "张伟".to_owned(),
                        birth_date: "1980-05-05".to_owned(),
                    })),
                    page_size: 10,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            Ok((page.persons.len() == 5).then_some(()))
        }
    })
    .await?;
    let by_id = client
        .search_persons(SearchPersonsRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            query: Some(Query::ResidentId(registration("h-3", 3).resident_id)),
            ..SearchPersonsRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        by_id
            .persons
            .iter()
            .map(|p| p.person_id.clone())
            .collect::<Vec<_>>(),
        [ids[3].clone()]
    );

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .search_persons(SearchPersonsRequest {
                purpose: jiuzhu_tests::PURPOSE.to_owned(),
                query: Some(Query::NameAndBirthDate(NameAndBirthDate {
                    full_name: "张伟".to_owned(),
                    birth_date: "1980-05-05".to_owned(),
                })),
                page_size: 2,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        assert!(page.persons.len() <= 2);
        seen.extend(page.persons.into_iter().map(|p| p.person_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected, "three pages, every match once, in order");
    // A token the service did not give (here a bare person id) is refused, naming the field.
    let foreign = client
        .search_persons(SearchPersonsRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            query: Some(Query::NameAndBirthDate(NameAndBirthDate {
                full_name: "张伟".to_owned(),
                birth_date: "1980-05-05".to_owned(),
            })),
            page_size: 2,
            page_token: ids[0].clone(),
        })
        .await
        .err()
        .map(|status| (status.code(), status.message().to_owned()));
    assert!(
        matches!(&foreign, Some((tonic::Code::InvalidArgument, message)) if message.contains("page_token")),
        "{foreign:?}"
    );

    let bad = client
        .search_persons(SearchPersonsRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            query: Some(Query::ResidentId("123".to_owned())),
            page_size: 900,
            ..SearchPersonsRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("bad search accepted"))?;
    assert_eq!(bad_fields(&bad), ["resident_id", "page_size"]);
    started.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_file_tells_the_whole_story_once_in_either_order() -> TestResult {
    let (started, mut client) = registry().await?;
    let person_id = client
        .register_person(registration("f-1", 1))
        .await?
        .into_inner()
        .person_id;
    for (n, kind) in [
        StatusKind::RegisteredPoor,
        StatusKind::MinimumLivingAllowance,
    ]
    .iter()
    .enumerate()
    {
        client
            .record_status(RecordStatusRequest {
                request_id: format!("f-s{n}"),
                person_id: person_id.clone(),
                kind: *kind as i32,
                source_department: "rural_revitalization".to_owned(),
                effective_from: "2025-01-01".to_owned(),
                ..RecordStatusRequest::default()
            })
            .await?;
    }
    client
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "f-h".to_owned(),
            person_id: person_id.clone(),
            relationship: Relationship::Head as i32,
            ..AddHouseholdMemberRequest::default()
        })
        .await?;
    let file = |order: FileOrder, page_size: i32, token: String| GetPersonFileRequest {
        purpose: jiuzhu_tests::PURPOSE.to_owned(),
        person_id: person_id.clone(),
        page_size,
        page_token: token,
        order: order as i32,
    };
    let newest = eventually("four entries in the file", WAIT, || {
        let mut client = client.clone();
        let request = file(FileOrder::NewestFirst, 10, String::new());
        async move {
            let entries = client.get_person_file(request).await?.into_inner().entries;
            Ok((entries.len() == 4).then_some(entries))
        }
    })
    .await?;
    let types: Vec<&str> = newest.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "jiuzhu.registry.v1.HouseholdMemberAdded",
            "jiuzhu.registry.v1.StatusRecorded",
            "jiuzhu.registry.v1.StatusRecorded",
            "jiuzhu.registry.v1.PersonRegistered",
        ]
    );
    assert!(
        newest[3].detail_json.contains("测试人1"),
        "{}",
        newest[3].detail_json
    );
    assert!(newest.iter().all(|e| e.producer == "registry"));

    // Oldest first, two at a time: the same four, reversed, each once.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .get_person_file(file(FileOrder::OldestFirst, 2, token.clone()))
            .await?
            .into_inner();
        paged.extend(page.entries.into_iter().map(|e| e.event_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let reversed: Vec<String> = newest.iter().rev().map(|e| e.event_id.clone()).collect();
    assert_eq!(paged, reversed);

    // Redelivery: the same records once more on the topic change nothing.
    let topic = started.running.store.topic().to_owned();
    let records = jiuzhu_tests::read_topic(&jiuzhu_testkit::kafka_brokers(), &topic, 4)?;
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", jiuzhu_testkit::kafka_brokers())
        .create()?;
    for record in &records {
        use rdkafka::Message as _;
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&topic)
                    .key(record.key().unwrap_or_default())
                    .payload(record.payload().unwrap_or_default()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let pool = started.running.store.pool().clone();
    eventually("the duplicates consumed", WAIT, || {
        let pool = pool.clone();
        async move {
            Ok(
                (jiuzhu_tests::checkpoint_total(&pool, "registry.person_file").await? == 8)
                    .then_some(()),
            )
        }
    })
    .await?;
    let again = client
        .get_person_file(file(FileOrder::NewestFirst, 10, String::new()))
        .await?
        .into_inner();
    assert_eq!(again.entries.len(), 4);
    started.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_feed_is_applied_like_an_import_and_bad_records_go_to_the_dlq() -> TestResult {
    use prost::Message as _;
    let ns = unique_namespace();
    let started = start::<Registry>(&ns).await?;
    let client = registry_client(&started.running).await?;
    let topic = format!("{ns}jiuzhu.inbound.civil_affairs.v1");
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", jiuzhu_testkit::kafka_brokers())
        .create()?;
    let good = registration("feed-1", 1);
    let record = PersonRecord {
        source_record_id: "MZ-0001".to_owned(),
        full_name: good.full_name.clone(),
        gender: good.gender,
        birth_date: good.birth_date.clone(),
        resident_id: good.resident_id.clone(),
        region: good.region.clone(),
        ..PersonRecord::default()
    };
    let bad = PersonRecord {
        source_record_id: "MZ-0002".to_owned(),
        full_name: "无区划".to_owned(),
        region: Some(RegionCode {
            code: "999999".to_owned(),
        }),
        ..PersonRecord::default()
    };
    for (key, value) in [
        ("MZ-0001", record.encode_to_vec()),
        ("MZ-0002", bad.encode_to_vec()),
        ("MZ-0001", record.encode_to_vec()),
    ] {
        let civil_affairs = jiuzhu_tests::integrator("civil_affairs");
        jiuzhu_tests::send_inbound(
            &producer,
            &ns,
            "civil_affairs",
            key,
            &value,
            None,
            Some(&civil_affairs),
        )
        .await?;
    }
    // Unsigned, and signed by another department: neither is the civil affairs department's.
    let forged = |n: &str| PersonRecord {
        source_record_id: format!("MZ-{n}"),
        ..record.clone()
    };
    jiuzhu_tests::send_inbound(
        &producer,
        &ns,
        "civil_affairs",
        "MZ-0003",
        &forged("0003").encode_to_vec(),
        None,
        None,
    )
    .await?;
    let education = jiuzhu_tests::integrator("education");
    jiuzhu_tests::send_inbound(
        &producer,
        &ns,
        "civil_affairs",
        "MZ-0004",
        &forged("0004").encode_to_vec(),
        None,
        Some(&education),
    )
    .await?;
    let found = eventually("the fed person searchable", WAIT, || {
        let mut client = client.clone();
        let resident_id = record.resident_id.clone();
        async move {
            let page = client
                .search_persons(SearchPersonsRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    query: Some(Query::ResidentId(resident_id)),
                    ..SearchPersonsRequest::default()
                })
                .await?
                .into_inner();
            Ok(page.persons.into_iter().next())
        }
    })
    .await?;
    assert_eq!(found.source_department, "civil_affairs");
    let dead =
        jiuzhu_tests::read_topic(&jiuzhu_testkit::kafka_brokers(), &format!("{topic}.dlq"), 3)?;
    let reasons: Vec<String> = dead
        .iter()
        .map(|message| {
            jiuzhu_messaging::header_map(rdkafka::Message::headers(message))
                .get("jiuzhu-dlq-reason")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    // Keys differ, so partitions (and the order across them) may too.
    for why in [
        "region.code",
        "unsigned",
        "does not speak for `civil_affairs`",
    ] {
        assert_eq!(
            reasons.iter().filter(|r| r.contains(why)).count(),
            1,
            "{why}: {reasons:?}"
        );
    }
    let pool = started.running.store.pool().clone();
    eventually("all five feed records handled", WAIT, || {
        let pool = pool.clone();
        async move {
            Ok(
                (jiuzhu_tests::checkpoint_total(&pool, "registry.department_feeds").await? == 5)
                    .then_some(()),
            )
        }
    })
    .await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    assert_eq!(events, 1, "the repeated record changed nothing");
    started.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_upserts_link_records_of_registered_persons_and_refuse_a_departments_own_duplicates()
-> TestResult {
    let (started, mut client) = registry().await?;
    let holder = client
        .register_person(registration("holder", 0))
        .await?
        .into_inner()
        .person_id;
    let taken = registration("holder", 0).resident_id;
    let shared = registration("shared", 1);
    let record = jiuzhu_tests::person_record;
    // Civil affairs' record of the person rural revitalization registered, under another name.
    let holder_request = RegisterPersonRequest {
        full_name: "测试人九".to_owned(),
        ..registration("holder", 0)
    };
    let batches = vec![
        BulkUpsertPersonsRequest {
            source_department: "civil_affairs".to_owned(),
            records: vec![
                record("A", 1, &shared),
                record("B", 2, &shared),
                record("C", 3, &holder_request),
                record("E", 4, &registration("else", 5)),
            ],
        },
        BulkUpsertPersonsRequest {
            source_department: "civil_affairs".to_owned(),
            records: vec![record("D", 5, &shared), record("A", 6, &shared)],
        },
    ];
    let mut answers = client
        .bulk_upsert_persons(futures::stream::iter(batches))
        .await?
        .into_inner();
    let first = answers
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no answer"))?;
    let second = answers
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no second answer"))?;
    assert_eq!(
        (first.created, first.updated, first.linked, first.unchanged),
        (2, 0, 1, 0)
    );
    // B carries A's id: civil affairs' own duplicate, refused and named.
    let [refused] = first.rejections.as_slice() else {
        anyhow::bail!("expected one rejection, got {:?}", first.rejections)
    };
    assert_eq!((refused.line, refused.field.as_str()), (2, "resident_id"));
    assert!(refused.reason.contains("record A"), "{}", refused.reason);
    assert_eq!((second.created, second.unchanged), (0, 1));
    assert_eq!(
        second.rejections.iter().map(|r| r.line).collect::<Vec<_>>(),
        [5]
    );
    // C (the holder's id) became another source of the holder; the name it gives otherwise
    // is named for review and not applied.
    let events: Vec<String> = sqlx::query_scalar("SELECT event_type FROM events ORDER BY position")
        .fetch_all(started.running.store.pool())
        .await?;
    assert_eq!(
        events
            .iter()
            .filter(|t| t.ends_with("PersonRegistered"))
            .count(),
        3,
        "the holder, A and E: {events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|t| t.ends_with("SourceRecordLinked"))
            .count(),
        1,
        "{events:?}"
    );
    let person = eventually("the holder's other source shows", WAIT, || {
        let mut client = client.clone();
        let holder = holder.clone();
        async move {
            let found = client
                .get_person(GetPersonRequest {
                    person_id: holder,
                    purpose: "test".to_owned(),
                    ..GetPersonRequest::default()
                })
                .await;
            let person = match found {
                Ok(answer) => answer.into_inner().person.unwrap_or_default(),
                // The view has not caught up with the registration yet.
                Err(status) if status.code() == Code::NotFound => return Ok(None),
                Err(status) => return Err(status.into()),
            };
            Ok((!person.other_sources.is_empty()).then_some(person))
        }
    })
    .await?;
    assert_eq!(
        person.full_name, "测试人0",
        "{taken}: the registry's name stays"
    );
    assert_eq!(
        person
            .other_sources
            .iter()
            .map(|s| (
                s.department.as_str(),
                s.source_record_id.as_str(),
                s.conflicting_fields.clone()
            ))
            .collect::<Vec<_>>(),
        [("civil_affairs", "C", vec!["full_name".to_owned()])]
    );
    started.running.stop().await;
    Ok(())
}

/// A record merged into another (or erased) takes no household place when a department file
/// names a household for it later; the department learns which record to place instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_records_take_no_household_place_in_imports() -> TestResult {
    let (started, mut client) = registry().await?;
    let survivor = client
        .register_person(registration("m-survivor", 0))
        .await?
        .into_inner()
        .person_id;
    let duplicate = registration("m-dup", 1);
    let record = |household_ref: &str| PersonRecord {
        line: 7,
        source_record_id: "DUP-1".to_owned(),
        full_name: duplicate.full_name.clone(),
        gender: duplicate.gender,
        birth_date: duplicate.birth_date.clone(),
        resident_id: duplicate.resident_id.clone(),
        region: duplicate.region.clone(),
        household_ref: household_ref.to_owned(),
        relationship: if household_ref.is_empty() {
            0
        } else {
            Relationship::Head as i32
        },
        ..PersonRecord::default()
    };
    let bulk = client.clone();
    let send = |records: Vec<PersonRecord>| {
        let mut client = bulk.clone();
        async move {
            let mut answers = client
                .bulk_upsert_persons(futures::stream::iter([BulkUpsertPersonsRequest {
                    source_department: "civil_affairs".to_owned(),
                    records,
                }]))
                .await?
                .into_inner();
            answers
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("no answer"))
        }
    };
    assert_eq!(send(vec![record("")]).await?.created, 1);
    let absorbed: uuid::Uuid =
        sqlx::query_scalar("SELECT person_id FROM source_records WHERE source_record_id = 'DUP-1'")
            .fetch_one(started.running.store.pool())
            .await?;
    client
        .merge_persons(MergePersonsRequest {
            request_id: "m-merge".to_owned(),
            survivor_id: survivor.clone(),
            absorbed_id: absorbed.to_string(),
            reason: "same person".to_owned(),
            decided_by: "officer-1".to_owned(),
        })
        .await?;

    let answer = send(vec![record("H-1")]).await?;
    assert_eq!(answer.unchanged, 1);
    let [rejection] = answer.rejections.as_slice() else {
        anyhow::bail!("expected one rejection, got {:?}", answer.rejections)
    };
    assert_eq!(
        (rejection.line, rejection.field.as_str()),
        (7, "household_ref")
    );
    assert!(
        rejection
            .reason
            .contains(&format!("merged into {survivor}")),
        "{}",
        rejection.reason
    );
    let memberships: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.registry.v1.HouseholdMemberAdded'",
    )
    .fetch_one(started.running.store.pool())
    .await?;
    assert_eq!(memberships, 0);

    // Once unmerged, the record stands on its own again and can be placed.
    client
        .unmerge_person(UnmergePersonRequest {
            request_id: "m-unmerge".to_owned(),
            absorbed_id: absorbed.to_string(),
            reason: "not the same after all".to_owned(),
            decided_by: "officer-1".to_owned(),
        })
        .await?;
    let answer = send(vec![record("H-1")]).await?;
    assert!(answer.rejections.is_empty(), "{:?}", answer.rejections);
    started.running.stop().await;
    Ok(())
}

/// Feeding departments are configuration: a department named in `[feeds] departments` feeds the
/// registry on its own inbound topic; a name that is not one refuses the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_joins_the_live_feeds_by_configuration() -> TestResult {
    use jiuzhu_registry::inbound::FeedSettings;
    use prost::Message as _;
    let ns = unique_namespace();
    let refused = jiuzhu_tests::start_with::<Registry>(&ns, |settings| {
        settings.own.set(&FeedSettings {
            departments: vec!["Water Resources".to_owned()],
        });
    })
    .await
    .err()
    .ok_or_else(|| anyhow::anyhow!("a department name that is not one was taken"))?;
    assert!(
        refused.to_string().contains("feeds.departments"),
        "{refused}"
    );
    let started = jiuzhu_tests::start_with::<Registry>(&ns, |settings| {
        settings.own.set(&FeedSettings {
            departments: vec!["water_resources".to_owned()],
        });
    })
    .await?;
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", jiuzhu_testkit::kafka_brokers())
        .create()?;
    let person = registration("water-1", 1);
    let record = PersonRecord {
        source_record_id: "SL-0001".to_owned(),
        full_name: person.full_name.clone(),
        gender: person.gender,
        birth_date: person.birth_date.clone(),
        resident_id: person.resident_id.clone(),
        region: person.region.clone(),
        ..PersonRecord::default()
    };
    jiuzhu_tests::send_inbound(
        &producer,
        &ns,
        "water_resources",
        "SL-0001",
        &record.encode_to_vec(),
        None,
        Some(&jiuzhu_tests::integrator("water_resources")),
    )
    .await?;
    let pool = started.running.store.pool().clone();
    eventually("the configured department's record", WAIT, || async {
        let registered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.registry.v1.PersonRegistered'",
        )
        .fetch_one(&pool)
        .await?;
        Ok((registered == 1).then_some(()))
    })
    .await?;
    started.running.stop().await;
    Ok(())
}

/// A department's records carry the statuses it holds, with their days: recorded once however
/// often the record is sent, ended when the record later gives the end, and a bad status
/// rejected by its place in the record while the record itself stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_records_carry_statuses_with_their_days() -> TestResult {
    let (started, mut client) = registry().await?;
    let person = registration("status-import", 3);
    let poor = |to: &str| RecordedStatus {
        kind: StatusKind::RegisteredPoor as i32,
        effective_from: "2026-03-01".to_owned(),
        effective_to: to.to_owned(),
        reference: "黔乡振〔2026〕21号".to_owned(),
        detail: String::new(),
    };
    let record = |statuses: Vec<RecordedStatus>| PersonRecord {
        line: 1,
        source_record_id: "XZ-0001".to_owned(),
        full_name: person.full_name.clone(),
        gender: person.gender,
        birth_date: person.birth_date.clone(),
        resident_id: person.resident_id.clone(),
        region: person.region.clone(),
        statuses,
        ..PersonRecord::default()
    };
    let batch = |statuses: Vec<RecordedStatus>| BulkUpsertPersonsRequest {
        source_department: "rural_revitalization".to_owned(),
        records: vec![record(statuses)],
    };
    let unknown_kind = RecordedStatus {
        kind: 99,
        ..poor("")
    };
    let batches = vec![
        batch(vec![poor(""), unknown_kind]),
        batch(vec![poor("")]),
        batch(vec![poor("2026-10-31")]),
    ];
    let mut answers = client
        .bulk_upsert_persons(futures::stream::iter(batches))
        .await?
        .into_inner();
    let mut rejected = Vec::new();
    while let Some(answer) = answers.message().await? {
        rejected.extend(answer.rejections.into_iter().map(|r| r.field));
    }
    assert_eq!(rejected, ["statuses[1].kind"], "only the bad status");
    let events: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, count(*) FROM events WHERE event_type LIKE 'jiuzhu.registry.v1.Status%' \
         GROUP BY event_type ORDER BY event_type",
    )
    .fetch_all(started.running.store.pool())
    .await?;
    assert_eq!(
        events,
        [
            ("jiuzhu.registry.v1.StatusEnded".to_owned(), 1),
            ("jiuzhu.registry.v1.StatusRecorded".to_owned(), 1)
        ],
        "recorded once, then ended"
    );
    started.running.stop().await;
    Ok(())
}

/// A department's records carry their household's income per head: recorded once however many
/// members carry it and however often the file is sent, replaced by a new figure for the year;
/// a bad year or an income without a household is refused field by field, the record standing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_records_carry_their_households_income() -> TestResult {
    let (started, mut client) = registry().await?;
    let record = |n: usize, relationship: Relationship, fen: i64, year: i32| {
        let person = registration(&format!("income-import-{n}"), n);
        PersonRecord {
            line: i64::try_from(n).unwrap_or_default(),
            source_record_id: format!("MZ-{n}"),
            full_name: person.full_name,
            gender: person.gender,
            birth_date: person.birth_date,
            resident_id: person.resident_id,
            region: person.region,
            household_ref: if n == 3 {
                String::new()
            } else {
                "HH-7".to_owned()
            },
            relationship: relationship as i32,
            household_income_per_head: Some(Money { fen }),
            household_income_year: year,
            ..PersonRecord::default()
        }
    };
    let batch = |records: Vec<PersonRecord>| BulkUpsertPersonsRequest {
        source_department: "civil_affairs".to_owned(),
        records,
    };
    let batches = vec![
        batch(vec![
            record(1, Relationship::Head, 480_000, 2025),
            record(2, Relationship::Spouse, 480_000, 2025),
            record(3, Relationship::Unspecified, 480_000, 2025),
            record(4, Relationship::Child, 480_000, 1800),
        ]),
        // The same file again, then a corrected figure.
        batch(vec![
            record(1, Relationship::Head, 480_000, 2025),
            record(2, Relationship::Spouse, 480_000, 2025),
        ]),
        batch(vec![record(1, Relationship::Head, 455_000, 2025)]),
    ];
    let mut answers = client
        .bulk_upsert_persons(futures::stream::iter(batches))
        .await?
        .into_inner();
    let mut rejected = Vec::new();
    while let Some(answer) = answers.message().await? {
        rejected.extend(answer.rejections.into_iter().map(|r| (r.line, r.field)));
    }
    assert_eq!(
        rejected,
        [
            (3, "household_income_per_head".to_owned()),
            (4, "household_income_year".to_owned())
        ]
    );
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'jiuzhu.registry.v1.HouseholdIncomeRecorded'), \
         count(*) FILTER (WHERE event_type = 'jiuzhu.registry.v1.PersonRegistered') FROM events",
    )
    .fetch_one(started.running.store.pool())
    .await?;
    assert_eq!(
        counts,
        (2, 4),
        "the figure, then its correction; four persons"
    );
    let household_id: uuid::Uuid = sqlx::query_scalar(
        "SELECT household_id FROM source_households WHERE household_ref = 'HH-7'",
    )
    .fetch_one(started.running.store.pool())
    .await?;
    let household = eventually("the corrected income in the household view", WAIT, || {
        let mut client = client.clone();
        async move {
            match client
                .get_household(GetHouseholdRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    household_id: household_id.to_string(),
                    ..GetHouseholdRequest::default()
                })
                .await
            {
                Ok(found) => Ok(found.into_inner().household.filter(|h| {
                    h.incomes
                        .first()
                        .is_some_and(|i| i.income_per_head.as_ref().map(|m| m.fen) == Some(455_000))
                })),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await?;
    assert_eq!(
        (
            household.members.len(),
            household.incomes.len(),
            household.incomes[0].year
        ),
        (3, 1, 2025),
        "head, spouse and child (whose income's year was refused, not the record)"
    );
    started.running.stop().await;
    Ok(())
}

/// A household as of a day: she joined on 5 November and left on 20 November (each change made
/// by a registry whose clock was on that day); her person view and the household's members
/// answer for any day from what the registry held then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_household_answers_as_of_a_day() -> TestResult {
    let on = |day: &'static str| {
        move |settings: &mut jiuzhu_runtime::Settings| {
            settings.clock.start = Some(format!("{day}T02:00:00Z"));
        }
    };
    let namespace = unique_namespace();
    let started = jiuzhu_tests::start_with::<Registry>(&namespace, on("2026-11-05")).await?;
    let mut client = registry_client(&started.running).await?;
    let person = client
        .register_person(registration("asof-household", 1))
        .await?
        .into_inner()
        .person_id;
    let household_id = client
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "asof-join".to_owned(),
            person_id: person.clone(),
            relationship: Relationship::Head as i32,
            ..AddHouseholdMemberRequest::default()
        })
        .await?
        .into_inner()
        .household_id;
    started.running.stop().await;
    let running =
        jiuzhu_tests::restart_with::<Registry>(&namespace, &started.database, on("2026-11-20"))
            .await?;
    let mut client = registry_client(&running).await?;
    client
        .remove_household_member(RemoveHouseholdMemberRequest {
            request_id: "asof-leave".to_owned(),
            household_id: household_id.clone(),
            person_id: person.clone(),
            reason: "moved to her daughter's".to_owned(),
        })
        .await?;
    let household_on = |as_of: &'static str| {
        let mut client = client.clone();
        let person = person.clone();
        async move {
            match client
                .get_person(GetPersonRequest {
                    person_id: person,
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    as_of: as_of.to_owned(),
                })
                .await
            {
                Ok(found) => Ok(found.into_inner().person.map(|p| p.household_id)),
                Err(status) if status.code() == Code::NotFound => Ok(None),
                Err(status) => Err(anyhow::Error::from(status)),
            }
        }
    };
    // The view has caught up once it holds both the joining and the leaving (they travel on the
    // household's key, the registration on the person's).
    eventually("the joining and the leaving in the view", WAIT, || async {
        let joined = household_on("2026-11-10").await? == Some(household_id.clone());
        let left = household_on("2026-11-25").await? == Some(String::new());
        Ok((joined && left).then_some(()))
    })
    .await?;
    assert_eq!(household_on("").await?, Some(String::new()), "not now");
    assert_eq!(household_on("2026-11-04").await?, Some(String::new()));
    assert_eq!(household_on("2026-11-25").await?, Some(String::new()));
    let members_on = |as_of: &'static str| {
        let mut client = client.clone();
        let household_id = household_id.clone();
        async move {
            match client
                .get_household(GetHouseholdRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    household_id,
                    as_of: as_of.to_owned(),
                })
                .await
            {
                Ok(found) => Ok(found
                    .into_inner()
                    .household
                    .map(|h| h.members.into_iter().map(|m| m.person_id).collect())
                    .unwrap_or_default()),
                Err(status) if status.code() == Code::NotFound => Ok(Vec::new()),
                Err(status) => Err(anyhow::Error::from(status)),
            }
        }
    };
    assert_eq!(
        members_on("2026-11-10").await?,
        std::slice::from_ref(&person)
    );
    assert!(members_on("2026-11-25").await?.is_empty());
    let bad = client
        .get_household(GetHouseholdRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            household_id: household_id.clone(),
            as_of: "November".to_owned(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a date that is not one was taken"))?;
    assert_eq!(bad_fields(&bad), ["as_of"]);
    running.stop().await;
    Ok(())
}
