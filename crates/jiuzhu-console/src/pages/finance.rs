//! Finance: the budget of a procuratorate (allocated, reserved, paid) and a case's
//! disbursements with every attempt.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use jiuzhu_proto::money::yuan;
use jiuzhu_proto::payments::{
    DisbursementState, GetBalancesRequest, ImportStatementRequest, ListDisbursementsRequest,
    MismatchKind, StatementFormat,
};
use serde::Deserialize;

use crate::web::{AppState, Frame, Member, OrPage, PageError, PageResult, Refusal, answer, render};

#[derive(Debug, Clone)]
pub struct DisbursementRow {
    pub disbursement_id: String,
    pub instalment: i32,
    pub amount: String,
    pub state: String,
    pub paid: bool,
    pub attempt: i32,
    pub account: String,
    pub failure: String,
    pub reference: String,
    pub history: Vec<String>,
}

/// A reconciliation as the finance page shows it.
#[derive(Debug, Clone)]
pub struct Report {
    pub statement_id: String,
    pub lines: i64,
    pub total: String,
    pub matched: i64,
    pub settled: i64,
    pub reversed: i64,
    pub mismatches: Vec<String>,
}

#[derive(Template)]
#[template(path = "finance.html")]
struct FinancePage {
    f: Frame,
    report: Option<Report>,
    request_id: String,
    procuratorate: String,
    balances: Option<(String, String, String)>,
    case_id: String,
    disbursements: Vec<DisbursementRow>,
    searched: bool,
}

#[derive(Debug, Deserialize)]
pub struct FinanceQuery {
    #[serde(default)]
    procuratorate: String,
    #[serde(default)]
    case_id: String,
}

pub async fn show(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<FinanceQuery>,
) -> Response {
    answer(finance(state, member, query).await)
}

async fn finance(state: AppState, member: Member, query: FinanceQuery) -> PageResult {
    finance_with(state, member, query, None).await
}

async fn finance_with(
    state: AppState,
    member: Member,
    query: FinanceQuery,
    report: Option<Report>,
) -> PageResult {
    let f = Frame::for_member(&member, "menu.finance");
    let mut payments = member.acting(&state).payments();
    let procuratorate = query.procuratorate.trim().to_owned();
    let balances = if procuratorate.is_empty() {
        None
    } else {
        let b = payments
            .get_balances(GetBalancesRequest {
                procuratorate: procuratorate.clone(),
            })
            .await
            .or_page(&member)?
            .into_inner();
        let money = |m: Option<jiuzhu_proto::common::Money>| yuan(m.map(|m| m.fen).unwrap_or(0));
        Some((money(b.budget), money(b.reserved), money(b.paid)))
    };
    let case_id = query.case_id.trim().to_owned();
    let disbursements = if case_id.is_empty() {
        Vec::new()
    } else {
        payments
            .list_disbursements(ListDisbursementsRequest {
                case_id: case_id.clone(),
            })
            .await
            .or_page(&member)?
            .into_inner()
            .disbursements
            .into_iter()
            .map(|d| {
                let state =
                    DisbursementState::try_from(d.state).unwrap_or(DisbursementState::Unspecified);
                let key = state
                    .as_str_name()
                    .trim_start_matches("DISBURSEMENT_STATE_")
                    .to_ascii_lowercase();
                DisbursementRow {
                    disbursement_id: d.disbursement_id.clone(),
                    instalment: d.instalment,
                    amount: yuan(d.amount.map(|m| m.fen).unwrap_or(0)),
                    paid: key == "succeeded",
                    state: f.l.t(&format!("disbursement.{key}")).to_owned(),
                    attempt: d.attempt,
                    account: d.payee_account_masked.clone(),
                    failure: d.failure_reason.clone(),
                    reference: d.provider_reference.clone(),
                    history: d
                        .history
                        .iter()
                        .map(|h| {
                            format!(
                                "{} · {}",
                                h.occurred_at,
                                h.event_type.rsplit('.').next().unwrap_or_default()
                            )
                        })
                        .collect(),
                }
            })
            .collect()
    };
    Ok(render(&FinancePage {
        f,
        report,
        request_id: super::request_id(),
        searched: !case_id.is_empty(),
        procuratorate,
        balances,
        case_id,
        disbursements,
    }))
}

/// A bank statement uploaded for reconciliation: the payments service matches every line with
/// what it recorded and answers with the report.
pub async fn statement(
    State(state): State<AppState>,
    member: Member,
    mut multipart: axum::extract::Multipart,
) -> Response {
    answer(
        async {
            let mut fields: Vec<(String, String)> = Vec::new();
            let mut content = String::new();
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|error| PageError::BadInput(format!("the upload: {error}")))
                .or_page(&member)?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let text = field
                    .text()
                    .await
                    .map_err(|error| PageError::BadInput(format!("{name}: {error}")))
                    .or_page(&member)?;
                if name == "file" {
                    content = text;
                } else {
                    fields.push((name, text));
                }
            }
            let fields = super::Fields(fields);
            let one = |name: &str| fields.trimmed(name);
            member.check_csrf(&one("csrf")).or_page(&member)?;
            let request_id = super::form_request_id(&one("request_id")).or_page(&member)?;
            let bad =
                |text: String| Refusal::from((PageError::BadInput(text), Some(member.clone())));
            if content.trim().is_empty() {
                return Err(bad("file: choose the bank's statement".to_owned()));
            }
            let format = match one("format").as_str() {
                "mt940" => StatementFormat::Mt940,
                _ => StatementFormat::Csv,
            };
            let control_count: i64 = one("control_count").parse().map_err(|_| {
                bad("control_count: the number of lines the bank states".to_owned())
            })?;
            let control_total = jiuzhu_proto::money::parse_yuan(&one("control_total"))
                .map_err(|reason| bad(format!("control_total: {reason}")))?;
            let report = member
                .acting(&state)
                .payments()
                .import_statement(ImportStatementRequest {
                    request_id,
                    provider: one("provider"),
                    format: format.into(),
                    content,
                    control_count,
                    control_total: Some(jiuzhu_proto::common::Money { fen: control_total }),
                    covers_until: String::new(),
                })
                .await
                .or_page(&member)?
                .into_inner()
                .report
                .unwrap_or_default();
            let report = Report {
                statement_id: report.statement_id.clone(),
                lines: report.line_count,
                total: yuan(report.total.map(|m| m.fen).unwrap_or(0)),
                matched: report.matched,
                settled: report.settled,
                reversed: report.reversed,
                mismatches: report
                    .mismatches
                    .iter()
                    .map(|m| {
                        format!(
                            "{} · {} · {}",
                            MismatchKind::try_from(m.kind)
                                .unwrap_or(MismatchKind::Unspecified)
                                .as_str_name()
                                .trim_start_matches("MISMATCH_KIND_")
                                .to_ascii_lowercase(),
                            m.idempotency_key,
                            m.bank_reference
                        )
                    })
                    .collect(),
            };
            let query = FinanceQuery {
                procuratorate: one("procuratorate"),
                case_id: String::new(),
            };
            finance_with(state.clone(), member.clone(), query, Some(report)).await
        }
        .await,
    )
}
