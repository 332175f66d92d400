//! The decisions service's read models, built only from its own topic: the case board (each
//! case's current stage, due date and which alarms were raised) and the stage history.

use chrono::NaiveDate;
use jiuzhu_eventstore::EventCodec;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::DecisionsEvent;

#[derive(Debug)]
pub struct CaseBoard;

fn uuid(field: &str, text: &str) -> Result<Uuid, ProjectionError> {
    Uuid::parse_str(text)
        .map_err(|_| ProjectionError::Rejected(format!("{field} `{text}` is not a UUID")))
}

fn date(field: &str, text: &str) -> Result<Option<NaiveDate>, ProjectionError> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ProjectionError::Rejected(format!("{field} `{text}` is not a date")))
}

impl Projection for CaseBoard {
    fn name(&self) -> &str {
        "decisions.case_board"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("decisions")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let envelope = &event.envelope;
        let Some(decoded) =
            DecisionsEvent::decode_payload(&envelope.event_type, &envelope.payload)?
        else {
            return Ok(());
        };
        let version = envelope.stream_version;
        match decoded {
            DecisionsEvent::CaseOpened(e) => {
                let person = if e.person_id.is_empty() {
                    Uuid::nil()
                } else {
                    uuid("person_id", &e.person_id)?
                };
                sqlx::query(
                    "INSERT INTO relief_cases (case_id, person_id, procuratorate, region_code, version) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_id) DO NOTHING",
                )
                .bind(uuid("case_id", &e.case_id)?)
                .bind(person)
                .bind(&e.procuratorate)
                .bind(&e.region_code)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::StageEntered(e) => {
                let case = uuid("case_id", &e.case_id)?;
                let entered = date("entered_on", &e.entered_on)?;
                let previous: Option<(i32, Option<NaiveDate>, i64)> = sqlx::query_as(
                    "SELECT stage, entered_on, version FROM relief_cases WHERE case_id = $1 FOR UPDATE",
                )
                .bind(case)
                .fetch_optional(&mut *conn)
                .await?;
                let Some((stage, since, known)) = previous else {
                    return Err(ProjectionError::Rejected(format!(
                        "stage entered for unknown case {case}"
                    )));
                };
                if known >= version {
                    return Ok(());
                }
                if let (Some(since), Some(left)) = (since, entered)
                    && stage != 0
                {
                    sqlx::query(
                        "INSERT INTO stage_history (case_id, stage, entered_on, left_on) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(case)
                    .bind(stage)
                    .bind(since)
                    .bind(left)
                    .execute(&mut *conn)
                    .await?;
                }
                sqlx::query(
                    "UPDATE relief_cases SET stage = $2, entered_on = $3, due_date = $4, \
                     approaching_raised = FALSE, breached_raised = FALSE, version = $5 WHERE case_id = $1",
                )
                .bind(case)
                .bind(e.stage)
                .bind(entered)
                .bind(date("due_date", &e.due_date)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::StageDeadlineApproaching(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET approaching_raised = TRUE, version = $4 \
                     WHERE case_id = $1 AND stage = $2 AND entered_on = $3 AND version < $4",
                )
                .bind(uuid("case_id", &e.case_id)?)
                .bind(e.stage)
                .bind(date("entered_on", &e.entered_on)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::StageDeadlineBreached(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET breached_raised = TRUE, approaching_raised = TRUE, version = $4 \
                     WHERE case_id = $1 AND stage = $2 AND entered_on = $3 AND version < $4",
                )
                .bind(uuid("case_id", &e.case_id)?)
                .bind(e.stage)
                .bind(date("entered_on", &e.entered_on)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::MaterialsObligationOpened(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET obligation_due = $2, obligation_breached = FALSE, \
                     version = $3 WHERE case_id = $1 AND version < $3",
                )
                .bind(uuid("case_id", &e.case_id)?)
                .bind(date("due_date", &e.due_date)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::MaterialsObligationMet(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET obligation_due = NULL, version = $2 \
                     WHERE case_id = $1 AND version < $2",
                )
                .bind(uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::MaterialsObligationBreached(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET obligation_breached = TRUE, version = $2 \
                     WHERE case_id = $1 AND version < $2",
                )
                .bind(uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE relief_cases, stage_history")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Dashboard gauges from the case board: open and overdue cases per stage, mean days spent
/// in each stage, and emergency relief with materials overdue.
pub async fn metrics(pool: sqlx::PgPool, today: NaiveDate) -> Result<String, sqlx::Error> {
    use jiuzhu_runtime::metrics::gauge;
    let stage_label = |stage: i32| {
        crate::policy::stage_name(
            jiuzhu_proto::decisions::Stage::try_from(stage).unwrap_or_default(),
        )
        .to_owned()
    };
    let open: Vec<(i32, i64, i64)> = sqlx::query_as(
        "SELECT stage, count(*), count(*) FILTER (WHERE due_date < $1) FROM relief_cases \
         WHERE stage <> 0 GROUP BY stage ORDER BY stage",
    )
    .bind(today)
    .fetch_all(&pool)
    .await?;
    let durations: Vec<(i32, f64)> = sqlx::query_as(
        "SELECT stage, avg(left_on - entered_on)::float8 FROM stage_history GROUP BY stage ORDER BY stage",
    )
    .fetch_all(&pool)
    .await?;
    let owed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relief_cases WHERE obligation_due < $1")
            .bind(today)
            .fetch_one(&pool)
            .await?;
    let per_stage = |rows: &[(i32, f64)]| -> Vec<(Vec<(&str, String)>, f64)> {
        rows.iter()
            .map(|(stage, value)| (vec![("stage", stage_label(*stage))], *value))
            .collect()
    };
    let counts: Vec<(i32, f64)> = open.iter().map(|(s, n, _)| (*s, *n as f64)).collect();
    let overdue: Vec<(i32, f64)> = open.iter().map(|(s, _, n)| (*s, *n as f64)).collect();
    Ok([
        gauge(
            "jiuzhu_relief_cases",
            "Relief cases by current stage.",
            &per_stage(&counts),
        ),
        gauge(
            "jiuzhu_relief_cases_overdue",
            "Relief cases whose current stage is past its due date.",
            &per_stage(&overdue),
        ),
        gauge(
            "jiuzhu_relief_stage_days_mean",
            "Mean calendar days cases spent in a stage they have left.",
            &per_stage(&durations),
        ),
        gauge(
            "jiuzhu_relief_obligations_overdue",
            "Emergency relief with owed materials past their date.",
            &[(Vec::new(), owed as f64)],
        ),
    ]
    .concat())
}
