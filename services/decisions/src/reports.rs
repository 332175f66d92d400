//! The closed case of a poor party reaches rural revitalization through the registry's share
//! relay, which records each copy it sends as `DataShared` on the registry's topic. When the
//! copy of a `CaseClosed` for rural revitalization appears there, the case records
//! `CaseReported` and its closed stage owes nothing more (once, whatever the redelivery).

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{InboundHandler, InboundRecord, ProjectionError, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::decisions::CaseDeadline;
use jiuzhu_proto::registry::DataShared;
use prost::Message;
use uuid::Uuid;

use crate::grpc::{DecisionsApi, on_case};

/// The department a poor party's closed case is reported to.
pub const REPORTED_TO: &str = "rural_revitalization";
const CASE_CLOSED: &str = "jiuzhu.decisions.v1.CaseClosed";

jiuzhu_eventstore::event_enum! {
    /// The registry events that say what was shared.
    enum Shares {
        DataShared(DataShared),
    }
}

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
        vec![service_topic("registry")]
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        let envelope = EventEnvelope::decode(record.payload.as_slice())?;
        let Some(Shares::DataShared(shared)) =
            Shares::decode_payload(&envelope.event_type, &envelope.payload)?
        else {
            return Ok(());
        };
        if shared.event_type != CASE_CLOSED || shared.department != REPORTED_TO {
            return Ok(());
        }
        let source = ProjectionError::uuid("source_event_id", &shared.source_event_id)?;
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
        let fingerprint = CaseDeadline {
            case_id: envelope.event_id.clone(),
            ..CaseDeadline::default()
        };
        on_case(
            &self.api,
            "CaseReported",
            &format!("reported-{}", envelope.event_id),
            &fingerprint,
            case_id,
            move |case, context| Ok((case.report(REPORTED_TO, context)?, CaseDeadline::default())),
        )
        .await
        .map(|_| ())
        .map_err(jiuzhu_runtime::grpc::consumer_error)
    }
}
