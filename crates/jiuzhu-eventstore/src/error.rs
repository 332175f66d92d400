#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first; reload and decide again.
    #[error("stream `{stream_id}` is at version {actual}, not the expected {expected}")]
    Conflict {
        stream_id: String,
        expected: i64,
        actual: i64,
    },
    /// The caller reused a request id for a different request.
    #[error("request id `{request_id}` was already used for a different {command_type} request")]
    RequestIdReused {
        request_id: String,
        command_type: String,
    },
    #[error("stored event {event_id} of type {event_type} cannot be decoded: {source}")]
    Decode {
        event_id: uuid::Uuid,
        event_type: String,
        source: prost::DecodeError,
    },
    #[error("snapshot of stream `{stream_id}` cannot be decoded: {reason}")]
    Snapshot { stream_id: String, reason: String },
    #[error("the stored answer of a {command_type} command cannot be decoded: {reason}")]
    Answer {
        command_type: String,
        reason: String,
    },
    /// A command addressed a stream that has no events.
    #[error("no {kind} {stream_id}")]
    NotFound {
        kind: &'static str,
        stream_id: String,
    },
    #[error("event store database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn is_unique_violation(error: &sqlx::Error, constraint: &str) -> bool {
        match error {
            sqlx::Error::Database(db) => {
                db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
            }
            _ => false,
        }
    }
}

/// The store's failures by the one classification: a lost race is a conflict (send the command
/// again), a reused request id names the field, unreadable stored data is a fault of ours.
impl From<StoreError> for jiuzhu_errors::AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => Self::conflict(format!("{error}; retry the command")),
            StoreError::RequestIdReused { .. } => {
                jiuzhu_errors::FieldViolations::single("request_id", error.to_string())
            }
            StoreError::Decode { .. } | StoreError::Snapshot { .. } | StoreError::Answer { .. } => {
                tracing::error!(%error, "stored data cannot be read");
                Self::internal("stored data cannot be read")
            }
            StoreError::NotFound { .. } => Self::not_found(error.to_string()),
            StoreError::Database(db) => Self::storage(db),
        }
    }
}
