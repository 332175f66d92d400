//! Closing the loop: when the decisions service opens a relief case from a referred clue
//! (`CaseOpened` with its `clue_id` on `jiuzhu.decisions.events.v1`), the clue is closed with
//! the case id, through the same command as `CloseClue`. The request id is derived from the
//! case, so redelivery closes nothing twice.

use jiuzhu_errors::AppError;
use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::clues::{CloseClueRequest, ClueOutcome};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::decisions::CaseOpened;

use crate::app::CluesApi;

jiuzhu_eventstore::event_enum! {
    /// The relief events that close clues.
    pub enum ReliefFeed {
        CaseOpened(CaseOpened),
    }
}

#[derive(Debug)]
pub struct ReliefCases {
    api: CluesApi,
}

impl ReliefCases {
    pub fn new(api: CluesApi) -> Self {
        Self { api }
    }
}

impl Reaction for ReliefCases {
    type Events = ReliefFeed;

    fn name(&self) -> &str {
        "clues.relief_cases"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("decisions")]
    }

    async fn react(
        &self,
        _envelope: &EventEnvelope,
        event: ReliefFeed,
    ) -> Result<(), ProjectionError> {
        let ReliefFeed::CaseOpened(opened) = event;
        if opened.clue_id.is_empty() {
            return Ok(());
        }
        let request = CloseClueRequest {
            request_id: format!("relief-opened-{}", opened.case_id),
            clue_id: opened.clue_id.clone(),
            outcome: ClueOutcome::ReliefCaseOpened.into(),
            relief_case_id: opened.case_id.clone(),
            reason: String::new(),
            closed_by: format!("decisions: {}", opened.opened_by),
        };
        match self
            .api
            .close(jiuzhu_access::Actor::Platform, request)
            .await
        {
            Ok(_) => Ok(()),
            // Closed already, or not a clue of this service: nothing left to do.
            Err(AppError::FailedPrecondition(reason) | AppError::NotFound(reason)) => {
                tracing::info!(clue_id = %opened.clue_id, %reason, "relief case closed no clue");
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }
}
