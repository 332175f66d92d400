//! Drives relief cases through the platform's public APIs the way the agencies' systems do: a
//! department records a person's status, a case-handling system reports a victim, the relief
//! prosecutor refers the clue, completes the materials, assesses, reviews and proposes, an
//! approver approves, finance allocates the budget, a payee is registered, and the follow-up
//! officer records a visit. Each step presents the certificate of the role that takes it
//! (`as-<role>` in the certificate directory), so the access table, jurisdiction and the audit
//! log apply exactly as in production. `jiuzhu demo seed` (run by `make run`) builds the demo
//! county with it, and the end-to-end story test walks its case with the same steps.

pub mod seed;

use std::future::Future;
use std::time::{Duration, Instant};

use jiuzhu_access::TlsSettings;
use jiuzhu_proto::clues::clues_service_client::CluesServiceClient;
use jiuzhu_proto::clues::{
    Clue, ClueStatus, ConfirmClueRequest, GetClueRequest, GetLinkageIndexStatusRequest, Harm,
    PartyRole, ReferClueRequest, ReportPartyRequest, ReportPartyResponse,
};
use jiuzhu_proto::common::{Money, RegionCode};
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::decisions::{
    AcceptCaseRequest, ApproveDecisionRequest, AssessEligibilityRequest, GetCaseRequest,
    NotifyApplicantRequest, ProposeDecisionRequest, ProposeDecisionResponse, RecordReviewRequest,
    RegisterMaterialRequest, ReliefCase, ReliefMethod, ReviewKind,
};
use jiuzhu_proto::followup::followup_service_client::FollowupServiceClient;
use jiuzhu_proto::followup::{
    Employment, Evaluation, GetPlanRequest, Level, MeasureReceived, Plan, RecordVisitRequest,
    ScaleAnswers,
};
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::payments::{
    AccountKind, AllocateBudgetRequest, Disbursement, DisbursementState, ListDisbursementsRequest,
    RegisterPayeeRequest,
};
use jiuzhu_proto::registry::registry_service_client::RegistryServiceClient;
use jiuzhu_proto::registry::search_persons_request::Query;
use jiuzhu_proto::registry::{RecordStatusRequest, SearchPersonsRequest, StatusKind};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A client of a service whose calls carry the platform's trace context.
pub type Traced = InterceptedService<Channel, TraceContext>;

/// Why the demo reads personal data (recorded in each service's audit log).
pub const PURPOSE: &str = "demonstration of the platform";

/// The category every demo case is decided under, with the facts it requires.
const CATEGORY: &str = "serious_injury_unpaid";
const FACTS: [&str; 2] = [
    "seriously_injured_or_disabled",
    "offender_cannot_pay_or_unknown",
];
const MATERIALS: [&str; 4] = [
    "application",
    "identity_proof",
    "proof_of_harm",
    "proof_of_hardship",
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Tls(#[from] jiuzhu_access::TlsError),
    #[error("cannot reach {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("the platform answered {}: {}", .0.code(), .0.message())]
    Refused(Box<tonic::Status>),
    #[error("timed out after {0:?} waiting for {1}")]
    TimedOut(Duration, String),
    #[error("{0}")]
    Unexpected(String),
}

impl From<tonic::Status> for DemoError {
    fn from(status: tonic::Status) -> Self {
        Self::Refused(Box::new(status))
    }
}

/// Where the five services answer (`https://host:port`).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub registry: String,
    pub clues: String,
    pub decisions: String,
    pub payments: String,
    pub followup: String,
}

impl Endpoints {
    /// The five services on `host` at the ports `make run` uses (50051 … 50055).
    pub fn local(host: &str) -> Self {
        let at = |port: u16| format!("https://{host}:{port}");
        Self {
            registry: at(50051),
            clues: at(50052),
            decisions: at(50053),
            payments: at(50054),
            followup: at(50055),
        }
    }
}

/// Adds the caller's W3C trace context to every call, when there is one: an agency's system
/// that traces its work makes the platform's spans part of its trace.
#[derive(Debug, Clone, Default)]
pub struct TraceContext(Option<MetadataValue<Ascii>>);

impl Interceptor for TraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(traceparent) = &self.0 {
            request
                .metadata_mut()
                .insert("traceparent", traceparent.clone());
        }
        Ok(request)
    }
}

/// Channels to the five services, one per role that acts, and the trace the calls belong to.
#[derive(Clone)]
pub struct Platform {
    department_registry: Channel,
    relief_registry: Channel,
    case_clues: Channel,
    relief_clues: Channel,
    relief_decisions: Channel,
    /// An approver's channel per approval tier (`as-approver.<tier>`), the tier its certificate
    /// names: the one the policy requires approves.
    approver_decisions: std::collections::BTreeMap<String, Channel>,
    relief_payments: Channel,
    finance_payments: Channel,
    followup_followup: Channel,
    trace: TraceContext,
    /// How long a step waits for the platform to catch up (events crossing services).
    pub patience: Duration,
}

async fn connect(tls: &TlsSettings, role: &str, endpoint: &str) -> Result<Channel, DemoError> {
    tls.endpoint(&format!("as-{role}"), endpoint)?
        .connect()
        .await
        .map_err(|source| DemoError::Unreachable {
            endpoint: endpoint.to_owned(),
            source,
        })
}

impl Platform {
    /// Connects to every service with the role certificates in `tls`'s directory.
    pub async fn connect(tls: &TlsSettings, endpoints: &Endpoints) -> Result<Self, DemoError> {
        Ok(Self {
            department_registry: connect(
                tls,
                "department_integrator.rural_revitalization",
                &endpoints.registry,
            )
            .await?,
            relief_registry: connect(tls, "relief_prosecutor", &endpoints.registry).await?,
            case_clues: connect(tls, "case_prosecutor", &endpoints.clues).await?,
            relief_clues: connect(tls, "relief_prosecutor", &endpoints.clues).await?,
            relief_decisions: connect(tls, "relief_prosecutor", &endpoints.decisions).await?,
            approver_decisions: {
                let tiers = jiuzhu_policy::PolicyBook::compiled_in()
                    .map(|book| book.approval_tiers())
                    .unwrap_or_default();
                let mut channels = std::collections::BTreeMap::new();
                for tier in tiers {
                    let role = format!("approver.{tier}");
                    channels.insert(tier, connect(tls, &role, &endpoints.decisions).await?);
                }
                channels
            },
            relief_payments: connect(tls, "relief_prosecutor", &endpoints.payments).await?,
            finance_payments: connect(tls, "finance_officer", &endpoints.payments).await?,
            followup_followup: connect(tls, "followup_officer", &endpoints.followup).await?,
            trace: TraceContext::default(),
            patience: Duration::from_secs(120),
        })
    }

    /// The same platform, every call made as part of the W3C trace `traceparent`
    /// (`00-<trace id>-<parent span id>-01`).
    pub fn traced(&self, traceparent: &str) -> Result<Self, DemoError> {
        let value = traceparent
            .parse()
            .map_err(|_| DemoError::Unexpected(format!("`{traceparent}` is not a traceparent")))?;
        Ok(Self {
            trace: TraceContext(Some(value)),
            ..self.clone()
        })
    }

    /// A department's integration system (statuses).
    pub fn department(&self) -> RegistryServiceClient<Traced> {
        RegistryServiceClient::with_interceptor(
            self.department_registry.clone(),
            self.trace.clone(),
        )
    }

    /// The relief prosecutor's view of the registry (search, the person file).
    pub fn registry(&self) -> RegistryServiceClient<Traced> {
        RegistryServiceClient::with_interceptor(self.relief_registry.clone(), self.trace.clone())
    }

    /// A case-handling system (reports parties).
    pub fn case_handling(&self) -> CluesServiceClient<Traced> {
        CluesServiceClient::with_interceptor(self.case_clues.clone(), self.trace.clone())
    }

    /// The relief prosecutor's clue board.
    pub fn clues(&self) -> CluesServiceClient<Traced> {
        CluesServiceClient::with_interceptor(self.relief_clues.clone(), self.trace.clone())
    }

    /// The relief prosecutor's cases.
    pub fn decisions(&self) -> DecisionsServiceClient<Traced> {
        DecisionsServiceClient::with_interceptor(self.relief_decisions.clone(), self.trace.clone())
    }

    /// The decisions client of an approver of `tier`.
    pub fn approver(&self, tier: &str) -> Result<DecisionsServiceClient<Traced>, DemoError> {
        let channel = self.approver_decisions.get(tier).ok_or_else(|| {
            DemoError::Unexpected(format!(
                "no approver certificate for tier `{tier}` (as-approver.{tier})"
            ))
        })?;
        Ok(DecisionsServiceClient::with_interceptor(
            channel.clone(),
            self.trace.clone(),
        ))
    }

    /// The relief prosecutor's payments client (payees, disbursements).
    pub fn payments(&self) -> PaymentsServiceClient<Traced> {
        PaymentsServiceClient::with_interceptor(self.relief_payments.clone(), self.trace.clone())
    }

    /// The finance officer's payments client (budgets).
    pub fn finance(&self) -> PaymentsServiceClient<Traced> {
        PaymentsServiceClient::with_interceptor(self.finance_payments.clone(), self.trace.clone())
    }

    /// The follow-up officer's client.
    pub fn followup(&self) -> FollowupServiceClient<Traced> {
        FollowupServiceClient::with_interceptor(self.followup_followup.clone(), self.trace.clone())
    }

    /// The registry's person with `resident_id`, once the registry's view has it.
    pub async fn find_person(&self, resident_id: &str) -> Result<String, DemoError> {
        wait_for(
            "the registry's person view to hold an imported person",
            self.patience,
            || {
                let mut registry = self.registry();
                let resident_id = resident_id.to_owned();
                async move {
                    let found = registry
                        .search_persons(SearchPersonsRequest {
                            purpose: PURPOSE.to_owned(),
                            query: Some(Query::ResidentId(resident_id)),
                            ..SearchPersonsRequest::default()
                        })
                        .await?
                        .into_inner()
                        .persons;
                    Ok(found.into_iter().next().map(|p| p.person_id))
                }
            },
        )
        .await
    }

    /// Waits until clue acquisition's linkage index holds at least `persons` persons (an
    /// import reaches it through the registry's topic).
    pub async fn wait_for_linkage_index(&self, persons: i64) -> Result<(), DemoError> {
        wait_for(
            "the linkage index to hold the register",
            self.patience * 5,
            || {
                let mut clues = self.clues();
                async move {
                    let status = clues
                        .get_linkage_index_status(GetLinkageIndexStatusRequest {})
                        .await?
                        .into_inner();
                    Ok((status.indexed_persons >= persons).then_some(()))
                }
            },
        )
        .await
    }

    /// Rural revitalization records the person as a registered poor household member (what
    /// makes relief paid to them shared back to that department).
    pub async fn record_registered_poor(
        &self,
        tag: &str,
        person_id: &str,
    ) -> Result<(), DemoError> {
        self.department()
            .record_status(RecordStatusRequest {
                request_id: format!("{tag}-poor"),
                person_id: person_id.to_owned(),
                kind: StatusKind::RegisteredPoor.into(),
                source_department: "rural_revitalization".to_owned(),
                reference: "黔乡振〔2026〕12号".to_owned(),
                effective_from: "2026-01-01".to_owned(),
                ..RecordStatusRequest::default()
            })
            .await?;
        Ok(())
    }

    /// A case-handling system reports `victim` of criminal case `case_no`, seriously injured
    /// by an offender who cannot pay.
    pub async fn report_victim(
        &self,
        tag: &str,
        case_no: &str,
        procuratorate: &str,
        victim: &Victim,
    ) -> Result<ReportPartyResponse, DemoError> {
        Ok(self
            .case_handling()
            .report_party(ReportPartyRequest {
                request_id: format!("{tag}-report"),
                case_no: case_no.to_owned(),
                party_ref: "V1".to_owned(),
                procuratorate: procuratorate.to_owned(),
                charge: "故意伤害罪".to_owned(),
                incident_date: "2026-03-14".to_owned(),
                role: PartyRole::Victim.into(),
                harm: Some(Harm {
                    serious_injury: true,
                    disability_grade: 7,
                    offender_caught: true,
                    offender_can_compensate: false,
                    ..Harm::default()
                }),
                full_name: victim.full_name.clone(),
                id_number: victim.id_number.clone(),
                gender: victim.gender.clone(),
                birth_date: victim.birth_date.clone(),
                phone: victim.phone.clone(),
                region: Some(RegionCode {
                    code: victim.region_code.clone(),
                }),
                address: victim.address.clone(),
                ..ReportPartyRequest::default()
            })
            .await?
            .into_inner())
    }

    /// The relief prosecutor refers the clue; the decisions service opens the relief case by
    /// itself, and clue acquisition closes the clue with the case's id, which is returned.
    pub async fn refer(&self, tag: &str, clue_id: &str) -> Result<String, DemoError> {
        self.clues()
            .refer_clue(ReferClueRequest {
                request_id: format!("{tag}-refer"),
                clue_id: clue_id.to_owned(),
                referred_by: "relief-prosecutor-demo".to_owned(),
            })
            .await?;
        let closed = wait_for("the referral to open a relief case", self.patience, || {
            let mut clues = self.clues();
            let clue_id = clue_id.to_owned();
            async move {
                let clue = match clues
                    .get_clue(GetClueRequest {
                        purpose: PURPOSE.to_owned(),
                        clue_id,
                    })
                    .await
                {
                    Ok(answer) => answer.into_inner().clue,
                    // The clue board has not caught up with the clue yet.
                    Err(status) if status.code() == tonic::Code::NotFound => None,
                    Err(status) => return Err(status.into()),
                };
                Ok(clue.filter(|c| {
                    c.status == ClueStatus::Closed as i32 && !c.relief_case_id.is_empty()
                }))
            }
        })
        .await?;
        Ok(closed.relief_case_id)
    }

    /// A clue the matcher left for review is confirmed by the relief prosecutor (name, birth
    /// date and address agree with the register); any other is left as it is.
    pub async fn confirm_if_awaiting_review(
        &self,
        tag: &str,
        clue: &Clue,
    ) -> Result<(), DemoError> {
        if clue.status == ClueStatus::AwaitingReview as i32 {
            self.clues()
                .confirm_clue(ConfirmClueRequest {
                    request_id: format!("{tag}-confirm"),
                    clue_id: clue.clue_id.clone(),
                    reviewer: "relief-prosecutor-demo".to_owned(),
                    reason: "姓名、出生日期、住址一致".to_owned(),
                })
                .await?;
        }
        Ok(())
    }

    /// The clue as the relief prosecutor's board shows it.
    pub async fn clue(&self, clue_id: &str) -> Result<Clue, DemoError> {
        self.clues()
            .get_clue(GetClueRequest {
                purpose: PURPOSE.to_owned(),
                clue_id: clue_id.to_owned(),
            })
            .await?
            .into_inner()
            .clue
            .ok_or_else(|| DemoError::Unexpected(format!("no clue {clue_id}")))
    }

    /// Every material the category needs arrives at the 12309 centre; the case is assessed
    /// eligible and accepted. Returns the materials still missing (none).
    pub async fn complete_and_accept(
        &self,
        tag: &str,
        case_id: &str,
    ) -> Result<Vec<String>, DemoError> {
        let mut decisions = self.decisions();
        decisions
            .assess_eligibility(AssessEligibilityRequest {
                request_id: format!("{tag}-assess"),
                case_id: case_id.to_owned(),
                facts: FACTS.iter().map(|f| (*f).to_owned()).collect(),
                assessed_by: "relief-prosecutor-demo".to_owned(),
                category: CATEGORY.to_owned(),
            })
            .await?;
        let mut missing = Vec::new();
        for material in MATERIALS {
            missing = decisions
                .register_material(RegisterMaterialRequest {
                    request_id: format!("{tag}-material-{material}"),
                    case_id: case_id.to_owned(),
                    material: material.to_owned(),
                    file_id: format!("{tag}-{material}.pdf"),
                    sha256: digest_of(tag, material),
                    centre: "12309检察服务中心".to_owned(),
                    received_by: "clerk-demo".to_owned(),
                })
                .await?
                .into_inner()
                .missing_materials;
        }
        decisions
            .accept_case(AcceptCaseRequest {
                request_id: format!("{tag}-accept"),
                case_id: case_id.to_owned(),
                accepted_by: "relief-prosecutor-demo".to_owned(),
            })
            .await?;
        Ok(missing)
    }

    /// A home visit and an interview review the case.
    pub async fn review(&self, tag: &str, case_id: &str) -> Result<(), DemoError> {
        for kind in [ReviewKind::HomeVisit, ReviewKind::Interview] {
            self.decisions()
                .record_review(RecordReviewRequest {
                    request_id: format!("{tag}-review-{}", kind as i32),
                    case_id: case_id.to_owned(),
                    kind: kind.into(),
                    record_file_id: format!("{tag}-review-{}.pdf", kind as i32),
                    sha256: digest_of(tag, kind.as_str_name()),
                    reviewed_by: "relief-prosecutor-demo".to_owned(),
                })
                .await?;
        }
        Ok(())
    }

    /// The relief prosecutor proposes a one-time payment of `fen` with psychological support.
    pub async fn propose(
        &self,
        tag: &str,
        case_id: &str,
        fen: i64,
    ) -> Result<ProposeDecisionResponse, DemoError> {
        Ok(self
            .decisions()
            .propose_decision(ProposeDecisionRequest {
                request_id: format!("{tag}-propose"),
                case_id: case_id.to_owned(),
                amount: Some(Money { fen }),
                methods: vec![
                    ReliefMethod::OneTimePayment.into(),
                    ReliefMethod::Psychological.into(),
                ],
                proposed_by: "relief-prosecutor-demo".to_owned(),
                ..ProposeDecisionRequest::default()
            })
            .await?
            .into_inner())
    }

    /// The approver the policy requires approves.
    pub async fn approve(
        &self,
        tag: &str,
        case_id: &str,
        required_approver: &str,
    ) -> Result<(), DemoError> {
        self.approver(required_approver)?
            .approve_decision(ApproveDecisionRequest {
                request_id: format!("{tag}-approve"),
                case_id: case_id.to_owned(),
                approver_role: String::new(),
                approved_by: String::new(),
            })
            .await?;
        Ok(())
    }

    /// The relief prosecutor tells the applicant the funds arrived (by phone, today), which
    /// closes the case; the date the closed case owes rural revitalization, if it does. Waits
    /// for the case to show the payment first.
    pub async fn notify(&self, tag: &str, case_id: &str) -> Result<String, DemoError> {
        wait_for(
            "the case to show the payment",
            self.patience,
            || async move {
                let stage = self.case(case_id).await?.stage;
                Ok((stage >= jiuzhu_proto::decisions::Stage::Distributed as i32).then_some(()))
            },
        )
        .await?;
        let answer = self
            .decisions()
            .notify_applicant(NotifyApplicantRequest {
                request_id: format!("{tag}-notify"),
                case_id: case_id.to_owned(),
                channel: "phone".to_owned(),
                notified_by: "relief-prosecutor-demo".to_owned(),
                note: "told by phone that the relief was paid".to_owned(),
                ..NotifyApplicantRequest::default()
            })
            .await?
            .into_inner();
        Ok(answer.report_due_date)
    }

    /// The finance department allocates `fen` to `procuratorate`'s relief budget.
    pub async fn allocate(
        &self,
        tag: &str,
        procuratorate: &str,
        fen: i64,
    ) -> Result<(), DemoError> {
        self.finance()
            .allocate_budget(AllocateBudgetRequest {
                request_id: format!("{tag}-budget"),
                procuratorate: procuratorate.to_owned(),
                amount: Some(Money { fen }),
                document_reference: "黔财行〔2026〕8号".to_owned(),
                allocated_by: "finance-officer-demo".to_owned(),
            })
            .await?;
        Ok(())
    }

    /// Registers the simulator's sandbox card `n` as the payee of `person_id`, once payments has
    /// the person from the registry. Returns the masked account.
    pub async fn register_payee(
        &self,
        tag: &str,
        person_id: &str,
        name: &str,
        n: u64,
    ) -> Result<String, DemoError> {
        let request = RegisterPayeeRequest {
            request_id: format!("{tag}-payee"),
            person_id: person_id.to_owned(),
            name: name.to_owned(),
            account_kind: AccountKind::BankCard.into(),
            account: jiuzhu_paysim::sandbox_card("6222020000", n),
            institution: "中国农业银行开阳县支行".to_owned(),
            registered_by: "relief-prosecutor-demo".to_owned(),
        };
        wait_for("payments to know the person", self.patience, || {
            let (mut payments, request) = (self.payments(), request.clone());
            async move {
                match payments.register_payee(request).await {
                    Ok(answer) => Ok(Some(answer.into_inner().payee_account_masked)),
                    // The registry's record has not reached payments yet.
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(None),
                    Err(status) => Err(status.into()),
                }
            }
        })
        .await
    }

    /// The case's disbursements once every one of them has been paid.
    pub async fn paid(&self, case_id: &str) -> Result<Vec<Disbursement>, DemoError> {
        wait_for("the relief to be paid", self.patience, || {
            let mut payments = self.payments();
            let case_id = case_id.to_owned();
            async move {
                let listed = payments
                    .list_disbursements(ListDisbursementsRequest { case_id })
                    .await?
                    .into_inner()
                    .disbursements;
                let all_paid = !listed.is_empty()
                    && listed
                        .iter()
                        .all(|d| d.state == DisbursementState::Succeeded as i32);
                Ok(all_paid.then_some(listed))
            }
        })
        .await
    }

    /// The follow-up plan of the case, once the payment has opened it.
    pub async fn plan(&self, case_id: &str) -> Result<Plan, DemoError> {
        wait_for("the follow-up plan", self.patience, || {
            let mut followup = self.followup();
            let case_id = case_id.to_owned();
            async move {
                match followup
                    .get_plan(GetPlanRequest {
                        purpose: PURPOSE.to_owned(),
                        case_id,
                        ..GetPlanRequest::default()
                    })
                    .await
                {
                    Ok(answer) => Ok(answer.into_inner().plan),
                    Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                    Err(status) => Err(status.into()),
                }
            }
        })
        .await
    }

    /// The first scheduled visit, made by phone today: income per head `income_fen` a year and
    /// the PHQ-9 answers `phq9`.
    pub async fn record_first_visit(
        &self,
        tag: &str,
        plan: &Plan,
        income_fen: i64,
        phq9: [i32; 9],
    ) -> Result<(), DemoError> {
        let number = plan
            .visits
            .first()
            .and_then(|v| v.scheduled.as_ref())
            .map(|s| s.number)
            .ok_or_else(|| DemoError::Unexpected(format!("plan {} has no visit", plan.plan_id)))?;
        // Made today, or on the payment day when the platform's clock runs ahead (a drill).
        let today = (chrono::Utc::now() + chrono::Duration::hours(8))
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
            .max(plan.paid_on.clone());
        self.followup()
            .record_visit(RecordVisitRequest {
                request_id: format!("{tag}-visit-{number}"),
                plan_id: plan.plan_id.clone(),
                number,
                visited_on: today,
                visited_by: "followup-officer-demo".to_owned(),
                channel: jiuzhu_proto::followup::Channel::Phone.into(),
                evaluation: Some(Evaluation {
                    income_per_head: Some(Money { fen: income_fen }),
                    employment: Employment::Unemployed.into(),
                    medical_burden: Level::High.into(),
                    housing_safe: true,
                    children_out_of_school: 0,
                    scales: Some(ScaleAnswers {
                        phq9: phq9.to_vec(),
                        ..ScaleAnswers::default()
                    }),
                    measures: vec![MeasureReceived {
                        measure: "one_time_payment".to_owned(),
                        received: true,
                    }],
                    notes: "伤后未能务工，家中收入下降".to_owned(),
                }),
            })
            .await?;
        Ok(())
    }

    /// The relief case as the relief prosecutor sees it.
    pub async fn case(&self, case_id: &str) -> Result<ReliefCase, DemoError> {
        self.decisions()
            .get_case(GetCaseRequest {
                purpose: PURPOSE.to_owned(),
                case_id: case_id.to_owned(),
            })
            .await?
            .into_inner()
            .relief_case
            .ok_or_else(|| DemoError::Unexpected(format!("no relief case {case_id}")))
    }
}

/// A victim as the case file writes them (not as the registry does).
#[derive(Debug, Clone, Default)]
pub struct Victim {
    pub full_name: String,
    /// Empty when the case file lacks it.
    pub id_number: String,
    pub gender: String,
    /// As written, e.g. `1958年3月2日`.
    pub birth_date: String,
    pub phone: String,
    pub region_code: String,
    pub address: String,
}

/// Polls `check` until it gives `Some`, or fails after `limit` naming `what`. A service that is
/// briefly unavailable (restarting, its connection being made again) is waited for like any
/// other state not reached yet; its last answer is kept for the error if the wait runs out.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, DemoError>>,
{
    let started = Instant::now();
    let mut unavailable = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(DemoError::Refused(status)) if status.code() == tonic::Code::Unavailable => {
                unavailable = Some(status.message().to_owned());
            }
            Err(error) => return Err(error),
        }
        if started.elapsed() > limit {
            let what = match unavailable {
                Some(last) => format!("{what} (last answer: unavailable, {last})"),
                None => what.to_owned(),
            };
            return Err(DemoError::TimedOut(limit, what));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A W3C trace id (32 hex digits) for the work tagged `tag`, and the `traceparent` of a call
/// made within it: the same tag gives the same trace, so an operator finds a demo case's whole
/// story under one id in Jaeger.
pub fn trace_for(tag: &str) -> (String, String) {
    let trace_id = format!("{}{}", fnv(tag, "trace-high"), fnv(tag, "trace-low"));
    let traceparent = format!("00-{trace_id}-{}-01", fnv(tag, "span"));
    (trace_id, traceparent)
}

fn fnv(tag: &str, salt: &str) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for byte in tag.bytes().chain(salt.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A stand-in SHA-256 of a scanned document (64 hex digits, different per case and document).
fn digest_of(tag: &str, document: &str) -> String {
    fnv(tag, document).repeat(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_digests_are_hex_of_sha256_length_and_differ() {
        let one = digest_of("demo-1", "application");
        assert_eq!(one.len(), 64);
        assert!(one.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(one, digest_of("demo-2", "application"));
        assert_ne!(one, digest_of("demo-1", "identity_proof"));
    }

    #[test]
    fn a_tag_gives_one_valid_trace() -> Result<(), DemoError> {
        let (trace_id, traceparent) = trace_for("demo-520121-3");
        assert_eq!(trace_id.len(), 32);
        assert_eq!(traceparent.len(), 55);
        assert!(traceparent.starts_with(&format!("00-{trace_id}-")));
        assert_eq!(trace_for("demo-520121-3").0, trace_id);
        assert_ne!(trace_for("demo-520121-4").0, trace_id);
        assert!(traceparent.parse::<MetadataValue<Ascii>>().is_ok());
        Ok(())
    }
}
