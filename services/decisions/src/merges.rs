//! Merges that find double relief: when the registry merges two records (`PersonMerged` on
//! `jiuzhu.registry.events.v1`) that each already had a relief case for the same criminal case,
//! the later case is flagged (`DuplicateReliefFlagged`), once, for the office to recover or
//! explain. New cases are kept to one per person and crime by `OpenCase` itself.

use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::registry::PersonMerged;
use uuid::Uuid;

use crate::app::{DecisionsApi, internal_call, on_case};

jiuzhu_eventstore::event_enum! {
    /// The registry events that may join two persons' cases.
    pub enum Merge {
        PersonMerged(PersonMerged),
    }
}

#[derive(Debug)]
pub struct MergedClaims {
    api: DecisionsApi,
}

impl MergedClaims {
    pub fn new(api: DecisionsApi) -> Self {
        Self { api }
    }
}

impl Reaction for MergedClaims {
    type Events = Merge;

    fn name(&self) -> &str {
        "decisions.merged_claims"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn react(&self, _envelope: &EventEnvelope, event: Merge) -> Result<(), ProjectionError> {
        let Merge::PersonMerged(merged) = event;
        let absorbed = ProjectionError::uuid("person_id", &merged.person_id)?;
        let survivor = ProjectionError::uuid("survivor_id", &merged.survivor_id)?;
        // Both sides of the merge with whatever was merged into each before; this reaction
        // may run before the persons projection has the merge itself.
        let mut conn = self.api.store.pool().acquire().await?;
        let mut records = jiuzhu_persons::records_of(&mut conn, survivor).await?;
        records.extend(jiuzhu_persons::records_of(&mut conn, absorbed).await?);
        records.sort_unstable();
        records.dedup();
        // Each criminal case with cases under more than one record: (later case, earliest).
        let doubles: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT case_id, first_value(case_id) OVER (PARTITION BY case_no ORDER BY case_id) \
             FROM relief_claims WHERE person_id = ANY($1) AND case_id IS NOT NULL",
        )
        .bind(&records)
        .fetch_all(&mut *conn)
        .await?;
        drop(conn);
        for (case_id, first) in doubles.into_iter().filter(|(case, first)| case != first) {
            let (other, person, by) = (
                first.to_string(),
                merged.survivor_id.clone(),
                merged.decided_by.clone(),
            );
            on_case(
                &self.api,
                jiuzhu_access::Actor::Platform,
                internal_call("DuplicateRelief", format!("duplicate-{case_id}-{first}")),
                case_id,
                move |case, _| Ok((case.flag_duplicate(&other, &person, &by)?, ())),
            )
            .await?;
            tracing::warn!(%case_id, other_case_id = %first, "a merge found two relief cases for one person and crime");
        }
        Ok(())
    }
}
