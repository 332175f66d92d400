//! Need to know: which offices hold a clue or a relief case naming a person (`person_links`,
//! from the clues and decisions topics). An office reads a person when the person's county is
//! within its jurisdiction, or when one of its clues or cases names them.

use jiuzhu_access::Caller;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::clues::ClueDetected;
use jiuzhu_proto::decisions::CaseOpened;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

jiuzhu_eventstore::event_enum! {
    /// The events that link a person to an office's clue or case.
    pub enum Links {
        ClueDetected(ClueDetected),
        CaseOpened(CaseOpened),
    }
}

#[derive(Debug)]
pub struct PersonLinks;

impl Projection for PersonLinks {
    fn name(&self) -> &str {
        "registry.person_links"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("clues"), service_topic("decisions")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let (kind, reference, person, region) = match event.event::<Links>()? {
            Some(Links::ClueDetected(e)) => ("clue", e.clue_id, e.person_id, e.region_code),
            Some(Links::CaseOpened(e)) => ("case", e.case_id, e.person_id, e.region_code),
            None => return Ok(()),
        };
        // A clue of a party no registry person matched names nobody.
        let Ok(person) = Uuid::parse_str(&person) else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO person_links (person_id, kind, reference, region_code) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(person)
        .bind(kind)
        .bind(reference)
        .bind(region)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE person_links")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

/// The persons among `persons` that a clue or case held within `caller`'s jurisdiction names.
pub async fn linked_for(
    pool: &PgPool,
    caller: &Caller,
    persons: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if caller.nationwide {
        return Ok(persons.to_vec());
    }
    sqlx::query_scalar(
        "SELECT DISTINCT person_id FROM person_links WHERE person_id = ANY($1) \
         AND region_code LIKE $2 || '%'",
    )
    .bind(persons)
    .bind(caller.region_prefix())
    .fetch_all(pool)
    .await
}

/// Refused unless `caller` may read the person `person` of county `region`: the county within
/// its jurisdiction, or a clue or case of its own naming them.
pub async fn check_may_read(
    pool: &PgPool,
    caller: &Caller,
    person: Uuid,
    region: &str,
) -> Result<(), jiuzhu_errors::AppError> {
    if caller.may_see(region) {
        return Ok(());
    }
    let linked = linked_for(pool, caller, &[person])
        .await
        .map_err(jiuzhu_errors::AppError::storage)?;
    if linked.is_empty() {
        // The refusal says what the rule is, as for every other office refusal.
        caller.office_check(region)?;
    }
    Ok(())
}
