//! Sharing with departments as Kafka subscriptions. The sharing consumer reads every service's
//! topic and, for each event an agreement names (`jiuzhu-sharing`, fail closed), writes each
//! department's minimised, pseudonymised copy to `share_outbox`, the sharing log and a
//! `DataShared` entry in the person file, all in the transaction of its checkpoint. The share
//! relay publishes the copies to `jiuzhu.share.<department>.v1` (keyed by the department's
//! pseudonym, headers naming the type and the agreement version) and marks them published
//! only once the broker has them.

use std::sync::Arc;
use std::time::Duration;

use jiuzhu_messaging::{
    Delivered, KafkaSettings, OutboxRelay, OutboxTable, Projection, ProjectionError, RelaySettings,
    service_topic,
};
use jiuzhu_proto::common::{EventEnvelope, Sealed};
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_sharing::{Agreements, pseudonym_for};
use jiuzhu_vault::{DataKey, KeyState, Vault};
use prost::Message;
use prost_reflect::DynamicMessage;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::person_file::{DESCRIPTORS, SOURCES, person_ids};

/// A department's share topic (before the environment's prefix).
pub fn share_topic(department: &str) -> String {
    format!("jiuzhu.share.{department}.v1")
}

/// Header naming the agreement version a shared message went out under.
pub const AGREEMENT_HEADER: &str = "jiuzhu-agreement-version";

#[derive(Debug)]
pub struct Sharing {
    agreements: Arc<Agreements>,
    secret: [u8; 32],
    vault: Vault,
}

impl Sharing {
    pub fn new(agreements: Arc<Agreements>, secret: [u8; 32], vault: Vault) -> Self {
        Self {
            agreements,
            secret,
            vault,
        }
    }

    /// `person`'s identity with only `fields`, sealed for `department` and bound to its
    /// pseudonym of the person; `None` when the person has no identity to give (erased).
    async fn subject(
        &self,
        conn: &mut PgConnection,
        department: &str,
        person: Uuid,
        fields: &[String],
    ) -> Result<Option<Sealed>, ProjectionError> {
        let sealed: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT identity FROM persons WHERE person_id = $1")
                .bind(person)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(sealed) = sealed.flatten() else {
            return Ok(None);
        };
        let sealed = Sealed::decode(sealed.as_slice())?;
        let keys = self
            .vault
            .keys(conn, &[person])
            .await
            .map_err(|e| ProjectionError::from(jiuzhu_errors::AppError::from(e)))?;
        let Some(KeyState::Live(key)) = keys.get(&person) else {
            return Ok(None);
        };
        let identity: PersonalIdentity = key
            .open(person, &sealed)
            .map_err(|e| ProjectionError::from(jiuzhu_errors::AppError::from(e)))?;
        let pool = DESCRIPTORS.as_ref().ok_or_else(|| {
            ProjectionError::Rejected("contract descriptors cannot be read".to_owned())
        })?;
        let subject = jiuzhu_sharing::minimal_subject(pool, &identity, fields)
            .map_err(|e| ProjectionError::Rejected(e.to_string()))?;
        let department_key = subject_key(&self.vault, department)
            .map_err(|e| ProjectionError::Rejected(e.to_string()))?;
        let pseudonym = pseudonym_for(&self.secret, department, &person.to_string());
        department_key
            .seal_for(&pseudonym, &subject)
            .map(Some)
            .map_err(|e| ProjectionError::from(jiuzhu_errors::AppError::from(e)))
    }
}

/// The key a department opens the subjects of its referrals with: derived from the master key
/// for that department alone, handed to its integrator by `GetDepartmentKey`.
pub fn subject_key(vault: &Vault, department: &str) -> Result<DataKey, jiuzhu_vault::VaultError> {
    DataKey::from_bytes(&vault.derive_key(&format!("share-subject:{department}"))?)
}

impl Projection for Sharing {
    fn name(&self) -> &str {
        "registry.sharing"
    }

    fn topics(&self) -> Vec<String> {
        SOURCES.iter().map(|s| service_topic(s)).collect()
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let envelope = &event.envelope;
        // The share is part of the event's trace here; its copies start none of their own.
        let _span = event.span(self.name());
        let Some(pool) = DESCRIPTORS.as_ref() else {
            return Err(ProjectionError::Rejected(
                "contract descriptors cannot be read".to_owned(),
            ));
        };
        // Unknown types are skipped, so nothing below decodes what no agreement names.
        let Some(descriptor) = pool.get_message_by_name(&envelope.event_type) else {
            return Ok(());
        };
        if !self
            .agreements
            .departments
            .values()
            .any(|d| d.shares.iter().any(|s| s.event_type == envelope.event_type))
        {
            return Ok(());
        }
        let message = DynamicMessage::decode(descriptor, envelope.payload.as_slice())?;
        let mut persons = Vec::new();
        person_ids(&message, &mut persons);
        // The registry statuses these persons held on the event's (Beijing) day, for
        // agreements limited to them: a copy replayed later is decided as it was then.
        let day = envelope
            .occurred_at
            .as_ref()
            .and_then(jiuzhu_proto::time::utc)
            .map(|at| {
                jiuzhu_proto::time::beijing_date(at)
                    .format("%Y-%m-%d")
                    .to_string()
            })
            .ok_or_else(|| {
                ProjectionError::Rejected("the event says nothing of when it happened".to_owned())
            })?;
        let kinds: Vec<i32> = sqlx::query_scalar(
            "SELECT DISTINCT kind FROM person_statuses WHERE person_id = ANY($1) \
             AND effective_from <= $2 AND (effective_to = '' OR effective_to >= $2)",
        )
        .bind(&persons)
        .bind(&day)
        .fetch_all(&mut *conn)
        .await?;
        let statuses = kinds.into_iter().map(jiuzhu_sharing::status_name).collect();
        let shared = self
            .agreements
            .share(
                pool,
                &envelope.event_type,
                &envelope.payload,
                &statuses,
                &self.secret,
            )
            .map_err(|error| ProjectionError::Rejected(error.to_string()))?;
        if shared.is_empty() {
            return Ok(());
        }
        let event_id = Uuid::parse_str(&envelope.event_id).map_err(|_| {
            ProjectionError::Rejected(format!("event id `{}` is not a UUID", envelope.event_id))
        })?;
        for mut copy in shared {
            let department = copy.department.clone();
            let department = &department;
            if !copy.subject.is_empty()
                && let Some(person) = persons.first()
                && let Some(sealed) = self
                    .subject(&mut *conn, department, *person, &copy.subject)
                    .await?
            {
                copy.payload = jiuzhu_sharing::with_subject(
                    pool,
                    &envelope.event_type,
                    &copy.payload,
                    &sealed,
                )
                .map_err(|error| ProjectionError::Rejected(error.to_string()))?;
            }
            let key = copy
                .pseudonyms
                .first()
                .cloned()
                .unwrap_or_else(|| envelope.event_id.clone());
            // Only what a department may know of the envelope: no stream, no causation ids, and
            // an event id of its own (copies to two departments share none).
            let copy_id =
                jiuzhu_sharing::copy_event_id(&self.secret, department, &envelope.event_id);
            let copy_uuid = Uuid::parse_str(&copy_id).map_err(|_| {
                ProjectionError::Rejected(format!("copy id `{copy_id}` is not a UUID"))
            })?;
            let outgoing = EventEnvelope {
                event_id: copy_id.clone(),
                event_type: envelope.event_type.clone(),
                occurred_at: envelope.occurred_at,
                producer: envelope.producer.clone(),
                payload: copy.payload,
                partition_key: key.clone(),
                ..EventEnvelope::default()
            };
            sqlx::query(
                "INSERT INTO share_outbox (department, event_id, event_type, partition_key, \
                 agreement_version, envelope, trace_context, occurred_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (department, event_id) DO NOTHING",
            )
            .bind(department)
            .bind(copy_uuid)
            .bind(&envelope.event_type)
            .bind(&key)
            .bind(&copy.agreement_version)
            .bind(outgoing.encode_to_vec())
            // No trace context: the copies of one event must not share a trace id.
            .bind(serde_json::json!({}))
            .bind(envelope.occurred_at.and_then(|t| {
                chrono::DateTime::<chrono::Utc>::from_timestamp(
                    t.seconds,
                    u32::try_from(t.nanos).unwrap_or(0),
                )
            }))
            .execute(&mut *conn)
            .await?;
            let agreement = self.agreements.departments.get(department);
            let people: Vec<Option<Uuid>> = if persons.is_empty() {
                vec![None]
            } else {
                persons.iter().copied().map(Some).collect()
            };
            for person in people {
                let pseudonym = person
                    .map(|p| pseudonym_for(&self.secret, department, &p.to_string()))
                    .unwrap_or_default();
                sqlx::query(
                    "INSERT INTO sharing_log (event_id, event_type, department, agreement_version, \
                     person_id, pseudonym) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(event_id)
                .bind(&envelope.event_type)
                .bind(department)
                .bind(&copy.agreement_version)
                .bind(person)
                .bind(&pseudonym)
                .execute(&mut *conn)
                .await?;
                let Some(person) = person else {
                    continue;
                };
                let entry = serde_json::json!({
                    "personId": person,
                    "sourceEventId": envelope.event_id,
                    "eventType": envelope.event_type,
                    "department": department,
                    "agreementVersion": copy.agreement_version,
                    "purpose": agreement.map(|a| a.purpose.as_str()).unwrap_or_default(),
                    "legalBasis": agreement.map(|a| a.legal_basis.as_str()).unwrap_or_default(),
                    "pseudonym": pseudonym,
                });
                // A file entry of its own per share, dated like the event it shares.
                let digest = sha2::Digest::finalize(sha2::Digest::chain_update(
                    <sha2::Sha256 as sha2::Digest>::new(),
                    format!("{event_id}:{department}"),
                ));
                let mut id = [0u8; 16];
                id.copy_from_slice(&digest[..16]);
                let entry_id = Uuid::from_bytes(id);
                sqlx::query(
                    "INSERT INTO person_file (person_id, event_id, occurred_at, producer, event_type, \
                     stream_id, stream_version, detail) VALUES ($1, $2, \
                     to_timestamp($3::double precision), 'registry', 'jiuzhu.registry.v1.DataShared', \
                     $4, 0, $5) ON CONFLICT DO NOTHING",
                )
                .bind(person)
                .bind(entry_id)
                .bind(
                    envelope
                        .occurred_at
                        .as_ref()
                        .map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9),
                )
                .bind(format!("share:{department}"))
                .bind(entry)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    /// The log and what was published stay: a replay must not share anything twice (the
    /// outbox and the log are keyed by event and department).
    async fn reset(&self, _conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// Records the agreements in force when they differ from the last recorded (version, who
/// agreed, file digest, departments added and dropped): an agreement change is itself on the
/// record (`sharing_agreements`, append-only).
pub async fn record_agreements(
    pool: &PgPool,
    agreements: &Agreements,
) -> Result<bool, sqlx::Error> {
    let digest = agreements.digest.clone();
    let mut tx = pool.begin().await?;
    // One recorder at a time (several registry processes may start together).
    sqlx::query("LOCK TABLE sharing_agreements IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let previous: Option<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT version, sha256, departments FROM sharing_agreements ORDER BY id DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    if previous.as_ref().is_some_and(|p| p.1 == digest) {
        return Ok(false);
    }
    let departments: Vec<String> = agreements.departments.keys().cloned().collect();
    let before: Vec<String> = previous.as_ref().map(|p| p.2.clone()).unwrap_or_default();
    let added: Vec<String> = departments
        .iter()
        .filter(|d| !before.contains(d))
        .cloned()
        .collect();
    let dropped: Vec<String> = before
        .iter()
        .filter(|d| !departments.contains(d))
        .cloned()
        .collect();
    sqlx::query(
        "INSERT INTO sharing_agreements (version, agreed_by, sha256, departments, departments_added, \
         departments_dropped, previous_version) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&agreements.version)
    .bind(&agreements.agreed_by)
    .bind(&digest)
    .bind(&departments)
    .bind(&added)
    .bind(&dropped)
    .bind(previous.map(|p| p.0).unwrap_or_default())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(version = %agreements.version, "data-sharing agreements adopted");
    Ok(true)
}

/// Publishes the shared copies, oldest first, until `shutdown`: the platform's outbox relay
/// over `share_outbox` (one publisher per database, pruning, `[outbox]` settings), each copy to
/// its department's topic with the agreement version as a header.
pub async fn relay(
    pool: PgPool,
    agreements: Arc<Agreements>,
    kafka: KafkaSettings,
    settings: RelaySettings,
    shutdown: CancellationToken,
) {
    // The agreements in force go on the record before anything is shared under them.
    while let Err(error) = record_agreements(&pool, &agreements).await {
        tracing::warn!(%error, "share relay: agreements not recorded yet; trying again");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let departments: Vec<String> = agreements.departments.keys().cloned().collect();
    let topic_kafka = kafka.clone();
    let table = OutboxTable::new("share_outbox", "department", move |department| {
        topic_kafka.topic(&share_topic(department))
    })
    .header(AGREEMENT_HEADER, "agreement_version")
    // CloudEvents 1.0 in binary mode (its Kafka binding), for integrators' CloudEvents tools.
    .header("ce_specversion", "'1.0'")
    .header("ce_id", "event_id")
    .header("ce_source", "'/jiuzhu/registry/share/' || department")
    .header("ce_type", "event_type")
    .header(
        "ce_time",
        "to_char(coalesce(occurred_at, now()) AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    let relay = match OutboxRelay::for_table(
        pool.clone(),
        &kafka,
        settings,
        "jiuzhu-registry-share-relay",
        table,
    ) {
        Ok(relay) => relay,
        Err(error) => {
            tracing::error!(%error, "share relay: no producer; nothing will be shared");
            return;
        }
    };
    let topics: Vec<String> = departments
        .iter()
        .map(|d| kafka.topic(&share_topic(d)))
        .collect();
    let created = loop {
        match jiuzhu_messaging::ensure_topics(&kafka, &topics).await {
            Ok(created) => break created,
            Err(error) => {
                tracing::warn!(%error, "share relay: topics not ready; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    // A share topic the broker does not have (new, or its log was lost) gets what the share
    // outbox retains for that department again; departments skip event ids they have seen.
    for department in departments
        .iter()
        .filter(|d| created.contains(&kafka.topic(&share_topic(d))))
    {
        match sqlx::query(
            "UPDATE share_outbox SET published_at = NULL \
             WHERE department = $1 AND published_at IS NOT NULL",
        )
        .bind(department)
        .execute(&pool)
        .await
        {
            Ok(done) if done.rows_affected() > 0 => tracing::warn!(
                department = %department,
                events = done.rows_affected(),
                "share relay: the broker had lost the share topic; sending again"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "share relay: cannot queue shares again"),
        }
    }
    relay.run(shutdown).await;
}
