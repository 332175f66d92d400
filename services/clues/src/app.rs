//! Clue acquisition's application layer: the service object every adapter calls (the gRPC
//! adapter and the reaction that closes a clue when its relief case opens), and the commands on
//! one clue (load, decide, append, idempotent on the request id).

use crate::domain::ClueError;
use futures::FutureExt;
use jiuzhu_access::Actor;
use jiuzhu_errors::{AppError, FieldViolations, uuid_field};
use jiuzhu_eventstore::EventStore;
use jiuzhu_proto::clues::*;
use jiuzhu_runtime::grpc::command_of;
use sqlx::PgPool;

use crate::domain::{Closing, Clue as ClueAggregate};
use crate::intake::Intake;

pub(crate) const SERVICE: &str = "jiuzhu.clues.v1.CluesService";

#[derive(Debug, Clone)]
pub struct CluesApi {
    pub(crate) pool: PgPool,
    pub(crate) store: EventStore,
    pub(crate) intake: Intake,
}

impl CluesApi {
    pub fn new(store: EventStore, intake: Intake) -> Self {
        Self {
            pool: store.pool().clone(),
            store,
            intake,
        }
    }
}

impl CluesApi {
    /// Closes a clue: a relief case opened from it, or declined with a reason; a caller only
    /// within its jurisdiction.
    pub async fn close(
        &self,
        actor: Actor,
        request: CloseClueRequest,
    ) -> Result<CloseClueResponse, AppError> {
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let clue_id = uuid_field("clue_id", &request.clue_id)?;
        let closing = match ClueOutcome::try_from(request.outcome) {
            Ok(ClueOutcome::ReliefCaseOpened) => {
                violations.require(&[("relief_case_id", &request.relief_case_id)]);
                Closing::ReliefCaseOpened {
                    relief_case_id: request.relief_case_id.trim().to_owned(),
                }
            }
            Ok(ClueOutcome::Declined) => {
                violations.require(&[("reason", &request.reason)]);
                Closing::Declined {
                    reason: request.reason.trim().to_owned(),
                }
            }
            Ok(ClueOutcome::Unspecified) | Err(_) => {
                violations.add(
                    "outcome",
                    jiuzhu_errors::must_be_one_of(&[
                        ClueOutcome::ReliefCaseOpened.as_str_name(),
                        ClueOutcome::Declined.as_str_name(),
                    ]),
                );
                Closing::Declined {
                    reason: String::new(),
                }
            }
        };
        violations.into_result()?;
        let closed_by = actor.recorded_as(request.closed_by.trim());
        // Closed by the case opened from it: the platform's work, under its internal key.
        let call = command_of(
            &actor,
            &format!("{SERVICE}/CloseClue"),
            &request.request_id,
            &request,
        );
        let answer = self
            .store
            .execute(call, AppError::from, move |work| {
                async move {
                    work.decide_on(&clue_id.to_string(), |clue: &ClueAggregate| {
                        actor.office_check(clue.region_code())?;
                        Ok::<_, AppError>(clue.close(clue_id, closing, &closed_by)?)
                    })
                    .await?;
                    Ok(CloseClueResponse {})
                }
                .boxed()
            })
            .await?;
        Ok(answer)
    }
}

impl From<ClueError> for AppError {
    fn from(error: ClueError) -> Self {
        match error {
            ClueError::NotFound(_) => AppError::not_found(error.to_string()),
            ClueError::Settled { .. }
            | ClueError::AwaitingReview(_)
            | ClueError::NotReferred { .. } => AppError::failed_precondition(error.to_string()),
        }
    }
}
