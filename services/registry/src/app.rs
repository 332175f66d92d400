//! The registry's application layer: the service object the gRPC adapter calls, and the one
//! way a command reaches a person or household stream (load, decide, append, idempotent on its
//! request id). Bulk imports and department feeds come through the same claims and sealing.

use jiuzhu_eventstore::{EventStore, UnitOfWork};
use jiuzhu_runtime::grpc::store_status;
use jiuzhu_vault::Vault;
use tonic::Status;
use uuid::Uuid;

pub(crate) const SERVICE: &str = "jiuzhu.registry.v1.RegistryService";

#[derive(Debug, Clone)]
pub struct RegistryApi {
    pub(crate) store: EventStore,
    pub(crate) vault: Vault,
}

impl RegistryApi {
    pub fn new(store: EventStore, vault: Vault) -> Self {
        Self { store, vault }
    }
}

pub(crate) async fn load<A: jiuzhu_eventstore::Aggregate>(
    work: &mut UnitOfWork<'_>,
    stream: Uuid,
) -> Result<(A, i64), Status> {
    work.load::<A>(&stream.to_string())
        .await
        .map_err(store_status)
}

pub(crate) async fn append(
    work: &mut UnitOfWork<'_>,
    stream: Uuid,
    version: i64,
    events: &[crate::domain::RegistryEvent],
) -> Result<(), Status> {
    let stream = stream.to_string();
    work.append(&stream, version, &stream, events)
        .await
        .map_err(store_status)?;
    Ok(())
}
