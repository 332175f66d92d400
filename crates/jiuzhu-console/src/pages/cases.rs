//! Cases: the office's open cases with their deadlines (overdue in red), and one case's page:
//! its stage timeline, the materials checklist with uploads, eligibility, review records, the
//! proposal, approval or rejection by the signed-in approver (the tier is theirs, never the
//! form's), referrals, and telling the applicant.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::response::Response;
use jiuzhu_access::Role;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::{
    AcceptCaseRequest, ApproveDecisionRequest, AssessEligibilityRequest, DeadlineFilter,
    GetCaseRequest, ListDeadlinesRequest, NotifyApplicantRequest, ProposeDecisionRequest,
    RecordReviewRequest, RegisterMaterialRequest, RejectDecisionRequest, ReliefCase, ReliefMethod,
    ReviewKind, Stage,
};
use jiuzhu_proto::money::yuan;
use jiuzhu_proto::payments::{AccountKind, RegisterPayeeRequest};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Fields;
use super::clues::done_notice;
use crate::web::{
    AppState, Frame, Member, OrPage, PageError, PageResult, Refusal, answer, render, see_other,
};

/// One open case in the list.
#[derive(Debug, Clone)]
pub struct DeadlineRow {
    pub case_id: String,
    pub procuratorate: String,
    pub stage: String,
    pub entered_on: String,
    pub due_date: String,
    pub days_left: i32,
    pub overdue: bool,
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    f: Frame,
    rows: Vec<DeadlineRow>,
    next_page: String,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    page: String,
    #[serde(default)]
    case_id: String,
}

fn stage_text(f: &Frame, stage: i32) -> String {
    let stage = Stage::try_from(stage).unwrap_or(Stage::Unspecified);
    f.l.t(&format!(
        "stage.{}",
        jiuzhu_policy::relief::stage_name(stage)
    ))
    .to_owned()
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<ListQuery>,
) -> Response {
    answer(list_cases(state, member, query).await)
}

async fn list_cases(state: AppState, member: Member, query: ListQuery) -> PageResult {
    let case_id = query.case_id.trim();
    if !case_id.is_empty() {
        if !case_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err((
                PageError::BadInput("case_id: letters, digits and hyphens".to_owned()),
                Some(member),
            )
                .into());
        }
        return Ok(see_other(&format!("/cases/{case_id}")));
    }
    let f = Frame::for_member(&member, "menu.cases");
    // Every open case with its current deadline, soonest first (overdue ones lead).
    let answer = member
        .acting(&state)
        .decisions()
        .list_deadlines(ListDeadlinesRequest {
            filter: DeadlineFilter::Open.into(),
            page_size: 200,
            page_token: query.page,
            ..ListDeadlinesRequest::default()
        })
        .await
        .or_page(&member)?
        .into_inner();
    let next_page = answer.next_page_token.clone();
    let rows = answer
        .deadlines
        .iter()
        .map(|d| DeadlineRow {
            case_id: d.case_id.clone(),
            procuratorate: d.procuratorate.clone(),
            stage: stage_text(&f, d.stage),
            entered_on: d.entered_on.clone(),
            due_date: d.due_date.clone(),
            days_left: d.working_days_left,
            overdue: d.working_days_left < 0,
        })
        .collect();
    Ok(render(&CasesPage { f, rows, next_page }))
}

/// One stage of the timeline.
#[derive(Debug, Clone)]
pub struct StageRow {
    pub stage: String,
    pub entered_on: String,
    pub due: String,
    pub overdue: bool,
    pub current: bool,
}

/// One material of the category's checklist.
#[derive(Debug, Clone)]
pub struct MaterialRow {
    pub id: String,
    pub description: String,
    pub missing: bool,
}

/// A fact the assessment may establish (a category's requirement or an exclusion).
#[derive(Debug, Clone)]
pub struct FactRow {
    pub id: String,
    pub description: String,
    pub exclusion: bool,
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub id: String,
    pub text: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    f: Frame,
    c: ReliefCase,
    stage: String,
    stages: Vec<StageRow>,
    materials: Vec<MaterialRow>,
    categories: Vec<Choice>,
    facts: Vec<FactRow>,
    methods: Vec<Choice>,
    eligibility: String,
    proposal: String,
    approval: String,
    referrals: Vec<String>,
    distributed: String,
    may_work: bool,
    may_assess: bool,
    category_text: String,
    may_approve: bool,
    may_accept: bool,
    may_propose: bool,
    may_notify: bool,
    awaiting_approval: bool,
    required_tier: String,
    request_id: String,
    recommendation: Option<Recommendation>,
}

/// The recommender's answer as the case page shows it.
#[derive(Debug, Clone)]
pub struct Recommendation {
    pub model_version: String,
    pub amount: String,
    pub low: String,
    pub high: String,
    pub cap: String,
    pub clamped: String,
    pub methods: Vec<(String, String)>,
    pub precedents: Vec<(String, String, String)>,
    pub factors: Vec<(String, String, bool)>,
}

pub async fn show(
    State(state): State<AppState>,
    member: Member,
    Path(case_id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let notice = done_notice(&member, &query.done);
    answer(show_case(state, member, case_id, notice, None).await)
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: String,
}

async fn read_case(
    state: &AppState,
    member: &Member,
    case_id: &str,
) -> Result<ReliefCase, Refusal> {
    member
        .acting(state)
        .decisions()
        .get_case(GetCaseRequest {
            case_id: case_id.to_owned(),
            purpose: super::PURPOSE.to_owned(),
        })
        .await
        .or_page(member)?
        .into_inner()
        .relief_case
        .ok_or_else(|| {
            Refusal::from((
                PageError::NotFound(format!("no case {case_id}")),
                Some(member.clone()),
            ))
        })
}

async fn show_case(
    state: AppState,
    member: Member,
    case_id: String,
    notice: Option<crate::web::Notice>,
    recommendation: Option<Recommendation>,
) -> PageResult {
    let c = read_case(&state, &member, &case_id).await?;
    let f = Frame::for_member(&member, "case.title").with_notice(notice);
    let today = state.clock.today().format("%Y-%m-%d").to_string();
    let policy = state.policy.relief(state.clock.today());
    let stage = Stage::try_from(c.stage).unwrap_or(Stage::Unspecified);
    let stages = c
        .stages
        .iter()
        .map(|s| {
            let current = s.stage == c.stage;
            let due = if !s.due_date.is_empty() {
                s.due_date.clone()
            } else {
                s.due_unknown.clone()
            };
            StageRow {
                stage: stage_text(&f, s.stage),
                entered_on: s.entered_on.clone(),
                overdue: current && !s.due_date.is_empty() && s.due_date < today,
                due,
                current,
            }
        })
        .collect();
    let category = policy.and_then(|p| p.category(&c.category));
    let materials = category
        .map(|category| {
            category
                .materials
                .iter()
                .map(|id| MaterialRow {
                    id: id.clone(),
                    description: f.l.t(&format!("material.{id}")).to_owned(),
                    missing: c.missing_materials.contains(id),
                })
                .collect()
        })
        .unwrap_or_default();
    let categories = policy
        .map(|p| {
            p.categories
                .iter()
                .map(|category| Choice {
                    id: category.id.clone(),
                    text: f.l.t(&format!("category.{}", category.id)).to_owned(),
                    selected: category.id == c.category,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut facts: Vec<FactRow> = Vec::new();
    if let Some(policy) = policy {
        for category in &policy.categories {
            for fact in &category.requires {
                if !facts.iter().any(|f| &f.id == fact) {
                    facts.push(FactRow {
                        id: fact.clone(),
                        description: f.l.t(&format!("fact.{fact}")).to_owned(),
                        exclusion: false,
                    });
                }
            }
        }
        for exclusion in &policy.exclusions {
            facts.push(FactRow {
                id: exclusion.id.clone(),
                description: f.l.t(&format!("exclusion.{}", exclusion.id)).to_owned(),
                exclusion: true,
            });
        }
    }
    // Every way of helping: the departments' ones are referred to them once approved.
    let methods = (1..=8)
        .filter_map(|n| ReliefMethod::try_from(n).ok())
        .map(|method| {
            let id = jiuzhu_policy::relief::method_name(method);
            Choice {
                text: f.l.t(&format!("method.{id}")).to_owned(),
                selected: method == ReliefMethod::OneTimePayment,
                id,
            }
        })
        .collect();
    let eligibility = match &c.eligibility {
        Some(e) if e.eligible => format!("{} ({})", f.l.t("case.eligible"), e.rule),
        Some(e) => format!("{}: {}", f.l.t("case.not_eligible"), e.reason),
        None => String::new(),
    };
    let money = |m: &Option<Money>| m.as_ref().map(|m| yuan(m.fen)).unwrap_or_default();
    let proposal = match &c.proposal {
        Some(p) => format!(
            "{} {} {} ({} {} {}; {} {})",
            f.l.t("case.amount"),
            money(&p.amount),
            f.l.t("unit.yuan"),
            f.l.t("case.cap"),
            money(&p.cap),
            f.l.t("unit.yuan"),
            f.l.t("case.required_approver"),
            f.l.t(&format!("tier.{}", p.required_approver)),
        ),
        None => String::new(),
    };
    let approval = match &c.approval {
        Some(a) => format!(
            "{} {} {} · {} · {}",
            f.l.t("case.amount"),
            money(&a.amount),
            f.l.t("unit.yuan"),
            f.l.t(&format!("tier.{}", a.approver_role)),
            a.approved_on
        ),
        None if !c.rejection_reason.is_empty() => {
            format!("{}: {}", f.l.t("case.rejected"), c.rejection_reason)
        }
        None => String::new(),
    };
    let referrals = c
        .referrals
        .iter()
        .map(|r| {
            format!(
                "{} · {} {}",
                r.department,
                jiuzhu_proto::decisions::ReferralStatus::try_from(r.status)
                    .map(|s| s
                        .as_str_name()
                        .trim_start_matches("REFERRAL_STATUS_")
                        .to_ascii_lowercase())
                    .unwrap_or_default(),
                r.outcome
            )
        })
        .collect();
    let role = member.staff().role;
    let may_work = role == Role::ReliefProsecutor;
    let awaiting_approval = stage == Stage::ApprovalOpinion;
    let required_tier = c
        .proposal
        .as_ref()
        .map(|p| f.l.t(&format!("tier.{}", p.required_approver)).to_owned())
        .unwrap_or_default();
    Ok(render(&CasePage {
        stage: stage_text(&f, c.stage),
        stages,
        materials,
        categories,
        facts,
        methods,
        eligibility,
        proposal,
        approval,
        referrals,
        distributed: money(&c.distributed),
        may_work,
        may_assess: may_work && matches!(stage, Stage::Informed | Stage::Applied),
        category_text: if c.category.is_empty() {
            String::new()
        } else {
            f.l.t(&format!("category.{}", c.category)).to_owned()
        },
        may_approve: role == Role::Approver && awaiting_approval,
        may_accept: may_work && stage == Stage::Applied,
        may_propose: may_work && matches!(stage, Stage::Accepted | Stage::Reviewed),
        may_notify: may_work && stage == Stage::Distributed,
        awaiting_approval,
        required_tier,
        request_id: super::request_id(),
        recommendation,
        f,
        c,
    }))
}

#[derive(Template)]
#[template(source = "{{ stage }}", ext = "html")]
struct StageBadge {
    stage: String,
}

/// The stage badge alone, for the page to refresh while events arrive.
pub async fn stage(
    State(state): State<AppState>,
    member: Member,
    Path(case_id): Path<String>,
) -> Response {
    answer(
        async {
            let c = read_case(&state, &member, &case_id).await?;
            let f = Frame::for_member(&member, "case.title");
            Ok(render(&StageBadge {
                stage: stage_text(&f, c.stage),
            }))
        }
        .await,
    )
}

pub async fn act(
    State(state): State<AppState>,
    member: Member,
    Path((case_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer(take(state, member, case_id, action, Fields::parse(&body)).await)
}

async fn take(
    state: AppState,
    member: Member,
    case_id: String,
    action: String,
    form: Fields,
) -> PageResult {
    member.check_csrf(&form.one("csrf")).or_page(&member)?;
    let request_id = super::form_request_id(&form.one("request_id")).or_page(&member)?;
    let mut decisions = member.acting(&state).decisions();
    let bad = |member: &Member, text: String| {
        Err((PageError::BadInput(text), Some(member.clone())).into())
    };
    let done = match action.as_str() {
        "assess" => {
            decisions
                .assess_eligibility(AssessEligibilityRequest {
                    request_id,
                    case_id: case_id.clone(),
                    facts: form.all("fact"),
                    assessed_by: member.staff().staff_no.clone(),
                    category: form.one("category"),
                })
                .await
                .or_page(&member)?;
            "assessed"
        }
        "accept" => {
            decisions
                .accept_case(AcceptCaseRequest {
                    request_id,
                    case_id: case_id.clone(),
                    accepted_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            "accepted"
        }
        "propose" => {
            let fen = match jiuzhu_proto::money::parse_yuan(&form.one("amount")) {
                Ok(fen) if fen > 0 => fen,
                Ok(_) => return bad(&member, "amount: must be more than 0".to_owned()),
                Err(reason) => return bad(&member, format!("amount: {reason}")),
            };
            let mut methods = Vec::new();
            for name in form.all("method") {
                match jiuzhu_policy::relief::method_named(&name) {
                    Some(method) => methods.push(i32::from(method)),
                    None => return bad(&member, format!("method: unknown `{name}`")),
                }
            }
            decisions
                .propose_decision(ProposeDecisionRequest {
                    request_id,
                    case_id: case_id.clone(),
                    amount: Some(Money { fen }),
                    methods,
                    departure_reason: form.one("departure_reason"),
                    proposed_by: member.staff().staff_no.clone(),
                    ..ProposeDecisionRequest::default()
                })
                .await
                .or_page(&member)?;
            "proposed"
        }
        "approve" => {
            decisions
                .approve_decision(ApproveDecisionRequest {
                    request_id,
                    case_id: case_id.clone(),
                    // The tier is the signed-in approver's, stated by the console.
                    approver_role: String::new(),
                    approved_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            "approved"
        }
        "reject" => {
            let reason = form.one("reason");
            if reason.trim().is_empty() {
                return bad(
                    &member,
                    member.language().t("case.reason_required").to_owned(),
                );
            }
            decisions
                .reject_decision(RejectDecisionRequest {
                    request_id,
                    case_id: case_id.clone(),
                    reason,
                    rejected_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            "refused"
        }
        "notify" => {
            decisions
                .notify_applicant(NotifyApplicantRequest {
                    request_id,
                    case_id: case_id.clone(),
                    channel: form.one("channel"),
                    notified_by: member.staff().staff_no.clone(),
                    note: form.one("note"),
                    ..NotifyApplicantRequest::default()
                })
                .await
                .or_page(&member)?;
            "notified"
        }
        "payee" => {
            let case = read_case(&state, &member, &case_id).await?;
            let kind = match form.one("account_kind").as_str() {
                "other" => AccountKind::Other,
                _ => AccountKind::BankCard,
            };
            member
                .acting(&state)
                .payments()
                .register_payee(RegisterPayeeRequest {
                    request_id,
                    person_id: case.person_id,
                    name: form.one("holder"),
                    account_kind: kind.into(),
                    account: form.one("account").split_whitespace().collect(),
                    institution: form.one("institution"),
                    registered_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            "payee"
        }
        "recommend" => {
            let recommendation =
                recommend(&mut decisions, &member, request_id, &case_id, &form).await?;
            return show_case(state, member, case_id, None, Some(recommendation)).await;
        }
        _ => {
            return Err((
                PageError::NotFound("no such action".to_owned()),
                Some(member),
            )
                .into());
        }
    };
    Ok(see_other(&format!("/cases/{case_id}?done={done}")))
}

/// Asks the recommender with the facts the prosecutor entered.
async fn recommend(
    decisions: &mut jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient<
        crate::platform::Signed,
    >,
    member: &Member,
    request_id: String,
    case_id: &str,
    form: &Fields,
) -> Result<Recommendation, Refusal> {
    let bad = |text: String| Refusal::from((PageError::BadInput(text), Some(member.clone())));
    let money = |name: &str| -> Result<Option<Money>, Refusal> {
        let text = form.one(name);
        if text.trim().is_empty() {
            return Ok(None);
        }
        jiuzhu_proto::money::parse_yuan(&text)
            .map(|fen| Some(Money { fen }))
            .map_err(|reason| bad(format!("{name}: {reason}")))
    };
    let count = |name: &str, max: i32| -> Result<i32, Refusal> {
        let text = form.one(name);
        if text.trim().is_empty() {
            return Ok(0);
        }
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| bad(format!("{name}: a whole number from 0 to {max}")))
    };
    let yes = |name: &str| form.one(name) == "yes";
    let features = jiuzhu_proto::decisions::CaseFeatures {
        deceased: yes("deceased"),
        serious_injury: yes("serious_injury"),
        disability_grade: count("disability_grade", 10)?,
        medical_costs: money("medical_costs")?,
        property_loss: money("property_loss")?,
        compensation_received: money("compensation_received")?,
        minor_fault: yes("minor_fault"),
        income_per_head: money("income_per_head")?,
        household_size: count("household_size", 30)?,
        dependants: count("dependants", 30)?,
        minors: count("minors", 30)?,
        registered_poor: yes("registered_poor"),
        monitored: yes("monitored"),
        minimum_living: yes("minimum_living"),
        minimum_line: money("minimum_line")?,
    };
    let answer = decisions
        .recommend_relief(jiuzhu_proto::decisions::RecommendReliefRequest {
            request_id,
            case_id: case_id.to_owned(),
            features: Some(features),
        })
        .await
        .or_page(member)?
        .into_inner();
    let l = member.language();
    let yuan_of = |m: &Option<Money>| m.as_ref().map(|m| yuan(m.fen)).unwrap_or_default();
    Ok(Recommendation {
        model_version: answer.model_version.clone(),
        amount: yuan_of(&answer.amount),
        low: yuan_of(&answer.low),
        high: yuan_of(&answer.high),
        cap: yuan_of(&answer.cap),
        clamped: answer.clamped.clone(),
        methods: answer
            .methods
            .iter()
            .map(|m| {
                let method = ReliefMethod::try_from(m.method).unwrap_or(ReliefMethod::Unspecified);
                (
                    l.t(&format!(
                        "method.{}",
                        jiuzhu_policy::relief::method_name(method)
                    ))
                    .to_owned(),
                    format!("{:.0}%", m.probability * 100.0),
                )
            })
            .collect(),
        precedents: answer
            .precedents
            .iter()
            .map(|p| {
                (
                    p.case_id.clone(),
                    yuan_of(&p.amount),
                    format!("{:.2}", p.distance),
                )
            })
            .collect(),
        factors: answer
            .factors
            .iter()
            .map(|factor| (factor.factor.clone(), yuan(factor.fen), factor.fen >= 0))
            .collect(),
    })
}

/// A file from a form, kept under the upload directory by its SHA-256.
struct Upload {
    sha256: String,
    fields: Fields,
}

async fn upload(state: &AppState, mut multipart: Multipart) -> Result<Upload, PageError> {
    let mut fields = Vec::new();
    let mut file: Option<Vec<u8>> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|error| PageError::BadInput(format!("the upload: {error}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let bytes = field
                .bytes()
                .await
                .map_err(|error| PageError::BadInput(format!("file: {error}")))?;
            file = Some(bytes.to_vec());
        } else {
            let text = field
                .text()
                .await
                .map_err(|error| PageError::BadInput(format!("{name}: {error}")))?;
            fields.push((name, text));
        }
    }
    let file = file
        .filter(|bytes| !bytes.is_empty())
        .ok_or_else(|| PageError::BadInput("file: choose a file to upload".to_owned()))?;
    if file.len() > state.settings.max_upload_bytes {
        return Err(PageError::BadInput(format!(
            "file: larger than {} bytes",
            state.settings.max_upload_bytes
        )));
    }
    let sha256 = hex::encode(Sha256::digest(&file));
    let dir = state.settings.upload_dir.clone();
    let path = dir.join(&sha256);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|error| PageError::Internal(format!("the upload directory: {error}")))?;
    // Named by content: writing the same file twice is harmless.
    tokio::fs::write(&path, &file)
        .await
        .map_err(|error| PageError::Internal(format!("keeping the upload: {error}")))?;
    Ok(Upload {
        sha256,
        fields: Fields(fields),
    })
}

/// A posted upload of `member`'s session, kept, with the form's request id.
async fn checked_upload(
    state: &AppState,
    member: &Member,
    multipart: Multipart,
) -> Result<(Upload, String), Refusal> {
    let upload = upload(state, multipart).await.or_page(member)?;
    member.check_csrf(&upload.one("csrf")).or_page(member)?;
    let request_id = super::form_request_id(&upload.one("request_id")).or_page(member)?;
    Ok((upload, request_id))
}

impl Upload {
    fn one(&self, name: &str) -> String {
        self.fields.one(name)
    }

    fn file_id(&self) -> String {
        format!("console-upload-{}", &self.sha256)
    }
}

pub async fn material(
    State(state): State<AppState>,
    member: Member,
    Path(case_id): Path<String>,
    multipart: Multipart,
) -> Response {
    answer(
        async {
            let (upload, request_id) = checked_upload(&state, &member, multipart).await?;
            member
                .acting(&state)
                .decisions()
                .register_material(RegisterMaterialRequest {
                    request_id,
                    case_id: case_id.clone(),
                    material: upload.one("material"),
                    file_id: upload.file_id(),
                    sha256: upload.sha256.clone(),
                    centre: "online console".to_owned(),
                    received_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            Ok(see_other(&format!("/cases/{case_id}?done=material")))
        }
        .await,
    )
}

pub async fn review(
    State(state): State<AppState>,
    member: Member,
    Path(case_id): Path<String>,
    multipart: Multipart,
) -> Response {
    answer(
        async {
            let (upload, request_id) = checked_upload(&state, &member, multipart).await?;
            let kind = match upload.one("kind").as_str() {
                "interview" => ReviewKind::Interview,
                "home_visit" => ReviewKind::HomeVisit,
                other => {
                    return Err((
                        PageError::BadInput(format!(
                            "kind: `{other}` is neither interview nor home_visit"
                        )),
                        Some(member.clone()),
                    )
                        .into());
                }
            };
            member
                .acting(&state)
                .decisions()
                .record_review(RecordReviewRequest {
                    request_id,
                    case_id: case_id.clone(),
                    kind: kind.into(),
                    record_file_id: upload.file_id(),
                    sha256: upload.sha256.clone(),
                    reviewed_by: member.staff().staff_no.clone(),
                })
                .await
                .or_page(&member)?;
            Ok(see_other(&format!("/cases/{case_id}?done=reviewed")))
        }
        .await,
    )
}
