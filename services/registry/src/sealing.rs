//! The registry's side of crypto-shredding: identities are sealed under the person's data key
//! before their events are appended, opened after loading, and erasure destroys the key. The
//! domain never sees ciphertext; this shell does the work around it.

use std::collections::HashMap;

use base64::Engine;
use jiuzhu_errors::AppError;
use jiuzhu_eventstore::{Aggregate, UnitOfWork};
use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_vault::identity::{Opened, open_identity, seal_identity, sealed_person};
use jiuzhu_vault::{KeyState, Vault, VaultError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Person, RegistryEvent};

/// Persons whose keys open the identities sealed in `events`.
pub fn sealed_persons<'a>(events: impl IntoIterator<Item = &'a RegistryEvent>) -> Vec<Uuid> {
    let mut persons: Vec<Uuid> = events
        .into_iter()
        .filter_map(|event| match event {
            RegistryEvent::PersonRegistered(e) => sealed_person(e),
            RegistryEvent::PersonUpdated(e) => sealed_person(e),
            _ => None,
        })
        .collect();
    persons.sort_unstable();
    persons.dedup();
    persons
}

/// Opens the identity an event carries; an erased person's stays empty.
pub fn open(
    event: &mut RegistryEvent,
    keys: &HashMap<Uuid, KeyState>,
) -> Result<Opened, VaultError> {
    match event {
        RegistryEvent::PersonRegistered(e) => open_identity(e, keys),
        RegistryEvent::PersonUpdated(e) => open_identity(e, keys),
        _ => Ok(Opened::Plain),
    }
}

fn carries_identity(event: &RegistryEvent) -> Option<Uuid> {
    match event {
        RegistryEvent::PersonRegistered(e) => Uuid::parse_str(&e.person_id).ok(),
        RegistryEvent::PersonUpdated(e) => Uuid::parse_str(&e.person_id).ok(),
        _ => None,
    }
}

/// Seals the identities in `events` under the persons' keys, creating keys for new persons.
pub async fn seal_all(
    conn: &mut PgConnection,
    vault: &Vault,
    events: &mut [RegistryEvent],
) -> Result<(), AppError> {
    let mut persons: Vec<Uuid> = events.iter().filter_map(carries_identity).collect();
    if persons.is_empty() {
        return Ok(());
    }
    persons.sort_unstable();
    persons.dedup();
    let keys = vault
        .ensure_keys(conn, &persons)
        .await
        .map_err(AppError::from)?;
    for event in events.iter_mut() {
        let Some(person) = carries_identity(event) else {
            continue;
        };
        let Some(key) = keys.get(&person).and_then(KeyState::live) else {
            return Err(AppError::failed_precondition(format!(
                "person {person} was erased; no personal data can be recorded for them"
            )));
        };
        let sealed = match event {
            RegistryEvent::PersonRegistered(e) => seal_identity(e, key),
            RegistryEvent::PersonUpdated(e) => seal_identity(e, key),
            _ => Ok(()),
        };
        sealed.map_err(AppError::from)?;
    }
    Ok(())
}

/// A person as their stream says now, identity opened, outside any command (a read that must
/// not wait for the read model, such as the jurisdiction check of a person's file).
pub async fn read_person(
    store: &jiuzhu_eventstore::EventStore,
    vault: &Vault,
    person: Uuid,
) -> Result<Option<Person>, AppError> {
    let events = opened_stream(store, vault, person).await?;
    if events.is_empty() {
        return Ok(None);
    }
    let mut aggregate = Person::default();
    for (event, _) in &events {
        aggregate.apply(event);
    }
    Ok(Some(aggregate))
}

/// A person's identity as the registry held it at `until` (the last registration or update
/// recorded by then, opened), with their gender, county and flags. A person registered only
/// later has their first recorded identity: who they were is known even if it was recorded
/// after the day asked about. `None` for a stream with no registration. An erased person's
/// identity stays empty.
pub async fn identity_at(
    store: &jiuzhu_eventstore::EventStore,
    vault: &Vault,
    person: Uuid,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(PersonalIdentity, i32, String, Vec<i32>)>, AppError> {
    use jiuzhu_vault::identity::CarriesIdentity;
    let mut found = None;
    for (event, at) in opened_stream(store, vault, person).await? {
        if found.is_some() && at > until {
            continue;
        }
        found = match event {
            RegistryEvent::PersonRegistered(mut e) => Some((
                e.take_personal(),
                e.gender,
                e.region.map(|r| r.code).unwrap_or_default(),
                e.flags,
            )),
            RegistryEvent::PersonUpdated(mut e) => Some((
                e.take_personal(),
                e.gender,
                e.region.map(|r| r.code).unwrap_or_default(),
                e.flags,
            )),
            _ => found,
        };
    }
    Ok(found)
}

/// A person's events with the time each was recorded, identities opened.
async fn opened_stream(
    store: &jiuzhu_eventstore::EventStore,
    vault: &Vault,
    person: Uuid,
) -> Result<Vec<(RegistryEvent, chrono::DateTime<chrono::Utc>)>, AppError> {
    let stored = store
        .load_stream(&person.to_string(), 0)
        .await
        .map_err(AppError::from)?;
    let mut events = Vec::with_capacity(stored.len());
    for event in &stored {
        if let Some(decoded) = event.decode::<RegistryEvent>().map_err(AppError::from)? {
            events.push((decoded, event.occurred_at));
        }
    }
    let sealed = sealed_persons(events.iter().map(|(event, _)| event));
    let keys = if sealed.is_empty() {
        HashMap::new()
    } else {
        let mut conn = store.pool().acquire().await.map_err(AppError::storage)?;
        vault
            .keys(&mut conn, &sealed)
            .await
            .map_err(AppError::from)?
    };
    for (event, _) in &mut events {
        open(event, &keys).map_err(AppError::from)?;
    }
    Ok(events)
}

/// Loads a person's aggregate with their identity opened.
pub async fn load_person(
    work: &mut UnitOfWork<'_>,
    vault: &Vault,
    person: Uuid,
) -> Result<(Person, i64), AppError> {
    let (mut events, version) = work
        .load_events::<RegistryEvent>(&person.to_string())
        .await
        .map_err(AppError::from)?;
    let sealed = sealed_persons(&events);
    let keys = if sealed.is_empty() {
        HashMap::new()
    } else {
        vault
            .keys(work.connection().await?, &sealed)
            .await
            .map_err(AppError::from)?
    };
    let mut aggregate = Person::default();
    for event in &mut events {
        open(event, &keys).map_err(AppError::from)?;
        aggregate.apply(event);
    }
    Ok((aggregate, version))
}

/// Seals and appends a person's events.
pub async fn append_person(
    work: &mut UnitOfWork<'_>,
    vault: &Vault,
    person: Uuid,
    version: i64,
    mut events: Vec<RegistryEvent>,
) -> Result<(), AppError> {
    seal_all(work.connection().await?, vault, &mut events).await?;
    let stream = person.to_string();
    work.append(&stream, version, &stream, &events)
        .await
        .map_err(AppError::from)?;
    Ok(())
}

/// Destroys the person's key and the command-side copies of their personal data: the resident
/// id claim and the fingerprints of the department records that became them (a re-import of
/// such a record is then refused as erased, not silently re-registered).
pub async fn erase(conn: &mut PgConnection, vault: &Vault, person: Uuid) -> Result<(), AppError> {
    vault.erase(conn, person).await.map_err(AppError::from)?;
    sqlx::query("DELETE FROM resident_id_claims WHERE person_id = $1")
        .bind(person)
        .execute(&mut *conn)
        .await
        .map_err(AppError::storage)?;
    sqlx::query("UPDATE source_records SET fingerprint = '' WHERE person_id = $1")
        .bind(person)
        .execute(conn)
        .await
        .map_err(AppError::storage)?;
    Ok(())
}

/// Opens the sealed identity inside an event shown as protobuf JSON (the person file): its
/// fields appear as the event's own, or `personalDataErased` is set when the key is gone.
pub fn open_json(
    detail: &mut serde_json::Value,
    keys: &HashMap<Uuid, KeyState>,
) -> Result<(), VaultError> {
    let Some(object) = detail.as_object_mut() else {
        return Ok(());
    };
    let Some(sealed) = object.remove("sealedIdentity") else {
        return Ok(());
    };
    let bytes = |name: &str| {
        sealed
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .unwrap_or_default()
    };
    let person_id = sealed
        .get("personId")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let person = Uuid::parse_str(person_id).map_err(|_| VaultError::Unauthentic {
        person: Uuid::nil(),
    })?;
    let sealed = Sealed {
        person_id: person_id.to_owned(),
        nonce: bytes("nonce"),
        ciphertext: bytes("ciphertext"),
    };
    match keys.get(&person) {
        Some(KeyState::Live(key)) => {
            let identity: PersonalIdentity = key.open(person, &sealed)?;
            for (field, value) in [
                ("fullName", identity.full_name),
                ("birthDate", identity.birth_date),
                ("residentId", identity.resident_id),
                ("township", identity.township),
                ("village", identity.village),
                ("addressText", identity.address_text),
                ("phone", identity.phone),
            ] {
                if !value.is_empty() {
                    object.insert(field.to_owned(), serde_json::Value::String(value));
                }
            }
        }
        Some(KeyState::Erased) => {
            object.insert("personalDataErased".to_owned(), true.into());
        }
        None => return Err(VaultError::NoKey { person }),
    }
    Ok(())
}
