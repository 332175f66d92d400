//! What matching works with: a registry person as the linkage index stores them, a party as a
//! case file writes them (as reported, or opened again from its sealed store), both normalised
//! the same way (the matching itself is `memory`).

use std::collections::HashMap;

use jiuzhu_errors::AppError;
use jiuzhu_eventstore::EventStore;
use jiuzhu_linkage::{Normalised, Written, normalise};
use jiuzhu_messaging::ProjectionError;
use jiuzhu_proto::clues::ReportPartyRequest;
use jiuzhu_proto::common::Sealed;
use jiuzhu_proto::registry::PersonalIdentity;
use jiuzhu_vault::identity::{CarriesIdentity, Opened, open_identity};
use jiuzhu_vault::{KeyState, Vault, VaultError};
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
/// birth date as a mid-year date of the incident year (the year it was reported, when the
/// incident date is unknown) minus the age.
pub fn party(
    written: &Written<'_>,
    address: &str,
    approximate_age: i32,
    incident_date: &str,
    reported_on: chrono::NaiveDate,
) -> Normalised {
    let village = normalise::village_from_address(address);
    let mut party = Normalised::from_written(&Written {
        village: &village,
        ..written.clone()
    });
    if party.birth_date.is_none() && approximate_age > 0 {
        let year = normalise::date(incident_date).map_or_else(
            || chrono::Datelike::year(&reported_on),
            |d| chrono::Datelike::year(&d),
        ) - approximate_age;
        party.birth_date = chrono::NaiveDate::from_ymd_opt(year, 7, 1);
        party.birth_estimated = true;
    }
    party
}

/// A party's identity as written in the request, normalised.
pub(crate) fn written_party(
    request: &ReportPartyRequest,
    region: &str,
    reported_on: chrono::NaiveDate,
) -> Normalised {
    party(
        &Written {
            name: &request.full_name,
            resident_id: &request.id_number,
            gender: &request.gender,
            birth_date: &request.birth_date,
            phone: &request.phone,
            region_code: region,
            township: "",
            village: "",
        },
        &request.address,
        request.approximate_age,
        &request.incident_date,
        reported_on,
    )
}

/// The data keys of stored parties (on a connection given back at once).
pub(crate) async fn party_keys(
    store: &EventStore,
    vault: &Vault,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, KeyState>, AppError> {
    let mut conn = store.pool().acquire().await.map_err(AppError::storage)?;
    vault.keys(&mut conn, ids).await.map_err(AppError::from)
}

/// A stored party's identity opened and normalised as intake saw it; `None` when its key is
/// gone (erased with the person it was matched to).
pub(crate) fn opened_party(
    keys: &std::collections::HashMap<Uuid, KeyState>,
    party_id: Uuid,
    sealed: &[u8],
    approximate_age: i32,
    incident_date: &str,
    region_code: &str,
    reported_at: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Normalised>, AppError> {
    let Some(KeyState::Live(key)) = keys.get(&party_id) else {
        return Ok(None);
    };
    let sealed =
        Sealed::decode(sealed).map_err(|e| AppError::internal(format!("party {party_id}: {e}")))?;
    let identity: ReportPartyRequest = key.open(party_id, &sealed).map_err(AppError::from)?;
    let request = ReportPartyRequest {
        approximate_age,
        incident_date: incident_date.to_owned(),
        ..identity
    };
    Ok(Some(written_party(
        &request,
        region_code,
        reported_at.date_naive(),
    )))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, NaiveDate};

    use super::*;

    #[test]
    fn an_approximate_age_counts_back_from_the_incident_or_else_the_report() {
        let written = Written {
            name: "王秀英",
            ..Written::default()
        };
        let reported = NaiveDate::from_ymd_opt(2031, 3, 4).unwrap_or_default();
        let from_incident = party(&written, "", 40, "2020-05-06", reported);
        assert_eq!(from_incident.birth_year(), Some(1980));
        assert!(from_incident.birth_estimated);
        let from_report = party(&written, "", 40, "", reported);
        assert_eq!(
            from_report.birth_date.map(|d| d.year()),
            Some(1991),
            "no incident date: the year it was reported, not this year"
        );
        let written_date = Written {
            birth_date: "1950-02-03",
            ..written
        };
        assert!(!party(&written_date, "", 40, "", reported).birth_estimated);
    }
}
