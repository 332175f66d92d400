//! Case-party intake, shared by the gRPC API and the inbound topic `jiuzhu.inbound.cases.v1`:
//! validation with field details, then screening and matching inside one idempotent unit of
//! work (idempotent on the request id and on case number + party reference).

use std::sync::Arc;

use futures::FutureExt;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_eventstore::{Append, Begun, CommandRequest, EventStore, NewEvent};
use jiuzhu_linkage::{Normalised, blocking_keys, normalise};
use jiuzhu_proto::clues::*;
use jiuzhu_runtime::grpc::{decode_answer, run_command};
use prost::Message;
use uuid::Uuid;

use jiuzhu_vault::{BlindIndex, Vault, VaultError};

use crate::domain::{CluesEvent, Match, report};
use crate::learning::Models;
use crate::matching::{self, opened_party, party_keys, written_party};
use crate::memory::MemoryIndex;
use crate::policy::ScreeningPolicy;
use crate::projections::clue_view;

const COMMAND: &str = "jiuzhu.clues.v1.CluesService/ReportParty";

#[derive(Debug, Clone)]
pub struct Intake {
    store: EventStore,
    policy: Arc<ScreeningPolicy>,
    models: Arc<Models>,
    index: Arc<MemoryIndex>,
    /// Parties' data keys: their identities are kept sealed.
    vault: Vault,
    /// Blocking keys of unmatched parties are kept as blind indexes.
    blocks: BlindIndex,
}

/// The purpose the party blocking keys' index key is derived for.
const PARTY_BLOCKS: &str = "clues.party-blocks";

/// The persons the case's other parties are linked to (an automatic clue not rejected since, or
/// a clue a reviewer confirmed): evidence for which household this party is of.
async fn case_links(conn: &mut sqlx::PgConnection, case_no: &str) -> Result<Vec<Uuid>, AppError> {
    sqlx::query_scalar(
        "SELECT p.linked_person FROM party_identities p WHERE p.case_no = $1 \
         AND p.linked_person IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM clues c WHERE c.clue_id = p.clue_id AND c.status = $2) \
         UNION SELECT person_id FROM clues WHERE case_no = $1 AND status = $3",
    )
    .bind(case_no)
    .bind(ClueStatus::Rejected as i32)
    .bind(ClueStatus::Confirmed as i32)
    .fetch_all(conn)
    .await
    .map_err(AppError::storage)
}

/// A party's personal fields, as sealed under its key.
fn party_identity(request: &ReportPartyRequest) -> ReportPartyRequest {
    ReportPartyRequest {
        full_name: request.full_name.trim().to_owned(),
        id_number: request.id_number.trim().to_owned(),
        gender: request.gender.trim().to_owned(),
        birth_date: request.birth_date.trim().to_owned(),
        phone: request.phone.trim().to_owned(),
        address: request.address.trim().to_owned(),
        ..ReportPartyRequest::default()
    }
}

fn blind_blocks(blocks: &BlindIndex, keys: Vec<String>) -> Vec<String> {
    keys.iter().map(|key| blocks.of("block", &[key])).collect()
}

fn money_field(
    violations: &mut FieldViolations,
    field: &str,
    money: Option<&jiuzhu_proto::common::Money>,
) {
    if money.is_some_and(|m| m.fen < 0) {
        violations.add(field, "cannot be negative");
    }
}

impl Intake {
    pub fn new(
        store: EventStore,
        policy: ScreeningPolicy,
        models: Arc<Models>,
        index: Arc<MemoryIndex>,
        vault: Vault,
    ) -> Result<Self, VaultError> {
        let blocks = BlindIndex::new(&vault, PARTY_BLOCKS)?;
        Ok(Self {
            store,
            policy: Arc::new(policy),
            models,
            index,
            vault,
            blocks,
        })
    }

    /// The matching index, brought up to what the projection holds now.
    pub async fn caught_up_index(&self) -> Result<&MemoryIndex, AppError> {
        self.index
            .catch_up(self.store.pool())
            .await
            .map_err(AppError::storage)?;
        Ok(&self.index)
    }

    /// Validates, screens and matches a case party in one idempotent unit of work.
    #[tracing::instrument(skip_all, fields(request_id = %request.request_id))]
    pub async fn report(
        &self,
        request: ReportPartyRequest,
    ) -> Result<ReportPartyResponse, AppError> {
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        violations.require(&[
            ("case_no", &request.case_no),
            ("party_ref", &request.party_ref),
            ("procuratorate", &request.procuratorate),
            ("full_name", &request.full_name),
        ]);
        let role = match PartyRole::try_from(request.role) {
            Ok(PartyRole::Unspecified) | Err(_) => {
                violations.add("role", format!("{} is not a party role", request.role));
                PartyRole::Unspecified
            }
            Ok(role) => role,
        };
        // Like the registry's: a party outside every office's jurisdiction would be on no
        // clue board.
        let region_code = request.region.as_ref().map_or("", |r| r.code.trim());
        if jiuzhu_identity::lookup_region(region_code).is_none() {
            violations.add(
                "region.code",
                format!("`{region_code}` is not a GB/T 2260 region code"),
            );
        }
        let harm = request.harm.unwrap_or_default();
        if !(0..=10).contains(&harm.disability_grade) {
            violations.add("harm.disability_grade", "must be 0 (none) or 1 to 10");
        }
        money_field(
            &mut violations,
            "harm.property_loss",
            harm.property_loss.as_ref(),
        );
        money_field(
            &mut violations,
            "harm.medical_costs",
            harm.medical_costs.as_ref(),
        );
        money_field(
            &mut violations,
            "harm.compensation_received",
            harm.compensation_received.as_ref(),
        );
        if !request.birth_date.trim().is_empty()
            && normalise::date(&request.birth_date).is_none()
            && normalise::year_only(&request.birth_date).is_none()
        {
            violations.add(
                "birth_date",
                format!(
                    "`{}` is not a date as people write them",
                    request.birth_date.trim()
                ),
            );
        }
        if !request.incident_date.trim().is_empty()
            && chrono::NaiveDate::parse_from_str(request.incident_date.trim(), "%Y-%m-%d").is_err()
        {
            violations.add("incident_date", "is not a YYYY-MM-DD date");
        }
        if !request.gender.trim().is_empty() && normalise::gender(&request.gender).is_none() {
            violations.add(
                "gender",
                format!(
                    "`{}` is not a gender: GENDER_MALE or GENDER_FEMALE (male/female, 男/女, M/F \
                     and 1/2 are read too), or empty",
                    request.gender.trim()
                ),
            );
        }
        if !(0..=120).contains(&request.approximate_age) {
            violations.add("approximate_age", "must be 0 (unknown) to 120");
        }
        violations.into_result()?;

        let (policy, model, index) = (
            self.policy.clone(),
            self.models.current(),
            self.index.clone(),
        );
        let (vault, blocks) = (self.vault.clone(), self.blocks.clone());
        let pool = self.store.pool().clone();
        let party = request.clone();
        run_command(
            &self.store,
            COMMAND,
            &request.request_id,
            &request,
            move |work| {
                let request = party;
                async move {
                    let party_id = Uuid::now_v7();
                    let region = request
                        .region
                        .as_ref()
                        .map(|r| r.code.trim().to_owned())
                        .unwrap_or_default();
                    let reported = PartyReported {
                        party_id: party_id.to_string(),
                        case_no: jiuzhu_identity::canonical_case_number(&request.case_no),
                        party_ref: request.party_ref.trim().to_owned(),
                        procuratorate: request.procuratorate.trim().to_owned(),
                        case_type: request.case_type.clone(),
                        charge: request.charge.clone(),
                        incident_date: request.incident_date.trim().to_owned(),
                        role: role.into(),
                        harm: Some(harm),
                        region_code: region.clone(),
                    };
                    let screened = policy.screen(role, &harm);
                    let party = written_party(&request, &region, work.clock().now().date_naive());
                    let case_no = jiuzhu_identity::canonical_case_number(&request.case_no);
                    let found = if screened.is_none() {
                        // A model that does not weigh the case needs no round trip for it.
                        let linked = if model.model.case_household.is_empty() {
                            Vec::new()
                        } else {
                            case_links(work.connection().await?, &case_no).await?
                        };
                        index
                            .best_match(&pool, &party, &model, &policy, &linked)
                            .await
                            .map_err(AppError::storage)?
                    } else {
                        None
                    };
                    let clue_id = Uuid::now_v7();
                    let (events, clue) =
                        report(reported, screened.clone(), &policy.version, found, clue_id);
                    let answer = ReportPartyResponse {
                        party_id: party_id.to_string(),
                        screened_out: screened.clone().unwrap_or_default(),
                        clue: clue.as_ref().map(clue_view),
                    };
                    // The claim on case number + party reference first, and only if it is
                    // new the party's identity (kept here, never in events) sealed under a key
                    // made for it, the key's row and its blocking keys while it is unmatched
                    // (findable when the person enters the registry): one statement, which also
                    // returns the answer given when the same party was reported before under
                    // another request id (the statement's snapshot holds that row, not its own).
                    let unmatched_keys = if screened.is_none() && clue.is_none() {
                        blind_blocks(&blocks, blocking_keys(&party))
                    } else {
                        Vec::new()
                    };
                    let minted = vault.mint(party_id).map_err(AppError::from)?;
                    let sealed = minted
                        .key
                        .seal(party_id, &party_identity(&request))
                        .map_err(AppError::from)?;
                    let (claimed, known): (Option<Uuid>, Option<Vec<u8>>) = sqlx::query_as(
                        "WITH claim AS (INSERT INTO party_refs (case_no, party_ref, party_id, answer) \
                         VALUES ($4, $11, $1, $12) ON CONFLICT (case_no, party_ref) DO NOTHING \
                         RETURNING party_id), \
                         identity AS (INSERT INTO party_identities (party_id, identity, \
                         region_code, case_no, procuratorate, role, incident_date, approximate_age, \
                         clue_id, reported_at, linked_person) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $13, $16 FROM claim), \
                         blocks AS (INSERT INTO party_blocks (key, party_id) \
                         SELECT k, $1 FROM claim, unnest($10::text[]) AS k ON CONFLICT DO NOTHING), \
                         data_key AS (INSERT INTO person_keys (person_id, wrapped_key, master_key_id) \
                         SELECT $1, $14, $15 FROM claim) \
                         SELECT (SELECT party_id FROM claim), \
                         (SELECT answer FROM party_refs WHERE case_no = $4 AND party_ref = $11)",
                    )
                    .bind(party_id)
                    .bind(sealed.encode_to_vec())
                    .bind(&region)
                    .bind(jiuzhu_identity::canonical_case_number(&request.case_no))
                    .bind(request.procuratorate.trim())
                    .bind(request.role)
                    .bind(request.incident_date.trim())
                    .bind(request.approximate_age)
                    .bind(clue.as_ref().map(|_| clue_id))
                    .bind(&unmatched_keys)
                    .bind(request.party_ref.trim())
                    .bind(answer.encode_to_vec())
                    .bind(work.clock().now())
                    .bind(&minted.wrapped)
                    .bind(&minted.master_key_id)
                    .bind(
                        clue.as_ref()
                            .filter(|c| c.origin == ClueOrigin::Automatic as i32)
                            .and_then(|c| Uuid::parse_str(&c.person_id).ok()),
                    )
                    .fetch_one(work.connection().await?)
                    .await
                    .map_err(AppError::storage)?;
                    if claimed.is_none() {
                        return match known {
                            Some(answer) => decode_answer(&answer),
                            // Claimed by a call whose transaction committed after this
                            // statement's snapshot was taken.
                            None => Err(AppError::conflict(
                                "the same case party is being reported concurrently; send it again",
                            )),
                        };
                    }
                    // The party's stream and the clue's, appended last: they travel with the
                    // command's answer in the unit of work's final statement.
                    let stream = party_id.to_string();
                    let mut appends = vec![Append {
                        stream_id: stream.clone(),
                        expected_version: 0,
                        partition_key: stream,
                        events: events.iter().map(NewEvent::from_codec).collect(),
                    }];
                    if let Some(detected) = &clue {
                        appends.push(Append {
                            stream_id: clue_id.to_string(),
                            expected_version: 0,
                            partition_key: detected.person_id.clone(),
                            events: vec![NewEvent::from_codec(&CluesEvent::ClueDetected(
                                detected.clone(),
                            ))],
                        });
                        tracing::info!(%clue_id, probability = detected.probability, "clue detected");
                    }
                    work.append_many(&appends).await.map_err(AppError::from)?;
                    Ok(answer)
                }
                .boxed()
            },
        )
        .await
    }

    /// The parties matched to an erased person go with them: their data keys are destroyed, so
    /// their identities can never be read again. Returns how many.
    pub async fn erase_parties_of(&self, person_id: Uuid) -> Result<usize, AppError> {
        let mut tx = self.store.pool().begin().await.map_err(AppError::storage)?;
        let parties: Vec<Uuid> = sqlx::query_scalar(
            "SELECT party_id FROM clues WHERE person_id = $1 \
             UNION SELECT p.party_id FROM party_identities p JOIN clues c ON c.clue_id = p.clue_id \
             WHERE c.person_id = $1",
        )
        .bind(person_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(AppError::storage)?;
        let mut erased = 0;
        for party in &parties {
            erased += usize::from(
                self.vault
                    .erase(&mut tx, *party)
                    .await
                    .map_err(AppError::from)?,
            );
        }
        tx.commit().await.map_err(AppError::storage)?;
        if erased > 0 {
            tracing::info!(%person_id, parties = erased, "parties of an erased person erased");
        }
        Ok(erased)
    }

    /// A person as the linkage index holds them, if it does.
    pub async fn indexed(
        &self,
        person_id: Uuid,
    ) -> Result<Option<matching::IndexedPerson>, AppError> {
        self.index.person(self.store.pool(), person_id).await
    }

    /// Reverse correlation: the recent parties screened in but left unmatched that share a
    /// blocking key with `person` (who just entered the registry or changed) are compared with
    /// them; a match raises the clue intake would have raised. Returns the clues raised.
    pub async fn correlate(&self, person_id: Uuid, person: &Normalised) -> Result<usize, AppError> {
        let keys = blind_blocks(&self.blocks, blocking_keys(person));
        if keys.is_empty() {
            return Ok(0);
        }
        let parties: Vec<UnmatchedParty> = sqlx::query_as(
            "SELECT DISTINCT p.party_id, p.identity, p.region_code, p.case_no, p.procuratorate, \
             p.role, p.incident_date, p.approximate_age, p.reported_at \
             FROM unnest($1::text[]) AS k(key) \
             JOIN party_blocks b ON b.key = k.key JOIN party_identities p ON p.party_id = b.party_id \
             WHERE p.clue_id IS NULL AND p.identity IS NOT NULL \
             AND p.reported_at > $3 - make_interval(days => $2)",
        )
        .bind(&keys)
        .bind(self.policy.reverse_correlation_days)
        .bind(self.store.clock().now())
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        if parties.is_empty() {
            return Ok(0);
        }
        let model = self.models.current();
        let mut raised = 0;
        for (party, normalised) in self.opened(parties).await? {
            let score = model
                .model
                .score(&jiuzhu_linkage::compare(&normalised, person), None);
            let origin = if score.probability >= self.policy.thresholds.automatic {
                ClueOrigin::Automatic
            } else if score.probability >= self.policy.thresholds.review {
                ClueOrigin::Review
            } else {
                continue;
            };
            let found = Match {
                person_id,
                probability: score.probability,
                explanation: score.explanation(),
                origin,
                model_version: model.version.clone(),
            };
            if self.raise(&party, &found, REVERSE, "reverse").await? {
                raised += 1;
            }
        }
        Ok(raised)
    }

    /// The case-to-registry direction for a case's other parties: once a party of `case_no` is
    /// linked, the parties of the case left unmatched are weighed again with what that says of
    /// their candidates (a party reported before its relatives has no such evidence at first).
    /// Returns the clues raised.
    pub async fn correlate_case(&self, case_no: &str) -> Result<usize, AppError> {
        let model = self.models.current();
        if model.model.case_household.is_empty() {
            return Ok(0);
        }
        let pool = self.store.pool();
        let parties: Vec<UnmatchedParty> = sqlx::query_as(
            "SELECT p.party_id, p.identity, p.region_code, p.case_no, p.procuratorate, \
             p.role, p.incident_date, p.approximate_age, p.reported_at FROM party_identities p \
             WHERE p.case_no = $1 AND p.clue_id IS NULL AND p.identity IS NOT NULL",
        )
        .bind(case_no)
        .fetch_all(pool)
        .await
        .map_err(AppError::storage)?;
        if parties.is_empty() {
            return Ok(0);
        }
        let linked = case_links(
            &mut *pool.acquire().await.map_err(AppError::storage)?,
            case_no,
        )
        .await?;
        let mut raised = 0;
        for (party, normalised) in self.opened(parties).await? {
            let found = self
                .index
                .best_match(pool, &normalised, &model, &self.policy, &linked)
                .await
                .map_err(AppError::storage)?;
            if let Some(found) = found
                && self.raise(&party, &found, CASE_CORRELATION, "case").await?
            {
                raised += 1;
            }
        }
        Ok(raised)
    }

    /// Unmatched parties with their identities opened; a party whose key was erased (with the
    /// person it was matched to) is gone.
    async fn opened(
        &self,
        parties: Vec<UnmatchedParty>,
    ) -> Result<Vec<(UnmatchedParty, Normalised)>, AppError> {
        let ids: Vec<Uuid> = parties.iter().map(|p| p.party_id).collect();
        let party_keys = party_keys(&self.store, &self.vault, &ids).await?;
        let mut opened = Vec::with_capacity(parties.len());
        for party in parties {
            if let Some(normalised) = opened_party(
                &party_keys,
                party.party_id,
                &party.identity,
                party.approximate_age,
                &party.incident_date,
                &party.region_code,
                party.reported_at,
            )? {
                opened.push((party, normalised));
            }
        }
        Ok(opened)
    }

    /// Raises the clue `found` for an unmatched `party` once (`command` and `kind` name the
    /// direction that found it): false when the party got a clue meanwhile, or this one was
    /// raised before.
    async fn raise(
        &self,
        party: &UnmatchedParty,
        found: &Match,
        command: &str,
        kind: &str,
    ) -> Result<bool, AppError> {
        let clue_id = Uuid::now_v7();
        let person_id = found.person_id;
        let pair = format!("{}:{person_id}", party.party_id);
        let call = CommandRequest::internal(command, format!("{kind}:{pair}"));
        let mut work = match self
            .store
            .begin_command(call)
            .await
            .map_err(AppError::from)?
        {
            Begun::Replay(_) => return Ok(false),
            Begun::Fresh(work) => work,
        };
        // One clue per party, whichever direction found it first; an automatic one links the
        // party for its case's other parties.
        let automatic = found.origin == ClueOrigin::Automatic;
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE party_identities SET clue_id = $2, linked_person = $3 \
             WHERE party_id = $1 AND clue_id IS NULL RETURNING party_id",
        )
        .bind(party.party_id)
        .bind(clue_id)
        .bind(automatic.then_some(person_id))
        .fetch_optional(work.connection().await?)
        .await
        .map_err(AppError::storage)?;
        if claimed.is_none() {
            return Ok(false);
        }
        let detected = ClueDetected {
            clue_id: clue_id.to_string(),
            party_id: party.party_id.to_string(),
            case_no: party.case_no.clone(),
            person_id: person_id.to_string(),
            probability: found.probability,
            origin: found.origin.into(),
            explanation: found.explanation.clone(),
            policy_version: self.policy.version.clone(),
            procuratorate: party.procuratorate.clone(),
            role: party.role,
            region_code: party.region_code.clone(),
            model_version: found.model_version.clone(),
        };
        let person_key = detected.person_id.clone();
        work.append(
            &clue_id.to_string(),
            0,
            &person_key,
            &[CluesEvent::ClueDetected(detected)],
        )
        .await
        .map_err(AppError::from)?;
        work.commit(Vec::new()).await.map_err(AppError::from)?;
        tracing::info!(%clue_id, %person_id, kind, "clue detected for an unmatched party");
        Ok(true)
    }
}

const REVERSE: &str = "jiuzhu.clues.v1.ReverseCorrelation";
const CASE_CORRELATION: &str = "jiuzhu.clues.v1.CaseCorrelation";

#[derive(Debug, sqlx::FromRow)]
struct UnmatchedParty {
    party_id: Uuid,
    identity: Vec<u8>,
    region_code: String,
    case_no: String,
    procuratorate: String,
    role: i32,
    incident_date: String,
    approximate_age: i32,
    reported_at: chrono::DateTime<chrono::Utc>,
}
