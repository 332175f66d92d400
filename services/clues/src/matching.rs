//! Matching a party against the linkage index: candidates by blocking key (keys shared by more
//! than `MAX_BLOCK` persons say too little and are skipped), each scored with the linkage model,
//! the best one decided by the policy's thresholds.

use std::collections::HashMap;

use jiuzhu_linkage::{Index, MAX_BLOCK, Model, Normalised, Written, blocking_keys, normalise};
use jiuzhu_messaging::ProjectionError;
use jiuzhu_proto::clues::ClueOrigin;
use jiuzhu_vault::identity::{CarriesIdentity, Opened, open_identity};
use jiuzhu_vault::{KeyState, VaultError};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Match;
use crate::policy::ScreeningPolicy;

const MIN_POPULATION: i64 = 1000;

/// A registry person as the index stores them.
#[derive(Debug, sqlx::FromRow)]
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

pub(crate) fn person_uuid(text: &str) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(text)
        .map_err(|_| ProjectionError::Rejected(format!("person_id `{text}` is not a UUID")))
}

pub(crate) fn vault_error(error: VaultError) -> ProjectionError {
    if error.is_transient() {
        ProjectionError::Unavailable(error.to_string())
    } else {
        ProjectionError::Rejected(error.to_string())
    }
}

/// The person a registry identity event describes, opened with `keys`; `None` for an erased
/// person (whose identity stays unreadable).
pub(crate) fn indexed_person<E: CarriesIdentity>(
    event: &mut E,
    keys: &HashMap<Uuid, KeyState>,
) -> Result<Option<IndexedPerson>, ProjectionError> {
    let person = person_uuid(event.person_id())?;
    if open_identity(event, keys).map_err(vault_error)? == Opened::Erased {
        return Ok(None);
    }
    let region_code = event.region_code().to_owned();
    let male = match event.gender() {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    };
    let identity = event.take_personal();
    Ok(Some(IndexedPerson {
        person_id: person,
        full_name: identity.full_name,
        birth_date: identity.birth_date,
        resident_id: identity.resident_id,
        region_code,
        male,
        phone: identity.phone,
        township: identity.township,
        village: identity.village,
    }))
}

/// The best registry person for `party` at or above the review threshold, if any.
pub async fn best_match(
    conn: &mut PgConnection,
    party: &Normalised,
    model: &Model,
    policy: &ScreeningPolicy,
) -> Result<Option<Match>, sqlx::Error> {
    let keys = blocking_keys(party);
    if keys.is_empty() {
        return Ok(None);
    }
    let usable: Vec<String> = sqlx::query_scalar(
        "SELECT k.key FROM unnest($1::text[]) AS k(key) \
         WHERE (SELECT count(*) FROM (SELECT 1 FROM linkage_blocks b WHERE b.key = k.key LIMIT $2) c) < $2",
    )
    .bind(&keys)
    .bind(i64::try_from(MAX_BLOCK).unwrap_or(i64::MAX).saturating_add(1))
    .fetch_all(&mut *conn)
    .await?;
    let candidates: Vec<IndexedPerson> = sqlx::query_as(
        "SELECT DISTINCT p.person_id, p.full_name, p.birth_date, p.resident_id, p.region_code, p.male, \
         p.phone, p.township, p.village FROM unnest($1::text[]) AS k(key) \
         JOIN linkage_blocks b ON b.key = k.key JOIN linkage_persons p ON p.person_id = b.person_id",
    )
    .bind(&usable)
    .fetch_all(&mut *conn)
    .await?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let (same_name, total): (i64, i64) = sqlx::query_as(
        "SELECT coalesce((SELECT persons FROM linkage_names WHERE norm_name = $1), 0), \
         (SELECT persons FROM linkage_index_stats)",
    )
    .bind(&party.name)
    .fetch_one(&mut *conn)
    .await?;
    // Name frequencies mean something only over a population of some size.
    let frequency =
        (total >= MIN_POPULATION && same_name > 0).then(|| same_name as f64 / total as f64);
    let mut index = Index::default();
    for person in &candidates {
        index.insert(person.person_id.to_string(), person.normalised());
    }
    let best = index
        .scored_with_frequency(party, model, frequency)
        .into_iter()
        .next();
    Ok(best.and_then(|c| {
        let probability = c.score.probability;
        let origin = if probability >= policy.thresholds.automatic {
            ClueOrigin::Automatic
        } else if probability >= policy.thresholds.review {
            ClueOrigin::Review
        } else {
            return None;
        };
        Some(Match {
            person_id: Uuid::parse_str(c.person_id).ok()?,
            probability,
            explanation: c.score.explanation(),
            origin,
        })
    }))
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
    }
    party
}
