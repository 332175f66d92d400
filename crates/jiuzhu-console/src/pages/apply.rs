//! The victims' application page, for phones first and in plain words: a one-time code to the
//! applicant's phone, then the facts of the application and the materials as photos or files
//! (each kept by its SHA-256 and registered as a material), and in return an application
//! number and a check code with which the applicant later sees the stage and what is still
//! missing. Nothing personal travels in a URL (every form is POST), codes and numbers are kept
//! only as hashes, and each address is limited in how often it may ask.
//!
//! The console files the application as its online intake (`[console] intake_staff_no`), a
//! relief prosecutor of the county the applicant names: the services judge, record and audit
//! it as such.

use std::net::SocketAddr;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiuzhu_access::Role;
use jiuzhu_proto::decisions::{
    CaseOrigin, GetCaseRequest, OpenCaseRequest, RegisterMaterialRequest, Stage,
};
use jiuzhu_proto::registry::SearchPersonsRequest;
use jiuzhu_proto::registry::search_persons_request::Query;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Fields;
use crate::i18n::Language;
use crate::staff::StaffMember;
use crate::web::{AppState, Frame, PageError, render, visitor_language};

/// How long a phone code counts, and how many tries it allows.
const CODE_MINUTES: i64 = 10;
const CODE_TRIES: i32 = 5;
/// Wrong check codes before an application number stops answering.
const CHECK_TRIES: i32 = 10;

fn random_from(alphabet: &[u8], n: usize) -> Result<String, PageError> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PageError::Internal("the random source failed".to_owned()))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect())
}

fn digest(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update(b"\n");
    }
    hasher.finalize().to_vec()
}

/// The online intake as a member: a relief prosecutor of `region_code`.
fn intake(state: &AppState, region_code: &str) -> StaffMember {
    StaffMember {
        staff_no: state.settings.intake_staff_no.clone(),
        display_name: "online intake".to_owned(),
        office: region_code.to_owned(),
        role: Role::ReliefProsecutor,
        tier: None,
        administrator: false,
        active: true,
    }
}

/// A material the applicant may upload.
#[derive(Debug, Clone)]
pub struct MaterialChoice {
    pub id: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "apply.html")]
struct ApplyPage {
    f: Frame,
    /// 1: the phone; 2: the application.
    step: u8,
    phone: String,
    phone_masked: String,
    categories: Vec<(String, String)>,
    materials: Vec<MaterialChoice>,
    request_id: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "applied.html")]
struct AppliedPage {
    f: Frame,
    application_no: String,
    check_code: String,
    missing: Vec<String>,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    f: Frame,
    application_no: String,
    stage: String,
    missing: Vec<String>,
    error: Option<String>,
    asked: bool,
}

fn choices(state: &AppState, l: Language) -> (Vec<(String, String)>, Vec<MaterialChoice>) {
    let Some(policy) = state.policy.relief(state.clock.today()) else {
        return (Vec::new(), Vec::new());
    };
    let categories = policy
        .categories
        .iter()
        .map(|c| (c.id.clone(), l.t(&format!("category.{}", c.id)).to_owned()))
        .collect();
    let materials = policy
        .materials
        .keys()
        .map(|id| MaterialChoice {
            id: id.clone(),
            text: l.t(&format!("material.{id}")).to_owned(),
        })
        .collect();
    (categories, materials)
}

fn apply_page(
    state: &AppState,
    l: Language,
    step: u8,
    phone: &str,
    error: Option<String>,
) -> Response {
    let (categories, materials) = choices(state, l);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (
        status,
        render(&ApplyPage {
            f: Frame::for_visitor(l, "apply.title"),
            step,
            phone: phone.to_owned(),
            phone_masked: crate::sms::masked(phone),
            categories,
            materials,
            request_id: super::request_id(),
            error,
        }),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LangQuery>,
) -> Response {
    apply_page(
        &state,
        visitor_language(&headers, query.lang.as_deref()),
        1,
        "",
        None,
    )
}

#[derive(Debug, Deserialize)]
pub struct PhoneForm {
    phone: String,
    #[serde(default)]
    lang: String,
}

fn phone_ok(phone: &str) -> bool {
    phone.len() == 11 && phone.starts_with('1') && phone.bytes().all(|b| b.is_ascii_digit())
}

/// Sends a one-time code to the phone, at most once a minute per number.
pub async fn send_code(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<PhoneForm>,
) -> Response {
    let l = Language::from_code(&form.lang);
    let phone: String = form.phone.chars().filter(char::is_ascii_digit).collect();
    if !phone_ok(&phone) {
        return apply_page(&state, l, 1, "", Some(l.t("apply.bad_phone").to_owned()));
    }
    if state.public.check_key(&peer.ip()).is_err() {
        return apply_page(&state, l, 1, "", Some(l.t("apply.too_many").to_owned()));
    }
    let now = state.clock.now();
    let sent = async {
        let code = random_from(b"0123456789", 6)?;
        let phone_hash = crate::sms::phone_digest(&phone);
        let recent: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT sent_at FROM phone_codes WHERE phone_sha256 = $1")
                .bind(&phone_hash)
                .fetch_optional(&state.pool)
                .await?;
        if recent.is_some_and(|at| now - at < chrono::Duration::seconds(60)) {
            // One code a minute: the one sent stands.
            return Ok::<bool, PageError>(false);
        }
        sqlx::query(
            "INSERT INTO phone_codes (phone_sha256, code_sha256, sent_at, attempts) VALUES ($1, $2, $3, 0)
             ON CONFLICT (phone_sha256) DO UPDATE SET code_sha256 = $2, sent_at = $3, attempts = 0",
        )
        .bind(&phone_hash)
        .bind(digest(&[&phone_hash, code.as_bytes()]))
        .bind(now)
        .execute(&state.pool)
        .await?;
        state
            .sms
            .send(&phone, &format!("【九助】您的验证码是 {code}，{CODE_MINUTES} 分钟内有效。"), now)
            .await
            .map_err(|error| PageError::Unavailable(error.to_string()))?;
        Ok(true)
    }
    .await;
    match sent {
        Ok(_) => apply_page(&state, l, 2, &phone, None),
        Err(error) => error.page(None),
    }
}

/// Whether `code` is the phone's live code; each try counts.
async fn code_matches(state: &AppState, phone: &str, code: &str) -> Result<bool, PageError> {
    let phone_hash = crate::sms::phone_digest(phone);
    let row: Option<(Vec<u8>, chrono::DateTime<chrono::Utc>, i32)> = sqlx::query_as(
        "UPDATE phone_codes SET attempts = attempts + 1 WHERE phone_sha256 = $1
         RETURNING code_sha256, sent_at, attempts",
    )
    .bind(&phone_hash)
    .fetch_optional(&state.pool)
    .await?;
    let Some((expected, sent_at, attempts)) = row else {
        return Ok(false);
    };
    let fresh = state.clock.now() - sent_at < chrono::Duration::minutes(CODE_MINUTES);
    let same = digest(&[&phone_hash, code.trim().as_bytes()]) == expected;
    if same && fresh && attempts <= CODE_TRIES {
        // Used: a code opens one application.
        sqlx::query("DELETE FROM phone_codes WHERE phone_sha256 = $1")
            .bind(&phone_hash)
            .execute(&state.pool)
            .await?;
        return Ok(true);
    }
    Ok(false)
}

/// What the applicant sent: the fields, and the files by material.
struct Application {
    fields: Fields,
    files: Vec<(String, Vec<u8>)>,
}

impl Application {
    fn one(&self, name: &str) -> String {
        self.fields.trimmed(name)
    }

    async fn read(mut multipart: Multipart, max_bytes: usize) -> Result<Self, String> {
        let mut fields = Vec::new();
        let mut files = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|error| format!("the form: {error}"))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if let Some(material) = name.strip_prefix("file_") {
                let material = material.to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|error| format!("{name}: {error}"))?;
                if bytes.len() > max_bytes {
                    return Err(format!("{name}: larger than {max_bytes} bytes"));
                }
                if !bytes.is_empty() {
                    files.push((material, bytes.to_vec()));
                }
            } else {
                let text = field
                    .text()
                    .await
                    .map_err(|error| format!("{name}: {error}"))?;
                fields.push((name, text));
            }
        }
        Ok(Self {
            fields: Fields(fields),
            files,
        })
    }
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    multipart: Multipart,
) -> Response {
    let application = match Application::read(multipart, state.settings.max_upload_bytes).await {
        Ok(application) => application,
        Err(reason) => return PageError::BadInput(reason).page(None),
    };
    let l = Language::from_code(&application.one("lang"));
    let phone = application.one("phone");
    let again = |error: String| apply_page(&state, l, 2, &phone, Some(error));
    if state.public.check_key(&peer.ip()).is_err() {
        return again(l.t("apply.too_many").to_owned());
    }
    match file(&state, l, &phone, &application).await {
        Ok(page) => page,
        Err(Failure::Form(error)) => again(error),
        Err(Failure::Page(error)) => error.page(None),
    }
}

enum Failure {
    /// Shown on the form, which keeps the phone step done.
    Form(String),
    Page(PageError),
}

impl From<PageError> for Failure {
    fn from(error: PageError) -> Self {
        Failure::Page(error)
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::AlreadyExists => Failure::Form(status.message().to_owned()),
            _ => Failure::Page(PageError::from(status)),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Page(PageError::from(error))
    }
}

async fn file(
    state: &AppState,
    l: Language,
    phone: &str,
    a: &Application,
) -> Result<Response, Failure> {
    let field = |name: &str, key: &str| {
        Failure::Form(format!("{}: {}", l.t(&format!("apply.{name}")), l.t(key)))
    };
    if !phone_ok(phone) || !code_matches(state, phone, &a.one("code")).await? {
        return Err(field("code", "apply.bad_code"));
    }
    let request_id = super::form_request_id(&a.one("request_id")).map_err(Failure::Page)?;
    let full_name = a.one("full_name");
    if full_name.is_empty() || full_name.chars().count() > 32 {
        return Err(field("full_name", "apply.required"));
    }
    let resident_id = jiuzhu_identity::ResidentId::parse(&a.one("resident_id"))
        .map_err(|error| Failure::Form(format!("{}: {error}", l.t("apply.resident_id"))))?;
    let region_code = a.one("region_code");
    if jiuzhu_identity::lookup_region(&region_code).is_none() {
        return Err(field("region_code", "apply.bad_region"));
    }
    let case_no = a.one("case_no");
    if case_no.is_empty() {
        return Err(field("case_no", "apply.required"));
    }
    let procuratorate = a.one("procuratorate");
    if procuratorate.is_empty() {
        return Err(field("procuratorate", "apply.required"));
    }
    let acting = state.platform.as_member(&intake(state, &region_code));
    // The applicant must be in the register the departments keep.
    let found = acting
        .registry()
        .search_persons(SearchPersonsRequest {
            query: Some(Query::ResidentId(resident_id.as_str().to_owned())),
            page_size: 5,
            purpose: "online application for judicial relief".to_owned(),
            ..SearchPersonsRequest::default()
        })
        .await?
        .into_inner()
        .persons;
    let Some(person) = found.into_iter().find(|p| p.full_name == full_name) else {
        return Err(Failure::Form(l.t("apply.not_registered").to_owned()));
    };
    let opened = acting
        .decisions()
        .open_case(OpenCaseRequest {
            request_id: format!("{request_id}-open"),
            origin: CaseOrigin::Application.into(),
            person_id: person.person_id.clone(),
            case_no,
            procuratorate,
            region_code: region_code.clone(),
            category: a.one("category"),
            applicant_relation: a.one("relation"),
            ..OpenCaseRequest::default()
        })
        .await?
        .into_inner();
    let mut missing = opened.missing_materials.clone();
    for (material, bytes) in &a.files {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let dir = &state.settings.upload_dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|error| PageError::Internal(format!("the upload directory: {error}")))?;
        tokio::fs::write(dir.join(&sha256), bytes)
            .await
            .map_err(|error| PageError::Internal(format!("keeping the upload: {error}")))?;
        missing = acting
            .decisions()
            .register_material(RegisterMaterialRequest {
                request_id: format!("{request_id}-m-{material}"),
                case_id: opened.case_id.clone(),
                material: material.clone(),
                file_id: format!("console-upload-{sha256}"),
                sha256,
                centre: "online application".to_owned(),
                received_by: state.settings.intake_staff_no.clone(),
            })
            .await?
            .into_inner()
            .missing_materials;
    }
    let application_no = format!("SQ{}", random_from(b"0123456789", 12)?);
    let check_code = random_from(b"23456789ABCDEFGHJKMNPQRSTUVWXYZ", 8)?;
    let inserted = sqlx::query(
        "INSERT INTO applications (application_no, case_id, region_code, check_code_sha256, request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(&application_no)
    .bind(&opened.case_id)
    .bind(&region_code)
    .bind(digest(&[application_no.as_bytes(), check_code.as_bytes()]))
    .bind(&request_id)
    .bind(state.clock.now())
    .execute(&state.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Failure::Form(l.t("apply.already").to_owned()));
    }
    tracing::info!(case_id = %opened.case_id, "online application filed");
    Ok(render(&AppliedPage {
        f: Frame::for_visitor(l, "apply.received"),
        application_no,
        check_code,
        missing: missing
            .iter()
            .map(|m| l.t(&format!("material.{m}")).to_owned())
            .collect(),
    }))
}

pub async fn status_form(
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<LangQuery>,
) -> Response {
    let l = visitor_language(&headers, query.lang.as_deref());
    render(&StatusPage {
        f: Frame::for_visitor(l, "status.title"),
        application_no: String::new(),
        stage: String::new(),
        missing: Vec::new(),
        error: None,
        asked: false,
    })
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    application_no: String,
    check_code: String,
    #[serde(default)]
    lang: String,
}

pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<StatusForm>,
) -> Response {
    let l = Language::from_code(&form.lang);
    let application_no = form.application_no.trim().to_ascii_uppercase();
    let page = |error: Option<String>, stage: String, missing: Vec<String>| {
        render(&StatusPage {
            f: Frame::for_visitor(l, "status.title"),
            application_no: application_no.clone(),
            stage,
            missing,
            asked: error.is_none(),
            error,
        })
    };
    if state.public.check_key(&peer.ip()).is_err() {
        return page(
            Some(l.t("apply.too_many").to_owned()),
            String::new(),
            Vec::new(),
        );
    }
    let looked = async {
        let row: Option<(String, String, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT case_id, region_code, check_code_sha256, failed_checks FROM applications WHERE application_no = $1",
        )
        .bind(&application_no)
        .fetch_optional(&state.pool)
        .await?;
        let code = form.check_code.trim().to_ascii_uppercase();
        let Some((case_id, region_code, expected, failures)) = row else {
            return Ok::<_, PageError>(None);
        };
        if failures >= CHECK_TRIES || digest(&[application_no.as_bytes(), code.as_bytes()]) != expected {
            sqlx::query("UPDATE applications SET failed_checks = failed_checks + 1 WHERE application_no = $1")
                .bind(&application_no)
                .execute(&state.pool)
                .await?;
            return Ok(None);
        }
        let case = state
            .platform
            .as_member(&intake(&state, &region_code))
            .decisions()
            .get_case(GetCaseRequest {
                case_id,
                purpose: "the applicant checks the application".to_owned(),
            })
            .await?
            .into_inner()
            .relief_case;
        Ok(case)
    }
    .await;
    match looked {
        Ok(Some(case)) => {
            let stage = Stage::try_from(case.stage).unwrap_or(Stage::Unspecified);
            page(
                None,
                l.t(&format!(
                    "stage.{}",
                    jiuzhu_policy::relief::stage_name(stage)
                ))
                .to_owned(),
                case.missing_materials
                    .iter()
                    .map(|m| l.t(&format!("material.{m}")).to_owned())
                    .collect(),
            )
        }
        Ok(None) => page(
            Some(l.t("status.not_found").to_owned()),
            String::new(),
            Vec::new(),
        ),
        Err(error) => error.page(None),
    }
}
