//! The linkage index each clues process holds in memory, so that a party is matched in a
//! millisecond or two instead of a dozen random reads. PostgreSQL's `linkage_persons` (the
//! projection) stays the truth: the index loads it once, then follows it. Every write stamps
//! its row with the writing transaction's id; each look asks for the rows stamped at or after
//! the oldest transaction still running at the previous look, so a transaction that commits
//! late is still seen, and any number of processes follow the same table.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use jiuzhu_linkage::{CaseContext, Index, ModelFile, Normalised};
use jiuzhu_proto::clues::ClueOrigin;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::Match;
use jiuzhu_errors::AppError;
use jiuzhu_vault::{KeyState, RemoteKeys};

use crate::matching::{IndexedPerson, opened_person};
use crate::policy::ScreeningPolicy;

/// Name frequencies mean something only over a population of some size.
const MIN_POPULATION: usize = 1000;
/// How long a look may take before it is worth a warning (a long-running transaction in the
/// clues database holds the horizon back and makes every look re-read its rows).
const SLOW_LOOK: Duration = Duration::from_millis(250);
/// How often the follower looks for changes: a registry change reaches matching this much
/// later than the projection (which itself trails the registry's topic by more).
pub const FOLLOW_EVERY: Duration = Duration::from_millis(50);
/// Rows normalised per blocking task while loading.
const CHUNK: usize = 20_000;

#[derive(Debug, Default)]
struct Follow {
    /// Oldest transaction running at the last look; `None` before the first load.
    horizon: Option<i64>,
    /// Registry events the projection had applied as of the last look.
    applied_events: i64,
    /// When the last look started.
    looked: Option<Instant>,
    versions: HashMap<Uuid, Filed>,
}

#[derive(Debug, sqlx::FromRow)]
struct Changed {
    horizon: i64,
    applied_events: i64,
    person_id: Option<Uuid>,
    version: Option<i64>,
    erased: Option<bool>,
    identity: Option<Vec<u8>>,
    region_code: Option<String>,
    male: Option<bool>,
    merged: Option<bool>,
    household_id: Option<Uuid>,
}

enum Change {
    Upsert(Uuid, Filed, Box<Normalised>),
    Remove(Uuid),
}

/// What the index holds of a person: the registry version and their household's digest (a
/// household event changes the second, not the first).
type Filed = (i64, u64);

/// What a changed row means for the index; a row whose key is gone (erased since) or cannot
/// be opened leaves it.
fn normalised(row: Changed, keys: &HashMap<Uuid, KeyState>) -> Option<Change> {
    let person_id = row.person_id?;
    let matchable = !row.erased.unwrap_or(false) && !row.merged.unwrap_or(false);
    let opened = match (matchable, &row.identity) {
        (true, Some(sealed)) => opened_person(
            person_id,
            row.region_code.unwrap_or_default(),
            row.male,
            sealed,
            keys,
        )
        .unwrap_or_else(|error| {
            tracing::warn!(%person_id, %error, "a linkage index row cannot be opened");
            None
        }),
        _ => None,
    };
    Some(match opened {
        Some(person) => {
            let mut normalised = person.normalised();
            normalised.household = row
                .household_id
                .map_or(0, |h| jiuzhu_linkage::normalise::household(&h.to_string()));
            let filed = (row.version.unwrap_or(0), normalised.household);
            Change::Upsert(person_id, filed, Box::new(normalised))
        }
        None => Change::Remove(person_id),
    })
}

/// The linkage index in memory. At rest (`linkage_persons`) identities stay sealed; the index
/// opens them with keys from the registry's key service as it loads and follows the table.
#[derive(Debug)]
pub struct MemoryIndex {
    follow: tokio::sync::Mutex<Follow>,
    index: RwLock<Index>,
    keys: RemoteKeys,
}

impl MemoryIndex {
    pub fn new(keys: RemoteKeys) -> Self {
        Self {
            follow: tokio::sync::Mutex::default(),
            index: RwLock::default(),
            keys,
        }
    }

    /// Runs `work` on the index as it stands (for estimation: registry changes wait meanwhile).
    pub fn with_index<T>(&self, work: impl FnOnce(&Index) -> T) -> T {
        work(
            &self
                .index
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// A person as the in-memory index holds them, normalised.
    pub fn normalised(&self, person_id: Uuid) -> Option<Normalised> {
        self.with_index(|index| index.person(&person_id.to_string()).cloned())
    }

    /// One person as the index stores them, opened; `None` when not indexed or erased.
    pub async fn person(
        &self,
        pool: &PgPool,
        person_id: Uuid,
    ) -> Result<Option<IndexedPerson>, AppError> {
        let row: Option<(Vec<u8>, String, Option<bool>)> = sqlx::query_as(
            "SELECT identity, region_code, male FROM linkage_persons \
             WHERE person_id = $1 AND NOT erased AND identity IS NOT NULL",
        )
        .bind(person_id)
        .fetch_optional(pool)
        .await
        .map_err(AppError::storage)?;
        let Some((sealed, region_code, male)) = row else {
            return Ok(None);
        };
        let keys = self.keys.keys(&[person_id]).await.map_err(AppError::from)?;
        opened_person(person_id, region_code, male, &sealed, &keys).map_err(AppError::from)
    }

    /// The keys of the persons of `rows` that hold a sealed identity.
    async fn keys_for(&self, rows: &[Changed]) -> Result<HashMap<Uuid, KeyState>, sqlx::Error> {
        let persons: Vec<Uuid> = rows
            .iter()
            .filter(|row| row.identity.is_some() && !row.erased.unwrap_or(false))
            .filter_map(|row| row.person_id)
            .collect();
        if persons.is_empty() {
            return Ok(HashMap::new());
        }
        self.keys
            .keys(&persons)
            .await
            .map_err(|error| sqlx::Error::Protocol(format!("registry key service: {error}")))
    }

    /// Persons the index holds, and the registry events the projection had applied when the
    /// index last looked (one snapshot: the two always agree).
    pub async fn status(&self) -> (usize, i64) {
        let follow = self.follow.lock().await;
        (self.len(), follow.applied_events)
    }

    /// Persons the index holds.
    pub fn len(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Brings the index up to what `linkage_persons` holds now. Callers arriving while a look
    /// is under way wait for it and take a fresh one only if that look began before they came.
    pub async fn catch_up(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let arrived = Instant::now();
        let mut follow = self.follow.lock().await;
        if follow.looked.is_some_and(|looked| looked >= arrived) {
            return Ok(());
        }
        self.look(&mut follow, pool).await
    }

    /// Looks unless the last look is younger than `max_age` (the follower task keeps it so).
    /// Once the index is loaded, a look already under way is not waited for.
    pub async fn fresh(&self, pool: &PgPool, max_age: Duration) -> Result<(), sqlx::Error> {
        let mut follow = match self.follow.try_lock() {
            Ok(follow) => follow,
            Err(_) if !self.is_empty() => return Ok(()),
            Err(_) => self.follow.lock().await,
        };
        if follow.horizon.is_some() && follow.looked.is_some_and(|l| l.elapsed() < max_age) {
            return Ok(());
        }
        self.look(&mut follow, pool).await
    }

    /// Loads the index, then follows `linkage_persons` every `every` until `shutdown`.
    pub async fn follow(
        self: Arc<Self>,
        pool: PgPool,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            if let Err(error) = self.catch_up(&pool).await {
                tracing::warn!(%error, "following linkage_persons failed; trying again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn look(&self, follow: &mut Follow, pool: &PgPool) -> Result<(), sqlx::Error> {
        follow.looked = Some(Instant::now());
        let first = follow.horizon.is_none();
        let started = Instant::now();
        let mut rows = sqlx::query_as::<_, Changed>(
            "WITH now AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon, \
             (SELECT applied_events FROM linkage_index_stats) AS applied_events) \
             SELECT now.horizon, now.applied_events, p.person_id, p.version, p.erased, p.identity, \
             p.region_code, p.male, p.merged_into IS NOT NULL AS merged, p.household_id \
             FROM now LEFT JOIN linkage_persons p ON p.txid >= $1::text::xid8",
        )
        .bind(follow.horizon.unwrap_or(0).to_string())
        .fetch(pool);
        let mut horizon = follow.horizon;
        let mut applied = follow.applied_events;
        let mut seen = 0usize;
        let mut chunk = Vec::new();
        loop {
            let row = rows.try_next().await?;
            let done = row.is_none();
            if let Some(row) = row {
                horizon = Some(row.horizon);
                applied = row.applied_events;
                if row.person_id.is_some() {
                    chunk.push(row);
                }
            }
            if chunk.len() >= CHUNK || (done && !chunk.is_empty()) {
                seen += chunk.len();
                let rows = std::mem::take(&mut chunk);
                let keys = self.keys_for(&rows).await?;
                let changes = tokio::task::spawn_blocking(move || {
                    rows.into_iter()
                        .filter_map(|row| normalised(row, &keys))
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|error| sqlx::Error::Protocol(format!("normalising: {error}")))?;
                self.apply(&mut follow.versions, changes);
                if first && seen % 100_000 < CHUNK {
                    tracing::info!(persons = seen, "loading the linkage index");
                }
            }
            if done {
                break;
            }
        }
        follow.horizon = horizon;
        follow.applied_events = applied;
        if !first && started.elapsed() > SLOW_LOOK {
            tracing::warn!(
                rows = seen,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "following linkage_persons was slow: a long transaction in the clues database holds its horizon back"
            );
        }
        if first {
            tracing::info!(
                persons = self.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "linkage index loaded"
            );
        }
        Ok(())
    }

    fn apply(&self, versions: &mut HashMap<Uuid, Filed>, changes: Vec<Change>) {
        // A panic while writing cannot leave a record half-filed (insert and remove finish
        // before they publish a slot), so a poisoned lock is still usable.
        let mut index = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for change in changes {
            match change {
                Change::Upsert(person, filed, normalised) => {
                    // An older version is stale; the same version is news only when the
                    // household changed.
                    if versions
                        .get(&person)
                        .is_some_and(|known| known.0 > filed.0 || *known == filed)
                    {
                        continue;
                    }
                    versions.insert(person, filed);
                    index.insert(person.to_string(), *normalised);
                }
                Change::Remove(person) => {
                    versions.remove(&person);
                    index.remove(&person.to_string());
                }
            }
        }
    }

    /// The best registry person for `party` at or above the review threshold, if any, weighing
    /// the persons its case's other parties are linked to (`case_links`).
    pub async fn best_match(
        &self,
        pool: &PgPool,
        party: &Normalised,
        model: &ModelFile,
        policy: &ScreeningPolicy,
        case_links: &[Uuid],
    ) -> Result<Option<Match>, sqlx::Error> {
        // The follower looks every FOLLOW_EVERY; a request looks itself only if it has stalled.
        self.fresh(pool, FOLLOW_EVERY * 4).await?;
        let index = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let frequency = if index.len() >= MIN_POPULATION {
            index.name_frequency(&party.name)
        } else {
            None
        };
        let linked: Vec<String> = case_links.iter().map(Uuid::to_string).collect();
        let case = CaseContext::of(&index, linked.iter().map(String::as_str));
        let best = index
            .scored_in_case(party, &model.model, frequency, &case)
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
                model_version: model.version.clone(),
            })
        }))
    }
}
