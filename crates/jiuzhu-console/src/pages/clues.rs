//! The office's clue board: each clue with its match probability and the explanation of every
//! field that counted; confirm or reject a clue in the review band, refer a matched one.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use jiuzhu_proto::clues::{
    Clue, ClueStatus, ConfirmClueRequest, ListCluesRequest, ReferClueRequest, RejectClueRequest,
};
use serde::Deserialize;

use crate::web::{
    AppState, Frame, Member, Notice, OrPage, PageError, PageResult, answer, render, see_other,
};

/// A clue as the board shows it.
#[derive(Debug, Clone)]
pub struct ClueRow {
    pub clue_id: String,
    pub case_no: String,
    pub procuratorate: String,
    pub region_code: String,
    pub percent: String,
    pub status: String,
    pub status_key: String,
    /// One line per field that counted (`name: agrees (+4.1)`).
    pub explanation: Vec<String>,
    pub may_review: bool,
    pub may_refer: bool,
    pub relief_case_id: String,
    pub detected_at: String,
    pub request_id: String,
}

fn row(clue: &Clue, f: &Frame) -> ClueRow {
    let status = ClueStatus::try_from(clue.status).unwrap_or(ClueStatus::Unspecified);
    let status_key = status
        .as_str_name()
        .trim_start_matches("CLUE_STATUS_")
        .to_ascii_lowercase();
    ClueRow {
        clue_id: clue.clue_id.clone(),
        case_no: clue.case_no.clone(),
        procuratorate: clue.procuratorate.clone(),
        region_code: clue.region_code.clone(),
        percent: format!("{:.1}%", clue.probability * 100.0),
        status: f.l.t(&format!("clue.status.{status_key}")).to_owned(),
        status_key,
        explanation: clue
            .explanation
            .split(';')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
        may_review: status == ClueStatus::AwaitingReview,
        may_refer: matches!(status, ClueStatus::Detected | ClueStatus::Confirmed),
        relief_case_id: clue.relief_case_id.clone(),
        detected_at: clue
            .detected_at
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
        request_id: super::request_id(),
    }
}

#[derive(Template)]
#[template(path = "clues.html")]
struct BoardPage {
    f: Frame,
    clues: Vec<ClueRow>,
    filter: String,
    filters: Vec<(String, String)>,
    next_page: String,
}

#[derive(Debug, Deserialize)]
pub struct BoardQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: String,
    #[serde(default)]
    done: String,
}

const FILTERS: [&str; 5] = ["awaiting_review", "detected", "confirmed", "closed", "all"];

pub async fn board(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<BoardQuery>,
) -> Response {
    answer(show_board(state, member, query).await)
}

async fn show_board(state: AppState, member: Member, query: BoardQuery) -> PageResult {
    let notice = done_notice(&member, &query.done);
    let f = Frame::for_member(&member, "menu.clues").with_notice(notice);
    let filter = if FILTERS.contains(&query.status.as_str()) {
        query.status.clone()
    } else {
        "all".to_owned()
    };
    let status = ClueStatus::from_str_name(&format!("CLUE_STATUS_{}", filter.to_uppercase()))
        .unwrap_or(ClueStatus::Unspecified);
    let answer = member
        .acting(&state)
        .clues()
        .list_clues(ListCluesRequest {
            status: status.into(),
            page_size: 100,
            page_token: query.page.clone(),
            ..ListCluesRequest::default()
        })
        .await
        .or_page(&member)?
        .into_inner();
    let clues = answer.clues.iter().map(|clue| row(clue, &f)).collect();
    let filters = FILTERS
        .iter()
        .map(|key| {
            (
                (*key).to_owned(),
                f.l.t(&format!("clue.filter.{key}")).to_owned(),
            )
        })
        .collect();
    Ok(render(&BoardPage {
        f,
        clues,
        filter,
        filters,
        next_page: answer.next_page_token,
    }))
}

/// The notice for `?done=<key>` after a form: only keys of ours are shown.
pub fn done_notice(member: &Member, done: &str) -> Option<Notice> {
    let known = [
        "confirmed",
        "rejected",
        "referred",
        "assessed",
        "material",
        "accepted",
        "reviewed",
        "proposed",
        "approved",
        "refused",
        "notified",
        "visit",
        "added",
        "changed",
        "payee",
    ];
    known.contains(&done).then(|| Notice {
        ok: true,
        text: member.language().t(&format!("done.{done}")).to_owned(),
    })
}

#[derive(Debug, Deserialize)]
pub struct ClueForm {
    csrf: String,
    request_id: String,
    #[serde(default)]
    reason: String,
}

pub async fn act(
    State(state): State<AppState>,
    member: Member,
    Path((clue_id, action)): Path<(String, String)>,
    Form(form): Form<ClueForm>,
) -> Response {
    answer(take(state, member, clue_id, action, form).await)
}

async fn take(
    state: AppState,
    member: Member,
    clue_id: String,
    action: String,
    form: ClueForm,
) -> PageResult {
    member.check_csrf(&form.csrf).or_page(&member)?;
    let request_id = super::form_request_id(&form.request_id).or_page(&member)?;
    let mut clues = member.acting(&state).clues();
    let done = match action.as_str() {
        "confirm" => {
            clues
                .confirm_clue(ConfirmClueRequest {
                    request_id,
                    clue_id,
                    reviewer: member.staff().staff_no.clone(),
                    reason: form.reason,
                })
                .await
                .or_page(&member)?;
            "confirmed"
        }
        "reject" => {
            if form.reason.trim().is_empty() {
                return Err((
                    PageError::BadInput(member.language().t("clue.reason_required").to_owned()),
                    Some(member),
                )
                    .into());
            }
            clues
                .reject_clue(RejectClueRequest {
                    request_id,
                    clue_id,
                    reviewer: member.staff().staff_no.clone(),
                    reason: form.reason,
                })
                .await
                .or_page(&member)?;
            "rejected"
        }
        "refer" => {
            clues
                .refer_clue(ReferClueRequest {
                    request_id,
                    clue_id,
                    referred_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            "referred"
        }
        _ => {
            return Err((
                PageError::NotFound("no such action".to_owned()),
                Some(member),
            )
                .into());
        }
    };
    Ok(see_other(&format!("/clues?done={done}")))
}
