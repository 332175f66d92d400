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
