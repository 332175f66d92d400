//! Clue acquisition's decisions, free of I/O. A reported party is screened by policy; a match
//! becomes a clue that is confirmed or rejected by a reviewer and referred to the relief
//! prosecutor. The shell does the matching (against the linkage index) and passes the result.

use jiuzhu_eventstore::{Aggregate, event_enum};
use jiuzhu_linkage::ModelFile;
use jiuzhu_proto::clues::{
    ClueClosed, ClueConfirmed, ClueDetected, ClueOrigin, ClueOutcome, ClueReferred, ClueRejected,
    ClueStatus, LinkageModelAdopted, PartyReported, PartyScreenedOut, ReliabilityBin,
};
use uuid::Uuid;

event_enum! {
    /// Every event on `jiuzhu.clues.events.v1`.
    pub enum CluesEvent {
        PartyReported(PartyReported),
        PartyScreenedOut(PartyScreenedOut),
        ClueDetected(ClueDetected),
        ClueConfirmed(ClueConfirmed),
        ClueRejected(ClueRejected),
        ClueReferred(ClueReferred),
        ClueClosed(ClueClosed),
        LinkageModelAdopted(LinkageModelAdopted),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClueError {
    #[error("no clue {0}")]
    NotFound(Uuid),
    #[error("clue {clue} is {status} and can no longer be {action}")]
    Settled {
        clue: Uuid,
        status: &'static str,
        action: &'static str,
    },
    #[error("clue {0} awaits review: confirm it before referring it")]
    AwaitingReview(Uuid),
    #[error("clue {clue} is {status}: only a referred clue can be closed")]
    NotReferred { clue: Uuid, status: &'static str },
}

/// How a referred clue ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    ReliefCaseOpened { relief_case_id: String },
    Declined { reason: String },
}

/// A match found for a party.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub person_id: Uuid,
    pub probability: f64,
    pub explanation: String,
    pub origin: ClueOrigin,
    pub model_version: String,
}

/// The events of reporting a party: screened out with a reason, or matched (or neither).
pub fn report(
    reported: PartyReported,
    screened_out: Option<String>,
    policy_version: &str,
    found: Option<Match>,
    clue_id: Uuid,
) -> (Vec<CluesEvent>, Option<ClueDetected>) {
    let party_id = reported.party_id.clone();
    if let Some(reason) = screened_out {
        return (
            vec![
                CluesEvent::PartyReported(reported),
                CluesEvent::PartyScreenedOut(PartyScreenedOut {
                    party_id,
                    reason,
                    policy_version: policy_version.to_owned(),
                }),
            ],
            None,
        );
    }
    let clue = found.map(|m| ClueDetected {
        clue_id: clue_id.to_string(),
        party_id: party_id.clone(),
        case_no: reported.case_no.clone(),
        person_id: m.person_id.to_string(),
        probability: m.probability,
        origin: m.origin.into(),
        explanation: m.explanation,
        policy_version: policy_version.to_owned(),
        procuratorate: reported.procuratorate.clone(),
        role: reported.role,
        region_code: reported.region_code.clone(),
        model_version: m.model_version,
    });
    (vec![CluesEvent::PartyReported(reported)], clue)
}

/// A clue as its decisions need it.
#[derive(Debug, Default, Clone)]
pub struct Clue {
    detected: Option<ClueDetected>,
    status: Option<ClueStatus>,
}

impl Clue {
    /// The victim's county: the offices whose jurisdiction holds it work the clue.
    pub fn region_code(&self) -> &str {
        self.detected
            .as_ref()
            .map_or("", |d| d.region_code.as_str())
    }
}

impl Aggregate for Clue {
    type Event = CluesEvent;
    const KIND: &'static str = "clue";

    fn partition_key(&self) -> Option<&str> {
        self.detected.as_ref().map(|d| d.person_id.as_str())
    }

    fn apply(&mut self, event: &CluesEvent) {
        match event {
            CluesEvent::ClueDetected(e) => {
                self.status = Some(if e.origin == ClueOrigin::Review as i32 {
                    ClueStatus::AwaitingReview
                } else {
                    ClueStatus::Detected
                });
                self.detected = Some(e.clone());
            }
            CluesEvent::ClueConfirmed(_) => self.status = Some(ClueStatus::Confirmed),
            CluesEvent::ClueRejected(_) => self.status = Some(ClueStatus::Rejected),
            CluesEvent::ClueReferred(_) => self.status = Some(ClueStatus::Referred),
            CluesEvent::ClueClosed(_) => self.status = Some(ClueStatus::Closed),
            CluesEvent::PartyReported(_)
            | CluesEvent::PartyScreenedOut(_)
            | CluesEvent::LinkageModelAdopted(_) => {}
        }
    }
}

/// The one stream of linkage model adoptions.
pub const LINKAGE_MODEL_STREAM: &str = "linkage-model";

/// The linkage models the service adopted, the last one in force.
#[derive(Debug, Default, Clone)]
pub struct LinkageModels {
    pub current: Option<LinkageModelAdopted>,
}

impl Aggregate for LinkageModels {
    type Event = CluesEvent;
    const KIND: &'static str = "linkage model";

    fn apply(&mut self, event: &CluesEvent) {
        if let CluesEvent::LinkageModelAdopted(adopted) = event {
            self.current = Some(adopted.clone());
        }
    }
}

/// Where a model comes from: the operator's file is adopted as given; one the service
/// estimated itself must show it deserves to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelSource {
    /// The starting values, recorded when nothing else was ever adopted, so that the version
    /// the first clues name is on record too.
    Starting,
    File,
    Estimated {
        min_labels: usize,
        max_gap: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Adoption {
    Adopt(Box<LinkageModelAdopted>),
    /// That version is already in force.
    Current,
    /// An estimated model that does not deserve adoption, and why.
    Refused(String),
}

/// Whether to adopt `file`, and the event that records it.
pub fn adopt(models: &LinkageModels, file: &ModelFile, source: ModelSource) -> Adoption {
    let replaced = models
        .current
        .as_ref()
        .map(|c| c.version.clone())
        .unwrap_or_default();
    if replaced == file.version {
        return Adoption::Current;
    }
    let report = &file.report;
    let labels = report.anchored + report.reviews;
    if let ModelSource::Estimated {
        min_labels,
        max_gap,
    } = source
    {
        if labels < min_labels {
            return Adoption::Refused(format!(
                "{labels} labelled pairs ({} anchored by resident id, {} reviews); {min_labels} \
                 needed",
                report.anchored, report.reviews
            ));
        }
        match report.largest_gap {
            None => {
                return Adoption::Refused(
                    "no reliability bin had enough pairs to measure the calibration".to_owned(),
                );
            }
            Some(gap) if gap > max_gap => {
                return Adoption::Refused(format!(
                    "held-out reliability gap {gap:.3} is over {max_gap}"
                ));
            }
            Some(_) => {}
        }
    }
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    Adoption::Adopt(Box::new(LinkageModelAdopted {
        version: file.version.clone(),
        source: match source {
            ModelSource::Starting => "starting",
            ModelSource::File => "file",
            ModelSource::Estimated { .. } => "estimated",
        }
        .to_owned(),
        trained_on: file.trained_on.clone(),
        parties: count(report.parties),
        anchored: count(report.anchored),
        reviews: count(report.reviews),
        reviews_confirmed: count(report.reviews_confirmed),
        reliability: report
            .reliability
            .iter()
            .map(|bin| ReliabilityBin {
                low: bin.low,
                high: bin.high,
                pairs: count(bin.pairs),
                predicted: bin.predicted,
                observed: bin.observed,
            })
            .collect(),
        largest_gap: report.largest_gap.unwrap_or(0.0),
        model_json: file.to_json(),
        replaced,
    }))
}

fn status_name(status: ClueStatus) -> &'static str {
    match status {
        ClueStatus::Confirmed => "confirmed",
        ClueStatus::Rejected => "rejected",
        ClueStatus::Referred => "referred",
        ClueStatus::AwaitingReview => "awaiting review",
        ClueStatus::Detected => "detected",
        ClueStatus::Closed => "closed",
        ClueStatus::Unspecified => "unknown",
    }
}

impl Clue {
    pub fn person_id(&self) -> &str {
        self.detected.as_ref().map_or("", |d| d.person_id.as_str())
    }

    fn open(&self, clue: Uuid, action: &'static str) -> Result<&ClueDetected, ClueError> {
        let detected = self.detected.as_ref().ok_or(ClueError::NotFound(clue))?;
        match self.status {
            Some(ClueStatus::Detected | ClueStatus::AwaitingReview) => Ok(detected),
            Some(status) => Err(ClueError::Settled {
                clue,
                status: status_name(status),
                action,
            }),
            None => Err(ClueError::NotFound(clue)),
        }
    }

    pub fn confirm(
        &self,
        clue: Uuid,
        reviewer: &str,
        reason: &str,
    ) -> Result<Vec<CluesEvent>, ClueError> {
        let detected = self.open(clue, "confirmed")?;
        Ok(vec![CluesEvent::ClueConfirmed(ClueConfirmed {
            clue_id: clue.to_string(),
            person_id: detected.person_id.clone(),
            reviewer: reviewer.to_owned(),
            reason: reason.to_owned(),
        })])
    }

    pub fn reject(
        &self,
        clue: Uuid,
        reviewer: &str,
        reason: &str,
    ) -> Result<Vec<CluesEvent>, ClueError> {
        let detected = self.open(clue, "rejected")?;
        Ok(vec![CluesEvent::ClueRejected(ClueRejected {
            clue_id: clue.to_string(),
            person_id: detected.person_id.clone(),
            reviewer: reviewer.to_owned(),
            reason: reason.to_owned(),
        })])
    }

    /// Automatic clues may be referred at once; review clues once confirmed.
    pub fn refer(&self, clue: Uuid, referred_by: &str) -> Result<Vec<CluesEvent>, ClueError> {
        let detected = self.detected.as_ref().ok_or(ClueError::NotFound(clue))?;
        match self.status {
            Some(ClueStatus::Detected | ClueStatus::Confirmed) => {}
            Some(ClueStatus::AwaitingReview) => return Err(ClueError::AwaitingReview(clue)),
            Some(status) => {
                return Err(ClueError::Settled {
                    clue,
                    status: status_name(status),
                    action: "referred",
                });
            }
            None => return Err(ClueError::NotFound(clue)),
        }
        Ok(vec![CluesEvent::ClueReferred(ClueReferred {
            clue_id: clue.to_string(),
            person_id: detected.person_id.clone(),
            party_id: detected.party_id.clone(),
            case_no: detected.case_no.clone(),
            procuratorate: detected.procuratorate.clone(),
            referred_by: referred_by.to_owned(),
            region_code: detected.region_code.clone(),
        })])
    }

    /// Closes a referred clue with the relief prosecutor's outcome.
    pub fn close(
        &self,
        clue: Uuid,
        closing: Closing,
        closed_by: &str,
    ) -> Result<Vec<CluesEvent>, ClueError> {
        let detected = self.detected.as_ref().ok_or(ClueError::NotFound(clue))?;
        match self.status {
            Some(ClueStatus::Referred) => {}
            Some(status) => {
                return Err(ClueError::NotReferred {
                    clue,
                    status: status_name(status),
                });
            }
            None => return Err(ClueError::NotFound(clue)),
        }
        let (outcome, relief_case_id, reason) = match closing {
            Closing::ReliefCaseOpened { relief_case_id } => {
                (ClueOutcome::ReliefCaseOpened, relief_case_id, String::new())
            }
            Closing::Declined { reason } => (ClueOutcome::Declined, String::new(), reason),
        };
        Ok(vec![CluesEvent::ClueClosed(ClueClosed {
            clue_id: clue.to_string(),
            person_id: detected.person_id.clone(),
            outcome: outcome.into(),
            relief_case_id,
            reason,
            closed_by: closed_by.to_owned(),
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detected(origin: ClueOrigin) -> (Uuid, Clue) {
        let clue_id = Uuid::now_v7();
        let reported = PartyReported {
            party_id: Uuid::now_v7().to_string(),
            case_no: "(2026)黔0102刑初1号".to_owned(),
            ..PartyReported::default()
        };
        let found = Match {
            person_id: Uuid::now_v7(),
            probability: 0.8,
            explanation: "name: exact (+8.0)".to_owned(),
            origin,
            model_version: "link-0123456789ab".to_owned(),
        };
        let (events, clue) = report(reported, None, "v1", Some(found), clue_id);
        assert_eq!(events.len(), 1);
        let mut aggregate = Clue::default();
        if let Some(clue) = clue {
            aggregate.apply(&CluesEvent::ClueDetected(clue));
        }
        (clue_id, aggregate)
    }

    #[test]
    fn a_screened_out_party_raises_no_clue_and_says_why() {
        let (events, clue) = report(
            PartyReported::default(),
            Some("no serious harm".to_owned()),
            "v1",
            None,
            Uuid::now_v7(),
        );
        assert!(clue.is_none());
        assert!(
            matches!(&events[1], CluesEvent::PartyScreenedOut(e) if e.reason == "no serious harm" && e.policy_version == "v1")
        );
    }

    #[test]
    fn a_review_clue_is_confirmed_before_it_is_referred() {
        let (id, clue) = detected(ClueOrigin::Review);
        assert_eq!(clue.refer(id, "p-1"), Err(ClueError::AwaitingReview(id)));
        let mut confirmed = clue.clone();
        for e in clue
            .confirm(id, "reviewer-1", "same village, same birthday")
            .unwrap_or_default()
        {
            confirmed.apply(&e);
        }
        let referred = confirmed.refer(id, "p-1").unwrap_or_default();
        assert!(
            matches!(&referred[..], [CluesEvent::ClueReferred(r)] if r.person_id == clue.person_id())
        );
        assert!(matches!(
            confirmed.reject(id, "r", "x"),
            Err(ClueError::Settled {
                status: "confirmed",
                ..
            })
        ));
    }

    #[test]
    fn an_automatic_clue_can_be_referred_at_once_and_a_rejected_one_never() {
        let (id, clue) = detected(ClueOrigin::Automatic);
        assert!(clue.refer(id, "p-1").is_ok());
        let mut rejected = clue.clone();
        for e in clue
            .reject(id, "reviewer-1", "a namesake")
            .unwrap_or_default()
        {
            rejected.apply(&e);
        }
        assert!(matches!(
            rejected.refer(id, "p-1"),
            Err(ClueError::Settled {
                status: "rejected",
                ..
            })
        ));
        assert_eq!(
            Clue::default().confirm(id, "r", ""),
            Err(ClueError::NotFound(id))
        );
    }

    #[test]
    fn only_a_referred_clue_closes_and_only_once() {
        let (id, clue) = detected(ClueOrigin::Automatic);
        let declined = Closing::Declined {
            reason: "already helped by civil affairs".to_owned(),
        };
        assert!(matches!(
            clue.close(id, declined.clone(), "p-2"),
            Err(ClueError::NotReferred {
                status: "detected",
                ..
            })
        ));
        let mut referred = clue.clone();
        for e in clue.refer(id, "p-1").unwrap_or_default() {
            referred.apply(&e);
        }
        let opened = Closing::ReliefCaseOpened {
            relief_case_id: "case-9".to_owned(),
        };
        let events = referred.close(id, opened, "p-2").unwrap_or_default();
        assert!(matches!(
            &events[..],
            [CluesEvent::ClueClosed(c)] if c.outcome == ClueOutcome::ReliefCaseOpened as i32
                && c.relief_case_id == "case-9" && c.person_id == clue.person_id()
        ));
        let mut closed = referred.clone();
        for e in &events {
            closed.apply(e);
        }
        assert!(matches!(
            closed.close(id, declined, "p-2"),
            Err(ClueError::NotReferred {
                status: "closed",
                ..
            })
        ));
    }

    fn estimated(anchored: usize, gap: Option<f64>) -> ModelFile {
        let report = jiuzhu_linkage::TrainingReport {
            parties: 2000,
            anchored,
            largest_gap: gap,
            ..jiuzhu_linkage::TrainingReport::default()
        };
        let model = jiuzhu_linkage::Model {
            prior: 0.001 * anchored as f64,
            ..jiuzhu_linkage::Model::default()
        };
        ModelFile::new(model, report, "2026-12-05")
    }

    const GUARD: ModelSource = ModelSource::Estimated {
        min_labels: 500,
        max_gap: 0.05,
    };

    #[test]
    fn a_model_is_adopted_once_and_names_what_it_replaced() {
        let mut models = LinkageModels::default();
        let first = estimated(800, Some(0.03));
        let Adoption::Adopt(event) = adopt(&models, &first, GUARD) else {
            panic!("a well calibrated model with 800 labels is adopted");
        };
        assert_eq!(event.version, first.version);
        assert_eq!(
            (event.source.as_str(), event.replaced.as_str()),
            ("estimated", "")
        );
        assert_eq!(
            ModelFile::from_json(&event.model_json)
                .map(|f| f.version)
                .ok(),
            Some(first.version.clone()),
            "the event carries the model itself"
        );
        models.apply(&CluesEvent::LinkageModelAdopted(*event));
        assert_eq!(adopt(&models, &first, GUARD), Adoption::Current);
        let second = estimated(900, Some(0.02));
        let Adoption::Adopt(next) = adopt(&models, &second, ModelSource::File) else {
            panic!("another version is adopted");
        };
        assert_eq!(
            (next.source.as_str(), next.replaced.as_str()),
            ("file", first.version.as_str())
        );
    }

    #[test]
    fn an_estimated_model_needs_labels_and_a_calibration_that_holds() {
        let models = LinkageModels::default();
        let few = adopt(&models, &estimated(120, Some(0.01)), GUARD);
        assert!(
            matches!(&few, Adoption::Refused(r) if r.contains("120 labelled")),
            "{few:?}"
        );
        let loose = adopt(&models, &estimated(800, Some(0.09)), GUARD);
        assert!(
            matches!(&loose, Adoption::Refused(r) if r.contains("0.090")),
            "{loose:?}"
        );
        let unmeasured = adopt(&models, &estimated(800, None), GUARD);
        assert!(matches!(unmeasured, Adoption::Refused(_)));
        // The operator's file is taken as given.
        assert!(matches!(
            adopt(&models, &estimated(10, None), ModelSource::File),
            Adoption::Adopt(_)
        ));
    }
}
