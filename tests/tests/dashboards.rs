//! The dashboards and alert rules of `deploy/observability/` hold against what the services
//! export: every metric a Grafana panel or an alert rule uses is declared on a service's
//! `/metrics`, and a real Prometheus (Debian's `prometheus`, which `.ci/run` installs) scraping
//! the five services loads the rule file, evaluates every rule without error and answers every
//! panel's query. What each query returned is printed (`--no-capture`): the figures the
//! dashboards would draw.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use jiuzhu_testkit::unique_namespace;
use jiuzhu_tests::{Started, TestResult, eventually};
use serde_json::Value as Json;

const OBSERVABILITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/observability");
const WAIT: Duration = Duration::from_secs(90);

/// A query with where it comes from (`cases.json: Open cases by stage`).
struct Query {
    origin: String,
    expr: String,
}

/// Every panel target's expression, with Grafana's interval variable as Prometheus reads it.
fn dashboard_queries() -> anyhow::Result<Vec<Query>> {
    let mut queries = Vec::new();
    let dir = Path::new(OBSERVABILITY).join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    ensure!(files.len() >= 3, "dashboards missing in {}", dir.display());
    let mut uids = BTreeSet::new();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let dashboard: Json = serde_json::from_str(&std::fs::read_to_string(&file)?)
            .with_context(|| format!("{name} is not JSON"))?;
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        ensure!(
            !uid.is_empty() && uids.insert(uid.to_owned()),
            "{name}: uid `{uid}` missing or repeated"
        );
        let panels = dashboard["panels"]
            .as_array()
            .ok_or_else(|| anyhow!("{name}: no panels"))?;
        let mut ids = BTreeSet::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            ensure!(
                ids.insert(panel["id"].as_i64()),
                "{name}: panel id repeated at `{title}`"
            );
            ensure!(
                panel["datasource"]["uid"] == "prometheus",
                "{name}: `{title}` reads no provisioned data source"
            );
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            ensure!(!targets.is_empty(), "{name}: `{title}` has no query");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                queries.push(Query {
                    origin: format!("{name}: {title}"),
                    expr: expr.replace("$__rate_interval", "1m"),
                });
            }
        }
    }
    Ok(queries)
}

/// Every alert rule's expression.
fn alert_queries() -> anyhow::Result<Vec<Query>> {
    let path = Path::new(OBSERVABILITY).join("alerts.yml");
    let rules: Json = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)?;
    let mut queries = Vec::new();
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            queries.push(Query {
                origin: format!("alerts.yml: {}", rule["alert"].as_str().unwrap_or("?")),
                expr: rule["expr"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    ensure!(!queries.is_empty(), "no alert rules in {}", path.display());
    Ok(queries)
}

/// The metric names an expression uses that the services export (`jiuzhu_…` and the standard
/// `process_…`), as written: `…_bucket`, `…_total` included.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["jiuzhu_", "process_"] {
        let mut rest = expr;
        while let Some(start) = rest.find(prefix) {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

/// The metric families a scrape declares (`# TYPE name kind`), with the sample names each has.
fn declared(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "summary" => &["", "_count", "_sum"],
            "info" => &["_info"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{name}{suffix}"));
        }
    }
    names
}

/// `GET path`, refused unless it answers 200: the body.
async fn http_ok(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let (status, body) = jiuzhu_tests::http_get(addr, path).await?;
    ensure!(status.contains(" 200 "), "GET {path}: {status}\n{body}");
    Ok(body)
}

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Debian's Prometheus on a free port, scraping `targets` every second and evaluating the
/// project's alert rules every second; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: PathBuf,
}

impl Prometheus {
    fn start(targets: &[SocketAddr]) -> anyhow::Result<Self> {
        let binary = std::env::var("JIUZHU_PROMETHEUS").unwrap_or_else(|_| "prometheus".to_owned());
        let dir = std::env::temp_dir().join(format!(
            "jiuzhu-prometheus-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(
            Path::new(OBSERVABILITY).join("alerts.yml"),
            dir.join("alerts.yml"),
        )?;
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [alerts.yml]\n\
                 scrape_configs:\n  - job_name: jiuzhu\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], jiuzhu_testkit::free_port()?));
        let child = std::process::Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log"))?)
            .spawn()
            .with_context(|| {
                format!("cannot run `{binary}`: Debian's prometheus package (.ci/run installs it)")
            })?;
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }

    async fn api(&self, path: &str) -> anyhow::Result<Json> {
        let body = http_ok(self.addr, path).await?;
        let answer: Json = serde_json::from_str(&body)?;
        ensure!(answer["status"] == "success", "{path}: {answer}");
        Ok(answer["data"].clone())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn with_metrics<S: jiuzhu_runtime::Service>(ns: &str) -> anyhow::Result<Started> {
    jiuzhu_tests::start_with::<S>(ns, |s| {
        s.service.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_rule_runs_on_prometheus_against_the_services() -> TestResult
{
    let dashboards = dashboard_queries()?;
    let alerts = alert_queries()?;

    let ns = unique_namespace();
    let services = [
        with_metrics::<jiuzhu_registry::Registry>(&ns).await?,
        with_metrics::<jiuzhu_clues::Clues>(&ns).await?,
        with_metrics::<jiuzhu_decisions::Decisions>(&ns).await?,
        with_metrics::<jiuzhu_payments::Payments>(&ns).await?,
        with_metrics::<jiuzhu_followup::Followup>(&ns).await?,
    ];
    let targets: Vec<SocketAddr> = services
        .iter()
        .map(|s| {
            s.running
                .metrics_addr
                .ok_or_else(|| anyhow!("no metrics port"))
        })
        .collect::<Result<_, _>>()?;
    // A call, so that the latency histogram has a series.
    jiuzhu_tests::registry_client(&services[0].running)
        .await?
        .register_person(jiuzhu_tests::registration("dashboards-1", 1))
        .await?;

    // Every metric used is declared by some service.
    let mut exported = BTreeSet::new();
    for target in &targets {
        exported.extend(declared(&http_ok(*target, "/metrics").await?));
    }
    let mut missing = BTreeMap::new();
    for query in dashboards.iter().chain(&alerts) {
        for name in metric_names(&query.expr) {
            if !exported.contains(&name) {
                missing.insert(name, query.origin.clone());
            }
        }
    }
    assert!(missing.is_empty(), "used but not exported: {missing:#?}");

    let prometheus = Prometheus::start(&targets)?;
    eventually("Prometheus to scrape all five services", WAIT, || async {
        let Ok(data) = prometheus.api("/api/v1/targets").await else {
            return Ok(None);
        };
        let active = data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let up = active.iter().filter(|t| t["health"] == "up").count();
        Ok((up == targets.len()).then_some(()))
    })
    .await?;

    // The rule file loads (every rule of alerts.yml), and each rule has been evaluated
    // without error.
    let rules = eventually("every alert rule to be evaluated", WAIT, || async {
        let data = prometheus.api("/api/v1/rules").await?;
        let rules: Vec<Json> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        });
        Ok((rules.len() == alerts.len() && evaluated).then_some(rules))
    })
    .await?;
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "alert {} does not evaluate: {}",
            rule["name"], rule["lastError"]
        );
    }

    // Every panel's query is answered; the panels over figures every installation has (the
    // build, the outbox, the calls: a rate needs two scrapes) draw something. What each
    // returned is printed.
    const ALWAYS: [&str; 7] = [
        "pipeline.json: What is running",
        "pipeline.json: Outbox backlog",
        "pipeline.json: Services answering their scrape",
        "pipeline.json: Calls per second by method",
        "money.json: Disbursements waiting for funds",
        "cases.json: Emergency relief with materials owed past their date",
        "cases.json: Follow-up plans open",
    ];
    for always in ALWAYS {
        assert!(
            dashboards.iter().any(|q| q.origin == always),
            "no panel `{always}`"
        );
    }
    let answers = eventually("the panels to draw", WAIT, || async {
        let mut answers = Vec::new();
        for query in &dashboards {
            let data = prometheus
                .api(&format!("/api/v1/query?query={}", url_encoded(&query.expr)))
                .await
                .with_context(|| format!("{}: `{}`", query.origin, query.expr))?;
            answers.push(data["result"].as_array().cloned().unwrap_or_default());
        }
        let drawn = dashboards
            .iter()
            .zip(&answers)
            .filter(|(q, a)| ALWAYS.contains(&q.origin.as_str()) && !a.is_empty())
            .count();
        Ok((drawn == ALWAYS.len()).then_some(answers))
    })
    .await?;
    for (query, result) in dashboards.iter().zip(&answers) {
        let shown: Vec<String> = result
            .iter()
            .map(|r| {
                let labels: Vec<String> = r["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| !matches!(k.as_str(), "instance" | "job"))
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                format!(
                    "{{{}}} {}",
                    labels.join(","),
                    r["value"][1].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "{} — {}\n    {}",
            query.origin,
            query.expr,
            shown.join("\n    ")
        );
    }
    let up = prometheus
        .api(&format!(
            "/api/v1/query?query={}",
            url_encoded("sum(up{job=\"jiuzhu\"})")
        ))
        .await?;
    assert_eq!(up["result"][0]["value"][1], "5");
    for service in services {
        service.running.stop().await;
    }
    Ok(())
}
