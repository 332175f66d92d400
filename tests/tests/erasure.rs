//! Erasure on a legal request (crypto-shredding): personal data never reaches storage or Kafka
//! in the clear, and once a person's key is destroyed their data is unreadable everywhere — the
//! person view, search, the person file, clue acquisition's index and the case parties matched
//! to them, and any replay afterwards —
//! while non-personal facts (statuses, region, counts) stay.

use std::time::Duration;

use jiuzhu_clues::Clues;
use jiuzhu_proto::registry::search_persons_request::Query;
use jiuzhu_proto::registry::*;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{
    TestResult, eventually, linkage_status, read_topic, registration, registry_client,
    resident_id_for, start,
};
use tonic::Code;
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(60);
const PHONE: &str = "13912345678";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_unreadable_everywhere_and_stays_so_on_replay() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let mut client = registry_client(&registry.running).await?;

    let erased_name = "测试人7";
    let kept_name = "测试人8";
    let erased_id = resident_id_for("erase-1").as_str().to_owned();
    let mut request = registration("erase-1", 7);
    request.phone = PHONE.to_owned();
    request.address_text = "幸福路8号".to_owned();
    let person = client
        .register_person(request)
        .await?
        .into_inner()
        .person_id;
    client.register_person(registration("erase-2", 8)).await?;
    client
        .update_person(UpdatePersonRequest {
            request_id: "erase-u".to_owned(),
            person_id: person.clone(),
            village: "新场村".to_owned(),
            ..UpdatePersonRequest::default()
        })
        .await?;
    client
        .record_status(RecordStatusRequest {
            request_id: "erase-s".to_owned(),
            person_id: person.clone(),
            kind: StatusKind::RegisteredPoor as i32,
            source_department: "rural_revitalization".to_owned(),
            effective_from: "2025-01-01".to_owned(),
            ..RecordStatusRequest::default()
        })
        .await?;

    // Before erasure: readable through the API, sealed at rest and on the topic.
    let view = eventually("the person view", WAIT, || {
        let mut client = client.clone();
        let person_id = person.clone();
        async move {
            let found = client
                .get_person(GetPersonRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id,
                    ..Default::default()
                })
                .await;
            Ok(found
                .ok()
                .and_then(|f| f.into_inner().person)
                .filter(|p| p.version >= 3))
        }
    })
    .await?;
    assert_eq!(
        (
            view.full_name.as_str(),
            view.phone.as_str(),
            view.village.as_str()
        ),
        (erased_name, PHONE, "新场村")
    );
    eventually("both persons indexed by clues", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 2).then_some(()))
    })
    .await?;
    let pool = registry.running.store.pool().clone();
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM events UNION ALL SELECT envelope FROM outbox")
            .fetch_all(&pool)
            .await?;
    assert!(payloads.len() >= 4);
    for secret in [
        erased_name,
        kept_name,
        erased_id.as_str(),
        PHONE,
        "幸福路8号",
        "新场村",
    ] {
        assert!(
            !payloads.iter().any(|p| contains(p, secret)),
            "`{secret}` is stored in the clear"
        );
    }
    let topic = registry.running.store.topic().to_owned();
    let records = read_topic(&kafka_brokers(), &topic, 4)?;
    for record in &records {
        use rdkafka::Message as _;
        let payload = record.payload().unwrap_or_default();
        assert!(!contains(payload, erased_name) && !contains(payload, PHONE));
    }

    // A case system reports the person as a victim: the party matches and is kept sealed.
    let mut victims = jiuzhu_proto::clues::clues_service_client::CluesServiceClient::new(
        jiuzhu_testkit::channel(clues.running.grpc_addr).await?,
    );
    let reported = victims
        .report_party(jiuzhu_proto::clues::ReportPartyRequest {
            request_id: "erase-party".to_owned(),
            case_no: "(2026)京0105刑初88号".to_owned(),
            party_ref: "P1".to_owned(),
            procuratorate: "北京市朝阳区人民检察院".to_owned(),
            incident_date: "2026-03-01".to_owned(),
            role: jiuzhu_proto::clues::PartyRole::Victim as i32,
            harm: Some(jiuzhu_proto::clues::Harm {
                disability_grade: 5,
                ..jiuzhu_proto::clues::Harm::default()
            }),
            full_name: erased_name.to_owned(),
            id_number: erased_id.clone(),
            region: Some(jiuzhu_proto::common::RegionCode {
                code: "110105".to_owned(),
            }),
            ..jiuzhu_proto::clues::ReportPartyRequest::default()
        })
        .await?
        .into_inner();
    assert!(reported.clue.is_some(), "the party did not match");
    let clues_pool = clues.running.store.pool().clone();
    let party_key_erased = |pool: sqlx::PgPool, party: String| async move {
        let erased: Option<bool> = sqlx::query_scalar(
            "SELECT erased_at IS NOT NULL FROM person_keys WHERE person_id = $1::uuid",
        )
        .bind(party)
        .fetch_optional(&pool)
        .await?;
        anyhow::Ok(erased)
    };
    assert_eq!(
        party_key_erased(clues_pool.clone(), reported.party_id.clone()).await?,
        Some(false)
    );
    eventually("the clue on the clue board", WAIT, || {
        let (pool, party) = (clues_pool.clone(), reported.party_id.clone());
        async move {
            let clues: i64 =
                sqlx::query_scalar("SELECT count(*) FROM clues WHERE party_id = $1::uuid")
                    .bind(party)
                    .fetch_one(&pool)
                    .await?;
            Ok((clues == 1).then_some(()))
        }
    })
    .await?;

    // Erasure needs its legal basis (who decided is the caller's verified identity).
    let refused = client
        .erase_person(ErasePersonRequest {
            request_id: "erase-x".to_owned(),
            person_id: person.clone(),
            ..ErasePersonRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an erasure without legal basis was accepted"))?;
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields: Vec<String> = refused
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["legal_basis"]);

    let erase = ErasePersonRequest {
        request_id: "erase-ok".to_owned(),
        person_id: person.clone(),
        legal_basis: "个人信息保护法 第47条; request 2026-117".to_owned(),
        reason: "the person asked".to_owned(),
        decided_by: "officer-9".to_owned(),
    };
    client.erase_person(erase.clone()).await?;
    client.erase_person(erase.clone()).await?; // a retry is the same answer, nothing new
    let again = client
        .erase_person(ErasePersonRequest {
            request_id: "erase-again".to_owned(),
            ..erase.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a second erasure was accepted"))?;
    assert_eq!(again.code(), Code::FailedPrecondition);
    let changed = client
        .update_person(UpdatePersonRequest {
            request_id: "erase-u2".to_owned(),
            person_id: person.clone(),
            phone: "13800000000".to_owned(),
            ..UpdatePersonRequest::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an erased record accepted an update"))?;
    assert_eq!(changed.code(), Code::FailedPrecondition);
    let erasures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'jiuzhu.registry.v1.PersonErased'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(erasures, 1);

    // The person view keeps the non-personal facts only.
    let view = eventually("the erasure in the person view", WAIT, || {
        let mut client = client.clone();
        let person_id = person.clone();
        async move {
            let found = client
                .get_person(GetPersonRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id,
                    ..Default::default()
                })
                .await?;
            Ok(found.into_inner().person.filter(|p| p.erased))
        }
    })
    .await?;
    assert_eq!(
        [
            &view.full_name,
            &view.birth_date,
            &view.resident_id,
            &view.phone,
            &view.address_text,
            &view.village
        ],
        [""; 6].map(String::from).each_ref()
    );
    assert_eq!(view.region.map(|r| r.code).as_deref(), Some("110105"));
    assert_eq!(view.statuses.len(), 1, "statuses are not personal data");
    let found = client
        .search_persons(SearchPersonsRequest {
            purpose: jiuzhu_tests::PURPOSE.to_owned(),
            query: Some(Query::ResidentId(erased_id.clone())),
            ..SearchPersonsRequest::default()
        })
        .await?
        .into_inner();
    assert!(found.persons.is_empty());

    // The person file: the registration is there, its personal data is not.
    let file = eventually("the erasure in the person file", WAIT, || {
        let mut client = client.clone();
        let person_id = person.clone();
        async move {
            let entries = client
                .get_person_file(GetPersonFileRequest {
                    purpose: jiuzhu_tests::PURPOSE.to_owned(),
                    person_id,
                    ..GetPersonFileRequest::default()
                })
                .await?
                .into_inner()
                .entries;
            // The registry's four entries and the clue about the person.
            Ok((entries.len() == 5).then_some(entries))
        }
    })
    .await?;
    assert_eq!(file[0].event_type, "jiuzhu.registry.v1.PersonErased");
    let registered = file
        .iter()
        .find(|e| e.event_type == "jiuzhu.registry.v1.PersonRegistered")
        .ok_or_else(|| anyhow::anyhow!("no registration in the file"))?;
    assert!(
        registered
            .detail_json
            .contains("\"personalDataErased\":true")
    );
    for entry in &file {
        assert!(
            !entry.detail_json.contains(erased_name) && !entry.detail_json.contains(PHONE),
            "{}",
            entry.detail_json
        );
    }

    // The party matched to the person went with them.
    eventually("the party's key destroyed", WAIT, || {
        let (pool, party) = (clues_pool.clone(), reported.party_id.clone());
        async move { Ok((party_key_erased(pool, party).await? == Some(true)).then_some(())) }
    })
    .await?;

    // Clue acquisition forgot the person; the other one stays readable there.
    eventually("clues to drop the erased person", WAIT, || async {
        Ok((linkage_status(&clues.running).await?.0 == 1).then_some(()))
    })
    .await?;
    let rows: Vec<(String, Option<Vec<u8>>, bool)> = sqlx::query_as(
        "SELECT person_id::text, identity, erased FROM linkage_persons ORDER BY erased",
    )
    .fetch_all(clues.running.store.pool())
    .await?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].1.is_some() && !rows[0].2,
        "the other person stays indexed (sealed)"
    );
    assert_eq!(
        (&rows[1].0, &rows[1].1, rows[1].2),
        (&person, &None, true),
        "the erased person stays only as a blank tombstone"
    );

    // The resident id is free again: the claim went with the erasure.
    let mut newcomer = registration("erase-1", 9);
    newcomer.request_id = "erase-newcomer".to_owned();
    client.register_person(newcomer).await?;

    // Replays after the erasure: the registry's view from its store, clues' index from the topic.
    let registry_db = registry.database.clone();
    registry.running.stop().await;
    let (pool, _) =
        jiuzhu_tests::rebuild_person_view(&ns, &registry_db, "TRUNCATE persons, person_statuses")
            .await?;
    let replayed: (Option<Vec<u8>>, String, String, bool) = sqlx::query_as(
        "SELECT identity, resident_id_index, phone_index, erased FROM persons \
         WHERE person_id = $1::uuid",
    )
    .bind(&person)
    .fetch_one(&pool)
    .await?;
    assert_eq!(replayed, (None, String::new(), String::new(), true));
    let readable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM persons WHERE identity IS NOT NULL AND resident_id_index <> ''",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(readable, 2, "the other persons replay readable");
    pool.close().await;
    clues.running.stop().await;
    Ok(())
}
