//! Who gets in and what they see: mutual TLS, the access table over every RPC, jurisdiction,
//! the audit log of personal-data access, and the limits on what one caller may ask.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiuzhu_access::{AccessTable, Identity, Role};
use jiuzhu_clues::Clues;
use jiuzhu_decisions::Decisions;
use jiuzhu_followup::Followup;
use jiuzhu_payments::Payments;
use jiuzhu_proto::audit::audit_service_client::AuditServiceClient;
use jiuzhu_proto::audit::{ListAuditRecordsRequest, VerifyAuditChainRequest};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::decisions::{
    CaseOrigin, DeadlineFilter, GetCaseRequest, ListDeadlinesRequest, OpenCaseRequest,
    RegisterMaterialRequest,
};
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_proto::registry::search_persons_request::{NameAndBirthDate, NameAndRegion, Query};
use jiuzhu_proto::registry::{
    AddHouseholdMemberRequest, ErasePersonRequest, GetHouseholdRequest, GetPersonFileRequest,
    GetPersonRequest, Relationship, SearchPersonsRequest,
};
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{channel, channel_as, unique_namespace};
use jiuzhu_tests::{PURPOSE, bad_fields, registration, restart_with, start, start_with};
use tonic::Code;
use tonic::transport::Channel;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn office(role: Role, office: &str) -> Identity {
    Identity::new("procuratorate", office, role, &format!("{role}-system"))
}

/// Opens an application case of Nanming district (520102), case number `n`, as the test client.
async fn open_nanming_case(
    namespace: &str,
    decisions: std::net::SocketAddr,
    request_id: &str,
    n: u32,
) -> anyhow::Result<String> {
    let mut client = DecisionsServiceClient::new(channel(decisions).await?);
    let request = OpenCaseRequest {
        request_id: request_id.to_owned(),
        origin: CaseOrigin::Application as i32,
        person_id: jiuzhu_tests::announced_person(namespace).await?,
        case_no: format!("(2026)黔0102刑初{n}号"),
        procuratorate: "贵阳市南明区人民检察院".to_owned(),
        region_code: "520102".to_owned(),
        category: "serious_injury_unpaid".to_owned(),
        applicant_relation: "self".to_owned(),
        opened_by: "online".to_owned(),
        ..OpenCaseRequest::default()
    };
    Ok(jiuzhu_tests::open_case_once_known(&mut client, request)
        .await?
        .case_id)
}

/// The audit records `request` asks for, as a nationwide auditor reads them.
async fn audit_records(
    addr: std::net::SocketAddr,
    request: ListAuditRecordsRequest,
) -> anyhow::Result<Vec<jiuzhu_proto::audit::AuditRecord>> {
    Ok(
        AuditServiceClient::new(channel_as(addr, &office(Role::Auditor, "000000")).await?)
            .list_audit_records(request)
            .await?
            .into_inner()
            .records,
    )
}

async fn call(channel: Channel, path: &str) -> Result<tonic::Status, Box<dyn std::error::Error>> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_str(path)?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    Ok(
        match grpc.unary(tonic::Request::new(()), path, codec).await {
            Ok(_) => tonic::Status::ok(""),
            Err(status) => status,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_nothing_is_served() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let addr = registry.running.grpc_addr;
    // Plain text: no TLS, no answer.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await;
    if let Ok(plain) = plain {
        let status = call(plain, "/grpc.health.v1.Health/Check").await;
        assert!(
            status.as_ref().map_or(true, |s| s.code() != Code::Ok),
            "{status:?}"
        );
    }
    // TLS that trusts the server but shows no certificate: refused in the handshake.
    let ca = std::fs::read(jiuzhu_testkit::certs_dir()?.join("ca.pem"))?;
    let anonymous = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
        )?;
    let outcome = match anonymous.connect().await {
        Err(_) => None,
        Ok(channel) => Some(call(channel, "/grpc.health.v1.Health/Check").await),
    };
    assert!(
        outcome
            .as_ref()
            .is_none_or(|status| status.as_ref().map_or(true, |s| s.code() != Code::Ok)),
        "served without a certificate: {outcome:?}"
    );
    // A certificate from another authority: refused too.
    let stranger = jiuzhu_access::dev::DevAuthority::new()?
        .issue(&office(Role::Service, "000000"), &jiuzhu_access::dev::HOSTS)?;
    let ca = std::fs::read(jiuzhu_testkit::certs_dir()?.join("ca.pem"))?;
    let forged = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?.tls_config(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca))
            .identity(tonic::transport::Identity::from_pem(
                stranger.cert_pem,
                stranger.key_pem,
            )),
    )?;
    let outcome = match forged.connect().await {
        Err(_) => None,
        Ok(channel) => Some(call(channel, "/grpc.health.v1.Health/Check").await),
    };
    assert!(
        outcome
            .as_ref()
            .is_none_or(|status| status.as_ref().map_or(true, |s| s.code() != Code::Ok)),
        "served a certificate of another authority: {outcome:?}"
    );
    // With one: served.
    let status = call(channel(addr).await?, "/grpc.health.v1.Health/Check").await?;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
    registry.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_every_role_its_rule_does_not_name() -> TestResult {
    let ns = unique_namespace();
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let payments = start::<Payments>(&ns).await?;
    let followup = start::<Followup>(&ns).await?;
    let server = |path: &str| {
        let package = path.trim_start_matches('/').split('.').nth(1).unwrap_or("");
        match package {
            "clues" => clues.running.grpc_addr,
            "decisions" => decisions.running.grpc_addr,
            "payments" | "gateway" => payments.running.grpc_addr,
            "followup" => followup.running.grpc_addr,
            _ => registry.running.grpc_addr,
        }
    };
    let table = AccessTable::shipped()?;
    let pool = prost_reflect::DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
    let unary = |path: &str| {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or_default();
        pool.get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .is_some_and(|m| !m.is_client_streaming() && !m.is_server_streaming())
    };
    let mut channels: BTreeMap<(std::net::SocketAddr, Role), Channel> = BTreeMap::new();
    let (mut refused, mut admitted) = (0, 0);
    for path in table.paths() {
        let Some(rule) = table.rule(path) else {
            continue;
        };
        let addr = server(path);
        for role in Role::ALL {
            let channel = match channels.get(&(addr, role)) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = channel_as(addr, &office(role, "520102")).await?;
                    channels.insert((addr, role), channel.clone());
                    channel
                }
            };
            if rule.allows(role) {
                if !unary(path) {
                    continue;
                }
                // A rule naming systems: any other system of the role is refused, a named one
                // gets in (the key service answers only the services that open identities).
                let channel = match rule.systems.iter().next() {
                    None => channel,
                    Some(system) => {
                        let status = call(channel, path).await?;
                        assert_eq!(status.code(), Code::PermissionDenied, "{role} on {path}");
                        assert!(status.message().contains("only"), "{}", status.message());
                        refused += 1;
                        let named = Identity::new("jiuzhu", "000000", role, system);
                        channel_as(addr, &named).await?
                    }
                };
                let status = call(channel, path).await?;
                assert!(
                    !(status.code() == Code::PermissionDenied
                        && status.message().contains("may not call")),
                    "{role} was refused {path}, which its rule allows"
                );
                admitted += 1;
            } else {
                let status = call(channel, path).await?;
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{role} on {path}: {status:?}"
                );
                assert!(
                    status
                        .message()
                        .contains(&format!("role {role} may not call")),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    assert!(
        refused > 250 && admitted > 100,
        "{refused} refused, {admitted} admitted"
    );
    for started in [followup, payments, decisions, clues, registry] {
        started.running.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_sees_its_own_jurisdiction_unless_its_role_is_nationwide() -> TestResult {
    let ns = unique_namespace();
    let on = |today: &str| {
        let today = today.to_owned();
        move |settings: &mut jiuzhu_runtime::Settings| settings.clock.start = Some(today)
    };
    // Monday 28 September 2026: the application's stage is due on 13 October.
    let decisions = start_with::<Decisions>(&ns, on("2026-09-28")).await?;
    let addr = decisions.running.grpc_addr;
    let case_id = open_nanming_case(&ns, addr, "scope-open", 77).await?;
    let read = GetCaseRequest {
        purpose: PURPOSE.to_owned(),
        case_id: case_id.clone(),
    };
    for (who, allowed) in [
        (office(Role::ReliefProsecutor, "520102"), true),
        (office(Role::ReliefProsecutor, "520100"), true),
        (office(Role::Approver, "520000"), true),
        (office(Role::ReliefProsecutor, "520103"), false),
        (office(Role::CaseProsecutor, "110105"), false),
        (office(Role::Auditor, "110000"), true),
    ] {
        let mut client = DecisionsServiceClient::new(channel_as(addr, &who).await?);
        let answer = client.get_case(read.clone()).await;
        match answer {
            Ok(case) => {
                assert!(allowed, "{} of {} saw the case", who.role, who.office);
                let case = case.into_inner().relief_case.unwrap_or_default();
                assert_eq!(case.case_id, case_id);
            }
            Err(status) => {
                assert!(!allowed, "{} of {}: {status:?}", who.role, who.office);
                assert_eq!(status.code(), Code::PermissionDenied);
                assert!(status.message().contains("jurisdiction"), "{status:?}");
            }
        }
    }
    decisions.running.stop().await;

    // On 14 October the case is overdue: on the lists of its own offices only.
    let running = restart_with::<Decisions>(&ns, &decisions.database, on("2026-10-14")).await?;
    let overdue = |who: Identity| {
        let addr = running.grpc_addr;
        async move {
            let mut client = DecisionsServiceClient::new(channel_as(addr, &who).await?);
            let listed = client
                .list_deadlines(ListDeadlinesRequest {
                    filter: DeadlineFilter::Overdue as i32,
                    ..ListDeadlinesRequest::default()
                })
                .await?
                .into_inner()
                .deadlines;
            anyhow::Ok(listed.into_iter().map(|d| d.case_id).collect::<Vec<_>>())
        }
    };
    let own = jiuzhu_tests::eventually("the overdue case on its office's list", WAIT, || {
        let overdue = &overdue;
        async move {
            let listed = overdue(office(Role::ReliefProsecutor, "520102")).await?;
            Ok((!listed.is_empty()).then_some(listed))
        }
    })
    .await?;
    assert_eq!(own, std::slice::from_ref(&case_id));
    assert_eq!(overdue(office(Role::Auditor, "110000")).await?, [case_id]);
    assert!(
        overdue(office(Role::ReliefProsecutor, "520103"))
            .await?
            .is_empty(),
        "a neighbouring district's office listed the case"
    );
    running.stop().await;
    Ok(())
}

/// Writes and the reads of a person's file are held to the office too: a relief prosecutor of
/// another office can neither change a case nor read, find or erase a person outside its
/// jurisdiction; its own office can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_changes_and_reads_only_what_its_jurisdiction_holds() -> TestResult {
    let ns = unique_namespace();
    let decisions = start::<Decisions>(&ns).await?;
    let registry = start::<Registry>(&ns).await?;
    let (decisions_at, registry_at) = (decisions.running.grpc_addr, registry.running.grpc_addr);
    let case_id = open_nanming_case(&ns, decisions_at, "office-open", 78).await?;
    let material = |id: &str| RegisterMaterialRequest {
        request_id: id.to_owned(),
        case_id: case_id.clone(),
        material: "proof_of_hardship".to_owned(),
        file_id: "f-1".to_owned(),
        sha256: "ab".repeat(32),
        centre: "南明区检察院服务中心".to_owned(),
        received_by: "typed text".to_owned(),
    };
    let stranger = office(Role::ReliefProsecutor, "520103");
    let refused = DecisionsServiceClient::new(channel_as(decisions_at, &stranger).await?)
        .register_material(material("office-m-1"))
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(
        refused,
        Some(Code::PermissionDenied),
        "another office changed the case"
    );
    DecisionsServiceClient::new(
        channel_as(decisions_at, &office(Role::ReliefProsecutor, "520102")).await?,
    )
    .register_material(material("office-m-2"))
    .await?;

    // A person of Kaili (522601): Guiyang's office (520100) neither reads, finds nor erases them.
    let mut person = registration("office-person", 77);
    person.region = Some(RegionCode {
        code: "522601".to_owned(),
    });
    let (full_name, birth_date) = (person.full_name.clone(), person.birth_date.clone());
    let mut service = RegistryServiceClient::new(channel(registry_at).await?);
    let person_id = service
        .register_person(person)
        .await?
        .into_inner()
        .person_id;
    let household_id = service
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "office-household".to_owned(),
            person_id: person_id.clone(),
            relationship: Relationship::Head as i32,
            ..AddHouseholdMemberRequest::default()
        })
        .await?
        .into_inner()
        .household_id;
    let household = GetHouseholdRequest {
        purpose: PURPOSE.to_owned(),
        household_id,
        ..GetHouseholdRequest::default()
    };
    let file = GetPersonFileRequest {
        purpose: PURPOSE.to_owned(),
        person_id: person_id.clone(),
        ..GetPersonFileRequest::default()
    };
    let search = SearchPersonsRequest {
        purpose: PURPOSE.to_owned(),
        query: Some(Query::NameAndBirthDate(NameAndBirthDate {
            full_name,
            birth_date,
        })),
        ..SearchPersonsRequest::default()
    };
    // Wait until search finds the person at all (the search index is a read model).
    let mut qiandongnan = RegistryServiceClient::new(
        channel_as(registry_at, &office(Role::ReliefProsecutor, "522600")).await?,
    );
    let found = jiuzhu_tests::eventually("the person in the search index", WAIT, || {
        let (mut client, search) = (qiandongnan.clone(), search.clone());
        async move {
            let persons = client.search_persons(search).await?.into_inner().persons;
            Ok((!persons.is_empty()).then_some(persons))
        }
    })
    .await?;
    assert_eq!(
        found
            .iter()
            .map(|p| p.person_id.as_str())
            .collect::<Vec<_>>(),
        [person_id.as_str()]
    );
    qiandongnan.get_person_file(file.clone()).await?;
    let household_seen = jiuzhu_tests::eventually("the household", WAIT, || {
        let (mut client, household) = (qiandongnan.clone(), household.clone());
        async move { Ok(client.get_household(household).await.ok()) }
    })
    .await?;
    assert!(household_seen.get_ref().household.is_some());
    let mut guiyang = RegistryServiceClient::new(
        channel_as(registry_at, &office(Role::ReliefProsecutor, "520100")).await?,
    );
    let other_household = guiyang
        .get_household(household)
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(
        other_household,
        Some(Code::PermissionDenied),
        "the household was read"
    );
    let read = guiyang
        .get_person_file(file.clone())
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(read, Some(Code::PermissionDenied), "the file was read");
    let found = guiyang
        .search_persons(search.clone())
        .await?
        .into_inner()
        .persons;
    assert!(
        found.is_empty(),
        "found outside the jurisdiction: {found:?}"
    );
    let erased = guiyang
        .erase_person(ErasePersonRequest {
            request_id: "office-erase".to_owned(),
            person_id: person_id.clone(),
            legal_basis: "PIPL art. 47".to_owned(),
            reason: "asked".to_owned(),
            decided_by: "typed text".to_owned(),
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(
        erased,
        Some(Code::PermissionDenied),
        "another office erased the person"
    );
    Ok(())
}

/// An integrator speaks for the department its certificate names: another department in the
/// request is refused, a certificate naming none writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrator_writes_only_as_its_own_department() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let addr = registry.running.grpc_addr;
    let integrator = |department: Option<&str>| {
        let identity = Identity::new(
            "civil-affairs",
            "000000",
            Role::DepartmentIntegrator,
            "feed",
        );
        match department {
            Some(department) => identity.scoped(department),
            None => identity,
        }
    };
    let mut civil =
        RegistryServiceClient::new(channel_as(addr, &integrator(Some("civil_affairs"))).await?);
    let mut spoofed = registration("dept-1", 81);
    spoofed.source_department = "health".to_owned();
    let refused = civil
        .register_person(spoofed)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("another department's record was taken"))?;
    assert_eq!(bad_fields(&refused), ["source_department"]);
    let mut own = registration("dept-2", 82);
    own.source_department = String::new();
    civil.register_person(own).await?;
    let unnamed = RegistryServiceClient::new(channel_as(addr, &integrator(None)).await?)
        .register_person(registration("dept-3", 83))
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(unnamed, Some(Code::PermissionDenied));
    Ok(())
}

/// A search that returns several persons is audited once for each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_is_audited_for_every_person_it_returns() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let addr = registry.running.grpc_addr;
    let mut service = RegistryServiceClient::new(channel(addr).await?);
    let mut ids = Vec::new();
    for request_id in ["searched-1", "searched-2"] {
        // The same name in the same district: two persons one search finds.
        let person = registration(request_id, 5);
        ids.push(
            service
                .register_person(person)
                .await?
                .into_inner()
                .person_id,
        );
    }
    ids.sort();
    let search = SearchPersonsRequest {
        purpose: PURPOSE.to_owned(),
        query: Some(Query::NameAndRegion(NameAndRegion {
            full_name: "测试人5".to_owned(),
            region: Some(RegionCode {
                code: "110105".to_owned(),
            }),
        })),
        ..SearchPersonsRequest::default()
    };
    jiuzhu_tests::eventually("both persons in the search index", WAIT, || {
        let (mut service, search) = (service.clone(), search.clone());
        async move {
            let found = service.search_persons(search).await?.into_inner().persons;
            Ok((found.len() == 2).then_some(()))
        }
    })
    .await?;
    let reader = office(Role::CaseProsecutor, "110105");
    let found = RegistryServiceClient::new(channel_as(addr, &reader).await?)
        .search_persons(search)
        .await?
        .into_inner()
        .persons;
    assert_eq!(found.len(), 2);
    let records = audit_records(
        addr,
        ListAuditRecordsRequest {
            actor: reader.uri(),
            ..ListAuditRecordsRequest::default()
        },
    )
    .await?;
    let mut audited: Vec<String> = records
        .iter()
        .filter(|r| r.action.ends_with("/SearchPersons"))
        .map(|r| r.person_id.clone())
        .collect();
    audited.sort();
    assert_eq!(audited, ids, "one record per person found");
    Ok(())
}

/// A change of personal data commits with its audit record (one, not one more after), a refused
/// change is recorded as refused, and every data key handed out is recorded for its person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_key_handouts_are_audited_once_per_person() -> TestResult {
    use jiuzhu_proto::registry::person_key_service_client::PersonKeyServiceClient;
    use jiuzhu_proto::registry::{GetPersonKeysRequest, UpdatePersonRequest};
    let registry = start::<Registry>(&unique_namespace()).await?;
    let addr = registry.running.grpc_addr;
    let person_id = RegistryServiceClient::new(channel(addr).await?)
        .register_person(registration("changed-1", 6))
        .await?
        .into_inner()
        .person_id;
    let update = |office_code: &str, request_id: &str| {
        let request = UpdatePersonRequest {
            request_id: request_id.to_owned(),
            person_id: person_id.clone(),
            fields: vec!["address_text".to_owned()],
            address_text: "新场村7号".to_owned(),
            source_department: "rural_revitalization".to_owned(),
            ..UpdatePersonRequest::default()
        };
        let who = office(Role::ReliefProsecutor, office_code);
        async move {
            let answer = RegistryServiceClient::new(channel_as(addr, &who).await?)
                .update_person(request)
                .await;
            anyhow::Ok(answer.map(|_| ()).map_err(|status| status.code()))
        }
    };
    assert_eq!(update("110105", "changed-own").await?, Ok(()));
    assert_eq!(
        update("110108", "changed-other").await?,
        Err(Code::PermissionDenied)
    );
    let clues = Identity::new("jiuzhu", "000000", Role::Service, "clues");
    let handed = PersonKeyServiceClient::new(channel_as(addr, &clues).await?)
        .get_person_keys(GetPersonKeysRequest {
            person_ids: vec![person_id.clone()],
        })
        .await?
        .into_inner()
        .keys;
    assert_eq!(handed.len(), 1);
    let records = audit_records(
        addr,
        ListAuditRecordsRequest {
            person_id: person_id.clone(),
            ..ListAuditRecordsRequest::default()
        },
    )
    .await?;
    let mut seen: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let method = r.action.rsplit('/').next().unwrap_or_default().to_owned();
            (method, r.outcome.clone())
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("GetPersonKeys".to_owned(), "OK".to_owned()),
            ("UpdatePerson".to_owned(), "OK".to_owned()),
            ("UpdatePerson".to_owned(), "PERMISSION_DENIED".to_owned()),
        ]
    );
    registry.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_reads_are_audited_in_a_chain_that_shows_tampering() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let addr = registry.running.grpc_addr;
    let mut service = RegistryServiceClient::new(channel(addr).await?);
    let person_id = service
        .register_person(registration("audited-1", 1))
        .await?
        .into_inner()
        .person_id;
    let pool = sqlx::PgPool::connect(&registry.database.url).await?;
    let id = uuid::Uuid::parse_str(&person_id)?;
    jiuzhu_tests::eventually("the person in the registry's view", WAIT, || {
        let pool = pool.clone();
        async move {
            let found: i64 =
                sqlx::query_scalar("SELECT count(*) FROM persons WHERE person_id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await?;
            Ok((found == 1).then_some(()))
        }
    })
    .await?;
    // The registration's person lives in 110105; a prosecutor of that district reads.
    let reader = office(Role::CaseProsecutor, "110105");
    let mut prosecutor = RegistryServiceClient::new(channel_as(addr, &reader).await?);
    let unexplained = prosecutor
        .get_person(GetPersonRequest {
            person_id: person_id.clone(),
            purpose: String::new(),
            ..Default::default()
        })
        .await
        .err()
        .ok_or("a read without a purpose was served")?;
    assert_eq!(unexplained.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&unexplained), ["purpose"]);
    // The person acting through the system says who they are, signed by the system's key.
    let read = GetPersonRequest {
        person_id: person_id.clone(),
        purpose: "刑事案件被害人身份核实".to_owned(),
        ..Default::default()
    };
    let get_person = "/jiuzhu.registry.v1.RegistryService/GetPerson";
    let mut unsigned = tonic::Request::new(read.clone());
    unsigned
        .metadata_mut()
        .insert("jiuzhu-acting-person", "P-0042".parse()?);
    let refused = prosecutor
        .get_person(unsigned)
        .await
        .err()
        .ok_or("an unsigned acting person was taken")?;
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let mut forged = tonic::Request::new(read.clone());
    for (name, value) in jiuzhu_testkit::acting_headers(&reader, "P-0042", "/other/Method")? {
        forged.metadata_mut().insert(name, value.parse()?);
    }
    let refused = prosecutor.get_person(forged).await.err().map(|s| s.code());
    assert_eq!(refused, Some(Code::Unauthenticated));
    let mut signed = tonic::Request::new(read);
    for (name, value) in jiuzhu_testkit::acting_headers(&reader, "P-0042", get_person)? {
        signed.metadata_mut().insert(name, value.parse()?);
    }
    prosecutor.get_person(signed).await?;
    prosecutor
        .get_person_file(GetPersonFileRequest {
            person_id: person_id.clone(),
            purpose: "救助线索审查".to_owned(),
            ..GetPersonFileRequest::default()
        })
        .await?;

    // Only auditors read the log; by person and by actor.
    let refused = AuditServiceClient::new(channel_as(addr, &reader).await?)
        .list_audit_records(ListAuditRecordsRequest {
            person_id: person_id.clone(),
            ..ListAuditRecordsRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(refused, Some(Code::PermissionDenied));
    let mut auditor =
        AuditServiceClient::new(channel_as(addr, &office(Role::Auditor, "000000")).await?);
    let records = auditor
        .list_audit_records(ListAuditRecordsRequest {
            person_id: person_id.clone(),
            ..ListAuditRecordsRequest::default()
        })
        .await?
        .into_inner()
        .records;
    let seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r.action.as_str(), r.outcome.as_str(), r.purpose.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "/jiuzhu.registry.v1.RegistryService/GetPersonFile",
                "OK",
                "救助线索审查"
            ),
            (
                "/jiuzhu.registry.v1.RegistryService/GetPerson",
                "OK",
                "刑事案件被害人身份核实"
            ),
            (
                "/jiuzhu.registry.v1.RegistryService/GetPerson",
                "INVALID_ARGUMENT",
                ""
            ),
        ]
    );
    assert!(
        records.iter().all(|r| r.actor == reader.uri()
            && r.role == "case_prosecutor"
            && r.office == "110105")
    );
    let by_actor = auditor
        .list_audit_records(ListAuditRecordsRequest {
            actor: reader.uri(),
            ..ListAuditRecordsRequest::default()
        })
        .await?
        .into_inner()
        .records;
    assert_eq!(by_actor.len(), 3);

    let verified = auditor
        .verify_audit_chain(VerifyAuditChainRequest {})
        .await?
        .into_inner();
    assert!(verified.intact, "{verified:?}");
    // Three reads and the auditor's two listings, every one under the audit key.
    assert_eq!((verified.records, verified.keyed), (5, 5));

    // Append-only: the database itself refuses edits and deletions.
    for statement in [
        "UPDATE audit_log SET purpose = 'nothing to see' WHERE sequence = 2",
        "DELETE FROM audit_log WHERE sequence = 2",
        "TRUNCATE audit_log",
    ] {
        let error = sqlx::query(statement).execute(&pool).await.err();
        assert!(
            error
                .as_ref()
                .is_some_and(|e| e.to_string().contains("append-only")),
            "{statement}: {error:?}"
        );
    }
    // Someone who can switch the triggers off still cannot hide an edit.
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        .execute(&pool)
        .await?;
    sqlx::query("UPDATE audit_log SET purpose = 'routine check' WHERE sequence = 2")
        .execute(&pool)
        .await?;
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
        .execute(&pool)
        .await?;
    let verified = auditor
        .verify_audit_chain(VerifyAuditChainRequest {})
        .await?
        .into_inner();
    assert!(!verified.intact);
    assert_eq!(verified.first_broken_sequence, 2);
    assert!(verified.reason.contains("content"), "{verified:?}");
    pool.close().await;
    registry.running.stop().await;
    Ok(())
}

/// A certificate on the authority's revocation list is refused from the moment the list names
/// it, on connections already open too, without a restart; a list the authority did not sign
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_without_a_restart() -> TestResult {
    let crl = std::env::temp_dir().join(format!("jiuzhu-crl-{}.pem", uuid::Uuid::now_v7()));
    let path = crl.clone();
    let registry = start_with::<Registry>(&unique_namespace(), move |settings| {
        settings.tls.crl = Some(path);
    })
    .await?;
    let addr = registry.running.grpc_addr;
    let (lost, kept) = (
        office(Role::Auditor, "000000"),
        office(Role::CaseProsecutor, "110105"),
    );
    let lost_channel = channel_as(addr, &lost).await?;
    let kept_channel = channel_as(addr, &kept).await?;
    let health = "/grpc.health.v1.Health/Check";
    assert_eq!(call(lost_channel.clone(), health).await?.code(), Code::Ok);

    // A list from another authority naming it: not taken.
    let stranger = jiuzhu_access::dev::DevAuthority::new()?;
    let lost_pem = jiuzhu_testkit::certificate_of(&lost)?.cert_pem;
    std::fs::write(&crl, stranger.revocation_list(&[&lost_pem])?)?;
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(call(lost_channel.clone(), health).await?.code(), Code::Ok);

    // The authority's list: refused on the open connection, the other caller still served.
    std::fs::write(&crl, jiuzhu_testkit::revocation_list(&[&lost])?)?;
    let refused = jiuzhu_tests::eventually("the revocation in force", WAIT, || {
        let channel = lost_channel.clone();
        async move {
            let status = call(channel, health)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((status.code() == Code::Unauthenticated).then_some(status))
        }
    })
    .await?;
    assert!(refused.message().contains("revoked"), "{refused:?}");
    assert_eq!(call(kept_channel, health).await?.code(), Code::Ok);
    let reconnected = call(channel_as(addr, &lost).await?, health).await?;
    assert_eq!(reconnected.code(), Code::Unauthenticated);
    registry.running.stop().await;
    std::fs::remove_file(&crl)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_is_held_to_its_rate_and_to_the_message_size() -> TestResult {
    let registry = start_with::<Registry>(&unique_namespace(), |settings| {
        settings.limits.calls_per_second = 2;
        settings.limits.burst = 5;
        settings.limits.max_message_bytes = 2_048;
    })
    .await?;
    let addr = registry.running.grpc_addr;
    let hasty = channel_as(addr, &office(Role::DepartmentIntegrator, "520000")).await?;
    let mut exhausted = 0;
    for _ in 0..20 {
        let status = call(hasty.clone(), "/grpc.health.v1.Health/Check").await?;
        if status.code() == Code::ResourceExhausted {
            assert!(status.message().contains("slow down"), "{status:?}");
            exhausted += 1;
        }
    }
    assert!(exhausted >= 10, "{exhausted} of 20 calls refused");
    // Another caller is not held back by the first one's haste.
    let other = channel_as(addr, &office(Role::Auditor, "000000")).await?;
    let status = call(other, "/grpc.health.v1.Health/Check").await?;
    assert_eq!(status.code(), Code::Ok, "{status:?}");

    let mut big = registration("too-big", 1);
    big.address_text = "贵州省".repeat(400);
    let mut client = RegistryServiceClient::new(channel(addr).await?);
    let status = client
        .register_person(big)
        .await
        .err()
        .ok_or("a message over the limit was accepted")?;
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    registry.running.stop().await;
    Ok(())
}

/// The staff console is judged as the member it signs for: their role, office and tier, within
/// the console's own office; unsigned, re-signed or from anyone but a console, the claim is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_judged_as_the_member_it_signs_for() -> TestResult {
    let registry = start::<Registry>(&unique_namespace()).await?;
    let addr = registry.running.grpc_addr;
    let person_id = RegistryServiceClient::new(channel(addr).await?)
        .register_person(registration("console-1", 1))
        .await?
        .into_inner()
        .person_id;
    let get_person = "/jiuzhu.registry.v1.RegistryService/GetPerson";
    let read = GetPersonRequest {
        person_id: person_id.clone(),
        purpose: "救助案件审查".to_owned(),
        ..Default::default()
    };
    let console = Identity::new("procuratorate", "110000", Role::Console, "console");
    let mut through_console = RegistryServiceClient::new(channel_as(addr, &console).await?);
    let as_member = |acting_as: &str,
                     signed_as: &str|
     -> Result<tonic::Request<GetPersonRequest>, Box<dyn std::error::Error>> {
        let mut request = tonic::Request::new(read.clone());
        let headers = jiuzhu_testkit::console_headers(&console, "P-7", signed_as, get_person)?;
        for (name, value) in headers {
            let value = if name == jiuzhu_access::acting::ACTING_AS_HEADER {
                acting_as.to_owned()
            } else {
                value
            };
            request.metadata_mut().insert(name, value.parse()?);
        }
        Ok(request)
    };
    let own = jiuzhu_access::acting::acting_as("110105", Role::ReliefProsecutor, None);
    // The registration's person lives in 110105: that district's relief prosecutor reads.
    let person = jiuzhu_tests::eventually("the person through the console", WAIT, || {
        let (mut client, request) = (through_console.clone(), as_member(&own, &own));
        async move {
            let request = request.map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(client.get_person(request).await.ok())
        }
    })
    .await?;
    assert!(person.into_inner().person.is_some());
    for (acting_as, signed_as, code, says) in [
        (
            jiuzhu_access::acting::acting_as("110108", Role::ReliefProsecutor, None),
            None,
            Code::PermissionDenied,
            "outside the jurisdiction",
        ),
        (
            jiuzhu_access::acting::acting_as("110105", Role::FinanceOfficer, None),
            None,
            Code::PermissionDenied,
            "role finance_officer may not call",
        ),
        (
            jiuzhu_access::acting::acting_as("120101", Role::ReliefProsecutor, None),
            None,
            Code::PermissionDenied,
            "outside the console's office",
        ),
        (
            jiuzhu_access::acting::acting_as("110105", Role::Service, None),
            None,
            Code::PermissionDenied,
            "only for staff",
        ),
        // Signed for a finance officer, sent as a relief prosecutor.
        (
            own.clone(),
            Some(jiuzhu_access::acting::acting_as(
                "110105",
                Role::FinanceOfficer,
                None,
            )),
            Code::Unauthenticated,
            "does not verify",
        ),
    ] {
        let request = as_member(&acting_as, signed_as.as_deref().unwrap_or(&acting_as))?;
        let refused = through_console
            .get_person(request)
            .await
            .err()
            .ok_or_else(|| format!("{acting_as} was served"))?;
        assert_eq!(refused.code(), code, "{acting_as}: {refused:?}");
        assert!(
            refused.message().contains(says),
            "{acting_as}: {}",
            refused.message()
        );
    }
    // Unsigned, the console is nobody.
    let refused = through_console
        .get_person(read.clone())
        .await
        .err()
        .ok_or("served")?;
    assert!(
        refused.message().contains("role console may not call"),
        "{refused:?}"
    );
    // Only a console states whom a person acts as.
    let prosecutor = office(Role::CaseProsecutor, "110105");
    let mut request = tonic::Request::new(read.clone());
    for (name, value) in jiuzhu_testkit::console_headers(&prosecutor, "P-7", &own, get_person)? {
        request.metadata_mut().insert(name, value.parse()?);
    }
    let refused = RegistryServiceClient::new(channel_as(addr, &prosecutor).await?)
        .get_person(request)
        .await
        .err()
        .ok_or("a system that is no console spoke as a member")?;
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("only the staff console"),
        "{}",
        refused.message()
    );
    // The audit names the member, their role and office, through the console.
    let records = audit_records(
        addr,
        ListAuditRecordsRequest {
            person_id: person_id.clone(),
            ..ListAuditRecordsRequest::default()
        },
    )
    .await?;
    let served = records
        .iter()
        .find(|r| r.outcome == "OK")
        .ok_or("no audited read")?;
    assert_eq!(
        (served.role.as_str(), served.office.as_str()),
        ("relief_prosecutor", "110105")
    );
    assert!(served.actor.contains("console"), "{}", served.actor);
    assert_eq!(served.acting_person, "P-7");
    registry.running.stop().await;
    Ok(())
}
