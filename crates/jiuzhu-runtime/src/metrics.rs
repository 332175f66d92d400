//! Prometheus metrics over plain HTTP (`GET /metrics`, OpenMetrics text 1.0.0) on
//! `[<service>] metrics_listen`. Every service exports its outbox backlog and the age of its
//! oldest unpublished event, its dead letters, its task restarts, its gRPC calls (a latency
//! histogram by method and status code, kept with the maintained `prometheus-client`) and
//! what it is (`jiuzhu_build_info`), and the standard `process_*` figures; a service adds its own gauges with `Components::metrics`,
//! computed from its read models at scrape time, so those figures are the projections' own.

use std::sync::Arc;

use futures::future::BoxFuture;
use jiuzhu_messaging::BrokerProbe;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Renders a service's own metrics (exposition text, with `# HELP` and `# TYPE` lines).
pub type Collector =
    Arc<dyn Fn(PgPool) -> BoxFuture<'static, Result<String, sqlx::Error>> + Send + Sync>;

/// The metrics a service keeps in memory between scrapes: its gRPC calls and its build.
#[derive(Clone)]
pub struct CallMetrics {
    registry: Arc<Registry>,
    durations: CallDurations,
    published: Arc<std::sync::atomic::AtomicU64>,
}

/// Call durations by (method, status code).
type CallDurations = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

impl std::fmt::Debug for CallMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMetrics").finish_non_exhaustive()
    }
}

fn call_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

impl CallMetrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::default();
        let durations: CallDurations = Family::new_with_constructor(call_histogram);
        registry.register_with_unit(
            "jiuzhu_rpc_server_duration",
            "gRPC calls served, by method and status code: time until the answer's headers.",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "jiuzhu_build",
            "What is running: the service and its version.",
            Info::new(vec![
                ("service".to_owned(), service.to_owned()),
                ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ]),
        );
        Self {
            registry: Arc::new(registry),
            durations,
            published: Arc::default(),
        }
    }

    /// The count of outbox rows the service's relay has published (relay throughput).
    pub fn published_events(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.published)
    }

    /// Counts one call of `path` that ended with `code` after `elapsed`.
    pub fn observe(&self, path: &str, code: i64, elapsed: std::time::Duration) {
        self.durations
            .get_or_create(&vec![
                ("rpc_method".to_owned(), path.to_owned()),
                ("rpc_grpc_status_code".to_owned(), code.to_string()),
            ])
            .observe(elapsed.as_secs_f64());
    }

    /// The families in OpenMetrics text, without the closing `# EOF`.
    fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::warn!("metrics: encoding the call metrics failed");
        }
        text.trim_end_matches("# EOF\n").to_owned()
    }
}

/// One counter family in OpenMetrics text (`<name>_total` samples): `samples` are (labels, value).
pub fn counter(name: &str, help: &str, samples: &[(Vec<(&str, String)>, f64)]) -> String {
    let mut text = format!("# HELP {name} {help}\n# TYPE {name} counter\n");
    text.push_str(&samples_text(&format!("{name}_total"), samples));
    text
}

fn samples_text(name: &str, samples: &[(Vec<(&str, String)>, f64)]) -> String {
    let mut text = String::new();
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

/// One gauge family in exposition text: `samples` are (labels, value).
pub fn gauge(name: &str, help: &str, samples: &[(Vec<(&str, String)>, f64)]) -> String {
    let mut text = format!("# HELP {name} {help}\n# TYPE {name} gauge\n");
    text.push_str(&samples_text(name, samples));
    text
}

/// The standard `process_*` metrics of this process, from Linux's `/proc/self` (nothing where
/// there is no `/proc`): CPU seconds, resident and virtual memory, open and allowed file
/// descriptors, threads and the start time.
fn process_metrics() -> String {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return String::new();
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    // Clock ticks per second and page size are 100 and 4 KiB on every Linux this runs on.
    let (ticks, page) = (100.0, 4096.0);
    let boot: Option<f64> = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    });
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).ok();
    let allowed = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<f64>().ok())
        });
    let mut text = String::new();
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        text.push_str(&counter(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            &[(vec![], (user + system) / ticks)],
        ));
    }
    let gauges = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            field(24).map(|pages| pages * page),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            field(23),
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            open.map(|n| n as f64),
        ),
        (
            "process_max_fds",
            "The most file descriptors the process may open.",
            allowed,
        ),
        ("process_threads", "Threads of the process.", field(20)),
        (
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            boot.zip(field(22))
                .map(|(boot, since)| boot + since / ticks),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            text.push_str(&gauge(name, help, &[(vec![], value)]));
        }
    }
    text
}

/// How far each consumer is behind its topics: the broker's high watermark less the offset
/// the consumer applies next, per (consumer, topic, partition). Nothing when the broker does
/// not answer (readiness says so).
async fn consumer_lag(pool: &PgPool, broker: &BrokerProbe) -> Result<String, sqlx::Error> {
    let checkpoints: Vec<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT consumer, topic, partition, next_offset FROM checkpoints ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    let mut partitions: Vec<(String, i32)> = checkpoints
        .iter()
        .map(|(_, topic, partition, _)| (topic.clone(), *partition))
        .collect();
    partitions.sort();
    partitions.dedup();
    let high: std::collections::HashMap<(String, i32), i64> = broker
        .high_watermarks(partitions, std::time::Duration::from_secs(2))
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partition, high)| ((topic, partition), high))
        .collect();
    let samples: Vec<(Vec<(&str, String)>, f64)> = checkpoints
        .into_iter()
        .filter_map(|(consumer, topic, partition, next)| {
            let high = high.get(&(topic.clone(), partition))?;
            Some((
                vec![
                    ("consumer", consumer),
                    ("topic", topic),
                    ("partition", partition.to_string()),
                ],
                // A broker that undercounts its watermark (the development one) is not behind.
                (high - next).max(0) as f64,
            ))
        })
        .collect();
    Ok(gauge(
        "jiuzhu_consumer_lag_messages",
        "Messages a consumer has still to apply, per topic and partition.",
        &samples,
    ))
}

async fn render(
    service: &str,
    pool: &PgPool,
    collectors: &[Collector],
    restarts: u64,
    published: u64,
) -> Result<String, sqlx::Error> {
    let (backlog, oldest): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    let mut text = gauge(
        "jiuzhu_outbox_unpublished",
        "Events committed but not yet acknowledged by the broker.",
        &[(vec![("service", service.to_owned())], backlog as f64)],
    );
    text.push_str(&gauge(
        "jiuzhu_outbox_oldest_unpublished_seconds",
        "How long the oldest event not yet acknowledged by the broker has waited (0: none).",
        &[(vec![("service", service.to_owned())], oldest.max(0.0))],
    ));
    text.push_str(&process_metrics());
    text.push_str(&counter(
        "jiuzhu_outbox_published",
        "Events the outbox relay has published and the broker acknowledged since the process \
         started (a republished batch after a crash counts again).",
        &[(vec![("service", service.to_owned())], published as f64)],
    ));
    text.push_str(&counter(
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

/// Where the figures come from.
pub struct Sources {
    pub service: &'static str,
    pub pool: PgPool,
    /// The service's own gauges.
    pub collectors: Vec<Collector>,
    pub supervision: Arc<crate::supervise::Supervision>,
    pub calls: CallMetrics,
    pub broker: BrokerProbe,
}

/// Serves `/metrics`, `/livez` (the process answers) and `/readyz` (every task up, the database
/// and the broker answering; 503 naming what is not) on `listener` until `shutdown`.
pub fn serve(
    listener: TcpListener,
    sources: Sources,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let Sources {
        service,
        pool,
        collectors,
        supervision,
        calls,
        broker,
    } = sources;
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
            let (pool, collectors, supervision, calls, broker) = (
                pool.clone(),
                collectors.clone(),
                supervision.clone(),
                calls.clone(),
                broker.clone(),
            );
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
                    let published = calls
                        .published_events()
                        .load(std::sync::atomic::Ordering::Relaxed);
                    match render(
                        service,
                        &pool,
                        &collectors,
                        supervision.restarts(),
                        published,
                    )
                    .await
                    {
                        Ok(body) => {
                            let lag = consumer_lag(&pool, &broker).await.unwrap_or_else(|error| {
                                tracing::warn!(%error, "metrics: consumer lag not read");
                                String::new()
                            });
                            let body = format!("{body}{lag}{}# EOF\n", calls.encode());
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        }
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
