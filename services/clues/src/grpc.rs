//! Clue acquisition's gRPC shell: validates, screens and matches inside an idempotent unit of
//! work, and maps errors to status codes once.

use std::sync::Arc;

use futures::FutureExt;
use jiuzhu_eventstore::{EventStore, UnitOfWork};
use jiuzhu_linkage::{Model, Written, normalise};
use jiuzhu_proto::clues::clues_service_server::CluesService;
use jiuzhu_proto::clues::*;
use jiuzhu_runtime::grpc::{
    FieldViolations, database_status, decode_answer, run_command, store_status, uuid_field,
};
use prost::Message;
use sqlx::{PgPool, Row};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{Clue as ClueAggregate, ClueError, CluesEvent, report};
use crate::matching;
use crate::policy::ScreeningPolicy;

const SERVICE: &str = "jiuzhu.clues.v1.CluesService";

#[derive(Debug, Clone)]
pub struct CluesApi {
    pool: PgPool,
    store: EventStore,
    policy: Arc<ScreeningPolicy>,
    model: Arc<Model>,
}

impl CluesApi {
    pub fn new(store: EventStore, policy: ScreeningPolicy, model: Model) -> Self {
        Self {
            pool: store.pool().clone(),
            store,
            policy: Arc::new(policy),
            model: Arc::new(model),
        }
    }
}

impl From<ClueError> for Status {
    fn from(error: ClueError) -> Self {
        match error {
            ClueError::NotFound(_) => Status::not_found(error.to_string()),
            ClueError::Settled { .. } | ClueError::AwaitingReview(_) => {
                Status::failed_precondition(error.to_string())
            }
        }
    }
}

fn money_field(
    violations: &mut FieldViolations,
    field: &str,
    money: Option<&jiuzhu_proto::common::Money>,
) {
    if money.is_some_and(|m| m.fen < 0) {
        violations.add(field, "cannot be negative");
    }
}

fn clue_view(detected: &ClueDetected) -> Clue {
    Clue {
        clue_id: detected.clue_id.clone(),
        party_id: detected.party_id.clone(),
        case_no: detected.case_no.clone(),
        person_id: detected.person_id.clone(),
        probability: detected.probability,
        origin: detected.origin,
        explanation: detected.explanation.clone(),
        status: if detected.origin == ClueOrigin::Review as i32 {
            ClueStatus::AwaitingReview
        } else {
            ClueStatus::Detected
        } as i32,
        procuratorate: detected.procuratorate.clone(),
        reason: String::new(),
    }
}

async fn load_clue(work: &mut UnitOfWork<'_>, clue: Uuid) -> Result<(ClueAggregate, i64), Status> {
    work.load::<ClueAggregate>(&clue.to_string())
        .await
        .map_err(store_status)
}

async fn append_clue(
    work: &mut UnitOfWork<'_>,
    clue: Uuid,
    version: i64,
    person: &str,
    events: &[CluesEvent],
) -> Result<(), Status> {
    work.append(&clue.to_string(), version, person, events)
        .await
        .map_err(store_status)?;
    Ok(())
}

const CLUE_COLUMNS: &str = "clue_id, party_id, case_no, person_id, probability, origin, explanation, \
    status, procuratorate, reason";

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
    })
}

#[tonic::async_trait]
impl CluesService for CluesApi {
    async fn get_linkage_index_status(
        &self,
        _request: Request<GetLinkageIndexStatusRequest>,
    ) -> Result<Response<GetLinkageIndexStatusResponse>, Status> {
        let row = sqlx::query("SELECT persons, applied_events FROM linkage_index_stats")
            .fetch_one(&self.pool)
            .await
            .map_err(database_status)?;
        Ok(Response::new(GetLinkageIndexStatusResponse {
            indexed_persons: row.try_get("persons").map_err(database_status)?,
            applied_events: row.try_get("applied_events").map_err(database_status)?,
        }))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn report_party(
        &self,
        request: Request<ReportPartyRequest>,
    ) -> Result<Response<ReportPartyResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        violations.require(&[
            ("case_no", &request.case_no),
            ("party_ref", &request.party_ref),
            ("procuratorate", &request.procuratorate),
            ("full_name", &request.full_name),
        ]);
        let role = match PartyRole::try_from(request.role) {
            Ok(PartyRole::Unspecified) | Err(_) => {
                violations.add("role", format!("{} is not a party role", request.role));
                PartyRole::Unspecified
            }
            Ok(role) => role,
        };
        let harm = request.harm.unwrap_or_default();
        if !(0..=10).contains(&harm.disability_grade) {
            violations.add("harm.disability_grade", "must be 0 (none) or 1 to 10");
        }
        money_field(
            &mut violations,
            "harm.property_loss",
            harm.property_loss.as_ref(),
        );
        money_field(
            &mut violations,
            "harm.medical_costs",
            harm.medical_costs.as_ref(),
        );
        money_field(
            &mut violations,
            "harm.compensation_received",
            harm.compensation_received.as_ref(),
        );
        if !request.birth_date.trim().is_empty() && normalise::date(&request.birth_date).is_none() {
            violations.add(
                "birth_date",
                format!(
                    "`{}` is not a date as people write them",
                    request.birth_date.trim()
                ),
            );
        }
        if !request.incident_date.trim().is_empty()
            && chrono::NaiveDate::parse_from_str(request.incident_date.trim(), "%Y-%m-%d").is_err()
        {
            violations.add("incident_date", "is not a YYYY-MM-DD date");
        }
        if !(0..=120).contains(&request.approximate_age) {
            violations.add("approximate_age", "must be 0 (unknown) to 120");
        }
        violations.into_result()?;

        let (policy, model) = (self.policy.clone(), self.model.clone());
        let party = request.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/ReportParty"),
            &request.request_id,
            &request,
            move |work| {
                let request = party;
                async move {
                    let known: Option<Vec<u8>> = sqlx::query_scalar(
                        "SELECT answer FROM party_refs WHERE case_no = $1 AND party_ref = $2",
                    )
                    .bind(request.case_no.trim())
                    .bind(request.party_ref.trim())
                    .fetch_optional(work.connection())
                    .await
                    .map_err(database_status)?;
                    if let Some(answer) = known {
                        return decode_answer(&answer);
                    }
                    let party_id = Uuid::now_v7();
                    let region = request
                        .region
                        .as_ref()
                        .map(|r| r.code.trim().to_owned())
                        .unwrap_or_default();
                    let reported = PartyReported {
                        party_id: party_id.to_string(),
                        case_no: request.case_no.trim().to_owned(),
                        party_ref: request.party_ref.trim().to_owned(),
                        procuratorate: request.procuratorate.trim().to_owned(),
                        case_type: request.case_type.clone(),
                        charge: request.charge.clone(),
                        incident_date: request.incident_date.trim().to_owned(),
                        role: role.into(),
                        harm: Some(harm),
                        region_code: region.clone(),
                    };
                    let screened = policy.screen(role, &harm);
                    let found = if screened.is_none() {
                        let party = matching::party(
                            &Written {
                                name: &request.full_name,
                                resident_id: &request.id_number,
                                gender: &request.gender,
                                birth_date: &request.birth_date,
                                phone: &request.phone,
                                region_code: &region,
                                township: "",
                                village: "",
                            },
                            &request.address,
                            request.approximate_age,
                            &request.incident_date,
                        );
                        matching::best_match(work.connection(), &party, &model, &policy)
                            .await
                            .map_err(database_status)?
                    } else {
                        None
                    };
                    let clue_id = Uuid::now_v7();
                    let (events, clue) =
                        report(reported, screened.clone(), &policy.version, found, clue_id);
                    let stream = party_id.to_string();
                    work.append(&stream, 0, &stream, &events)
                        .await
                        .map_err(store_status)?;
                    if let Some(detected) = &clue {
                        append_clue(
                            work,
                            clue_id,
                            0,
                            &detected.person_id,
                            &[CluesEvent::ClueDetected(detected.clone())],
                        )
                        .await?;
                        tracing::info!(%clue_id, probability = detected.probability, "clue detected");
                    }
                    sqlx::query(
                        "INSERT INTO party_identities (party_id, full_name, id_number, gender, birth_date, \
                         phone, region_code, address) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(party_id)
                    .bind(request.full_name.trim())
                    .bind(request.id_number.trim())
                    .bind(request.gender.trim())
                    .bind(request.birth_date.trim())
                    .bind(request.phone.trim())
                    .bind(&region)
                    .bind(request.address.trim())
                    .execute(work.connection())
                    .await
                    .map_err(database_status)?;
                    let answer = ReportPartyResponse {
                        party_id: party_id.to_string(),
                        screened_out: screened.unwrap_or_default(),
                        clue: clue.as_ref().map(clue_view),
                    };
                    let claimed: Option<Uuid> = sqlx::query_scalar(
                        "INSERT INTO party_refs (case_no, party_ref, party_id, answer) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (case_no, party_ref) DO NOTHING RETURNING party_id",
                    )
                    .bind(request.case_no.trim())
                    .bind(request.party_ref.trim())
                    .bind(party_id)
                    .bind(answer.encode_to_vec())
                    .fetch_optional(work.connection())
                    .await
                    .map_err(database_status)?;
                    if claimed.is_none() {
                        return Err(Status::aborted(
                            "the same case party is being reported concurrently; send it again",
                        ));
                    }
                    Ok(answer)
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn confirm_clue(
        &self,
        request: Request<ConfirmClueRequest>,
    ) -> Result<Response<ConfirmClueResponse>, Status> {
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
                    let (clue, version) = load_clue(work, clue_id).await?;
                    let events = clue.confirm(clue_id, &reviewer, &reason)?;
                    append_clue(work, clue_id, version, clue.person_id(), &events).await?;
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
                    let (clue, version) = load_clue(work, clue_id).await?;
                    let events = clue.reject(clue_id, &reviewer, &reason)?;
                    append_clue(work, clue_id, version, clue.person_id(), &events).await?;
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
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let clue_id = uuid_field("clue_id", &request.clue_id)?;
        violations.require(&[("referred_by", &request.referred_by)]);
        violations.into_result()?;
        let referred_by = request.referred_by.clone();
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/ReferClue"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let (clue, version) = load_clue(work, clue_id).await?;
                    let events = clue.refer(clue_id, &referred_by)?;
                    append_clue(work, clue_id, version, clue.person_id(), &events).await?;
                    Ok(ReferClueResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_clue(
        &self,
        request: Request<GetClueRequest>,
    ) -> Result<Response<GetClueResponse>, Status> {
        let clue_id = uuid_field("clue_id", &request.get_ref().clue_id)?;
        let row = sqlx::query(&format!(
            "SELECT {CLUE_COLUMNS} FROM clues WHERE clue_id = $1"
        ))
        .bind(clue_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(database_status)?
        .ok_or_else(|| Status::not_found(format!("no clue {clue_id}")))?;
        Ok(Response::new(GetClueResponse {
            clue: Some(clue_from_row(&row).map_err(database_status)?),
        }))
    }

    async fn list_clues(
        &self,
        request: Request<ListCluesRequest>,
    ) -> Result<Response<ListCluesResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        let page_size = match request.page_size {
            0 => 50,
            n if (1..=500).contains(&n) => i64::from(n),
            _ => {
                violations.add("page_size", "must be between 1 and 500");
                50
            }
        };
        if ClueStatus::try_from(request.status).is_err() {
            violations.add("status", format!("{} is not a clue status", request.status));
        }
        let after = if request.page_token.is_empty() {
            None
        } else {
            let parsed = Uuid::parse_str(&request.page_token).ok();
            if parsed.is_none() {
                violations.add("page_token", "is not a token this service issued");
            }
            parsed
        };
        violations.into_result()?;
        let rows = sqlx::query(&format!(
            "SELECT {CLUE_COLUMNS} FROM clues WHERE ($1 = 0 OR status = $1) \
             AND ($2::uuid IS NULL OR clue_id < $2) ORDER BY clue_id DESC LIMIT $3"
        ))
        .bind(request.status)
        .bind(after)
        .bind(page_size + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(database_status)?;
        let mut clues = rows
            .iter()
            .map(clue_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(database_status)?;
        let next_page_token = if clues.len() as i64 > page_size {
            clues.truncate(usize::try_from(page_size).unwrap_or(50));
            clues.last().map(|c| c.clue_id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListCluesResponse {
            clues,
            next_page_token,
        }))
    }
}
