//! The registry's application layer: the service object the gRPC adapter calls, and the one
//! mapping of the registry's refusals to application errors. A household command goes through
//! the platform's command path (`UnitOfWork::decide_on`); a person's stream through
//! `sealing::load_person` / `append_person`, the same steps with personal data sealed. Bulk
//! imports and department feeds come through the same claims and sealing.

use jiuzhu_access::{Caller, Role};
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::EventStore;
use jiuzhu_vault::Vault;

use crate::domain::{RegistryError, Violation};

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

impl From<RegistryError> for AppError {
    fn from(error: RegistryError) -> Self {
        use RegistryError::*;
        match error {
            Invalid(found) => violations_error(FieldViolations::new(), found),
            AlreadyRegistered(_) | ResidentIdTaken(_) | HeldAsAnotherRecord { .. } => {
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

pub(crate) fn violations_error(violations: FieldViolations, found: Vec<Violation>) -> AppError {
    let mut violations = violations;
    for v in found {
        violations.add(v.field, v.reason);
    }
    violations.into_error()
}

/// The department a change is recorded for. An integrator speaks for the department its
/// certificate names, never another: the request may only repeat it (or leave it empty). Other
/// roles key in a department's record and name the department.
pub(crate) fn department_of(caller: &Caller, stated: &str) -> Result<String, AppError> {
    let stated = stated.trim();
    if caller.identity.role != Role::DepartmentIntegrator {
        return Ok(stated.to_owned());
    }
    let Some(department) = caller.department() else {
        return Err(AppError::permission_denied(
            "an integrator's certificate must name its department \
             (…/role/department_integrator/department/<name>/…)",
        ));
    };
    if !stated.is_empty() && stated != department {
        return Err(FieldViolations::single(
            "source_department",
            format!("`{stated}` is not the department of your certificate (`{department}`)"),
        ));
    }
    Ok(department.to_owned())
}
