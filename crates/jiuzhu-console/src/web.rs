//! The web shell: routes, the signed-in member of a request, the security headers every answer
//! carries, CSRF checks on every form, and errors shown as pages.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiuzhu_clock::Clock;
use sqlx::PgPool;

use crate::i18n::Language;
use crate::platform::{Acting, Platform};
use crate::policy::Policy;
use crate::sessions::Session;
use crate::settings::ConsoleSettings;
use crate::staff::StaffMember;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub platform: Platform,
    pub settings: Arc<ConsoleSettings>,
    pub clock: Clock,
    pub policy: Arc<Policy>,
    pub signins: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// The public pages' limit per address (phone codes, applications, status).
    pub public: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    pub sms: Arc<dyn crate::sms::SmsGateway>,
}

impl AppState {
    pub fn new(
        pool: PgPool,
        platform: Platform,
        settings: ConsoleSettings,
        clock: Clock,
        policy: Policy,
    ) -> Self {
        let quota = Quota::per_minute(
            NonZeroU32::new(settings.signins_per_minute).unwrap_or(NonZeroU32::MIN),
        );
        let public = Quota::per_minute(
            NonZeroU32::new(settings.public_requests_per_minute).unwrap_or(NonZeroU32::MIN),
        );
        Self {
            sms: Arc::new(crate::sms::SimulatedSms { pool: pool.clone() }),
            public: Arc::new(RateLimiter::keyed(public)),
            pool,
            platform,
            settings: Arc::new(settings),
            clock,
            policy: Arc::new(policy),
            signins: Arc::new(RateLimiter::keyed(quota)),
        }
    }

    /// The session cookie's name: `__Host-` binds it to this host over HTTPS.
    pub fn cookie_name(&self) -> &'static str {
        if self.settings.secure_cookies {
            "__Host-jiuzhu"
        } else {
            "jiuzhu"
        }
    }

    pub fn session_cookie(&self, token: &str) -> String {
        let secure = if self.settings.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}",
            self.cookie_name()
        )
    }

    pub fn expired_cookie(&self) -> String {
        format!("{}; Max-Age=0", self.session_cookie(""))
    }
}

/// What a page may load: only this origin's scripts, styles and images; no inline script, no
/// framing, forms only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn secure_headers(request: axum::extract::Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !is_asset {
        // Pages show personal data: never kept by the browser or a proxy.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A form posted from another site is refused before it reaches a handler (the session
/// cookie is `SameSite=Strict` too, and every signed-in form carries its session's token).
pub async fn same_origin_posts(request: axum::extract::Request, next: Next) -> Response {
    if request.method() == http::Method::POST {
        let headers = request.headers();
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        let fetch_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
        // Browsers say where a request comes from in Sec-Fetch-Site; older ones only in Origin.
        let cross_origin = match fetch_site {
            Some(site) => site != "same-origin" && site != "none",
            None => match (origin, host) {
                (Some("null"), _) => true,
                (Some(origin), Some(host)) => origin
                    .split_once("://")
                    .is_none_or(|(_, rest)| rest != host),
                _ => false,
            },
        };
        if cross_origin {
            return (
                StatusCode::FORBIDDEN,
                "a form from another site was refused",
            )
                .into_response();
        }
    }
    next.run(request).await
}

pub async fn not_found(member: Option<Member>) -> Response {
    PageError::NotFound("no such page".to_owned()).page(member.as_ref())
}

/// The cookie's value, if the request has one.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// The language of a visitor who has not signed in: `?lang=`, else the browser's first choice.
pub fn visitor_language(headers: &HeaderMap, asked: Option<&str>) -> Language {
    if let Some(asked) = asked {
        return Language::from_code(asked);
    }
    let first = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split([',', ';']).next())
        .unwrap_or("zh-CN");
    if first.trim().to_ascii_lowercase().starts_with("en") {
        Language::English
    } else {
        Language::Chinese
    }
}

/// The signed-in member of a request. A page that needs one sends everyone else to sign in.
#[derive(Debug, Clone)]
pub struct Member {
    pub session: Session,
    pub token: String,
}

impl Member {
    pub fn staff(&self) -> &StaffMember {
        &self.session.staff
    }

    pub fn language(&self) -> Language {
        self.session.language
    }

    pub fn acting(&self, state: &AppState) -> Acting {
        state.platform.as_member(self.staff())
    }

    /// Refused unless the form carries this session's token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        // Constant time: the comparison must not tell how much of the token was right.
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(self.session.csrf.as_bytes(), sent.as_bytes()).into();
        if same {
            Ok(())
        } else {
            Err(PageError::Forbidden(
                "the form is stale or not from this console: reload the page and try again"
                    .to_owned(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Member {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_signin = || Redirect::to("/signin").into_response();
        let Some(token) = cookie(&parts.headers, state.cookie_name()) else {
            return Err(to_signin());
        };
        let found = crate::sessions::find(
            &state.pool,
            &token,
            state.clock.now(),
            state.settings.idle_timeout_minutes,
        )
        .await;
        match found {
            Ok(Some(session)) => Ok(Member { session, token }),
            Ok(None) => Err(to_signin()),
            Err(error) => Err(PageError::from(error).page(None)),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Member {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Member as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// What every page's frame shows: the language, the member and their menu, the form token.
#[derive(Debug, Clone)]
pub struct Frame {
    pub l: Language,
    pub member: Option<StaffMember>,
    pub csrf: String,
    /// The page's heading (already in the page's language).
    pub title: String,
    /// A message after a form: what was done, or what went wrong.
    pub notice: Option<Notice>,
}

#[derive(Debug, Clone)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

/// One menu entry: where, the text key, and whether it is the current page.
#[derive(Debug, Clone)]
pub struct MenuEntry {
    pub href: &'static str,
    pub key: &'static str,
    pub current: bool,
}

impl Frame {
    pub fn for_member(member: &Member, title_key: &str) -> Self {
        Self {
            l: member.language(),
            member: Some(member.staff().clone()),
            csrf: member.session.csrf.clone(),
            title: member.language().t(title_key).to_owned(),
            notice: None,
        }
    }

    pub fn for_visitor(l: Language, title_key: &str) -> Self {
        Self {
            l,
            member: None,
            csrf: String::new(),
            title: l.t(title_key).to_owned(),
            notice: None,
        }
    }

    pub fn with_notice(mut self, notice: Option<Notice>) -> Self {
        self.notice = notice;
        self
    }

    /// The member's menu: only the pages their role works in.
    pub fn menu(&self) -> Vec<MenuEntry> {
        let Some(member) = &self.member else {
            return Vec::new();
        };
        use jiuzhu_access::Role::*;
        let mut entries: Vec<(&'static str, &'static str)> = vec![("/", "menu.home")];
        match member.role {
            ReliefProsecutor | CaseProsecutor => {
                entries.extend([("/clues", "menu.clues"), ("/cases", "menu.cases")]);
            }
            Approver => entries.push(("/cases", "menu.cases")),
            FinanceOfficer => entries.push(("/finance", "menu.finance")),
            FollowupOfficer => entries.push(("/followup", "menu.followup")),
            Auditor => entries.extend([("/cases", "menu.cases"), ("/finance", "menu.finance")]),
            _ => {}
        }
        if member.administrator {
            entries.push(("/admin/staff", "menu.staff"));
        }
        entries
            .into_iter()
            .map(|(href, key)| MenuEntry {
                href,
                key,
                current: self.title == self.l.t(key),
            })
            .collect()
    }

    pub fn role_text(&self) -> String {
        match &self.member {
            Some(member) => {
                let role = self.l.t(&format!("role.{}", member.role));
                match &member.tier {
                    Some(tier) => format!("{role} · {}", self.l.t(&format!("tier.{tier}"))),
                    None => role.to_owned(),
                }
            }
            None => String::new(),
        }
    }
}

/// Renders a template as a page.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

/// Why a page could not do what was asked, shown as a page with the right status.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => PageError::NotFound(message),
            Code::PermissionDenied | Code::Unauthenticated => PageError::Forbidden(message),
            Code::InvalidArgument | Code::OutOfRange => PageError::BadInput(message),
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                PageError::Conflict(message)
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                PageError::Unavailable(message)
            }
            _ => PageError::Internal(message),
        }
    }
}

impl From<sqlx::Error> for PageError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "console database");
        PageError::Unavailable("the console's database is unavailable".to_owned())
    }
}

impl From<crate::staff::StaffError> for PageError {
    fn from(error: crate::staff::StaffError) -> Self {
        use crate::staff::StaffError;
        match error {
            StaffError::Invalid { .. } => PageError::BadInput(error.to_string()),
            StaffError::Exists(_) => PageError::Conflict(error.to_string()),
            StaffError::NotFound(_) => PageError::NotFound(error.to_string()),
            StaffError::Refused | StaffError::Locked(_) => PageError::Forbidden(error.to_string()),
            StaffError::Database(error) => PageError::from(error),
            StaffError::Hashing(_) => PageError::Internal(error.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    f: Frame,
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::BadInput(_) => StatusCode::BAD_REQUEST,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn heading_key(&self) -> &'static str {
        match self {
            PageError::NotFound(_) => "error.not_found",
            PageError::Forbidden(_) => "error.forbidden",
            PageError::BadInput(_) => "error.bad_input",
            PageError::Conflict(_) => "error.conflict",
            PageError::Unavailable(_) => "error.unavailable",
            PageError::Internal(_) => "error.internal",
        }
    }

    /// The error as a page in the member's language.
    pub fn page(&self, member: Option<&Member>) -> Response {
        let f = match member {
            Some(member) => Frame::for_member(member, self.heading_key()),
            None => Frame::for_visitor(Language::default(), self.heading_key()),
        };
        let heading = f.l.t(self.heading_key());
        let message = self.to_string();
        let page = ErrorPage {
            status: self.status().as_u16(),
            heading,
            message: &message,
            f,
        };
        (self.status(), render(&page)).into_response()
    }
}

/// Why a handler could not serve, and the member to show it to (boxed: an error travels far
/// less often than a page).
#[derive(Debug)]
pub struct Refusal(Box<(PageError, Option<Member>)>);

impl From<(PageError, Option<Member>)> for Refusal {
    fn from(refused: (PageError, Option<Member>)) -> Self {
        Refusal(Box::new(refused))
    }
}

/// A handler's answer: a page, or an error page for the member.
pub type PageResult = Result<Response, Refusal>;

pub trait OrPage<T> {
    /// The error, shown to `member`.
    fn or_page(self, member: &Member) -> Result<T, Refusal>;
}

impl<T, E: Into<PageError>> OrPage<T> for Result<T, E> {
    fn or_page(self, member: &Member) -> Result<T, Refusal> {
        self.map_err(|error| Refusal::from((error.into(), Some(member.clone()))))
    }
}

/// Shows a handler's error.
pub fn answer(result: PageResult) -> Response {
    result.unwrap_or_else(|Refusal(refused)| {
        let (error, member) = *refused;
        error.page(member.as_ref())
    })
}

/// Back to `to` after a form, with what happened in the query (`?done=key` or `?failed=…`).
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}
