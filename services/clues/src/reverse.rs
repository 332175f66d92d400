//! Reverse correlation, the registry-to-case direction: when a person enters the registry, their
//! identity changes, or a department records a status for them (newly registered poor,
//! monitored, …), the recent case parties left unmatched are checked against them; when a
//! person is erased, the identities of the parties matched to them are erased too.
//! Reads the registry's topic with its own consumer group; each event is handled in its own
//! transactions through the intake's commands, so redelivery raises nothing twice.

use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_vault::RemoteKeys;
use jiuzhu_vault::identity::{CarriesIdentity, sealed_person};

use crate::intake::Intake;
use crate::matching::{IndexedPerson, indexed_person, person_uuid};
use jiuzhu_errors::AppError;
use jiuzhu_proto::registry::{PersonErased, PersonRegistered, PersonUpdated, StatusRecorded};

jiuzhu_eventstore::event_enum! {
    /// The registry events that make recent unmatched parties worth another look, and the
    /// erasure that takes the parties matched to a person with them.
    pub enum Trigger {
        PersonRegistered(PersonRegistered),
        PersonUpdated(PersonUpdated),
        StatusRecorded(StatusRecorded),
        PersonErased(PersonErased),
    }
}

#[derive(Debug)]
pub struct ReverseCorrelation {
    intake: Intake,
    keys: RemoteKeys,
}

impl ReverseCorrelation {
    pub fn new(intake: Intake, keys: RemoteKeys) -> Self {
        Self { intake, keys }
    }

    async fn person<E: CarriesIdentity>(
        &self,
        event: &mut E,
    ) -> Result<Option<IndexedPerson>, ProjectionError> {
        let keys = match sealed_person(event) {
            Some(sealed) => self
                .keys
                .keys(&[sealed])
                .await
                .map_err(|e| ProjectionError::from(AppError::from(e)))?,
            None => Default::default(),
        };
        indexed_person(event, &keys)
    }
}

impl Reaction for ReverseCorrelation {
    type Events = Trigger;

    fn name(&self) -> &str {
        "clues.reverse_correlation"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn react(
        &self,
        _envelope: &EventEnvelope,
        event: Trigger,
    ) -> Result<(), ProjectionError> {
        let found = match event {
            Trigger::PersonRegistered(mut e) => self.person(&mut e).await?,
            Trigger::PersonUpdated(mut e) => self.person(&mut e).await?,
            // The identity is already in the linkage index (a person the index does not hold,
            // erased or not yet indexed, was or will be checked when their identity arrives).
            Trigger::StatusRecorded(e) => self
                .intake
                .indexed(person_uuid(&e.person_id)?)
                .await
                .map_err(ProjectionError::from)?,
            Trigger::PersonErased(e) => {
                self.intake
                    .erase_parties_of(person_uuid(&e.person_id)?)
                    .await
                    .map_err(ProjectionError::from)?;
                None
            }
        };
        let Some(person) = found else {
            return Ok(());
        };
        self.intake
            .correlate(person.person_id, &person.normalised())
            .await
            .map(|_| ())
            .map_err(ProjectionError::from)
    }
}
