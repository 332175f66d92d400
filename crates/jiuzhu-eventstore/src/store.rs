use prost::Message;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::event::{Aggregate, Snapshotting, StoredEvent};
use crate::write::Write;
use crate::{Begun, CommandRequest, StoreError, UnitOfWork};

const STREAM_VERSION_CONSTRAINT: &str = "events_stream_id_stream_version_key";

/// Metadata stamped on every event of one append.
#[derive(Debug, Clone)]
pub(crate) struct AppendMeta<'a> {
    pub correlation_id: &'a str,
    pub causation_id: &'a str,
}

/// A service's event store: its own database, the name it signs envelopes with, and the topic
/// its outbox feeds.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    producer: String,
    topic: String,
    /// When events occur: the service's clock.
    clock: jiuzhu_clock::Clock,
    /// Group commit of the commands that need no transaction of their own.
    writer: crate::group::Writer,
}

impl EventStore {
    pub fn new(pool: PgPool, producer: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            clock: jiuzhu_clock::Clock::system(),
            writer: Default::default(),
            pool,
            producer: producer.into(),
            topic: topic.into(),
        }
    }
    /// The same store, stamping events with `clock`'s time.
    pub fn with_clock(mut self, clock: jiuzhu_clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn writer(&self) -> &crate::group::Writer {
        &self.writer
    }

    /// This store for the writer itself (holding the writer would keep it alive for ever).
    pub(crate) fn without_writer(&self) -> Self {
        Self {
            writer: Default::default(),
            ..self.clone()
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The service's clock (what "now" is for everything the service decides).
    pub fn clock(&self) -> &jiuzhu_clock::Clock {
        &self.clock
    }

    pub fn producer(&self) -> &str {
        &self.producer
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Starts an idempotent command: a request id seen before replays its stored answer.
    pub async fn begin_command(&self, request: CommandRequest) -> Result<Begun<'_>, StoreError> {
        UnitOfWork::begin(self, request).await
    }

    /// Stamps `appends` as stored events (ids, versions, time, chain) without writing them.
    pub(crate) fn stamp(
        &self,
        appends: &[crate::Append],
        meta: AppendMeta<'_>,
    ) -> Vec<StoredEvent> {
        let occurred_at = self.clock.now();
        let mut stamped = Vec::new();
        for append in appends {
            for (offset, event) in (1_i64..).zip(&append.events) {
                stamped.push(StoredEvent {
                    position: 0,
                    event_id: Uuid::now_v7(),
                    stream_id: append.stream_id.clone(),
                    stream_version: append.expected_version + offset,
                    event_type: event.event_type.clone(),
                    occurred_at,
                    correlation_id: meta.correlation_id.to_owned(),
                    causation_id: meta.causation_id.to_owned(),
                    partition_key: append.partition_key.clone(),
                    payload: event.payload.clone(),
                });
            }
        }
        stamped
    }

    /// Carries out `writes` in one statement: each write's events with their outbox rows and,
    /// when it has a claim, its command's answer. A write's events are written only if its
    /// answer's request id was free, so a call that lost the race for its id writes nothing. A
    /// stream not at an event's expected version fails the whole statement with
    /// [`StoreError::Conflict`]. Fills in the written events' positions; returns for each write
    /// whether it was carried out (always, without a claim).
    pub(crate) async fn write_in(
        &self,
        conn: &mut PgConnection,
        writes: &mut [Write],
    ) -> Result<Vec<bool>, StoreError> {
        let events = || writes.iter().flat_map(|w| w.events.iter());
        let column =
            |f: fn(&StoredEvent) -> String| events().map(|e| f(&e.event)).collect::<Vec<String>>();
        let (streams, types, keys, correlations, causations) = (
            column(|e| e.stream_id.clone()),
            column(|e| e.event_type.clone()),
            column(|e| e.partition_key.clone()),
            column(|e| e.correlation_id.clone()),
            column(|e| e.causation_id.clone()),
        );
        let event_ids: Vec<Uuid> = events().map(|e| e.event.event_id).collect();
        let versions: Vec<i64> = events().map(|e| e.event.stream_version).collect();
        let times: Vec<chrono::DateTime<chrono::Utc>> =
            events().map(|e| e.event.occurred_at).collect();
        let payloads: Vec<Vec<u8>> = events().map(|e| e.event.payload.clone()).collect();
        let envelopes: Vec<Vec<u8>> = events()
            .map(|e| e.event.envelope(&self.producer).encode_to_vec())
            .collect();
        let trace_contexts: Vec<serde_json::Value> =
            events().map(|e| e.trace_context.clone()).collect();
        // Each event's claim (NULL: written unconditionally).
        let claimed_by: Vec<Option<String>> = writes
            .iter()
            .flat_map(|w| {
                let id = w.claim.as_ref().map(|c| c.request_id.clone());
                std::iter::repeat_n(id, w.events.len())
            })
            .collect();
        let claims = || writes.iter().filter_map(|w| w.claim.as_ref());
        let claim_ids: Vec<&str> = claims().map(|c| c.request_id.as_str()).collect();
        let claim_types: Vec<&str> = claims().map(|c| c.command_type.as_str()).collect();
        let claim_fingerprints: Vec<&[u8]> = claims().map(|c| c.fingerprint.as_slice()).collect();
        let claim_answers: Vec<&[u8]> = claims().map(|c| c.answer.as_slice()).collect();
        // The outbox rows reference the events: the foreign key is checked at the end of the
        // statement, when both are in. `ON CONFLICT DO NOTHING` waits for a concurrent call with
        // the same request id to end, so the loser sees the winner's answer.
        let written = sqlx::query(
            "WITH claimed AS (INSERT INTO commands (request_id, command_type, fingerprint, response) \
             SELECT * FROM unnest($13::text[], $14::text[], $15::bytea[], $16::bytea[]) \
             ON CONFLICT (request_id) DO NOTHING RETURNING request_id), \
             appended AS (INSERT INTO events (event_id, stream_id, stream_version, event_type, \
             occurred_at, correlation_id, causation_id, partition_key, payload) \
             SELECT e.id, e.stream, e.version, e.type, e.at, e.correlation, e.causation, e.key, e.payload \
             FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], \
             $6::text[], $7::text[], $8::text[], $9::bytea[], $17::text[]) \
             AS e(id, stream, version, type, at, correlation, causation, key, payload, claim) \
             WHERE e.claim IS NULL OR e.claim IN (SELECT request_id FROM claimed) \
             RETURNING event_id, position), \
             queued AS (INSERT INTO outbox (event_id, topic, partition_key, event_type, envelope, \
             trace_context) SELECT o.id, $10, o.key, o.type, o.envelope, o.trace \
             FROM unnest($1::uuid[], $8::text[], $4::text[], $11::bytea[], $12::jsonb[], $17::text[]) \
             WITH ORDINALITY AS o(id, key, type, envelope, trace, claim, n) \
             WHERE o.claim IS NULL OR o.claim IN (SELECT request_id FROM claimed) ORDER BY o.n) \
             SELECT coalesce((SELECT array_agg(request_id) FROM claimed), '{}') AS claimed, \
             coalesce((SELECT array_agg(event_id) FROM appended), '{}') AS ids, \
             coalesce((SELECT array_agg(position) FROM appended), '{}') AS positions",
        )
        .bind(&event_ids)
        .bind(&streams)
        .bind(&versions)
        .bind(&types)
        .bind(&times)
        .bind(&correlations)
        .bind(&causations)
        .bind(&keys)
        .bind(&payloads)
        .bind(&self.topic)
        .bind(&envelopes)
        .bind(&trace_contexts)
        .bind(&claim_ids)
        .bind(&claim_types)
        .bind(&claim_fingerprints)
        .bind(&claim_answers)
        .bind(&claimed_by)
        .fetch_one(&mut *conn)
        .await;
        let row = match written {
            Ok(row) => row,
            Err(error) if StoreError::is_unique_violation(&error, STREAM_VERSION_CONSTRAINT) => {
                return Err(self.conflict(writes).await);
            }
            Err(error) => return Err(error.into()),
        };
        let claimed: std::collections::HashSet<String> = row
            .try_get::<Vec<String>, _>("claimed")?
            .into_iter()
            .collect();
        let ids: Vec<Uuid> = row.try_get("ids")?;
        let positions: Vec<i64> = row.try_get("positions")?;
        let positions: std::collections::HashMap<Uuid, i64> =
            ids.into_iter().zip(positions).collect();
        let mut done = Vec::with_capacity(writes.len());
        for write in writes.iter_mut() {
            for pending in &mut write.events {
                pending.event.position = positions
                    .get(&pending.event.event_id)
                    .copied()
                    .unwrap_or_default();
            }
            done.push(
                write
                    .claim
                    .as_ref()
                    .is_none_or(|c| claimed.contains(&c.request_id)),
            );
        }
        Ok(done)
    }

    /// The conflict behind a failed write: the first stream that is not at the version its
    /// events expected.
    async fn conflict(&self, writes: &[Write]) -> StoreError {
        let events: Vec<&StoredEvent> = writes
            .iter()
            .flat_map(|w| w.events.iter().map(|p| &p.event))
            .collect();
        let mut first = None;
        for event in &events {
            let expected = event.stream_version - 1;
            let stream = &event.stream_id;
            if first.is_none() {
                first = Some((stream.clone(), expected));
            }
            if events
                .iter()
                .any(|e| &e.stream_id == stream && e.stream_version <= expected)
            {
                continue;
            }
            match self.stream_version(stream).await {
                Ok(actual) if actual != expected => {
                    return StoreError::Conflict {
                        stream_id: stream.clone(),
                        expected,
                        actual,
                    };
                }
                Ok(_) => {}
                Err(error) => return error,
            }
        }
        // Every stream is where its events expected it now: the writer that got in the way
        // has rolled back since, or two writes of this statement wanted the same version.
        let (stream_id, expected) = first.unwrap_or_default();
        StoreError::Conflict {
            actual: self.stream_version(&stream_id).await.unwrap_or(expected),
            stream_id,
            expected,
        }
    }

    /// Current version of a stream (0 when it has no events), read outside any transaction.
    pub async fn stream_version(&self, stream_id: &str) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// Every event of a stream after `after_version`, in order.
    pub async fn load_stream(
        &self,
        stream_id: &str,
        after_version: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_stream_in(&mut conn, stream_id, after_version).await
    }

    /// Events in global position order after `after_position`, for rebuilding projections of
    /// this service's own events while nothing else writes.
    pub async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&select_events("position > $1 ORDER BY position LIMIT $2"))
            .bind(after_position)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_event).collect()
    }

    /// Marks every retained, published outbox row unpublished, so the relay sends them again in
    /// order: for a broker that has lost this service's topic (a development broker restarted
    /// empty, a cluster rebuilt). Consumers skip what they applied (by event id). Returns how
    /// many rows will be sent again.
    pub async fn republish_outbox(&self) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL")
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Number of events and the highest position, for progress reports.
    pub async fn totals(&self) -> Result<(i64, i64), StoreError> {
        let row =
            sqlx::query("SELECT count(*) AS n, coalesce(max(position), 0) AS top FROM events")
                .fetch_one(&self.pool)
                .await?;
        Ok((row.try_get("n")?, row.try_get("top")?))
    }

    /// Rebuilds an aggregate from its events alone.
    pub async fn load_aggregate<A: Aggregate>(
        &self,
        stream_id: &str,
    ) -> Result<(A, i64), StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_aggregate_in(&mut conn, stream_id).await
    }

    /// Rebuilds an aggregate from its latest snapshot plus the events after it.
    pub async fn load_snapshotted<A: Snapshotting>(
        &self,
        stream_id: &str,
    ) -> Result<(A, i64), StoreError> {
        let snapshot =
            sqlx::query("SELECT stream_version, state FROM snapshots WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?;
        let (mut aggregate, mut version) = match snapshot {
            Some(row) => {
                let state: Vec<u8> = row.try_get("state")?;
                let aggregate =
                    A::from_snapshot(&state).map_err(|reason| StoreError::Snapshot {
                        stream_id: stream_id.to_owned(),
                        reason,
                    })?;
                (aggregate, row.try_get::<i64, _>("stream_version")?)
            }
            None => (A::default(), 0),
        };
        for event in self.load_stream(stream_id, version).await? {
            if let Some(decoded) = event.decode::<A::Event>()? {
                aggregate.apply(&decoded);
            }
            version = event.stream_version;
        }
        Ok((aggregate, version))
    }

    /// Saves a snapshot unless a newer one is already stored.
    pub async fn save_snapshot<A: Snapshotting>(
        &self,
        stream_id: &str,
        version: i64,
        aggregate: &A,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (stream_id, stream_version, state) VALUES ($1, $2, $3) \
             ON CONFLICT (stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version, \
             state = EXCLUDED.state, taken_at = now() \
             WHERE snapshots.stream_version < EXCLUDED.stream_version",
        )
        .bind(stream_id)
        .bind(version)
        .bind(aggregate.to_snapshot())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn select_events(condition: &str) -> String {
    format!(
        "SELECT position, event_id, stream_id, stream_version, event_type, occurred_at, \
         correlation_id, causation_id, partition_key, payload FROM events WHERE {condition}"
    )
}

fn row_to_event(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get("stream_version")?,
        event_type: row.try_get("event_type")?,
        occurred_at: row.try_get("occurred_at")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        partition_key: row.try_get("partition_key")?,
        payload: row.try_get("payload")?,
    })
}

pub(crate) async fn load_stream_in(
    conn: &mut PgConnection,
    stream_id: &str,
    after_version: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query(&select_events(
        "stream_id = $1 AND stream_version > $2 ORDER BY stream_version",
    ))
    .bind(stream_id)
    .bind(after_version)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_event).collect()
}

pub(crate) async fn load_aggregate_in<A: Aggregate>(
    conn: &mut PgConnection,
    stream_id: &str,
) -> Result<(A, i64), StoreError> {
    let mut aggregate = A::default();
    let mut version = 0;
    for event in load_stream_in(conn, stream_id, 0).await? {
        if let Some(decoded) = event.decode::<A::Event>()? {
            aggregate.apply(&decoded);
        }
        version = event.stream_version;
    }
    Ok((aggregate, version))
}
