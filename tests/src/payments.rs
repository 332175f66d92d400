//! Helpers for the payments tests and benchmark: the provider simulator as a process, test
//! bank cards (Luhn-valid) in a scenario's range, and relief cases taken to approval through
//! the decisions service.

use std::time::Duration;

use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::decisions::{
    ApproveDecisionRequest, AssessEligibilityRequest, CaseOrigin, OpenCaseRequest,
    ProposeDecisionRequest, ReliefMethod,
};
use jiuzhu_proto::gateway::simulator_service_client::SimulatorServiceClient;
use jiuzhu_proto::gateway::{ListPaymentsRequest, SimulatedPayment};
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::payments::{
    AccountKind, AllocateBudgetRequest, Disbursement, DisbursementState, ListDisbursementsRequest,
    RegisterPayeeRequest,
};
use jiuzhu_testkit::ServiceProcess;
use tonic::transport::Channel;

use crate::eventually;

/// Account prefixes the simulator is started with: refused for good, refused once, no answer.
pub const REJECT: &str = "6222029990";
pub const FLAKY: &str = "6222029991";
pub const SILENT: &str = "6222029992";
/// An ordinary account range.
pub const ORDINARY: &str = "6222020000";

pub use jiuzhu_paysim::sandbox_card as card;

/// `jiuzhu-paysim` running as its own process.
pub struct Paysim {
    pub process: ServiceProcess,
    pub endpoint: String,
    pub client: SimulatorServiceClient<Channel>,
}

impl Paysim {
    /// Starts the simulator notifying `notify` (if any) with the scenario ranges above and
    /// `extra` flags.
    pub async fn spawn(notify: Option<&str>, extra: &[&str]) -> anyhow::Result<Self> {
        let port = jiuzhu_testkit::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let scenarios = [
            format!("{REJECT}=reject"),
            format!("{FLAKY}=flaky"),
            format!("{SILENT}=timeout"),
        ];
        let tls_dir = jiuzhu_testkit::tls().dir.display().to_string();
        let mut args: Vec<&str> = vec!["--listen", &listen, "--tls-dir", &tls_dir];
        if let Some(notify) = notify {
            args.extend(["--notify", notify]);
        }
        for scenario in &scenarios {
            args.extend(["--scenario", scenario.as_str()]);
        }
        args.extend(extra);
        let process = ServiceProcess::spawn_args("jiuzhu-paysim", &args, &[])?;
        let endpoint = format!("https://{listen}");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let client = eventually(
            "the simulator to serve",
            Duration::from_secs(30),
            || async move {
                Ok(jiuzhu_testkit::channel(addr)
                    .await
                    .ok()
                    .map(SimulatorServiceClient::new))
            },
        )
        .await?;
        Ok(Self {
            process,
            endpoint,
            client,
        })
    }

    /// The simulator's record of the payments for one disbursement (its keys start with it).
    pub async fn payments_for(
        &self,
        disbursement_id: &str,
    ) -> anyhow::Result<Vec<SimulatedPayment>> {
        let all = self
            .client
            .clone()
            .list_payments(ListPaymentsRequest {})
            .await?
            .into_inner()
            .payments;
        Ok(all
            .into_iter()
            .filter(|p| p.idempotency_key.starts_with(disbursement_id))
            .collect())
    }
}

/// Opens an emergency relief case for `person_id` and takes it to approval of `fen`, paid at
/// once.
pub async fn approve_case(
    decisions: std::net::SocketAddr,
    tag: &str,
    person_id: &str,
    procuratorate: &str,
    fen: i64,
) -> anyhow::Result<String> {
    approve_in_instalments(decisions, tag, person_id, procuratorate, fen, 1).await
}

/// The decisions client of an approver of `tier` in the test office, 520102 (the tier is its
/// certificate's).
pub async fn approver(
    decisions: std::net::SocketAddr,
    tier: &str,
) -> anyhow::Result<DecisionsServiceClient<Channel>> {
    approver_in(decisions, "520102", tier).await
}

/// The decisions client of an approver of `tier` in `office`.
pub async fn approver_in(
    decisions: std::net::SocketAddr,
    office: &str,
    tier: &str,
) -> anyhow::Result<DecisionsServiceClient<Channel>> {
    approver_named(decisions, office, &format!("approver-{tier}"), tier).await
}

/// The decisions client of the approver `name`, of `tier`, in `office` (another person than
/// [`approver_in`]'s, e.g. to review an objection to that one's decision).
pub async fn approver_named(
    decisions: std::net::SocketAddr,
    office: &str,
    name: &str,
    tier: &str,
) -> anyhow::Result<DecisionsServiceClient<Channel>> {
    let identity =
        jiuzhu_access::Identity::new("procuratorate", office, jiuzhu_access::Role::Approver, name)
            .scoped(tier);
    Ok(DecisionsServiceClient::new(
        jiuzhu_testkit::channel_as(decisions, &identity).await?,
    ))
}

/// The payments client of a finance officer of `office`.
pub async fn finance_in(
    payments: std::net::SocketAddr,
    office: &str,
) -> anyhow::Result<PaymentsServiceClient<Channel>> {
    let identity = jiuzhu_access::Identity::new(
        "procuratorate",
        office,
        jiuzhu_access::Role::FinanceOfficer,
        &format!("finance-{office}"),
    );
    Ok(PaymentsServiceClient::new(
        jiuzhu_testkit::channel_as(payments, &identity).await?,
    ))
}

/// As [`approve_case`], paid in `instalments`.
pub async fn approve_in_instalments(
    decisions_at: std::net::SocketAddr,
    tag: &str,
    person_id: &str,
    procuratorate: &str,
    fen: i64,
    instalments: i32,
) -> anyhow::Result<String> {
    approve_with_methods(
        decisions_at,
        tag,
        person_id,
        procuratorate,
        fen,
        instalments,
        &[ReliefMethod::OneTimePayment],
    )
    .await
}

/// As [`approve_in_instalments`], with `methods` (those a department delivers are referred).
pub async fn approve_with_methods(
    decisions_at: std::net::SocketAddr,
    tag: &str,
    person_id: &str,
    procuratorate: &str,
    fen: i64,
    instalments: i32,
    methods: &[ReliefMethod],
) -> anyhow::Result<String> {
    let decisions = &mut DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions_at).await?);
    let case_id = crate::open_case_once_known(
        decisions,
        OpenCaseRequest {
            request_id: format!("{tag}-open"),
            origin: CaseOrigin::Application as i32,
            person_id: person_id.to_owned(),
            case_no: format!("(2026)黔0103刑初{tag}号"),
            procuratorate: procuratorate.to_owned(),
            region_code: "520103".to_owned(),
            category: "urgent_medical".to_owned(),
            applicant_relation: "self".to_owned(),
            opened_by: "online".to_owned(),
            ..OpenCaseRequest::default()
        },
    )
    .await?
    .case_id;
    decisions
        .assess_eligibility(AssessEligibilityRequest {
            request_id: format!("{tag}-assess"),
            case_id: case_id.clone(),
            facts: vec![
                "urgent_medical_need".to_owned(),
                "cannot_pay_treatment".to_owned(),
            ],
            assessed_by: "relief-prosecutor-2".to_owned(),
            category: String::new(),
        })
        .await?;
    let proposed = decisions
        .propose_decision(ProposeDecisionRequest {
            request_id: format!("{tag}-propose"),
            case_id: case_id.clone(),
            amount: Some(Money { fen }),
            methods: methods.iter().map(|m| *m as i32).collect(),
            proposed_by: "relief-prosecutor-2".to_owned(),
            instalments,
            ..ProposeDecisionRequest::default()
        })
        .await?
        .into_inner();
    // The case is of Yunyan district (520103): its office's approver decides.
    approver_in(decisions_at, "520103", &proposed.required_approver)
        .await?
        .approve_decision(ApproveDecisionRequest {
            request_id: format!("{tag}-approve"),
            case_id: case_id.clone(),
            ..ApproveDecisionRequest::default()
        })
        .await?;
    Ok(case_id)
}

/// Registers `account` as the payee of `person_id` (named `name`), once payments has received
/// the person from the registry.
pub async fn register_payee(
    payments: &PaymentsServiceClient<Channel>,
    tag: &str,
    person_id: &str,
    name: &str,
    account: &str,
) -> anyhow::Result<String> {
    let request = RegisterPayeeRequest {
        request_id: format!("{tag}-payee"),
        person_id: person_id.to_owned(),
        name: name.to_owned(),
        account_kind: AccountKind::BankCard as i32,
        account: account.to_owned(),
        institution: "中国农业银行贵阳分行".to_owned(),
        registered_by: "relief-prosecutor-2".to_owned(),
    };
    eventually(
        "the payee to be registered",
        Duration::from_secs(60),
        || {
            let (mut client, request) = (payments.clone(), request.clone());
            async move {
                match client.register_payee(request).await {
                    Ok(answer) => Ok(Some(answer.into_inner().payee_account_masked)),
                    // The registry's record has not reached payments yet.
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(None),
                    Err(status) => Err(status.into()),
                }
            }
        },
    )
    .await
}

/// The procuratorate the payment tests pay from.
pub const PROCURATORATE: &str = "贵阳市云岩区人民检察院";

/// Allocates `fen` to [`PROCURATORATE`]'s budget.
pub async fn allocate(
    client: &mut PaymentsServiceClient<Channel>,
    tag: &str,
    fen: i64,
) -> anyhow::Result<()> {
    client
        .allocate_budget(AllocateBudgetRequest {
            request_id: format!("{tag}-budget"),
            procuratorate: PROCURATORATE.to_owned(),
            amount: Some(Money { fen }),
            document_reference: "黔财行〔2026〕31号".to_owned(),
            allocated_by: "finance-officer-2".to_owned(),
        })
        .await?;
    Ok(())
}

/// The case's first disbursement once it has reached `state`.
pub async fn disbursement_in(
    client: &PaymentsServiceClient<Channel>,
    case_id: &str,
    state: DisbursementState,
) -> anyhow::Result<Disbursement> {
    let listed = disbursements_when(client, case_id, &format!("{state:?}"), |listed| {
        listed.first().is_some_and(|d| d.state == state as i32)
    })
    .await?;
    listed
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no disbursement"))
}

/// The case's disbursements (in `ListDisbursements` order) once `ready` holds of them.
pub async fn disbursements_when(
    client: &PaymentsServiceClient<Channel>,
    case_id: &str,
    what: &str,
    ready: impl Fn(&[Disbursement]) -> bool,
) -> anyhow::Result<Vec<Disbursement>> {
    let ready = &ready;
    eventually(
        &format!("the disbursements to be {what}"),
        Duration::from_secs(60),
        || {
            let (mut client, case_id) = (client.clone(), case_id.to_owned());
            async move {
                let listed = client
                    .list_disbursements(ListDisbursementsRequest { case_id })
                    .await?
                    .into_inner()
                    .disbursements;
                Ok(ready(&listed).then_some(listed))
            }
        },
    )
    .await
}

/// Payments on `port`, paying through the simulator at `simulator`, resending unknown outcomes
/// after `resend_after_ms`; automatic retries wait long (a retry in these tests is an officer's).
pub fn provider_settings(
    settings: &mut jiuzhu_runtime::Settings,
    simulator: &str,
    port: u16,
    resend_after_ms: u64,
) {
    settings.service.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    settings
        .own
        .set(&jiuzhu_payments::settings::ProviderSettings {
            endpoint: simulator.to_owned(),
            poll_ms: 20,
            request_timeout_ms: 300,
            resend_after_ms,
            backoff_base_ms: 600_000,
            ..Default::default()
        });
    settings.service.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
}
