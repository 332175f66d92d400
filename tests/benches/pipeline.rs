//! Pipeline benchmark: what the event pipeline achieves on this machine, next to the raw limits
//! of the same PostgreSQL and broker.
//!
//! 1. Raw limits: plain single-row INSERT commits/s; raw idempotent `acks=all` produce msgs/s.
//! 2. Ours: append+outbox commits/s through the event store; end-to-end events/s and latency
//!    from a registry append to the clues service's committed linkage projection, through the
//!    outbox relay and Kafka.
//! 3. Ours as ratios of the raw limits.
//!
//! Figures only, no timed assertions. Sizes come from environment variables (see [`Sizes`]).
//! Run with `cargo bench -p jiuzhu-tests --bench pipeline`; needs PostgreSQL and the broker as
//! for the end-to-end tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use hdrhistogram::Histogram;
use jiuzhu_clues::Clues;
use jiuzhu_eventstore::{Begun, CommandRequest, EventStore};
use jiuzhu_messaging::{KafkaSettings, ensure_topics, service_topic};
use jiuzhu_proto::common::RegionCode;
use jiuzhu_proto::registry::{Gender, PersonRegistered};
use jiuzhu_registry::Registry;
use jiuzhu_registry::domain::RegistryEvent;
use jiuzhu_registry::sealing;
use jiuzhu_runtime::Service;
use jiuzhu_testkit::{fresh_database, kafka_brokers, unique_namespace};
use jiuzhu_tests::start;
use jiuzhu_vault::Vault;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest wait for any one phase to finish before the benchmark gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

/// Sizes of the runs, each overridable by the environment variable named in `from_env`.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Concurrent writer tasks (BENCH_TASKS).
    tasks: usize,
    /// Plain INSERT commits (BENCH_INSERTS).
    inserts: usize,
    /// Append+outbox commands (BENCH_COMMANDS).
    commands: usize,
    /// Raw produced messages (BENCH_MESSAGES).
    messages: usize,
    /// End-to-end throughput events (BENCH_EVENTS).
    events: usize,
    /// End-to-end latency events (BENCH_LATENCY_EVENTS).
    latency_events: usize,
    /// Appends per second in the latency phase (BENCH_LATENCY_RATE).
    latency_rate: usize,
}

impl Sizes {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            tasks: env_usize("BENCH_TASKS", 8)?.max(1),
            inserts: env_usize("BENCH_INSERTS", 5_000)?.max(1),
            commands: env_usize("BENCH_COMMANDS", 5_000)?.max(1),
            messages: env_usize("BENCH_MESSAGES", 50_000)?.max(1),
            events: env_usize("BENCH_EVENTS", 5_000)?.max(1),
            latency_events: env_usize("BENCH_LATENCY_EVENTS", 500)?.max(1),
            latency_rate: env_usize("BENCH_LATENCY_RATE", 100)?.max(1),
        })
    }
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={value:?} is not a count: {e}")),
        Err(_) => Ok(default),
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A registration as the registry records it, so that envelopes have a realistic size.
fn person_event(person_id: Uuid, n: usize) -> RegistryEvent {
    RegistryEvent::PersonRegistered(PersonRegistered {
        person_id: person_id.to_string(),
        full_name: format!("基准人{n}"),
        gender: Gender::Female as i32,
        birth_date: "1949-12-31".to_owned(),
        resident_id: "11010519491231002X".to_owned(),
        region: Some(RegionCode {
            code: "110105".to_owned(),
        }),
        source_department: "rural_revitalization".to_owned(),
        ..PersonRegistered::default()
    })
}

/// One command appending one event to a new stream named after the person, its identity sealed
/// under a new person key when `vault` is given (as the registry records it). Returns when the
/// transaction has committed.
async fn append_person(
    store: &EventStore,
    vault: Option<&Vault>,
    request_id: &str,
    person_id: Uuid,
    n: usize,
) -> anyhow::Result<()> {
    let Begun::Fresh(mut work) = store
        .begin_command(CommandRequest::new(
            request_id,
            "bench.RegisterPerson",
            request_id.as_bytes(),
        ))
        .await?
    else {
        anyhow::bail!("request {request_id} was replayed");
    };
    let events = vec![person_event(person_id, n)];
    match vault {
        Some(vault) => sealing::append_person(&mut work, vault, person_id, 0, events).await?,
        None => {
            let stream = person_id.to_string();
            work.append(&stream, 0, &stream, &events).await?;
        }
    }
    work.commit(Vec::new()).await?;
    Ok(())
}

/// Runs `job(i)` for i in 0..total from `tasks` concurrent tasks sharing one counter; returns
/// the wall time of the whole run.
async fn run_concurrently<F, Fut>(
    tasks: usize,
    total: usize,
    what: &str,
    job: F,
) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let next = Arc::clone(&next);
        let job = job.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                job(i).await?;
            }
        }));
    }
    let progress = progress_ticker(what, total, Arc::clone(&next));
    let mut outcome = Ok(());
    for handle in handles {
        if let Err(error) = handle.await.map_err(anyhow::Error::from).and_then(|r| r) {
            outcome = Err(error);
        }
    }
    let elapsed = started.elapsed();
    progress.abort();
    outcome.map(|()| elapsed)
}

/// Prints `what: done/total` to stderr every two seconds until aborted.
fn progress_ticker(
    what: &str,
    total: usize,
    done: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    let what = what.to_owned();
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let done = done.load(Ordering::Relaxed).min(total);
            eprintln!(
                "  {what}: {done}/{total} after {:.1}s",
                started.elapsed().as_secs_f64()
            );
        }
    })
}

async fn pool(url: &str, connections: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?)
}

fn connections_for(tasks: usize, extra: usize) -> u32 {
    u32::try_from(tasks + extra).unwrap_or(u32::MAX)
}

struct Machine {
    cpus: usize,
    cpu_model: String,
    postgres: String,
    synchronous_commit: String,
    fsync: String,
}

async fn machine() -> anyhow::Result<Machine> {
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let admin_url = std::env::var("JIUZHU_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = pool(&admin_url, 1).await?;
    let postgres: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&admin)
        .await?;
    let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&admin)
        .await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&admin).await?;
    admin.close().await;
    Ok(Machine {
        cpus,
        cpu_model,
        postgres,
        synchronous_commit,
        fsync,
    })
}

/// 1a. Single-row INSERT commits (autocommit) into a simple table on a fresh database.
async fn plain_inserts(sizes: Sizes) -> anyhow::Result<f64> {
    eprintln!(
        "[1a] plain INSERT: {} commits from {} tasks",
        sizes.inserts, sizes.tasks
    );
    let database = fresh_database::<Registry>().await?;
    let pool = pool(&database.url, connections_for(sizes.tasks, 0)).await?;
    sqlx::query("CREATE TABLE bench_plain (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload BYTEA NOT NULL)")
        .execute(&pool)
        .await?;
    let payload = Arc::new(vec![0x5a_u8; 300]);
    let job_pool = pool.clone();
    let elapsed = run_concurrently(sizes.tasks, sizes.inserts, "plain INSERT", move |_| {
        let pool = job_pool.clone();
        let payload = Arc::clone(&payload);
        async move {
            sqlx::query("INSERT INTO bench_plain (payload) VALUES ($1)")
                .bind(payload.as_slice())
                .execute(&pool)
                .await?;
            Ok(())
        }
    })
    .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_plain")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        usize::try_from(rows)? == sizes.inserts,
        "{rows} rows for {} inserts",
        sizes.inserts
    );
    pool.close().await;
    Ok(per_second(sizes.inserts, elapsed))
}

/// 2a. Event store commands, one event each with its outbox row. Returns commits/s and the mean
/// envelope size in bytes (for the raw produce to send the same sizes).
async fn append_outbox(sizes: Sizes) -> anyhow::Result<(f64, usize)> {
    eprintln!(
        "[2a] append+outbox: {} commands from {} tasks",
        sizes.commands, sizes.tasks
    );
    let database = fresh_database::<Registry>().await?;
    let pool = pool(&database.url, connections_for(sizes.tasks, 0)).await?;
    let store = EventStore::new(pool.clone(), Registry::NAME, "bench.unpublished");
    let elapsed = run_concurrently(sizes.tasks, sizes.commands, "append+outbox", move |i| {
        let store = store.clone();
        async move { append_person(&store, None, &format!("append-{i}"), Uuid::now_v7(), i).await }
    })
    .await?;
    let (rows, envelope): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(avg(octet_length(envelope)), 0)::float8 FROM outbox",
    )
    .fetch_one(&pool)
    .await?;
    anyhow::ensure!(
        usize::try_from(rows)? == sizes.commands,
        "{rows} outbox rows for {} commands",
        sizes.commands
    );
    pool.close().await;
    Ok((
        per_second(sizes.commands, elapsed),
        envelope.round() as usize,
    ))
}

/// 1b. Raw produce: idempotent, `acks=all`, the relay's linger, `payload_len`-byte payloads keyed
/// like the relay keys them, all sent at once and every delivery report awaited.
async fn raw_produce(sizes: Sizes, payload_len: usize) -> anyhow::Result<f64> {
    eprintln!(
        "[1b] raw produce: {} messages of {payload_len} bytes",
        sizes.messages
    );
    let kafka = KafkaSettings {
        brokers: kafka_brokers(),
        topic_prefix: unique_namespace(),
        partitions: 3,
        ..KafkaSettings::default()
    };
    let topic = kafka.topic("bench.raw");
    ensure_topics(&kafka, std::slice::from_ref(&topic)).await?;
    let producer: FutureProducer = kafka
        .client_config()
        .set("client.id", "jiuzhu-bench-raw")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()?;
    let payload = vec![0x5a_u8; payload_len];
    let keys: Vec<String> = (0..64).map(|_| Uuid::now_v7().to_string()).collect();

    // Warm up: metadata, producer id, connections.
    producer
        .send(
            FutureRecord::to(&topic).key(&keys[0]).payload(&payload),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;

    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(sizes.messages);
    for n in 0..sizes.messages {
        let mut record = FutureRecord::to(&topic)
            .key(&keys[n % keys.len()])
            .payload(&payload);
        let delivery = loop {
            match producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(error.into()),
            }
        };
        deliveries.push(delivery);
    }
    eprintln!(
        "  raw produce: all {} queued after {:.1}s, awaiting deliveries",
        sizes.messages,
        started.elapsed().as_secs_f64()
    );
    let mut delivered = 0;
    for outcome in join_all(deliveries).await {
        match outcome {
            Ok(Ok(_)) => delivered += 1,
            Ok(Err((error, _))) => return Err(error.into()),
            Err(_) => anyhow::bail!("a delivery was cancelled"),
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        delivered == sizes.messages,
        "{delivered} of {} delivered",
        sizes.messages
    );
    Ok(per_second(sizes.messages, elapsed))
}

struct EndToEnd {
    events: usize,
    appended_per_second: f64,
    events_per_second: f64,
    drain_after_last_commit: Duration,
    latency: Histogram<u64>,
    latency_rate: usize,
    relay_poll_ms: u64,
    relay_batch: i64,
    consumer_batch: usize,
}

async fn applied_events(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT applied_events FROM linkage_index_stats")
            .fetch_one(pool)
            .await?,
    )
}

/// Polls the clues projection until it has applied `target` events.
async fn wait_applied(pool: &PgPool, target: i64, what: &str) -> anyhow::Result<Instant> {
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        let applied = applied_events(pool).await?;
        if applied >= target {
            return Ok(Instant::now());
        }
        if reported.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "  {what}: applied {applied}/{target} after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        if started.elapsed() > PHASE_LIMIT {
            anyhow::bail!(
                "{what}: only {applied} of {target} events applied after {PHASE_LIMIT:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// 2b. Registry appends (event store + the registry's own outbox relay) to the clues service's
/// linkage projection. The registry runs, so that clues can fetch the sealed identities' keys
/// from its key service as in production; the benchmark appends to its event store directly.
async fn end_to_end(sizes: Sizes) -> anyhow::Result<EndToEnd> {
    const WARMUP: usize = 20;
    let ns = unique_namespace();
    eprintln!("[2b] end to end in namespace {ns}: starting registry and clues");
    let registry = start::<Registry>(&ns).await?;
    let clues = start::<Clues>(&ns).await?;
    let clues_pool = pool(&clues.database.url, 2).await?;

    let settings = jiuzhu_testkit::settings(Registry::NAME, &registry.database, &ns);
    let vault = Arc::new(Vault::from_settings(&settings.vault)?);
    let registry_pool = pool(&registry.database.url, connections_for(sizes.tasks, 2)).await?;
    let topic = settings.kafka.topic(&service_topic(Registry::NAME));
    let store = EventStore::new(registry_pool.clone(), Registry::NAME, topic);

    // Warm up: the consumer joins its group and gets its partitions.
    for n in 0..WARMUP {
        append_person(
            &store,
            Some(&vault),
            &format!("warmup-{n}"),
            Uuid::now_v7(),
            n,
        )
        .await?;
    }
    wait_applied(&clues_pool, WARMUP as i64, "warm-up").await?;

    // Throughput.
    eprintln!(
        "[2b] end-to-end throughput: {} events from {} tasks",
        sizes.events, sizes.tasks
    );
    let target = (WARMUP + sizes.events) as i64;
    let started = Instant::now();
    let writer_store = store.clone();
    let writer_vault = Arc::clone(&vault);
    let writers = tokio::spawn(run_concurrently(
        sizes.tasks,
        sizes.events,
        "end-to-end appends",
        move |i| {
            let store = writer_store.clone();
            let vault = Arc::clone(&writer_vault);
            async move {
                let request = format!("throughput-{i}");
                append_person(&store, Some(&vault), &request, Uuid::now_v7(), i).await
            }
        },
    ));
    let all_applied = wait_applied(&clues_pool, target, "end-to-end throughput").await?;
    let append_time = writers.await??;
    let applied_time = all_applied - started;
    let last_commit = started + append_time;

    // Latency at a moderate rate.
    eprintln!(
        "[2b] end-to-end latency: {} events at {}/s",
        sizes.latency_events, sizes.latency_rate
    );
    let latency = latency_phase(&store, &vault, &clues_pool, sizes).await?;
    let total = (WARMUP + sizes.events + sizes.latency_events) as i64;
    let applied = applied_events(&clues_pool).await?;
    anyhow::ensure!(
        applied == total,
        "the projection applied {applied} events for {total} appended"
    );

    clues_pool.close().await;
    registry_pool.close().await;
    clues.running.stop().await;
    registry.running.stop().await;
    Ok(EndToEnd {
        events: sizes.events,
        appended_per_second: per_second(sizes.events, append_time),
        events_per_second: per_second(sizes.events, applied_time),
        drain_after_last_commit: all_applied.saturating_duration_since(last_commit),
        latency,
        latency_rate: sizes.latency_rate,
        relay_poll_ms: settings.outbox.poll_interval_ms,
        relay_batch: settings.outbox.batch_size,
        consumer_batch: settings.consumer.batch_size,
    })
}

/// Appends one event at a time at `latency_rate`, noting when each commit returned, while a
/// poller looks for the persons in the clues projection every 2 ms and records commit→visible.
async fn latency_phase(
    store: &EventStore,
    vault: &Vault,
    clues_pool: &PgPool,
    sizes: Sizes,
) -> anyhow::Result<Histogram<u64>> {
    let pending: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let appending_done = CancellationToken::new();

    let poller = {
        let pending = Arc::clone(&pending);
        let appending_done = appending_done.clone();
        let pool = clues_pool.clone();
        tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
            let started = Instant::now();
            loop {
                let ids: Vec<Uuid> = pending.lock().await.keys().copied().collect();
                if ids.is_empty() {
                    if appending_done.is_cancelled() {
                        return Ok::<_, anyhow::Error>(histogram);
                    }
                } else {
                    let seen: Vec<Uuid> = sqlx::query_scalar(
                        "SELECT person_id FROM linkage_persons WHERE person_id = ANY($1)",
                    )
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await?;
                    let now = Instant::now();
                    let mut pending = pending.lock().await;
                    for id in seen {
                        if let Some(committed) = pending.remove(&id) {
                            let micros = u64::try_from(now.duration_since(committed).as_micros())
                                .unwrap_or(u64::MAX);
                            histogram.saturating_record(micros.max(1));
                        }
                    }
                }
                if started.elapsed() > PHASE_LIMIT {
                    anyhow::bail!(
                        "{} persons never appeared in the projection",
                        pending.lock().await.len()
                    );
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let period = Duration::from_secs_f64(1.0 / sizes.latency_rate as f64);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut appended = Ok(());
    for n in 0..sizes.latency_events {
        ticks.tick().await;
        let person = Uuid::now_v7();
        if let Err(error) =
            append_person(store, Some(vault), &format!("latency-{n}"), person, n).await
        {
            appended = Err(error);
            break;
        }
        pending.lock().await.insert(person, Instant::now());
    }
    appending_done.cancel();
    let histogram = poller.await??;
    appended?;
    Ok(histogram)
}

fn quantile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let sizes = Sizes::from_env()?;
    let machine = machine().await?;
    let run_started = Instant::now();

    let insert_rate = plain_inserts(sizes).await?;
    let (append_rate, envelope_bytes) = append_outbox(sizes).await?;
    let produce_rate = raw_produce(sizes, envelope_bytes.max(1)).await?;
    let e2e = end_to_end(sizes).await?;
    eprintln!("done in {:.1}s", run_started.elapsed().as_secs_f64());

    println!();
    println!("Jiuzhu pipeline benchmark");
    println!("=========================");
    println!(
        "machine      : {} CPUs ({}), nproc = {}",
        machine.cpus, machine.cpu_model, machine.cpus
    );
    println!(
        "postgresql   : {} at 127.0.0.1:5432, synchronous_commit = {}, fsync = {}",
        machine.postgres, machine.synchronous_commit, machine.fsync
    );
    println!(
        "broker       : {} (partitions = 3, replication = 1)",
        kafka_brokers()
    );
    println!("concurrency  : {} writer tasks", sizes.tasks);
    println!();
    println!("1. Raw limits");
    println!(
        "   a. plain INSERT, 1 row per commit       : {:>10.0} commits/s   ({} commits, 300-byte rows)",
        insert_rate, sizes.inserts
    );
    println!(
        "   b. raw produce, idempotent, acks=all    : {:>10.0} msgs/s      ({} messages of {} bytes)",
        produce_rate, sizes.messages, envelope_bytes
    );
    println!();
    println!("2. Ours");
    println!(
        "   a. append+outbox, 1 event per command   : {:>10.0} commits/s   ({} commands, envelope {} bytes)",
        append_rate, sizes.commands, envelope_bytes
    );
    println!(
        "   b. end to end, append -> clues projection: {:>9.0} events/s    ({} events; appends alone {:.0}/s; last commit -> all applied {:.0} ms)",
        e2e.events_per_second,
        e2e.events,
        e2e.appended_per_second,
        ms(e2e.drain_after_last_commit)
    );
    println!(
        "      latency commit -> visible in projection at {}/s ({} events): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        e2e.latency_rate,
        e2e.latency.len(),
        quantile_ms(&e2e.latency, 0.50),
        quantile_ms(&e2e.latency, 0.90),
        quantile_ms(&e2e.latency, 0.99),
        e2e.latency.max() as f64 / 1000.0
    );
    println!(
        "      (relay poll {} ms, batch {}; consumer batch {}; latency polled every 2 ms)",
        e2e.relay_poll_ms, e2e.relay_batch, e2e.consumer_batch
    );
    println!();
    println!("3. Ours as a share of the raw limits");
    println!(
        "   append+outbox commits/s / plain INSERT commits/s : {:.2}  ({:.0}%)",
        append_rate / insert_rate,
        100.0 * append_rate / insert_rate
    );
    println!(
        "   end-to-end events/s / raw produce msgs/s         : {:.3}  ({:.1}%)",
        e2e.events_per_second / produce_rate,
        100.0 * e2e.events_per_second / produce_rate
    );
    Ok(())
}
