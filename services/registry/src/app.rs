//! The registry's application layer: the service object the gRPC adapter calls, and the one
//! way a command reaches a person or household stream (load, decide, append, idempotent on its
//! request id). Bulk imports and department feeds come through the same claims and sealing.

use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::{EventStore, UnitOfWork};

use crate::domain::{RegistryError, Violation};
use jiuzhu_vault::Vault;
use uuid::Uuid;

pub(crate) const SERVICE: &str = "jiuzhu.registry.v1.RegistryService";

#[derive(Debug, Clone)]
pub struct RegistryApi {
    pub(crate) store: EventStore,
    pub(crate) vault: Vault,
}

impl RegistryApi {
    pub fn new(store: EventStore, vault: Vault) -> Self {
        Self { store, vault }
    }
}

pub(crate) async fn load<A: jiuzhu_eventstore::Aggregate>(
    work: &mut UnitOfWork<'_>,
    stream: Uuid,
) -> Result<(A, i64), AppError> {
    work.load::<A>(&stream.to_string())
        .await
        .map_err(AppError::from)
}

pub(crate) async fn append(
    work: &mut UnitOfWork<'_>,
    stream: Uuid,
    version: i64,
    events: &[crate::domain::RegistryEvent],
) -> Result<(), AppError> {
    let stream = stream.to_string();
    work.append(&stream, version, &stream, events)
        .await
        .map_err(AppError::from)?;
    Ok(())
}

impl From<RegistryError> for AppError {
    fn from(error: RegistryError) -> Self {
        use RegistryError::*;
        match error {
            Invalid(found) => violations_status(FieldViolations::new(), found),
            AlreadyRegistered(_) | ResidentIdTaken(_) => {
                AppError::already_exists(error.to_string())
            }
            PersonNotFound(_) | UnknownStatus { .. } | HouseholdNotFound(_) => {
                AppError::not_found(error.to_string())
            }
            MergedInto { .. }
            | StatusAlreadyEnded(_)
            | EndBeforeStart { .. }
            | SelfMerge
            | NotMerged(_)
            | AlreadyInHousehold { .. }
            | NotInHousehold { .. }
            | SecondHead { .. }
            | Erased(_) => AppError::failed_precondition(error.to_string()),
        }
    }
}

pub(crate) fn violations_status(violations: FieldViolations, found: Vec<Violation>) -> AppError {
    let mut violations = violations;
    for v in found {
        violations.add(v.field, v.reason);
    }
    violations.into_error()
}
