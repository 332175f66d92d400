use std::collections::HashMap;

use jiuzhu_proto::registry::GetPersonKeysRequest;
use jiuzhu_proto::registry::person_key_service_client::PersonKeyServiceClient;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;
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

/// How long one call to the key service may take: a registry that accepts and never answers
/// is an outage (retried), and must not hold a consumer for ever.
pub const KEY_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl RemoteKeys {
    /// Connects lazily to the registry at `endpoint` (its TLS set by the caller); each call
    /// gives up after [`KEY_CALL_TIMEOUT`].
    pub fn new(endpoint: Endpoint) -> Self {
        Self::with_timeout(endpoint, KEY_CALL_TIMEOUT)
    }

    /// The same, with another limit per call.
    pub fn with_timeout(endpoint: Endpoint, timeout: std::time::Duration) -> Self {
        let channel = endpoint
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(timeout)
            .connect_lazy();
        Self {
            client: PersonKeyServiceClient::new(channel),
        }
    }

    pub async fn keys(&self, persons: &[Uuid]) -> Result<HashMap<Uuid, KeyState>, VaultError> {
        let mut found = HashMap::with_capacity(persons.len());
        for chunk in persons.chunks(PER_CALL) {
            // A client span in the caller's trace (the consumer's or the submitter's).
            let span = jiuzhu_telemetry::grpc_client_span(
                "/jiuzhu.registry.v1.PersonKeyService/GetPersonKeys",
            );
            let mut request = tonic::Request::new(GetPersonKeysRequest {
                person_ids: chunk.iter().map(Uuid::to_string).collect(),
            });
            span.in_scope(|| jiuzhu_telemetry::inject_current(&mut request));
            let answer = self
                .client
                .clone()
                .get_person_keys(request)
                .instrument(span)
                .await
                .map_err(|status| match status.code() {
                    // A call past its limit ends `Cancelled` ("Timeout expired").
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A key service that takes the connection and never answers is an outage after the limit,
    /// not a consumer held for ever.
    #[tokio::test]
    async fn a_key_service_that_never_answers_is_unavailable_after_the_limit() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("no local port");
        };
        let Ok(addr) = listener.local_addr() else {
            panic!("no local address");
        };
        // Accepts, reads nothing, answers nothing.
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
            panic!("no endpoint");
        };
        let keys = RemoteKeys::with_timeout(endpoint, std::time::Duration::from_millis(300));
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            keys.keys(&[Uuid::now_v7()]),
        )
        .await;
        held.abort();
        assert!(
            matches!(answer, Ok(Err(VaultError::Unavailable(_)))),
            "{answer:?}"
        );
    }
}
