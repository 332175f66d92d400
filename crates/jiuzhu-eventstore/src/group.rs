//! Group commit: commands that only load and append (no transaction of their own) hand their
//! write to one writer per store, which carries out every write waiting at that moment in one
//! statement. Under load, many commands then share one statement and one WAL flush; alone, a
//! command waits for nobody.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use crate::write::Write;
use crate::{EventStore, StoreError};

/// Writes in one statement at most, and their events at most (a larger write goes alone).
const MAX_WRITES: usize = 128;
const MAX_EVENTS: usize = 2_000;

/// The store's writer, started on first use in the runtime that first uses it.
pub(crate) type Writer = Arc<OnceLock<mpsc::UnboundedSender<Job>>>;

pub(crate) struct Job {
    write: Write,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

fn stopped() -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        "the store's writer stopped before answering; the command may or may not be written \
         (send it again with the same request id)",
    )))
}

impl EventStore {
    /// Carries out `write` (see [`EventStore::write_in`]) together with whatever other writes
    /// are waiting; whether it was carried out.
    pub(crate) async fn write_grouped(&self, write: Write) -> Result<bool, StoreError> {
        let sender = self.writer().get_or_init(|| {
            let (sender, jobs) = mpsc::unbounded_channel();
            tokio::spawn(run(self.without_writer(), jobs));
            sender
        });
        let (reply, answer) = oneshot::channel();
        match sender.send(Job { write, reply }) {
            Ok(()) => answer.await.map_err(|_| stopped())?,
            // The runtime the writer ran in has ended (a store shared across runtimes): alone.
            Err(mpsc::error::SendError(job)) => self.write_alone(job.write).await,
        }
    }

    async fn write_alone(&self, write: Write) -> Result<bool, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut writes = [write];
        let done = self.write_in(&mut conn, &mut writes).await?;
        Ok(done.first().copied().unwrap_or(false))
    }
}

/// Takes every write waiting, up to the limits, and carries them out in one statement; two
/// writes under one request id never share a statement (each must see whether the other took
/// the id), so the later waits for the next one.
async fn run(store: EventStore, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    // Kept from one statement to the next while writes keep coming (checking a connection out
    // costs a round trip to test it, and a wait when the pool is busy); given back when there is
    // nothing to write and after a failure.
    let mut connection = None;
    loop {
        if waiting.is_empty() {
            match jobs.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while waiting.len() < MAX_WRITES {
            match jobs.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        let mut ids = HashSet::new();
        let mut events = 0;
        while let Some(job) = waiting.pop_front() {
            let size = job.write.events.len();
            let full =
                !batch.is_empty() && (batch.len() >= MAX_WRITES || events + size > MAX_EVENTS);
            let twice = job
                .write
                .claim
                .as_ref()
                .is_some_and(|claim| !ids.insert(claim.request_id.clone()));
            if full || twice {
                later.push_back(job);
            } else {
                events += size;
                batch.push(job);
            }
        }
        waiting = later;
        carry_out(&store, &mut connection, batch).await;
        if waiting.is_empty() && jobs.is_empty() {
            connection = None;
        }
    }
}

/// One statement for the batch; if it fails (a stream conflict fails them all), each write
/// alone, so that only the one in conflict is refused.
async fn carry_out(
    store: &EventStore,
    connection: &mut Option<PoolConnection<Postgres>>,
    batch: Vec<Job>,
) {
    let (mut writes, replies): (Vec<Write>, Vec<_>) =
        batch.into_iter().map(|job| (job.write, job.reply)).unzip();
    let together = async {
        let conn = match connection {
            Some(conn) => conn,
            None => connection.insert(store.pool().acquire().await?),
        };
        store.write_in(conn, &mut writes).await
    }
    .await;
    if together.is_err() {
        *connection = None;
    }
    match together {
        Ok(done) => {
            for (reply, done) in replies.into_iter().zip(done) {
                let _ = reply.send(Ok(done));
            }
        }
        Err(error) if writes.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
        Err(_) => {
            for (write, reply) in writes.into_iter().zip(replies) {
                let _ = reply.send(store.write_alone(write).await);
            }
        }
    }
}
