use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use futures::FutureExt;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dead_letter::DeadLetters;
pub use crate::delivery::Delivered;
use crate::delivery::{Decoded, decode, save_checkpoint};
use crate::headers::header_map;
use crate::{ConsumerSettings, KafkaSettings};

/// Records in `events` (in order) whose ids `consumer` has not applied before, recording them
/// in the inbox in the same transaction; repeats within `events` count once.
pub(crate) async fn fresh_events<'e>(
    conn: &mut PgConnection,
    consumer: &str,
    events: &'e [Delivered],
) -> Result<Vec<&'e Delivered>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
    let fresh: std::collections::HashSet<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(&ids)
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect();
    let mut taken = std::collections::HashSet::new();
    Ok(events
        .iter()
        .filter(|e| fresh.contains(&e.event_id) && taken.insert(e.event_id))
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The event can never be applied (bad content, violated invariant): no retry will help.
    #[error("event rejected: {0}")]
    Rejected(String),
    #[error("payload cannot be decoded: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("projection database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Something the handler depends on is down; the message is retried, never dead-lettered.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Failed for a reason that may pass (an internal error, a lost race with another writer):
    /// retried up to `[consumer] max_attempts`, then dead-lettered with this reason.
    #[error("failed: {0}")]
    Failed(String),
}

impl ProjectionError {
    /// A UUID field of an event, or the message's rejection naming the field.
    pub fn uuid(field: &str, text: &str) -> Result<uuid::Uuid, Self> {
        uuid::Uuid::parse_str(text)
            .map_err(|_| Self::Rejected(format!("{field} `{text}` is not a UUID")))
    }

    /// Errors that no retry can cure: the message goes to the dead-letter topic at once.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected(_) | Self::Decode(_))
    }

    /// Errors of the infrastructure rather than of the message: retrying later will work, so
    /// the message must not be dead-lettered for them.
    pub fn is_infrastructure(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(error) => jiuzhu_errors::is_outage(error),
            _ => false,
        }
    }
}

/// An application's failure inside a consumer, by the one classification
/// ([`jiuzhu_errors::AppError::disposition`]); a rejection keeps every field violation in its
/// reason.
impl From<jiuzhu_errors::AppError> for ProjectionError {
    fn from(error: jiuzhu_errors::AppError) -> Self {
        use jiuzhu_errors::Disposition;
        match error.disposition() {
            Disposition::RetryUntilItPasses => Self::Unavailable(error.to_string()),
            Disposition::RetryThenDeadLetter => Self::Failed(error.to_string()),
            Disposition::DeadLetter => Self::Rejected(error.to_string()),
        }
    }
}

/// A read model built only from events. `apply` runs inside the transaction that also records
/// the event id in the inbox and the checkpoint, so the three commit or fail together.
pub trait Projection: Send + Sync + 'static {
    /// Unique within the platform, e.g. `clues.linkage_index`; names the consumer group.
    fn name(&self) -> &str;
    /// Topics the projection reads.
    fn topics(&self) -> Vec<String>;
    /// Applies one event. Unknown event types should be ignored, not rejected.
    fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
    /// Applies several events in order, inside one transaction. The default applies them one
    /// by one, each in its own span; projections override it with set-based writes.
    fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&Delivered],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        async move {
            for event in events {
                self.apply(conn, event)
                    .instrument(event.span(self.name()))
                    .await?;
            }
            Ok(())
        }
    }
    /// Empties the projection's tables before a rebuild.
    fn reset(
        &self,
        conn: &mut PgConnection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

fn process_span(message: &OwnedMessage, consumer: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka.process",
        otel.name = %format!("process {}", message.topic()),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = %message.topic(),
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.consumer.group.name = %consumer,
        messaging.destination.partition.id = message.partition(),
        messaging.kafka.offset = message.offset(),
        trace_id = tracing::field::Empty,
    );
    let headers = header_map(message.headers());
    jiuzhu_telemetry::set_parent_from_map(&span, &headers);
    jiuzhu_telemetry::record_trace_id(&span);
    span
}

/// Applies batches of messages to a projection, exactly once per event id.
pub(crate) struct Applier<'a, P: Projection> {
    pub pool: &'a PgPool,
    pub projection: &'a P,
    pub settings: &'a ConsumerSettings,
    pub dead_letters: &'a DeadLetters,
}

impl<P: Projection> Applier<'_, P> {
    /// Applies `batch` (in partition order) and returns when every message is applied, skipped
    /// as a duplicate, or dead-lettered. Infrastructure failures are retried without end (the
    /// offsets are not committed meanwhile), `shutdown` permitting: `false` means it stopped.
    pub async fn apply_batch(&self, batch: &[OwnedMessage], shutdown: &CancellationToken) -> bool {
        let mut failures = 0u32;
        loop {
            match self.try_batch(batch).await {
                Ok(()) => return true,
                Err(error) if error.is_infrastructure() => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, consumer = self.projection.name(), "projection store unavailable; retrying");
                    if !self.pause(failures, shutdown).await {
                        return false;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "batch failed; applying its messages one by one");
                    break;
                }
            }
        }
        for message in batch {
            if !self.apply_one(message, shutdown).await {
                return false;
            }
        }
        true
    }

    async fn pause(&self, attempt: u32, shutdown: &CancellationToken) -> bool {
        backoff(self.settings, attempt, shutdown).await
    }

    async fn try_batch(&self, batch: &[OwnedMessage]) -> Result<(), ProjectionError> {
        let mut events = Vec::with_capacity(batch.len());
        let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for message in batch {
            match decode(message) {
                Decoded::Event(event) => events.push(*event),
                // Cannot succeed in a batch; the one-by-one pass dead-letters it.
                Decoded::Poison { reason } => return Err(ProjectionError::Rejected(reason)),
            }
            next_offsets.insert(
                (message.topic().to_owned(), message.partition()),
                message.offset() + 1,
            );
        }
        let mut tx = self.pool.begin().await?;
        let fresh = fresh_events(&mut tx, self.projection.name(), &events).await?;
        if fresh.len() < events.len() {
            tracing::debug!(
                skipped = events.len() - fresh.len(),
                "duplicate deliveries skipped"
            );
        }
        self.projection.apply_many(&mut tx, &fresh).await?;
        for ((topic, partition), next) in &next_offsets {
            save_checkpoint(&mut tx, self.projection.name(), topic, *partition, *next).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn apply_deduplicated(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<bool, ProjectionError> {
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(self.projection.name())
        .bind(event.event_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if fresh {
            self.projection.apply(conn, event).await?;
        } else {
            tracing::debug!(event_id = %event.event_id, "duplicate delivery skipped");
        }
        Ok(fresh)
    }

    async fn apply_one(&self, message: &OwnedMessage, shutdown: &CancellationToken) -> bool {
        let mut attempts = 0u32;
        let mut infrastructure_failures = 0u32;
        loop {
            let outcome = match decode(message) {
                Decoded::Poison { reason } => Err(ProjectionError::Rejected(reason)),
                Decoded::Event(event) => {
                    let span = process_span(message, self.projection.name());
                    self.try_one(&event).instrument(span).await
                }
            };
            let error = match outcome {
                Ok(()) => return true,
                Err(error) => error,
            };
            if error.is_infrastructure() {
                infrastructure_failures = infrastructure_failures.saturating_add(1);
                tracing::warn!(%error, "projection store unavailable; retrying");
                if !self.pause(infrastructure_failures, shutdown).await {
                    return false;
                }
                continue;
            }
            attempts += 1;
            // A rejected or undecodable message will never apply: no point in retrying it.
            if attempts >= self.settings.max_attempts || error.is_permanent() {
                tracing::error!(
                    %error, attempts, topic = message.topic(), partition = message.partition(),
                    offset = message.offset(), "giving up on message; sending it to the dead-letter topic"
                );
                return self
                    .dead_letters
                    .send(
                        self.pool,
                        self.projection.name(),
                        message,
                        &error.to_string(),
                        attempts,
                        shutdown,
                    )
                    .await;
            }
            tracing::warn!(%error, attempts, "applying message failed; retrying");
            if !self.pause(attempts, shutdown).await {
                return false;
            }
        }
    }

    async fn try_one(&self, event: &Delivered) -> Result<(), ProjectionError> {
        let mut tx = self.pool.begin().await?;
        self.apply_deduplicated(&mut tx, event).await?;
        save_checkpoint(
            &mut tx,
            self.projection.name(),
            &event.topic,
            event.partition,
            event.offset + 1,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Waits before retry number `attempt`: doubling from `retry_backoff_ms` up to
/// `retry_backoff_max_ms`, plus up to half again at random, so that the consumers and replicas
/// one outage stopped together do not all come back in step. `false` if `shutdown` came.
pub(crate) async fn backoff(
    settings: &ConsumerSettings,
    attempt: u32,
    shutdown: &CancellationToken,
) -> bool {
    let base = Duration::from_millis(settings.retry_backoff_ms.max(1));
    let delay = base
        .saturating_mul(2u32.saturating_pow(attempt.min(10)))
        .min(Duration::from_millis(settings.retry_backoff_max_ms.max(1)));
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(delay + jitter(delay / 2)) => true,
    }
}

/// A random pause of at most `most` (from the operating system's randomness, through a v4
/// UUID): what spreads out retries that one outage started at the same moment.
pub fn jitter(most: Duration) -> Duration {
    let draw = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    let fraction = f64::from(u32::try_from(draw).unwrap_or(0)) / 1_000_000.0;
    most.mul_f64(fraction)
}

/// Runs one projection as a member of its consumer group.
pub struct ProjectionRunner<P: Projection> {
    pool: PgPool,
    projection: P,
    kafka: KafkaSettings,
    settings: ConsumerSettings,
    client_id: String,
}

impl<P: Projection> std::fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &self.projection.name())
            .finish_non_exhaustive()
    }
}

impl<P: Projection> ProjectionRunner<P> {
    pub fn new(
        pool: PgPool,
        projection: P,
        kafka: KafkaSettings,
        settings: ConsumerSettings,
        client_id: &str,
    ) -> Self {
        Self {
            pool,
            projection,
            kafka,
            settings,
            client_id: client_id.to_owned(),
        }
    }

    /// Consumes until `shutdown`. A batch's offsets are stored for commit only after its
    /// transaction.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), KafkaError> {
        let consumer = group_consumer(
            &self.kafka,
            &self.settings,
            self.projection.name(),
            &self.client_id,
        )?;
        let topics: Vec<String> = self
            .projection
            .topics()
            .iter()
            .map(|t| self.kafka.topic(t))
            .collect();
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
        let dead_letters = dead_letters(&self.kafka, &self.client_id);
        let applier = Applier {
            pool: &self.pool,
            projection: &self.projection,
            settings: &self.settings,
            dead_letters: &dead_letters,
        };
        tracing::info!(
            projection = self.projection.name(),
            ?topics,
            "projection consumer started"
        );
        loop {
            let Some(first) = receive(&consumer, &shutdown, self.projection.name()).await else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < self.settings.batch_size {
                match consumer.recv().now_or_never() {
                    Some(Ok(message)) => batch.push(message.detach()),
                    _ => break,
                }
            }
            if !applier.apply_batch(&batch, &shutdown).await {
                break;
            }
            if let Err(error) = consumer.store_offsets(&next_offsets(&batch)) {
                // The partition may have moved to another member; it re-reads from the last
                // committed offset and the inbox skips what was applied here.
                tracing::warn!(%error, "offset not stored for commit");
            }
        }
        leave_group(consumer, self.projection.name()).await;
        tracing::info!(
            projection = self.projection.name(),
            "projection consumer stopped"
        );
        Ok(())
    }
}

/// A shared projection is a projection (the runtime runs and rebuilds the same instance).
impl<P: Projection> Projection for std::sync::Arc<P> {
    fn name(&self) -> &str {
        P::name(self)
    }
    fn topics(&self) -> Vec<String> {
        P::topics(self)
    }
    fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        P::apply(self, conn, event)
    }
    fn apply_many(
        &self,
        conn: &mut PgConnection,
        events: &[&Delivered],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        P::apply_many(self, conn, events)
    }
    fn reset(
        &self,
        conn: &mut PgConnection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        P::reset(self, conn)
    }
}

/// The next record, or `None` once `shutdown` is cancelled. Receive errors are logged and
/// retried after a pause: the broker may be restarting.
pub(crate) async fn receive(
    consumer: &GroupConsumer,
    shutdown: &CancellationToken,
    who: &str,
) -> Option<OwnedMessage> {
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return None,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => return Some(message.detach()),
            Err(error) => {
                tracing::warn!(%error, consumer = who, "Kafka receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A member of consumer group `name` that commits only the offsets it is given to store (those
/// of applied messages), every `commit_interval_ms` and when it leaves or loses a partition.
pub(crate) fn group_consumer(
    kafka: &KafkaSettings,
    settings: &ConsumerSettings,
    name: &str,
    client_id: &str,
) -> Result<GroupConsumer, KafkaError> {
    let mut config = kafka.client_config();
    if let Some(instance) = kafka.group_instance_id(name) {
        config.set("group.instance.id", instance);
    }
    config
        .set("group.id", kafka.group_id(name))
        .set("client.id", client_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            settings.commit_interval_ms.to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 10).max(1_000).to_string(),
        )
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        .create_with_context(GroupContext::default())
}

/// A group member that knows whether it has finished joining (been given its partitions, even
/// none).
pub(crate) type GroupConsumer = StreamConsumer<GroupContext>;

#[derive(Debug, Default)]
pub(crate) struct GroupContext {
    joined: AtomicBool,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.joined.store(true, Ordering::Release);
        }
    }
}

/// Leaves the group. A member still joining finishes joining first (for at most a few
/// seconds): tansu 0.6, the development broker, keeps a member that leaves a forming group as
/// that group's leader, and every later member then waits on it forever. Records received
/// meanwhile are not committed, so whoever owns their partition next reads them.
pub(crate) async fn leave_group(consumer: GroupConsumer, who: &str) {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while !consumer.context().joined.load(Ordering::Acquire) && tokio::time::Instant::now() < until
    {
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }
    if !consumer.context().joined.load(Ordering::Acquire) {
        tracing::warn!(
            consumer = who,
            "leaving a consumer group before having joined it"
        );
    }
    // Closing sends the pending commits and leaves the group; it blocks, so not on an async
    // worker (a blocked worker would stall everything else in this process), and not on the
    // runtime's blocking pool either: librdkafka can wait for ever on a rebalance during the
    // close (seen with tansu 0.6), and a runtime waits for its blocking pool when it stops. On
    // a thread of its own it is waited for at most `CLOSE_LIMIT`; past that the member is
    // left to the broker's session timeout (the checkpoints in the database are what count).
    let (closed, done) = tokio::sync::oneshot::channel();
    let closing = std::thread::Builder::new()
        .name("kafka-close".to_owned())
        .spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
    match closing {
        Ok(_) => {
            if tokio::time::timeout(CLOSE_LIMIT, done).await.is_err() {
                tracing::warn!(
                    consumer = who,
                    "leaving the consumer group did not finish in time; going on without it"
                );
            }
        }
        Err(error) => tracing::warn!(consumer = who, %error, "no thread to close the consumer"),
    }
}

/// How long stopping waits for a consumer to leave its group.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Where a consumer's dead letters go (the producer is made on the first one).
pub(crate) fn dead_letters(kafka: &KafkaSettings, client_id: &str) -> DeadLetters {
    let mut config = kafka.client_config();
    config
        .set("client.id", format!("{client_id}-dlq"))
        .set("enable.idempotence", "true")
        .set("acks", "all");
    DeadLetters::new(config)
}

pub(crate) fn next_offsets(batch: &[OwnedMessage]) -> TopicPartitionList {
    let mut highest: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let entry = highest
            .entry((message.topic(), message.partition()))
            .or_insert(-1);
        *entry = (*entry).max(message.offset());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in highest {
        // Adding to a fresh list cannot fail for a valid offset.
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset + 1));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound_and_spreads_out() {
        let most = Duration::from_millis(500);
        let draws: Vec<Duration> = (0..50).map(|_| jitter(most)).collect();
        assert!(draws.iter().all(|d| *d <= most), "{draws:?}");
        let distinct: std::collections::BTreeSet<&Duration> = draws.iter().collect();
        assert!(distinct.len() > 40, "{draws:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
