use std::collections::HashMap;

use jiuzhu_proto::registry::GetPersonKeysRequest;
use jiuzhu_proto::registry::person_key_service_client::PersonKeyServiceClient;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::{DataKey, KeyState, VaultError};

/// Most persons asked for in one call (the service's limit).
const PER_CALL: usize = 1000;

/// Data keys fetched from the registry's `PersonKeyService`, for services that read sealed
/// personal data from the registry's topic. Nothing is cached here: a reader asks for the keys
/// of the batch it is applying and drops them afterwards.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    client: PersonKeyServiceClient<Channel>,
}

impl RemoteKeys {
    /// Connects lazily to the registry at `endpoint` (its TLS set by the caller).
    pub fn new(endpoint: Endpoint) -> Self {
        let channel = endpoint
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        Self {
            client: PersonKeyServiceClient::new(channel),
        }
    }

    pub async fn keys(&self, persons: &[Uuid]) -> Result<HashMap<Uuid, KeyState>, VaultError> {
        let mut found = HashMap::with_capacity(persons.len());
        for chunk in persons.chunks(PER_CALL) {
            let answer = self
                .client
                .clone()
                .get_person_keys(GetPersonKeysRequest {
                    person_ids: chunk.iter().map(Uuid::to_string).collect(),
                })
                .await
                .map_err(|status| match status.code() {
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Internal => VaultError::Unavailable(status.message().to_owned()),
                    _ => VaultError::Refused(status.message().to_owned()),
                })?
                .into_inner();
            for key in answer.keys {
                let Ok(person) = Uuid::parse_str(&key.person_id) else {
                    continue;
                };
                let state = if key.erased {
                    KeyState::Erased
                } else {
                    KeyState::Live(DataKey::from_bytes(&key.data_key)?)
                };
                found.insert(person, state);
            }
        }
        Ok(found)
    }
}
