//! The decisions service's gRPC shell: validation with field details, the once-only claim,
//! commands through the domain inside idempotent units of work, and one mapping of domain
//! errors to status codes.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::FutureExt;
use jiuzhu_errors::{AppError, FieldViolations, uuid_field};
use jiuzhu_paging::{key_after, token_after};
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::decisions_service_server::DecisionsService;
use jiuzhu_proto::decisions::*;
use jiuzhu_runtime::grpc::{PersonalAccess, run_command};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{DecisionsApi, NOTICE_CHANNELS, SERVICE, api_call, on_case};
use crate::domain::{self, DecisionsEvent, ObjectionDecision, Proposal, ReliefCase};
use crate::policy::ReliefPolicy;
use jiuzhu_access::{Actor, Caller};

/// The method names of the recommender, in the order of `ReliefMethod` (1 = the first).
fn method_of(name: &str) -> ReliefMethod {
    jiuzhu_recommend::METHODS
        .iter()
        .position(|m| *m == name)
        .and_then(|i| ReliefMethod::try_from(i32::try_from(i + 1).ok()?).ok())
        .unwrap_or_default()
}

fn money(fen: i64) -> Option<Money> {
    Some(Money { fen })
}

/// Validates the features a caller gives, naming each bad field.
fn case_features(
    features: &jiuzhu_proto::decisions::CaseFeatures,
    violations: &mut FieldViolations,
) -> jiuzhu_recommend::CaseFeatures {
    let mut fen = |field: &str, value: Option<Money>| {
        let fen = value.map_or(0, |m| m.fen);
        if fen < 0 {
            violations.add(format!("features.{field}"), "cannot be negative");
        }
        fen
    };
    let medical_costs_fen = fen("medical_costs", features.medical_costs);
    let property_loss_fen = fen("property_loss", features.property_loss);
    let compensation_received_fen = fen("compensation_received", features.compensation_received);
    let income_per_head_fen = fen("income_per_head", features.income_per_head);
    let minimum_line_fen = fen("minimum_line", features.minimum_line);
    if minimum_line_fen == 0 {
        violations.add(
            "features.minimum_line",
            "is required (the region's monthly line per head)",
        );
    }
    let mut count = |field: &str, value: i32, range: std::ops::RangeInclusive<i32>| {
        if !range.contains(&value) {
            violations.add(
                format!("features.{field}"),
                format!("must be {} to {}", range.start(), range.end()),
            );
        }
        u8::try_from(value.clamp(0, 255)).unwrap_or(0)
    };
    jiuzhu_recommend::CaseFeatures {
        deceased: features.deceased,
        serious_injury: features.serious_injury,
        disability_grade: count("disability_grade", features.disability_grade, 0..=10),
        // 0: from the registry's household.
        household_size: count("household_size", features.household_size, 0..=30),
        dependants: count("dependants", features.dependants, 0..=30),
        minors: count("minors", features.minors, 0..=30),
        medical_costs_fen,
        property_loss_fen,
        compensation_received_fen,
        income_per_head_fen,
        minimum_line_fen,
        minor_fault: features.minor_fault,
        registered_poor: features.registered_poor,
        monitored: features.monitored,
        minimum_living: features.minimum_living,
        ..jiuzhu_recommend::CaseFeatures::default()
    }
}

fn hex_sha256(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn case_view(case: &ReliefCase, policy: &ReliefPolicy) -> jiuzhu_proto::decisions::ReliefCase {
    let opened = case.opened.clone().unwrap_or_default();
    jiuzhu_proto::decisions::ReliefCase {
        case_id: opened.case_id,
        origin: opened.origin,
        person_id: opened.person_id,
        case_no: opened.case_no,
        procuratorate: opened.procuratorate,
        region_code: opened.region_code,
        category: case.category().to_owned(),
        stage: case.stage.into(),
        stages: case
            .stages
            .iter()
            .map(|s| StageProgress {
                stage: s.stage,
                entered_on: s.entered_on.clone(),
                due_date: s.due_date.clone(),
                due_unknown: s.due_unknown.clone(),
                due_provisional: s.due_provisional,
            })
            .collect(),
        notified: case.notified.clone(),
        closed: case.closed.clone(),
        reported: case.reported,
        objection: case.objection.clone(),
        objection_review: case.objection_review.clone(),
        amendment: case.amendment.clone(),
        missing_materials: case.missing_materials(policy),
        eligibility: case.eligibility.clone(),
        proposal: case.proposal.clone(),
        approval: case.approval.clone(),
        rejection_reason: case
            .rejection
            .as_ref()
            .map(|r| r.reason.clone())
            .unwrap_or_default(),
        referrals: case.referrals.values().cloned().collect(),
        owed_materials: case
            .obligation
            .as_ref()
            .map(|o| {
                o.materials
                    .iter()
                    .filter(|m| !case.received.contains(*m))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        owed_by: case
            .obligation
            .as_ref()
            .map(|o| o.due_date.clone())
            .unwrap_or_default(),
        waiting_for_funds: case.waiting_for_funds.is_some(),
        distributed: Some(jiuzhu_proto::common::Money {
            fen: case.distributed.values().sum(),
        }),
    }
}

#[tonic::async_trait]
impl DecisionsService for DecisionsApi {
    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, clue_id = %request.get_ref().clue_id))]
    async fn open_case(
        &self,
        request: Request<OpenCaseRequest>,
    ) -> Result<Response<OpenCaseResponse>, Status> {
        let caller = Caller::of(&request)?;
        Ok(Response::new(
            self.open(Actor::Caller(caller), request.into_inner())
                .await?,
        ))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn record_other_agency_relief(
        &self,
        request: Request<RecordOtherAgencyReliefRequest>,
    ) -> Result<Response<RecordOtherAgencyReliefResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        violations.require(&[("case_no", &request.case_no), ("agency", &request.agency)]);
        let person = Uuid::parse_str(request.person_id.trim()).ok();
        if person.is_none() {
            violations.add("person_id", "must be a registry person id (UUID)");
        }
        // The criminal case's county; the caller's own office when not given.
        let region = match request.region_code.trim() {
            "" => caller.identity.office.clone(),
            region => region.to_owned(),
        };
        if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
            violations.add("region_code", "must be a 6-digit county-level region code");
        }
        violations.into_result()?;
        caller.office_check(&region)?;
        let (person, case_no, agency, reference) = (
            person.unwrap_or_default(),
            jiuzhu_identity::canonical_case_number(&request.case_no),
            request.agency.trim().to_owned(),
            request.reference.trim().to_owned(),
        );
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RecordOtherAgencyRelief"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let existing: Option<Option<Uuid>> = sqlx::query_scalar(
                        "INSERT INTO relief_claims \
                         (person_id, case_no, other_agency, reference, region_code) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (person_id, case_no) DO UPDATE \
                         SET person_id = relief_claims.person_id RETURNING case_id",
                    )
                    .bind(person)
                    .bind(&case_no)
                    .bind(&agency)
                    .bind(&reference)
                    .bind(&region)
                    .fetch_optional(work.connection().await?)
                    .await
                    .map_err(AppError::storage)?;
                    // The case may be another office's: not named.
                    if let Some(Some(_)) = existing {
                        return Err(AppError::failed_precondition(
                            "a relief case is already open for this person and case",
                        ));
                    }
                    Ok(RecordOtherAgencyReliefResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn register_material(
        &self,
        request: Request<RegisterMaterialRequest>,
    ) -> Result<Response<RegisterMaterialResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        violations.require(&[
            ("material", &request.material),
            ("file_id", &request.file_id),
            ("centre", &request.centre),
        ]);
        if !hex_sha256(request.sha256.trim()) {
            violations.add("sha256", "must be 64 hex digits (the file's SHA-256)");
        }
        violations.into_result()?;
        let received = MaterialReceived {
            case_id: case_id.to_string(),
            material: request.material.trim().to_owned(),
            file_id: request.file_id.trim().to_owned(),
            sha256: request.sha256.trim().to_ascii_lowercase(),
            centre: request.centre.trim().to_owned(),
            received_by: caller.recorded_as(),
        };
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("RegisterMaterial", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.register_material(received.clone(), context)?;
                let mut after = case.clone();
                for event in &events {
                    jiuzhu_eventstore::Aggregate::apply(&mut after, event);
                }
                let missing = after.missing_materials(context.policy);
                Ok((
                    events,
                    RegisterMaterialResponse {
                        missing_materials: missing,
                    },
                ))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn assess_eligibility(
        &self,
        request: Request<AssessEligibilityRequest>,
    ) -> Result<Response<AssessEligibilityResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        violations.into_result()?;
        let facts: BTreeSet<String> = request.facts.iter().map(|f| f.trim().to_owned()).collect();
        let category = request.category.trim().to_owned();
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("AssessEligibility", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.assess(&facts, &category, context)?;
                let answer = match events.first() {
                    Some(DecisionsEvent::EligibilityAssessed(e)) => AssessEligibilityResponse {
                        eligible: e.eligible,
                        rule: e.rule.clone(),
                        reason: e.reason.clone(),
                    },
                    _ => AssessEligibilityResponse::default(),
                };
                Ok((events, answer))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn accept_case(
        &self,
        request: Request<AcceptCaseRequest>,
    ) -> Result<Response<AcceptCaseResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        violations.into_result()?;
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("AcceptCase", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.accept(context)?;
                let opinion_due = match events.first() {
                    Some(DecisionsEvent::StageEntered(s)) => s.due_date.clone(),
                    _ => String::new(),
                };
                Ok((events, AcceptCaseResponse { opinion_due }))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn notify_applicant(
        &self,
        request: Request<NotifyApplicantRequest>,
    ) -> Result<Response<NotifyApplicantResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        if !NOTICE_CHANNELS.contains(&request.channel.as_str()) {
            violations.add(
                "channel",
                format!("must be one of {}", NOTICE_CHANNELS.join(", ")),
            );
        }
        let notified_on = day_or_today(
            &mut violations,
            "notified_on",
            &request.notified_on,
            self.rules.clock.today(),
        );
        violations.into_result()?;
        let poor = self.poor_party(case_id, notified_on).await?;
        let notice = domain::Notice {
            channel: request.channel.clone(),
            notified_on,
            notified_by: caller.recorded_as(),
            note: request.note.clone(),
            registered_poor: poor,
        };
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("NotifyApplicant", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.notify(notice.clone(), context)?;
                let report_due_date = events
                    .iter()
                    .find_map(|e| match e {
                        DecisionsEvent::CaseClosed(c) => Some(c.report_due_date.clone()),
                        _ => None,
                    })
                    .or_else(|| case.closed.as_ref().map(|c| c.report_due_date.clone()))
                    .unwrap_or_default();
                Ok((events, NotifyApplicantResponse { report_due_date }))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn record_review(
        &self,
        request: Request<RecordReviewRequest>,
    ) -> Result<Response<RecordReviewResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        let kind = ReviewKind::try_from(request.kind).unwrap_or_default();
        if kind == ReviewKind::Unspecified {
            violations.add(
                "kind",
                jiuzhu_errors::must_be_one_of(&[
                    ReviewKind::Interview.as_str_name(),
                    ReviewKind::HomeVisit.as_str_name(),
                ]),
            );
        }
        violations.require(&[("record_file_id", &request.record_file_id)]);
        if !hex_sha256(request.sha256.trim()) {
            violations.add("sha256", "must be 64 hex digits (the record's SHA-256)");
        }
        violations.into_result()?;
        let recorded = ReviewRecorded {
            case_id: case_id.to_string(),
            kind: kind.into(),
            record_file_id: request.record_file_id.trim().to_owned(),
            sha256: request.sha256.trim().to_ascii_lowercase(),
            reviewed_by: caller.recorded_as(),
            reviewed_on: String::new(),
        };
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("RecordReview", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.review(recorded.clone(), context)?;
                let mut after = case.clone();
                for event in &events {
                    jiuzhu_eventstore::Aggregate::apply(&mut after, event);
                }
                let outstanding = after
                    .outstanding_reviews()
                    .into_iter()
                    .map(i32::from)
                    .collect();
                Ok((events, RecordReviewResponse { outstanding }))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn propose_decision(
        &self,
        request: Request<ProposeDecisionRequest>,
    ) -> Result<Response<ProposeDecisionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        let amount = request.amount.map_or(0, |m| m.fen);
        if amount <= 0 {
            violations.add("amount", "must be a positive number of fen");
        }
        let mut methods = Vec::new();
        for (n, method) in request.methods.iter().enumerate() {
            match ReliefMethod::try_from(*method) {
                Ok(ReliefMethod::Unspecified) | Err(_) => {
                    violations.add(
                        format!("methods[{n}]"),
                        format!("{method} is not a relief method"),
                    );
                }
                Ok(method) => methods.push(method),
            }
        }
        if request.methods.is_empty() {
            violations.add("methods", "at least one relief method is required");
        }
        if request.exceptional {
            violations.require(&[("exceptional_reason", &request.exceptional_reason)]);
        }
        let court_award = request.court_award.map(|m| m.fen).filter(|fen| *fen != 0);
        if court_award.is_some_and(|fen| fen < 0) {
            violations.add("court_award", "cannot be negative");
        }
        if request.instalments < 0 {
            violations.add("instalments", "cannot be negative");
        }
        violations.into_result()?;
        let proposal = Proposal {
            amount_fen: amount,
            methods,
            exceptional: request.exceptional,
            exceptional_reason: request.exceptional_reason.trim().to_owned(),
            court_award_fen: court_award,
            departure_reason: request.departure_reason.trim().to_owned(),
            proposed_by: caller.recorded_as(),
            instalments: u32::try_from(request.instalments).unwrap_or(u32::MAX),
        };
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("ProposeDecision", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.propose(proposal.clone(), context)?;
                let answer = match events.first() {
                    Some(DecisionsEvent::DecisionProposed(p)) => ProposeDecisionResponse {
                        cap: p.cap,
                        required_approver: p.required_approver.clone(),
                    },
                    _ => ProposeDecisionResponse {
                        cap: Some(Money::default()),
                        ..ProposeDecisionResponse::default()
                    },
                };
                Ok((events, answer))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn approve_decision(
        &self,
        request: Request<ApproveDecisionRequest>,
    ) -> Result<Response<ApproveDecisionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        // The tier is the approver certificate's; the request may only repeat it.
        let tier = caller.approval_tier().map(str::to_owned).ok_or_else(|| {
            AppError::permission_denied(
                "approving takes an approver's certificate naming its approval tier \
                 (…/role/approver/tier/<tier>/…)",
            )
        })?;
        let stated = request.approver_role.trim();
        if !stated.is_empty() && stated != tier {
            violations.add(
                "approver_role",
                format!(
                    "`{stated}` is not the tier of your certificate (`{tier}`); leave it empty"
                ),
            );
        }
        violations.into_result()?;
        let (role, by) = (tier, caller.recorded_as());
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("ApproveDecision", &request.request_id, &request),
            case_id,
            move |case, context| {
                Ok((
                    case.approve(&role, &by, context)?,
                    ApproveDecisionResponse {},
                ))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn reject_decision(
        &self,
        request: Request<RejectDecisionRequest>,
    ) -> Result<Response<RejectDecisionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        violations.require(&[("reason", &request.reason)]);
        violations.into_result()?;
        let (reason, by) = (request.reason.trim().to_owned(), caller.recorded_as());
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("RejectDecision", &request.request_id, &request),
            case_id,
            move |case, context| {
                Ok((
                    case.reject(&reason, &by, context)?,
                    RejectDecisionResponse {},
                ))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn file_objection(
        &self,
        request: Request<FileObjectionRequest>,
    ) -> Result<Response<FileObjectionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        violations.require(&[("grounds", &request.grounds)]);
        let filed_on = day_or_today(
            &mut violations,
            "filed_on",
            &request.filed_on,
            self.rules.clock.today(),
        );
        violations.into_result()?;
        let (grounds, by) = (request.grounds.trim().to_owned(), caller.recorded_as());
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("FileObjection", &request.request_id, &request),
            case_id,
            move |case, context| {
                let events = case.object(&grounds, filed_on, &by, context)?;
                let review_due = events
                    .iter()
                    .find_map(|e| match e {
                        DecisionsEvent::ObjectionFiled(filed) => Some(filed.review_due.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                Ok((events, FileObjectionResponse { review_due }))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn review_objection(
        &self,
        request: Request<ReviewObjectionRequest>,
    ) -> Result<Response<ReviewObjectionResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        violations.require(&[("reason", &request.reason)]);
        // The tier is the reviewer certificate's, as for an approval.
        let tier = caller.approval_tier().map(str::to_owned).ok_or_else(|| {
            AppError::permission_denied(
                "reviewing an objection takes an approver's certificate naming its approval \
                 tier (…/role/approver/tier/<tier>/…)",
            )
        })?;
        let methods: Vec<ReliefMethod> = request
            .methods
            .iter()
            .filter_map(|m| match ReliefMethod::try_from(*m) {
                Ok(method) if method != ReliefMethod::Unspecified => Some(method),
                _ => {
                    violations.add("methods", format!("{m} is not a relief method"));
                    None
                }
            })
            .collect();
        let amount_fen = request.amount.map_or(0, |m| m.fen);
        let decision = match ObjectionOutcome::try_from(request.outcome) {
            Ok(ObjectionOutcome::Upheld) => ObjectionDecision::Upheld,
            Ok(ObjectionOutcome::Reopened) => ObjectionDecision::Reopened,
            Ok(ObjectionOutcome::Amended) => {
                if amount_fen < 1 {
                    violations.add(
                        "amount",
                        "an amended decision needs an amount of at least 1 fen",
                    );
                }
                ObjectionDecision::Amended {
                    amount_fen,
                    methods,
                }
            }
            Ok(ObjectionOutcome::Unspecified) | Err(_) => {
                violations.add(
                    "outcome",
                    jiuzhu_errors::must_be_one_of(&[
                        ObjectionOutcome::Upheld.as_str_name(),
                        ObjectionOutcome::Amended.as_str_name(),
                        ObjectionOutcome::Reopened.as_str_name(),
                    ]),
                );
                ObjectionDecision::Upheld
            }
        };
        if !matches!(decision, ObjectionDecision::Amended { .. })
            && (amount_fen != 0 || !request.methods.is_empty())
        {
            violations.add(
                "amount",
                "only an amended decision has an amount and methods",
            );
        }
        violations.into_result()?;
        let (reason, by) = (request.reason.trim().to_owned(), caller.recorded_as());
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("ReviewObjection", &request.request_id, &request),
            case_id,
            move |case, context| {
                Ok((
                    case.review_objection(decision.clone(), &reason, &tier, &by, context)?,
                    ReviewObjectionResponse {},
                ))
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, case_id = %request.get_ref().case_id))]
    async fn recommend_relief(
        &self,
        request: Request<RecommendReliefRequest>,
    ) -> Result<Response<RecommendReliefResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let case_id = uuid_field("case_id", &request.case_id)?;
        let mut features = case_features(&request.features.unwrap_or_default(), &mut violations);
        violations.into_result()?;
        // The registry fills in what the request leaves out: statuses, household, income.
        let (case, _) = self
            .store
            .load_aggregate::<ReliefCase>(&case_id.to_string())
            .await
            .map_err(AppError::from)?;
        // Before the household is read: it is the person's.
        caller.office_check(case.region_code())?;
        if let Ok(person) = Uuid::parse_str(case.person_id()) {
            let household =
                crate::projections::household(self.store.pool(), person, self.rules.clock.today())
                    .await
                    .map_err(AppError::storage)?;
            features.registered_poor |= household.registered_poor;
            features.monitored |= household.monitored;
            features.minimum_living |= household.minimum_living;
            if features.household_size == 0 {
                features.household_size = u8::try_from(household.size.clamp(0, 30)).unwrap_or(0);
            }
            if features.minors == 0 {
                features.minors = u8::try_from(household.minors.clamp(0, 30)).unwrap_or(0);
            }
            if features.income_per_head_fen == 0 {
                features.income_per_head_fen = household.income_per_head_fen.unwrap_or(0);
            }
        }
        if features.household_size == 0 {
            return Err(FieldViolations::single(
                "features.household_size",
                "is unknown: give it, or register the household in the registry",
            )
            .into());
        }
        let used = Arc::new(std::sync::Mutex::new(
            None::<jiuzhu_recommend::CaseFeatures>,
        ));
        let kept = used.clone();
        let model = self.recommender.clone().ok_or_else(|| {
            Status::failed_precondition(
                "no recommendation model is configured ([recommender] model); train one with \
                 `jiuzhu recommend train`",
            )
        })?;
        let answer = on_case(
            self,
            Actor::Caller(caller),
            api_call("RecommendRelief", &request.request_id, &request),
            case_id,
            move |case, context| {
                let (cap, base) = case.cap(context)?;
                let wage = base.figure.monthly_fen;
                let opened = case.opened.clone().unwrap_or_default();
                let features = jiuzhu_recommend::CaseFeatures {
                    category: case.category().to_owned(),
                    region: opened.region_code.clone(),
                    wage_fen: wage,
                    ..features
                };
                if let Ok(mut slot) = used.lock() {
                    *slot = Some(features.clone());
                }
                let recommended = model.recommend(&features, cap);
                let methods: Vec<MethodProbability> = recommended
                    .methods
                    .iter()
                    .map(|(name, probability)| MethodProbability {
                        method: method_of(name).into(),
                        probability: *probability,
                    })
                    .collect();
                let issued = RecommendationIssued {
                    case_id: case_id.to_string(),
                    model_version: recommended.model_version.clone(),
                    amount: money(recommended.amount_fen),
                    low: money(recommended.low_fen),
                    high: money(recommended.high_fen),
                    methods: methods
                        .iter()
                        .filter(|m| m.probability >= 0.5)
                        .map(|m| m.method)
                        .collect(),
                    clamped: recommended.clamped.clone().unwrap_or_default(),
                };
                let events = case.recommend(issued)?;
                let answer = RecommendReliefResponse {
                    model_version: recommended.model_version,
                    amount: money(recommended.amount_fen),
                    low: money(recommended.low_fen),
                    high: money(recommended.high_fen),
                    clamped: recommended.clamped.unwrap_or_default(),
                    methods,
                    precedents: recommended
                        .similar
                        .into_iter()
                        .map(|p| Precedent {
                            case_id: p.case_id,
                            amount: money(p.amount_fen),
                            methods: p.methods.iter().map(|m| method_of(m).into()).collect(),
                            distance: p.distance,
                        })
                        .collect(),
                    factors: recommended
                        .factors
                        .into_iter()
                        .map(|f| AmountFactor {
                            factor: f.name,
                            fen: f.fen,
                        })
                        .collect(),
                    cap: money(cap),
                };
                Ok((events, answer))
            },
        )
        .await?;
        // The features it was made from, for training on decided cases (a retry that was
        // answered from the command log finds nothing new to keep).
        let kept = kept.lock().ok().and_then(|mut slot| slot.take());
        if let Some(features) = kept {
            let json = serde_json::to_value(&features)
                .map_err(|error| Status::internal(format!("features: {error}")))?;
            sqlx::query(
                "INSERT INTO case_features (case_id, features) VALUES ($1, $2) \
                 ON CONFLICT (case_id) DO UPDATE SET features = EXCLUDED.features",
            )
            .bind(case_id)
            .bind(json)
            .execute(self.store.pool())
            .await
            .map_err(AppError::storage)?;
        }
        Ok(Response::new(answer))
    }

    type ExportDecidedCasesStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<ExportDecidedCasesResponse, Status>> + Send>,
    >;

    async fn export_decided_cases(
        &self,
        _request: Request<ExportDecidedCasesRequest>,
    ) -> Result<Response<Self::ExportDecidedCasesStream>, Status> {
        use jiuzhu_eventstore::EventCodec;
        // The amount a case was decided at is the amended one, when an objection raised it.
        let rows: Vec<(
            Uuid,
            serde_json::Value,
            Vec<u8>,
            Option<serde_json::Value>,
            Option<Vec<u8>>,
        )> = sqlx::query_as(
                "SELECT f.case_id, f.features, e.payload, \
                 (SELECT jsonb_build_object('effect_score', o.effect_score, \
                   'scoring_method', o.scoring_method, 'trend', o.trend, 'last_visit', o.last_visit, \
                   'months_since_payment', o.months_since_payment) \
                  FROM case_outcomes o WHERE o.case_id = f.case_id), \
                 (SELECT a.payload FROM events a WHERE a.stream_id = e.stream_id \
                  AND a.event_type = 'jiuzhu.decisions.v1.DecisionAmended' \
                  ORDER BY a.position DESC LIMIT 1) \
                 FROM case_features f JOIN events e ON e.stream_id = f.case_id::text \
                 AND e.event_type = 'jiuzhu.decisions.v1.DecisionApproved' ORDER BY e.position",
            )
            .fetch_all(self.store.pool())
            .await
            .map_err(AppError::storage)?;
        let mut records = Vec::with_capacity(rows.len());
        for (case_id, features, payload, outcome, amended) in rows {
            let Some(DecisionsEvent::DecisionApproved(approved)) =
                DecisionsEvent::decode_payload("jiuzhu.decisions.v1.DecisionApproved", &payload)
                    .map_err(|error| Status::internal(format!("case {case_id}: {error}")))?
            else {
                continue;
            };
            let amount = match amended {
                Some(payload) => match DecisionsEvent::decode_payload(
                    "jiuzhu.decisions.v1.DecisionAmended",
                    &payload,
                )
                .map_err(|error| Status::internal(format!("case {case_id}: {error}")))?
                {
                    Some(DecisionsEvent::DecisionAmended(amended)) => amended.amount,
                    _ => approved.amount,
                },
                None => approved.amount,
            };
            let mut case = features;
            if let Some(object) = case.as_object_mut() {
                object.insert("case_id".to_owned(), serde_json::json!(case_id.to_string()));
                object.insert(
                    "amount_fen".to_owned(),
                    serde_json::json!(amount.map_or(0, |m| m.fen)),
                );
                let methods: Vec<String> = approved
                    .methods
                    .iter()
                    .filter_map(|m| ReliefMethod::try_from(*m).ok())
                    .map(crate::policy::method_name)
                    .collect();
                object.insert("methods".to_owned(), serde_json::json!(methods));
                if let Some(outcome) = outcome {
                    object.insert("outcome".to_owned(), outcome);
                }
            }
            records.push(Ok(ExportDecidedCasesResponse {
                json: case.to_string(),
            }));
        }
        Ok(Response::new(Box::pin(futures::stream::iter(records))))
    }

    async fn list_deadlines(
        &self,
        request: Request<ListDeadlinesRequest>,
    ) -> Result<Response<ListDeadlinesResponse>, Status> {
        // An office lists only the cases of its own jurisdiction.
        let scope = jiuzhu_access::Caller::of(&request)?
            .region_prefix()
            .to_owned();
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        let filter = DeadlineFilter::try_from(request.filter).unwrap_or_default();
        if filter == DeadlineFilter::Unspecified {
            violations.add(
                "filter",
                jiuzhu_errors::must_be_one_of(&[
                    DeadlineFilter::Overdue.as_str_name(),
                    DeadlineFilter::DueSoon.as_str_name(),
                    DeadlineFilter::Open.as_str_name(),
                ]),
            );
        }
        let page_size = violations.page_size(request.page_size, 50);
        let after = key_after(&mut violations, &request.page_token, |key| match key {
            [due, case, stage] => Some((
                NaiveDate::parse_from_str(due, "%Y-%m-%d").ok()?,
                Uuid::parse_str(case).ok()?,
                stage.parse::<i32>().ok()?,
            )),
            // A token from before objections to amounts were listed: past every row of the case.
            [due, case] => Some((
                NaiveDate::parse_from_str(due, "%Y-%m-%d").ok()?,
                Uuid::parse_str(case).ok()?,
                i32::MAX,
            )),
            _ => None,
        });
        violations.into_result()?;
        let context = self.rules.now();
        let today = context.today;
        let soon_until = crate::monitor::approaching_until(context);
        let (from, until) = match filter {
            DeadlineFilter::Overdue => (None, today.pred_opt().unwrap_or(today)),
            DeadlineFilter::Open => (None, NaiveDate::MAX),
            _ => (Some(today), soon_until),
        };
        // An objection to an amount is reviewed beside the case's stage, by its own day.
        let rows: Vec<(Uuid, Uuid, String, i32, NaiveDate, NaiveDate)> = sqlx::query_as(
            "SELECT case_id, person_id, procuratorate, stage, entered_on, due_date FROM ( \
               SELECT case_id, person_id, procuratorate, region_code, stage, entered_on, due_date \
               FROM relief_cases \
               UNION ALL \
               SELECT case_id, person_id, procuratorate, region_code, $8, objection_filed_on, \
               objection_due FROM relief_cases WHERE objection_due IS NOT NULL) d \
             WHERE ($1::date IS NULL OR due_date >= $1) AND due_date <= $2 \
             AND ($3 = '' OR procuratorate = $3) \
             AND ($4::date IS NULL OR (due_date, case_id, stage) > ($4, $5, $9)) \
             AND ($7 = '' OR region_code LIKE $7 || '%') \
             ORDER BY due_date, case_id, stage LIMIT $6",
        )
        .bind(from)
        .bind(until)
        .bind(request.procuratorate.trim())
        .bind(after.map(|(due, _, _)| due))
        .bind(after.map(|(_, case, _)| case).unwrap_or_default())
        .bind(page_size + 1)
        .bind(&scope)
        .bind(i32::from(Stage::ObjectionReview))
        .bind(after.map_or(0, |(_, _, stage)| stage))
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        let mut deadlines: Vec<CaseDeadline> = rows
            .into_iter()
            .map(
                |(case_id, person_id, procuratorate, stage, entered_on, due)| CaseDeadline {
                    case_id: case_id.to_string(),
                    person_id: person_id.to_string(),
                    procuratorate,
                    stage,
                    entered_on: entered_on.format("%Y-%m-%d").to_string(),
                    due_date: due.format("%Y-%m-%d").to_string(),
                    working_days_left: crate::monitor::working_days_left(context, due),
                },
            )
            .collect();
        let next_page_token = if deadlines.len() as i64 > page_size {
            deadlines.truncate(usize::try_from(page_size).unwrap_or(50));
            deadlines
                .last()
                .map(|d| token_after(&[&d.due_date, &d.case_id, &d.stage.to_string()]))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListDeadlinesResponse {
            deadlines,
            next_page_token,
        }))
    }

    async fn get_stage_statistics(
        &self,
        request: Request<GetStageStatisticsRequest>,
    ) -> Result<Response<GetStageStatisticsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let procuratorate = request.into_inner().procuratorate.trim().to_owned();
        // Only the cases of the caller's jurisdiction are counted.
        let region_prefix = caller.region_prefix().to_owned();
        let today = self.rules.now().today;
        let open: Vec<(i32, i64, i64)> = sqlx::query_as(
            "SELECT stage, count(*), count(*) FILTER (WHERE due_date < $2) FROM relief_cases \
             WHERE stage <> 0 AND ($1 = '' OR procuratorate = $1) \
             AND region_code LIKE $3 || '%' GROUP BY stage",
        )
        .bind(&procuratorate)
        .bind(today)
        .bind(&region_prefix)
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        let done: Vec<(i32, i64, f64, i32)> = sqlx::query_as(
            "SELECT h.stage, count(*), avg(h.left_on - h.entered_on)::float8, max(h.left_on - h.entered_on) \
             FROM stage_history h JOIN relief_cases c USING (case_id) \
             WHERE ($1 = '' OR c.procuratorate = $1) AND c.region_code LIKE $2 || '%' \
             GROUP BY h.stage",
        )
        .bind(&procuratorate)
        .bind(&region_prefix)
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        let mut stages: std::collections::BTreeMap<i32, StageStatistics> = Default::default();
        for (stage, open_cases, overdue_cases) in open {
            let entry = stages.entry(stage).or_default();
            entry.stage = stage;
            entry.open_cases = open_cases;
            entry.overdue_cases = overdue_cases;
        }
        for (stage, completed, mean_days, max_days) in done {
            let entry = stages.entry(stage).or_default();
            entry.stage = stage;
            entry.completed = completed;
            entry.mean_days = mean_days;
            entry.max_days = max_days;
        }
        Ok(Response::new(GetStageStatisticsResponse {
            stages: stages.into_values().collect(),
        }))
    }

    async fn get_case(
        &self,
        request: Request<GetCaseRequest>,
    ) -> Result<Response<GetCaseResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<GetCaseResponse>, Status> = async {
            access.check_purpose()?;
            let case_id = uuid_field("case_id", &request.get_ref().case_id)?;
            let (case, version) = self
                .store
                .load_aggregate::<ReliefCase>(&case_id.to_string())
                .await
                .map_err(AppError::from)?;
            if version == 0 {
                return Err(Status::not_found(format!("no relief case {case_id}")));
            }
            let view = case_view(&case, self.rules.now().policy);
            access.caller().check_jurisdiction(&view.region_code)?;
            Ok(Response::new(GetCaseResponse {
                relief_case: Some(view),
            }))
        }
        .await;
        access
            .finish(answer, |answer| {
                answer
                    .get_ref()
                    .relief_case
                    .as_ref()
                    .map(|c| c.person_id.clone())
                    .unwrap_or_default()
            })
            .await
    }
}

/// A request's YYYY-MM-DD day, or `today` when it is empty; a day that is not one is a violation
/// of `field`.
fn day_or_today(
    violations: &mut FieldViolations,
    field: &str,
    text: &str,
    today: NaiveDate,
) -> NaiveDate {
    match text {
        "" => today,
        day => NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap_or_else(|_| {
            violations.add(field, "must be a YYYY-MM-DD date");
            today
        }),
    }
}
