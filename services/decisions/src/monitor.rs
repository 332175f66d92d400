//! Real-time deadline monitoring: every `[deadlines] scan_seconds` the monitor reads the case
//! board for current stages past or near their due date and raises `StageDeadlineBreached` or
//! `StageDeadlineApproaching` on the case. Each alarm is a command with a request id derived
//! from case, stage and the day the stage was entered, and the case itself refuses a second
//! alarm or one for a stage it has left, so an alarm is raised exactly once — across restarts,
//! several monitors, a clock set back, and a board that has not caught up yet. Materials owed
//! after emergency relief are watched the same way (`MaterialsObligationBreached`), and so are
//! referrals a department has not acknowledged by their day (`ReferralOverdue`) and objections
//! to an amount not reviewed by theirs (`ObjectionReviewOverdue`).

use std::time::Duration;

use chrono::{Days, NaiveDate};
use jiuzhu_errors::AppError;
use jiuzhu_proto::decisions::Stage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{DecisionsApi, internal_call, on_case};
use crate::domain::{Alarm, Context, DecisionsEvent, ReliefCase};

/// Alarms raised per scan at most (the next scan takes the rest).
const BATCH: i64 = 1000;

/// The last due date that counts as approaching today.
pub fn approaching_until(context: Context<'_>) -> NaiveDate {
    let days = context.policy.approaching_working_days;
    context
        .calendar
        .add_working_days(context.today, days)
        // Beyond the calendar: calendar days stand in (an overestimate is the safe side).
        .unwrap_or_else(|_| {
            context
                .today
                .checked_add_days(Days::new(u64::from(days) * 2))
                .unwrap_or(context.today)
        })
}

/// Working days from today to `due` (negative when past), calendar days beyond the calendar.
pub fn working_days_left(context: Context<'_>, due: NaiveDate) -> i32 {
    let (from, to, sign) = if due >= context.today {
        (context.today, due, 1)
    } else {
        (due, context.today, -1)
    };
    let days = context
        .calendar
        .working_days_between(from, to)
        .unwrap_or_else(|_| u32::try_from((to - from).num_days()).unwrap_or(0));
    sign * i32::try_from(days).unwrap_or(i32::MAX)
}

#[derive(Debug)]
pub struct Monitor {
    api: DecisionsApi,
}

impl Monitor {
    pub fn new(api: DecisionsApi) -> Self {
        Self { api }
    }

    pub async fn run(self: std::sync::Arc<Self>, every: Duration, shutdown: CancellationToken) {
        // The calendar is read at start: a notice loaded since the deadlines were counted
        // changes provisional ones, once per case and calendar.
        loop {
            match self.recount().await {
                Ok(0) => break,
                Ok(recounted) => tracing::info!(recounted, "provisional deadlines counted again"),
                Err(error) => {
                    tracing::warn!(%error, "recounting provisional deadlines failed; trying again");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                }
            }
        }
        loop {
            match self.scan().await {
                Ok(0) => {}
                Ok(raised) => tracing::info!(raised, "deadline alarms raised"),
                Err(error) => tracing::warn!(%error, "deadline scan failed; trying again"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One scan: the alarms due now, each raised at most once. Returns how many were new.
    pub async fn scan(&self) -> Result<usize, AppError> {
        let rules = self.api.rules.clone();
        let context = rules.now();
        let rows: Vec<(Uuid, i32, NaiveDate, NaiveDate, bool)> = sqlx::query_as(
            "SELECT case_id, stage, entered_on, due_date, due_date < $1 FROM relief_cases \
             WHERE due_date IS NOT NULL AND entered_on IS NOT NULL AND \
             ((NOT breached_raised AND due_date < $1) OR (NOT approaching_raised AND due_date <= $2)) \
             ORDER BY due_date LIMIT $3",
        )
        .bind(context.today)
        .bind(approaching_until(context))
        .bind(BATCH)
        .fetch_all(self.api.store.pool())
        .await
        .map_err(AppError::storage)?;
        let mut raised = 0;
        for (case_id, stage, entered_on, due, breached) in rows {
            let alarm = if breached {
                Alarm::Breached
            } else {
                Alarm::Approaching {
                    working_days_left: working_days_left(context, due),
                }
            };
            let entered_on = entered_on.format("%Y-%m-%d").to_string();
            let kind = if breached { "breached" } else { "approaching" };
            let stage = Stage::try_from(stage).unwrap_or_default();
            let request_id = format!("deadline-{kind}-{case_id}-{}-{entered_on}", stage as i32);
            let new = self
                .raise(request_id, case_id, move |case| {
                    case.deadline(stage, &entered_on, alarm)
                })
                .await?;
            raised += usize::from(new);
        }
        raised += self.obligations(context.today).await?;
        raised += self.referrals(context.today).await?;
        raised += self.objections(context.today).await?;
        Ok(raised)
    }

    /// Counts every provisional due date again on the calendar now loaded; how many changed.
    /// Walks the board once in case order, so cases whose date stays as it was are not asked
    /// again until the calendar changes.
    pub async fn recount(&self) -> Result<usize, AppError> {
        let rules = self.api.rules.clone();
        let mut after = Uuid::nil();
        let mut recounted = 0;
        loop {
            let rows: Vec<(Uuid, i32, NaiveDate)> = sqlx::query_as(
                "SELECT case_id, stage, entered_on FROM relief_cases WHERE due_provisional \
                 AND due_date IS NOT NULL AND entered_on IS NOT NULL AND case_id > $1 \
                 ORDER BY case_id LIMIT $2",
            )
            .bind(after)
            .bind(BATCH)
            .fetch_all(self.api.store.pool())
            .await
            .map_err(AppError::storage)?;
            let Some(last) = rows.last() else {
                return Ok(recounted);
            };
            after = last.0;
            for (case_id, stage, entered_on) in rows {
                let entered_on = entered_on.format("%Y-%m-%d").to_string();
                let request_id = format!(
                    "recount-{case_id}-{stage}-{entered_on}-{}",
                    &rules.calendar_digest[..16.min(rules.calendar_digest.len())]
                );
                let rules = rules.clone();
                let new = self
                    .raise(request_id, case_id, move |case| case.recount(rules.now()))
                    .await?;
                recounted += usize::from(new);
            }
        }
    }

    /// Emergency relief whose owed materials are past their date: the breach, once.
    async fn obligations(&self, today: NaiveDate) -> Result<usize, AppError> {
        self.cases_past(
            "SELECT case_id FROM relief_cases WHERE obligation_due < $1 AND NOT obligation_breached \
             ORDER BY obligation_due LIMIT $2",
            "obligation-breached",
            today,
            |case, _| case.obligation_breached(),
        )
        .await
    }

    /// The cases `query` finds past their day (`$1` today, `$2` the batch): what `alarm` finds on
    /// each, once per case under `<key>-<case>`. How many were new.
    async fn cases_past(
        &self,
        query: &'static str,
        key: &str,
        today: NaiveDate,
        alarm: fn(&ReliefCase, NaiveDate) -> Vec<DecisionsEvent>,
    ) -> Result<usize, AppError> {
        let past: Vec<Uuid> = sqlx::query_scalar(query)
            .bind(today)
            .bind(BATCH)
            .fetch_all(self.api.store.pool())
            .await
            .map_err(AppError::storage)?;
        let mut raised = 0;
        for case_id in past {
            let new = self
                .raise(format!("{key}-{case_id}"), case_id, move |case| {
                    alarm(case, today)
                })
                .await?;
            raised += usize::from(new);
        }
        Ok(raised)
    }

    /// Referrals unanswered past their acknowledgement day: the alarm, once.
    async fn referrals(&self, today: NaiveDate) -> Result<usize, AppError> {
        let overdue: Vec<(String, Uuid)> = sqlx::query_as(
            "SELECT referral_id, case_id FROM referral_board WHERE acknowledge_by < $1 \
             AND NOT answered AND NOT overdue_raised ORDER BY acknowledge_by LIMIT $2",
        )
        .bind(today)
        .bind(BATCH)
        .fetch_all(self.api.store.pool())
        .await
        .map_err(AppError::storage)?;
        let mut raised = 0;
        for (referral_id, case_id) in overdue {
            let request_id = format!("referral-overdue-{referral_id}");
            let new = self
                .raise(request_id, case_id, move |case| {
                    case.referral_overdue(&referral_id, today)
                })
                .await?;
            raised += usize::from(new);
        }
        Ok(raised)
    }

    /// Objections to an amount not reviewed by their day: the alarm, once.
    async fn objections(&self, today: NaiveDate) -> Result<usize, AppError> {
        self.cases_past(
            "SELECT case_id FROM relief_cases WHERE objection_due < $1 \
             AND NOT objection_overdue_raised ORDER BY objection_due LIMIT $2",
            "objection-overdue",
            today,
            ReliefCase::objection_overdue,
        )
        .await
    }

    /// Raises what `alarm` finds on the case, as one idempotent internal command under `key`;
    /// whether it was new.
    async fn raise(
        &self,
        key: String,
        case_id: Uuid,
        alarm: impl Fn(&ReliefCase) -> Vec<DecisionsEvent> + Send + Sync + 'static,
    ) -> Result<bool, AppError> {
        on_case(
            &self.api,
            jiuzhu_access::Actor::Platform,
            internal_call("DeadlineAlarm", key),
            case_id,
            move |case, _| {
                let events = alarm(case);
                let new = !events.is_empty();
                Ok((events, new))
            },
        )
        .await
    }
}
