//! Bulk upsert of department records: each batch in one transaction, each record behind a
//! savepoint so that one bad record is rejected (with its line and field) without undoing the
//! others, idempotent on department + source record id.

use jiuzhu_eventstore::{Begun, CommandRequest, EventStore, StoreError, UnitOfWork};
use jiuzhu_proto::registry::{
    BulkUpsertPersonsRequest, BulkUpsertPersonsResponse, PersonRecord, RecordRejection,
};
use jiuzhu_runtime::grpc::{FieldViolations, store_status};
use tonic::Status;
use uuid::Uuid;

use crate::claims::{claim_resident_id, release_resident_id, save_source_record, source_record};
use crate::domain::{
    Identity, IdentityInput, Person, RegisterPerson, RegistryError, RegistryEvent,
};

/// Most records one message may carry.
pub const MAX_BATCH: usize = 1000;
const ATTEMPTS: u32 = 3;

enum Outcome {
    Created,
    Updated,
    Unchanged,
}

enum RowError {
    Rejected { field: String, reason: String },
    Store(StoreError),
    Grpc(Status),
}

impl From<StoreError> for RowError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<sqlx::Error> for RowError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

impl From<Status> for RowError {
    fn from(status: Status) -> Self {
        Self::Grpc(status)
    }
}

impl From<RegistryError> for RowError {
    fn from(error: RegistryError) -> Self {
        let field = match &error {
            RegistryError::ResidentIdTaken(_) => "resident_id",
            _ => "",
        };
        Self::Rejected {
            field: field.to_owned(),
            reason: error.to_string(),
        }
    }
}

fn input(record: &PersonRecord) -> IdentityInput<'_> {
    IdentityInput {
        full_name: &record.full_name,
        gender: record.gender,
        birth_date: &record.birth_date,
        resident_id: &record.resident_id,
        region_code: record
            .region
            .as_ref()
            .map(|r| r.code.as_str())
            .unwrap_or(""),
        township: &record.township,
        village: &record.village,
        address_text: &record.address_text,
        phone: &record.phone,
    }
}

/// Applies one batch and reports what happened to each record.
pub async fn apply(
    store: &EventStore,
    batch: BulkUpsertPersonsRequest,
) -> Result<BulkUpsertPersonsResponse, Status> {
    let department = batch.source_department.trim().to_owned();
    if department.is_empty() {
        return Err(FieldViolations::single("source_department", "is required"));
    }
    if batch.records.len() > MAX_BATCH {
        return Err(FieldViolations::single(
            "records",
            format!("at most {MAX_BATCH} records per message"),
        ));
    }
    let unit = CommandRequest::unrecorded(
        &format!("bulk:{department}:{}", Uuid::now_v7()),
        "jiuzhu.registry.v1.RegistryService/BulkUpsertPersons",
    );
    let Begun::Fresh(mut work) = store.begin_command(unit).await.map_err(store_status)? else {
        return Err(Status::internal("an unrecorded unit of work was replayed"));
    };
    let mut answer = BulkUpsertPersonsResponse::default();
    for record in &batch.records {
        let reject = |answer: &mut BulkUpsertPersonsResponse, field: &str, reason: String| {
            answer.rejections.push(RecordRejection {
                line: record.line,
                source_record_id: record.source_record_id.clone(),
                field: field.to_owned(),
                reason,
            });
        };
        let source_record_id = record.source_record_id.trim();
        if source_record_id.is_empty() || source_record_id.len() > 128 {
            reject(
                &mut answer,
                "source_record_id",
                "is required (1 to 128 characters)".to_owned(),
            );
            continue;
        }
        let identity = match Identity::parse(&input(record)) {
            Ok(identity) => identity,
            Err(violations) => {
                for v in violations {
                    reject(&mut answer, v.field, v.reason);
                }
                continue;
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let kept = work.appended().len();
            work.savepoint().await.map_err(store_status)?;
            match upsert(&mut work, &department, source_record_id, record, &identity).await {
                Ok(Outcome::Created) => answer.created += 1,
                Ok(Outcome::Updated) => answer.updated += 1,
                Ok(Outcome::Unchanged) => answer.unchanged += 1,
                Err(RowError::Rejected { field, reason }) => {
                    work.rollback_to_savepoint(kept)
                        .await
                        .map_err(store_status)?;
                    reject(&mut answer, &field, reason);
                }
                Err(error) => {
                    work.rollback_to_savepoint(kept)
                        .await
                        .map_err(store_status)?;
                    if attempt < ATTEMPTS {
                        continue;
                    }
                    let reason = match error {
                        RowError::Store(e) => e.to_string(),
                        RowError::Grpc(s) => s.message().to_owned(),
                        RowError::Rejected { reason, .. } => reason,
                    };
                    reject(
                        &mut answer,
                        "",
                        format!("not applied after {ATTEMPTS} attempts ({reason}); send it again"),
                    );
                }
            }
            break;
        }
    }
    work.commit(Vec::new()).await.map_err(store_status)?;
    Ok(answer)
}

async fn upsert(
    work: &mut UnitOfWork<'_>,
    department: &str,
    source_record_id: &str,
    record: &PersonRecord,
    identity: &Identity,
) -> Result<Outcome, RowError> {
    let fingerprint = identity.fingerprint();
    let resident_id = identity
        .resident_id
        .as_ref()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default();
    match source_record(work.connection(), department, source_record_id).await? {
        Some((_, known)) if known == fingerprint => Ok(Outcome::Unchanged),
        Some((person_id, _)) => {
            let stream = person_id.to_string();
            let (person, version) = work.load::<Person>(&stream).await?;
            let old_id = person.resident_id().to_owned();
            let owner = if resident_id.is_empty() || resident_id == old_id {
                None
            } else {
                claim_resident_id(work.connection(), &resident_id, person_id).await?
            };
            let changes = identity.fields();
            let events = person.update(person_id, &changes, department, owner)?;
            if let Some(RegistryEvent::PersonUpdated(updated)) = events.first()
                && updated.changed_fields.iter().any(|f| f == "resident_id")
                && !old_id.is_empty()
            {
                release_resident_id(work.connection(), &old_id, person_id).await?;
            }
            work.append(&stream, version, &stream, &events).await?;
            save_source_record(
                work.connection(),
                department,
                source_record_id,
                person_id,
                &fingerprint,
            )
            .await?;
            Ok(if events.is_empty() {
                Outcome::Unchanged
            } else {
                Outcome::Updated
            })
        }
        None => {
            let person_id = Uuid::now_v7();
            let owner = claim_resident_id(work.connection(), &resident_id, person_id).await?;
            let command = RegisterPerson {
                person_id,
                identity: identity.clone(),
                source_department: department.to_owned(),
                source_record_id: record.source_record_id.trim().to_owned(),
            };
            let events = Person::default().register(&command, owner)?;
            let stream = person_id.to_string();
            work.append(&stream, 0, &stream, &events).await?;
            save_source_record(
                work.connection(),
                department,
                source_record_id,
                person_id,
                &fingerprint,
            )
            .await?;
            Ok(Outcome::Created)
        }
    }
}
