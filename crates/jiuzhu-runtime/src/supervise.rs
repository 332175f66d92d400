//! Supervision of a service's long-running tasks (the outbox relay, every consumer, the
//! background workers): a task that ends or panics while the service runs is logged, counted,
//! and started again after a backoff (1 s doubling to 60 s, with jitter). Readiness is every
//! task up and every dependency (database, broker) answering: while anything is wrong the
//! service's gRPC health says NOT_SERVING and `/readyz` answers 503 naming it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Makes a fresh run of a task; called again for every restart.
pub type Start = Arc<dyn Fn(CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run that lasted this long was healthy: the next failure starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Which tasks are down now, and the health the service reports because of it.
#[derive(Debug)]
pub struct Supervision {
    health: HealthReporter,
    served: Vec<&'static str>,
    down: Mutex<BTreeSet<String>>,
    /// What the last dependency check found wrong ("database: …", "broker: …").
    dependencies: Mutex<Vec<String>>,
    restarts: std::sync::atomic::AtomicU64,
}

impl Supervision {
    pub fn new(health: HealthReporter, served: Vec<&'static str>) -> Arc<Self> {
        Arc::new(Self {
            health,
            served,
            down: Mutex::new(BTreeSet::new()),
            dependencies: Mutex::new(Vec::new()),
            restarts: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Whether every supervised task is running.
    pub fn all_up(&self) -> bool {
        self.down.lock().is_ok_and(|down| down.is_empty())
    }

    /// Why the service is not ready: tasks down and dependencies not answering; empty when ready.
    pub fn not_ready(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .down()
            .into_iter()
            .map(|task| format!("task down: {task}"))
            .collect();
        if let Ok(dependencies) = self.dependencies.lock() {
            problems.extend(dependencies.iter().cloned());
        }
        problems
    }

    /// Records what the latest dependency check found, and the health that follows.
    pub async fn dependencies_checked(&self, problems: Vec<String>) {
        let changed = match self.dependencies.lock() {
            Ok(mut dependencies) if *dependencies != problems => {
                if problems.is_empty() {
                    tracing::info!("dependencies answer again");
                } else {
                    tracing::warn!(problems = %problems.join("; "), "not ready");
                }
                *dependencies = problems;
                true
            }
            _ => false,
        };
        if changed {
            self.publish().await;
        }
    }

    /// The tasks down now, by name.
    pub fn down(&self) -> Vec<String> {
        self.down
            .lock()
            .map(|down| down.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many times a task was started again since the service started.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn mark(&self, task: &str, up: bool) {
        if let Ok(mut down) = self.down.lock() {
            if up {
                down.remove(task);
            } else {
                down.insert(task.to_owned());
            }
        }
        self.publish().await;
    }

    /// Sets the gRPC health of every served service from readiness.
    async fn publish(&self) {
        let status = if self.not_ready().is_empty() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in &self.served {
            self.health.set_service_status(*name, status).await;
        }
        self.health.set_service_status("", status).await;
    }

    /// Runs `start` under supervision until `shutdown`.
    pub fn spawn(
        self: &Arc<Self>,
        name: String,
        start: Start,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let supervision = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let began = Instant::now();
                // Aborted with the supervisor (a shutdown past its grace aborts this task).
                let run = AbortOnDropHandle::new(tokio::spawn(start(shutdown.child_token())));
                let ended = run.await;
                if shutdown.is_cancelled() {
                    return;
                }
                match ended {
                    Err(error) if error.is_panic() => {
                        tracing::error!(task = %name, "task panicked; it will be started again");
                    }
                    _ => tracing::error!(task = %name, "task stopped; it will be started again"),
                }
                supervision.mark(&name, false).await;
                if began.elapsed() >= HEALTHY_RUN {
                    backoff = FIRST_BACKOFF;
                }
                let wait = backoff + jiuzhu_messaging::jitter(backoff / 2);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                supervision
                    .restarts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(task = %name, "starting the task again");
                supervision.mark(&name, true).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus as Status};
    use tonic_health::server::{HealthReporter, HealthService};

    async fn status(health: &HealthService) -> Option<Status> {
        let answer = health
            .check(tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            }))
            .await
            .ok()?;
        Status::try_from(answer.into_inner().status).ok()
    }

    /// A task that panics is started again after its backoff; while it is down the service is
    /// NOT_SERVING, and SERVING again once it runs.
    #[tokio::test]
    async fn a_task_that_panics_is_started_again_and_health_says_so_meanwhile() {
        let reporter = HealthReporter::new();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        let health = HealthService::from_health_reporter(reporter.clone());
        let supervision = Supervision::new(reporter, Vec::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let start: Start = {
            let runs = Arc::clone(&runs);
            Arc::new(move |shutdown: CancellationToken| {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    assert!(run > 0, "the first run fails");
                    shutdown.cancelled().await;
                })
            })
        };
        let shutdown = CancellationToken::new();
        let task = supervision.spawn("drill".to_owned(), start, shutdown.clone());
        let mut seen_down = false;
        for _ in 0..100 {
            if supervision.down() == ["drill"] {
                seen_down = status(&health).await == Some(Status::NotServing);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen_down, "NOT_SERVING while the task is down");
        for _ in 0..400 {
            if runs.load(Ordering::SeqCst) == 2 && supervision.all_up() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(supervision.all_up());
        assert_eq!(status(&health).await, Some(Status::Serving));
        assert_eq!(supervision.restarts(), 1);
        shutdown.cancel();
        assert!(task.await.is_ok(), "the supervisor ends with the service");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "nothing started after shutdown"
        );
    }

    /// A dependency that does not answer makes the service not ready, named, until it answers.
    #[tokio::test]
    async fn a_dependency_that_does_not_answer_makes_the_service_not_serving_until_it_does() {
        let reporter = HealthReporter::new();
        let health = HealthService::from_health_reporter(reporter.clone());
        let supervision = Supervision::new(reporter, vec!["jiuzhu.drill.v1.Drill"]);
        supervision
            .dependencies_checked(vec!["database: connection refused".to_owned()])
            .await;
        assert_eq!(supervision.not_ready(), ["database: connection refused"]);
        assert_eq!(status(&health).await, Some(Status::NotServing));
        supervision.dependencies_checked(Vec::new()).await;
        assert!(supervision.not_ready().is_empty());
        assert_eq!(status(&health).await, Some(Status::Serving));
    }
}
