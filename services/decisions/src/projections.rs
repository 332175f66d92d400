//! The decisions service's read models, built only from its own topic: the case board (each
//! case's current stage, due date and which alarms were raised) and the stage history.

use chrono::NaiveDate;
use jiuzhu_messaging::{Delivered, Projection, ProjectionError, service_topic};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::DecisionsEvent;

#[derive(Debug)]
pub struct CaseBoard;

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
        let Some(decoded) = event.event::<DecisionsEvent>()? else {
            return Ok(());
        };
        let version = envelope.stream_version;
        match decoded {
            DecisionsEvent::CaseOpened(e) => {
                let person = if e.person_id.is_empty() {
                    Uuid::nil()
                } else {
                    ProjectionError::uuid("person_id", &e.person_id)?
                };
                sqlx::query(
                    "INSERT INTO relief_cases (case_id, person_id, procuratorate, region_code, version) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_id) DO NOTHING",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(person)
                .bind(&e.procuratorate)
                .bind(&e.region_code)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::StageEntered(e) => {
                let case = ProjectionError::uuid("case_id", &e.case_id)?;
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
                     approaching_raised = FALSE, breached_raised = FALSE, version = $5, \
                     due_provisional = $6 WHERE case_id = $1",
                )
                .bind(case)
                .bind(e.stage)
                .bind(entered)
                .bind(date("due_date", &e.due_date)?)
                .bind(version)
                .bind(e.due_provisional)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::StageDeadlineApproaching(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET approaching_raised = TRUE, version = $4 \
                     WHERE case_id = $1 AND stage = $2 AND entered_on = $3 AND version < $4",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
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
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(e.stage)
                .bind(date("entered_on", &e.entered_on)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::StageDeadlineRecounted(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET due_date = $4, due_provisional = $5, version = $6 \
                     WHERE case_id = $1 AND stage = $2 AND entered_on = $3 AND version < $6",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(e.stage)
                .bind(date("entered_on", &e.entered_on)?)
                .bind(date("due_date", &e.due_date)?)
                .bind(e.due_provisional)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::CaseReported(e) => {
                // The report was the closed stage's only work: nothing is due any more.
                sqlx::query(
                    "UPDATE relief_cases SET due_date = NULL, due_provisional = FALSE, version = $2 \
                     WHERE case_id = $1 AND version < $2",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::MaterialsObligationOpened(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET obligation_due = $2, obligation_breached = FALSE, \
                     version = $3 WHERE case_id = $1 AND version < $3",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
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
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::ReferralIssued(e) => {
                sqlx::query(
                    "INSERT INTO referral_board (referral_id, case_id, department, acknowledge_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (referral_id) DO NOTHING",
                )
                .bind(&e.referral_id)
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(&e.department)
                .bind(date("acknowledge_by", &e.acknowledge_by)?)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::ReferralUpdated(e) => {
                sqlx::query("UPDATE referral_board SET answered = TRUE WHERE referral_id = $1")
                    .bind(&e.referral_id)
                    .execute(conn)
                    .await?;
            }
            DecisionsEvent::ReferralOverdue(e) => {
                sqlx::query(
                    "UPDATE referral_board SET overdue_raised = TRUE WHERE referral_id = $1",
                )
                .bind(&e.referral_id)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::ObjectionFiled(e) if e.disputed_amount.is_some() => {
                sqlx::query(
                    "UPDATE relief_cases SET objection_filed_on = $2, objection_due = $3, \
                     objection_overdue_raised = FALSE, version = $4 WHERE case_id = $1 AND version < $4",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(date("filed_on", &e.filed_on)?)
                .bind(date("review_due", &e.review_due)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::ObjectionReviewed(e) => {
                // Only an objection to an amount has a review of its own on the board.
                sqlx::query(
                    "UPDATE relief_cases SET objection_due = NULL, version = $2 \
                     WHERE case_id = $1 AND version < $2",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::ObjectionReviewOverdue(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET objection_overdue_raised = TRUE, version = $2 \
                     WHERE case_id = $1 AND version < $2",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            DecisionsEvent::MaterialsObligationBreached(e) => {
                sqlx::query(
                    "UPDATE relief_cases SET obligation_breached = TRUE, version = $2 \
                     WHERE case_id = $1 AND version < $2",
                )
                .bind(ProjectionError::uuid("case_id", &e.case_id)?)
                .bind(version)
                .execute(conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE relief_cases, stage_history, referral_board")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Dashboard gauges from the case board: open and overdue cases per stage, mean time spent
/// in each stage (seconds, whole calendar days as recorded), emergency relief with materials overdue, objections to amounts and unanswered
/// referrals overdue.
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
        "SELECT stage, (avg(left_on - entered_on) * 86400)::float8 FROM stage_history \
         GROUP BY stage ORDER BY stage",
    )
    .fetch_all(&pool)
    .await?;
    let owed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relief_cases WHERE obligation_due < $1")
            .bind(today)
            .fetch_one(&pool)
            .await?;
    let objections: i64 =
        sqlx::query_scalar("SELECT count(*) FROM relief_cases WHERE objection_due < $1")
            .bind(today)
            .fetch_one(&pool)
            .await?;
    let referrals: Vec<(String, i64)> = sqlx::query_as(
        "SELECT department, count(*) FROM referral_board WHERE NOT answered \
         AND acknowledge_by < $1 GROUP BY department ORDER BY department",
    )
    .bind(today)
    .fetch_all(&pool)
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
            "jiuzhu_relief_stage_mean_duration_seconds",
            "Mean time cases spent in a stage they have left (calendar days, in seconds).",
            &per_stage(&durations),
        ),
        gauge(
            "jiuzhu_relief_obligations_overdue",
            "Emergency relief with owed materials past their date.",
            &[(Vec::new(), owed as f64)],
        ),
        gauge(
            "jiuzhu_relief_amount_objections_overdue",
            "Objections to an approved amount whose review is past its day.",
            &[(Vec::new(), objections as f64)],
        ),
        gauge(
            "jiuzhu_relief_referrals_overdue",
            "Referrals a department has not acknowledged by their day, by department.",
            &referrals
                .iter()
                .map(|(department, n)| (vec![("department", department.clone())], *n as f64))
                .collect::<Vec<_>>(),
        ),
    ]
    .concat())
}

jiuzhu_eventstore::event_enum! {
    /// The registry events a person's household facts come from.
    pub enum RegistryFacts {
        StatusRecorded(jiuzhu_proto::registry::StatusRecorded),
        StatusEnded(jiuzhu_proto::registry::StatusEnded),
        HouseholdMemberAdded(jiuzhu_proto::registry::HouseholdMemberAdded),
        HouseholdMemberRemoved(jiuzhu_proto::registry::HouseholdMemberRemoved),
        HouseholdIncomeRecorded(jiuzhu_proto::registry::HouseholdIncomeRecorded),
    }
}

jiuzhu_eventstore::event_enum! {
    /// The follow-up events that say how a case's relief worked.
    pub enum FollowupOutcomes {
        VisitRecorded(jiuzhu_proto::followup::VisitRecorded),
    }
}

/// Each case's latest follow-up outcome (`case_outcomes`), a label for the recommender's next
/// training (exported with the decided cases).
#[derive(Debug)]
pub struct CaseOutcomes;

impl Projection for CaseOutcomes {
    fn name(&self) -> &str {
        "decisions.case_outcomes"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("followup")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let Some(FollowupOutcomes::VisitRecorded(visit)) = event.event::<FollowupOutcomes>()?
        else {
            return Ok(());
        };
        let case_id = ProjectionError::uuid("case_id", &visit.case_id)?;
        let outcome = visit.outcome.unwrap_or_default();
        let trend = jiuzhu_proto::followup::Trend::try_from(outcome.trend)
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("TREND_")
            .to_ascii_lowercase();
        // The latest visit wins; a redelivered or older visit changes nothing.
        sqlx::query(
            "INSERT INTO case_outcomes (case_id, effect_score, scoring_method, trend, last_visit, \
             months_since_payment, visited_on) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (case_id) DO UPDATE SET \
             effect_score = CASE WHEN EXCLUDED.visited_on >= case_outcomes.visited_on \
               THEN EXCLUDED.effect_score ELSE case_outcomes.effect_score END, \
             scoring_method = EXCLUDED.scoring_method, \
             trend = CASE WHEN EXCLUDED.visited_on >= case_outcomes.visited_on \
               THEN EXCLUDED.trend ELSE case_outcomes.trend END, \
             last_visit = greatest(case_outcomes.last_visit, EXCLUDED.last_visit), \
             months_since_payment = greatest(case_outcomes.months_since_payment, EXCLUDED.months_since_payment), \
             visited_on = greatest(case_outcomes.visited_on, EXCLUDED.visited_on)",
        )
        .bind(case_id)
        .bind(outcome.effect_score)
        .bind(&outcome.scoring_method)
        .bind(trend)
        .bind(visit.number)
        .bind(visit.months_since_payment)
        .bind(&visit.visited_on)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE case_outcomes")
            .execute(conn)
            .await
            .map(|_| ())
    }
}

/// A person's household as the registry describes it: statuses, members, income per head.
#[derive(Debug)]
pub struct PersonFacts;

impl Projection for PersonFacts {
    fn name(&self) -> &str {
        "decisions.person_facts"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("registry")]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &Delivered,
    ) -> Result<(), ProjectionError> {
        let Some(decoded) = event.event::<RegistryFacts>()? else {
            return Ok(());
        };
        match decoded {
            RegistryFacts::StatusRecorded(e) => {
                sqlx::query(
                    "INSERT INTO person_statuses (status_id, person_id, kind, effective_from, \
                     effective_to) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (status_id) DO NOTHING",
                )
                .bind(&e.status_id)
                .bind(ProjectionError::uuid("person_id", &e.person_id)?)
                .bind(e.kind)
                .bind(&e.effective_from)
                .bind(&e.effective_to)
                .execute(conn)
                .await?;
            }
            RegistryFacts::StatusEnded(e) => {
                sqlx::query("UPDATE person_statuses SET effective_to = $2 WHERE status_id = $1")
                    .bind(&e.status_id)
                    .bind(&e.effective_to)
                    .execute(conn)
                    .await?;
            }
            RegistryFacts::HouseholdMemberAdded(e) => {
                sqlx::query(
                    "INSERT INTO household_members (person_id, household_id) VALUES ($1, $2) \
                     ON CONFLICT (person_id) DO UPDATE SET household_id = EXCLUDED.household_id",
                )
                .bind(ProjectionError::uuid("person_id", &e.person_id)?)
                .bind(&e.household_id)
                .execute(conn)
                .await?;
            }
            RegistryFacts::HouseholdMemberRemoved(e) => {
                sqlx::query(
                    "DELETE FROM household_members WHERE person_id = $1 AND household_id = $2",
                )
                .bind(ProjectionError::uuid("person_id", &e.person_id)?)
                .bind(&e.household_id)
                .execute(conn)
                .await?;
            }
            RegistryFacts::HouseholdIncomeRecorded(e) => {
                sqlx::query(
                    "INSERT INTO household_income (household_id, year, income_per_head_fen) \
                     VALUES ($1, $2, $3) ON CONFLICT (household_id) DO UPDATE \
                     SET year = EXCLUDED.year, income_per_head_fen = EXCLUDED.income_per_head_fen \
                     WHERE household_income.year <= EXCLUDED.year",
                )
                .bind(&e.household_id)
                .bind(e.year)
                .bind(e.income_per_head.map_or(0, |m| m.fen))
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("TRUNCATE person_statuses, household_members, household_income")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// What the registry says of a person's household.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Household {
    pub registered_poor: bool,
    pub monitored: bool,
    pub minimum_living: bool,
    pub size: i64,
    pub minors: i64,
    pub income_per_head_fen: Option<i64>,
}

/// Statuses (`person_statuses`) in effect on the date bound as `$on` (YYYY-MM-DD; both ends
/// inclusive; no dates for rows recorded before they were kept).
pub(crate) const IN_EFFECT: &str = "(effective_from = '' OR effective_from <= $on) \
     AND (effective_to = '' OR effective_to >= $on)";

/// The person's household as the registry described it on `on`: statuses in effect that day
/// (the person's and the household's), members and income per head as the registry holds them.
pub async fn household(
    pool: &sqlx::PgPool,
    person: Uuid,
    on: NaiveDate,
) -> Result<Household, sqlx::Error> {
    use jiuzhu_proto::registry::StatusKind;
    let members = "SELECT m.person_id FROM household_members m \
         WHERE m.household_id = (SELECT household_id FROM household_members WHERE person_id = $1) \
         UNION SELECT $1";
    let statuses = format!(
        "person_statuses WHERE person_id IN ({members}) AND {}",
        IN_EFFECT.replace("$on", "$6")
    );
    sqlx::query_as(&format!(
        "SELECT \
         EXISTS (SELECT 1 FROM {statuses} AND kind = $2) AS registered_poor, \
         EXISTS (SELECT 1 FROM {statuses} AND kind = ANY($3)) AS monitored, \
         EXISTS (SELECT 1 FROM {statuses} AND kind = ANY($4)) AS minimum_living, \
         CASE WHEN EXISTS (SELECT 1 FROM household_members WHERE person_id = $1) \
            THEN (SELECT count(*) FROM ({members}) AS h) ELSE 0 END AS size, \
         (SELECT count(DISTINCT person_id) FROM {statuses} AND kind = $5) AS minors, \
         (SELECT income_per_head_fen FROM household_income WHERE household_id = \
            (SELECT household_id FROM household_members WHERE person_id = $1)) AS income_per_head_fen"
    ))
    .bind(person)
    .bind(StatusKind::RegisteredPoor as i32)
    .bind(vec![
        StatusKind::MonitoredUnstable as i32,
        StatusKind::MonitoredMarginal as i32,
        StatusKind::MonitoredSuddenHardship as i32,
    ])
    .bind(vec![
        StatusKind::MinimumLivingAllowance as i32,
        StatusKind::ExtremeHardship as i32,
    ])
    .bind(StatusKind::Minor as i32)
    .bind(on.format("%Y-%m-%d").to_string())
    .fetch_one(pool)
    .await
}

/// The case `department` knows by `reference` (`department_refs`, written with the events that
/// hand the case over).
pub(crate) async fn case_known_as(
    pool: &sqlx::PgPool,
    department: &str,
    reference: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT case_id FROM department_refs WHERE department = $1 AND reference = $2",
    )
    .bind(department)
    .bind(reference)
    .fetch_optional(pool)
    .await
}
