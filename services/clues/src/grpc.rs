//! Clue acquisition's gRPC shell: intake (see `intake`), the review and referral commands,
//! and reads of the clue board; errors map to status codes once.

use futures::FutureExt;
use jiuzhu_access::{Actor, Caller};
use jiuzhu_errors::{AppError, FieldViolations, uuid_field};
use jiuzhu_paging::{key_after, token_after};
use jiuzhu_proto::clues::clues_service_server::CluesService;
use jiuzhu_proto::clues::*;
use jiuzhu_runtime::grpc::{PersonalAccess, run_command};
use sqlx::Row;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{CluesApi, SERVICE};
use crate::domain::Clue as ClueAggregate;
use crate::intake::Intake;

const CLUE_COLUMNS: &str = "clue_id, party_id, case_no, person_id, probability, origin, explanation, \
    status, procuratorate, reason, region_code, detected_at, outcome, relief_case_id, model_version";

fn clue_from_row(row: &sqlx::postgres::PgRow) -> Result<Clue, sqlx::Error> {
    Ok(Clue {
        clue_id: row.try_get::<Uuid, _>("clue_id")?.to_string(),
        party_id: row.try_get::<Uuid, _>("party_id")?.to_string(),
        case_no: row.try_get("case_no")?,
        person_id: row.try_get::<Uuid, _>("person_id")?.to_string(),
        probability: row.try_get("probability")?,
        origin: row.try_get("origin")?,
        explanation: row.try_get("explanation")?,
        status: row.try_get("status")?,
        procuratorate: row.try_get("procuratorate")?,
        reason: row.try_get("reason")?,
        region_code: row.try_get("region_code")?,
        detected_at: Some(jiuzhu_proto::time::timestamp(row.try_get("detected_at")?)),
        outcome: row.try_get("outcome")?,
        relief_case_id: row.try_get("relief_case_id")?,
        model_version: row.try_get("model_version")?,
    })
}

/// The streamed answer to one request: the answer, or the error with its field details.
async fn streamed_answer(intake: &Intake, request: ReportPartyRequest) -> ReportPartiesResponse {
    let request_id = request.request_id.clone();
    match intake.report(request).await {
        Ok(answer) => ReportPartiesResponse {
            request_id,
            answer: Some(answer),
            ..ReportPartiesResponse::default()
        },
        Err(error) => {
            let field_errors = match &error {
                AppError::Invalid(violations) => violations
                    .iter()
                    .map(|(field, description)| FieldError {
                        field: field.to_owned(),
                        description: description.to_owned(),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let status = Status::from(error);
            ReportPartiesResponse {
                request_id,
                answer: None,
                error_code: format!("{:?}", status.code()),
                error_message: status.message().to_owned(),
                field_errors,
            }
        }
    }
}

#[tonic::async_trait]
impl CluesService for CluesApi {
    type ReportPartiesStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<ReportPartiesResponse, Status>> + Send>,
    >;

    async fn report_parties(
        &self,
        request: Request<tonic::Streaming<ReportPartiesRequest>>,
    ) -> Result<Response<Self::ReportPartiesStream>, Status> {
        let inbound = request.into_inner();
        let intake = self.intake.clone();
        // One answer per request, in order; a broken stream ends the answers.
        let answers = futures::stream::unfold(Some((inbound, intake)), |state| async move {
            let (mut inbound, intake) = state?;
            match inbound.message().await {
                Ok(Some(request)) => {
                    let answer = streamed_answer(&intake, request.party.unwrap_or_default()).await;
                    Some((Ok(answer), Some((inbound, intake))))
                }
                Ok(None) => None,
                Err(status) => Some((Err(status), None)),
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn get_linkage_index_status(
        &self,
        _request: Request<GetLinkageIndexStatusRequest>,
    ) -> Result<Response<GetLinkageIndexStatusResponse>, Status> {
        let (persons, applied_events) = self.intake.caught_up_index().await?.status().await;
        Ok(Response::new(GetLinkageIndexStatusResponse {
            indexed_persons: i64::try_from(persons).unwrap_or(i64::MAX),
            applied_events,
        }))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn report_party(
        &self,
        request: Request<ReportPartyRequest>,
    ) -> Result<Response<ReportPartyResponse>, Status> {
        Ok(Response::new(
            self.intake.report(request.into_inner()).await?,
        ))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, clue_id = %request.get_ref().clue_id))]
    async fn confirm_clue(
        &self,
        request: Request<ConfirmClueRequest>,
    ) -> Result<Response<ConfirmClueResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let clue_id = uuid_field("clue_id", &request.clue_id)?;
        violations.require(&[("reviewer", &request.reviewer)]);
        violations.into_result()?;
        let (reviewer, reason) = (request.reviewer.clone(), request.reason.clone());
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/ConfirmClue"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    work.decide_on(&clue_id.to_string(), |clue: &ClueAggregate| {
                        caller.office_check(clue.region_code())?;
                        Ok::<_, AppError>(clue.confirm(clue_id, &reviewer, &reason)?)
                    })
                    .await?;
                    Ok(ConfirmClueResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn reject_clue(
        &self,
        request: Request<RejectClueRequest>,
    ) -> Result<Response<RejectClueResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let clue_id = uuid_field("clue_id", &request.clue_id)?;
        violations.require(&[("reviewer", &request.reviewer), ("reason", &request.reason)]);
        violations.into_result()?;
        let (reviewer, reason) = (request.reviewer.clone(), request.reason.clone());
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RejectClue"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    work.decide_on(&clue_id.to_string(), |clue: &ClueAggregate| {
                        caller.office_check(clue.region_code())?;
                        Ok::<_, AppError>(clue.reject(clue_id, &reviewer, &reason)?)
                    })
                    .await?;
                    Ok(RejectClueResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn refer_clue(
        &self,
        request: Request<ReferClueRequest>,
    ) -> Result<Response<ReferClueResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let clue_id = uuid_field("clue_id", &request.clue_id)?;
        violations.into_result()?;
        let referred_by = caller.recorded_as();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/ReferClue"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    work.decide_on(&clue_id.to_string(), |clue: &ClueAggregate| {
                        caller.office_check(clue.region_code())?;
                        Ok::<_, AppError>(clue.refer(clue_id, &referred_by)?)
                    })
                    .await?;
                    Ok(ReferClueResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn close_clue(
        &self,
        request: Request<CloseClueRequest>,
    ) -> Result<Response<CloseClueResponse>, Status> {
        let caller = Caller::of(&request)?;
        Ok(Response::new(
            self.close(Actor::Caller(caller), request.into_inner())
                .await?,
        ))
    }

    async fn get_clue(
        &self,
        request: Request<GetClueRequest>,
    ) -> Result<Response<GetClueResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<GetClueResponse>, Status> = async {
            access.check_purpose()?;
            let clue_id = uuid_field("clue_id", &request.get_ref().clue_id)?;
            let row = sqlx::query(&format!(
                "SELECT {CLUE_COLUMNS} FROM clues WHERE clue_id = $1"
            ))
            .bind(clue_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(AppError::storage)?
            .ok_or_else(|| Status::not_found(format!("no clue {clue_id}")))?;
            let clue = clue_from_row(&row).map_err(AppError::storage)?;
            access.caller().check_jurisdiction(&clue.region_code)?;
            Ok(Response::new(GetClueResponse { clue: Some(clue) }))
        }
        .await;
        access
            .finish(answer, |answer| {
                answer
                    .get_ref()
                    .clue
                    .as_ref()
                    .map(|c| c.person_id.clone())
                    .unwrap_or_default()
            })
            .await
    }

    async fn list_clues(
        &self,
        request: Request<ListCluesRequest>,
    ) -> Result<Response<ListCluesResponse>, Status> {
        // An office lists only the clues of its own jurisdiction.
        let scope = jiuzhu_access::Caller::of(&request)?
            .region_prefix()
            .to_owned();
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        let page_size = violations.page_size(request.page_size, 50);
        if ClueStatus::try_from(request.status).is_err() {
            violations.add("status", format!("{} is not a clue status", request.status));
        }
        let after = key_after(&mut violations, &request.page_token, |key| match key {
            [clue] => Uuid::parse_str(clue).ok(),
            _ => None,
        });
        if !(0.0..=1.0).contains(&request.min_probability) {
            violations.add("min_probability", "must be between 0 and 1");
        }
        let region = request.region_code.trim();
        if region.len() > 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
            violations.add(
                "region_code",
                "must be a region code or its leading digits (e.g. 52, 5201, 520102)",
            );
        }
        let mut moment = |field: &str, at: Option<&prost_types::Timestamp>| {
            let at = at?;
            let parsed = jiuzhu_proto::time::utc(at);
            if parsed.is_none() {
                violations.add(field, "is not a valid timestamp");
            }
            parsed
        };
        let before = moment("detected_before", request.detected_before.as_ref());
        let since = moment("detected_after", request.detected_after.as_ref());
        violations.into_result()?;
        // A region prefix is a literal: `_` and `%` cannot occur in it after the check above.
        let rows = sqlx::query(&format!(
            "SELECT {CLUE_COLUMNS} FROM clues WHERE ($1 = 0 OR status = $1) \
             AND ($2::uuid IS NULL OR clue_id < $2) \
             AND ($4 = '' OR procuratorate = $4) \
             AND ($5 = '' OR region_code LIKE $5 || '%') \
             AND probability >= $6 \
             AND ($7::timestamptz IS NULL OR detected_at < $7) \
             AND ($8::timestamptz IS NULL OR detected_at >= $8) \
             AND ($9 = '' OR region_code LIKE $9 || '%') \
             ORDER BY clue_id DESC LIMIT $3"
        ))
        .bind(request.status)
        .bind(after)
        .bind(page_size + 1)
        .bind(request.procuratorate.trim())
        .bind(region)
        .bind(request.min_probability)
        .bind(before)
        .bind(since)
        .bind(&scope)
        .fetch_all(&self.pool)
        .await
        .map_err(AppError::storage)?;
        let mut clues = rows
            .iter()
            .map(clue_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(AppError::storage)?;
        let next_page_token = if clues.len() as i64 > page_size {
            clues.truncate(usize::try_from(page_size).unwrap_or(50));
            clues
                .last()
                .map(|c| token_after(&[&c.clue_id]))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListCluesResponse {
            clues,
            next_page_token,
        }))
    }
}
