//! Active relief: a clue referred by clue acquisition (`ClueReferred` on
//! `jiuzhu.clues.events.v1`) opens a relief case for the person, through the same path as
//! `OpenCase`. The request id is derived from the clue, so redelivery opens nothing twice. A
//! person who already has a case for that criminal case, or was relieved by another agency,
//! gets no second one: the referral is then done.

use jiuzhu_errors::AppError;
use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::clues::ClueReferred;
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::decisions::{CaseOrigin, OpenCaseRequest};

use crate::app::DecisionsApi;

jiuzhu_eventstore::event_enum! {
    /// The clue events that open relief cases.
    pub enum Referral {
        ClueReferred(ClueReferred),
    }
}

#[derive(Debug)]
pub struct Referrals {
    api: DecisionsApi,
}

impl Referrals {
    pub fn new(api: DecisionsApi) -> Self {
        Self { api }
    }
}

impl Reaction for Referrals {
    type Events = Referral;

    fn name(&self) -> &str {
        "decisions.referrals"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("clues")]
    }

    async fn react(
        &self,
        _envelope: &EventEnvelope,
        event: Referral,
    ) -> Result<(), ProjectionError> {
        let Referral::ClueReferred(referred) = event;
        let request = OpenCaseRequest {
            request_id: format!("referral-{}", referred.clue_id),
            origin: CaseOrigin::Referral.into(),
            person_id: referred.person_id.clone(),
            case_no: jiuzhu_identity::canonical_case_number(&referred.case_no),
            procuratorate: referred.procuratorate.clone(),
            region_code: referred.region_code.clone(),
            opened_by: format!("referral by {}", referred.referred_by),
            clue_id: referred.clue_id.clone(),
            party_id: referred.party_id.clone(),
            ..OpenCaseRequest::default()
        };
        match self.api.open(jiuzhu_access::Actor::Platform, request).await {
            Ok(opened) => {
                tracing::info!(case_id = %opened.case_id, clue_id = %referred.clue_id, "relief case opened from a referral");
                Ok(())
            }
            Err(AppError::AlreadyExists(reason) | AppError::FailedPrecondition(reason)) => {
                tracing::info!(clue_id = %referred.clue_id, %reason, "referral opened no new case");
                Ok(())
            }
            // The clue names a person whose registration has not reached this service yet:
            // tried again, and dead-lettered if it never does.
            Err(AppError::NotFound(reason)) => Err(ProjectionError::Failed(reason)),
            Err(error) => Err(error.into()),
        }
    }
}
