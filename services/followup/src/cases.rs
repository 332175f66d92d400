//! Relief cases as follow-up needs them (`case_facts`), from `jiuzhu.decisions.events.v1`: the
//! office, county and category from the opening (the assessment may set the category), and the
//! approved methods.

use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::decisions::{CaseOpened, DecisionApproved, EligibilityAssessed, ReliefMethod};
use sqlx::PgConnection;

jiuzhu_eventstore::event_enum! {
    /// The decision events follow-up reads.
    pub enum CaseFeed {
        CaseOpened(CaseOpened),
        EligibilityAssessed(EligibilityAssessed),
        DecisionApproved(DecisionApproved),
    }
}

/// A relief method's policy name (`one_time_payment`, `medical`, …).
pub fn method_name(method: i32) -> String {
    ReliefMethod::try_from(method)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("RELIEF_METHOD_")
        .to_ascii_lowercase()
}

#[derive(Debug)]
pub struct CaseFacts;

impl Projection for CaseFacts {
    fn name(&self) -> &str {
        "followup.case_facts"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("decisions")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let Some(feed) = event.event::<CaseFeed>()? else {
            return Ok(());
        };
        match feed {
            CaseFeed::CaseOpened(e) => {
                sqlx::query(
                    "INSERT INTO case_facts (case_id, person_id, procuratorate, region_code, category) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_id) DO UPDATE SET \
                     procuratorate = EXCLUDED.procuratorate, region_code = EXCLUDED.region_code, \
                     category = CASE WHEN EXCLUDED.category = '' THEN case_facts.category ELSE EXCLUDED.category END",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(ProjectionError::uuid("person_id", &e.person_id)?)
                .bind(&e.procuratorate)
                .bind(&e.region_code)
                .bind(&e.category)
                .execute(conn)
                .await?;
            }
            CaseFeed::EligibilityAssessed(e) if !e.category.is_empty() => {
                sqlx::query("UPDATE case_facts SET category = $2 WHERE case_id = $1")
                    .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                    .bind(&e.category)
                    .execute(conn)
                    .await?;
            }
            CaseFeed::EligibilityAssessed(_) => {}
            CaseFeed::DecisionApproved(e) => {
                let methods: Vec<String> = e.methods.iter().map(|m| method_name(*m)).collect();
                sqlx::query(
                    "UPDATE case_facts SET methods = $2, approved = TRUE WHERE case_id = $1",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(&methods)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE case_facts")
            .execute(conn)
            .await
            .map(|_| ())
    }
}
