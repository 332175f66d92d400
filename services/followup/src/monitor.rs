//! Missed visits: every `[deadlines] scan_seconds` the monitor reads the visit board for visits
//! past due and not made, and records `VisitOverdue` on their plans. The plan itself refuses a
//! second report of a visit, so each is reported exactly once, across restarts and monitors.

use std::time::Duration;

use futures::FutureExt;
use jiuzhu_errors::AppError;
use jiuzhu_eventstore::CommandRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::FollowupApi;
use crate::domain::FollowupPlan;

/// Plans looked at per scan at most (the next scan takes the rest).
const BATCH: i64 = 1000;

#[derive(Debug)]
pub struct Monitor {
    api: FollowupApi,
}

impl Monitor {
    pub fn new(api: FollowupApi) -> Self {
        Self { api }
    }

    pub async fn run(self: std::sync::Arc<Self>, every: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(error) = self.scan().await {
                tracing::warn!(%error, "visit monitor: will scan again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One scan; returns how many plans had overdue visits recorded.
    pub async fn scan(&self) -> Result<usize, AppError> {
        let today = self.api.clock.today();
        let plans: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT plan_id FROM visit_board WHERE state = 1 AND due_date < $1 LIMIT $2",
        )
        .bind(today)
        .bind(BATCH)
        .fetch_all(self.api.store.pool())
        .await
        .map_err(AppError::storage)?;
        for plan_id in &plans {
            let plan_id = *plan_id;
            let call = CommandRequest::internal(
                "jiuzhu.followup.v1.VisitMonitor",
                format!("overdue-{plan_id}-{today}"),
            );
            self.api
                .store
                .execute(call, AppError::from, move |work| {
                    async move {
                        work.decide_on(&plan_id.to_string(), |plan: &FollowupPlan| {
                            Ok::<_, AppError>(plan.overdue_visits(today))
                        })
                        .await?;
                        Ok(())
                    }
                    .boxed()
                })
                .await?;
        }
        Ok(plans.len())
    }
}
