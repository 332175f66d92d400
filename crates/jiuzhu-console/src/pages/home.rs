//! The start page: who is signed in, and for those who see cases the office's cases by stage
//! (open and overdue) as a chart.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use jiuzhu_access::Role;
use jiuzhu_proto::decisions::{GetStageStatisticsRequest, Stage};

use crate::web::{AppState, Frame, Member, OrPage, PageResult, answer, render};

/// One bar of a chart: its label, value, and length in the SVG's units.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: i64,
    pub overdue: i64,
    pub width: i64,
    pub overdue_width: i64,
    pub y: i64,
}

/// Bars scaled to `span` units for the largest value.
pub fn bars(rows: Vec<(String, i64, i64)>, span: i64) -> Vec<Bar> {
    let largest = rows.iter().map(|(_, v, _)| *v).max().unwrap_or(0).max(1);
    rows.into_iter()
        .enumerate()
        .map(|(i, (label, value, overdue))| Bar {
            label,
            width: value * span / largest,
            overdue_width: overdue * span / largest,
            value,
            overdue,
            y: i64::try_from(i).unwrap_or_default() * 28,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    f: Frame,
    stages: Vec<Bar>,
    chart_height: i64,
}

pub async fn show(State(state): State<AppState>, member: Member) -> Response {
    answer(home(state, member).await)
}

async fn home(state: AppState, member: Member) -> PageResult {
    let f = Frame::for_member(&member, "menu.home");
    let sees_stages = matches!(
        member.staff().role,
        Role::ReliefProsecutor | Role::Approver | Role::Auditor
    );
    let stages = if sees_stages {
        let statistics = member
            .acting(&state)
            .decisions()
            .get_stage_statistics(GetStageStatisticsRequest::default())
            .await
            .or_page(&member)?
            .into_inner();
        let rows = statistics
            .stages
            .iter()
            .filter(|s| s.open_cases > 0)
            .map(|s| {
                let stage = Stage::try_from(s.stage).unwrap_or(Stage::Unspecified);
                (
                    f.l.t(&format!(
                        "stage.{}",
                        jiuzhu_policy::relief::stage_name(stage)
                    ))
                    .to_owned(),
                    s.open_cases,
                    s.overdue_cases,
                )
            })
            .collect();
        bars(rows, 400)
    } else {
        Vec::new()
    };
    let chart_height = i64::try_from(stages.len()).unwrap_or_default() * 28 + 4;
    Ok(render(&HomePage {
        f,
        stages,
        chart_height,
    }))
}
