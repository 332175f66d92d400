//! The closed case of a poor party reaches rural revitalization through the registry's share
//! relay, which publishes the department's copy on `jiuzhu.share.rural_revitalization.v1` (with
//! an event id and a case reference of the department's own; the `department_refs` read model
//! finds the case again). When the copy of a `CaseClosed` appears on that topic, the
//! department has it: the case records `CaseReported` and its closed stage owes nothing more
//! (once, whatever the redelivery).

use jiuzhu_messaging::{InboundHandler, InboundRecord, ProjectionError};
use jiuzhu_proto::common::EventEnvelope;
use prost::Message;

use crate::app::{DecisionsApi, internal_call, on_case};

use crate::domain::REPORTED_TO;
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
        // The department's copy names the case by the department's reference of it.
        let copy = jiuzhu_proto::decisions::CaseClosed::decode(envelope.payload.as_slice())?;
        let known =
            crate::projections::case_known_as(self.api.store.pool(), REPORTED_TO, &copy.case_id)
                .await?;
        let Some(case_id) = known else {
            return Err(ProjectionError::Rejected(format!(
                "shared CaseClosed names case reference {}, which this service did not issue",
                copy.case_id
            )));
        };
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
