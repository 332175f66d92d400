//! What a command writes in one statement: its events, stamped but not yet written, and the
//! answer they are conditional on.

use crate::event::StoredEvent;

/// An event stamped for appending but not written yet, with the trace it was appended in.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub event: StoredEvent,
    pub trace_context: serde_json::Value,
}

/// A command's answer, recorded under its request id in the statement that writes its events.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub request_id: String,
    pub command_type: String,
    pub fingerprint: Vec<u8>,
    pub answer: Vec<u8>,
}

/// Events to write in one go, and the answer they are conditional on (none: unconditional).
#[derive(Debug, Default)]
pub(crate) struct Write {
    pub events: Vec<PendingEvent>,
    pub claim: Option<Claim>,
}
