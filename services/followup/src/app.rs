//! The follow-up service's application layer: the service object every adapter calls (the
//! gRPC adapter, the payment reaction that opens plans, the visit monitor), the policy in force
//! by date, the person's data key, and the one way a command reaches a plan (load, decide,
//! append).

use std::sync::Arc;

use chrono::NaiveDate;
use jiuzhu_clock::Clock;
use jiuzhu_errors::{AppError, FieldViolations, uuid_field};
use jiuzhu_eventstore::EventStore;
use jiuzhu_proto::followup::*;
use jiuzhu_vault::{DataKey, KeyState, RemoteKeys};
use uuid::Uuid;

use crate::domain::PlanError;
use crate::policy::FollowupPolicy;

#[derive(Debug, Clone)]
pub struct FollowupApi {
    pub(crate) store: EventStore,
    /// The follow-up policy of every policy set, by the day it takes effect.
    policies: Arc<Vec<(NaiveDate, Arc<FollowupPolicy>)>>,
    keys: RemoteKeys,
    pub(crate) clock: Clock,
}

impl FollowupApi {
    /// `policies`: each set's follow-up policy with the day it takes effect, ascending.
    pub fn new(
        store: EventStore,
        policies: Vec<(NaiveDate, FollowupPolicy)>,
        keys: RemoteKeys,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            policies: Arc::new(
                policies
                    .into_iter()
                    .map(|(from, policy)| (from, Arc::new(policy)))
                    .collect(),
            ),
            keys,
            clock,
        }
    }

    /// The follow-up policy in force on `day`.
    pub(crate) fn policy_on(&self, day: NaiveDate) -> Arc<FollowupPolicy> {
        jiuzhu_policy::in_force_on(&self.policies, day)
            .cloned()
            .unwrap_or_default()
    }

    /// The person's data key (refused when the person was erased).
    pub(crate) async fn data_key(&self, person: Uuid) -> Result<DataKey, AppError> {
        let keys = self
            .keys
            .keys(&[person])
            .await
            .map_err(|error| AppError::unavailable(format!("data keys: {error}")))?;
        match keys.get(&person) {
            Some(KeyState::Live(key)) => Ok(key.clone()),
            Some(KeyState::Erased) => Err(AppError::failed_precondition(
                "the person's personal data was erased: no evaluation can be recorded",
            )),
            None => Err(AppError::unavailable("no data key for the person yet")),
        }
    }

    pub(crate) async fn plan_id_of(&self, request: &GetPlanRequest) -> Result<Uuid, AppError> {
        if !request.plan_id.trim().is_empty() {
            return uuid_field("plan_id", &request.plan_id);
        }
        let case_id = uuid_field("case_id", &request.case_id)?;
        sqlx::query_scalar("SELECT plan_id FROM plan_claims WHERE case_id = $1")
            .bind(case_id)
            .fetch_optional(self.store.pool())
            .await
            .map_err(AppError::storage)?
            .ok_or_else(|| AppError::not_found(format!("no follow-up plan for case {case_id}")))
    }
}

impl From<PlanError> for AppError {
    fn from(error: PlanError) -> Self {
        let message = error.to_string();
        match error {
            PlanError::NotFound(_) => AppError::not_found(message),
            PlanError::UnknownVisit(_) => FieldViolations::single("number", message),
            PlanError::Closed | PlanError::AlreadyRecorded(_) => {
                AppError::failed_precondition(message)
            }
            PlanError::Invalid(problems) => {
                let mut violations = FieldViolations::new();
                for (field, problem) in problems {
                    violations.add(field, problem);
                }
                violations.into_error()
            }
        }
    }
}
