//! The closed case of a poor party reaches rural revitalization through the registry's share
//! relay, which publishes the department's copy on `jiuzhu.share.rural_revitalization.v1` (the
//! envelope keeps the event's id). When the copy of a `CaseClosed` appears on that topic, the
//! department has it: the case records `CaseReported` and its closed stage owes nothing more
//! (once, whatever the redelivery).

use jiuzhu_messaging::{InboundHandler, InboundRecord, ProjectionError};
use jiuzhu_proto::common::EventEnvelope;
use prost::Message;
use uuid::Uuid;

use crate::app::{DecisionsApi, internal_call, on_case};

/// The department a poor party's closed case is reported to.
pub const REPORTED_TO: &str = "rural_revitalization";
const CASE_CLOSED: &str = "jiuzhu.decisions.v1.CaseClosed";

#[derive(Debug)]
pub struct CaseReports {
    api: DecisionsApi,
}

impl CaseReports {
    pub fn new(api: DecisionsApi) -> Self {
        Self { api }
    }
}

impl InboundHandler for CaseReports {
    fn name(&self) -> &str {
        "decisions.case_reports"
    }

    fn topics(&self) -> Vec<String> {
        vec![format!("jiuzhu.share.{REPORTED_TO}.v1")]
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        let envelope = EventEnvelope::decode(record.payload.as_slice())?;
        if envelope.event_type != CASE_CLOSED {
            return Ok(());
        }
        let source = ProjectionError::uuid("event_id", &envelope.event_id)?;
        // The shared event is one of this service's own: its stream is the case.
        let stream: Option<String> =
            sqlx::query_scalar("SELECT stream_id FROM events WHERE event_id = $1")
                .bind(source)
                .fetch_optional(self.api.store.pool())
                .await?;
        let Some(stream) = stream else {
            return Err(ProjectionError::Rejected(format!(
                "shared CaseClosed {source} is not an event of this service"
            )));
        };
        let case_id = Uuid::parse_str(&stream)
            .map_err(|_| ProjectionError::Rejected(format!("stream `{stream}` is not a case")))?;
        on_case(
            &self.api,
            jiuzhu_access::Actor::Platform,
            internal_call("CaseReported", format!("reported-{}", envelope.event_id)),
            case_id,
            move |case, context| Ok((case.report(REPORTED_TO, context)?, ())),
        )
        .await
        .map(|_| ())
        .map_err(jiuzhu_messaging::ProjectionError::from)
    }
}
