//! Deadline monitoring benchmark: the cost of one monitoring tick with BENCH_CASES (100,000)
//! open cases on the board, of which BENCH_DUE (1,000) real cases have just passed their due
//! date. The idle cases are written straight into the case board; the due ones are opened
//! through the API. Prints the tick that raises the breaches and the idle tick after them; no
//! assertions.
//!
//! `cargo bench -p jiuzhu-tests --bench deadline_scan` (PostgreSQL and the broker as for the
//! tests).

use std::time::{Duration, Instant};

use jiuzhu_decisions::Decisions;
use jiuzhu_decisions::app::{DecisionsApi, Rules};
use jiuzhu_decisions::monitor::Monitor;
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::decisions::{CaseOrigin, OpenCaseRequest};
use jiuzhu_runtime::DeadlineSettings;
use jiuzhu_testkit::unique_namespace;
use jiuzhu_tests::{bench_setting, eventually};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let idle = bench_setting("BENCH_CASES", 100_000);
    let due = bench_setting("BENCH_DUE", 1000);
    let ns = unique_namespace();
    let database = jiuzhu_testkit::fresh_database::<Decisions>().await?;
    let mut settings = jiuzhu_testkit::settings("decisions", &database, &ns);
    settings.deadlines = DeadlineSettings {
        scan_seconds: 86_400,
    };
    settings.clock.start = Some("2026-11-02".to_owned());
    let running = jiuzhu_runtime::start::<Decisions>(settings).await?;
    let mut client = DecisionsServiceClient::new(jiuzhu_testkit::channel(running.grpc_addr).await?);
    // The persons, as the registry announces them; decisions must know them to open a case.
    let persons: Vec<String> = (0..due).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    jiuzhu_tests::announce_registered(&ns, &persons).await?;
    let last = persons.last().cloned().unwrap_or_default();
    eventually(
        "decisions to know the persons",
        Duration::from_secs(300),
        || {
            let pool = running.store.pool().clone();
            let last = last.clone();
            async move {
                let mut conn = pool.acquire().await?;
                let person = uuid::Uuid::parse_str(&last)?;
                Ok(match jiuzhu_persons::lookup(&mut conn, person).await? {
                    jiuzhu_persons::Standing::Unknown => None,
                    jiuzhu_persons::Standing::Person { .. } => Some(()),
                })
            }
        },
    )
    .await?;
    let opening = Instant::now();
    for (n, person) in persons.iter().enumerate() {
        client
            .open_case(OpenCaseRequest {
                request_id: format!("bench-open-{n}"),
                origin: CaseOrigin::Application as i32,
                person_id: person.clone(),
                case_no: format!("(2026)黔0102刑初{n}号"),
                procuratorate: "贵阳市南明区人民检察院".to_owned(),
                region_code: "520102".to_owned(),
                category: "other_in_need".to_owned(),
                applicant_relation: "self".to_owned(),
                opened_by: "bench".to_owned(),
                ..OpenCaseRequest::default()
            })
            .await?;
    }
    eprintln!("opened {due} cases in {:.1?}", opening.elapsed());
    let pool = running.store.pool().clone();
    sqlx::query(
        "INSERT INTO relief_cases (case_id, person_id, procuratorate, region_code, stage, entered_on, \
         due_date, version) SELECT gen_random_uuid(), gen_random_uuid(), 'procuratorate-' || (n % 3000), \
         '520102', 3, DATE '2026-11-01', DATE '2026-11-20' + (n % 400)::int, 2 FROM generate_series(1, $1) AS n",
    )
    .bind(i64::try_from(idle)?)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE relief_cases").execute(&pool).await?;
    eventually(
        "the due cases on the board",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move {
                let on_board: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM relief_cases WHERE due_date = DATE '2026-11-11'",
                )
                .fetch_one(&pool)
                .await?;
                Ok((on_board == i64::try_from(due)?).then_some(()))
            }
        },
    )
    .await?;

    // Ten days later, every due case is past its date.
    let later = Rules::shipped(jiuzhu_clock::Clock::fixed_on(
        chrono::NaiveDate::from_ymd_opt(2026, 11, 12).unwrap_or_default(),
    ))
    .map_err(anyhow::Error::msg)?;
    let monitor = Monitor::new(DecisionsApi::new(running.store.clone(), later, None));
    let started = Instant::now();
    let raised = monitor.scan().await?;
    let raising = started.elapsed();
    eventually(
        "the breaches on the board",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move {
                let flagged: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM relief_cases WHERE breached_raised")
                        .fetch_one(&pool)
                        .await?;
                Ok((flagged == i64::try_from(due)?).then_some(()))
            }
        },
    )
    .await?;
    let mut idle_ticks = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let again = monitor.scan().await?;
        idle_ticks.push(started.elapsed());
        anyhow::ensure!(again == 0, "an idle tick raised {again} alarms");
    }
    idle_ticks.sort();
    println!(
        "deadline tick over {} open cases: raising {raised} breaches {:.1?} ({:.2} ms each); idle tick median {:.2?}, max {:.2?}",
        idle + due,
        raising,
        raising.as_secs_f64() * 1000.0 / raised.max(1) as f64,
        idle_ticks[idle_ticks.len() / 2],
        idle_ticks[idle_ticks.len() - 1],
    );
    running.stop().await;
    Ok(())
}
