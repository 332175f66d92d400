//! Disbursement benchmark: approved decisions published on the decisions topic and paid through
//! the provider simulator (its own process, zero latency, answering at once), all from one
//! procuratorate's budget (the worst case: every reservation and settlement locks the same
//! ledger rows). First a burst of BENCH_DISBURSEMENTS (2,000) as fast as the producer goes,
//! then BENCH_STEADY (500) at BENCH_RATE (50) per second. Prints disbursements per second end
//! to end and the time from each approval's publication to the provider receiving its payment
//! (p50, p99, max). Payees and budget are set up first and not timed; no assertions.
//!
//! `cargo build --release --bins && cargo bench -p jiuzhu-tests --bench disbursements`
//! (PostgreSQL and the broker as for the tests).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiuzhu_payments::Payments;
use jiuzhu_proto::common::{EventEnvelope, Money};
use jiuzhu_proto::decisions::DecisionApproved;
use jiuzhu_proto::gateway::ListPaymentsRequest;
use jiuzhu_proto::payments::AllocateBudgetRequest;
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::payments::{ORDINARY, Paysim, card, register_payee};
use jiuzhu_tests::{bench_setting, eventually, registration, registry_client, start, start_with};
use prost::{Message, Name};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PROCURATORATE: &str = "贵阳市云岩区人民检察院";

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let count = bench_setting("BENCH_DISBURSEMENTS", 2_000) as usize;
    let steady = bench_setting("BENCH_STEADY", 500) as usize;
    let ns = unique_namespace();
    let simulator = Paysim::spawn(None, &[]).await?;
    let registry = start::<Registry>(&ns).await?;
    let endpoint = simulator.endpoint.clone();
    let payments = start_with::<Payments>(&ns, |s| {
        s.own.set(&jiuzhu_payments::settings::ProviderSettings {
            endpoint,
            poll_ms: 50,
            batch: 200,
            concurrency: 32,
            ..Default::default()
        });
        s.service.max_connections = 16;
    })
    .await?;
    let client =
        PaymentsServiceClient::new(jiuzhu_testkit::channel(payments.running.grpc_addr).await?);

    // Not timed: persons, their payees, and budget.
    let setup = Instant::now();
    let people = registry_client(&registry.running).await?;
    let persons: Vec<String> = futures::stream::iter(0..count + steady)
        .map(|n| {
            let mut people = people.clone();
            async move {
                anyhow::Ok(
                    people
                        .register_person(registration(&format!("bench-person-{n}"), n))
                        .await?
                        .into_inner()
                        .person_id,
                )
            }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    futures::stream::iter(persons.iter().enumerate())
        .map(|(n, person)| {
            let client = client.clone();
            async move {
                register_payee(
                    &client,
                    &format!("bench-{n}"),
                    person,
                    &format!("测试人{n}"),
                    &card(ORDINARY, n as u64),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    client
        .clone()
        .allocate_budget(AllocateBudgetRequest {
            request_id: "bench-budget".to_owned(),
            procuratorate: PROCURATORATE.to_owned(),
            amount: Some(Money {
                fen: 100_000 * (count + steady) as i64,
            }),
            document_reference: "bench".to_owned(),
            allocated_by: "bench".to_owned(),
        })
        .await?;
    let topic = format!("{ns}{}", jiuzhu_messaging::service_topic("decisions"));
    let mut kafka = jiuzhu_messaging::KafkaSettings {
        brokers: kafka_brokers(),
        ..jiuzhu_messaging::KafkaSettings::default()
    };
    kafka.partitions = 3;
    jiuzhu_messaging::ensure_topics(&kafka, std::slice::from_ref(&topic)).await?;
    eprintln!(
        "set up {} persons with payees in {:.1?}",
        count + steady,
        setup.elapsed()
    );

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("linger.ms", "1")
        .create()?;
    let phase = Phase {
        producer: &producer,
        topic: &topic,
        simulator: &simulator,
        pool: payments.running.store.pool(),
    };
    // A burst as fast as the producer goes: throughput, and latency with a queue.
    phase.run("burst", &persons[..count], None).await?;
    // The rest at a steady rate below capacity: latency without a queue.
    let rate = bench_setting("BENCH_RATE", 50);
    phase
        .run(
            &format!("steady {rate}/s"),
            &persons[count..],
            Some(Duration::from_micros(1_000_000 / rate.max(1))),
        )
        .await?;
    let twice = simulator
        .client
        .clone()
        .list_payments(ListPaymentsRequest {})
        .await?
        .into_inner()
        .payments
        .iter()
        .filter(|p| p.pay_calls > 1)
        .count();
    println!("payments asked for more than once: {twice}");
    payments.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

struct Phase<'a> {
    producer: &'a FutureProducer,
    topic: &'a str,
    simulator: &'a Paysim,
    pool: &'a sqlx::PgPool,
}

impl Phase<'_> {
    /// Publishes one approval per person (every `pace`, or back to back), waits until the
    /// provider has them all and payments recorded them paid, and prints the figures.
    async fn run(
        &self,
        label: &str,
        persons: &[String],
        pace: Option<Duration>,
    ) -> anyhow::Result<()> {
        let before: i64 =
            sqlx::query_scalar("SELECT count(*) FROM attempts WHERE outcome = 'paid'")
                .fetch_one(self.pool)
                .await?;
        let count = persons.len();
        let started = Instant::now();
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let epoch_micros = i64::try_from(epoch.as_micros())?;
        let mut published: HashMap<String, i64> = HashMap::with_capacity(count);
        let mut ticks = pace.map(tokio::time::interval);
        for person in persons {
            if let Some(ticks) = ticks.as_mut() {
                ticks.tick().await;
            }
            let case_id = uuid::Uuid::now_v7().to_string();
            let approved = DecisionApproved {
                case_id: case_id.clone(),
                person_id: person.clone(),
                amount: Some(Money { fen: 100_000 }),
                methods: vec![1],
                approver_role: "department_head".to_owned(),
                approved_by: "bench".to_owned(),
                procuratorate: PROCURATORATE.to_owned(),
                ..DecisionApproved::default()
            };
            let envelope = EventEnvelope {
                event_id: uuid::Uuid::now_v7().to_string(),
                event_type: DecisionApproved::full_name(),
                stream_id: case_id.clone(),
                stream_version: 7,
                producer: "decisions".to_owned(),
                payload: approved.encode_to_vec(),
                partition_key: person.clone(),
                ..EventEnvelope::default()
            };
            let at = epoch_micros + i64::try_from(started.elapsed().as_micros())?;
            self.producer
                .send(
                    FutureRecord::to(self.topic)
                        .key(person)
                        .payload(&envelope.encode_to_vec()),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(error, _)| error)?;
            published.insert(case_id, at);
        }
        let publish_time = started.elapsed();
        let wanted = published.len();
        eventually(
            "every payment recorded as paid",
            Duration::from_secs(600),
            || async {
                let paid: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM attempts WHERE outcome = 'paid'")
                        .fetch_one(self.pool)
                        .await?;
                Ok((paid - before >= count as i64).then_some(()))
            },
        )
        .await?;
        let recorded = started.elapsed();
        let cases: HashMap<String, String> = sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid)>(
            "SELECT disbursement_id, case_id FROM disbursement_claims",
        )
        .fetch_all(self.pool)
        .await?
        .into_iter()
        .map(|(d, c)| (d.to_string(), c.to_string()))
        .collect();
        let witnessed = self
            .simulator
            .client
            .clone()
            .list_payments(ListPaymentsRequest {})
            .await?
            .into_inner()
            .payments;
        let mut latency = hdrhistogram::Histogram::<u64>::new(3)?;
        let mut last_received = 0;
        for payment in &witnessed {
            let disbursement = payment
                .idempotency_key
                .split_once(':')
                .map_or("", |(d, _)| d);
            let Some(sent) = cases.get(disbursement).and_then(|c| published.get(c)) else {
                continue;
            };
            last_received = last_received.max(payment.received_at_micros);
            latency.record(u64::try_from((payment.received_at_micros - sent).max(0))?)?;
        }
        let at_provider = Duration::from_micros(u64::try_from(last_received - epoch_micros)?);
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        println!("{label}: {wanted} approvals published in {publish_time:.2?}");
        println!(
            "  all at the provider in {at_provider:.2?} ({:.0} disbursements/s), all recorded paid in {recorded:.2?} ({:.0}/s)",
            count as f64 / at_provider.as_secs_f64(),
            count as f64 / recorded.as_secs_f64()
        );
        println!(
            "  approval published -> provider received ({} measured): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latency.len(),
            ms(0.5),
            ms(0.99),
            latency.max() as f64 / 1000.0
        );
        Ok(())
    }
}
