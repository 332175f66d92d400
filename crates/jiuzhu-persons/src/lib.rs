//! The registry's persons as the other services follow them. The registry alone holds who a
//! person is; the clue, decision, payment and follow-up services need only to know which person
//! ids exist, which were erased, and which record was merged into which, so that a person
//! registered twice is one person everywhere: one relief per crime, one match, one payee, one
//! follow-up. [`RegistryPersons`] keeps that from the registry's events (`PersonRegistered`,
//! `PersonErased`, `PersonMerged`, `PersonUnmerged`) in the service's own `registry_persons`
//! table; [`lookup`] answers for one id with the surviving person (merges can chain), and
//! [`records_of`] gives every record that is one person. An unmerge restores both.

use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::registry::{PersonErased, PersonMerged, PersonRegistered, PersonUnmerged};
use sqlx::PgConnection;
use uuid::Uuid;

/// Migrations of the `registry_persons` table (versions 500..599), for the services that
/// follow the registry's persons.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

jiuzhu_eventstore::event_enum! {
    /// The registry events that say whether a person id stands for a person, and which.
    pub enum PersonFeed {
        PersonRegistered(PersonRegistered),
        PersonErased(PersonErased),
        PersonMerged(PersonMerged),
        PersonUnmerged(PersonUnmerged),
    }
}

/// The projection of the registry's persons into `registry_persons`. Each service that uses it
/// gives it its own name (its consumer group).
#[derive(Debug)]
pub struct RegistryPersons {
    name: String,
}

impl RegistryPersons {
    /// `service` is the following service's name: the projection is `<service>.registry_persons`.
    pub fn new(service: &str) -> Self {
        Self {
            name: format!("{service}.registry_persons"),
        }
    }
}

impl Projection for RegistryPersons {
    fn name(&self) -> &str {
        &self.name
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let Some(feed) = event.event::<PersonFeed>()? else {
            return Ok(());
        };
        match feed {
            PersonFeed::PersonRegistered(e) => {
                let person = ProjectionError::uuid("person_id", &e.person_id)?;
                sqlx::query(
                    "INSERT INTO registry_persons (person_id, registered) VALUES ($1, TRUE) \
                     ON CONFLICT (person_id) DO UPDATE SET registered = TRUE",
                )
                .bind(person)
                .execute(conn)
                .await?;
            }
            PersonFeed::PersonErased(e) => {
                let person = ProjectionError::uuid("person_id", &e.person_id)?;
                sqlx::query(
                    "INSERT INTO registry_persons (person_id, registered, erased) \
                     VALUES ($1, TRUE, TRUE) ON CONFLICT (person_id) DO UPDATE SET erased = TRUE",
                )
                .bind(person)
                .execute(conn)
                .await?;
            }
            PersonFeed::PersonMerged(e) => {
                let absorbed = ProjectionError::uuid("person_id", &e.person_id)?;
                let survivor = ProjectionError::uuid("survivor_id", &e.survivor_id)?;
                // The merge proves both exist, whichever partition's registration comes first.
                sqlx::query(
                    "INSERT INTO registry_persons (person_id, registered, merged_into) \
                     VALUES ($1, TRUE, $2), ($2, TRUE, NULL) \
                     ON CONFLICT (person_id) DO UPDATE SET registered = TRUE, \
                     merged_into = COALESCE(EXCLUDED.merged_into, registry_persons.merged_into)",
                )
                .bind(absorbed)
                .bind(survivor)
                .execute(conn)
                .await?;
            }
            PersonFeed::PersonUnmerged(e) => {
                let absorbed = ProjectionError::uuid("person_id", &e.person_id)?;
                let survivor = ProjectionError::uuid("survivor_id", &e.survivor_id)?;
                sqlx::query(
                    "UPDATE registry_persons SET merged_into = NULL \
                     WHERE person_id = $1 AND merged_into = $2",
                )
                .bind(absorbed)
                .bind(survivor)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE registry_persons")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

/// What the registry's events say about one person id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not registered as far as this service has heard (or not yet).
    Unknown,
    /// A person; `survivor` is the id itself unless it was merged into another record
    /// (following chains of merges to the end).
    Person { survivor: Uuid, erased: bool },
}

/// Longest chain of merges followed: the registry refuses to merge a merged record, so a
/// chain comes only from merging into a record that is merged later; a cycle is impossible
/// there, and this bound keeps a corrupted table from looping.
const MAX_CHAIN: i32 = 64;

/// The standing of `person`: unknown, or the surviving person and whether it was erased.
pub async fn lookup(conn: &mut PgConnection, person: Uuid) -> Result<Standing, sqlx::Error> {
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "WITH RECURSIVE chain (person_id, merged_into, erased, depth) AS ( \
           SELECT person_id, merged_into, erased, 0 FROM registry_persons \
           WHERE person_id = $1 AND registered \
           UNION ALL \
           SELECT p.person_id, p.merged_into, p.erased, c.depth + 1 \
           FROM registry_persons p JOIN chain c ON p.person_id = c.merged_into \
           WHERE c.depth < $2) \
         SELECT person_id, erased FROM chain ORDER BY depth DESC LIMIT 1",
    )
    .bind(person)
    .bind(MAX_CHAIN)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => Standing::Unknown,
        Some((survivor, erased)) => Standing::Person { survivor, erased },
    })
}

/// Every record that is the person `survivor`: itself and all records merged into it,
/// directly or through a chain.
pub async fn records_of(conn: &mut PgConnection, survivor: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE records (person_id, depth) AS ( \
           SELECT $1::uuid, 0 \
           UNION ALL \
           SELECT p.person_id, r.depth + 1 FROM registry_persons p \
           JOIN records r ON p.merged_into = r.person_id WHERE r.depth < $2) \
         SELECT DISTINCT person_id FROM records",
    )
    .bind(survivor)
    .bind(MAX_CHAIN)
    .fetch_all(conn)
    .await
}

/// Every record that is the same person as `person`: the records of its survivor, or only
/// `person` when the registry's events have not named it (yet).
pub async fn same_person(conn: &mut PgConnection, person: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    match lookup(conn, person).await? {
        Standing::Person { survivor, .. } => records_of(conn, survivor).await,
        Standing::Unknown => Ok(vec![person]),
    }
}
