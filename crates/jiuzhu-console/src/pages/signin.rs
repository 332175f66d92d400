//! Signing in (staff number, password, the authenticator's code), signing out, and the language.

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::net::SocketAddr;

use crate::i18n::Language;
use crate::staff::{Lockout, StaffError};
use crate::web::{AppState, Frame, Member, PageError, render, see_other, visitor_language};

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    f: Frame,
    staff_no: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

pub async fn form(
    member: Option<Member>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    if member.is_some() {
        return Redirect::to("/").into_response();
    }
    let l = visitor_language(&headers, query.lang.as_deref());
    render(&SignInPage {
        f: Frame::for_visitor(l, "signin.title"),
        staff_no: String::new(),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    staff_no: String,
    password: String,
    code: String,
    #[serde(default)]
    lang: String,
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<SignInForm>,
) -> Response {
    let l = Language::from_code(&form.lang);
    let refuse = |status: StatusCode, error: String| {
        (
            status,
            render(&SignInPage {
                f: Frame::for_visitor(l, "signin.title"),
                staff_no: form.staff_no.clone(),
                error: Some(error),
            }),
        )
            .into_response()
    };
    let ip = peer.ip();
    if state.signins.check_key(&ip).is_err() {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            l.t("signin.too_many").to_owned(),
        );
    }
    let lockout = Lockout {
        max_failures: state.settings.max_failed_signins,
        minutes: state.settings.lockout_minutes,
    };
    let now = state.clock.now();
    match crate::staff::sign_in(
        &state.pool,
        &form.staff_no,
        &form.password,
        &form.code,
        now,
        lockout,
    )
    .await
    {
        Ok(staff) => match crate::sessions::open(&state.pool, &staff, l, now).await {
            Ok(token) => {
                tracing::info!(staff_no = %staff.staff_no, "signed in");
                (
                    StatusCode::SEE_OTHER,
                    [
                        (header::SET_COOKIE, state.session_cookie(&token)),
                        (header::LOCATION, "/".to_owned()),
                    ],
                )
                    .into_response()
            }
            Err(error) => PageError::from(error).page(None),
        },
        Err(StaffError::Refused) => {
            tracing::info!("a sign-in was refused");
            refuse(StatusCode::UNAUTHORIZED, l.t("signin.refused").to_owned())
        }
        Err(StaffError::Locked(until)) => refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{} {until} (UTC)", l.t("signin.locked")),
        ),
        Err(error) => PageError::from(error).page(None),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn signout(
    State(state): State<AppState>,
    member: Member,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(error) = member.check_csrf(&form.csrf) {
        return error.page(Some(&member));
    }
    if let Err(error) = crate::sessions::close(&state.pool, &member.token).await {
        return PageError::from(error).page(Some(&member));
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, state.expired_cookie()),
            (header::LOCATION, "/signin".to_owned()),
        ],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LanguageForm {
    csrf: String,
    language: String,
    back: String,
}

pub async fn language(
    State(state): State<AppState>,
    member: Member,
    Form(form): Form<LanguageForm>,
) -> Response {
    if let Err(error) = member.check_csrf(&form.csrf) {
        return error.page(Some(&member));
    }
    let language = Language::from_code(&form.language);
    if let Err(error) = crate::sessions::set_language(&state.pool, &member.token, language).await {
        return PageError::from(error).page(Some(&member));
    }
    // Only back to a page of this console.
    let back = if form.back.starts_with('/') && !form.back.starts_with("//") {
        form.back.as_str()
    } else {
        "/"
    };
    see_other(back)
}
