//! What matching works with: a registry person as the linkage index stores them, a party as a
//! case file writes them, both normalised the same way (the matching itself is `memory`).

use std::collections::HashMap;

use jiuzhu_linkage::{Normalised, Written, normalise};
use jiuzhu_messaging::ProjectionError;
use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_vault::identity::{CarriesIdentity, Opened, open_identity};
use jiuzhu_vault::{KeyState, VaultError};
use prost::Message as _;
use uuid::Uuid;

/// A registry person as the index holds them (in memory; at rest they stay sealed).
#[derive(Debug)]
pub struct IndexedPerson {
    pub person_id: Uuid,
    pub full_name: String,
    pub birth_date: String,
    pub resident_id: String,
    pub region_code: String,
    pub male: Option<bool>,
    pub phone: String,
    pub township: String,
    pub village: String,
}

impl IndexedPerson {
    fn from_identity(
        person_id: Uuid,
        region_code: String,
        male: Option<bool>,
        identity: PersonalIdentity,
    ) -> Self {
        Self {
            person_id,
            full_name: identity.full_name,
            birth_date: identity.birth_date,
            resident_id: identity.resident_id,
            region_code,
            male,
            phone: identity.phone,
            township: identity.township,
            village: identity.village,
        }
    }

    pub fn normalised(&self) -> Normalised {
        Normalised::from_written(&Written {
            name: &self.full_name,
            resident_id: &self.resident_id,
            gender: match self.male {
                Some(true) => "male",
                Some(false) => "female",
                None => "",
            },
            birth_date: &self.birth_date,
            phone: &self.phone,
            region_code: &self.region_code,
            township: &self.township,
            village: &self.village,
        })
    }
}

/// A person as the linkage index stores them: sealed as the registry sealed them, opened with
/// `keys` (from the registry's key service); `None` when the key is gone (erased) or missing.
pub(crate) fn opened_person(
    person_id: Uuid,
    region_code: String,
    male: Option<bool>,
    sealed: &[u8],
    keys: &HashMap<Uuid, KeyState>,
) -> Result<Option<IndexedPerson>, VaultError> {
    let Some(KeyState::Live(key)) = keys.get(&person_id) else {
        return Ok(None);
    };
    let sealed = Sealed::decode(sealed).map_err(|source| VaultError::Decode {
        person: person_id,
        source,
    })?;
    let identity: PersonalIdentity = key.open(person_id, &sealed)?;
    Ok(Some(IndexedPerson::from_identity(
        person_id,
        region_code,
        male,
        identity,
    )))
}

pub(crate) fn person_uuid(text: &str) -> Result<Uuid, ProjectionError> {
    ProjectionError::uuid("person_id", text)
}

/// The person a registry identity event describes, opened with `keys`; `None` for an erased
/// person (whose identity stays unreadable).
pub(crate) fn indexed_person<E: CarriesIdentity>(
    event: &mut E,
    keys: &HashMap<Uuid, KeyState>,
) -> Result<Option<IndexedPerson>, ProjectionError> {
    let person = person_uuid(event.person_id())?;
    if open_identity(event, keys).map_err(jiuzhu_errors::AppError::from)? == Opened::Erased {
        return Ok(None);
    }
    let region_code = event.region_code().to_owned();
    let male = match event.gender() {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    };
    let identity = event.take_personal();
    Ok(Some(IndexedPerson::from_identity(
        person,
        region_code,
        male,
        identity,
    )))
}

/// What a party written into a case file normalises to; an approximate age stands in for a
/// birth date as a mid-year date of the incident year minus the age.
pub fn party(
    written: &Written<'_>,
    address: &str,
    approximate_age: i32,
    incident_date: &str,
) -> Normalised {
    let village = normalise::village_from_address(address);
    let mut party = Normalised::from_written(&Written {
        village: &village,
        ..written.clone()
    });
    if party.birth_date.is_none() && approximate_age > 0 {
        let year = normalise::date(incident_date)
            .map(|d| chrono::Datelike::year(&d))
            .unwrap_or(2026)
            - approximate_age;
        party.birth_date = chrono::NaiveDate::from_ymd_opt(year, 7, 1);
        party.birth_estimated = true;
    }
    party
}
