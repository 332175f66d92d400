use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Row, Transaction};

use jiuzhu_errors::AppError;

use crate::event::{Aggregate, EventCodec, NewEvent, StoredEvent};
use crate::store::{AppendMeta, load_aggregate_in};
use crate::write::{Claim, PendingEvent, Write};
use crate::{EventStore, StoreError};

/// Identifies one command call for idempotency.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// The caller's request id.
    pub request_id: String,
    /// Name of the command (e.g. the RPC's full name).
    pub command_type: String,
    /// SHA-256 of the request's content: the same id with other content is refused.
    pub fingerprint: Vec<u8>,
    /// Chain the command belongs to; defaults to the request id.
    pub correlation_id: Option<String>,
    /// What caused the command; defaults to the request id.
    pub causation_id: Option<String>,
    /// Whether the answer is kept under the request id (false for batches whose idempotency
    /// rests on their own natural keys).
    pub recorded: bool,
    /// An internal command's own key (its request id is the key in the internal namespace).
    pub internal_key: Option<String>,
}

/// What an internal command's key is stored under: a space, which no API request id may hold
/// (printable ASCII without spaces), keeps the two namespaces apart, so that no caller's request
/// id can take an internal command's answer.
const INTERNAL_NAMESPACE: &str = "internal ";

impl CommandRequest {
    /// A command identified by `request_id` whose content is `request_bytes` (the encoded request).
    pub fn new(request_id: &str, command_type: &str, request_bytes: &[u8]) -> Self {
        Self {
            request_id: request_id.to_owned(),
            command_type: command_type.to_owned(),
            fingerprint: Sha256::digest(request_bytes).to_vec(),
            correlation_id: None,
            causation_id: None,
            recorded: true,
            internal_key: None,
        }
    }

    /// An API call: the caller's request id and the encoded request (the same id with other
    /// content is refused).
    pub fn api(command_type: &str, request_id: &str, request: &impl prost::Message) -> Self {
        Self::new(request_id, command_type, &request.encode_to_vec())
    }

    /// An internal command (a reaction to an event, a timer) identified by its own key, which
    /// names the work itself (`deadline-breached-<case>-<stage>-<day>`, `payments-<event id>`):
    /// there is no request to fingerprint, and the same key always gets the first answer.
    pub fn internal(command_type: &str, key: impl Into<String>) -> Self {
        let key = key.into();
        Self {
            request_id: format!("{INTERNAL_NAMESPACE}{key}"),
            command_type: command_type.to_owned(),
            fingerprint: Vec::new(),
            correlation_id: None,
            causation_id: None,
            recorded: true,
            internal_key: Some(key),
        }
    }

    /// A unit of work whose idempotency the caller ensures by its own keys (e.g. a department's
    /// source record ids): nothing is stored under `correlation_id` and no replay happens.
    pub fn unrecorded(correlation_id: &str, command_type: &str) -> Self {
        Self {
            request_id: correlation_id.to_owned(),
            command_type: command_type.to_owned(),
            fingerprint: Vec::new(),
            correlation_id: None,
            causation_id: None,
            recorded: false,
            internal_key: None,
        }
    }
}

/// Outcome of starting a command.
// Made once per command and matched at once: boxing the unit of work would only add an
// allocation to every command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Begun<'s> {
    /// The request id was seen before: here is the answer that was given then.
    Replay(Vec<u8>),
    /// A new command: decide, append, commit.
    Fresh(UnitOfWork<'s>),
}

/// One command's unit of work: loads, appends (with outbox rows) and records the answer, all
/// committed together. It holds one connection from the pool; a transaction is begun only when
/// the command reads or writes through [`UnitOfWork::connection`] (or sets a savepoint), and
/// appended events are written when something must see them or at commit, together with the
/// answer. A command that only loads and appends thus costs three statements: the replay check,
/// the load, and one write that commits by itself.
#[derive(Debug)]
pub struct UnitOfWork<'s> {
    store: &'s EventStore,
    link: Link,
    request: CommandRequest,
    /// Every event appended, written or not; those from `written` on are still to be written.
    appended: Vec<PendingEvent>,
    written: usize,
}

/// The unit's connection: plain until the command first needs a transaction.
#[derive(Debug)]
enum Link {
    Plain(PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
    /// Beginning a transaction failed, and the connection went with it.
    Lost,
}

fn lost() -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the command's database connection was lost",
    )))
}

impl<'s> UnitOfWork<'s> {
    /// The store's clock: what "now" is for the command.
    pub fn clock(&self) -> &jiuzhu_clock::Clock {
        self.store.clock()
    }

    pub(crate) async fn begin(
        store: &'s EventStore,
        request: CommandRequest,
    ) -> Result<Begun<'s>, StoreError> {
        let mut conn = store.pool().acquire().await?;
        if request.recorded
            && let Some(answer) = previous_answer_in(&mut conn, &request).await?
        {
            return Ok(Begun::Replay(answer));
        }
        Ok(Begun::Fresh(Self {
            store,
            link: Link::Plain(conn),
            request,
            appended: Vec::new(),
            written: 0,
        }))
    }

    /// The command's transaction (begun now if it was not), with every event appended so far
    /// written in it: for the reads and writes the command makes itself.
    pub async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        self.begin_transaction().await?;
        self.write_appended().await?;
        self.link_connection()
    }

    fn link_connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        match &mut self.link {
            Link::Plain(conn) => Ok(&mut *conn),
            Link::Tx(tx) => Ok(&mut *tx),
            Link::Lost => Err(lost()),
        }
    }

    async fn begin_transaction(&mut self) -> Result<(), StoreError> {
        self.link = match std::mem::replace(&mut self.link, Link::Lost) {
            // What `Pool::begin` does with the connection it acquires.
            Link::Plain(conn) => Link::Tx(Transaction::begin(conn, None).await?),
            other => other,
        };
        Ok(())
    }

    /// Writes the events appended and not yet written (inside the transaction).
    async fn write_appended(&mut self) -> Result<(), StoreError> {
        if self.written == self.appended.len() {
            return Ok(());
        }
        self.write(None).await?;
        Ok(())
    }

    /// Writes what is pending with `claim` in one statement on the unit's own connection;
    /// false if the claim was refused.
    async fn write(&mut self, claim: Option<Claim>) -> Result<bool, StoreError> {
        let store = self.store;
        let events = self.appended.split_off(self.written);
        let mut writes = [Write { events, claim }];
        let done = store.write_in(self.link_connection()?, &mut writes).await;
        let [write] = writes;
        self.appended.extend(write.events);
        let claimed = done?.first().copied().unwrap_or(false);
        if claimed {
            self.written = self.appended.len();
        }
        Ok(claimed)
    }

    /// Where loads read: the transaction once there is one (after writing what is pending, so
    /// the command sees its own events), the plain connection before.
    async fn reading(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.written < self.appended.len() {
            return self.connection().await;
        }
        self.link_connection()
    }

    /// The one command step on an existing stream: load the aggregate, let `decide` turn it into
    /// events, append them at the version loaded (a concurrent writer makes the commit a
    /// [`StoreError::Conflict`]) under the aggregate's partition key. A stream with no events is
    /// [`StoreError::NotFound`]. The domain's refusal becomes the application's error by its
    /// one mapping.
    pub async fn decide_on<A, Refused>(
        &mut self,
        stream_id: &str,
        decide: impl FnOnce(&A) -> Result<Vec<A::Event>, Refused>,
    ) -> Result<Decided<A>, AppError>
    where
        A: Aggregate + Clone,
        AppError: From<Refused>,
    {
        let (before, version) = self
            .load::<A>(stream_id)
            .await
            .map_err(<AppError as From<StoreError>>::from)?;
        if version == 0 {
            return Err(StoreError::NotFound {
                kind: A::KIND,
                stream_id: stream_id.to_owned(),
            }
            .into());
        }
        let events = decide(&before)?;
        let key = before.partition_key().unwrap_or(stream_id).to_owned();
        self.append(stream_id, version, &key, &events)
            .await
            .map_err(<AppError as From<StoreError>>::from)?;
        let mut after = before.clone();
        for event in &events {
            after.apply(event);
        }
        let version = version + i64::try_from(events.len()).unwrap_or(i64::MAX);
        Ok(Decided {
            before,
            after,
            events,
            version,
        })
    }

    /// Loads an aggregate with its current version (this command's own events included).
    pub async fn load<A: Aggregate>(&mut self, stream_id: &str) -> Result<(A, i64), StoreError> {
        load_aggregate_in(self.reading().await?, stream_id).await
    }

    /// A stream's decoded events (types `E` does not know are left out) and its current
    /// version, for shells that transform events before folding them (e.g. opening sealed
    /// personal data).
    pub async fn load_events<E: EventCodec>(
        &mut self,
        stream_id: &str,
    ) -> Result<(Vec<E>, i64), StoreError> {
        let mut decoded = Vec::new();
        let mut version = 0;
        for event in crate::store::load_stream_in(self.reading().await?, stream_id, 0).await? {
            decoded.extend(event.decode::<E>()?);
            version = event.stream_version;
        }
        Ok((decoded, version))
    }

    /// Appends events to a stream at `expected_version` (0 for a new stream). They are written
    /// when the command next reads or commits; a concurrent writer that got there first makes
    /// that fail with [`StoreError::Conflict`].
    pub async fn append<E: EventCodec>(
        &mut self,
        stream_id: &str,
        expected_version: i64,
        partition_key: &str,
        events: &[E],
    ) -> Result<(), StoreError> {
        let append = crate::Append {
            stream_id: stream_id.to_owned(),
            expected_version,
            partition_key: partition_key.to_owned(),
            events: events.iter().map(NewEvent::from_codec).collect(),
        };
        self.append_many(std::slice::from_ref(&append)).await
    }

    /// Appends to many streams at once (written in one statement whatever the count): for bulk
    /// paths.
    pub async fn append_many(&mut self, appends: &[crate::Append]) -> Result<(), StoreError> {
        let (correlation, causation) = self.chain();
        let stamped = self.store.stamp(
            appends,
            AppendMeta {
                correlation_id: &correlation,
                causation_id: &causation,
            },
        );
        let trace_context = serde_json::to_value(jiuzhu_telemetry::current_context_to_map())
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        self.appended
            .extend(stamped.into_iter().map(|event| PendingEvent {
                event,
                trace_context: trace_context.clone(),
            }));
        Ok(())
    }

    /// Records `answer` under the request id, with the events not yet written, and commits.
    /// If a concurrent call with the same request id committed first, this one writes nothing
    /// and that call's answer is returned. A command without a transaction of its own commits
    /// in one statement shared with the other commands committing at that moment.
    pub async fn commit(mut self, answer: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let request = self.request.clone();
        let claim = request.recorded.then(|| Claim {
            request_id: request.request_id.clone(),
            command_type: request.command_type.clone(),
            fingerprint: request.fingerprint.clone(),
            answer: answer.clone(),
        });
        let pending = claim.is_some() || self.written < self.appended.len();
        let claimed = match std::mem::replace(&mut self.link, Link::Lost) {
            Link::Plain(conn) if pending => {
                drop(conn);
                let write = Write {
                    events: self.appended.split_off(self.written),
                    claim,
                };
                self.store.write_grouped(write).await?
            }
            Link::Tx(tx) if pending => {
                self.link = Link::Tx(tx);
                let claimed = self.write(claim).await?;
                let Link::Tx(tx) = std::mem::replace(&mut self.link, Link::Lost) else {
                    return Err(lost());
                };
                if claimed {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                claimed
            }
            Link::Tx(tx) => {
                tx.commit().await?;
                true
            }
            Link::Plain(_) => true,
            Link::Lost => return Err(lost()),
        };
        if !claimed {
            return previous_answer(self.store, &request).await?.ok_or_else(|| {
                StoreError::RequestIdReused {
                    request_id: request.request_id.clone(),
                    command_type: request.command_type.clone(),
                }
            });
        }
        Ok(answer)
    }

    /// Marks a point to roll back to if the next step fails (a PostgreSQL savepoint).
    pub async fn savepoint(&mut self) -> Result<(), StoreError> {
        sqlx::query("SAVEPOINT unit_step")
            .execute(self.connection().await?)
            .await?;
        Ok(())
    }

    /// Undoes everything since the last [`UnitOfWork::savepoint`], events included.
    pub async fn rollback_to_savepoint(&mut self, keep_events: usize) -> Result<(), StoreError> {
        sqlx::query("ROLLBACK TO SAVEPOINT unit_step")
            .execute(self.link_connection()?)
            .await?;
        self.appended.truncate(keep_events);
        self.written = self.written.min(keep_events);
        Ok(())
    }

    /// Correlation and causation ids of this unit's events (the request id unless given).
    fn chain(&self) -> (String, String) {
        let request_id = self
            .request
            .internal_key
            .as_ref()
            .unwrap_or(&self.request.request_id);
        (
            self.request
                .correlation_id
                .clone()
                .unwrap_or_else(|| request_id.clone()),
            self.request
                .causation_id
                .clone()
                .unwrap_or_else(|| request_id.clone()),
        )
    }

    /// Events appended so far in this unit of work (positions are known once written).
    pub fn appended(&self) -> impl ExactSizeIterator<Item = &StoredEvent> {
        self.appended.iter().map(|pending| &pending.event)
    }
}

/// The stored answer of `request`, if it was carried out before (an API id reused for other
/// content or another command is refused).
pub(crate) async fn previous_answer(
    store: &EventStore,
    request: &CommandRequest,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    previous_answer_in(&mut conn, request).await
}

async fn previous_answer_in(
    conn: &mut PgConnection,
    request: &CommandRequest,
) -> Result<Option<Vec<u8>>, StoreError> {
    // An internal command carried out before keys had their namespace is stored under its bare
    // key; a row there of another command type is a caller's request id, not this command.
    let row = sqlx::query(
        "SELECT command_type, fingerprint, response FROM commands \
         WHERE request_id = $1 OR (request_id = $2 AND command_type = $3) \
         ORDER BY request_id = $1 DESC LIMIT 1",
    )
    .bind(&request.request_id)
    .bind(request.internal_key.as_deref())
    .bind(&request.command_type)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let command_type: String = row.try_get("command_type")?;
    let fingerprint: Vec<u8> = row.try_get("fingerprint")?;
    // An internal command's key is its identity: only its type must match.
    let content_differs = !request.fingerprint.is_empty() && fingerprint != request.fingerprint;
    if command_type != request.command_type || content_differs {
        return Err(StoreError::RequestIdReused {
            request_id: request.request_id.clone(),
            command_type: request.command_type.clone(),
        });
    }
    Ok(Some(row.try_get("response")?))
}

/// What [`UnitOfWork::decide_on`] did: the aggregate before and after, the events appended and
/// the stream's new version.
#[derive(Debug)]
pub struct Decided<A: Aggregate> {
    pub before: A,
    pub after: A,
    pub events: Vec<A::Event>,
    pub version: i64,
}
