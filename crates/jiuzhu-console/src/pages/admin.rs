//! The staff directory, for administrators: members with their office, role and tier, adding
//! one (the second-factor secret is shown once), turning access off and on, and the audit of
//! every change.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use crate::staff::{AuditEntry, NewStaff, StaffMember};
use crate::web::{
    AppState, Frame, Member, Notice, OrPage, PageError, PageResult, Refusal, answer, render,
    see_other,
};

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    f: Frame,
    members: Vec<StaffMember>,
    audit: Vec<AuditEntry>,
    roles: Vec<&'static str>,
    tiers: Vec<String>,
    new_secret: Option<(String, String)>,
}

fn administrator(member: &Member) -> Result<(), Refusal> {
    if member.staff().administrator {
        Ok(())
    } else {
        Err((
            PageError::Forbidden(member.language().t("admin.only").to_owned()),
            Some(member.clone()),
        )
            .into())
    }
}

async fn page(
    state: &AppState,
    member: &Member,
    notice: Option<Notice>,
    new_secret: Option<(String, String)>,
) -> PageResult {
    let members = crate::staff::list(&state.pool).await.or_page(member)?;
    let audit = crate::staff::audit_log(&state.pool, 50)
        .await
        .or_page(member)?;
    let tiers = state
        .policy
        .relief(state.clock.today())
        .map(|p| {
            let mut tiers: Vec<String> = p
                .approval_tiers
                .iter()
                .map(|t| t.approver.clone())
                .collect();
            if !tiers.contains(&p.exceptional_approver) {
                tiers.push(p.exceptional_approver.clone());
            }
            tiers
        })
        .unwrap_or_default();
    Ok(render(&AdminPage {
        f: Frame::for_member(member, "menu.staff").with_notice(notice),
        members,
        audit,
        roles: vec![
            "relief_prosecutor",
            "case_prosecutor",
            "approver",
            "finance_officer",
            "followup_officer",
            "auditor",
        ],
        tiers,
        new_secret,
    }))
}

pub async fn show(State(state): State<AppState>, member: Member) -> Response {
    answer(
        async {
            administrator(&member)?;
            page(&state, &member, None, None).await
        }
        .await,
    )
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    csrf: String,
    staff_no: String,
    display_name: String,
    office: String,
    role: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    administrator: String,
    password: String,
}

pub async fn add(
    State(state): State<AppState>,
    member: Member,
    Form(form): Form<AddForm>,
) -> Response {
    answer(
        async {
            administrator(&member)?;
            member.check_csrf(&form.csrf).or_page(&member)?;
            let new = NewStaff {
                staff_no: form.staff_no.clone(),
                display_name: form.display_name,
                office: form.office,
                role: form.role,
                tier: form.tier,
                administrator: form.administrator == "yes",
                password: form.password,
            };
            let secret = crate::staff::add(
                &state.pool,
                &member.staff().staff_no,
                &new,
                state.clock.now(),
            )
            .await
            .or_page(&member)?;
            let notice = Notice {
                ok: true,
                text: member.language().t("done.added").to_owned(),
            };
            page(
                &state,
                &member,
                Some(notice),
                Some((form.staff_no.trim().to_owned(), secret)),
            )
            .await
        }
        .await,
    )
}

#[derive(Debug, Deserialize)]
pub struct ActiveForm {
    csrf: String,
    active: String,
}

pub async fn set_active(
    State(state): State<AppState>,
    member: Member,
    Path(staff_no): Path<String>,
    Form(form): Form<ActiveForm>,
) -> Response {
    answer(
        async {
            administrator(&member)?;
            member.check_csrf(&form.csrf).or_page(&member)?;
            if staff_no == member.staff().staff_no {
                return Err((
                    PageError::Conflict(member.language().t("admin.not_yourself").to_owned()),
                    Some(member.clone()),
                )
                    .into());
            }
            crate::staff::set_active(
                &state.pool,
                &member.staff().staff_no,
                &staff_no,
                form.active == "yes",
                state.clock.now(),
            )
            .await
            .or_page(&member)?;
            Ok(see_other("/admin/staff"))
        }
        .await,
    )
}
