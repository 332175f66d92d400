//! The office matrix: every RPC of the access table × every role its rule admits × the office
//! holding the resource and another office. One person, household, clue, case, disbursement
//! and follow-up plan of Chaoyang district (110105) are made first; then each cell calls the
//! RPC on them as that role of Chaoyang (own) and of Haidian (110108, other). An office-held
//! RPC must refuse the other office (`PERMISSION_DENIED`, naming the jurisdiction) and not the
//! own; a list or search must leave the resource out for the other office and show it to the
//! own; nationwide roles are held to neither. Every method of the table must have an entry
//! here, so a new RPC cannot be left out of the matrix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use jiuzhu_access::{AccessTable, Identity, Role};
use jiuzhu_clues::Clues;
use jiuzhu_decisions::Decisions;
use jiuzhu_followup::Followup;
use jiuzhu_payments::Payments;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::{CaseOpened, DecisionApproved, ReliefMethod};
use jiuzhu_proto::dynamic::DynamicCodec;
use jiuzhu_proto::payments::DisbursementSucceeded;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{channel_as, kafka_brokers, unique_namespace};
use jiuzhu_tests::{PURPOSE, eventually, publish, resident_id_for, start};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(60);
const OWN: &str = "110105";
const OTHER: &str = "110108";
const PROCURATORATE: &str = "北京市朝阳区人民检察院";
/// A budget of Chaoyang's, funded by the fixture (the one the cases draw on stays empty).
const BUDGET: &str = "北京市朝阳区人民检察院（矩阵）";

/// The resources every cell is about, all of Chaoyang (110105).
#[derive(Debug, Clone, Default)]
struct Fixture {
    person: String,
    /// Two more persons, to merge (so the first is never absorbed).
    survivor: String,
    absorbed: String,
    household: String,
    full_name: String,
    birth_date: String,
    clue: String,
    case: String,
    /// The case the payment and follow-up events are about (decided, paid).
    paid_case: String,
    disbursement: String,
    plan: String,
    /// A bank statement imported by Chaoyang's finance officer.
    statement: String,
    /// Persons of Fengtai (110106): one named by a Chaoyang case, one by nothing.
    linked: String,
    unlinked: String,
}

/// What the office of the caller must change about an RPC's answer.
enum Cell {
    /// The RPC acts on one resource: the other office is refused, the own is not.
    Held(fn(&Fixture, &str) -> Value),
    /// A list or search: the answer shows `needle` to the own office, not to the other.
    Listed(fn(&Fixture) -> Value, fn(&Fixture) -> String),
    /// A batch: the other office's records are rejected one by one, naming the jurisdiction.
    RecordsRefused(fn(&Fixture, &str) -> Value),
    /// Held to the office, and checked by the named test (it needs a clock or a state the
    /// shared fixture cannot give).
    CheckedBy(&'static str),
    /// Not held to an office, and why.
    Unheld(&'static str),
}

/// Later phases change the fixture for good: run reads first, erasures last (a person is
/// merged, then unmerged, then erased).
fn phase(method: &str) -> u8 {
    match method {
        "GetPersonTrend" => 2,
        "ClosePlan" | "CloseClue" | "RejectClue" | "CancelDisbursement" | "MergePersons" => 3,
        "UnmergePerson" => 4,
        "ErasePerson" => 5,
        _ if method.starts_with("Get")
            || method.starts_with("List")
            || method == "SearchPersons" =>
        {
            0
        }
        _ => 1,
    }
}

fn cell(path: &str) -> Option<Cell> {
    use Cell::*;
    let method = path.rsplit('/').next().unwrap_or("");
    Some(match method {
        // ---- everywhere ----
        "Check" | "Watch" | "ServerReflectionInfo" => Unheld("health and reflection"),
        "ListAuditRecords" | "VerifyAuditChain" => Unheld("auditors only, nationwide"),
        // ---- registry ----
        "RegisterPerson" => Held(|_, rid| {
            let id = resident_id_for(rid);
            json!({"requestId": rid, "fullName": "矩阵人", "gender": gender(&id),
                "birthDate": id.birth_date().format("%Y-%m-%d").to_string(),
                "residentId": id.as_str(), "region": {"code": OWN},
                "sourceDepartment": "rural_revitalization"})
        }),
        "UpdatePerson" => Held(|f, rid| {
            json!({"requestId": rid, "personId": f.person, "fields": ["address_text"],
                "addressText": "朝阳区新场村6号", "sourceDepartment": "rural_revitalization"})
        }),
        "RecordStatus" => Held(|f, rid| {
            json!({"requestId": rid, "personId": f.person, "kind": "STATUS_KIND_REGISTERED_POOR",
                "sourceDepartment": "rural_revitalization", "reference": "建档立卡-1",
                "effectiveFrom": "2026-01-01"})
        }),
        "EndStatus" => Held(|f, rid| {
            json!({"requestId": rid, "personId": f.person,
                "statusId": uuid::Uuid::now_v7().to_string(), "effectiveTo": "2026-06-30",
                "reason": "收入稳定"})
        }),
        "AddHouseholdMember" => Held(|f, rid| {
            json!({"requestId": rid, "householdId": f.household, "personId": f.survivor,
                "relationship": "RELATIONSHIP_CHILD"})
        }),
        "RemoveHouseholdMember" => Held(|f, rid| {
            json!({"requestId": rid, "householdId": f.household, "personId": f.survivor,
                "reason": "分户"})
        }),
        "RecordHouseholdIncome" => Held(|f, rid| {
            json!({"requestId": rid, "householdId": f.household, "year": 2025,
                "incomePerHead": {"fen": 500000}, "sourceDepartment": "rural_revitalization"})
        }),
        "BulkUpsertPersons" => RecordsRefused(|_, rid| {
            let id = resident_id_for(rid);
            json!({"sourceDepartment": "rural_revitalization", "records": [{"line": 1,
                "sourceRecordId": rid, "fullName": "矩阵人", "gender": gender(&id),
                "birthDate": id.birth_date().format("%Y-%m-%d").to_string(),
                "residentId": id.as_str(), "region": {"code": OWN}}]})
        }),
        "MergePersons" => Held(|f, rid| {
            json!({"requestId": rid, "survivorId": f.survivor, "absorbedId": f.absorbed,
                "reason": "同一人", "decidedBy": "typed"})
        }),
        "UnmergePerson" => Held(|f, rid| {
            json!({"requestId": rid, "absorbedId": f.absorbed, "reason": "误合并",
                "decidedBy": "typed"})
        }),
        "ErasePerson" => Held(|f, rid| {
            json!({"requestId": rid, "personId": f.absorbed, "legalBasis": "PIPL art. 47",
                "reason": "本人申请", "decidedBy": "typed"})
        }),
        "GetPerson" => Held(|f, _| json!({"personId": f.person, "purpose": PURPOSE})),
        "GetHousehold" => Held(|f, _| json!({"householdId": f.household, "purpose": PURPOSE})),
        "GetPersonFile" => Held(|f, _| json!({"personId": f.person, "purpose": PURPOSE})),
        "SearchPersons" => Listed(
            |f| {
                json!({"purpose": PURPOSE, "nameAndBirthDate":
                    {"fullName": f.full_name, "birthDate": f.birth_date}})
            },
            |f| f.person.clone(),
        ),
        "ListSharing" => Unheld("auditors only, nationwide"),
        "GetPersonKeys" => Unheld("the systems that open sealed identities only"),
        "GetDepartmentKey" => Unheld("a department's own key, to its integrator: no office"),
        // ---- clues ----
        "ReportParty" | "ReportParties" => {
            Unheld("a case's party may live anywhere: the reporting office is the criminal case's")
        }
        "ConfirmClue" => Held(
            |f, rid| json!({"requestId": rid, "clueId": f.clue, "reviewer": "typed", "reason": "核实"}),
        ),
        "RejectClue" => Held(
            |f, rid| json!({"requestId": rid, "clueId": f.clue, "reviewer": "typed", "reason": "不符"}),
        ),
        "ReferClue" => {
            Held(|f, rid| json!({"requestId": rid, "clueId": f.clue, "referredBy": "typed"}))
        }
        "CloseClue" => Held(|f, rid| {
            json!({"requestId": rid, "clueId": f.clue, "outcome": "CLUE_OUTCOME_DECLINED",
                "reason": "已获救助", "closedBy": "typed"})
        }),
        "GetClue" => Held(|f, _| json!({"clueId": f.clue, "purpose": PURPOSE})),
        "ListClues" => Listed(|_| json!({}), |f| f.clue.clone()),
        "GetLinkageIndexStatus" => Unheld("the size of the linkage index, no resource"),
        // ---- decisions ----
        "OpenCase" => Held(|f, rid| {
            json!({"requestId": rid, "origin": "CASE_ORIGIN_APPLICATION", "personId": f.person,
                "caseNo": format!("(2026)京0105刑初{}号", &rid[rid.len() - 4..]),
                "procuratorate": PROCURATORATE, "regionCode": OWN,
                "category": "serious_injury_unpaid", "applicantRelation": "self",
                "openedBy": "online"})
        }),
        "RecordOtherAgencyRelief" => Held(|f, rid| {
            json!({"requestId": rid, "personId": f.person, "caseNo": "(2026)京0105刑初77号",
                "agency": "北京市朝阳区人民法院", "reference": "司法救助-77", "regionCode": OWN})
        }),
        "RegisterMaterial" => Held(|f, rid| {
            json!({"requestId": rid, "caseId": f.case, "material": "proof_of_hardship",
                "fileId": "f-1", "sha256": "ab".repeat(32), "centre": "朝阳区检察院服务中心",
                "receivedBy": "typed"})
        }),
        "AssessEligibility" => Held(|f, rid| {
            json!({"requestId": rid, "caseId": f.case,
                "facts": ["serious_injury", "offender_cannot_pay"], "assessedBy": "typed"})
        }),
        "AcceptCase" => {
            Held(|f, rid| json!({"requestId": rid, "caseId": f.case, "acceptedBy": "typed"}))
        }
        "RecordReview" => Held(|f, rid| {
            json!({"requestId": rid, "caseId": f.case, "kind": "REVIEW_KIND_INTERVIEW",
                "recordFileId": "r-1", "sha256": "cd".repeat(32), "reviewedBy": "typed"})
        }),
        "ProposeDecision" => Held(|f, rid| {
            json!({"requestId": rid, "caseId": f.case, "amount": {"fen": 1_000_000},
                "methods": ["RELIEF_METHOD_ONE_TIME_PAYMENT"], "proposedBy": "typed"})
        }),
        "NotifyApplicant" => Held(|f, rid| {
            json!({"requestId": rid, "caseId": f.case, "channel": "phone",
                "notifiedOn": "2026-06-02", "notifiedBy": "typed"})
        }),
        "ApproveDecision" => Held(|f, rid| json!({"requestId": rid, "caseId": f.case})),
        "RejectDecision" => Held(
            |f, rid| json!({"requestId": rid, "caseId": f.case, "reason": "材料不全", "rejectedBy": "typed"}),
        ),
        "FileObjection" => {
            Held(|f, rid| json!({"requestId": rid, "caseId": f.case, "grounds": "新的医疗票据"}))
        }
        "ReviewObjection" => Held(
            |f, rid| json!({"requestId": rid, "caseId": f.case, "outcome": "OBJECTION_OUTCOME_UPHELD", "reason": "维持"}),
        ),
        "GetCase" => Held(|f, _| json!({"caseId": f.case, "purpose": PURPOSE})),
        "RecommendRelief" => Held(|f, rid| {
            json!({"requestId": rid, "caseId": f.case, "features": {"seriousInjury": true,
                "householdSize": 3, "minimumLine": {"fen": 80000}}})
        }),
        "ListDeadlines" => CheckedBy(
            "security::an_office_sees_its_own_jurisdiction_unless_its_role_is_nationwide \
             (a case is on the list only once due or overdue)",
        ),
        // Counted only within the jurisdiction: the other office counts none of the cases.
        "GetStageStatistics" => Listed(|_| json!({}), |_| "openCases".to_owned()),
        "ExportDecidedCases" => Unheld("Jiuzhu's own systems only (training data)"),
        // ---- payments ----
        "AllocateBudget" => Held(|_, rid| {
            json!({"requestId": rid, "procuratorate": BUDGET, "amount": {"fen": 100},
                "documentReference": "京财行〔2026〕9号"})
        }),
        "GetBalances" => Held(|_, _| json!({"procuratorate": BUDGET})),
        "ImportStatement" => CheckedBy(
            "disbursements::a_payment_whose_answer_never_came_is_settled_from_the_statement_not_paid_again \
             (another office's lines are reported outside its jurisdiction, not applied)",
        ),
        "GetReconciliationReport" => Held(|f, _| json!({"statementId": f.statement})),
        "RegisterPayee" => Held(|f, rid| {
            json!({"requestId": rid, "personId": f.person, "name": f.full_name,
                "accountKind": "ACCOUNT_KIND_BANK_CARD",
                "account": jiuzhu_tests::payments::card(jiuzhu_tests::payments::ORDINARY, 7),
                "institution": "中国农业银行北京分行", "registeredBy": "typed"})
        }),
        "GetDisbursement" => {
            Held(|f, _| json!({"disbursementId": f.disbursement, "purpose": PURPOSE}))
        }
        "ListDisbursements" => Listed(
            |f| json!({"caseId": f.paid_case}),
            |f| f.disbursement.clone(),
        ),
        "CancelDisbursement" => Held(|f, rid| {
            json!({"requestId": rid, "disbursementId": f.disbursement, "reason": "重复",
                "cancelledBy": "typed"})
        }),
        "RetryDisbursement" => Held(|f, rid| {
            json!({"requestId": rid, "disbursementId": f.disbursement, "requestedBy": "typed",
                "reason": "账户已更正"})
        }),
        "Notify" => Unheld("the provider only, nationwide"),
        // ---- follow-up ----
        "GetPlan" => Held(|f, _| json!({"planId": f.plan, "purpose": PURPOSE})),
        "ListVisits" => Listed(
            |_| json!({"office": PROCURATORATE, "dueBefore": "2027-12-31", "purpose": PURPOSE}),
            |f| f.plan.clone(),
        ),
        "GetPersonTrend" => Held(|f, _| json!({"personId": f.person, "purpose": PURPOSE})),
        "RecordVisit" => Held(|f, rid| {
            json!({"requestId": rid, "planId": f.plan, "number": 1, "visitedOn": "2026-07-01",
                "visitedBy": "typed", "channel": "CHANNEL_PHONE", "evaluation": {
                    "incomePerHead": {"fen": 600000}, "employment": "EMPLOYMENT_EMPLOYED",
                    "medicalBurden": "LEVEL_LOW", "housingSafe": true,
                    "scales": {"phq9": [0, 0, 0, 0, 0, 0, 0, 0, 0]}}})
        }),
        "ClosePlan" => Held(|f, rid| {
            json!({"requestId": rid, "planId": f.plan, "reason": "CLOSURE_REASON_DIED",
                "note": "病故", "closedBy": "typed"})
        }),
        "GetEffectStatistics" => Unheld("counts without persons, for every department"),
        _ => return None,
    })
}

fn gender(id: &jiuzhu_identity::ResidentId) -> &'static str {
    match jiuzhu_tests::gender_of(id) {
        jiuzhu_proto::registry::Gender::Female => "GENDER_FEMALE",
        _ => "GENDER_MALE",
    }
}

/// The identity a role's system has in `office` (an approver of the highest tier, so that only
/// the office can stand in its way).
fn caller(role: Role, office: &str) -> Identity {
    let identity = Identity::new("procuratorate", office, role, &format!("{role}-matrix"));
    match role {
        Role::Approver => identity.scoped("procuratorial_committee"),
        _ => identity,
    }
}

struct Services {
    registry: jiuzhu_tests::Started,
    clues: jiuzhu_tests::Started,
    decisions: jiuzhu_tests::Started,
    payments: jiuzhu_tests::Started,
    followup: jiuzhu_tests::Started,
}

impl Services {
    async fn start(ns: &str) -> anyhow::Result<Self> {
        Ok(Self {
            registry: start::<Registry>(ns).await?,
            clues: start::<Clues>(ns).await?,
            decisions: start::<Decisions>(ns).await?,
            payments: start::<Payments>(ns).await?,
            followup: start::<Followup>(ns).await?,
        })
    }

    fn addr(&self, path: &str) -> SocketAddr {
        let package = path.trim_start_matches('/').split('.').nth(1).unwrap_or("");
        let started = match package {
            "clues" => &self.clues,
            "decisions" => &self.decisions,
            "payments" | "gateway" => &self.payments,
            "followup" => &self.followup,
            _ => &self.registry,
        };
        started.running.grpc_addr
    }
}

async fn as_service(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(jiuzhu_testkit::channel(addr).await?)
}

/// Calls `path` with `request` (protobuf JSON) and answers the status, or the answer as JSON.
async fn call(
    pool: &DescriptorPool,
    channel: Channel,
    path: &str,
    request: &Value,
) -> anyhow::Result<Result<Value, tonic::Status>> {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("{path} is not /service/method"))?;
    let method = pool
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == method))
        .ok_or_else(|| anyhow::anyhow!("no method {path} in the contracts"))?;
    let message = DynamicMessage::deserialize(method.input(), request.clone()).map_err(|e| {
        anyhow::anyhow!(
            "{path}: the request is not a {}: {e}",
            method.input().full_name()
        )
    })?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = http::uri::PathAndQuery::from_str(path)?;
    let codec = DynamicCodec(method.output());
    if !(method.is_client_streaming() || method.is_server_streaming()) {
        return Ok(
            match grpc.unary(tonic::Request::new(message), path, codec).await {
                Ok(answer) => Ok(serde_json::to_value(answer.get_ref())?),
                Err(status) => Err(status),
            },
        );
    }
    // A stream of one message; its first answer.
    let outbound = tonic::Request::new(futures::stream::iter([message]));
    let first = match grpc.streaming(outbound, path, codec).await {
        Ok(answers) => answers.into_inner().message().await,
        Err(status) => Err(status),
    };
    Ok(match first {
        Ok(Some(answer)) => Ok(serde_json::to_value(&answer)?),
        Ok(None) => Ok(Value::Null),
        Err(status) => Err(status),
    })
}

async fn fixture(ns: &str, services: &Services) -> anyhow::Result<Fixture> {
    use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
    use jiuzhu_proto::clues::{Harm, PartyRole, ReportPartyRequest};
    use jiuzhu_proto::common::RegionCode;
    use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
    use jiuzhu_proto::decisions::{CaseOrigin, OpenCaseRequest};
    use jiuzhu_proto::followup::followup_service_client::FollowupServiceClient;
    use jiuzhu_proto::followup::{GetPlanRequest, ListVisitsRequest};
    use jiuzhu_proto::payments::ListDisbursementsRequest;
    use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
    use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
    use jiuzhu_proto::registry::{AddHouseholdMemberRequest, Relationship};

    let mut registry =
        RegistryServiceClient::new(as_service(services.registry.running.grpc_addr).await?);
    let villager = jiuzhu_tests::villager("matrix-person", "王秀英", "rural_revitalization");
    let (full_name, birth_date) = (villager.full_name.clone(), villager.birth_date.clone());
    let person = registry
        .register_person(villager)
        .await?
        .into_inner()
        .person_id;
    let mut others = Vec::new();
    for n in 1..=2 {
        let request = jiuzhu_tests::registration(&format!("matrix-other-{n}"), n);
        others.push(
            registry
                .register_person(request)
                .await?
                .into_inner()
                .person_id,
        );
    }
    let household = registry
        .add_household_member(AddHouseholdMemberRequest {
            request_id: "matrix-household".to_owned(),
            person_id: person.clone(),
            relationship: Relationship::Head as i32,
            ..AddHouseholdMemberRequest::default()
        })
        .await?
        .into_inner()
        .household_id;

    // The victim 王秀英 is found in the registry: a clue of Chaoyang.
    let clues = CluesServiceClient::new(as_service(services.clues.running.grpc_addr).await?);
    let resident = resident_id_for("matrix-person");
    let report = ReportPartyRequest {
        request_id: "matrix-party".to_owned(),
        case_no: "(2026)京0105刑初88号".to_owned(),
        party_ref: "P1".to_owned(),
        procuratorate: PROCURATORATE.to_owned(),
        charge: "故意伤害罪".to_owned(),
        incident_date: "2026-03-01".to_owned(),
        role: PartyRole::Victim as i32,
        harm: Some(Harm {
            disability_grade: 6,
            ..Harm::default()
        }),
        full_name: full_name.clone(),
        id_number: resident.as_str().to_owned(),
        region: Some(RegionCode {
            code: OWN.to_owned(),
        }),
        ..ReportPartyRequest::default()
    };
    // Reported once every registry event is in the linkage index and past reverse correlation:
    // intake alone matches the victim.
    let (registry_pool, clues_pool) = (
        services.registry.running.store.pool().clone(),
        services.clues.running.store.pool().clone(),
    );
    eventually("the persons in the linkage index", WAIT, || async {
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&registry_pool)
            .await?;
        let indexed = jiuzhu_tests::linkage_status(&services.clues.running)
            .await?
            .0;
        let reversed =
            jiuzhu_tests::checkpoint_total(&clues_pool, "clues.reverse_correlation").await?;
        Ok((indexed >= 3 && reversed >= events).then_some(()))
    })
    .await?;
    let clue = clues
        .clone()
        .report_party(report)
        .await?
        .into_inner()
        .clue
        .map(|clue| clue.clue_id)
        .ok_or_else(|| anyhow::anyhow!("no clue for the registered victim"))?;

    let decisions =
        DecisionsServiceClient::new(as_service(services.decisions.running.grpc_addr).await?);
    // An application to Chaoyang's office, case number `n`, for `person`.
    let open_case = |request_id: &str, n: u32, person: &str| {
        let request = OpenCaseRequest {
            request_id: request_id.to_owned(),
            origin: CaseOrigin::Application as i32,
            person_id: person.to_owned(),
            case_no: format!("(2026)京0105刑初{n}号"),
            procuratorate: PROCURATORATE.to_owned(),
            region_code: OWN.to_owned(),
            category: "serious_injury_unpaid".to_owned(),
            applicant_relation: "self".to_owned(),
            opened_by: "online".to_owned(),
            ..OpenCaseRequest::default()
        };
        let mut decisions = decisions.clone();
        async move {
            anyhow::Ok(
                jiuzhu_tests::open_case_once_known(&mut decisions, request)
                    .await?
                    .case_id,
            )
        }
    };
    let case = open_case("matrix-case", 89, &person).await?;

    // Two persons of Fengtai (110106); a Chaoyang case names the first.
    let mut fengtai = Vec::new();
    for n in 1..=2 {
        let mut request = jiuzhu_tests::registration(&format!("matrix-fengtai-{n}"), 10 + n);
        request.region = Some(jiuzhu_proto::common::RegionCode {
            code: "110106".to_owned(),
        });
        fengtai.push(
            registry
                .register_person(request)
                .await?
                .into_inner()
                .person_id,
        );
    }
    open_case("matrix-linked-case", 90, &fengtai[0]).await?;

    // A decided case of Chaoyang as its events tell payments and follow-up, and its payment.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let paid_case = uuid::Uuid::now_v7().to_string();
    publish(
        &producer,
        ns,
        "decisions",
        &person,
        &CaseOpened {
            case_id: paid_case.clone(),
            person_id: person.clone(),
            procuratorate: PROCURATORATE.to_owned(),
            region_code: OWN.to_owned(),
            category: "serious_injury_unpaid".to_owned(),
            ..CaseOpened::default()
        },
    )
    .await?;
    publish(
        &producer,
        ns,
        "decisions",
        &person,
        &DecisionApproved {
            case_id: paid_case.clone(),
            person_id: person.clone(),
            amount: Some(Money { fen: 800_000 }),
            methods: vec![ReliefMethod::OneTimePayment as i32],
            procuratorate: PROCURATORATE.to_owned(),
            approved_on: "2026-06-01".to_owned(),
            region_code: OWN.to_owned(),
            ..DecisionApproved::default()
        },
    )
    .await?;
    let payments =
        PaymentsServiceClient::new(as_service(services.payments.running.grpc_addr).await?);
    let disbursement = eventually("the disbursement ordered", WAIT, || {
        let (mut payments, case_id) = (payments.clone(), paid_case.clone());
        async move {
            let listed = payments
                .list_disbursements(ListDisbursementsRequest { case_id })
                .await?
                .into_inner()
                .disbursements;
            Ok(listed.into_iter().next().map(|d| d.disbursement_id))
        }
    })
    .await?;
    publish(
        &producer,
        ns,
        "payments",
        &person,
        &DisbursementSucceeded {
            disbursement_id: disbursement.clone(),
            person_id: person.clone(),
            case_id: paid_case.clone(),
            amount: Some(Money { fen: 800_000 }),
            ..DisbursementSucceeded::default()
        },
    )
    .await?;
    let followup =
        FollowupServiceClient::new(as_service(services.followup.running.grpc_addr).await?);
    let plan = eventually("the follow-up plan", WAIT, || {
        let (mut followup, case_id) = (followup.clone(), paid_case.clone());
        async move {
            Ok(
                match followup
                    .get_plan(GetPlanRequest {
                        purpose: PURPOSE.to_owned(),
                        case_id,
                        ..GetPlanRequest::default()
                    })
                    .await
                {
                    Ok(answer) => answer.into_inner().plan.map(|plan| plan.plan_id),
                    Err(status) if status.code() == Code::NotFound => None,
                    Err(status) => return Err(status.into()),
                },
            )
        }
    })
    .await?;
    // The plan's visits on the board (a read model of its own).
    let listed = ListVisitsRequest {
        office: PROCURATORATE.to_owned(),
        due_before: "2027-12-31".to_owned(),
        purpose: PURPOSE.to_owned(),
        ..ListVisitsRequest::default()
    };
    eventually("the plan's visits on the board", WAIT, || {
        let (mut followup, listed, plan) = (followup.clone(), listed.clone(), plan.clone());
        async move {
            let visits = followup.list_visits(listed).await?.into_inner().visits;
            Ok(visits.iter().any(|v| v.plan_id == plan).then_some(()))
        }
    })
    .await?;
    // Chaoyang's budget and a statement of Chaoyang's, from its finance officer.
    let mut finance = PaymentsServiceClient::new(
        channel_as(
            services.payments.running.grpc_addr,
            &caller(Role::FinanceOfficer, OWN),
        )
        .await?,
    );
    finance
        .allocate_budget(jiuzhu_proto::payments::AllocateBudgetRequest {
            request_id: "matrix-budget".to_owned(),
            procuratorate: BUDGET.to_owned(),
            amount: Some(Money { fen: 1_000_000 }),
            document_reference: "京财行〔2026〕8号".to_owned(),
            ..Default::default()
        })
        .await?;
    let statement = finance
        .import_statement(jiuzhu_proto::payments::ImportStatementRequest {
            request_id: "matrix-statement".to_owned(),
            provider: "simulator".to_owned(),
            format: jiuzhu_proto::payments::StatementFormat::Csv as i32,
            content: "value_date,bank_reference,idempotency_key,amount,direction\n\
                      2026-11-29,SIM1,0190d5c2-8a6e-7000-8000-00000000beef:1,12.34,DEBIT\n"
                .to_owned(),
            control_count: 1,
            control_total: Some(Money { fen: 1234 }),
            covers_until: String::new(),
        })
        .await?
        .into_inner()
        .report
        .map(|report| report.statement_id)
        .ok_or_else(|| anyhow::anyhow!("no reconciliation report"))?;
    let [survivor, absorbed] = <[String; 2]>::try_from(others)
        .map_err(|_| anyhow::anyhow!("two more persons were registered"))?;
    let [linked, unlinked] = <[String; 2]>::try_from(fengtai)
        .map_err(|_| anyhow::anyhow!("two Fengtai persons were registered"))?;
    Ok(Fixture {
        person,
        survivor,
        absorbed,
        household,
        full_name,
        birth_date,
        clue,
        case,
        paid_case,
        disbursement,
        plan,
        statement,
        linked,
        unlinked,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_holds_each_office_to_its_jurisdiction() -> TestResult {
    let ns = unique_namespace();
    let services = Services::start(&ns).await?;
    let fixture = fixture(&ns, &services).await?;
    let table = AccessTable::shipped()?;
    let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;

    let mut paths: Vec<&str> = table.paths();
    paths.sort_by_key(|path| phase(path.rsplit('/').next().unwrap_or("")));
    let missing: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| cell(p).is_none())
        .collect();
    assert!(missing.is_empty(), "no office cell for {missing:?}");

    let mut channels: BTreeMap<(SocketAddr, String), Channel> = BTreeMap::new();
    let mut failures = Vec::new();
    let (mut cells, mut unheld) = (0, 0);
    for path in paths {
        let Some(rule) = table.rule(path) else {
            continue;
        };
        let held = match cell(path) {
            Some(Cell::Unheld(why) | Cell::CheckedBy(why)) => {
                assert!(!why.is_empty(), "{path}: say why it is not held here");
                unheld += 1;
                continue;
            }
            None => continue,
            Some(held) => held,
        };
        let addr = services.addr(path);
        for role in Role::ALL.into_iter().filter(|role| rule.allows(*role)) {
            let nationwide = table.is_nationwide(role);
            // The other office first: what the own office does next may change the resource.
            for office in [OTHER, OWN] {
                let identity = caller(role, office);
                let key = (addr, format!("{role}@{office}"));
                let channel = match channels.get(&key) {
                    Some(channel) => channel.clone(),
                    None => {
                        let channel = channel_as(addr, &identity).await?;
                        channels.insert(key, channel.clone());
                        channel
                    }
                };
                let may = nationwide || office == OWN;
                let rid = format!("matrix-{}", uuid::Uuid::now_v7().simple());
                let where_ = format!("{path} as {role} of {office}");
                cells += 1;
                match &held {
                    Cell::Held(request) => {
                        let answer = call(&pool, channel, path, &request(&fixture, &rid)).await?;
                        let refused = matches!(&answer, Err(status)
                            if status.code() == Code::PermissionDenied
                                && status.message().contains("jurisdiction"));
                        if may && refused {
                            failures.push(format!("{where_}: refused {answer:?}"));
                        }
                        if !may && !refused {
                            failures.push(format!("{where_}: not refused, {answer:?}"));
                        }
                    }
                    Cell::Listed(request, needle) => {
                        let answer = call(&pool, channel, path, &request(&fixture)).await?;
                        let shown = match &answer {
                            Ok(json) => json.to_string().contains(&needle(&fixture)),
                            Err(status) if status.code() == Code::PermissionDenied => false,
                            Err(status) => {
                                failures.push(format!("{where_}: {status:?}"));
                                continue;
                            }
                        };
                        if shown != may {
                            failures.push(format!("{where_}: shown {shown}, {answer:?}"));
                        }
                    }
                    Cell::RecordsRefused(request) => {
                        let answer = call(&pool, channel, path, &request(&fixture, &rid)).await?;
                        let refused = answer
                            .as_ref()
                            .is_ok_and(|json| json.to_string().contains("jurisdiction"));
                        if refused == may {
                            failures.push(format!("{where_}: refused {refused}, {answer:?}"));
                        }
                    }
                    Cell::Unheld(_) | Cell::CheckedBy(_) => {}
                }
                if nationwide {
                    break;
                }
            }
        }
    }
    // Need to know: a person of another county, named by one of the office's cases, is the
    // office's to read; one named by nothing is not, nor is the linked one another office's.
    let registry_at = services.registry.running.grpc_addr;
    let read = |person: &str| json!({"personId": person, "purpose": PURPOSE});
    let get_person = "/jiuzhu.registry.v1.RegistryService/GetPerson";
    let get_file = "/jiuzhu.registry.v1.RegistryService/GetPersonFile";
    let own = channel_as(registry_at, &caller(Role::ReliefProsecutor, OWN)).await?;
    eventually("the case's link to the person", WAIT, || {
        let (pool, own, request) = (pool.clone(), own.clone(), read(&fixture.linked));
        async move { Ok(call(&pool, own, get_person, &request).await?.ok()) }
    })
    .await?;
    let mut linked_cells = 0;
    for path in [get_person, get_file] {
        let rule = table
            .rule(path)
            .ok_or_else(|| anyhow::anyhow!("no rule for {path}"))?;
        for role in Role::ALL
            .into_iter()
            .filter(|role| rule.allows(*role) && !table.is_nationwide(*role))
        {
            for (office, person, may) in [
                (OWN, &fixture.linked, true),
                (OWN, &fixture.unlinked, false),
                (OTHER, &fixture.linked, false),
            ] {
                let channel = channel_as(registry_at, &caller(role, office)).await?;
                let answer = call(&pool, channel, path, &read(person)).await?;
                linked_cells += 1;
                let refused =
                    matches!(&answer, Err(status) if status.code() == Code::PermissionDenied);
                if refused == may {
                    failures.push(format!(
                        "{path} as {role} of {office} on a {} person: {answer:?}",
                        if person == &fixture.linked {
                            "linked"
                        } else {
                            "unlinked"
                        }
                    ));
                }
            }
        }
    }
    cells += linked_cells;
    eprintln!(
        "office matrix: {cells} cells ({linked_cells} on linked and unlinked persons); \
         {unheld} methods not held to an office or checked elsewhere"
    );
    assert!(
        failures.is_empty(),
        "{} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells > 100, "only {cells} cells");
    for started in [
        services.followup,
        services.payments,
        services.decisions,
        services.clues,
        services.registry,
    ] {
        started.running.stop().await;
    }
    Ok(())
}

/// A field's comments in the contracts (leading and trailing).
fn comment_of(field: &prost_reflect::FieldDescriptor) -> String {
    let file = field.parent_file();
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == field.path()))
        .map(|l| format!("{} {}", l.leading_comments(), l.trailing_comments()))
        .unwrap_or_default()
}

/// What the contracts say is required is what the services require: every RPC called with an
/// empty request (by a role its rule admits) is refused with `INVALID_ARGUMENT` naming each
/// missing field, and each field so named says "Required" in its comment in the protos, so that
/// an integrator reading the contracts knows it before the first call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fields_an_empty_request_lacks_are_marked_required_in_the_contracts() -> TestResult {
    let ns = unique_namespace();
    let services = Services::start(&ns).await?;
    let table = AccessTable::shipped()?;
    let pool = DescriptorPool::decode(jiuzhu_proto::FILE_DESCRIPTOR_SET)?;
    let mut undocumented = Vec::new();
    let mut named = 0;
    for path in table.paths() {
        let Some(rule) = table.rule(path) else {
            continue;
        };
        let Some(role) = Role::ALL.into_iter().find(|role| rule.allows(*role)) else {
            continue;
        };
        let Some(method) = pool
            .get_service_by_name(path.trim_start_matches('/').split('/').next().unwrap_or(""))
            .and_then(|s| {
                s.methods()
                    .find(|m| Some(m.name()) == path.rsplit('/').next())
            })
        else {
            continue;
        };
        let channel = channel_as(services.addr(path), &caller(role, OWN)).await?;
        let Err(status) = call(&pool, channel, path, &json!({})).await? else {
            continue;
        };
        if status.code() != Code::InvalidArgument {
            continue;
        }
        let details = tonic_types::StatusExt::get_details_bad_request(&status);
        for violation in details.into_iter().flat_map(|d| d.field_violations) {
            let top = violation
                .field
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .to_owned();
            let Some(field) = method.input().get_field_by_name(&top) else {
                continue;
            };
            let missing = violation.description.starts_with("is required")
                || violation.description.contains("is required");
            if !missing || violation.field != top {
                continue;
            }
            named += 1;
            if !comment_of(&field).contains("Required") {
                undocumented.push(format!("{} ({path})", field.full_name()));
            }
        }
    }
    // Every command's request id and every personal read's purpose, whether or not an empty
    // request reaches its check.
    for message in pool.all_messages() {
        if !(message.package_name().starts_with("jiuzhu.") && message.name().ends_with("Request")) {
            continue;
        }
        for name in ["request_id", "purpose"] {
            if let Some(field) = message.get_field_by_name(name)
                && !comment_of(&field).contains("Required")
            {
                undocumented.push(field.full_name().to_owned());
            }
        }
    }
    assert!(
        named > 20,
        "only {named} required fields were named by the services"
    );
    assert!(
        undocumented.is_empty(),
        "required by the services, not marked `Required` in the contracts:\n{}",
        undocumented.join("\n")
    );
    Ok(())
}
