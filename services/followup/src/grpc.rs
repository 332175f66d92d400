//! The follow-up service's gRPC shell: plans and visits, early closure, trends and effect
//! statistics. Evaluations are sealed under the person's data key (from the registry's key
//! service) before they are stored; the first visit's is opened again only to measure changes.

use chrono::{Days, NaiveDate};
use futures::FutureExt;
use jiuzhu_access::Caller;
use jiuzhu_errors::{AppError, FieldViolations, uuid_field};
use jiuzhu_paging::{key_after, token_after};
use jiuzhu_proto::followup::followup_service_server::FollowupService;
use jiuzhu_proto::followup::*;
use jiuzhu_runtime::grpc::{PersonalAccess, run_command};
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::FollowupApi;
use crate::domain::{Figures, FollowupEvent, FollowupPlan, Visit, validate_visit};

const SERVICE: &str = "jiuzhu.followup.v1.FollowupService";

fn visit_state(plan: &FollowupPlan, number: i32) -> VisitState {
    if plan.done.contains_key(&number) {
        VisitState::Done
    } else if plan.closed.is_some() {
        VisitState::Cancelled
    } else if plan.overdue.contains(&number) {
        VisitState::Overdue
    } else {
        VisitState::Scheduled
    }
}

fn plan_view(plan: &FollowupPlan) -> Plan {
    let opened = plan.opened.clone().unwrap_or_default();
    Plan {
        plan_id: opened.plan_id,
        person_id: opened.person_id,
        case_id: opened.case_id,
        office: opened.office,
        category: opened.category,
        paid_on: opened.paid_on,
        visits: opened
            .visits
            .iter()
            .map(|v| {
                let done = plan.done.get(&v.number);
                PlanVisit {
                    scheduled: Some(v.clone()),
                    state: visit_state(plan, v.number).into(),
                    visited_on: done.map(|d| d.visited_on.clone()).unwrap_or_default(),
                    outcome: done.and_then(|d| d.outcome.clone()),
                }
            })
            .collect(),
        closed: plan.closed.is_some(),
        closure_reason: plan.closed.as_ref().map_or(0, |c| c.reason),
        policy_version: opened.policy_version,
        risk_reasons: plan.risk_reasons.clone(),
    }
}

#[tonic::async_trait]
impl FollowupService for FollowupApi {
    async fn get_plan(
        &self,
        request: Request<GetPlanRequest>,
    ) -> Result<Response<GetPlanResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<GetPlanResponse>, Status> = async {
            access.check_purpose()?;
            let plan_id = self.plan_id_of(request.get_ref()).await?;
            let (plan, version) = self
                .store
                .load_aggregate::<FollowupPlan>(&plan_id.to_string())
                .await
                .map_err(AppError::from)?;
            if version == 0 {
                return Err(Status::not_found(format!("no follow-up plan {plan_id}")));
            }
            access.caller().office_check(plan.region_code())?;
            Ok(Response::new(GetPlanResponse {
                plan: Some(plan_view(&plan)),
            }))
        }
        .await;
        access
            .finish(answer, |answer| {
                answer
                    .get_ref()
                    .plan
                    .as_ref()
                    .map(|p| p.person_id.clone())
                    .unwrap_or_default()
            })
            .await
    }

    async fn list_visits(
        &self,
        request: Request<ListVisitsRequest>,
    ) -> Result<Response<ListVisitsResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<ListVisitsResponse>, Status> = async {
            access.check_purpose()?;
            let request = request.into_inner();
            let mut violations = FieldViolations::new();
            let page_size = violations.page_size(request.page_size, 50);
            let today = self.clock.today();
            let due_before = if request.due_before.trim().is_empty() {
                today.checked_add_days(Days::new(30)).unwrap_or(today)
            } else {
                NaiveDate::parse_from_str(request.due_before.trim(), "%Y-%m-%d").unwrap_or_else(|_| {
                    violations.add("due_before", "must be a YYYY-MM-DD date");
                    today
                })
            };
            violations.into_result()?;
            // The page token is the last row's (due date, plan, number).
            let mut violations = FieldViolations::new();
            let after: Option<(NaiveDate, Uuid, i32)> =
                key_after(&mut violations, &request.page_token, |key| match key {
                    [due, plan, number] => Some((
                        NaiveDate::parse_from_str(due, "%Y-%m-%d").ok()?,
                        Uuid::parse_str(plan).ok()?,
                        number.parse().ok()?,
                    )),
                    _ => None,
                });
            violations.into_result()?;
            let rows: Vec<(Uuid, Uuid, i32, NaiveDate, String, i32, i32)> = sqlx::query_as(
                "SELECT plan_id, person_id, number, due_date, office, channel, state FROM visit_board \
                 WHERE ($1 = '' OR office = $1) AND region_code LIKE $9 || '%' \
                 AND (CASE WHEN $2 THEN state IN (1, 2) AND due_date < $3 \
                      ELSE state IN (1, 2) AND due_date <= $4 END) \
                 AND ($5::date IS NULL OR (due_date, plan_id, number) > ($5, $6, $7)) \
                 ORDER BY due_date, plan_id, number LIMIT $8",
            )
            .bind(request.office.trim())
            .bind(request.overdue)
            .bind(today)
            .bind(due_before)
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1))
            .bind(after.map(|a| a.2))
            .bind(page_size + 1)
            // Only the visits of plans within the caller's jurisdiction.
            .bind(access.caller().region_prefix())
            .fetch_all(self.store.pool())
            .await
            .map_err(AppError::storage)?;
            let limit = usize::try_from(page_size).unwrap_or(50);
            let more = rows.len() > limit;
            let visits: Vec<DueVisit> = rows
                .into_iter()
                .take(limit)
                .map(|(plan, person, number, due, office, channel, _)| DueVisit {
                    plan_id: plan.to_string(),
                    person_id: person.to_string(),
                    number,
                    due_date: due.format("%Y-%m-%d").to_string(),
                    office,
                    channel,
                    overdue: due < today,
                })
                .collect();
            let next_page_token = match (more, visits.last()) {
                (true, Some(last)) => token_after(&[&last.due_date, &last.plan_id, &last.number]),
                _ => String::new(),
            };
            Ok(Response::new(ListVisitsResponse {
                visits,
                next_page_token,
            }))

        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, plan_id = %request.get_ref().plan_id))]
    async fn record_visit(
        &self,
        request: Request<RecordVisitRequest>,
    ) -> Result<Response<RecordVisitResponse>, Status> {
        let mut access = PersonalAccess::change(&request, "")?;
        let answer: Result<Response<RecordVisitResponse>, Status> = async {
            let request = request.into_inner();
            let mut violations = FieldViolations::new();
            violations.check_request_id(&request.request_id);
            let plan_id = uuid_field("plan_id", &request.plan_id)?;
            let today = self.clock.today();
            for (field, problem) in validate_visit(
                request.evaluation.as_ref(),
                &request.visited_on,
                request.channel,
                None,
                today,
            ) {
                violations.add(field, problem);
            }
            violations.into_result()?;
            let (plan, _) = self
                .store
                .load_aggregate::<FollowupPlan>(&plan_id.to_string())
                .await
                .map_err(AppError::from)?;
            let person = plan
                .opened
                .as_ref()
                .and_then(|o| Uuid::parse_str(&o.person_id).ok())
                .ok_or_else(|| Status::not_found(format!("no follow-up plan {plan_id}")))?;
            access.about(&person.to_string());
            let audited = access.change_record(&person.to_string());
            let key = self.data_key(person).await?;
            let evaluation = request.evaluation.clone().unwrap_or_default();
            let sealed = key.seal(person, &evaluation).map_err(|error| {
                Status::internal(format!("evaluation cannot be sealed: {error}"))
            })?;
            let baseline = match plan
                .first_visit()
                .and_then(|v| v.sealed_evaluation.as_ref())
            {
                Some(first) => Some(Figures::of(
                    &key.open::<Evaluation>(person, first)
                        .map_err(|error| Status::internal(format!("first visit: {error}")))?,
                )),
                None => None,
            };
            let visit = Visit {
                number: request.number,
                visited_on: request.visited_on.clone(),
                visited_by: access.caller().recorded_as(),
                channel: request.channel,
                evaluation,
                sealed_evaluation: sealed,
            };
            // A monitor may record a missed visit on the plan at the same moment: decide again.
            let command = format!("{SERVICE}/RecordVisit");
            let answer = retry_aborted(|| {
                let (policy, visit) = (self.policy_on(today), visit.clone());
                let (caller, audited) = (access.caller().clone(), audited.clone());
                run_command(
                    &self.store,
                    &command,
                    &request.request_id,
                    &request,
                    move |work| {
                        async move {
                            let events = work
                                .decide_on(&plan_id.to_string(), |plan: &FollowupPlan| {
                                    caller.office_check(plan.region_code())?;
                                    Ok::<_, AppError>(
                                        plan.record_visit(visit, baseline, &policy, today)?,
                                    )
                                })
                                .await?
                                .events;
                            let mut answer = RecordVisitResponse::default();
                            for event in events {
                                match event {
                                    FollowupEvent::VisitRecorded(e) => answer.outcome = e.outcome,
                                    FollowupEvent::ReturnToPovertyRiskFlagged(e) => {
                                        answer.risk_reasons = e.reasons;
                                    }
                                    FollowupEvent::PlanClosed(_) => answer.plan_closed = true,
                                    _ => {}
                                }
                            }
                            audited.write(work.connection().await?).await?;
                            Ok(answer)
                        }
                        .boxed()
                    },
                )
            })
            .await?;
            Ok(Response::new(answer))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, plan_id = %request.get_ref().plan_id))]
    async fn close_plan(
        &self,
        request: Request<ClosePlanRequest>,
    ) -> Result<Response<ClosePlanResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let plan_id = uuid_field("plan_id", &request.plan_id)?;
        violations.into_result()?;
        let reason = ClosureReason::try_from(request.reason).unwrap_or_default();
        let command = format!("{SERVICE}/ClosePlan");
        let answer = retry_aborted(|| {
            let (note, office, by, caller) = (
                request.note.clone(),
                request.handed_to_office.clone(),
                caller.recorded_as(),
                caller.clone(),
            );
            run_command(
                &self.store,
                &command,
                &request.request_id,
                &request,
                move |work| {
                    async move {
                        let plan = work
                            .decide_on(&plan_id.to_string(), |plan: &FollowupPlan| {
                                caller.office_check(plan.region_code())?;
                                Ok::<_, AppError>(plan.close(reason, &note, &office, &by)?)
                            })
                            .await?
                            .after;
                        // Moved away: the new office's plan takes the visits not made yet.
                        let successor = Uuid::now_v7();
                        let handed = plan.handed_over(&successor.to_string());
                        if handed.is_empty() {
                            return Ok(ClosePlanResponse::default());
                        }
                        let person = plan
                            .opened
                            .as_ref()
                            .map(|o| o.person_id.clone())
                            .unwrap_or_default();
                        work.append(&successor.to_string(), 0, &person, &handed)
                            .await
                            .map_err(AppError::from)?;
                        sqlx::query("UPDATE plan_claims SET plan_id = $2 WHERE plan_id = $1")
                            .bind(plan_id)
                            .bind(successor)
                            .execute(work.connection().await?)
                            .await
                            .map_err(AppError::storage)?;
                        Ok(ClosePlanResponse {
                            successor_plan_id: successor.to_string(),
                        })
                    }
                    .boxed()
                },
            )
        })
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_person_trend(
        &self,
        request: Request<GetPersonTrendRequest>,
    ) -> Result<Response<GetPersonTrendResponse>, Status> {
        let access = PersonalAccess::read(
            &request,
            &request.get_ref().purpose,
            &request.get_ref().person_id,
        )?;
        let answer: Result<Response<GetPersonTrendResponse>, Status> = async {
            access.check_purpose()?;
            let person = uuid_field("person_id", &request.get_ref().person_id)?;
            // One person however many records the registry merged: every record's visits.
            let mut conn = self
                .store
                .pool()
                .acquire()
                .await
                .map_err(AppError::storage)?;
            let records = jiuzhu_persons::same_person(&mut conn, person)
                .await
                .map_err(AppError::storage)?;
            drop(conn);
            // A person's trend is for the offices holding one of their plans.
            let caller = access.caller();
            let regions: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT region_code FROM visit_board WHERE person_id = ANY($1)",
            )
            .bind(&records)
            .fetch_all(self.store.pool())
            .await
            .map_err(AppError::storage)?;
            if let Some(region) = regions.first()
                && !regions.iter().any(|region| caller.may_see(region))
            {
                caller.office_check(region)?;
            }
            let stored: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT recorded FROM visit_outcomes WHERE person_id = ANY($1) \
                 AND region_code LIKE $2 || '%' ORDER BY visited_on, number",
            )
            .bind(&records)
            .bind(caller.region_prefix())
            .fetch_all(self.store.pool())
            .await
            .map_err(AppError::storage)?;
            let visits = stored
                .iter()
                .map(|bytes| VisitRecorded::decode(bytes.as_slice()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| Status::internal("a stored visit cannot be decoded"))?;
            let trend = visits
                .last()
                .and_then(|v| v.outcome.as_ref())
                .map_or(0, |o| o.trend);
            Ok(Response::new(GetPersonTrendResponse { visits, trend }))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    async fn get_effect_statistics(
        &self,
        _request: Request<GetEffectStatisticsRequest>,
    ) -> Result<Response<GetEffectStatisticsResponse>, Status> {
        let groups = crate::projections::effect_statistics(self.store.pool())
            .await
            .map_err(AppError::storage)?;
        Ok(Response::new(GetEffectStatisticsResponse {
            groups,
            scoring_method: self.policy_on(self.clock.today()).scoring.method.clone(),
        }))
    }
}

/// Runs `call` again (up to three times) when it lost a race with another writer of the same
/// stream (`ABORTED`): nothing was recorded, and the next try decides on the new state.
async fn retry_aborted<T, F, Fut>(mut call: F) -> Result<T, AppError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    for _ in 0..3 {
        match call().await {
            Err(AppError::Conflict(_)) => continue,
            other => return other,
        }
    }
    call().await
}
