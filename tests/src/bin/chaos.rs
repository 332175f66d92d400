//! `make chaos`: the whole platform as processes (five services, the payment simulator with its
//! journal, the broker with a log on disk, the local PostgreSQL) under a load of relief cases
//! driven from report to payment and follow-up visit, while each part is killed once: kill -9
//! of every service and of the simulator, a PostgreSQL restart, a kill -9 of the broker. The
//! load keeps going through every outage; a client retries what failed for want of a server,
//! with the same request ids, as an agency's system would.
//!
//! At the end it checks, from the simulator's own books and the platform's: every approved
//! case paid exactly once, the ledger balanced, every event applied by every consumer (no
//! partition left behind), no dead letter (the load holds nothing that cannot apply, so a dead
//! letter is an outage misclassified), and how long each part took to recover. The last line:
//! `chaos: cases N, paid-once N, double-paid 0, lost 0, dead-letters-from-outages 0, recover-max Xs`.
//! It exits 1 when any figure that must be zero is not.
//!
//! Sizes from the environment: CHAOS_CASES (300), CHAOS_RATE (cases started per second, 2),
//! CHAOS_CONCURRENCY (cases in flight, 24), CHAOS_GAP (seconds between disruptions, 12),
//! CHAOS_DIR (logs and journal, target/chaos), CHAOS_SPARE (parts left alone, comma-separated:
//! `broker`, `postgresql`, `payment simulator` or a service). `deploy/dev/chaos.sh` starts its
//! broker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiuzhu_demo::seed::Resident;
use jiuzhu_demo::{DemoError, Platform};
use jiuzhu_proto::clues::GetLinkageIndexStatusRequest;
use jiuzhu_proto::gateway::simulator_service_client::SimulatorServiceClient;
use jiuzhu_proto::gateway::{ListPaymentsRequest, PaymentOutcome};
use jiuzhu_proto::payments::ListDisbursementsRequest;
use jiuzhu_testkit::{ServiceProcess, TestDatabase, free_port, kafka_brokers, unique_namespace};
use jiuzhu_tests::{bench_setting, registration};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use jiuzhu_tests::SERVICES;
const REGION: &str = "520102";
const PROCURATORATE: &str = "贵阳市南明区人民检察院";
const FEN: i64 = 1_200_000;
/// How long one case may take through every outage before it counts as lost.
const CASE_LIMIT: Duration = Duration::from_secs(900);
/// How long a part may take to recover before the run gives up on it.
const RECOVERY_LIMIT: Duration = Duration::from_secs(300);
/// How long the platform may take, once the load is done, to apply everything.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Service(&'static str),
    Simulator,
    Postgres,
    Broker,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Service(name) => write!(f, "{name}"),
            Part::Simulator => write!(f, "payment simulator"),
            Part::Postgres => write!(f, "postgresql"),
            Part::Broker => write!(f, "broker"),
        }
    }
}

/// The order things break in: payments first, while approvals are being paid.
const DISRUPTIONS: [Part; 8] = [
    Part::Service("payments"),
    Part::Simulator,
    Part::Service("decisions"),
    Part::Postgres,
    Part::Service("clues"),
    Part::Broker,
    Part::Service("registry"),
    Part::Service("followup"),
];

/// What became of one case of the load.
#[derive(Debug)]
enum Driven {
    /// Reported, referred, decided, paid and visited.
    Visited { case_id: String },
    /// The screening left no clue (not an error: not every victim is eligible).
    ScreenedOut,
    /// Stopped at `step`; `approved` if its decision was approved before that.
    Lost {
        step: String,
        error: String,
        case_id: Option<String>,
        approved: bool,
    },
}

/// Errors a client sees while a part is down, and how often.
#[derive(Default)]
struct Retries(Mutex<BTreeMap<String, u64>>);

impl Retries {
    fn note(&self, kind: String) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(kind).or_default() += 1;
        }
    }

    fn summary(&self) -> String {
        self.0
            .lock()
            .map(|counts| {
                counts
                    .iter()
                    .map(|(kind, n)| format!("{kind} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }
}

/// The kind of a failure an outage causes (retried), or `None` for one it does not.
fn outage_kind(error: &DemoError) -> Option<String> {
    use tonic::Code;
    match error {
        DemoError::Unreachable { .. } => Some("unreachable".to_owned()),
        DemoError::TimedOut(..) => Some("waited too long".to_owned()),
        DemoError::Refused(status) => match status.code() {
            Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Internal => Some(format!("{:?}", status.code())),
            _ => None,
        },
        DemoError::Tls(_) | DemoError::Unexpected(_) => None,
    }
}

/// Runs `call` until it succeeds, retrying what an outage causes (same request ids, so no
/// second effect) until `deadline`.
async fn step<T, F, Fut>(
    retries: &Retries,
    what: &str,
    deadline: Instant,
    mut call: F,
) -> Result<T, (String, String)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DemoError>>,
{
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) => match outage_kind(&error) {
                Some(kind) if Instant::now() < deadline => {
                    retries.note(kind);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                _ => return Err((what.to_owned(), error.to_string())),
            },
        }
    }
}

/// One case of the load, from the case-handling system's report to the first visit.
async fn drive(platform: &Platform, retries: &Retries, n: usize, resident: &Resident) -> Driven {
    let deadline = Instant::now() + CASE_LIMIT;
    let tag = format!("chaos-{n}");
    let mut case_id = None;
    let mut approved = false;
    let walked: Result<Option<String>, (String, String)> = async {
        let person_id = step(retries, "find the person", deadline, || {
            platform.find_person(&resident.resident_id)
        })
        .await?;
        let victim = jiuzhu_demo::seed::victim_of(resident, true);
        let case_no = format!("(2026)黔0102刑初{}号", 1000 + n);
        let reported = step(retries, "report the victim", deadline, || {
            platform.report_victim(&tag, &case_no, PROCURATORATE, &victim)
        })
        .await?;
        let Some(clue) = reported.clue else {
            return Ok(None);
        };
        step(retries, "confirm the clue", deadline, || {
            platform.confirm_if_awaiting_review(&tag, &clue)
        })
        .await?;
        let opened = step(retries, "refer the clue", deadline, || {
            platform.refer(&tag, &clue.clue_id)
        })
        .await?;
        case_id = Some(opened.clone());
        step(retries, "complete and accept", deadline, || {
            platform.complete_and_accept(&tag, &opened)
        })
        .await?;
        step(retries, "review", deadline, || {
            platform.review(&tag, &opened)
        })
        .await?;
        let card = u64::try_from(100_000 + n).unwrap_or(u64::MAX);
        step(retries, "register the payee", deadline, || {
            platform.register_payee(&tag, &person_id, &resident.full_name, card)
        })
        .await?;
        let proposed = step(retries, "propose", deadline, || {
            platform.propose(&tag, &opened, FEN)
        })
        .await?;
        step(retries, "approve", deadline, || {
            platform.approve(&tag, &opened, &proposed.required_approver)
        })
        .await?;
        approved = true;
        step(retries, "be paid", deadline, || platform.paid(&opened)).await?;
        let plan = step(retries, "open the plan", deadline, || {
            platform.plan(&opened)
        })
        .await?;
        step(retries, "record the first visit", deadline, || {
            platform.record_first_visit(&tag, &plan, 300_000, [1, 1, 1, 1, 0, 0, 0, 0, 0])
        })
        .await?;
        Ok(Some(opened))
    }
    .await;
    match walked {
        Ok(Some(case_id)) => Driven::Visited { case_id },
        Ok(None) => Driven::ScreenedOut,
        Err((step, error)) => Driven::Lost {
            step,
            error,
            case_id,
            approved,
        },
    }
}

/// The platform as processes, and how to break and mend each part.
struct Rig {
    dir: PathBuf,
    namespace: String,
    environments: BTreeMap<&'static str, Vec<(String, String)>>,
    ports: BTreeMap<&'static str, u16>,
    processes: BTreeMap<&'static str, ServiceProcess>,
    simulator_port: u16,
    simulator: Option<ServiceProcess>,
    databases: BTreeMap<&'static str, TestDatabase>,
    platform: Platform,
    canaries: usize,
}

impl Rig {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        let namespace = unique_namespace();
        let ports = jiuzhu_tests::service_ports()?;
        let simulator_port = free_port()?;
        let simulator_endpoint = format!("https://127.0.0.1:{simulator_port}");
        let (databases, environments) = jiuzhu_tests::process_environments(
            &ports,
            &jiuzhu_tests::ProcessOptions {
                namespace: &namespace,
                otlp: "",
                max_connections: 8,
                instance_prefix: "chaos",
                provider: &simulator_endpoint,
                provider_poll_ms: 50,
                resend_after_ms: 3000,
                // As deploy/config/default.toml has it (Kafka's default), not the tests' 10 s.
                extra: vec![(
                    "JIUZHU__CONSUMER__SESSION_TIMEOUT_MS".to_owned(),
                    "45000".to_owned(),
                )],
            },
        )
        .await?;
        let port = |service: &str| ports.get(service).copied().unwrap_or_default();
        let endpoints = jiuzhu_tests::endpoints(&ports);
        let mut processes = BTreeMap::new();
        for service in SERVICES {
            processes.insert(service, spawn_service(dir, &environments, service)?);
        }
        let simulator = spawn_simulator(dir, simulator_port, port("payments"))?;
        wait_serving(dir, &ports, simulator_port, RECOVERY_LIMIT).await?;
        let mut platform = Platform::connect(&jiuzhu_testkit::tls(), &endpoints).await?;
        platform.patience = Duration::from_secs(120);
        let rig = Self {
            dir: dir.to_owned(),
            namespace,
            environments,
            ports,
            processes,
            simulator_port,
            simulator: Some(simulator),
            databases,
            platform,
            canaries: 0,
        };
        Ok(rig)
    }

    /// A new registration crosses registry → broker → clues: the event pipeline works again.
    async fn canary(&mut self, residents: usize) -> anyhow::Result<()> {
        self.canaries += 1;
        let n = self.canaries;
        let request = registration(&format!("{}canary-{n}", self.namespace), n);
        let started = Instant::now();
        let deadline = started + RECOVERY_LIMIT;
        let retries = Retries::default();
        step(&retries, "register the canary", deadline, || async {
            self.platform
                .department()
                .register_person(request.clone())
                .await?;
            Ok(())
        })
        .await
        .map_err(|(what, error)| anyhow::anyhow!("{what}: {error}"))?;
        let wanted = i64::try_from(residents + n)?;
        loop {
            let indexed = self
                .platform
                .clues()
                .get_linkage_index_status(GetLinkageIndexStatusRequest {})
                .await
                .map(|a| a.into_inner().indexed_persons)
                .unwrap_or(0);
            if indexed >= wanted {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the canary registration never reached clue acquisition's index"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Breaks `part` (kill -9, or a restart for PostgreSQL), brings it back, and returns how long
    /// until the platform served and carried events again.
    async fn disrupt(&mut self, part: Part, residents: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        match part {
            Part::Service(service) => {
                if let Some(process) = self.processes.remove(service) {
                    process.kill().await?;
                }
                let process = spawn_service(&self.dir, &self.environments, service)?;
                self.processes.insert(service, process);
            }
            Part::Simulator => {
                if let Some(process) = self.simulator.take() {
                    process.kill().await?;
                }
                let payments_port = self.ports.get("payments").copied().unwrap_or_default();
                self.simulator = Some(spawn_simulator(
                    &self.dir,
                    self.simulator_port,
                    payments_port,
                )?);
            }
            Part::Postgres => {
                let restart = std::env::var("CHAOS_POSTGRES_RESTART").unwrap_or_else(|_| {
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart -m fast"
                        .to_owned()
                });
                shell(&restart)?;
            }
            Part::Broker => {
                let port = kafka_brokers()
                    .rsplit(':')
                    .next()
                    .unwrap_or("29092")
                    .to_owned();
                let cache = std::env::var("JIUZHU_CACHE").unwrap_or_else(|_| {
                    format!(
                        "{}/.cache/jiuzhu",
                        std::env::var("HOME").unwrap_or_default()
                    )
                });
                shell(&format!(
                    "kill -9 $(cat {cache}/broker-{port}.pid) && sleep 1 && bash deploy/dev/broker.sh start {port} >/dev/null"
                ))?;
            }
        }
        wait_serving(&self.dir, &self.ports, self.simulator_port, RECOVERY_LIMIT).await?;
        self.canary(residents).await?;
        Ok(started.elapsed())
    }

    async fn stop(mut self) -> anyhow::Result<BTreeMap<&'static str, TestDatabase>> {
        for service in SERVICES.iter().rev() {
            if let Some(process) = self.processes.remove(service) {
                process.terminate().await?;
            }
        }
        if let Some(simulator) = self.simulator.take() {
            simulator.terminate().await?;
        }
        Ok(self.databases)
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn spawn_service(
    dir: &Path,
    environments: &BTreeMap<&'static str, Vec<(String, String)>>,
    service: &'static str,
) -> anyhow::Result<ServiceProcess> {
    let environment = environments
        .get(service)
        .ok_or_else(|| anyhow::anyhow!("no environment for {service}"))?;
    Ok(ServiceProcess::spawn_logged(
        &format!("jiuzhu-{service}"),
        &["serve"],
        environment,
        Some(&dir.join(format!("{service}.log"))),
    )?)
}

/// The simulator on its fixed port, notifying payments, its payments kept in a journal so a
/// restarted simulator (a bank coming back) remembers what it paid.
fn spawn_simulator(dir: &Path, port: u16, payments_port: u16) -> anyhow::Result<ServiceProcess> {
    let listen = format!("127.0.0.1:{port}");
    let notify = format!("https://127.0.0.1:{payments_port}");
    let tls_dir = jiuzhu_testkit::tls().dir.display().to_string();
    let journal = dir.join("paysim.journal").display().to_string();
    let args = [
        "--listen",
        &listen,
        "--tls-dir",
        &tls_dir,
        "--notify",
        &notify,
        "--asynchronous",
        "--duplicate-notices",
        "1",
        "--journal",
        &journal,
    ];
    Ok(ServiceProcess::spawn_logged(
        "jiuzhu-paysim",
        &args,
        &[],
        Some(&dir.join("paysim.log")),
    )?)
}

/// Whether every service says SERVING and the simulator answers.
async fn all_serving(ports: &BTreeMap<&'static str, u16>, simulator_port: u16) -> bool {
    for port in ports.values() {
        let Ok(channel) = jiuzhu_testkit::channel(addr(*port)).await else {
            return false;
        };
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if !answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
            return false;
        }
    }
    match jiuzhu_testkit::channel(addr(simulator_port)).await {
        Ok(channel) => SimulatorServiceClient::new(channel)
            .list_payments(ListPaymentsRequest::default())
            .await
            .is_ok(),
        Err(_) => false,
    }
}

async fn wait_serving(
    dir: &Path,
    ports: &BTreeMap<&'static str, u16>,
    simulator_port: u16,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !all_serving(ports, simulator_port).await {
        anyhow::ensure!(
            started.elapsed() < limit,
            "the platform did not serve within {limit:?}; logs in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn shell(command: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()?;
    anyhow::ensure!(status.success(), "`{command}` ended {status}");
    Ok(())
}

/// Every consumer's checkpoints in every service's database: (consumer, topic, partition) →
/// the next offset it will apply.
async fn checkpoints(
    databases: &BTreeMap<&'static str, TestDatabase>,
) -> anyhow::Result<BTreeMap<(String, String, i32), i64>> {
    let mut found = BTreeMap::new();
    for database in databases.values() {
        let pool = sqlx::PgPool::connect(&database.url).await?;
        let rows: Vec<(String, String, i32, i64)> =
            sqlx::query_as("SELECT consumer, topic, partition, next_offset FROM checkpoints")
                .fetch_all(&pool)
                .await?;
        pool.close().await;
        found.extend(rows.into_iter().map(|(c, t, p, next)| ((c, t, p), next)));
    }
    Ok(found)
}

/// The end of every partition of the topics some consumer reads, as the broker has it now.
async fn watermarks(topics: BTreeSet<String>) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", kafka_brokers())
            .set("group.id", "jiuzhu-chaos-watermarks")
            .create()?;
        let mut ends = BTreeMap::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            for found in metadata.topics() {
                for partition in found.partitions() {
                    let (_, high) = consumer.fetch_watermarks(
                        &topic,
                        partition.id(),
                        Duration::from_secs(10),
                    )?;
                    ends.insert((topic.clone(), partition.id()), high);
                }
            }
        }
        Ok(ends)
    })
    .await?
}

/// Waits until every consumer has applied every partition it reads up to where the partition
/// ended when the wait began (services keep writing, so "the end" is a snapshot). Returns what
/// is still behind after `limit`, as (consumer, topic, partition, lag).
async fn settle(
    databases: &BTreeMap<&'static str, TestDatabase>,
    limit: Duration,
) -> anyhow::Result<Vec<(String, String, i32, i64)>> {
    let started = Instant::now();
    let read = checkpoints(databases).await?;
    let consumers: BTreeSet<(String, String)> = read
        .keys()
        .map(|(consumer, topic, _)| (consumer.clone(), topic.clone()))
        .collect();
    let ends = watermarks(consumers.iter().map(|(_, topic)| topic.clone()).collect()).await?;
    loop {
        let read = checkpoints(databases).await?;
        let mut behind = Vec::new();
        for (consumer, topic) in &consumers {
            for ((end_topic, partition), end) in ends.range((topic.clone(), i32::MIN)..) {
                if end_topic != topic {
                    break;
                }
                // A partition a consumer never checkpointed is unread from its start.
                let next = read
                    .get(&(consumer.clone(), topic.clone(), *partition))
                    .copied()
                    .unwrap_or(0);
                if *end > next {
                    behind.push((consumer.clone(), topic.clone(), *partition, end - next));
                }
            }
        }
        if behind.is_empty() || started.elapsed() > limit {
            return Ok(behind);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Dead letters in every service's database, as (service, consumer, reason).
async fn dead_letters(
    databases: &BTreeMap<&'static str, TestDatabase>,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut found = Vec::new();
    for (service, database) in databases {
        let pool = sqlx::PgPool::connect(&database.url).await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT consumer, reason FROM dead_letters ORDER BY id")
                .fetch_all(&pool)
                .await?;
        pool.close().await;
        found.extend(
            rows.into_iter()
                .map(|(consumer, reason)| ((*service).to_owned(), consumer, reason)),
        );
    }
    Ok(found)
}

/// Ledger faults: unbalanced transactions, balances that are not the sum of their entries, and
/// the balance of an account.
async fn ledger(database: &TestDatabase) -> anyhow::Result<(i64, i64, i64, i64)> {
    let pool = sqlx::PgPool::connect(&database.url).await?;
    let unbalanced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries
           GROUP BY transaction_id HAVING sum(fen) <> 0) t",
    )
    .fetch_one(&pool)
    .await?;
    let drifted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_balances b
           FULL JOIN (SELECT account, sum(fen)::BIGINT AS fen FROM ledger_entries GROUP BY account) e
           USING (account)
          WHERE coalesce(b.fen, 0) <> coalesce(e.fen, 0)",
    )
    .fetch_one(&pool)
    .await?;
    let balance = |account: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT fen FROM account_balances WHERE account = $1")
                .bind(account)
                .fetch_optional(&pool)
                .await
                .map(Option::unwrap_or_default)
        }
    };
    let paid = balance(format!("paid:{PROCURATORATE}")).await?;
    let reserved = balance(format!("reserved:{PROCURATORATE}")).await?;
    pool.close().await;
    Ok((unbalanced, drifted, paid, reserved))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cases = usize::try_from(bench_setting("CHAOS_CASES", 300))?;
    let rate = bench_setting("CHAOS_RATE", 2).max(1);
    let concurrency = usize::try_from(bench_setting("CHAOS_CONCURRENCY", 24))?.max(1);
    let gap = Duration::from_secs(bench_setting("CHAOS_GAP", 12));
    let dir =
        std::env::var("CHAOS_DIR").map_or_else(|_| PathBuf::from("target/chaos"), PathBuf::from);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    println!(
        "chaos: {cases} cases at {rate}/s ({concurrency} in flight), a part broken every {}s; logs in {}",
        gap.as_secs(),
        dir.display()
    );

    let mut rig = Rig::start(&dir).await?;
    // Five register persons per case: enough adults with an ID number for every case.
    let registry_port = rig.ports.get("registry").copied().unwrap_or_default();
    let register = jiuzhu_tests::import_register(
        registry_port,
        &dir.join("register.csv"),
        (cases * 5).max(200),
        20,
        REGION,
    )?;
    let adults: Vec<Resident> = register
        .iter()
        .filter(|r| r.resident_id.len() == 18 && r.birth_date.as_str() < "2000")
        .take(cases)
        .cloned()
        .collect();
    anyhow::ensure!(
        adults.len() == cases,
        "the register has only {} adults with an ID number",
        adults.len()
    );
    rig.platform
        .wait_for_linkage_index(i64::try_from(register.len())?)
        .await?;
    let retries = Arc::new(Retries::default());
    let budget = FEN * i64::try_from(cases)? * 2;
    step(
        &retries,
        "allocate the budget",
        Instant::now() + RECOVERY_LIMIT,
        || rig.platform.allocate("chaos", PROCURATORATE, budget),
    )
    .await
    .map_err(|(what, error)| anyhow::anyhow!("{what}: {error}"))?;
    println!(
        "chaos: register of {} imported; load starts",
        register.len()
    );

    // The load: cases started at `rate`, at most `concurrency` in flight.
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let platform = rig.platform.clone();
    let (started_cases, ended_cases) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let progress = tokio::spawn({
        let (started_cases, ended_cases) = (started_cases.clone(), ended_cases.clone());
        let began = Instant::now();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                println!(
                    "chaos: {:>4}s  {} of {cases} cases started, {} ended",
                    began.elapsed().as_secs(),
                    started_cases.load(Ordering::Relaxed),
                    ended_cases.load(Ordering::Relaxed)
                );
            }
        }
    });
    let load = tokio::spawn({
        let retries = retries.clone();
        async move {
            let mut running = tokio::task::JoinSet::new();
            let mut ticker = tokio::time::interval(Duration::from_millis(1000 / rate));
            for (n, resident) in adults.into_iter().enumerate() {
                ticker.tick().await;
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (platform, retries) = (platform.clone(), retries.clone());
                let ended_cases = ended_cases.clone();
                started_cases.fetch_add(1, Ordering::Relaxed);
                running.spawn(async move {
                    let driven = drive(&platform, &retries, n, &resident).await;
                    drop(slot);
                    ended_cases.fetch_add(1, Ordering::Relaxed);
                    driven
                });
            }
            let mut outcomes = Vec::new();
            while let Some(done) = running.join_next().await {
                outcomes.push(done);
            }
            outcomes
        }
    });

    // The disruptions, while the load runs.
    let mut recoveries = Vec::new();
    let skipped = std::env::var("CHAOS_SPARE").unwrap_or_default();
    let spared = |part: &Part| {
        skipped
            .split(',')
            .any(|name| !name.trim().is_empty() && part.to_string() == name.trim())
    };
    for part in DISRUPTIONS {
        if spared(&part) {
            println!("chaos: {part} spared (CHAOS_SPARE)");
            continue;
        }
        tokio::time::sleep(gap).await;
        let took = rig.disrupt(part, register.len()).await?;
        println!(
            "chaos: {part} broken and back in {:.1}s",
            took.as_secs_f64()
        );
        recoveries.push((part, took));
    }
    let outcomes = load.await?;
    progress.abort();
    println!(
        "chaos: load done; client retries through outages: {}",
        retries.summary()
    );

    // What the platform owes: every approved case paid once, every event applied.
    let mut visited = Vec::new();
    let mut lost = Vec::new();
    let mut screened_out = 0;
    for outcome in outcomes {
        match outcome {
            Ok(Driven::Visited { case_id }) => visited.push(case_id),
            Ok(Driven::ScreenedOut) => screened_out += 1,
            Ok(Driven::Lost {
                step,
                error,
                case_id,
                approved,
            }) => {
                println!(
                    "chaos: LOST at `{step}` (case {case_id:?}, approved {approved}): {error}"
                );
                lost.push((case_id, approved));
            }
            Err(panicked) => {
                println!("chaos: LOST: a case's task failed: {panicked}");
                lost.push((None, false));
            }
        }
    }
    let lagging = settle(&rig.databases, SETTLE_LIMIT).await?;
    for (consumer, topic, partition, lag) in &lagging {
        println!("chaos: STUCK {consumer} on {topic}[{partition}], {lag} behind");
    }

    let simulator =
        SimulatorServiceClient::new(jiuzhu_testkit::channel(addr(rig.simulator_port)).await?)
            .list_payments(ListPaymentsRequest::default())
            .await?
            .into_inner()
            .payments;
    let mut paid_keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut provider_paid_fen = 0;
    for payment in &simulator {
        if payment.outcome == PaymentOutcome::Paid as i32 {
            let disbursement = payment
                .idempotency_key
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            *paid_keys.entry(disbursement).or_default() += 1;
            provider_paid_fen += payment.amount.as_ref().map_or(0, |m| m.fen);
        }
    }
    let mut paid_once = 0;
    let mut double_paid = 0;
    let mut unpaid = 0;
    let approved_cases = visited.iter().cloned().chain(
        lost.iter()
            .filter(|(_, approved)| *approved)
            .filter_map(|(id, _)| id.clone()),
    );
    for case_id in approved_cases {
        let disbursements = rig
            .platform
            .payments()
            .list_disbursements(ListDisbursementsRequest {
                case_id: case_id.clone(),
            })
            .await?
            .into_inner()
            .disbursements;
        let times: Vec<usize> = disbursements
            .iter()
            .map(|d| paid_keys.get(&d.disbursement_id).copied().unwrap_or(0))
            .collect();
        if times.iter().any(|&t| t > 1) {
            double_paid += 1;
            println!("chaos: DOUBLE-PAID case {case_id}: paid {times:?} times");
        } else if times.is_empty() || times.contains(&0) {
            unpaid += 1;
            println!("chaos: UNPAID approved case {case_id}");
        } else {
            paid_once += 1;
        }
    }
    let payments_db = rig
        .databases
        .get("payments")
        .ok_or_else(|| anyhow::anyhow!("no payments database"))?;
    let (unbalanced, drifted, ledger_paid, reserved) = ledger(payments_db).await?;
    println!(
        "chaos: ledger: {unbalanced} unbalanced transactions, {drifted} balances off their entries, \
         paid {ledger_paid} fen (provider paid {provider_paid_fen}), {reserved} fen still reserved"
    );
    let dead = dead_letters(&rig.databases).await?;
    for (service, consumer, reason) in &dead {
        println!("chaos: DEAD LETTER in {service} ({consumer}): {reason}");
    }
    let recover_max = recoveries
        .iter()
        .map(|(_, took)| took.as_secs_f64())
        .fold(0.0, f64::max);
    println!(
        "chaos: recoveries: {}",
        recoveries
            .iter()
            .map(|(part, took)| format!("{part} {:.1}s", took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "chaos: {} visited, {screened_out} screened out, {} stopped early, {} partitions behind",
        visited.len(),
        lost.len(),
        lagging.len()
    );
    let databases = rig.stop().await?;
    drop(databases);
    let lost_total = lost.len() + unpaid;
    println!(
        "chaos: cases {cases}, paid-once {paid_once}, double-paid {double_paid}, lost {lost_total}, \
         dead-letters-from-outages {}, recover-max {recover_max:.1}s",
        dead.len()
    );
    let ledger_ok =
        unbalanced == 0 && drifted == 0 && reserved == 0 && ledger_paid == provider_paid_fen;
    if double_paid > 0 || lost_total > 0 || !dead.is_empty() || !lagging.is_empty() || !ledger_ok {
        std::process::exit(1);
    }
    Ok(())
}
