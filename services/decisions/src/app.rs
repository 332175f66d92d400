//! The decisions service's application layer: the rules it decides with (policy, calendar,
//! wage table, clock), the service object every adapter calls, and the one way a command
//! reaches a case (load, decide, append, idempotent on its request id). The gRPC adapter,
//! the reactions to other services' events and the deadline monitor all come through here.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::FutureExt;
use jiuzhu_access::Actor;
use jiuzhu_calendar::Calendar;
use jiuzhu_clock::Clock;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::{CommandRequest, EventStore};
use jiuzhu_persons::Standing;
use jiuzhu_policy::{PolicyBook, PolicyError};
use jiuzhu_proto::decisions::*;
use jiuzhu_recommend::Recommender;
use jiuzhu_runtime::grpc::command_of;
use uuid::Uuid;

use crate::domain::{self, CaseError, Context, DecisionsEvent, Open, ReliefCase};
use crate::policy::{ReliefPolicy, Wages};

pub(crate) const SERVICE: &str = "jiuzhu.decisions.v1.DecisionsService";

/// How an applicant may be told the funds arrived.
pub(crate) const NOTICE_CHANNELS: [&str; 5] = ["phone", "sms", "letter", "in_person", "online"];

/// The statuses that make a party "poor" for the report to rural revitalization.
const POOR_STATUSES: [jiuzhu_proto::registry::StatusKind; 4] = [
    jiuzhu_proto::registry::StatusKind::RegisteredPoor,
    jiuzhu_proto::registry::StatusKind::MonitoredUnstable,
    jiuzhu_proto::registry::StatusKind::MonitoredMarginal,
    jiuzhu_proto::registry::StatusKind::MonitoredSuddenHardship,
];

/// The policy, the calendar, the wage table and the clock, loaded once at start.
#[derive(Debug)]
pub struct Rules {
    /// The relief policy of every policy set, by the day it takes effect.
    pub policies: Vec<(NaiveDate, ReliefPolicy)>,
    /// Facts accumulate: the latest set's calendar and wage table serve every date.
    pub calendar: Calendar,
    pub wages: Wages,
    /// SHA-256 of the calendar file: deadlines are counted again when it changes.
    pub calendar_digest: String,
    pub clock: Clock,
}

impl Rules {
    /// The rules of every set in `book`; a file that does not parse is named in the error.
    pub fn from_book(book: &PolicyBook, clock: Clock) -> Result<Self, String> {
        let policies = book
            .parse_each(jiuzhu_policy::RELIEF, |text| {
                ReliefPolicy::parse(text)
                    .map_err(|e| PolicyError::from_config(jiuzhu_policy::RELIEF, text, &e))
            })
            .map_err(|e| e.to_string())?;
        let latest = book.latest();
        Ok(Self {
            policies,
            calendar: Calendar::parse(latest.text(jiuzhu_policy::CALENDAR))
                .map_err(|e| e.to_string())?,
            wages: Wages::parse(latest.text(jiuzhu_policy::WAGES)).map_err(|e| e.to_string())?,
            calendar_digest: latest.file_digest(jiuzhu_policy::CALENDAR),
            clock,
        })
    }

    /// The rules compiled into this build.
    pub fn shipped(clock: Clock) -> Result<Self, String> {
        Self::from_book(
            &PolicyBook::compiled_in().map_err(|e| e.to_string())?,
            clock,
        )
    }

    /// The context of a command taken now: deadlines count from today in Beijing time.
    pub fn now(&self) -> Context<'_> {
        self.on(self.clock.today())
    }

    /// The context of a command taken on `today`, under the policy in force that day.
    pub fn on(&self, today: NaiveDate) -> Context<'_> {
        Context {
            policy: self.policy_on(today),
            calendar: &self.calendar,
            wages: &self.wages,
            today,
        }
    }

    /// The relief policy in force on `day`.
    pub fn policy_on(&self, day: NaiveDate) -> &ReliefPolicy {
        static EMPTY: std::sync::LazyLock<ReliefPolicy> =
            std::sync::LazyLock::new(ReliefPolicy::default);
        jiuzhu_policy::in_force_on(&self.policies, day).unwrap_or(&EMPTY)
    }

    /// Every department any policy set refers methods to.
    pub fn referral_departments(&self) -> BTreeSet<&str> {
        self.policies
            .iter()
            .flat_map(|(_, p)| p.referral_departments())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct DecisionsApi {
    pub(crate) store: EventStore,
    pub(crate) rules: Arc<Rules>,
    pub(crate) recommender: Option<Arc<Recommender>>,
}

impl DecisionsApi {
    pub fn new(store: EventStore, rules: Rules, recommender: Option<Recommender>) -> Self {
        Self {
            store,
            rules: Arc::new(rules),
            recommender: recommender.map(Arc::new),
        }
    }
}

impl DecisionsApi {
    /// Whether the case's person held a poverty status (registered poor or monitored against
    /// return to poverty) on `on`, on any of their records, from the registry's events.
    pub(crate) async fn poor_party(&self, case_id: Uuid, on: NaiveDate) -> Result<bool, AppError> {
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(AppError::storage)?;
        let person: Option<Uuid> =
            sqlx::query_scalar("SELECT person_id FROM relief_cases WHERE case_id = $1")
                .bind(case_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(AppError::storage)?;
        let Some(person) = person else {
            return Ok(false);
        };
        let records = jiuzhu_persons::same_person(&mut conn, person)
            .await
            .map_err(AppError::storage)?;
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM person_statuses WHERE person_id = ANY($1) \
             AND kind = ANY($2) AND {})",
            crate::projections::IN_EFFECT.replace("$on", "$3")
        ))
        .bind(&records)
        .bind(POOR_STATUSES.map(|k| k as i32).to_vec())
        .bind(on.format("%Y-%m-%d").to_string())
        .fetch_one(&mut *conn)
        .await
        .map_err(AppError::storage)
    }

    /// Departments that receive referrals under the policy.
    pub fn referral_departments(&self) -> Vec<&str> {
        self.rules.referral_departments().into_iter().collect()
    }

    /// Opens a relief case (the API and clue referrals): validated, within the caller's
    /// jurisdiction, once per person per criminal case, idempotent on the request id.
    pub async fn open(
        &self,
        actor: Actor,
        request: OpenCaseRequest,
    ) -> Result<OpenCaseResponse, AppError> {
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        violations.require(&[
            ("case_no", &request.case_no),
            ("procuratorate", &request.procuratorate),
        ]);
        let person = Uuid::parse_str(request.person_id.trim()).ok();
        if person.is_none() {
            violations.add("person_id", "must be a registry person id (UUID)");
        }
        let region = request.region_code.trim();
        let origin = CaseOrigin::try_from(request.origin).unwrap_or_default();
        // A referred party's region may be unknown; it is needed for the cap, not to open.
        let unknown_region = region.is_empty() && origin == CaseOrigin::Referral;
        if !unknown_region && (region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit())) {
            violations.add("region_code", "must be a 6-digit county-level region code");
        }
        match origin {
            CaseOrigin::Unspecified => violations.add(
                "origin",
                jiuzhu_errors::must_be_one_of(&[
                    CaseOrigin::Referral.as_str_name(),
                    CaseOrigin::Application.as_str_name(),
                    CaseOrigin::Prosecutor.as_str_name(),
                ]),
            ),
            CaseOrigin::Referral => violations.require(&[("clue_id", &request.clue_id)]),
            CaseOrigin::Application => violations.require(&[
                ("applicant_relation", &request.applicant_relation),
                ("category", &request.category),
            ]),
            CaseOrigin::Prosecutor => violations.require(&[("category", &request.category)]),
        }
        violations.into_result()?;
        actor.office_check(region)?;
        let person = person.unwrap_or_default();
        let rules = self.rules.clone();
        let command = Open {
            case_id: String::new(),
            origin,
            person_id: person.to_string(),
            // One case however its number is typed: the once-only rule keys on it.
            case_no: jiuzhu_identity::canonical_case_number(&request.case_no),
            procuratorate: request.procuratorate.trim().to_owned(),
            region_code: region.to_owned(),
            category: request.category.trim().to_owned(),
            applicant_relation: request.applicant_relation.trim().to_owned(),
            opened_by: actor.recorded_as(request.opened_by.trim()),
            clue_id: request.clue_id.trim().to_owned(),
            party_id: request.party_id.trim().to_owned(),
        };
        // A referral's case is the platform's work, under its key in the internal namespace.
        let call = command_of(
            &actor,
            &format!("{SERVICE}/OpenCase"),
            &request.request_id,
            &request,
        );
        self.store.execute(
            call,
            AppError::from,
            move |work| {
                async move {
                    let case_id = Uuid::now_v7();
                    // One person however many records the registry merged into them: the case
                    // is the survivor's, and a claim under any of their records counts.
                    let person = match jiuzhu_persons::lookup(work.connection().await?, person)
                        .await
                        .map_err(AppError::storage)?
                    {
                        Standing::Unknown => {
                            return Err(AppError::not_found(format!(
                                "person {person} is not in the registry (a registration made \
                                 just now reaches this service within seconds)"
                            )));
                        }
                        Standing::Person { erased: true, .. } => {
                            return Err(AppError::failed_precondition(format!(
                                "person {person} was erased from the registry"
                            )));
                        }
                        Standing::Person { survivor, .. } => survivor,
                    };
                    let records = jiuzhu_persons::records_of(work.connection().await?, person)
                        .await
                        .map_err(AppError::storage)?;
                    let claimed: Option<(Option<Uuid>, Option<String>)> = sqlx::query_as(
                        "SELECT case_id, other_agency FROM relief_claims \
                         WHERE person_id = ANY($1) AND case_no = $2 \
                         ORDER BY case_id IS NULL LIMIT 1",
                    )
                    .bind(&records)
                    .bind(&command.case_no)
                    .fetch_optional(work.connection().await?)
                    .await
                    .map_err(AppError::storage)?;
                    match claimed {
                        Some((Some(existing), _)) => {
                            return Err(AppError::already_exists(format!(
                                "relief case {existing} already exists for this person and case \
                                 (one relief per party per case)"
                            )));
                        }
                        Some((None, Some(agency))) => {
                            return Err(AppError::failed_precondition(format!(
                                "{agency} already gave relief for this person and case"
                            )));
                        }
                        _ => {}
                    }
                    let context = rules.now();
                    let events = domain::open(
                        Open {
                            case_id: case_id.to_string(),
                            person_id: person.to_string(),
                            ..command
                        },
                        context,
                    )?;
                    let mut case = ReliefCase::default();
                    for event in &events {
                        jiuzhu_eventstore::Aggregate::apply(&mut case, event);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO relief_claims (person_id, case_no, case_id) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(person)
                    .bind(case.opened.as_ref().map(|o| o.case_no.clone()))
                    .bind(case_id)
                    .execute(work.connection().await?)
                    .await
                    .map_err(AppError::storage)?;
                    if inserted.rows_affected() == 0 {
                        return Err(AppError::conflict(
                            "a relief case for this person and case is being opened concurrently; send it again",
                        ));
                    }
                    work.append(&case_id.to_string(), 0, case.person_id(), &events)
                        .await
                        .map_err(AppError::from)?;
                    tracing::info!(%case_id, "relief case opened");
                    Ok(OpenCaseResponse {
                        case_id: case_id.to_string(),
                        missing_materials: case.missing_materials(context.policy),
                        person_id: person.to_string(),
                    })
                }
                .boxed()
            },
        )
        .await
    }
}

/// An API call of `method`: the caller's request id, the request fingerprinted.
pub(crate) fn api_call(
    method: &str,
    request_id: &str,
    request: &impl prost::Message,
) -> CommandRequest {
    CommandRequest::api(&format!("{SERVICE}/{method}"), request_id, request)
}

/// An internal command of `method` (a reaction, a timer) under its own key.
pub(crate) fn internal_call(method: &str, key: impl Into<String>) -> CommandRequest {
    CommandRequest::internal(&format!("{SERVICE}/{method}"), key)
}

/// How often a command on a case is decided again when another write to the case came first.
const CONFLICT_ATTEMPTS: usize = 3;

/// Runs a command against one existing case: load, check the actor may act on the case's
/// office, decide, append; idempotent on the call. A write to the case that came in between
/// (a payment recorded, an alarm raised) makes it load and decide again on the case as it now
/// is, a few times, before the caller is told to retry (`ABORTED`).
pub(crate) async fn on_case<Answer>(
    api: &DecisionsApi,
    actor: Actor,
    call: CommandRequest,
    case_id: Uuid,
    decide: impl Fn(&ReliefCase, Context<'_>) -> Result<(Vec<DecisionsEvent>, Answer), CaseError>
    + Send
    + Sync
    + 'static,
) -> Result<Answer, AppError>
where
    Answer: prost::Message + Default + 'static,
{
    let decide = std::sync::Arc::new(decide);
    let mut attempt = 1;
    loop {
        let (rules, actor, decide) = (api.rules.clone(), actor.clone(), decide.clone());
        let outcome = api
            .store
            .execute(call.clone(), AppError::from, move |work| {
                async move {
                    let mut answer = None;
                    let decided = work
                        .decide_on(&case_id.to_string(), |case: &ReliefCase| {
                            actor.office_check(case.region_code())?;
                            let (events, decided) = decide(case, rules.now())?;
                            answer = Some(decided);
                            Ok::<_, AppError>(events)
                        })
                        .await?;
                    remember_department_refs(work.connection().await?, case_id, &decided.events)
                        .await?;
                    answer.ok_or_else(|| AppError::internal("the decision gave no answer"))
                }
                .boxed()
            })
            .await;
        match outcome {
            Err(AppError::Conflict(_)) if attempt < CONFLICT_ATTEMPTS => attempt += 1,
            outcome => return outcome,
        }
    }
}

/// Records, with the events that hand a case to a department, the reference that department
/// knows the case by (a referral id's prefix; a reported closed case's `case_id`), so that
/// what it quotes back finds the case (`department_refs`).
async fn remember_department_refs(
    connection: &mut sqlx::PgConnection,
    case_id: Uuid,
    events: &[DecisionsEvent],
) -> Result<(), AppError> {
    for event in events {
        let (department, reference) = match event {
            DecisionsEvent::ReferralIssued(e) => (
                e.department.clone(),
                e.referral_id
                    .split_once(':')
                    .map_or(e.referral_id.as_str(), |(reference, _)| reference)
                    .to_owned(),
            ),
            DecisionsEvent::CaseClosed(_) => {
                let department = crate::domain::REPORTED_TO;
                (
                    department.to_owned(),
                    jiuzhu_sharing::case_ref(department, &case_id.to_string()),
                )
            }
            _ => continue,
        };
        sqlx::query(
            "INSERT INTO department_refs (department, reference, case_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(department)
        .bind(reference)
        .bind(case_id)
        .execute(&mut *connection)
        .await
        .map_err(AppError::storage)?;
    }
    Ok(())
}

impl From<CaseError> for AppError {
    fn from(error: CaseError) -> Self {
        let message = error.to_string();
        match error {
            CaseError::NotFound(_) => AppError::not_found(message),
            CaseError::UnknownCategory(_) => FieldViolations::single("category", message),
            CaseError::UnknownMaterial(_) => FieldViolations::single("material", message),
            CaseError::UnknownFact(_) => FieldViolations::single("facts", message),
            CaseError::AboveCap { .. } | CaseError::AboveCourtAward { .. } => {
                FieldViolations::single("amount", message)
            }
            CaseError::TooManyInstalments { .. } | CaseError::InstalmentsBelowOneFen { .. } => {
                FieldViolations::single("instalments", message)
            }
            CaseError::NotifiedOn { .. } => FieldViolations::single("notified_on", message),
            CaseError::ObjectionInFuture(_) => FieldViolations::single("filed_on", message),
            CaseError::SameApprover => AppError::permission_denied(message),
            CaseError::ObjectedBefore(_)
            | CaseError::ObjectionLate { .. }
            | CaseError::ReviewedBefore(_) => AppError::failed_precondition(message),
            CaseError::AmountObjectionReopened => FieldViolations::single("outcome", message),
            CaseError::AmendmentNotAbove { .. } => FieldViolations::single("amount", message),
            CaseError::MethodsKept => FieldViolations::single("methods", message),
            CaseError::WrongApprover { .. } => AppError::permission_denied(message),
            CaseError::DepartureUnexplained { .. } => {
                FieldViolations::single("departure_reason", message)
            }
            CaseError::UnknownReferral(_) => AppError::not_found(message),
            CaseError::NotTheirReferral { .. } => AppError::permission_denied(message),
            CaseError::ReferralSettled { .. }
            | CaseError::WrongStage { .. }
            | CaseError::NotEligible(_)
            | CaseError::MaterialsMissing(_)
            | CaseError::Wage(_) => AppError::failed_precondition(message),
        }
    }
}
