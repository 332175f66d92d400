//! The audit log of personal-data access. Every read or change of personal data through a
//! service's API writes one record (who, which role, which office, the person acting, what,
//! about whom, when, for which purpose, how it ended) into that service's `audit_log`. Records
//! are append-only (the database refuses updates and deletions) and chained by an HMAC under the
//! audit key (`[audit] key`), which the database never holds; signed checkpoints outside the
//! database ([`checkpoint`]) vouch for how far the chain reached. So an edit, a deletion, a cut
//! or a rewritten chain made behind the database's back is found by [`Audit::verify`] (and
//! `jiuzhu audit verify`). [`AuditApi`] serves `jiuzhu.audit.v1.AuditService` beside every
//! service.

pub mod checkpoint;
mod settings;

pub use checkpoint::{
    Checkpoint, Checkpointer, checkpoint_file, checkpoint_files, read_checkpoints,
    read_service_checkpoints,
};
pub use settings::{AuditKey, AuditSettings};

use chrono::{DateTime, SubsecRound, Utc};
use jiuzhu_access::Caller;
use jiuzhu_proto::audit::audit_service_server::AuditService;
use jiuzhu_proto::audit::{
    AuditRecord, ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
    VerifyAuditChainResponse,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tonic::{Code, Request, Response, Status};

/// Migrations of the audit log (versions 300..399).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: {0}")]
    Database(#[from] sqlx::Error),
    #[error("audit checkpoints: {0}")]
    Checkpoints(String),
}

/// The hash of the first record's predecessor.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Keeps the chain in one order: one writer at a time per database.
const CHAIN_LOCK: i64 = 0x6a69_757a_6875_6175; // "jiuzhuau"

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    sequence: i64,
    at: DateTime<Utc>,
    actor: String,
    role: String,
    office: String,
    acting_person: String,
    action: String,
    person_id: String,
    purpose: String,
    outcome: String,
    previous_hash: String,
    hash: String,
    /// Chained by HMAC under the audit key (else by plain SHA-256: records written before
    /// the key, or by a service run without one).
    keyed: bool,
    /// The W3C trace id of the call (empty before it was kept, or outside a trace).
    trace_id: String,
}

impl Row {
    /// The record's hash over the predecessor's hash and every field of the record,
    /// unambiguously separated: HMAC-SHA-256 under `key` for a keyed record, else SHA-256.
    /// `None` when the record is keyed and there is no key to check it with.
    fn digest(&self, key: Option<&AuditKey>) -> Option<String> {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(self.previous_hash.as_bytes());
        for field in [
            self.sequence.to_string(),
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.actor.clone(),
            self.role.clone(),
            self.office.clone(),
            self.acting_person.clone(),
            self.action.clone(),
            self.person_id.clone(),
            self.purpose.clone(),
            self.outcome.clone(),
        ] {
            bytes.extend_from_slice(&(field.len() as u64).to_be_bytes());
            bytes.extend_from_slice(field.as_bytes());
        }
        // Records from before the trace id was kept hash as they always did.
        if !self.trace_id.is_empty() {
            bytes.extend_from_slice(&(self.trace_id.len() as u64).to_be_bytes());
            bytes.extend_from_slice(self.trace_id.as_bytes());
        }
        if self.keyed {
            key.map(|key| key.mac(&bytes))
        } else {
            Some(hex::encode(Sha256::digest(&bytes)))
        }
    }

    fn into_record(self) -> AuditRecord {
        AuditRecord {
            sequence: self.sequence,
            at: Some(jiuzhu_proto::time::timestamp(self.at)),
            actor: self.actor,
            role: self.role,
            office: self.office,
            acting_person: self.acting_person,
            action: self.action,
            person_id: self.person_id,
            purpose: self.purpose,
            outcome: self.outcome,
            hash: self.hash,
            previous_hash: self.previous_hash,
            keyed: self.keyed,
            trace_id: self.trace_id,
        }
    }
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub records: i64,
    /// Records chained under the audit key.
    pub keyed: i64,
    /// Checkpoints the chain was held to.
    pub checkpoints: usize,
    /// The first record that does not follow, and why.
    pub broken: Option<(i64, String)>,
}

/// The gRPC status code's canonical name (`OK`, `NOT_FOUND`, …).
pub fn outcome_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A service's audit log.
#[derive(Debug, Clone)]
pub struct Audit {
    pool: PgPool,
    key: Option<AuditKey>,
}

impl Audit {
    /// A log chained under `key`; without one, by plain SHA-256 (which anyone who can write
    /// the table can recompute: development only).
    pub fn new(pool: PgPool, key: Option<AuditKey>) -> Self {
        Self { pool, key }
    }

    /// The newest record's sequence and hash.
    pub async fn newest(&self) -> Result<Option<(i64, String)>, AuditError> {
        Ok(
            sqlx::query_as("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Appends one record to the chain; its sequence number.
    pub async fn record(
        &self,
        caller: &Caller,
        person_id: &str,
        purpose: &str,
        outcome: Code,
    ) -> Result<i64, AuditError> {
        self.record_all(caller, &[person_id.to_owned()], purpose, outcome)
            .await
    }

    /// Appends one record per person to the chain, in one transaction (an access that
    /// returned several persons is recorded for each of them); the last sequence number.
    pub async fn record_all(
        &self,
        caller: &Caller,
        persons: &[String],
        purpose: &str,
        outcome: Code,
    ) -> Result<i64, AuditError> {
        let mut tx = self.pool.begin().await?;
        let last = self
            .record_in(&mut tx, caller, persons, purpose, outcome)
            .await?;
        tx.commit().await?;
        Ok(last)
    }

    /// As [`Audit::record_all`], inside the caller's transaction: a change and its record
    /// commit together, or neither does.
    pub async fn record_in(
        &self,
        tx: &mut sqlx::PgConnection,
        caller: &Caller,
        persons: &[String],
        purpose: &str,
        outcome: Code,
    ) -> Result<i64, AuditError> {
        let none = [String::new()];
        let persons = if persons.is_empty() {
            &none[..]
        } else {
            persons
        };
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK)
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (mut previous, mut previous_hash) = last.unwrap_or((0, GENESIS.to_owned()));
        // Stored with microseconds: hashed as stored, so that it verifies.
        let at = Utc::now().trunc_subsecs(6);
        let trace_id = jiuzhu_telemetry::trace_id(&tracing::Span::current()).unwrap_or_default();
        let mut rows = Vec::with_capacity(persons.len());
        for person_id in persons {
            let mut row = Row {
                sequence: previous + 1,
                at,
                actor: caller.identity.uri(),
                role: caller.identity.role.name().to_owned(),
                office: caller.identity.office.clone(),
                acting_person: caller.acting.clone().unwrap_or_default(),
                action: caller.method.clone(),
                person_id: person_id.clone(),
                purpose: purpose.to_owned(),
                outcome: outcome_name(outcome).to_owned(),
                previous_hash,
                hash: String::new(),
                keyed: self.key.is_some(),
                trace_id: trace_id.clone(),
            };
            row.hash = row.digest(self.key.as_ref()).unwrap_or_default();
            previous = row.sequence;
            previous_hash = row.hash.clone();
            rows.push(row);
        }
        // One statement for the lot (a key handout names up to a thousand persons).
        let column = |field: fn(&Row) -> String| rows.iter().map(field).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO audit_log (sequence, at, actor, role, office, acting_person, action, \
             person_id, purpose, outcome, previous_hash, hash, keyed, trace_id) \
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::boolean[], $14::text[])",
        )
        .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
        .bind(column(|r| r.actor.clone()))
        .bind(column(|r| r.role.clone()))
        .bind(column(|r| r.office.clone()))
        .bind(column(|r| r.acting_person.clone()))
        .bind(column(|r| r.action.clone()))
        .bind(column(|r| r.person_id.clone()))
        .bind(column(|r| r.purpose.clone()))
        .bind(column(|r| r.outcome.clone()))
        .bind(column(|r| r.previous_hash.clone()))
        .bind(column(|r| r.hash.clone()))
        .bind(rows.iter().map(|r| r.keyed).collect::<Vec<_>>())
        .bind(column(|r| r.trace_id.clone()))
        .execute(&mut *tx)
        .await?;
        Ok(previous)
    }

    /// Records a personal-data access that ended with `result` (about the person `person_of`
    /// finds in the answer, or names when there is none) and passes the result on; when the
    /// record cannot be written, the data is not handed out either.
    pub async fn access<T>(
        &self,
        caller: &Caller,
        purpose: &str,
        result: Result<T, Status>,
        person_of: impl FnOnce(Option<&T>) -> String,
    ) -> Result<T, Status> {
        self.access_all(caller, purpose, result, |answer| vec![person_of(answer)])
            .await
    }

    /// As [`Audit::access`], recording the access once for every person the answer holds.
    pub async fn access_all<T>(
        &self,
        caller: &Caller,
        purpose: &str,
        result: Result<T, Status>,
        persons_of: impl FnOnce(Option<&T>) -> Vec<String>,
    ) -> Result<T, Status> {
        let (persons, outcome) = match &result {
            Ok(answer) => (persons_of(Some(answer)), Code::Ok),
            Err(status) => (persons_of(None), status.code()),
        };
        if let Err(error) = self.record_all(caller, &persons, purpose, outcome).await {
            tracing::error!(%error, action = caller.method, "audit record not written; access refused");
            return Err(Status::unavailable(
                "the audit log cannot be written; personal data is not released without it",
            ));
        }
        result
    }

    /// Walks the whole chain, oldest first, and holds it to `checkpoints` (signatures
    /// already checked, [`read_checkpoints`]): the first record that is missing, changed,
    /// out of its chain, written without the key after keyed ones, or not what a checkpoint
    /// vouches for, and records cut from the end.
    pub async fn verify(&self, checkpoints: &[Checkpoint]) -> Result<Verification, AuditError> {
        let vouched: std::collections::BTreeMap<i64, &Checkpoint> =
            checkpoints.iter().map(|c| (c.sequence, c)).collect();
        let mut verification = Verification {
            records: 0,
            keyed: 0,
            checkpoints: 0,
            broken: None,
        };
        let mut previous = GENESIS.to_owned();
        let mut after = 0_i64;
        loop {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT * FROM audit_log WHERE sequence > $1 ORDER BY sequence LIMIT 1000",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.sequence;
            for row in rows {
                let expected = verification.records + 1;
                let broken = if row.sequence != expected {
                    Some(format!(
                        "record {expected} is missing (deleted; the next one found is {})",
                        row.sequence
                    ))
                } else if row.previous_hash != previous {
                    Some(
                        "its previous hash is not its predecessor's hash (the chain was spliced)"
                            .to_owned(),
                    )
                } else if !row.keyed && verification.keyed > 0 {
                    Some("it is not keyed although earlier records are (written without the audit key)".to_owned())
                } else {
                    match row.digest(self.key.as_ref()) {
                        None => {
                            Some("it is keyed; verify with the audit key ([audit] key)".to_owned())
                        }
                        Some(digest) if digest != row.hash => {
                            Some("its content does not match its hash (changed)".to_owned())
                        }
                        Some(_) => match vouched.get(&row.sequence) {
                            Some(checkpoint) if checkpoint.hash != row.hash => Some(format!(
                                "the checkpoint of {} vouches for another record here (the chain was rewritten)",
                                checkpoint.at.to_rfc3339()
                            )),
                            Some(_) => {
                                verification.checkpoints += 1;
                                None
                            }
                            None => None,
                        },
                    }
                };
                if let Some(reason) = broken {
                    verification.broken = Some((expected, reason));
                    return Ok(verification);
                }
                verification.records = expected;
                verification.keyed += i64::from(row.keyed);
                previous = row.hash;
            }
        }
        if let Some((&sequence, checkpoint)) = vouched.last_key_value()
            && sequence > verification.records
        {
            verification.broken = Some((
                verification.records + 1,
                format!(
                    "the log ends at record {} but the checkpoint of {} vouches for {sequence} \
                     (records were cut from the end)",
                    verification.records,
                    checkpoint.at.to_rfc3339()
                ),
            ));
        }
        Ok(verification)
    }

    async fn list(
        &self,
        person_id: &str,
        actor: &str,
        limit: i64,
        before: i64,
    ) -> Result<Vec<Row>, AuditError> {
        Ok(sqlx::query_as(
            "SELECT * FROM audit_log WHERE ($1 = '' OR person_id = $1) AND ($2 = '' OR actor = $2) \
             AND sequence < $3 ORDER BY sequence DESC LIMIT $4",
        )
        .bind(person_id)
        .bind(actor)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// `jiuzhu.audit.v1.AuditService` over a service's audit log. Listing is itself audited.
#[derive(Debug, Clone)]
pub struct AuditApi {
    audit: Audit,
    /// The service's checkpoint file and the certificate (DER) that signs it.
    checkpoints: Option<(std::path::PathBuf, Vec<u8>)>,
}

impl AuditApi {
    pub fn new(audit: Audit) -> Self {
        Self {
            audit,
            checkpoints: None,
        }
    }

    /// Verification holds the chain to the checkpoints in `path`, signed by `certificate`.
    pub fn with_checkpoints(self, path: std::path::PathBuf, certificate: Vec<u8>) -> Self {
        Self {
            checkpoints: Some((path, certificate)),
            ..self
        }
    }
}

fn unavailable(error: AuditError) -> Status {
    tracing::error!(%error, "audit log unavailable");
    Status::unavailable("the audit log is unavailable; try again")
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_records(
        &self,
        request: Request<ListAuditRecordsRequest>,
    ) -> Result<Response<ListAuditRecordsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        if request.person_id.is_empty() == request.actor.is_empty() {
            return Err(Status::invalid_argument(
                "give either person_id or actor (exactly one)",
            ));
        }
        let limit = match request.page_size {
            0 => 100,
            n @ 1..=500 => i64::from(n),
            _ => {
                return Err(Status::invalid_argument(
                    "page_size must be between 1 and 500",
                ));
            }
        };
        let mut violations = jiuzhu_errors::FieldViolations::new();
        let before =
            jiuzhu_paging::key_after(&mut violations, &request.page_token, |key| match key {
                [sequence] => sequence.parse::<i64>().ok(),
                _ => None,
            })
            .unwrap_or(i64::MAX);
        violations.into_result()?;
        let rows = self
            .audit
            .list(&request.person_id, &request.actor, limit + 1, before)
            .await
            .map_err(unavailable);
        let answer = rows.map(|mut rows| {
            let next_page_token = if rows.len() as i64 > limit {
                rows.truncate(limit as usize);
                rows.last()
                    .map(|r| jiuzhu_paging::token_after(&[&r.sequence]))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            ListAuditRecordsResponse {
                records: rows.into_iter().map(Row::into_record).collect(),
                next_page_token,
            }
        });
        let person = request.person_id.clone();
        self.audit
            .access(&caller, "audit", answer, move |_| person)
            .await
            .map(Response::new)
    }

    async fn verify_audit_chain(
        &self,
        _request: Request<VerifyAuditChainRequest>,
    ) -> Result<Response<VerifyAuditChainResponse>, Status> {
        let checkpoints = match &self.checkpoints {
            None => Vec::new(),
            Some((path, certificate)) => match read_checkpoints(path, certificate) {
                Ok(checkpoints) => checkpoints,
                // A checkpoint that does not verify is tampering too.
                Err(error) => {
                    return Ok(Response::new(VerifyAuditChainResponse {
                        intact: false,
                        reason: error.to_string(),
                        ..VerifyAuditChainResponse::default()
                    }));
                }
            },
        };
        let verification = self.audit.verify(&checkpoints).await.map_err(unavailable)?;
        let (first_broken_sequence, reason) = verification.broken.unwrap_or_default();
        Ok(Response::new(VerifyAuditChainResponse {
            records: verification.records,
            intact: first_broken_sequence == 0,
            first_broken_sequence,
            reason,
            keyed: verification.keyed,
            checkpoints: i64::try_from(verification.checkpoints).unwrap_or(i64::MAX),
        }))
    }
}
