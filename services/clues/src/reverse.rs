//! Reverse correlation, the registry-to-case direction: when a person enters the registry (or
//! their identity changes), the recent case parties left unmatched are checked against them.
//! Reads the registry's topic with its own consumer group; each event is handled in its own
//! transactions through the intake's commands, so redelivery raises nothing twice.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{InboundHandler, InboundRecord, ProjectionError, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_vault::RemoteKeys;
use jiuzhu_vault::identity::{CarriesIdentity, Opened, open_identity, sealed_person};
use prost::Message;
use tonic::Code;
use uuid::Uuid;

use crate::intake::Intake;
use crate::matching::IndexedPerson;
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
    ) -> Result<Option<(Uuid, IndexedPerson)>, ProjectionError> {
        let person = Uuid::parse_str(event.person_id()).map_err(|_| {
            ProjectionError::Rejected(format!("person_id `{}` is not a UUID", event.person_id()))
        })?;
        let keys = match sealed_person(event) {
            Some(sealed) => self
                .keys
                .keys(&[sealed])
                .await
                .map_err(|e| ProjectionError::Unavailable(e.to_string()))?,
            None => Default::default(),
        };
        let opened = open_identity(event, &keys).map_err(|e| {
            if e.is_transient() {
                ProjectionError::Unavailable(e.to_string())
            } else {
                ProjectionError::Rejected(e.to_string())
            }
        })?;
        if opened == Opened::Erased {
            return Ok(None);
        }
        let region_code = event.region_code().to_owned();
        let male = match event.gender() {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        };
        let identity = event.take_personal();
        Ok(Some((
            person,
            IndexedPerson {
                person_id: person,
                full_name: identity.full_name,
                birth_date: identity.birth_date,
                resident_id: identity.resident_id,
                region_code,
                male,
                phone: identity.phone,
                township: identity.township,
                village: identity.village,
            },
        )))
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
        let Some((person_id, person)) = found else {
            return Ok(());
        };
        self.intake
            .correlate(person_id, &person.normalised())
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
