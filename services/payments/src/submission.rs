//! Paying through the provider, exactly once. The submitter claims due work from `submissions`
//! (any number of processes share it: `FOR UPDATE SKIP LOCKED`), records a new attempt
//! (`DisbursementSubmitted`, with its idempotency key and the payee it pays) and pushes the
//! resend time forward in the same transaction, commits, and only then calls the provider. So
//! whatever stops the process, the attempt is on record before any money can move, and the
//! next look resends it under the same key, which the provider answers without paying twice.
//! Outcomes, from the provider's answer, its notice or the bank's statement, all go through
//! [`record_outcome`], which records each at most once and moves the ledger with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::settings::ProviderSettings;
use futures::StreamExt;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::{Begun, CommandRequest, EventStore, StoreError, UnitOfWork};
use jiuzhu_persons::Standing;
use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::gateway::{NotifyRequest, NotifyResponse, PaymentOutcome};
use jiuzhu_proto::payments::{OutcomeSource, Payee};
use jiuzhu_vault::{KeyState, RemoteKeys};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::books;
use crate::domain::{Disbursement, PaymentsEvent, State, parse_attempt_key};
use crate::ledger::Transaction;
use crate::provider::{Answer, Instruction, PaymentProvider, ProviderError};

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("no attempt with key `{0}`")]
    UnknownKey(String),
    #[error("the outcome of `{0}` kept colliding with other writers")]
    Contended(String),
}

/// Failure drills: the process stops dead at `step` when configured to (see
/// `[provider] crash_at`), to show that a restart pays nothing twice and loses nothing.
pub fn crash_point(settings: &ProviderSettings, step: &str) {
    if settings.crash_at.as_deref() == Some(step) {
        tracing::error!(step, "failure drill: aborting the process");
        std::process::abort();
    }
}

/// How an outcome reached us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paid {
        reference: String,
    },
    Rejected {
        reason: String,
        retryable: bool,
    },
    /// The bank sent a paid amount back.
    Returned {
        reason: String,
        bank_reference: String,
    },
}

/// Records the outcome of the attempt `key` at most once, with its ledger move (see
/// [`record_in`]), in a transaction of its own. A duplicate or late outcome changes nothing.
pub async fn record_outcome(
    store: &EventStore,
    settings: &ProviderSettings,
    key: &str,
    outcome: &Outcome,
    source: OutcomeSource,
) -> Result<bool, SubmitError> {
    crash_point(settings, "before_recording_outcome");
    // Two outcomes of one attempt may race (an answer and a notice): the loser reloads and
    // finds nothing left to record.
    for _ in 0..5 {
        let Begun::Fresh(mut work) = begin(store, &format!("outcome {key}")).await? else {
            return Ok(false);
        };
        match record_in(&mut work, settings, key, outcome, source).await {
            Err(SubmitError::Store(StoreError::Conflict { .. })) => continue,
            Ok(Recorded::Nothing) => return Ok(false),
            Ok(_) => match work.commit(Vec::new()).await {
                Err(StoreError::Conflict { .. }) => continue,
                committed => {
                    committed?;
                    return Ok(true);
                }
            },
            Err(error) => return Err(error),
        }
    }
    Err(SubmitError::Contended(key.to_owned()))
}

/// What recording an outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Nothing new (a repeated or stale outcome).
    Nothing,
    /// The relief is paid: the reservation is settled.
    Paid,
    /// The bank paid again what was paid already (or released): a recovery is opened.
    Overpaid,
    /// The attempt failed.
    Failed,
    /// The bank returned the money to the budget.
    Reversed,
}

/// Records an outcome inside `work`: a payment settles the reservation; a final failure
/// releases it; a retryable one schedules the next attempt after the backoff; money the bank
/// returned goes back to the budget; a payment of what was paid or released already opens a
/// recovery. Says what it recorded.
pub async fn record_in(
    work: &mut UnitOfWork<'_>,
    settings: &ProviderSettings,
    key: &str,
    outcome: &Outcome,
    source: OutcomeSource,
) -> Result<Recorded, SubmitError> {
    let (id, attempt) =
        parse_attempt_key(key).ok_or_else(|| SubmitError::UnknownKey(key.to_owned()))?;
    let (disbursement, version) = work.load::<Disbursement>(&id.to_string()).await?;
    let Some(ordered) = disbursement.ordered.clone() else {
        return Err(SubmitError::UnknownKey(key.to_owned()));
    };
    let events = match outcome {
        Outcome::Paid { reference } => disbursement.succeed(attempt, reference, source),
        Outcome::Rejected { reason, retryable } => {
            let next = (*retryable && attempt < settings.max_attempts)
                .then(|| work.clock().now() + backoff(settings, attempt));
            disbursement.fail(attempt, reason, next.map(|at| at.to_rfc3339()))
        }
        Outcome::Returned {
            reason,
            bank_reference,
        } => disbursement.reverse(reason, bank_reference),
    };
    let events = match events {
        Ok(events) if !events.is_empty() => events,
        Ok(_) => return Ok(Recorded::Nothing),
        Err(error) => {
            tracing::warn!(key, %error, "outcome not recorded");
            return Ok(Recorded::Nothing);
        }
    };
    work.append(&id.to_string(), version, &ordered.person_id, &events)
        .await?;
    let fen = ordered.amount.map_or(0, |m| m.fen);
    let conn = work.connection().await?;
    let recorded = match &events[..] {
        [PaymentsEvent::DisbursementSucceeded(paid)] => {
            post(
                conn,
                Transaction::settlement(&ordered.procuratorate, fen),
                key,
            )
            .await?;
            mark_paid(conn, key, &paid.provider_reference).await?;
            done(conn, id).await?;
            Recorded::Paid
        }
        [PaymentsEvent::DisbursementFailed(failed)] => {
            sqlx::query("UPDATE attempts SET outcome = 'failed' WHERE idempotency_key = $1")
                .bind(key)
                .execute(&mut *conn)
                .await?;
            if failed.retryable {
                sqlx::query(
                    "UPDATE submissions SET due_at = $2::timestamptz WHERE disbursement_id = $1",
                )
                .bind(id)
                .bind(&failed.next_attempt_at)
                .execute(&mut *conn)
                .await?;
            } else {
                post(conn, Transaction::release(&ordered.procuratorate, fen), key).await?;
                done(conn, id).await?;
            }
            Recorded::Failed
        }
        [PaymentsEvent::DisbursementOverpaid(overpaid)] => {
            // The money left: the attempt is paid, and finance is to recover it.
            mark_paid(conn, key, &overpaid.provider_reference).await?;
            sqlx::query(
                "INSERT INTO recoveries \
                 (idempotency_key, bank_reference, disbursement_id, fen, reason) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .bind(&overpaid.provider_reference)
            .bind(id)
            .bind(fen)
            .bind(&overpaid.reason)
            .execute(&mut *conn)
            .await?;
            tracing::error!(
                disbursement = %id,
                attempt = overpaid.attempt,
                reason = %overpaid.reason,
                "overpaid: a recovery is opened for finance"
            );
            Recorded::Overpaid
        }
        [PaymentsEvent::DisbursementReversed(_)] => {
            post(conn, Transaction::refund(&ordered.procuratorate, fen), key).await?;
            sqlx::query("UPDATE attempts SET outcome = 'reversed' WHERE idempotency_key = $1")
                .bind(key)
                .execute(&mut *conn)
                .await?;
            Recorded::Reversed
        }
        _ => Recorded::Nothing,
    };
    Ok(recorded)
}

/// The attempt under `key` was paid by the bank, under its `reference`.
async fn mark_paid(
    conn: &mut sqlx::PgConnection,
    key: &str,
    reference: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE attempts SET outcome = 'paid', provider_reference = $2, settled_at = now() \
         WHERE idempotency_key = $1",
    )
    .bind(key)
    .bind(reference)
    .execute(conn)
    .await?;
    Ok(())
}

async fn begin<'s>(store: &'s EventStore, what: &str) -> Result<Begun<'s>, StoreError> {
    store
        .begin_command(CommandRequest::unrecorded(
            what,
            "jiuzhu.payments.v1.Submitter",
        ))
        .await
}

async fn post(
    conn: &mut sqlx::PgConnection,
    transaction: Result<Transaction, crate::ledger::LedgerError>,
    key: &str,
) -> Result<(), SubmitError> {
    let transaction = transaction.map_err(|error| SubmitError::Ledger(error.to_string()))?;
    books::post(conn, &transaction, &format!("attempt {key}")).await?;
    Ok(())
}

async fn done(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM submissions WHERE disbursement_id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Backoff before attempt `attempt + 1`: doubling from the base, capped.
pub fn backoff(settings: &ProviderSettings, attempt: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(0);
    let ms = settings
        .backoff_base_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.backoff_max_ms);
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// An attempt to send: new, or a resend of one whose outcome is unknown.
#[derive(Debug)]
struct Claimed {
    key: String,
    /// Whose data key opens the payee.
    person: Uuid,
    sealed_payee: Option<Sealed>,
    fen: i64,
    disbursement_id: String,
    /// Sent before: the bank may have paid it already.
    resend: bool,
    /// The sending's span, in the trace the order came in.
    span: tracing::Span,
}

/// The record whose data key sealed a payee (a merged person's payee may be another record's),
/// else the disbursement's person.
fn sealed_by(sealed: Option<&Sealed>, person: Uuid) -> Uuid {
    sealed
        .and_then(|s| Uuid::parse_str(&s.person_id).ok())
        .unwrap_or(person)
}

/// The background worker sending due disbursements to the provider.
#[derive(Debug)]
pub struct Submitter<P> {
    store: EventStore,
    provider: Arc<P>,
    keys: RemoteKeys,
    settings: ProviderSettings,
    wake: Arc<Notify>,
}

impl<P: PaymentProvider> Submitter<P> {
    pub fn new(
        store: EventStore,
        provider: Arc<P>,
        keys: RemoteKeys,
        settings: ProviderSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            provider,
            keys,
            settings,
            wake,
        }
    }

    /// Looks for due work every `poll_ms`, and at once when woken (a reservation committed).
    pub async fn run(self: std::sync::Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.settings.poll_ms);
        loop {
            let busy = match self.tick().await {
                Ok(sent) => sent > 0,
                Err(error) => {
                    tracing::warn!(%error, "submitter: will look again");
                    false
                }
            };
            if busy {
                // A full batch: there may be more due right now.
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// One look: claim, record, send, record the answers. Returns how many were claimed.
    pub async fn tick(&self) -> Result<usize, SubmitError> {
        let claimed = self.claim().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        crash_point(&self.settings, "after_submit");
        let mut persons: Vec<Uuid> = claimed.iter().map(|c| c.person).collect();
        persons.sort_unstable();
        persons.dedup();
        let keys = match self.keys.keys(&persons).await {
            Ok(keys) => keys,
            Err(error) => {
                // The attempts are on record and will be resent after `resend_after_ms`.
                tracing::warn!(%error, "data keys unavailable: payees cannot be opened now");
                return Ok(0);
            }
        };
        let count = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.settings.concurrency, |claimed| {
                let keys = &keys;
                let span = claimed.span.clone();
                async move {
                    if let Err(error) = self.send(claimed, keys).await {
                        tracing::warn!(%error, "outcome not recorded; it will be asked again");
                    }
                }
                .instrument(span)
            })
            .await;
        Ok(count)
    }

    async fn send(
        &self,
        claimed: Claimed,
        keys: &HashMap<Uuid, KeyState>,
    ) -> Result<(), SubmitError> {
        let key = claimed.key.clone();
        let outcome = match (keys.get(&claimed.person), &claimed.sealed_payee) {
            (Some(KeyState::Live(data_key)), Some(sealed)) => {
                match data_key.open::<Payee>(claimed.person, sealed) {
                    Ok(payee) => self.ask(&claimed, payee).await,
                    Err(error) => {
                        tracing::error!(key, %error, "the payee cannot be opened");
                        None
                    }
                }
            }
            // Sent before the person was erased: the bank may have paid it, so it is not failed
            // here (that would give its money back to the budget); the bank's notice or
            // statement settles it.
            (Some(KeyState::Erased), _) if claimed.resend => {
                tracing::warn!(
                    key,
                    "the person was erased while this payment was out: its outcome is left to \
                     the bank's notice or statement"
                );
                None
            }
            // Nothing can be paid to an account nobody can read any more.
            (Some(KeyState::Erased), _) => Some(Outcome::Rejected {
                reason: "the person's personal data was erased: no account to pay".to_owned(),
                retryable: false,
            }),
            _ => {
                tracing::warn!(key, "no data key for the payee yet");
                None
            }
        };
        if let Some(outcome) = outcome {
            record_outcome(
                &self.store,
                &self.settings,
                &key,
                &outcome,
                OutcomeSource::ProviderAnswer,
            )
            .await?;
        }
        Ok(())
    }

    /// Pays `claimed` to `payee` through the provider; the outcome, if one came.
    async fn ask(&self, claimed: &Claimed, payee: Payee) -> Option<Outcome> {
        let key = &claimed.key;
        let instruction = Instruction {
            idempotency_key: key.clone(),
            payee_name: payee.name,
            payee_account: payee.account,
            payee_institution: payee.institution,
            fen: claimed.fen,
            remittance: format!("司法救助金 {}", claimed.disbursement_id),
        };
        match self.provider.pay(&instruction).await {
            Ok(Answer::Paid { reference }) => Some(Outcome::Paid { reference }),
            Ok(Answer::Rejected { reason, retryable }) => {
                Some(Outcome::Rejected { reason, retryable })
            }
            Ok(Answer::Pending) => None,
            Err(ProviderError::Unknown(why)) => {
                tracing::info!(key, why, "outcome unknown; the attempt will be resent");
                None
            }
            Err(ProviderError::KeyConflict(why)) => {
                tracing::error!(key, why, "the provider holds other content under this key");
                None
            }
        }
    }

    /// Claims the due work, records new attempts, and pushes every claimed row's next look to
    /// `resend_after_ms` from now, all in one transaction.
    async fn claim(&self) -> Result<Vec<Claimed>, SubmitError> {
        let Begun::Fresh(mut work) = begin(&self.store, "submit").await? else {
            return Ok(Vec::new());
        };
        let due: Vec<(
            Uuid,
            Uuid,
            sqlx::types::Json<jiuzhu_telemetry::TraceHeaders>,
        )> = sqlx::query_as(
            "SELECT disbursement_id, person_id, trace_context FROM submissions WHERE due_at <= $2 \
             ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(self.settings.batch)
        .bind(self.store.clock().now())
        .fetch_all(work.connection().await?)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let persons: Vec<Uuid> = due.iter().map(|(_, person, _)| *person).collect();
        let payees: HashMap<Uuid, (Vec<u8>, String)> =
            sqlx::query_as::<_, (Uuid, Vec<u8>, String)>(
                "SELECT person_id, sealed, masked FROM payees WHERE person_id = ANY($1)",
            )
            .bind(&persons)
            .fetch_all(work.connection().await?)
            .await?
            .into_iter()
            .map(|(person, sealed, masked)| (person, (sealed, masked)))
            .collect();
        // A person the registry merged pays to the payee of any of their records (the
        // survivor's first); the payee stays sealed under its own record's key.
        let mut payees = payees;
        for person in persons
            .iter()
            .filter(|p| !payees.contains_key(p))
            .copied()
            .collect::<Vec<_>>()
        {
            let conn = work.connection().await?;
            let Standing::Person { survivor, .. } = jiuzhu_persons::lookup(conn, person).await?
            else {
                continue;
            };
            let records = jiuzhu_persons::records_of(conn, survivor).await?;
            let found: Option<(Vec<u8>, String)> = sqlx::query_as(
                "SELECT sealed, masked FROM payees WHERE person_id = ANY($1) \
                 ORDER BY person_id = $2 DESC, version DESC LIMIT 1",
            )
            .bind(&records)
            .bind(survivor)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(found) = found {
                payees.insert(person, found);
            }
        }
        let mut claimed = Vec::with_capacity(due.len());
        let mut finished = Vec::new();
        for (id, person, trace) in due {
            // Each disbursement's sending continues the trace its order came in.
            let span = tracing::info_span!("pay disbursement", disbursement_id = %id);
            jiuzhu_telemetry::set_parent_from_map(&span, &trace);
            let (disbursement, version) = work.load::<Disbursement>(&id.to_string()).await?;
            let Some(ordered) = disbursement.ordered.clone() else {
                finished.push(id);
                continue;
            };
            let fen = ordered.amount.map_or(0, |m| m.fen);
            match disbursement.state {
                State::Reserved | State::Retryable => {
                    // Without a payee it waits; registering one makes it due at once.
                    let Some((sealed, masked)) = payees.get(&person) else {
                        continue;
                    };
                    let Ok(sealed) = Sealed::decode(sealed.as_slice()) else {
                        continue;
                    };
                    let events = match disbursement.submit(&self.settings.name, sealed, masked) {
                        Ok(events) => events,
                        Err(_) => continue,
                    };
                    let attempt = NewAttempt {
                        fen,
                        provider: &self.settings.name,
                        region_code: disbursement.region_code(),
                    };
                    new_attempt(&mut work, &events, attempt).await?;
                    work.append(&id.to_string(), version, &ordered.person_id, &events)
                        .instrument(span.clone())
                        .await?;
                    if let Some(PaymentsEvent::DisbursementSubmitted(submitted)) = events.first() {
                        claimed.push(Claimed {
                            key: submitted.idempotency_key.clone(),
                            person: sealed_by(submitted.sealed_payee.as_ref(), person),
                            sealed_payee: submitted.sealed_payee.clone(),
                            fen,
                            disbursement_id: ordered.disbursement_id.clone(),
                            resend: false,
                            span,
                        });
                    }
                }
                State::Submitted => claimed.push(Claimed {
                    key: disbursement.idempotency_key.clone(),
                    person: sealed_by(disbursement.sealed_payee.as_ref(), person),
                    sealed_payee: disbursement.sealed_payee.clone(),
                    fen,
                    disbursement_id: ordered.disbursement_id.clone(),
                    resend: true,
                    span,
                }),
                _ => finished.push(id),
            }
        }
        let resend = chrono::Duration::milliseconds(
            i64::try_from(self.settings.resend_after_ms).unwrap_or(i64::MAX),
        );
        let ids: Vec<Uuid> = claimed
            .iter()
            .filter_map(|c| Uuid::parse_str(&c.disbursement_id).ok())
            .collect();
        sqlx::query("UPDATE submissions SET due_at = $2 WHERE disbursement_id = ANY($1)")
            .bind(&ids)
            .bind(self.store.clock().now() + resend)
            .execute(work.connection().await?)
            .await?;
        // Rows whose disbursement no longer needs the provider, and rows waiting for a payee
        // (looked at again after the resend interval, or at once when one is registered).
        sqlx::query("DELETE FROM submissions WHERE disbursement_id = ANY($1)")
            .bind(&finished)
            .execute(work.connection().await?)
            .await?;
        sqlx::query(
            "UPDATE submissions SET due_at = $1, waiting_payee = TRUE WHERE due_at <= $2 \
             AND NOT person_id IN (SELECT person_id FROM payees)",
        )
        .bind(self.store.clock().now() + resend)
        .bind(self.store.clock().now())
        .execute(work.connection().await?)
        .await?;
        work.commit(Vec::new()).await?;
        Ok(claimed)
    }
}

/// What an attempt's row records besides its event: the amount, the provider, and the region of
/// the case it pays (an office reconciles only its own).
struct NewAttempt<'a> {
    fen: i64,
    provider: &'a str,
    region_code: &'a str,
}

async fn new_attempt(
    work: &mut UnitOfWork<'_>,
    events: &[PaymentsEvent],
    attempt: NewAttempt<'_>,
) -> Result<(), StoreError> {
    for event in events {
        if let PaymentsEvent::DisbursementSubmitted(submitted) = event {
            let id = Uuid::parse_str(&submitted.disbursement_id).unwrap_or_default();
            sqlx::query(
                "INSERT INTO attempts \
                 (idempotency_key, disbursement_id, attempt, fen, provider, region_code) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&submitted.idempotency_key)
            .bind(id)
            .bind(submitted.attempt)
            .bind(attempt.fen)
            .bind(attempt.provider)
            .bind(attempt.region_code)
            .execute(work.connection().await?)
            .await?;
        }
    }
    Ok(())
}

/// The provider's notices (`jiuzhu.gateway.v1.GatewayNoticeService`), recorded like answers.
#[derive(Debug, Clone)]
pub struct Notices {
    store: EventStore,
    settings: ProviderSettings,
}

impl Notices {
    pub fn new(store: EventStore, settings: ProviderSettings) -> Self {
        Self { store, settings }
    }
}

impl Notices {
    /// Records the provider's notice of an attempt like its answer; `PENDING` changes nothing.
    pub async fn notify(&self, notice: NotifyRequest) -> Result<NotifyResponse, AppError> {
        let outcome = match PaymentOutcome::try_from(notice.outcome) {
            Ok(PaymentOutcome::Paid) => Outcome::Paid {
                reference: notice.provider_reference,
            },
            Ok(PaymentOutcome::Rejected) => Outcome::Rejected {
                reason: notice.reason,
                retryable: notice.retryable,
            },
            Ok(PaymentOutcome::Pending) => return Ok(NotifyResponse {}),
            _ => {
                return Err(FieldViolations::single(
                    "outcome",
                    jiuzhu_errors::must_be_one_of(&[
                        PaymentOutcome::Paid.as_str_name(),
                        PaymentOutcome::Rejected.as_str_name(),
                        PaymentOutcome::Pending.as_str_name(),
                    ]),
                ));
            }
        };
        match record_outcome(
            &self.store,
            &self.settings,
            &notice.idempotency_key,
            &outcome,
            OutcomeSource::ProviderNotice,
        )
        .await
        {
            Ok(_) => Ok(NotifyResponse {}),
            Err(SubmitError::UnknownKey(key)) => Err(AppError::not_found(format!(
                "no attempt with idempotency key `{key}`"
            ))),
            Err(error) => Err(AppError::unavailable(error.to_string())),
        }
    }
}

/// Prometheus gauges: attempts by outcome (an `unknown` that grows is a provider not
/// answering), submissions due and waiting for a payee, orders waiting for funds, and each
/// ledger account's balance in fen.
pub async fn metrics(pool: sqlx::PgPool) -> Result<String, sqlx::Error> {
    use jiuzhu_runtime::metrics::gauge;
    let outcomes: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM attempts GROUP BY outcome ORDER BY outcome")
            .fetch_all(&pool)
            .await?;
    let (due, waiting_payee, waiting_funds, recoveries, recovering): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM submissions WHERE due_at <= now() AND NOT waiting_payee), \
             (SELECT count(*) FROM submissions WHERE waiting_payee), \
             (SELECT count(*) FROM waiting_for_funds), \
             (SELECT count(*) FROM recoveries WHERE recovered_at IS NULL), \
             (SELECT coalesce(sum(fen), 0)::bigint FROM recoveries WHERE recovered_at IS NULL)",
        )
    .fetch_one(&pool)
    .await?;
    let balances: Vec<(String, i64)> =
        sqlx::query_as("SELECT account, fen FROM account_balances ORDER BY account")
            .fetch_all(&pool)
            .await?;
    let outcome_samples: Vec<(Vec<(&str, String)>, f64)> = outcomes
        .into_iter()
        .map(|(outcome, n)| (vec![("outcome", outcome)], n as f64))
        .collect();
    let balance_samples: Vec<(Vec<(&str, String)>, f64)> = balances
        .into_iter()
        .map(|(account, fen)| (vec![("account", account)], fen as f64))
        .collect();
    Ok([
        gauge(
            "jiuzhu_payments_attempts",
            "Provider attempts by outcome.",
            &outcome_samples,
        ),
        gauge(
            "jiuzhu_payments_submissions_due",
            "Disbursements due for the provider now.",
            &[(vec![], due as f64)],
        ),
        gauge(
            "jiuzhu_payments_waiting_for_payee",
            "Disbursements that cannot be paid until the person's payee is registered.",
            &[(vec![], waiting_payee as f64)],
        ),
        gauge(
            "jiuzhu_payments_waiting_for_funds",
            "Disbursements waiting for budget.",
            &[(vec![], waiting_funds as f64)],
        ),
        gauge(
            "jiuzhu_payments_recoveries_open",
            "Payments the bank made twice, not yet recovered (alert when above zero).",
            &[(vec![], recoveries as f64)],
        ),
        gauge(
            "jiuzhu_payments_recoveries_open_fen",
            "What those overpayments amount to, in fen.",
            &[(vec![], recovering as f64)],
        ),
        gauge(
            "jiuzhu_payments_balance_fen",
            "Ledger account balances in fen (finance is negative: what it allocated).",
            &balance_samples,
        ),
    ]
    .concat())
}
