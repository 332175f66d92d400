//! Follow-up: the visits due in the member's jurisdiction, and one plan's page with its visits,
//! the person's trend as a chart, and the form to record a visit with the PHQ-9, GAD-7 and K10
//! items as asked.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::followup::{
    Channel, Employment, Evaluation, GetPersonTrendRequest, GetPlanRequest, Level,
    ListVisitsRequest, RecordVisitRequest, ScaleAnswers, Trend, VisitState,
};
use serde::Deserialize;

use super::clues::done_notice;
use crate::web::{AppState, Frame, Member, OrPage, PageError, answer, render, see_other};

#[derive(Debug, Clone)]
pub struct DueRow {
    pub plan_id: String,
    pub number: i32,
    pub due_date: String,
    pub channel: String,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "followup.html")]
struct DuePage {
    f: Frame,
    rows: Vec<DueRow>,
}

fn channel_text(f: &Frame, channel: i32) -> String {
    let key = Channel::try_from(channel)
        .unwrap_or(Channel::Unspecified)
        .as_str_name()
        .trim_start_matches("CHANNEL_")
        .to_ascii_lowercase();
    f.l.t(&format!("channel.{key}")).to_owned()
}

pub async fn show(State(state): State<AppState>, member: Member) -> Response {
    answer(
        async {
            let f = Frame::for_member(&member, "menu.followup");
            let visits = member
                .acting(&state)
                .followup()
                .list_visits(ListVisitsRequest {
                    page_size: 200,
                    purpose: super::PURPOSE.to_owned(),
                    ..ListVisitsRequest::default()
                })
                .await
                .or_page(&member)?
                .into_inner()
                .visits;
            let rows = visits
                .iter()
                .map(|v| DueRow {
                    plan_id: v.plan_id.clone(),
                    number: v.number,
                    due_date: v.due_date.clone(),
                    channel: channel_text(&f, v.channel),
                    overdue: v.overdue,
                })
                .collect();
            Ok(render(&DuePage { f, rows }))
        }
        .await,
    )
}

#[derive(Debug, Clone)]
pub struct VisitRow {
    pub number: i32,
    pub due_date: String,
    pub channel: String,
    pub state: String,
    pub visited_on: String,
    pub open: bool,
}

/// A point of the trend chart.
#[derive(Debug, Clone)]
pub struct Point {
    pub x: i64,
    pub y: i64,
    pub label: String,
}

/// One questionnaire: its name, item count, and the answer range.
#[derive(Debug, Clone)]
pub struct Scale {
    pub id: &'static str,
    pub items: Vec<usize>,
    pub min: i32,
    pub max: i32,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    f: Frame,
    plan_id: String,
    case_id: String,
    paid_on: String,
    closed: bool,
    visits: Vec<VisitRow>,
    next_number: i32,
    points: Vec<Point>,
    polyline: String,
    trend: String,
    scales: Vec<Scale>,
    today: String,
    request_id: String,
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: String,
}

pub const SCALES: [(&str, usize, i32, i32); 3] =
    [("phq9", 9, 0, 3), ("gad7", 7, 0, 3), ("k10", 10, 1, 5)];

pub async fn plan(
    State(state): State<AppState>,
    member: Member,
    Path(plan_id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    answer(
        async {
            let f = Frame::for_member(&member, "followup.plan")
                .with_notice(done_notice(&member, &query.done));
            let acting = member.acting(&state);
            let plan = acting
                .followup()
                .get_plan(GetPlanRequest {
                    plan_id: plan_id.clone(),
                    purpose: super::PURPOSE.to_owned(),
                    ..GetPlanRequest::default()
                })
                .await
                .or_page(&member)?
                .into_inner()
                .plan
                .ok_or_else(|| {
                    (
                        PageError::NotFound(format!("no plan {plan_id}")),
                        Some(member.clone()),
                    )
                })?;
            let visits: Vec<VisitRow> = plan
                .visits
                .iter()
                .map(|v| {
                    let scheduled = v.scheduled.clone().unwrap_or_default();
                    let state = VisitState::try_from(v.state).unwrap_or(VisitState::Unspecified);
                    VisitRow {
                        number: scheduled.number,
                        due_date: scheduled.due_date.clone(),
                        channel: channel_text(&f, scheduled.channel),
                        state: f
                            .l
                            .t(&format!(
                                "visit.{}",
                                state
                                    .as_str_name()
                                    .trim_start_matches("VISIT_STATE_")
                                    .to_ascii_lowercase()
                            ))
                            .to_owned(),
                        visited_on: v.visited_on.clone(),
                        open: matches!(state, VisitState::Scheduled | VisitState::Overdue),
                    }
                })
                .collect();
            let next_number = visits
                .iter()
                .find(|v| v.open)
                .map(|v| v.number)
                .unwrap_or(0);
            let trend = acting
                .followup()
                .get_person_trend(GetPersonTrendRequest {
                    person_id: plan.person_id.clone(),
                    purpose: super::PURPOSE.to_owned(),
                })
                .await
                .or_page(&member)?
                .into_inner();
            let points: Vec<Point> = trend
                .visits
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let score = v.outcome.as_ref().map(|o| o.effect_score).unwrap_or(0);
                    Point {
                        x: 40 + i64::try_from(i).unwrap_or_default() * 80,
                        // Effect scores run 0–100; up is better.
                        y: 170 - i64::from(score.clamp(0, 100)) * 3 / 2,
                        label: format!("{} · {}", v.visited_on, score),
                    }
                })
                .collect();
            let polyline = points
                .iter()
                .map(|p| format!("{},{}", p.x, p.y))
                .collect::<Vec<_>>()
                .join(" ");
            let trend_key = Trend::try_from(trend.trend)
                .unwrap_or(Trend::Unspecified)
                .as_str_name()
                .trim_start_matches("TREND_")
                .to_ascii_lowercase();
            Ok(render(&PlanPage {
                trend: f.l.t(&format!("trend.{trend_key}")).to_owned(),
                f,
                plan_id: plan.plan_id.clone(),
                case_id: plan.case_id.clone(),
                paid_on: plan.paid_on.clone(),
                closed: plan.closed,
                visits,
                next_number,
                points,
                polyline,
                scales: SCALES
                    .iter()
                    .map(|(id, n, min, max)| Scale {
                        id,
                        items: (1..=*n).collect(),
                        min: *min,
                        max: *max,
                    })
                    .collect(),
                today: (state.clock.now() + chrono::Duration::hours(8))
                    .format("%Y-%m-%d")
                    .to_string(),
                request_id: super::request_id(),
            }))
        }
        .await,
    )
}

/// The answers of one questionnaire from the form, every item within range.
fn answers(
    fields: &super::Fields,
    id: &str,
    items: usize,
    min: i32,
    max: i32,
) -> Result<Vec<i32>, String> {
    let mut answers = Vec::new();
    let mut any = false;
    for item in 1..=items {
        let name = format!("{id}_{item}");
        let text = fields.trimmed(&name);
        if text.is_empty() {
            answers.push(None);
            continue;
        }
        any = true;
        match text.parse::<i32>() {
            Ok(value) if (min..=max).contains(&value) => answers.push(Some(value)),
            _ => return Err(format!("{name}: an answer from {min} to {max}")),
        }
    }
    if !any {
        return Ok(Vec::new());
    }
    answers
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.ok_or_else(|| {
                format!(
                    "{id}_{}: every item of {id} needs an answer (or none)",
                    i + 1
                )
            })
        })
        .collect()
}

pub async fn visit(
    State(state): State<AppState>,
    member: Member,
    Path(plan_id): Path<String>,
    body: Bytes,
) -> Response {
    answer(
        async {
            let fields = super::Fields::parse(&body);
            let one = |name: &str| fields.one(name);
            member.check_csrf(&one("csrf")).or_page(&member)?;
            let request_id = super::form_request_id(&one("request_id")).or_page(&member)?;
            let bad = |text: String| (PageError::BadInput(text), Some(member.clone()));
            let number: i32 = one("number")
                .parse()
                .map_err(|_| bad("number: the visit's number".to_owned()))?;
            let income = jiuzhu_proto::money::parse_yuan(&one("income_per_head"))
                .map_err(|reason| bad(format!("income_per_head: {reason}")))?;
            let mut scales = ScaleAnswers::default();
            for (id, n, min, max) in SCALES {
                let given = answers(&fields, id, n, min, max).map_err(bad)?;
                match id {
                    "phq9" => scales.phq9 = given,
                    "gad7" => scales.gad7 = given,
                    _ => scales.k10 = given,
                }
            }
            let employment = Employment::from_str_name(&format!(
                "EMPLOYMENT_{}",
                one("employment").to_uppercase()
            ))
            .ok_or_else(|| bad("employment: choose one".to_owned()))?;
            let burden =
                Level::from_str_name(&format!("LEVEL_{}", one("medical_burden").to_uppercase()))
                    .ok_or_else(|| bad("medical_burden: choose one".to_owned()))?;
            let channel =
                Channel::from_str_name(&format!("CHANNEL_{}", one("channel").to_uppercase()))
                    .ok_or_else(|| bad("channel: choose one".to_owned()))?;
            let children: i32 = one("children_out_of_school")
                .trim()
                .parse()
                .ok()
                .filter(|n| (0..=20).contains(n))
                .ok_or_else(|| bad("children_out_of_school: a number from 0 to 20".to_owned()))?;
            member
                .acting(&state)
                .followup()
                .record_visit(RecordVisitRequest {
                    request_id,
                    plan_id: plan_id.clone(),
                    number,
                    visited_on: one("visited_on"),
                    visited_by: member.staff().staff_no.clone(),
                    channel: channel.into(),
                    evaluation: Some(Evaluation {
                        income_per_head: Some(Money { fen: income }),
                        employment: employment.into(),
                        medical_burden: burden.into(),
                        housing_safe: one("housing_safe") == "yes",
                        children_out_of_school: children,
                        scales: Some(scales),
                        measures: Vec::new(),
                        notes: one("notes"),
                    }),
                })
                .await
                .or_page(&member)?;
            Ok(see_other(&format!("/followup/{plan_id}?done=visit")))
        }
        .await,
    )
}
