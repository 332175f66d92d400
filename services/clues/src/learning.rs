//! The linkage model in force, and how the next one is learned (a job). At start the service
//! takes up the model it adopted last (its `LinkageModelAdopted` events), then the configured
//! file's model if that is another version; on its schedule it estimates a model from its own
//! registry index, the parties it has seen (a valid resident id labels a party's best
//! candidate) and reviewers' decisions (confirmed and rejected clues), and adopts it when
//! enough labels back it and its held-out calibration holds. Every adoption is an event, and
//! every clue names the version that scored it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiuzhu_errors::AppError;
use jiuzhu_eventstore::{Begun, CommandRequest, EventStore};
use jiuzhu_linkage::{Model, ModelFile, Normalised, Review, TrainingOptions, TrainingReport};
use jiuzhu_proto::clues::{ClueOrigin, ClueStatus};
use jiuzhu_vault::Vault;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{
    Adoption, CluesEvent, LINKAGE_MODEL_STREAM, LinkageModels, ModelSource, adopt,
};
use crate::matching::{opened_party, party_keys};
use crate::memory::MemoryIndex;
use crate::settings::LinkageSettings;

/// The model every match is scored with; replaced whole when another is adopted.
#[derive(Debug)]
pub struct Models {
    current: RwLock<Arc<ModelFile>>,
}

impl Models {
    /// Until a model is adopted: the starting values, under their own version.
    pub fn starting() -> Self {
        Self {
            current: RwLock::new(Arc::new(ModelFile::new(
                Model::default(),
                TrainingReport::default(),
                "",
            ))),
        }
    }

    pub fn current(&self) -> Arc<ModelFile> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set(&self, file: ModelFile) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(file);
    }
}

const ADOPT: &str = "jiuzhu.clues.v1.LinkageModel/Adopt";

/// A configured model file must load: a broken one is a start error, never ignored.
pub fn read_model_file(path: &std::path::Path) -> Result<ModelFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("linkage.model {}: {error}", path.display()))?;
    ModelFile::from_json(&text).map_err(|error| {
        format!(
            "linkage.model {} is not a model written by `jiuzhu link train`: {error}",
            path.display()
        )
    })
}

#[derive(Debug)]
pub struct Learning {
    store: EventStore,
    models: Arc<Models>,
    index: Arc<MemoryIndex>,
    vault: Vault,
    settings: LinkageSettings,
    file: Option<ModelFile>,
    /// The screening policy's automatic threshold: co-parties linked from it are evidence.
    automatic: f64,
}

#[derive(Debug, sqlx::FromRow)]
struct SeenParty {
    party_id: Uuid,
    identity: Vec<u8>,
    region_code: String,
    incident_date: String,
    approximate_age: i32,
    reported_at: chrono::DateTime<chrono::Utc>,
    case_no: String,
    person_id: Option<Uuid>,
    status: Option<i32>,
    origin: Option<i32>,
}

impl Learning {
    pub fn new(
        store: EventStore,
        models: Arc<Models>,
        index: Arc<MemoryIndex>,
        vault: Vault,
        settings: LinkageSettings,
        file: Option<ModelFile>,
        automatic: f64,
    ) -> Self {
        Self {
            store,
            models,
            index,
            vault,
            settings,
            file,
            automatic,
        }
    }

    /// Takes up the adopted model, then the file's; then estimates on schedule until shutdown
    /// (at once, when the adopted model is one this release cannot read).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let unreadable = loop {
            match self.take_up().await {
                Ok(unreadable) => break unreadable,
                Err(error) => {
                    tracing::warn!(%error, "linkage model: cannot read adoptions; trying again")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        };
        // A supervised task that ends counts as down (and the service as not serving): without
        // a schedule it stays until shutdown.
        if self.settings.train_every_seconds == 0 {
            shutdown.cancelled().await;
            return;
        }
        let every = Duration::from_secs(self.settings.train_every_seconds);
        // An unreadable model left the starting values in force: a day of them is too long.
        let mut wait = if unreadable && self.file.is_none() {
            Duration::ZERO
        } else {
            every
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = every;
            match self.estimate().await {
                Ok(Adoption::Adopt(adopted)) => {
                    tracing::info!(version = %adopted.version, "estimated linkage model adopted");
                }
                Ok(Adoption::Current) => {}
                Ok(Adoption::Refused(reason)) => {
                    tracing::info!(%reason, "estimated linkage model not adopted");
                }
                Err(error) => tracing::warn!(%error, "linkage model estimation failed"),
            }
        }
    }

    /// The last adopted model, then the configured file's if it is another version. An adopted
    /// model this release cannot read (an older format) gives way to the starting values, which
    /// are recorded so that the version clues name is on record; `true` then.
    pub async fn take_up(&self) -> Result<bool, AppError> {
        let (models, _) = self
            .store
            .load_aggregate::<LinkageModels>(LINKAGE_MODEL_STREAM)
            .await
            .map_err(AppError::from)?;
        let mut unreadable = false;
        if let Some(current) = &models.current {
            match ModelFile::from_json(&current.model_json) {
                Ok(file) => self.models.set(file),
                Err(error) => {
                    tracing::warn!(version = %current.version, %error, "adopted linkage model unreadable; the starting values serve until the next estimation");
                    unreadable = true;
                }
            }
        }
        match (&self.file, &models.current) {
            (Some(file), _) => {
                self.offer(file.clone(), ModelSource::File).await?;
            }
            // Nothing on record, or nothing readable: the starting values in force, recorded.
            (None, current) if current.is_none() || unreadable => {
                self.offer((*self.models.current()).clone(), ModelSource::Starting)
                    .await?;
            }
            (None, _) => {}
        }
        Ok(unreadable)
    }

    /// Estimates a model from the service's own data and adopts it if it deserves to be.
    pub async fn estimate(&self) -> Result<Adoption, AppError> {
        let index = self.index.clone();
        index
            .catch_up(self.store.pool())
            .await
            .map_err(AppError::storage)?;
        let (parties, cases, reviews) = self.seen().await?;
        let automatic = self.automatic;
        let trained = tokio::task::spawn_blocking(move || {
            index.with_index(|index| {
                jiuzhu_linkage::train(
                    index,
                    &parties,
                    &cases,
                    &reviews,
                    &Model::default(),
                    TrainingOptions {
                        automatic,
                        ..TrainingOptions::default()
                    },
                )
            })
        })
        .await
        .map_err(|error| AppError::internal(format!("linkage estimation stopped: {error}")))?;
        let today = self.store.clock().today().to_string();
        let file = ModelFile::new(trained.model, trained.report, today);
        self.offer(
            file,
            ModelSource::Estimated {
                min_labels: self.settings.min_labels,
                max_gap: self.settings.max_gap,
            },
        )
        .await
    }

    /// Records the adoption (once: the version is the command's key) and puts it in force.
    async fn offer(&self, file: ModelFile, source: ModelSource) -> Result<Adoption, AppError> {
        // Once per change from one model to another: a version adopted before may come back
        // after another (the same data estimated again after an unreadable model gave way).
        let (before, _) = self
            .store
            .load_aggregate::<LinkageModels>(LINKAGE_MODEL_STREAM)
            .await
            .map_err(AppError::from)?;
        let replacing = before
            .current
            .as_ref()
            .map_or("", |current| current.version.as_str());
        let call =
            CommandRequest::internal(ADOPT, format!("{} replacing {replacing}", file.version));
        let mut work = match self
            .store
            .begin_command(call)
            .await
            .map_err(AppError::from)?
        {
            Begun::Replay(_) => return Ok(Adoption::Current),
            Begun::Fresh(work) => work,
        };
        let (models, version) = work
            .load::<LinkageModels>(LINKAGE_MODEL_STREAM)
            .await
            .map_err(AppError::from)?;
        let adoption = adopt(&models, &file, source);
        if let Adoption::Adopt(event) = &adoption {
            work.append(
                LINKAGE_MODEL_STREAM,
                version,
                LINKAGE_MODEL_STREAM,
                &[CluesEvent::LinkageModelAdopted((**event).clone())],
            )
            .await
            .map_err(AppError::from)?;
            work.commit(Vec::new()).await.map_err(AppError::from)?;
            tracing::info!(
                version = %event.version,
                source = %event.source,
                replaced = %event.replaced,
                largest_gap = event.largest_gap,
                "linkage model adopted"
            );
            self.models.set(file);
        } else if adoption == Adoption::Current && self.models.current().version != file.version {
            self.models.set(file);
        }
        Ok(adoption)
    }

    /// The most recent parties (opened) and, among them, the reviewers' decisions.
    /// The parties most recently reported (with their cases) and the reviewers' decisions.
    async fn seen(&self) -> Result<(Vec<Normalised>, Vec<String>, Vec<Review>), AppError> {
        let limit = i64::try_from(self.settings.train_parties).unwrap_or(i64::MAX);
        let rows: Vec<SeenParty> = sqlx::query_as(
            "SELECT p.party_id, p.identity, p.region_code, p.incident_date, p.approximate_age, \
             p.reported_at, p.case_no, \
             c.person_id, c.status, c.origin FROM party_identities p \
             LEFT JOIN clues c ON c.clue_id = p.clue_id \
             WHERE p.identity IS NOT NULL ORDER BY p.reported_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.party_id).collect();
        let keys = party_keys(&self.store, &self.vault, &ids).await?;
        let mut parties = Vec::with_capacity(rows.len());
        let mut cases = Vec::with_capacity(rows.len());
        let mut reviews = Vec::new();
        for row in rows {
            let Some(party) = opened_party(
                &keys,
                row.party_id,
                &row.identity,
                row.approximate_age,
                &row.incident_date,
                &row.region_code,
                row.reported_at,
            )?
            else {
                continue;
            };
            if let (Some(person_id), Some(matched)) =
                (row.person_id, reviewed(row.status, row.origin))
                && let Some(person) = self.index.normalised(person_id)
            {
                reviews.push(Review {
                    party: party.clone(),
                    person,
                    matched,
                });
            }
            parties.push(party);
            cases.push(row.case_no);
        }
        Ok((parties, cases, reviews))
    }
}

/// What a reviewer said of a clue: rejected, or confirmed (a clue raised for review that went
/// on to be referred or closed was confirmed first); `None` when no reviewer decided.
fn reviewed(status: Option<i32>, origin: Option<i32>) -> Option<bool> {
    let status = ClueStatus::try_from(status?).ok()?;
    let for_review = origin == Some(ClueOrigin::Review as i32);
    match status {
        ClueStatus::Rejected => Some(false),
        ClueStatus::Confirmed => Some(true),
        ClueStatus::Referred | ClueStatus::Closed if for_review => Some(true),
        _ => None,
    }
}
