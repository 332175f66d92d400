//! Bulk upsert of department records: each batch in one transaction, each record behind a
//! savepoint so that one bad record is rejected (with its line and field) without undoing the
//! others, idempotent on department + source record id.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::Aggregate;
use jiuzhu_eventstore::{
    Append, Begun, CommandRequest, EventStore, NewEvent, StoreError, UnitOfWork,
};
use jiuzhu_proto::registry::{
    BulkUpsertPersonsRequest, BulkUpsertPersonsResponse, PersonRecord, RecordRejection,
    Relationship,
};
use jiuzhu_vault::Vault;
use uuid::Uuid;

use crate::claims::{claim_resident_id, release_resident_id, save_source_record, source_record};
use crate::domain::{
    Household as HouseholdAggregate, Identity, IdentityInput, Person, RecordStatus, RegisterPerson,
    RegistryError, RegistryEvent,
};
use crate::sealing::{append_person, load_person, seal_all};

// Lookups by (department, id list) join an unnest of the list rather than `= ANY`: the
// nested-loop plan over the primary key holds whatever the table statistics say (a table
// that grew by a million rows since the last ANALYZE otherwise gets scanned per batch).

/// Most records one message may carry.
pub const MAX_BATCH: usize = 1000;
const ATTEMPTS: u32 = 3;

enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// Linked as another source of a person the registry already held.
    Linked,
}

enum RowError {
    Rejected { field: String, reason: String },
    Store(StoreError),
    App(AppError),
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

impl From<AppError> for RowError {
    fn from(error: AppError) -> Self {
        Self::App(error)
    }
}

impl From<RegistryError> for RowError {
    fn from(error: RegistryError) -> Self {
        let field = match &error {
            RegistryError::ResidentIdTaken(_) | RegistryError::HeldAsAnotherRecord { .. } => {
                "resident_id"
            }
            _ => "",
        };
        Self::Rejected {
            field: field.to_owned(),
            reason: error.to_string(),
        }
    }
}

/// The identity fields of a department's person record, as `Identity::parse` reads them.
pub fn input(record: &PersonRecord) -> IdentityInput<'_> {
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

/// Applies one batch for `actor` and reports what happened to each record (a record of a county
/// outside a caller's jurisdiction is rejected).
pub async fn apply(
    store: &EventStore,
    vault: &Vault,
    actor: &jiuzhu_access::Actor,
    batch: BulkUpsertPersonsRequest,
) -> Result<BulkUpsertPersonsResponse, AppError> {
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
    let Begun::Fresh(mut work) = store.begin_command(unit).await.map_err(AppError::from)? else {
        return Err(AppError::internal(
            "an unrecorded unit of work was replayed",
        ));
    };
    let mut answer = BulkUpsertPersonsResponse::default();
    let mut valid: Vec<(&PersonRecord, Identity)> = Vec::with_capacity(batch.records.len());
    for record in &batch.records {
        let source_record_id = record.source_record_id.trim();
        if source_record_id.is_empty() || source_record_id.len() > 128 {
            answer.rejections.push(rejection(
                record,
                "source_record_id",
                "is required (1 to 128 characters)".to_owned(),
            ));
            continue;
        }
        let region = record.region.as_ref().map_or("", |r| r.code.trim());
        if let Err(refused) = actor.office_check(region) {
            answer
                .rejections
                .push(rejection(record, "region", refused.to_string()));
            continue;
        }
        match Identity::parse(&input(record)) {
            Ok(identity) => valid.push((record, identity)),
            Err(violations) => {
                for v in violations {
                    answer.rejections.push(rejection(record, v.field, v.reason));
                }
            }
        }
    }
    let slow = create_new_records(&mut work, vault, &department, valid, &mut answer).await?;
    for (record, identity) in slow {
        let source_record_id = record.source_record_id.trim();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let kept = work.appended().len();
            work.savepoint().await.map_err(AppError::from)?;
            match upsert(
                &mut work,
                vault,
                &department,
                source_record_id,
                record,
                &identity,
            )
            .await
            {
                Ok(Outcome::Created) => answer.created += 1,
                Ok(Outcome::Updated) => answer.updated += 1,
                Ok(Outcome::Unchanged) => answer.unchanged += 1,
                Ok(Outcome::Linked) => answer.linked += 1,
                Err(RowError::Rejected { field, reason }) => {
                    work.rollback_to_savepoint(kept)
                        .await
                        .map_err(AppError::from)?;
                    answer.rejections.push(rejection(record, &field, reason));
                }
                Err(error) => {
                    work.rollback_to_savepoint(kept)
                        .await
                        .map_err(AppError::from)?;
                    if attempt < ATTEMPTS {
                        continue;
                    }
                    let reason = match error {
                        RowError::Store(e) => e.to_string(),
                        RowError::App(error) => error.to_string(),
                        RowError::Rejected { reason, .. } => reason,
                    };
                    answer.rejections.push(rejection(
                        record,
                        "",
                        format!("not applied after {ATTEMPTS} attempts ({reason}); send it again"),
                    ));
                }
            }
            break;
        }
    }
    place_in_households(&mut work, &department, &batch.records, &mut answer).await?;
    record_statuses(&mut work, vault, &department, &batch.records, &mut answer).await?;
    work.commit(Vec::new()).await.map_err(AppError::from)?;
    Ok(answer)
}

/// The status a department's record carries, as one id: the same kind and first day from the
/// same department and record is the same status however often it is sent.
fn status_id(department: &str, source_record_id: &str, kind: i32, effective_from: &str) -> Uuid {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(
        format!("{department}\u{0}{source_record_id}\u{0}{kind}\u{0}{effective_from}").as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A derived (version 8) UUID.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

/// Records the statuses the batch's accepted records carry, on the persons they became: new
/// ones recorded, known ones left alone, and one that now has an end ended. A status that
/// cannot apply rejects the record's `statuses[i]` with the reason; the record itself stands.
async fn record_statuses(
    work: &mut UnitOfWork<'_>,
    vault: &Vault,
    department: &str,
    records: &[PersonRecord],
    answer: &mut BulkUpsertPersonsResponse,
) -> Result<(), AppError> {
    let rejected = rejected_sources(answer);
    for record in records {
        let source_record_id = record.source_record_id.trim();
        if record.statuses.is_empty() || rejected.contains(&record.source_record_id) {
            continue;
        }
        let person: Option<Uuid> = sqlx::query_scalar(
            "SELECT person_id FROM source_records WHERE department = $1 AND source_record_id = $2",
        )
        .bind(department)
        .bind(source_record_id)
        .fetch_optional(work.connection().await?)
        .await
        .map_err(AppError::storage)?;
        let Some(person_id) = person else {
            continue;
        };
        let (mut person, version) = load_person(work, vault, person_id).await?;
        let mut events = Vec::new();
        for (n, status) in record.statuses.iter().enumerate() {
            let id = status_id(
                department,
                source_record_id,
                status.kind,
                status.effective_from.trim(),
            );
            let command = match RecordStatus::parse(
                id,
                status.kind,
                department,
                &status.reference,
                &status.effective_from,
                &status.effective_to,
                &status.detail,
            ) {
                Ok(command) => command,
                Err(violations) => {
                    for violation in violations {
                        answer.rejections.push(rejection(
                            record,
                            &format!("statuses[{n}].{}", violation.field),
                            violation.reason,
                        ));
                    }
                    continue;
                }
            };
            let decided = match (person.status_ended(&id.to_string()), command.effective_to) {
                (None, _) => person.record_status(person_id, &command),
                (Some(false), Some(to)) => {
                    person.end_status(person_id, id, to, "ended in the department's record")
                }
                (Some(_), _) => Ok(Vec::new()),
            };
            match decided {
                Ok(new) => keep(&mut person, &mut events, new),
                Err(error) => answer.rejections.push(rejection(
                    record,
                    &format!("statuses[{n}]"),
                    error.to_string(),
                )),
            }
        }
        if !events.is_empty() {
            append_person(work, vault, person_id, version, events).await?;
        }
    }
    Ok(())
}

/// Puts the batch's accepted records that name a household into it: department household
/// references become households (created on first sight), members join unless they already
/// belong to one, and the household's own rule (one head) holds across files.
async fn place_in_households(
    work: &mut UnitOfWork<'_>,
    department: &str,
    records: &[PersonRecord],
    answer: &mut BulkUpsertPersonsResponse,
) -> Result<(), AppError> {
    let rejected = rejected_sources(answer);
    let mut wanted: Vec<&PersonRecord> = Vec::new();
    for record in records {
        if rejected.contains(&record.source_record_id) {
            continue;
        }
        if record.household_ref.trim().is_empty() {
            if record.household_income_per_head.is_some() {
                answer.rejections.push(rejection(
                    record,
                    "household_income_per_head",
                    "needs household_ref: the income is the household's".to_owned(),
                ));
            }
            continue;
        }
        match Relationship::try_from(record.relationship) {
            Ok(Relationship::Unspecified) | Err(_) => answer.rejections.push(rejection(
                record,
                "relationship",
                "is required with household_ref".to_owned(),
            )),
            Ok(_) => wanted.push(record),
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let sources: Vec<String> = wanted
        .iter()
        .map(|r| r.source_record_id.trim().to_owned())
        .collect();
    let persons: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
        "SELECT s.source_record_id, s.person_id FROM unnest($2::text[]) AS r(id) \
         JOIN source_records s ON s.department = $1 AND s.source_record_id = r.id",
    )
    .bind(department)
    .bind(&sources)
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();

    let mut refs: Vec<String> = wanted
        .iter()
        .map(|r| r.household_ref.trim().to_owned())
        .collect();
    refs.sort();
    refs.dedup();
    let proposed: Vec<Uuid> = refs.iter().map(|_| Uuid::now_v7()).collect();
    let new_households: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO source_households (department, household_ref, household_id) \
         SELECT $1, r, h FROM unnest($2::text[], $3::uuid[]) AS t(r, h) \
         ON CONFLICT (department, household_ref) DO NOTHING RETURNING household_ref",
    )
    .bind(department)
    .bind(&refs)
    .bind(&proposed)
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();
    let households: HashMap<String, Uuid> = sqlx::query_as::<_, (String, Uuid)>(
        "SELECT s.household_ref, s.household_id FROM unnest($2::text[]) AS r(ref) \
         JOIN source_households s ON s.department = $1 AND s.household_ref = r.ref",
    )
    .bind(department)
    .bind(&refs)
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();

    // Merged and erased records take no place; members already placed stay where they are,
    // and placing them elsewhere is refused.
    let inactive: HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT person_id, reason FROM inactive_persons WHERE person_id = ANY($1)",
    )
    .bind(persons.values().copied().collect::<Vec<_>>())
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();
    let mut members: Vec<(&PersonRecord, Uuid, Uuid)> = Vec::new();
    for record in wanted {
        let (Some(person), Some(household)) = (
            persons.get(record.source_record_id.trim()),
            households.get(record.household_ref.trim()),
        ) else {
            continue;
        };
        if let Some(reason) = inactive.get(person) {
            answer.rejections.push(rejection(
                record,
                "household_ref",
                format!("person {person} takes no household place: {reason}"),
            ));
            continue;
        }
        members.push((record, *person, *household));
    }
    let placed: HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO household_claims (person_id, household_id) SELECT * FROM unnest($1::uuid[], $2::uuid[]) \
         ON CONFLICT (person_id) DO NOTHING RETURNING person_id",
    )
    .bind(members.iter().map(|m| m.1).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.2).collect::<Vec<_>>())
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();
    let elsewhere: HashMap<Uuid, Uuid> = sqlx::query_as::<_, (Uuid, Uuid)>(
        "SELECT person_id, household_id FROM household_claims WHERE person_id = ANY($1)",
    )
    .bind(
        members
            .iter()
            .filter(|m| !placed.contains(&m.1))
            .map(|m| m.1)
            .collect::<Vec<_>>(),
    )
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();

    let mut by_household: BTreeMap<Uuid, Vec<(&PersonRecord, Uuid)>> = BTreeMap::new();
    // Incomes the records of each household's members carry: (record, year, fen).
    let mut incomes: BTreeMap<Uuid, Vec<(&PersonRecord, i32, i64)>> = BTreeMap::new();
    for (record, person, household) in members {
        if placed.contains(&person) {
            by_household
                .entry(household)
                .or_default()
                .push((record, person));
        } else if let Some(current) = elsewhere
            .get(&person)
            .filter(|current| **current != household)
        {
            answer.rejections.push(rejection(
                record,
                "household_ref",
                format!("person {person} is already a member of household {current}"),
            ));
            continue;
        }
        if let Some(income) = &record.household_income_per_head {
            if !(1949..=2200).contains(&record.household_income_year) {
                answer.rejections.push(rejection(
                    record,
                    "household_income_year",
                    "must be a calendar year from 1949 with household_income_per_head".to_owned(),
                ));
            } else if income.fen < 0 {
                answer.rejections.push(rejection(
                    record,
                    "household_income_per_head.fen",
                    "must not be negative".to_owned(),
                ));
            } else {
                incomes.entry(household).or_default().push((
                    record,
                    record.household_income_year,
                    income.fen,
                ));
            }
        }
    }
    let mut appends = Vec::new();
    let mut released = Vec::new();
    for household_id in by_household
        .keys()
        .chain(incomes.keys())
        .copied()
        .collect::<BTreeSet<Uuid>>()
    {
        let joining = by_household.remove(&household_id).unwrap_or_default();
        let fresh = households
            .iter()
            .any(|(reference, id)| *id == household_id && new_households.contains(reference));
        let (mut household, version) = if fresh {
            (HouseholdAggregate::default(), 0)
        } else {
            work.load::<HouseholdAggregate>(&household_id.to_string())
                .await
                .map_err(AppError::from)?
        };
        let mut events = Vec::new();
        for (record, person) in joining {
            let relationship =
                Relationship::try_from(record.relationship).unwrap_or(Relationship::Other);
            match household.admit(household_id, person, relationship, None) {
                Ok(added) => keep(&mut household, &mut events, added),
                Err(error) => {
                    released.push(person);
                    answer
                        .rejections
                        .push(rejection(record, "relationship", error.to_string()));
                }
            }
        }
        for (record, year, fen) in incomes.remove(&household_id).unwrap_or_default() {
            match household.record_income(household_id, year, fen, department) {
                Ok(recorded) => keep(&mut household, &mut events, recorded),
                Err(error) => answer.rejections.push(rejection(
                    record,
                    "household_income_per_head",
                    error.to_string(),
                )),
            }
        }
        if !events.is_empty() {
            appends.push(Append {
                stream_id: household_id.to_string(),
                expected_version: version,
                partition_key: household_id.to_string(),
                events: events.iter().map(NewEvent::from_codec).collect(),
            });
        }
    }
    if !released.is_empty() {
        sqlx::query("DELETE FROM household_claims WHERE person_id = ANY($1)")
            .bind(&released)
            .execute(work.connection().await?)
            .await
            .map_err(AppError::storage)?;
    }
    work.append_many(&appends).await.map_err(AppError::from)?;
    Ok(())
}

fn rejection(record: &PersonRecord, field: &str, reason: String) -> RecordRejection {
    RecordRejection {
        line: record.line,
        source_record_id: record.source_record_id.clone(),
        field: field.to_owned(),
        reason,
    }
}

/// The fast path: records the registry has never seen from this department are created with a
/// handful of set-based statements for the whole batch. Returns the records left for the
/// one-by-one path (known records, and ids repeated within the batch).
async fn create_new_records<'r>(
    work: &mut UnitOfWork<'_>,
    vault: &Vault,
    department: &str,
    valid: Vec<(&'r PersonRecord, Identity)>,
    answer: &mut BulkUpsertPersonsResponse,
) -> Result<Vec<(&'r PersonRecord, Identity)>, AppError> {
    let mut slow = Vec::new();
    let mut seen_sources = HashSet::new();
    let mut seen_ids = HashSet::new();
    let mut candidates = Vec::new();
    // Claims are made by the blind index of the number, never the number itself.
    let index = crate::claims::resident_id_index(vault)?;
    for (record, identity) in valid {
        let resident_id = identity
            .resident_id
            .as_ref()
            .map(|r| index.of("resident_id", &[r.as_str()]))
            .unwrap_or_default();
        let unique_source = seen_sources.insert(record.source_record_id.trim().to_owned());
        let unique_id = resident_id.is_empty() || seen_ids.insert(resident_id.clone());
        if unique_source && unique_id {
            candidates.push((record, identity, resident_id, Uuid::now_v7()));
        } else {
            slow.push((record, identity));
        }
    }
    if candidates.is_empty() {
        return Ok(slow);
    }
    let sources: Vec<String> = candidates
        .iter()
        .map(|c| c.0.source_record_id.trim().to_owned())
        .collect();
    let persons: Vec<Uuid> = candidates.iter().map(|c| c.3).collect();
    let fingerprints: Vec<Vec<u8>> = candidates.iter().map(|c| c.1.fingerprint()).collect();
    // Claim the department's record ids; the ones already known go the one-by-one way.
    let fresh: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO source_records (department, source_record_id, person_id, fingerprint) \
         SELECT $1, s, p, f FROM unnest($2::text[], $3::uuid[], $4::bytea[]) AS t(s, p, f) \
         ON CONFLICT (department, source_record_id) DO NOTHING RETURNING source_record_id",
    )
    .bind(department)
    .bind(&sources)
    .bind(&persons)
    .bind(&fingerprints)
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();
    let (fresh_candidates, known): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|c| fresh.contains(c.0.source_record_id.trim()));
    // Known records whose content is unchanged need nothing: one query tells them apart.
    if !known.is_empty() {
        let known_sources: Vec<String> = known
            .iter()
            .map(|c| c.0.source_record_id.trim().to_owned())
            .collect();
        let stored: HashMap<String, Vec<u8>> = sqlx::query_as::<_, (String, Vec<u8>)>(
            "SELECT s.source_record_id, s.fingerprint FROM unnest($2::text[]) AS r(id) \
             JOIN source_records s ON s.department = $1 AND s.source_record_id = r.id",
        )
        .bind(department)
        .bind(&known_sources)
        .fetch_all(work.connection().await?)
        .await
        .map_err(AppError::storage)?
        .into_iter()
        .collect();
        for (record, identity, _, _) in known {
            if stored.get(record.source_record_id.trim()) == Some(&identity.fingerprint()) {
                answer.unchanged += 1;
            } else {
                slow.push((record, identity));
            }
        }
    }

    // Claim their resident ids; a number someone else holds rejects the record.
    let (ids, owners): (Vec<String>, Vec<Uuid>) = fresh_candidates
        .iter()
        .filter(|c| !c.2.is_empty())
        .map(|c| (c.2.clone(), c.3))
        .unzip();
    let claimed: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO resident_id_claims (resident_id_index, person_id) SELECT * FROM unnest($1::text[], $2::uuid[]) \
         ON CONFLICT (resident_id_index) DO NOTHING RETURNING resident_id_index",
    )
    .bind(&ids)
    .bind(&owners)
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?
    .into_iter()
    .collect();
    let taken: Vec<String> = ids
        .iter()
        .filter(|id| !claimed.contains(*id))
        .cloned()
        .collect();
    let holders: HashMap<String, Uuid> = if taken.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (String, Uuid)>(
            "SELECT resident_id_index, person_id FROM resident_id_claims WHERE resident_id_index = ANY($1)",
        )
        .bind(&taken)
        .fetch_all(work.connection().await?)
        .await
        .map_err(AppError::storage)?
        .into_iter()
        .collect()
    };
    let mut registered = Vec::with_capacity(fresh_candidates.len());
    let mut unclaimed_sources = Vec::new();
    for (record, identity, resident_id, person_id) in fresh_candidates {
        let holder = if resident_id.is_empty() || claimed.contains(&resident_id) {
            None
        } else {
            Some(holders.get(&resident_id).copied().unwrap_or_default())
        };
        if holder.is_some() {
            // A person the registry holds already: the one-by-one way links the record to them.
            unclaimed_sources.push(record.source_record_id.trim().to_owned());
            slow.push((record, identity));
            continue;
        }
        let command = RegisterPerson {
            person_id,
            identity,
            source_department: department.to_owned(),
            source_record_id: record.source_record_id.trim().to_owned(),
        };
        match Person::default().register(&command, holder) {
            Ok(events) => {
                answer.created += 1;
                registered.extend(events);
            }
            Err(error) => {
                unclaimed_sources.push(record.source_record_id.trim().to_owned());
                answer
                    .rejections
                    .push(rejection(record, "resident_id", error.to_string()));
            }
        }
    }
    if !unclaimed_sources.is_empty() {
        sqlx::query(
            "DELETE FROM source_records s USING unnest($2::text[]) AS r(id) \
             WHERE s.department = $1 AND s.source_record_id = r.id",
        )
        .bind(department)
        .bind(&unclaimed_sources)
        .execute(work.connection().await?)
        .await
        .map_err(AppError::storage)?;
    }
    seal_all(work.connection().await?, vault, &mut registered).await?;
    let appends: Vec<Append> = registered
        .iter()
        .filter_map(|event| match event {
            RegistryEvent::PersonRegistered(e) => Some(Append {
                stream_id: e.person_id.clone(),
                expected_version: 0,
                partition_key: e.person_id.clone(),
                events: vec![NewEvent::from_codec(event)],
            }),
            _ => None,
        })
        .collect();
    work.append_many(&appends).await.map_err(AppError::from)?;
    Ok(slow)
}

async fn upsert(
    work: &mut UnitOfWork<'_>,
    vault: &Vault,
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
    match source_record(work.connection().await?, department, source_record_id).await? {
        Some((_, known)) if known == fingerprint => Ok(Outcome::Unchanged),
        Some((person_id, _)) => {
            let (person, version) = load_person(work, vault, person_id).await?;
            if !person.registered_from(department, source_record_id) {
                return link(
                    work,
                    vault,
                    department,
                    source_record_id,
                    identity,
                    person_id,
                )
                .await;
            }
            let old_id = person.resident_id().to_owned();
            let owner = if resident_id.is_empty() || resident_id == old_id {
                None
            } else {
                claim_resident_id(work.connection().await?, vault, &resident_id, person_id).await?
            };
            let changes = identity.fields();
            let events = person.update(person_id, &changes, department, owner)?;
            if let Some(RegistryEvent::PersonUpdated(updated)) = events.first()
                && updated.changed_fields.iter().any(|f| f == "resident_id")
                && !old_id.is_empty()
            {
                release_resident_id(work.connection().await?, vault, &old_id, person_id).await?;
            }
            let changed = !events.is_empty();
            append_person(work, vault, person_id, version, events).await?;
            save_source_record(
                work.connection().await?,
                department,
                source_record_id,
                person_id,
                &fingerprint,
            )
            .await?;
            Ok(if changed {
                Outcome::Updated
            } else {
                Outcome::Unchanged
            })
        }
        None => {
            let person_id = Uuid::now_v7();
            let owner =
                claim_resident_id(work.connection().await?, vault, &resident_id, person_id).await?;
            if let Some(owner) = owner {
                return link(work, vault, department, source_record_id, identity, owner).await;
            }
            let command = RegisterPerson {
                person_id,
                identity: identity.clone(),
                source_department: department.to_owned(),
                source_record_id: record.source_record_id.trim().to_owned(),
            };
            let events = Person::default().register(&command, owner)?;
            append_person(work, vault, person_id, 0, events).await?;
            save_source_record(
                work.connection().await?,
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

/// Links a department's record to the person the registry holds under its resident id (the
/// survivor, if that record was merged), as another source: its differing fields are named for
/// review, not applied.
async fn link(
    work: &mut UnitOfWork<'_>,
    vault: &Vault,
    department: &str,
    source_record_id: &str,
    identity: &Identity,
    holder: Uuid,
) -> Result<Outcome, RowError> {
    let (mut person_id, (mut person, mut version)) =
        (holder, load_person(work, vault, holder).await?);
    if let Some(survivor) = person.merged_into() {
        person_id = survivor;
        (person, version) = load_person(work, vault, survivor).await?;
    }
    let events = person.link_source(person_id, department, source_record_id, identity)?;
    let changed = !events.is_empty();
    append_person(work, vault, person_id, version, events).await?;
    save_source_record(
        work.connection().await?,
        department,
        source_record_id,
        person_id,
        &identity.fingerprint(),
    )
    .await?;
    Ok(if changed {
        Outcome::Linked
    } else {
        Outcome::Unchanged
    })
}

/// Applies what an aggregate decided to it and keeps the events for the batch's append.
fn keep<A: Aggregate<Event = RegistryEvent>>(
    aggregate: &mut A,
    events: &mut Vec<RegistryEvent>,
    decided: Vec<RegistryEvent>,
) {
    for event in &decided {
        aggregate.apply(event);
    }
    events.extend(decided);
}

/// The records of the batch rejected so far, by source record id.
fn rejected_sources(answer: &BulkUpsertPersonsResponse) -> HashSet<String> {
    answer
        .rejections
        .iter()
        .map(|r| r.source_record_id.clone())
        .collect()
}
