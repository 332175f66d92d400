//! Finance: the budget of a procuratorate (allocated, reserved, paid) and a case's
//! disbursements with every attempt.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use jiuzhu_proto::money::yuan;
use jiuzhu_proto::payments::{DisbursementState, GetBalancesRequest, ListDisbursementsRequest};
use serde::Deserialize;

use crate::web::{AppState, Frame, Member, OrPage, PageResult, answer, render};

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

#[derive(Template)]
#[template(path = "finance.html")]
struct FinancePage {
    f: Frame,
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
        searched: !case_id.is_empty(),
        procuratorate,
        balances,
        case_id,
        disbursements,
    }))
}
