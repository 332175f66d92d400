//! Readiness of a service's dependencies: every few seconds the database and the broker are
//! asked whether they answer, and what is wrong is handed to [`Supervision`], which turns it
//! (with the tasks that are down) into gRPC health and `/readyz`. Probes then read the last
//! answer; they never run a query themselves.

use std::sync::Arc;
use std::time::Duration;

use jiuzhu_messaging::BrokerProbe;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::supervise::Supervision;

/// How often the dependencies are asked, and how long each may take to answer.
const EVERY: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(2);

/// What is wrong with the dependencies now; empty when both answer.
pub async fn check(pool: &PgPool, broker: &BrokerProbe) -> Vec<String> {
    let mut problems = Vec::new();
    match tokio::time::timeout(TIMEOUT, sqlx::query("SELECT 1").execute(pool)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => problems.push(format!("database: {error}")),
        Err(_) => problems.push(format!("database: no answer within {TIMEOUT:?}")),
    }
    if let Err(error) = broker.check(TIMEOUT).await {
        problems.push(format!("broker: {error}"));
    }
    problems
}

/// Checks the dependencies until `shutdown`, reporting each answer to `supervision`.
pub async fn watch(
    pool: PgPool,
    broker: BrokerProbe,
    supervision: Arc<Supervision>,
    shutdown: CancellationToken,
) {
    loop {
        let problems = check(&pool, &broker).await;
        supervision.dependencies_checked(problems).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
