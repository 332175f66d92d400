//! Prometheus metrics over plain HTTP (`GET /metrics`, text exposition format 0.0.4) on
//! `[<service>] metrics_listen`. Every service exports its outbox backlog; a service adds its
//! own gauges with `Components::metrics`, computed from its read models at scrape time, so
//! the figures are the projections' own and nothing is kept in memory between scrapes.

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Renders a service's own metrics (exposition text, with `# HELP` and `# TYPE` lines).
pub type Collector =
    Arc<dyn Fn(PgPool) -> BoxFuture<'static, Result<String, sqlx::Error>> + Send + Sync>;

/// One gauge family in exposition text: `samples` are (labels, value).
pub fn gauge(name: &str, help: &str, samples: &[(Vec<(&str, String)>, f64)]) -> String {
    let mut text = format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
    for (labels, value) in samples {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        if labels.is_empty() {
            text.push_str(&format!("{name} {value}\n"));
        } else {
            text.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
        }
    }
    text
}

async fn render(
    service: &str,
    pool: &PgPool,
    collectors: &[Collector],
    restarts: u64,
) -> Result<String, sqlx::Error> {
    let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await?;
    let mut text = gauge(
        "jiuzhu_outbox_unpublished",
        "Events committed but not yet acknowledged by the broker.",
        &[(vec![("service", service.to_owned())], backlog as f64)],
    );
    text.push_str(&gauge(
        "jiuzhu_task_restarts",
        "Times a task (relay, consumer, worker) stopped or panicked and was started again.",
        &[(vec![("service", service.to_owned())], restarts as f64)],
    ));
    let dead: Vec<(Vec<(&str, String)>, f64)> =
        jiuzhu_messaging::dead_letters::open_by_consumer(pool)
            .await?
            .into_iter()
            .map(|(consumer, n)| (vec![("consumer", consumer)], n as f64))
            .collect();
    text.push_str(&gauge(
        "jiuzhu_dead_letters_open",
        "Messages a consumer gave up on, not yet replayed or discarded (`jiuzhu dlq`).",
        &dead,
    ));
    for collector in collectors {
        text.push_str(&collector(pool.clone()).await?);
    }
    Ok(text)
}

/// Serves `/metrics`, `/livez` (the process answers) and `/readyz` (every task up, the database
/// and the broker answering; 503 naming what is not) on `listener` until `shutdown`.
pub fn serve(
    listener: TcpListener,
    service: &'static str,
    pool: PgPool,
    collectors: Vec<Collector>,
    supervision: Arc<crate::supervise::Supervision>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let collectors = Arc::new(collectors);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "metrics: accept failed");
                        continue;
                    }
                },
            };
            let (pool, collectors, supervision) =
                (pool.clone(), collectors.clone(), supervision.clone());
            tokio::spawn(async move {
                let mut request = vec![0u8; 2048];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&request[..read]);
                let plain = |status: &str, body: String| {
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let response = if head.starts_with("GET /livez ") {
                    plain("200 OK", "live\n".to_owned())
                } else if head.starts_with("GET /readyz ") {
                    let problems = supervision.not_ready();
                    if problems.is_empty() {
                        plain("200 OK", "ready\n".to_owned())
                    } else {
                        plain(
                            "503 Service Unavailable",
                            format!("{}\n", problems.join("\n")),
                        )
                    }
                } else if head.starts_with("GET /metrics ") {
                    match render(service, &pool, &collectors, supervision.restarts()).await {
                        Ok(body) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        Err(error) => {
                            tracing::warn!(%error, "metrics: collecting failed");
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                        }
                    }
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    })
}
