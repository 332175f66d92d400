//! Follow-up's read models, from its own topic: the visit board (what is due or overdue, by
//! office), recorded visits with their outcomes (trends and effect statistics), and risk flags.

use chrono::NaiveDate;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use jiuzhu_proto::followup::EffectGroup;
use prost::Message;
use sqlx::PgConnection;

use crate::domain::FollowupEvent;
use crate::domain::fen;

fn date(text: &str) -> Result<NaiveDate, ProjectionError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ProjectionError::Rejected(format!("`{text}` is not a date")))
}

#[derive(Debug)]
pub struct VisitBoard;

impl Projection for VisitBoard {
    fn name(&self) -> &str {
        "followup.visit_board"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("followup")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let Some(decoded) = event.event::<FollowupEvent>()? else {
            return Ok(());
        };
        match decoded {
            FollowupEvent::PlanOpened(e) => {
                let plan = ProjectionError::uuid("plan_id", &e.plan_id)?;
                let person = ProjectionError::uuid("person_id", &e.person_id)?;
                for visit in &e.visits {
                    sqlx::query(
                        "INSERT INTO visit_board (plan_id, number, person_id, office, due_date, channel, \
                         region_code) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(plan)
                    .bind(visit.number)
                    .bind(person)
                    .bind(&e.office)
                    .bind(date(&visit.due_date)?)
                    .bind(visit.channel)
                    .bind(&e.region_code)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            FollowupEvent::VisitOverdue(e) => {
                sqlx::query(
                    "UPDATE visit_board SET state = 2 WHERE plan_id = $1 AND number = $2 AND state = 1",
                )
                .bind(ProjectionError::uuid("plan_id", &e.plan_id)?)
                .bind(e.number)
                .execute(conn)
                .await?;
            }
            FollowupEvent::VisitRecorded(e) => {
                let plan = ProjectionError::uuid("plan_id", &e.plan_id)?;
                sqlx::query("UPDATE visit_board SET state = 3 WHERE plan_id = $1 AND number = $2")
                    .bind(plan)
                    .bind(e.number)
                    .execute(&mut *conn)
                    .await?;
                let outcome = e.outcome.clone().unwrap_or_default();
                sqlx::query(
                    "INSERT INTO visit_outcomes (plan_id, number, person_id, visited_on, category, \
                     region_code, methods, months_since_payment, effect_score, trend, \
                     income_change_fen, phq9_change, gad7_change, k10_change, recorded) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(plan)
                .bind(e.number)
                .bind(ProjectionError::uuid("person_id", &e.person_id)?)
                .bind(date(&e.visited_on)?)
                .bind(&e.category)
                .bind(&e.region_code)
                .bind(&e.methods)
                .bind(e.months_since_payment)
                .bind(outcome.effect_score)
                .bind(outcome.trend)
                .bind(outcome.income_change.map_or(0, |m| m.fen))
                .bind(outcome.phq9_change)
                .bind(outcome.gad7_change)
                .bind(outcome.k10_change)
                .bind(e.encode_to_vec())
                .execute(conn)
                .await?;
            }
            FollowupEvent::ReturnToPovertyRiskFlagged(e) => {
                sqlx::query(
                    "INSERT INTO risk_flags (plan_id, visit_number, person_id, reasons) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (plan_id, visit_number) DO UPDATE SET \
                     reasons = ARRAY(SELECT DISTINCT r FROM unnest(risk_flags.reasons || EXCLUDED.reasons) r ORDER BY r)",
                )
                .bind(ProjectionError::uuid("plan_id", &e.plan_id)?)
                .bind(e.visit_number)
                .bind(ProjectionError::uuid("person_id", &e.person_id)?)
                .bind(&e.reasons)
                .execute(conn)
                .await?;
            }
            FollowupEvent::PlanClosed(e) => {
                sqlx::query(
                    "UPDATE visit_board SET state = 4 WHERE plan_id = $1 AND state IN (1, 2)",
                )
                .bind(ProjectionError::uuid("plan_id", &e.plan_id)?)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE visit_board, visit_outcomes, risk_flags")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

#[derive(Debug, sqlx::FromRow)]
struct GroupRow {
    dimension: String,
    value: String,
    visits: i64,
    improved: f64,
    income: f64,
    phq9: f64,
    gad7: f64,
    k10: f64,
    score: f64,
}

/// Effect of relief by relief method, category, county and months since payment: visits, the
/// share of follow-up visits (after the first) that found the person better, the median income
/// change and the mean scale changes since the first visit, and the mean effect score.
pub async fn effect_statistics(pool: &sqlx::PgPool) -> Result<Vec<EffectGroup>, sqlx::Error> {
    let rows: Vec<GroupRow> = sqlx::query_as(
        "WITH g AS ( \
           SELECT 'method' AS dimension, m AS value, v.* FROM visit_outcomes v, unnest(v.methods) m \
           UNION ALL SELECT 'category', v.category, v.* FROM visit_outcomes v \
           UNION ALL SELECT 'region', v.region_code, v.* FROM visit_outcomes v \
           UNION ALL SELECT 'months_since_payment', v.months_since_payment::text, v.* FROM visit_outcomes v) \
         SELECT dimension, value, count(*) AS visits, \
           coalesce(100.0 * count(*) FILTER (WHERE trend = 2) \
             / nullif(count(*) FILTER (WHERE trend <> 1), 0), 0)::float8 AS improved, \
           coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY income_change_fen) \
             FILTER (WHERE trend <> 1), 0)::float8 AS income, \
           coalesce(avg(phq9_change) FILTER (WHERE trend <> 1), 0)::float8 AS phq9, \
           coalesce(avg(gad7_change) FILTER (WHERE trend <> 1), 0)::float8 AS gad7, \
           coalesce(avg(k10_change) FILTER (WHERE trend <> 1), 0)::float8 AS k10, \
           avg(effect_score)::float8 AS score \
         FROM g GROUP BY dimension, value ORDER BY dimension, value",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| EffectGroup {
            dimension: row.dimension,
            value: row.value,
            visits: row.visits,
            improved_percent: row.improved,
            median_income_change: fen(row.income.round() as i64),
            mean_phq9_change: row.phq9,
            mean_gad7_change: row.gad7,
            mean_k10_change: row.k10,
            mean_effect_score: row.score,
        })
        .collect())
}

/// Prometheus gauges: open plans, overdue visits, risk flags by reason, and the effect
/// statistics by relief method.
pub async fn metrics(pool: sqlx::PgPool) -> Result<String, sqlx::Error> {
    use jiuzhu_runtime::metrics::gauge;
    let (open, overdue): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(DISTINCT plan_id) FROM visit_board WHERE state IN (1, 2)), \
         (SELECT count(*) FROM visit_board WHERE state = 2)",
    )
    .fetch_one(&pool)
    .await?;
    let reasons: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r, count(*) FROM risk_flags, unnest(reasons) r GROUP BY r ORDER BY r",
    )
    .fetch_all(&pool)
    .await?;
    let groups = effect_statistics(&pool).await?;
    let by_method = |value: fn(&EffectGroup) -> f64| -> Vec<(Vec<(&str, String)>, f64)> {
        groups
            .iter()
            .filter(|g| g.dimension == "method")
            .map(|g| (vec![("method", g.value.clone())], value(g)))
            .collect()
    };
    let reason_samples: Vec<(Vec<(&str, String)>, f64)> = reasons
        .into_iter()
        .map(|(reason, n)| (vec![("reason", reason)], n as f64))
        .collect();
    Ok([
        gauge(
            "jiuzhu_followup_plans_open",
            "Follow-up plans with visits to come.",
            &[(vec![], open as f64)],
        ),
        gauge(
            "jiuzhu_followup_visits_overdue",
            "Visits past their due date and not made.",
            &[(vec![], overdue as f64)],
        ),
        gauge(
            "jiuzhu_followup_risk_flags",
            "Return-to-poverty flags by reason.",
            &reason_samples,
        ),
        gauge(
            "jiuzhu_followup_improved_ratio",
            "Share (0 to 1) of follow-up visits that found the person better, by relief method.",
            &by_method(|g| g.improved_percent / 100.0),
        ),
        gauge(
            "jiuzhu_followup_effect_score_mean",
            "Mean effect score, by relief method.",
            &by_method(|g| g.mean_effect_score),
        ),
    ]
    .concat())
}
