//! gRPC conventions shared by every service: field-level `INVALID_ARGUMENT` errors
//! (`google.rpc.BadRequest` details), the request-id rule, and one mapping of event-store errors
//! to status codes.

use jiuzhu_eventstore::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Collects field violations and turns them into one `INVALID_ARGUMENT` status.
#[derive(Debug, Default)]
pub struct FieldViolations {
    violations: Vec<(String, String)>,
}

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push((field.into(), description.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// Requires each named text field to be non-blank.
    pub fn require(&mut self, fields: &[(&str, &str)]) {
        for (field, value) in fields {
            if value.trim().is_empty() {
                self.add(*field, "is required");
            }
        }
    }

    /// Checks the caller's request id: present, at most 128 characters, printable ASCII.
    pub fn check_request_id(&mut self, request_id: &str) {
        if request_id.is_empty() {
            self.add(
                "request_id",
                "is required: every command takes a caller-supplied request id",
            );
        } else if request_id.len() > MAX_REQUEST_ID_LEN {
            self.add(
                "request_id",
                format!("must be at most {MAX_REQUEST_ID_LEN} characters"),
            );
        } else if !request_id.bytes().all(|b| b.is_ascii_graphic()) {
            self.add("request_id", "must be printable ASCII without spaces");
        }
    }

    /// A list's `page_size`: `default` when 0, else 1 to 500 (outside that, a violation).
    pub fn page_size(&mut self, requested: i32, default: i64) -> i64 {
        match requested {
            0 => default,
            n if (1..=500).contains(&n) => i64::from(n),
            _ => {
                self.add("page_size", "must be between 1 and 500");
                default
            }
        }
    }

    /// `Ok(())` when nothing was violated, else the status naming every bad field.
    pub fn into_result(self) -> Result<(), Status> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(self.into_status())
        }
    }

    /// `INVALID_ARGUMENT` with a `google.rpc.BadRequest` detail listing every violation.
    pub fn into_status(self) -> Status {
        let summary = self
            .violations
            .iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut details = ErrorDetails::new();
        for (field, description) in self.violations {
            details.add_bad_request_violation(field, description);
        }
        Status::with_error_details(
            Code::InvalidArgument,
            format!("invalid request: {summary}"),
            details,
        )
    }

    /// A status for a single bad field.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Status {
        let mut violations = Self::new();
        violations.add(field, description);
        violations.into_status()
    }
}

/// The one classification of a command's failure inside a consumer (a reaction to another
/// service's event, a department's inbound record):
/// - an outage (unavailable, timed out, out of resources) is retried until it passes;
/// - a failure that may pass (internal, unknown, a lost race) is retried up to the consumer's
///   `max_attempts`, then dead-lettered;
/// - anything else (invalid, not found, refused, in the wrong state) can never apply and is
///   dead-lettered at once, with the message and every field violation as the reason.
///
/// Outcomes that mean "nothing left to do" (say, the case exists already) are the reaction's
/// own to decide, before it calls this.
pub fn consumer_error(status: Status) -> jiuzhu_messaging::ProjectionError {
    use jiuzhu_messaging::ProjectionError;
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
            ProjectionError::Unavailable(status.message().to_owned())
        }
        Code::Aborted | Code::Internal | Code::Unknown | Code::DataLoss | Code::Cancelled => {
            ProjectionError::Failed(status.message().to_owned())
        }
        _ => {
            let fields: Vec<String> = status
                .get_details_bad_request()
                .map(|bad| {
                    bad.field_violations
                        .into_iter()
                        .map(|v| format!("{}: {}", v.field, v.description))
                        .collect()
                })
                .unwrap_or_default();
            ProjectionError::Rejected(if fields.is_empty() {
                status.message().to_owned()
            } else {
                format!("{}: {}", status.message(), fields.join("; "))
            })
        }
    }
}

/// The one mapping of event-store errors to gRPC status codes.
pub fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::Conflict { .. } => Status::aborted(format!("{error}; retry the command")),
        StoreError::RequestIdReused { .. } => {
            FieldViolations::single("request_id", error.to_string())
        }
        StoreError::Decode { .. } | StoreError::Snapshot { .. } | StoreError::Answer { .. } => {
            tracing::error!(%error, "stored data cannot be read");
            Status::internal("stored data cannot be read")
        }
        StoreError::Database(ref db) => {
            tracing::error!(error = %db, "event store unavailable");
            Status::unavailable("storage is unavailable; retry later")
        }
    }
}

/// Decodes a stored command answer.
pub fn decode_answer<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|error| {
        tracing::error!(%error, "stored command answer cannot be decoded");
        Status::internal("stored answer cannot be read")
    })
}

/// Logs a database failure of a query handler and hides its detail from the caller.
pub fn database_status(error: sqlx::Error) -> Status {
    tracing::error!(%error, "query failed");
    Status::unavailable("storage is unavailable; retry later")
}

/// Runs one idempotent API command (the platform's command path, [`EventStore::execute`], with
/// the request fingerprinted): a request id seen before returns its stored answer; otherwise
/// `decide` loads, decides and appends inside the unit of work, and its answer is stored with
/// the events in one transaction. The closure must own what it captures.
///
/// [`EventStore::execute`]: jiuzhu_eventstore::EventStore::execute
pub async fn run_command<'s, Request, Answer, Decide>(
    store: &'s jiuzhu_eventstore::EventStore,
    command_type: &str,
    request_id: &str,
    request: &Request,
    decide: Decide,
) -> Result<Answer, Status>
where
    Request: prost::Message,
    Answer: prost::Message + Default,
    Decide: for<'w> FnOnce(
        &'w mut jiuzhu_eventstore::UnitOfWork<'s>,
    ) -> jiuzhu_eventstore::Decision<'w, Answer, Status>,
{
    let call = jiuzhu_eventstore::CommandRequest::api(command_type, request_id, request);
    store.execute(call, store_status, decide).await
}

/// Parses a UUID field or names it in an `INVALID_ARGUMENT`.
pub fn uuid_field(field: &str, value: &str) -> Result<uuid::Uuid, Status> {
    uuid::Uuid::parse_str(value.trim())
        .map_err(|_| FieldViolations::single(field, "must be a UUID"))
}

/// Longest purpose accepted.
pub const MAX_PURPOSE_LEN: usize = 200;

/// One access to personal data through the API, recorded in the service's audit log whatever
/// its outcome: the caller (as the guard authenticated it), the stated purpose, and the person.
///
/// ```ignore
/// let access = PersonalAccess::read(&request, &request.get_ref().purpose, &request.get_ref().person_id)?;
/// let answer = async { access.check_purpose()?; /* the read */ }.await;
/// access.finish(self.store.pool(), answer, |answer| answer.person_id.clone()).await
/// ```
#[derive(Debug)]
pub struct PersonalAccess {
    caller: jiuzhu_access::Caller,
    purpose: String,
    requested_person: String,
    purpose_required: bool,
}

impl PersonalAccess {
    /// A read of personal data: the caller must state why.
    pub fn read<T>(
        request: &tonic::Request<T>,
        purpose: &str,
        requested_person: &str,
    ) -> Result<Self, Status> {
        Ok(Self {
            caller: jiuzhu_access::Caller::of(request)?,
            purpose: purpose.trim().to_owned(),
            requested_person: requested_person.to_owned(),
            purpose_required: true,
        })
    }

    /// A change of personal data: the command says what it is for.
    pub fn change<T>(request: &tonic::Request<T>, requested_person: &str) -> Result<Self, Status> {
        Ok(Self {
            caller: jiuzhu_access::Caller::of(request)?,
            purpose: String::new(),
            requested_person: requested_person.to_owned(),
            purpose_required: false,
        })
    }

    pub fn caller(&self) -> &jiuzhu_access::Caller {
        &self.caller
    }

    /// `INVALID_ARGUMENT` naming `purpose` when a read states none (or an unreadable one).
    pub fn check_purpose(&self) -> Result<(), Status> {
        if !self.purpose_required {
            return Ok(());
        }
        let mut violations = FieldViolations::new();
        if self.purpose.is_empty() {
            violations.add(
                "purpose",
                "is required: say why you read this personal data (it is recorded in the audit log)",
            );
        } else if self.purpose.chars().count() > MAX_PURPOSE_LEN {
            violations.add(
                "purpose",
                format!("must be at most {MAX_PURPOSE_LEN} characters"),
            );
        }
        violations.into_result()
    }

    /// Records the access with its outcome and passes the answer on; without a record, nothing
    /// is handed out.
    pub async fn finish<T>(
        self,
        pool: &sqlx::PgPool,
        answer: Result<T, Status>,
        person_of: impl FnOnce(&T) -> String,
    ) -> Result<T, Status> {
        let requested = self.requested_person;
        jiuzhu_audit::Audit::new(pool.clone())
            .access(&self.caller, &self.purpose, answer, |answer| {
                match answer.map(person_of) {
                    Some(person) if !person.is_empty() => person,
                    _ => requested,
                }
            })
            .await
    }
}

/// Key-store failures as gRPC statuses; never with personal data in the message.
pub fn vault_status(error: jiuzhu_vault::VaultError) -> Status {
    match error {
        jiuzhu_vault::VaultError::Database(error) => database_status(error),
        other => {
            tracing::error!(error = %other, "key store failure");
            Status::internal(other.to_string())
        }
    }
}

/// A key-store failure inside a consumer: a transient one (the key service or database down)
/// is retried, any other dead-letters the message.
pub fn vault_consumer_error(error: jiuzhu_vault::VaultError) -> jiuzhu_messaging::ProjectionError {
    if error.is_transient() {
        jiuzhu_messaging::ProjectionError::Unavailable(error.to_string())
    } else {
        jiuzhu_messaging::ProjectionError::Rejected(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiuzhu_messaging::ProjectionError;

    #[test]
    fn a_consumer_retries_outages_bounds_what_may_pass_and_dead_letters_the_rest() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
        ] {
            let error = consumer_error(Status::new(code, "down"));
            assert!(error.is_infrastructure(), "{code:?}: {error}");
        }
        for code in [Code::Aborted, Code::Internal, Code::Unknown] {
            let error = consumer_error(Status::new(code, "may pass"));
            assert!(
                matches!(error, ProjectionError::Failed(_))
                    && !error.is_infrastructure()
                    && !error.is_permanent(),
                "{code:?}: {error}"
            );
        }
        // A refusal never passes by retrying (it used to stall a partition for ever).
        for code in [
            Code::PermissionDenied,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::AlreadyExists,
        ] {
            let error = consumer_error(Status::new(code, "never"));
            assert!(error.is_permanent(), "{code:?}: {error}");
        }
        let mut violations = FieldViolations::new();
        violations.add("region.code", "is not a GB/T 2260 code");
        let error = consumer_error(violations.into_status());
        assert!(error.is_permanent());
        assert!(
            error
                .to_string()
                .contains("region.code: is not a GB/T 2260 code"),
            "{error}"
        );
    }
}
