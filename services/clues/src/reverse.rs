//! Reverse correlation, the registry-to-case direction: when a person enters the registry (or
//! their identity changes), the recent case parties left unmatched are checked against them.
//! Reads the registry's topic with its own consumer group; each event is handled in its own
//! transactions through the intake's commands, so redelivery raises nothing twice.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{InboundHandler, InboundRecord, ProjectionError, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_vault::RemoteKeys;
use jiuzhu_vault::identity::{CarriesIdentity, sealed_person};
use prost::Message;
use tonic::Code;

use crate::intake::Intake;
use crate::matching::{IndexedPerson, indexed_person, vault_error};
use crate::projections::RegistryFeed;

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
            Some(sealed) => self.keys.keys(&[sealed]).await.map_err(vault_error)?,
            None => Default::default(),
        };
        indexed_person(event, &keys)
    }
}

impl InboundHandler for ReverseCorrelation {
    fn name(&self) -> &str {
        "clues.reverse_correlation"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn handle(&self, record: &InboundRecord) -> Result<(), ProjectionError> {
        let envelope = EventEnvelope::decode(record.payload.as_slice())?;
        let found = match RegistryFeed::decode_payload(&envelope.event_type, &envelope.payload)? {
            Some(RegistryFeed::PersonRegistered(mut e)) => self.person(&mut e).await?,
            Some(RegistryFeed::PersonUpdated(mut e)) => self.person(&mut e).await?,
            _ => None,
        };
        let Some(person) = found else {
            return Ok(());
        };
        self.intake
            .correlate(person.person_id, &person.normalised())
            .await
            .map(|_| ())
            .map_err(|status| match status.code() {
                Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound => {
                    ProjectionError::Rejected(status.message().to_owned())
                }
                _ => ProjectionError::Unavailable(status.message().to_owned()),
            })
    }
}
