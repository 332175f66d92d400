//! The one command path of every service, for API calls and internal commands alike: a call
//! seen before gets its stored answer; a new one opens a unit of work in which `decide` loads,
//! decides and appends, and its answer is stored with the events and their outbox rows in one
//! transaction. No gRPC here: the caller says how a store error becomes its own error.

use std::future::Future;
use std::pin::Pin;

use crate::unit_of_work::previous_answer;
use crate::{Begun, CommandRequest, EventStore, StoreError, UnitOfWork};

/// What `decide` returns: its answer (or error) once the unit of work has done its reads and
/// appends.
pub type Decision<'w, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'w>>;

impl EventStore {
    /// Runs one idempotent command (see the module documentation). `store_error` turns a
    /// failure of the store itself into the caller's error type.
    pub async fn execute<'s, T, E, D>(
        &'s self,
        call: CommandRequest,
        store_error: fn(StoreError) -> E,
        decide: D,
    ) -> Result<T, E>
    where
        T: prost::Message + Default,
        D: for<'w> FnOnce(&'w mut UnitOfWork<'s>) -> Decision<'w, T, E>,
    {
        let command_type = call.command_type.clone();
        let answer = |bytes: &[u8]| {
            T::decode(bytes).map_err(|error| {
                store_error(StoreError::Answer {
                    command_type: command_type.clone(),
                    reason: error.to_string(),
                })
            })
        };
        let request = call.clone();
        let mut work = match self.begin_command(call).await.map_err(store_error)? {
            Begun::Replay(stored) => return answer(&stored),
            Begun::Fresh(work) => work,
        };
        let decided = match decide(&mut work).await {
            Ok(decided) => decided,
            Err(error) => {
                drop(work);
                // A call with the same id that raced this one and committed first (this one
                // then met its events or its state): its answer is this one's too.
                if request.recorded
                    && let Some(stored) =
                        previous_answer(self, &request).await.map_err(store_error)?
                {
                    return answer(&stored);
                }
                return Err(error);
            }
        };
        let stored = work
            .commit(decided.encode_to_vec())
            .await
            .map_err(store_error)?;
        answer(&stored)
    }
}
