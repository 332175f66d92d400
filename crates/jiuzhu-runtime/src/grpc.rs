//! What the gRPC adapters of every service share: the idempotent command path with the request
//! fingerprinted, stored answers decoded, and the audited access to personal data. Errors are
//! the application's ([`jiuzhu_errors::AppError`]), turned into statuses by its one mapping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiuzhu_errors::{AppError, FieldViolations};
use tonic::Status;

/// Decodes a stored command answer.
pub fn decode_answer<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, AppError> {
    M::decode(bytes).map_err(|error| {
        tracing::error!(%error, "stored command answer cannot be decoded");
        AppError::internal("stored answer cannot be read")
    })
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
) -> Result<Answer, AppError>
where
    Request: prost::Message,
    Answer: prost::Message + Default,
    Decide: for<'w> FnOnce(
        &'w mut jiuzhu_eventstore::UnitOfWork<'s>,
    ) -> jiuzhu_eventstore::Decision<'w, Answer, AppError>,
{
    let call = jiuzhu_eventstore::CommandRequest::api(command_type, request_id, request);
    store.execute(call, AppError::from, decide).await
}

/// [`run_command`] for the platform's own work (a reaction to an event, a timer): `key` names
/// the work and lives in the internal namespace, which no caller's request id can reach.
pub async fn run_internal<'s, Answer, Decide>(
    store: &'s jiuzhu_eventstore::EventStore,
    command_type: &str,
    key: &str,
    decide: Decide,
) -> Result<Answer, AppError>
where
    Answer: prost::Message + Default,
    Decide: for<'w> FnOnce(
        &'w mut jiuzhu_eventstore::UnitOfWork<'s>,
    ) -> jiuzhu_eventstore::Decision<'w, Answer, AppError>,
{
    let call = jiuzhu_eventstore::CommandRequest::internal(command_type, key);
    store.execute(call, AppError::from, decide).await
}

/// The command of an RPC that callers and the platform's reactions share: a caller's request is
/// idempotent on its request id, the platform's on its key in the internal namespace.
pub fn command_of(
    actor: &jiuzhu_access::Actor,
    command_type: &str,
    request_id: &str,
    request: &impl prost::Message,
) -> jiuzhu_eventstore::CommandRequest {
    match actor {
        jiuzhu_access::Actor::Caller(_) => {
            jiuzhu_eventstore::CommandRequest::api(command_type, request_id, request)
        }
        jiuzhu_access::Actor::Platform => {
            jiuzhu_eventstore::CommandRequest::internal(command_type, request_id)
        }
    }
}

/// Longest purpose accepted.
pub const MAX_PURPOSE_LEN: usize = 200;

/// One access to personal data through the API, recorded in the service's audit log whatever
/// its outcome: the caller (as the guard authenticated it), the stated purpose, and the person.
///
/// ```ignore
/// let access = PersonalAccess::read(&request, &request.get_ref().purpose, &request.get_ref().person_id)?;
/// let answer = async { access.check_purpose()?; /* the read */ }.await;
/// access.finish(answer, |answer| answer.person_id.clone()).await
/// ```
#[derive(Debug)]
pub struct PersonalAccess {
    caller: jiuzhu_access::Caller,
    audit: Option<jiuzhu_audit::Audit>,
    /// Set once a change's own transaction holds its record ([`ChangeRecord`]).
    recorded_in_change: Arc<AtomicBool>,
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
            audit: request.extensions().get::<jiuzhu_audit::Audit>().cloned(),
            recorded_in_change: Arc::default(),
            purpose: purpose.trim().to_owned(),
            requested_person: requested_person.to_owned(),
            purpose_required: true,
        })
    }

    /// A change of personal data: the command says what it is for.
    pub fn change<T>(request: &tonic::Request<T>, requested_person: &str) -> Result<Self, Status> {
        Ok(Self {
            caller: jiuzhu_access::Caller::of(request)?,
            audit: request.extensions().get::<jiuzhu_audit::Audit>().cloned(),
            recorded_in_change: Arc::default(),
            purpose: String::new(),
            requested_person: requested_person.to_owned(),
            purpose_required: false,
        })
    }

    pub fn caller(&self) -> &jiuzhu_access::Caller {
        &self.caller
    }

    /// Names the person the access is about once the call has found them (a visit's person,
    /// from its plan).
    pub fn about(&mut self, person: &str) {
        person.clone_into(&mut self.requested_person);
    }

    /// The change's audit record, to write inside the change's own transaction (so that no
    /// change commits unaudited); [`PersonalAccess::finish`] then writes only a refusal.
    pub fn change_record(&self, person: &str) -> ChangeRecord {
        ChangeRecord {
            audit: self.audit.clone(),
            caller: self.caller.clone(),
            person: person.to_owned(),
            written: Arc::clone(&self.recorded_in_change),
        }
    }

    /// `INVALID_ARGUMENT` naming `purpose` when a read states none (or an unreadable one).
    pub fn check_purpose(&self) -> Result<(), AppError> {
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
        answer: Result<T, Status>,
        person_of: impl FnOnce(&T) -> String,
    ) -> Result<T, Status> {
        self.finish_all(answer, |answer| {
            let person = person_of(answer);
            if person.is_empty() {
                Vec::new()
            } else {
                vec![person]
            }
        })
        .await
    }

    /// As [`PersonalAccess::finish`] for an answer that holds several persons (a search): one
    /// audit record for each of them, or one naming the requested person when it holds none.
    pub async fn finish_all<T>(
        self,
        answer: Result<T, Status>,
        persons_of: impl FnOnce(&T) -> Vec<String>,
    ) -> Result<T, Status> {
        if answer.is_ok() && self.recorded_in_change.load(Ordering::SeqCst) {
            return answer;
        }
        let requested = self.requested_person;
        // The guard hands every request the service's audit log; without it, nothing is
        // released.
        let Some(audit) = self.audit else {
            return Err(Status::internal(
                "no audit log for this call; personal data is not released without it",
            ));
        };
        audit
            .access_all(&self.caller, &self.purpose, answer, |answer| {
                match answer.map(persons_of) {
                    Some(persons) if !persons.is_empty() => persons,
                    _ => vec![requested],
                }
            })
            .await
    }
}

/// A change of personal data's audit record, written in the change's transaction.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    audit: Option<jiuzhu_audit::Audit>,
    caller: jiuzhu_access::Caller,
    person: String,
    written: Arc<AtomicBool>,
}

impl ChangeRecord {
    /// Writes the record in `transaction` (the unit of work of the change).
    pub async fn write(&self, transaction: &mut sqlx::PgConnection) -> Result<(), AppError> {
        let audit = self.audit.as_ref().ok_or_else(|| {
            AppError::internal("no audit log for this call; the change is not made without it")
        })?;
        audit
            .record_in(
                transaction,
                &self.caller,
                std::slice::from_ref(&self.person),
                "",
                tonic::Code::Ok,
            )
            .await
            .map_err(|error| {
                tracing::error!(%error, "audit record not written; change refused");
                AppError::unavailable(
                    "the audit log cannot be written; the change is not made without it",
                )
            })?;
        self.written.store(true, Ordering::SeqCst);
        Ok(())
    }
}
