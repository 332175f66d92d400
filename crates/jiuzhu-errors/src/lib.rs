//! The one classification of an application's failures. Every service's application layer
//! answers with an [`AppError`]; it is mapped once to what an API caller is told (a gRPC status,
//! with a `google.rpc.BadRequest` detail naming every bad field, behind the `grpc` feature) and
//! once to what a consumer does with the message ([`AppError::disposition`]): retry an outage
//! until it passes, retry what may pass a bounded number of times, dead-letter what can never
//! apply. Database failures are classified here too ([`is_outage`]), so a deadlock is retried
//! the same way in a gRPC call and in a consumer.

use std::fmt;

/// Longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A failure of an application command or query, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed: every bad field is named.
    #[error("invalid request: {0}")]
    Invalid(FieldViolations),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource is not in a state where the command applies.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// Another writer got there first: the same command, sent again, decides afresh.
    #[error("{0}")]
    Conflict(String),
    /// Something the command depends on is down: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours (unreadable stored data, a broken invariant); logged where it arose.
    #[error("{0}")]
    Internal(String),
}

/// What a consumer does with a message whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// An outage: retried until it passes, never dead-lettered.
    RetryUntilItPasses,
    /// May pass (a lost race, a fault of ours): retried a bounded number of times, then
    /// dead-lettered.
    RetryThenDeadLetter,
    /// Can never apply: dead-lettered at once with the reason.
    DeadLetter,
}

impl AppError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolations::single(field, description)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::AlreadyExists(message.into())
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::FailedPrecondition(message.into())
    }
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::PermissionDenied(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// A database failure of a command or query: logged here (the caller sees no SQL), an
    /// outage when retrying can cure it, else a fault of ours.
    pub fn storage(error: sqlx::Error) -> Self {
        if is_outage(&error) {
            tracing::warn!(%error, "storage unavailable");
            Self::unavailable("storage is unavailable; retry later")
        } else {
            tracing::error!(%error, "storage failure");
            Self::internal("storage failure")
        }
    }

    /// The consumer's classification of this failure.
    pub fn disposition(&self) -> Disposition {
        match self {
            Self::Unavailable(_) => Disposition::RetryUntilItPasses,
            Self::Conflict(_) | Self::Internal(_) => Disposition::RetryThenDeadLetter,
            Self::Invalid(_)
            | Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::FailedPrecondition(_)
            | Self::PermissionDenied(_) => Disposition::DeadLetter,
        }
    }
}

/// Whether a database failure is an outage that retrying can cure: a lost connection, a full
/// pool, a deadlock or serialization failure, the server shutting down or starting.
pub fn is_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_sqlstate(&code)),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        _ => false,
    }
}

/// SQLSTATEs that a retry can cure: serialization failure, deadlock, admin or crash shutdown,
/// cannot connect now, too many connections, and connection errors (class 08). A statement
/// timeout (57014) is not one: the same statement would time out again, so it is bounded.
pub fn transient_sqlstate(code: &str) -> bool {
    matches!(
        code,
        "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300"
    ) || code.starts_with("08")
}

/// Field violations of one request, collected and then turned into one [`AppError::Invalid`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldViolations {
    violations: Vec<(String, String)>,
}

impl fmt::Display for FieldViolations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, description) in &self.violations {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field}: {description}")?;
        }
        Ok(())
    }
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

    /// Every `(field, description)`, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.violations
            .iter()
            .map(|(field, description)| (field.as_str(), description.as_str()))
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

    /// `Ok(())` when nothing was violated, else the error naming every bad field.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(self))
        }
    }

    pub fn into_error(self) -> AppError {
        AppError::Invalid(self)
    }

    /// The error for a single bad field.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> AppError {
        let mut violations = Self::new();
        violations.add(field, description);
        AppError::Invalid(violations)
    }
}

/// "must be A, B or C" for an enum field: `names` are the values' protobuf names
/// (`Kind::X.as_str_name()`), so that every message spells an enum value in full, as a client
/// sends it.
pub fn must_be_one_of(names: &[&str]) -> String {
    match names {
        [] => "must be set".to_owned(),
        [only] => format!("must be {only}"),
        [first @ .., last] => format!("must be {} or {last}", first.join(", ")),
    }
}

/// Parses a UUID field or names it.
pub fn uuid_field(field: &str, value: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(value.trim())
        .map_err(|_| FieldViolations::single(field, "must be a UUID"))
}

#[cfg(feature = "grpc")]
mod grpc {
    use super::AppError;
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};

    impl From<AppError> for Status {
        fn from(error: AppError) -> Self {
            let message = error.to_string();
            match error {
                AppError::Invalid(violations) => {
                    let mut details = ErrorDetails::new();
                    for (field, description) in violations.violations {
                        details.add_bad_request_violation(field, description);
                    }
                    Status::with_error_details(Code::InvalidArgument, message, details)
                }
                AppError::NotFound(_) => Status::not_found(message),
                AppError::AlreadyExists(_) => Status::already_exists(message),
                AppError::FailedPrecondition(_) => Status::failed_precondition(message),
                AppError::PermissionDenied(_) => Status::permission_denied(message),
                AppError::Conflict(_) => Status::aborted(message),
                AppError::Unavailable(_) => Status::unavailable(message),
                AppError::Internal(_) => Status::internal(message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_are_listed_in_full_with_or_before_the_last() {
        assert_eq!(
            must_be_one_of(&["CHANNEL_PHONE", "CHANNEL_VIDEO", "CHANNEL_HOME_VISIT"]),
            "must be CHANNEL_PHONE, CHANNEL_VIDEO or CHANNEL_HOME_VISIT"
        );
        assert_eq!(must_be_one_of(&["A_X"]), "must be A_X");
    }

    #[test]
    fn outages_are_retried_races_are_bounded_and_refusals_dead_letter() {
        assert_eq!(
            AppError::unavailable("down").disposition(),
            Disposition::RetryUntilItPasses
        );
        for error in [AppError::conflict("raced"), AppError::internal("bug")] {
            assert_eq!(error.disposition(), Disposition::RetryThenDeadLetter);
        }
        for error in [
            AppError::permission_denied("no"),
            AppError::not_found("none"),
            AppError::failed_precondition("state"),
            AppError::already_exists("twice"),
            AppError::invalid("region.code", "is not a GB/T 2260 code"),
        ] {
            assert_eq!(error.disposition(), Disposition::DeadLetter, "{error}");
        }
    }

    #[test]
    fn every_violation_is_named_in_the_message() {
        let mut violations = FieldViolations::new();
        violations.add("region.code", "is not a GB/T 2260 code");
        violations.check_request_id("");
        let text = violations.into_error().to_string();
        assert!(
            text.contains("region.code: is not a GB/T 2260 code"),
            "{text}"
        );
        assert!(text.contains("request_id: is required"), "{text}");
    }

    #[test]
    fn deadlocks_and_shutdowns_are_outages_and_constraint_violations_are_not() {
        for code in ["40001", "40P01", "57P01", "08006"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "22P02", "42P01", "57014"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
        assert!(!is_outage(&sqlx::Error::RowNotFound));
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn an_invalid_request_carries_a_bad_request_detail_per_field() {
        use tonic_types::StatusExt;
        let mut violations = FieldViolations::new();
        violations.add("amount", "must be positive");
        violations.add("instalments", "must be 1 to 12");
        let status = tonic::Status::from(violations.into_error());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["amount", "instalments"]);
    }
}
