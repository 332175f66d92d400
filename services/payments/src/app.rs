//! The payments service's application layer: the service object every adapter calls (the
//! gRPC adapter, the reactions to approvals and payee events, reconciliation), and the one way
//! a command reaches a disbursement (load, decide, append).

use std::sync::Arc;

use crate::settings::ProviderSettings;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::EventStore;
use jiuzhu_proto::payments::*;
use jiuzhu_vault::RemoteKeys;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{Disbursement as DisbursementAggregate, PaymentsEvent, State};

pub(crate) fn state_of(state: State) -> DisbursementState {
    match state {
        State::Unknown => DisbursementState::Unspecified,
        State::Ordered => DisbursementState::Ordered,
        State::WaitingForFunds => DisbursementState::WaitingForFunds,
        State::Reserved => DisbursementState::Reserved,
        State::Submitted => DisbursementState::Submitted,
        State::Retryable => DisbursementState::Retryable,
        State::Failed => DisbursementState::Failed,
        State::Succeeded => DisbursementState::Succeeded,
        State::Cancelled => DisbursementState::Cancelled,
        State::Reversed => DisbursementState::Reversed,
    }
}

pub(crate) const SERVICE: &str = "jiuzhu.payments.v1.PaymentsService";

#[derive(Debug, Clone)]
pub struct PaymentsApi {
    pub(crate) store: EventStore,
    keys: RemoteKeys,
    settings: ProviderSettings,
    /// Wakes the submitter when a reservation commits.
    wake: Arc<Notify>,
}

impl PaymentsApi {
    pub fn new(
        store: EventStore,
        keys: RemoteKeys,
        settings: ProviderSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            keys,
            settings,
            wake,
        }
    }

    pub fn keys(&self) -> &RemoteKeys {
        &self.keys
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// Tells the submitter there is work now (it also looks every `poll_ms`).
    pub fn wake_submitter(&self) {
        self.wake.notify_one();
    }

    /// A disbursement with its whole history, from its stream.
    /// A disbursement as `caller` may see it: only the office holding its case, or a
    /// nationwide role.
    pub(crate) async fn disbursement(
        &self,
        caller: &jiuzhu_access::Caller,
        id: Uuid,
    ) -> Result<Disbursement, AppError> {
        let events = self
            .store
            .load_stream(&id.to_string(), 0)
            .await
            .map_err(AppError::from)?;
        if events.is_empty() {
            return Err(AppError::not_found(format!("no disbursement {id}")));
        }
        let mut aggregate = DisbursementAggregate::default();
        let mut history = Vec::with_capacity(events.len());
        for event in &events {
            if let Some(decoded) = event.decode::<PaymentsEvent>().map_err(AppError::from)? {
                jiuzhu_eventstore::Aggregate::apply(&mut aggregate, &decoded);
            }
            history.push(HistoryEntry {
                event_type: event.event_type.clone(),
                occurred_at: event.occurred_at.to_rfc3339(),
                version: event.stream_version,
            });
        }
        caller.office_check(aggregate.region_code())?;
        let ordered = aggregate.ordered.clone().unwrap_or_default();
        Ok(Disbursement {
            disbursement_id: ordered.disbursement_id,
            case_id: ordered.case_id,
            instalment: ordered.instalment,
            person_id: ordered.person_id,
            procuratorate: ordered.procuratorate,
            amount: ordered.amount,
            state: state_of(aggregate.state).into(),
            attempt: aggregate.attempt,
            payee_account_masked: aggregate.payee_account_masked,
            history,
            failure_reason: aggregate.failure_reason,
            provider_reference: aggregate.provider_reference,
            supplement: ordered.supplement,
        })
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }
}

impl From<crate::domain::DisbursementError> for AppError {
    fn from(error: crate::domain::DisbursementError) -> Self {
        use crate::domain::DisbursementError;
        let message = error.to_string();
        match error {
            DisbursementError::NotFound(_) => AppError::not_found(message),
            DisbursementError::WrongState { .. } => AppError::failed_precondition(message),
            DisbursementError::Payee(_) => FieldViolations::single("payee", message),
        }
    }
}
