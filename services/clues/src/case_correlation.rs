//! Case correlation: when a party is linked automatically, the parties of its case that were
//! left unmatched are weighed again, now with the households the case's linked persons belong
//! to (a party reported before its relatives had no such evidence). Reads the service's own
//! topic with its own consumer group; a clue is raised once per party and person, so redelivery
//! raises nothing twice.

use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::clues::{ClueDetected, ClueOrigin};
use jiuzhu_proto::common::EventEnvelope;

use crate::intake::Intake;

jiuzhu_eventstore::event_enum! {
    /// The clue that links a party of a case.
    pub enum Linked {
        ClueDetected(ClueDetected),
    }
}

#[derive(Debug)]
pub struct CaseCorrelation {
    intake: Intake,
}

impl CaseCorrelation {
    pub fn new(intake: Intake) -> Self {
        Self { intake }
    }
}

impl Reaction for CaseCorrelation {
    type Events = Linked;

    fn name(&self) -> &str {
        "clues.case_correlation"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("clues")]
    }

    async fn react(&self, _envelope: &EventEnvelope, event: Linked) -> Result<(), ProjectionError> {
        let Linked::ClueDetected(detected) = event;
        if detected.origin != ClueOrigin::Automatic as i32 {
            return Ok(());
        }
        self.intake
            .correlate_case(&detected.case_no)
            .await
            .map(|_| ())
            .map_err(ProjectionError::from)
    }
}
