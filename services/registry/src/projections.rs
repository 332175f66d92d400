//! The registry's read models, built only from `jiuzhu.registry.events.v1`.

use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::RegistryEvent;

/// Persons as `GetPerson` returns them.
#[derive(Debug)]
pub struct Persons;

impl Projection for Persons {
    fn name(&self) -> &str {
        "registry.persons"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let envelope = &event.envelope;
        let Some(decoded) = RegistryEvent::decode_payload(&envelope.event_type, &envelope.payload)?
        else {
            return Ok(());
        };
        match decoded {
            RegistryEvent::PersonRegistered(e) => {
                let person_id = Uuid::parse_str(&e.person_id).map_err(|_| {
                    ProjectionError::Rejected(format!("person_id `{}` is not a UUID", e.person_id))
                })?;
                sqlx::query(
                    "INSERT INTO persons (person_id, full_name, gender, birth_date, resident_id, \
                     region_code, source_department, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (person_id) DO NOTHING",
                )
                .bind(person_id)
                .bind(&e.full_name)
                .bind(e.gender)
                .bind(&e.birth_date)
                .bind(&e.resident_id)
                .bind(e.region.map(|r| r.code).unwrap_or_default())
                .bind(&e.source_department)
                .bind(envelope.stream_version)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE persons").execute(conn).await?;
        Ok(())
    }
}
