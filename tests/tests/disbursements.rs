//! Paying relief exactly once, on real PostgreSQL and the broker, through the provider
//! simulator running as its own process (whose record is the witness): notices that come
//! twice or late, a thousand concurrent duplicate retries across two payments processes, the
//! service killed at each step, and a payment whose answer never came settled from the bank's
//! statement.

use std::collections::BTreeMap;
use std::time::Duration;

use jiuzhu_decisions::Decisions;
use jiuzhu_payments::Payments;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
use jiuzhu_proto::gateway::{ExportStatementRequest, PaymentOutcome};
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::payments::*;
use jiuzhu_registry::Registry;
use jiuzhu_testkit::{ServiceProcess, free_port, unique_namespace};
use jiuzhu_tests::payments::{
    FLAKY, ORDINARY, PROCURATORATE, Paysim, SILENT, allocate, approve_case, approve_in_instalments,
    approver_named, card, disbursement_in, disbursements_when, provider_settings, register_payee,
};
use jiuzhu_tests::{
    TestResult, bad_fields, eventually, registry_client, restart_with, service_env, start,
    start_with, villager,
};
use tonic::Code;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(60);

fn history(disbursement: &Disbursement) -> Vec<&str> {
    disbursement
        .history
        .iter()
        .map(|h| h.event_type.trim_start_matches("jiuzhu.payments.v1."))
        .collect()
}

async fn balances(client: &mut PaymentsServiceClient<Channel>) -> anyhow::Result<(i64, i64, i64)> {
    let b = client
        .get_balances(GetBalancesRequest {
            procuratorate: PROCURATORATE.to_owned(),
        })
        .await?
        .into_inner();
    let fen = |m: Option<Money>| m.map_or(0, |m| m.fen);
    Ok((fen(b.budget), fen(b.reserved), fen(b.paid)))
}

/// Every ledger transaction sums to zero and every balance is the sum of its entries.
async fn ledger_balances(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let (unbalanced, drifted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries GROUP BY \
         transaction_id HAVING sum(fen) <> 0) t), \
         (SELECT count(*) FROM account_balances b WHERE b.fen <> \
          (SELECT coalesce(sum(fen), 0) FROM ledger_entries e WHERE e.account = b.account))",
    )
    .fetch_one(pool)
    .await?;
    assert_eq!((unbalanced, drifted), (0, 0), "the ledger does not balance");
    Ok(())
}

async fn count_events(pool: &sqlx::PgPool, event_type: &str, stream: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1 AND stream_id = $2")
            .bind(format!("jiuzhu.payments.v1.{event_type}"))
            .bind(stream)
            .fetch_one(pool)
            .await?,
    )
}

async fn person(
    registry: &mut jiuzhu_proto::registry::registry_service_client::RegistryServiceClient<Channel>,
    tag: &str,
    name: &str,
) -> anyhow::Result<String> {
    Ok(registry
        .register_person(villager(tag, name, "rural_revitalization"))
        .await?
        .into_inner()
        .person_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_disbursement_is_paid_once_whatever_the_notices_and_a_thousand_duplicate_retries()
-> TestResult {
    let ns = unique_namespace();
    let payments_port = free_port()?;
    let notify = format!("https://127.0.0.1:{payments_port}");
    let payments_addr = std::net::SocketAddr::from(([127, 0, 0, 1], payments_port));
    let simulator = Paysim::spawn(
        Some(&notify),
        &[
            "--asynchronous",
            "--duplicate-notices",
            "2",
            "--late-notice-ms",
            "300",
        ],
    )
    .await?;
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let endpoint = simulator.endpoint.clone();
    let payments = start_with::<Payments>(&ns, |s| {
        provider_settings(s, &endpoint, payments_port, 2_000)
    })
    .await?;
    let mut client = PaymentsServiceClient::new(jiuzhu_testkit::channel(payments_addr).await?);
    let relief =
        DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions.running.grpc_addr).await?);
    let mut people = registry_client(&registry.running).await?;
    allocate(&mut client, "dup", 5_000_000).await?;

    let wang = person(&mut people, "dup-wang", "王秀英").await?;
    let li = person(&mut people, "dup-li", "李春花").await?;
    // Payees are checked: the name must be the person's, the card's check digit right.
    let wrong_name = RegisterPayeeRequest {
        request_id: "dup-wrong-name".to_owned(),
        person_id: wang.clone(),
        name: "王秀兰".to_owned(),
        account_kind: AccountKind::BankCard as i32,
        account: card(ORDINARY, 1),
        institution: "农业银行".to_owned(),
        registered_by: "relief-prosecutor-2".to_owned(),
    };
    let refused = eventually("the person to reach payments", WAIT, || {
        let (mut client, request) = (client.clone(), wrong_name.clone());
        async move {
            match client.register_payee(request).await {
                Err(status) if status.code() == Code::FailedPrecondition => Ok(None),
                Err(status) => Ok(Some(status)),
                Ok(_) => anyhow::bail!("a payee with another person's name was registered"),
            }
        }
    })
    .await?;
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&refused), ["name"]);
    let mut bad_card = wrong_name.clone();
    bad_card.request_id = "dup-bad-card".to_owned();
    bad_card.name = "王秀英".to_owned();
    bad_card.account = format!("{}9", &card(ORDINARY, 1)[..18]);
    if bad_card.account == card(ORDINARY, 1) {
        bad_card.account = format!("{}8", &card(ORDINARY, 1)[..18]);
    }
    let refused = client
        .register_payee(bad_card)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a card with a wrong check digit was taken"))?;
    assert_eq!(bad_fields(&refused), ["account"]);
    let masked = register_payee(&client, "dup-wang", &wang, "王秀英", &card(ORDINARY, 1)).await?;
    assert!(masked.starts_with("6222 **** "), "{masked}");
    register_payee(&client, "dup-li", &li, "李 春花", &card(FLAKY, 1)).await?;

    // Paid through notices (pending answer, then the notice three times and once late).
    let paid_case = approve_case(
        decisions.running.grpc_addr,
        "101",
        &wang,
        PROCURATORATE,
        800_000,
    )
    .await?;
    let paid = disbursement_in(&client, &paid_case, DisbursementState::Succeeded).await?;
    assert!(paid.provider_reference.starts_with("SIM"));
    // The duplicates and the late notice arrive within half a second of the first.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let pool = payments.running.store.pool().clone();
    assert_eq!(
        count_events(&pool, "DisbursementSucceeded", &paid.disbursement_id).await?,
        1
    );
    let witnessed = simulator.payments_for(&paid.disbursement_id).await?;
    assert_eq!(witnessed.len(), 1);
    assert_eq!(witnessed[0].pay_calls, 1);
    // The case follows its payment: distributed, once.
    let distributed =
        jiuzhu_tests::case_when(&relief, &paid_case, "the case to be distributed", |case| {
            case.stage == jiuzhu_proto::decisions::Stage::Distributed as i32
        })
        .await?;
    assert_eq!(distributed.distributed, Some(Money { fen: 800_000 }));
    assert!(!distributed.waiting_for_funds);

    // Living support in three monthly instalments: the first is paid now, the others are
    // ordered and their money held, but not paid before their day.
    let monthly = approve_in_instalments(
        decisions.running.grpc_addr,
        "103",
        &wang,
        PROCURATORATE,
        300_001,
        3,
    )
    .await?;
    let first = disbursement_in(&client, &monthly, DisbursementState::Succeeded).await?;
    let all = client
        .list_disbursements(ListDisbursementsRequest {
            case_id: monthly.clone(),
        })
        .await?
        .into_inner()
        .disbursements;
    let plan: Vec<(i32, i64, i32)> = all
        .iter()
        .map(|d| (d.instalment, d.amount.map_or(0, |m| m.fen), d.state))
        .collect();
    assert_eq!(
        plan,
        [
            (1, 100_001, DisbursementState::Succeeded as i32),
            (2, 100_000, DisbursementState::Reserved as i32),
            (3, 100_000, DisbursementState::Reserved as i32)
        ]
    );
    assert_eq!(first.instalment, 1);

    // The bank refuses the flaky card's first attempt as retryable: it waits for a retry.
    let flaky_case = approve_case(
        decisions.running.grpc_addr,
        "102",
        &li,
        PROCURATORATE,
        600_000,
    )
    .await?;
    let failed = disbursement_in(&client, &flaky_case, DisbursementState::Retryable).await?;
    assert_eq!(failed.failure_reason, "bank system busy");

    // A second payments process on the same database, and a thousand duplicate retries across
    // both: half reuse one request id, half are fresh requests for the same disbursement.
    let endpoint = simulator.endpoint.clone();
    let second_port = free_port()?;
    let second = restart_with::<Payments>(&ns, &payments.database, |s| {
        provider_settings(s, &endpoint, second_port, 2_000)
    })
    .await?;
    let other = PaymentsServiceClient::new(jiuzhu_testkit::channel(second.grpc_addr).await?);
    let calls = (0..1000).map(|i| {
        let mut client = if i % 2 == 0 {
            client.clone()
        } else {
            other.clone()
        };
        let request = RetryDisbursementRequest {
            request_id: if i < 500 {
                "storm-same".to_owned()
            } else {
                format!("storm-{i}")
            },
            disbursement_id: failed.disbursement_id.clone(),
            requested_by: "finance-officer-2".to_owned(),
            reason: "the bank is back".to_owned(),
        };
        async move {
            client
                .retry_disbursement(request)
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }
    });
    let results = futures::future::join_all(calls).await;
    // The same request id, however it raced, is answered as its first call was, or not at
    // all (UNAVAILABLE): never refused.
    let same: Vec<&Result<(), Code>> = results[..500]
        .iter()
        .filter(|r| !matches!(r, Err(Code::Unavailable)))
        .collect();
    let first = same.first().map(|r| **r);
    assert!(
        same.iter().all(|r| Some(**r) == first),
        "one request id, several answers: {:?}",
        same.iter()
            .map(|r| format!("{r:?}"))
            .collect::<std::collections::BTreeSet<_>>()
    );
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for result in &results {
        let code = match result {
            Ok(()) => "Ok".to_owned(),
            Err(code) => format!("{code:?}"),
        };
        *codes.entry(code).or_default() += 1;
    }
    // Under a loaded machine some calls wait longer for a connection than the pool allows and
    // are answered UNAVAILABLE: nothing applied, safe to send again. Never anything else.
    assert!(
        codes.keys().all(|c| {
            ["Ok", "FailedPrecondition", "Aborted", "Unavailable"].contains(&c.as_str())
        }),
        "{codes:?}"
    );
    eprintln!("answers to the thousand retries: {codes:?}");
    assert!(codes.get("Ok").is_some_and(|n| *n >= 1), "{codes:?}");
    assert_eq!(
        count_events(&pool, "DisbursementRetried", &failed.disbursement_id).await?,
        1,
        "{codes:?}"
    );
    let retried = disbursement_in(&client, &flaky_case, DisbursementState::Succeeded).await?;
    assert_eq!(retried.attempt, 2);
    assert_eq!(
        history(&retried),
        [
            "DisbursementOrdered",
            "FundsReserved",
            "DisbursementSubmitted",
            "DisbursementFailed",
            "DisbursementRetried",
            "DisbursementSubmitted",
            "DisbursementSucceeded"
        ]
    );
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let witnessed = simulator.payments_for(&retried.disbursement_id).await?;
    let outcomes: Vec<(String, i32)> = witnessed
        .iter()
        .map(|p| (p.idempotency_key.clone(), p.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                format!("{}:1", retried.disbursement_id),
                PaymentOutcome::Rejected as i32
            ),
            (
                format!("{}:2", retried.disbursement_id),
                PaymentOutcome::Paid as i32
            )
        ]
    );
    assert_eq!(
        balances(&mut client).await?,
        (5_000_000 - 1_700_001, 200_000, 1_500_001)
    );
    ledger_balances(&pool).await?;
    let metrics = jiuzhu_tests::scrape(&payments.running).await?;
    for line in [
        "jiuzhu_payments_attempts{outcome=\"paid\"} 3",
        "jiuzhu_payments_attempts{outcome=\"failed\"} 1",
        "jiuzhu_payments_waiting_for_funds 0",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    // The bank's statement shows the refused first attempt paid after all: the relief was paid
    // by the second, so this is money to recover, reported and opened for finance (never
    // dropped as a mere mismatch, never settled a second time).
    let late = format!("{}:1", retried.disbursement_id);
    let report = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-late".to_owned(),
            provider: "simulator".to_owned(),
            format: StatementFormat::Csv as i32,
            content: format!(
                "value_date,bank_reference,idempotency_key,amount,direction\n\
                 2026-12-01,LATE000001,{late},6000.00,DEBIT\n"
            ),
            control_count: 1,
            control_total: Some(Money { fen: 600_000 }),
            covers_until: String::new(),
        })
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    assert_eq!((report.settled, report.matched), (0, 0), "{report:?}");
    assert_eq!(
        kinds_of(&report),
        [(
            MismatchKind::PaidNotRecorded as i32,
            retried.disbursement_id.clone()
        )]
    );
    let recoveries: Vec<(String, i64)> =
        sqlx::query_as("SELECT bank_reference, fen FROM recoveries WHERE idempotency_key = $1")
            .bind(&late)
            .fetch_all(&pool)
            .await?;
    assert_eq!(recoveries, [("LATE000001".to_owned(), 600_000)]);
    assert_eq!(
        count_events(&pool, "DisbursementOverpaid", &retried.disbursement_id).await?,
        1
    );
    assert_eq!(
        balances(&mut client).await?,
        (5_000_000 - 1_700_001, 200_000, 1_500_001),
        "the budget is not charged twice"
    );
    ledger_balances(&pool).await?;
    second.stop().await;
    stop_all([payments, decisions, registry]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_each_step_the_service_pays_once_and_loses_nothing() -> TestResult {
    let ns = unique_namespace();
    let payments_port = free_port()?;
    let notify = format!("https://127.0.0.1:{payments_port}");
    let payments_addr = std::net::SocketAddr::from(([127, 0, 0, 1], payments_port));
    let simulator = Paysim::spawn(Some(&notify), &[]).await?;
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let database = jiuzhu_testkit::fresh_database::<Payments>().await?;
    let registry_port = registry.running.grpc_addr.port();
    let spawn = |crash_at: Option<&str>| {
        let mut env = service_env("payments", &database, payments_port, &ns, "", registry_port);
        env.extend(
            [
                ("JIUZHU__PROVIDER__ENDPOINT", simulator.endpoint.as_str()),
                ("JIUZHU__PROVIDER__POLL_MS", "20"),
                ("JIUZHU__PROVIDER__REQUEST_TIMEOUT_MS", "2000"),
                ("JIUZHU__PROVIDER__RESEND_AFTER_MS", "500"),
                ("JIUZHU__CONSUMER__RETRY_BACKOFF_MS", "10"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        if let Some(step) = crash_at {
            env.push(("JIUZHU__PROVIDER__CRASH_AT".to_owned(), step.to_owned()));
        }
        ServiceProcess::spawn("jiuzhu-payments", &env)
    };
    let mut process = spawn(Some("after_reserve"))?;
    let client = eventually("the payments process to serve", WAIT, || async move {
        Ok(jiuzhu_testkit::channel(payments_addr)
            .await
            .ok()
            .map(PaymentsServiceClient::new))
    })
    .await?;
    let mut people = registry_client(&registry.running).await?;
    let zhao = person(&mut people, "kill-zhao", "赵桂兰").await?;
    register_payee(&client, "kill-zhao", &zhao, "赵桂兰", &card(ORDINARY, 7)).await?;
    allocate(&mut client.clone(), "kill", 3_000_000).await?;
    let case_id = approve_case(
        decisions.running.grpc_addr,
        "201",
        &zhao,
        PROCURATORATE,
        900_000,
    )
    .await?;

    // Killed after reserving, then after recording the attempt (before calling the provider),
    // then after the provider paid (before recording its answer): each restart resumes.
    for step in ["after_reserve", "after_submit", "before_recording_outcome"] {
        let status = process
            .exited(WAIT)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the process did not stop at {step}"))?;
        assert!(!status.success(), "{step}: {status}");
        let next = match step {
            "after_reserve" => Some("after_submit"),
            "after_submit" => Some("before_recording_outcome"),
            _ => None,
        };
        process = spawn(next)?;
    }
    let client = eventually("the payments process to serve again", WAIT, || async move {
        Ok(jiuzhu_testkit::channel(payments_addr)
            .await
            .ok()
            .map(PaymentsServiceClient::new))
    })
    .await?;
    let paid = disbursement_in(&client, &case_id, DisbursementState::Succeeded).await?;
    assert_eq!(paid.attempt, 1, "no new attempt was needed");
    let witnessed = simulator.payments_for(&paid.disbursement_id).await?;
    assert_eq!(witnessed.len(), 1, "one payment at the bank");
    assert_eq!(witnessed[0].outcome, PaymentOutcome::Paid as i32);
    // The call before the last crash paid; the resend after it was answered from the record.
    assert!(witnessed[0].pay_calls >= 2, "{}", witnessed[0].pay_calls);
    let pool = sqlx::PgPool::connect(&database.url).await?;
    assert_eq!(
        count_events(&pool, "DisbursementSucceeded", &paid.disbursement_id).await?,
        1
    );
    assert_eq!(
        count_events(&pool, "DisbursementOrdered", &paid.disbursement_id).await?,
        1
    );
    assert_eq!(
        balances(&mut client.clone()).await?,
        (2_100_000, 0, 900_000)
    );
    ledger_balances(&pool).await?;
    assert!(process.terminate().await?, "a clean stop at the end");
    decisions.running.stop().await;
    registry.running.stop().await;
    Ok(())
}

/// A report's mismatches: their kind and the payment they name.
fn kinds_of(report: &ReconciliationReport) -> Vec<(i32, String)> {
    report
        .mismatches
        .iter()
        .map(|m| (m.kind, m.disbursement_id.clone()))
        .collect()
}

/// Two approved payments of one statement: Sun's to a card the bank pays without ever
/// answering (left SUBMITTED), Zhou's to an ordinary card (paid); the services and the
/// simulator running.
struct TwoPayments {
    simulator: Paysim,
    registry: jiuzhu_tests::Started,
    decisions: jiuzhu_tests::Started,
    payments: jiuzhu_tests::Started,
    payments_port: u16,
    client: PaymentsServiceClient<Channel>,
    silent_case: String,
    ordinary_case: String,
    silent: Disbursement,
    ordinary: Disbursement,
}

/// Stops services in the order given.
/// The registry, decisions and payments in a namespace of their own, paying through the
/// simulator (a process, notifying payments), and a payments client.
struct Paying {
    simulator: Paysim,
    registry: jiuzhu_tests::Started,
    decisions: jiuzhu_tests::Started,
    payments: jiuzhu_tests::Started,
    client: PaymentsServiceClient<Channel>,
}

impl Paying {
    async fn start() -> anyhow::Result<Self> {
        let ns = unique_namespace();
        let payments_port = free_port()?;
        let notify = format!("https://127.0.0.1:{payments_port}");
        let payments_addr = std::net::SocketAddr::from(([127, 0, 0, 1], payments_port));
        let simulator = Paysim::spawn(Some(&notify), &[]).await?;
        let registry = start::<Registry>(&ns).await?;
        let decisions = start::<Decisions>(&ns).await?;
        let endpoint = simulator.endpoint.clone();
        let payments = start_with::<Payments>(&ns, |s| {
            provider_settings(s, &endpoint, payments_port, 2_000)
        })
        .await?;
        let client = PaymentsServiceClient::new(jiuzhu_testkit::channel(payments_addr).await?);
        Ok(Self {
            simulator,
            registry,
            decisions,
            payments,
            client,
        })
    }
}

async fn stop_all(services: [jiuzhu_tests::Started; 3]) {
    for service in services {
        service.running.stop().await;
    }
}

async fn two_payments(
    tag: &str,
    cards: (u64, u64),
    cases: (&str, &str),
) -> anyhow::Result<TwoPayments> {
    let ns = unique_namespace();
    let simulator = Paysim::spawn(None, &["--timeout-hold-ms", "2000"]).await?;
    let registry = start::<Registry>(&ns).await?;
    let decisions = start::<Decisions>(&ns).await?;
    let endpoint = simulator.endpoint.clone();
    let payments = start_with::<Payments>(&ns, |s| provider_settings(s, &endpoint, 0, 400)).await?;
    // Any free port, taken by the service itself (a port chosen first could be taken before
    // the service binds it).
    let payments_port = payments.running.grpc_addr.port();
    let mut client =
        PaymentsServiceClient::new(jiuzhu_testkit::channel(payments.running.grpc_addr).await?);
    let mut people = registry_client(&registry.running).await?;
    allocate(&mut client, tag, 2_000_000).await?;
    let sun = person(&mut people, &format!("{tag}-sun"), "孙玉梅").await?;
    let zhou = person(&mut people, &format!("{tag}-zhou"), "周建国").await?;
    register_payee(
        &client,
        &format!("{tag}-sun"),
        &sun,
        "孙玉梅",
        &card(SILENT, cards.0),
    )
    .await?;
    register_payee(
        &client,
        &format!("{tag}-zhou"),
        &zhou,
        "周建国",
        &card(ORDINARY, cards.1),
    )
    .await?;
    let silent_case = approve_case(
        decisions.running.grpc_addr,
        cases.0,
        &sun,
        PROCURATORATE,
        700_000,
    )
    .await?;
    let ordinary_case = approve_case(
        decisions.running.grpc_addr,
        cases.1,
        &zhou,
        PROCURATORATE,
        300_000,
    )
    .await?;
    let ordinary = disbursement_in(&client, &ordinary_case, DisbursementState::Succeeded).await?;
    let silent = disbursement_in(&client, &silent_case, DisbursementState::Submitted).await?;
    Ok(TwoPayments {
        simulator,
        registry,
        decisions,
        payments,
        payments_port,
        client,
        silent_case,
        ordinary_case,
        silent,
        ordinary,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_whose_answer_never_came_is_settled_from_the_statement_not_paid_again()
-> TestResult {
    let TwoPayments {
        simulator,
        registry,
        decisions,
        payments,
        payments_port,
        mut client,
        silent_case,
        ordinary_case,
        silent,
        ordinary,
    } = two_payments("rec", (3, 4), ("301", "302")).await?;
    // The bank paid, but never answered; resent under the same key, still one payment.
    let witnessed = eventually("a resend of the unanswered payment", WAIT, || async {
        let payments = simulator.payments_for(&silent.disbursement_id).await?;
        Ok(payments
            .first()
            .is_some_and(|p| p.pay_calls >= 2)
            .then_some(payments))
    })
    .await?;
    assert_eq!(witnessed.len(), 1);
    assert_eq!(
        disbursement_in(&client, &silent_case, DisbursementState::Submitted)
            .await?
            .attempt,
        1,
        "an unknown outcome is never a new attempt"
    );

    // The bank's statement: everything it paid, minus the ordinary payment (recorded but not
    // on the statement), plus a payment Jiuzhu never made.
    let statement = simulator
        .client
        .clone()
        .export_statement(ExportStatementRequest {})
        .await?
        .into_inner();
    assert_eq!(statement.line_count, 2);
    let mut lines: Vec<String> = statement
        .csv
        .lines()
        .filter(|l| !l.contains(&ordinary.disbursement_id))
        .map(str::to_owned)
        .collect();
    lines.push(
        "2026-11-29,SIM99999999,0190d5c2-8a6e-7000-8000-00000000beef:1,12.34,DEBIT".to_owned(),
    );
    let content = lines.join("\n") + "\n";
    let import = ImportStatementRequest {
        request_id: "statement-1".to_owned(),
        provider: "simulator".to_owned(),
        format: StatementFormat::Csv as i32,
        content: content.clone(),
        control_count: 2,
        control_total: Some(Money { fen: 701_234 }),
        covers_until: chrono::Utc::now().to_rfc3339(),
    };
    // Control totals that disagree with the lines refuse the whole file.
    let refused = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-bad-totals".to_owned(),
            control_count: 3,
            ..import.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("wrong control totals were accepted"))?;
    assert_eq!(bad_fields(&refused), ["control_count"]);
    let broken = content.replacen(",12.34,", ",12.345,", 1);
    let refused = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-bad-line".to_owned(),
            content: broken,
            ..import.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a bad amount was accepted"))?;
    assert_eq!(bad_fields(&refused), ["content"]);
    let named = tonic_types::StatusExt::get_details_bad_request(&refused).is_some_and(|d| {
        d.field_violations
            .iter()
            .any(|v| v.description.starts_with("line 3, field `amount`"))
    });
    assert!(named, "{refused:?}");

    // Another office's finance officer reconciles none of these payments (they are of Yunyan,
    // 520103): each known line is reported outside its jurisdiction, without naming the
    // payment, nothing is settled, and the recorded payment it cannot see is not its to miss.
    let payments_at = std::net::SocketAddr::from(([127, 0, 0, 1], payments_port));
    let mut haidian = jiuzhu_tests::payments::finance_in(payments_at, "110108").await?;
    let foreign = haidian
        .import_statement(ImportStatementRequest {
            request_id: "statement-haidian".to_owned(),
            ..import.clone()
        })
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    let kinds = kinds_of(&foreign);
    assert_eq!(
        kinds,
        [
            (MismatchKind::OutsideJurisdiction as i32, String::new()),
            (MismatchKind::PaidNotRecorded as i32, String::new()),
        ]
    );
    assert_eq!((foreign.settled, foreign.matched), (0, 0));
    disbursement_in(&client, &silent_case, DisbursementState::Submitted).await?;
    // Its report is Haidian's: Yunyan's finance officer may not read it.
    let mut yunyan = jiuzhu_tests::payments::finance_in(payments_at, "520103").await?;
    let refused = yunyan
        .get_reconciliation_report(GetReconciliationReportRequest {
            statement_id: foreign.statement_id.clone(),
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("another office read the report"))?;
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let report = client
        .import_statement(import.clone())
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    assert_eq!(
        (report.line_count, report.settled, report.matched),
        (2, 1, 1)
    );
    let kinds = kinds_of(&report);
    assert_eq!(
        kinds,
        [
            (MismatchKind::PaidNotRecorded as i32, String::new()),
            (
                MismatchKind::RecordedNotPaid as i32,
                ordinary.disbursement_id.clone()
            )
        ]
    );
    let settled = disbursement_in(&client, &silent_case, DisbursementState::Succeeded).await?;
    assert_eq!(settled.attempt, 1);
    let again = client.import_statement(import).await?.into_inner();
    assert_eq!(again.report.as_ref(), Some(&report), "a retried import");
    let stored = client
        .get_reconciliation_report(GetReconciliationReportRequest {
            statement_id: report.statement_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(stored.report.as_ref(), Some(&report));
    // The bank's MT940 of the same day agrees with the books now: nothing left to settle.
    let mt940 = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-mt940".to_owned(),
            provider: "simulator".to_owned(),
            format: StatementFormat::Mt940 as i32,
            content: statement.mt940.clone(),
            control_count: 2,
            control_total: Some(Money { fen: 1_000_000 }),
            covers_until: String::new(),
        })
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    assert_eq!(
        (mt940.matched, mt940.settled, mt940.mismatches.len()),
        (2, 0, 0)
    );
    let witnessed = simulator.payments_for(&silent.disbursement_id).await?;
    assert_eq!(witnessed.len(), 1, "still one payment at the bank");
    assert_eq!(balances(&mut client).await?, (1_000_000, 0, 1_000_000));

    // The bank returns the ordinary payment: reversed, and the money is budget again.
    let returned = format!(
        "value_date,bank_reference,idempotency_key,amount,direction\n\
         2026-11-30,SIMR0001,{}:1,3000.00,CREDIT\n",
        ordinary.disbursement_id
    );
    let report = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-2".to_owned(),
            provider: "simulator".to_owned(),
            format: StatementFormat::Csv as i32,
            content: returned,
            control_count: 1,
            control_total: Some(Money { fen: 300_000 }),
            covers_until: String::new(),
        })
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    assert_eq!((report.reversed, report.mismatches.len()), (1, 0));
    disbursement_in(&client, &ordinary_case, DisbursementState::Reversed).await?;
    assert_eq!(balances(&mut client).await?, (1_300_000, 0, 700_000));
    ledger_balances(payments.running.store.pool()).await?;
    stop_all([payments, decisions, registry]).await;
    Ok(())
}

/// Each statement line is decided against the lines before it: a payment that never got its
/// answer, debited and then credited in one statement, is paid and then reversed (its money
/// back in the budget); a payment debited twice is a second payment, reported and opened as a
/// recovery for finance, never counted as matched twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_is_decided_line_by_line_and_a_second_debit_is_an_overpayment() -> TestResult {
    let TwoPayments {
        simulator,
        registry,
        decisions,
        payments,
        payments_port: _,
        mut client,
        silent_case,
        ordinary_case: _,
        silent,
        ordinary,
    } = two_payments("twice", (5, 6), ("311", "312")).await?;
    eventually("the unanswered payment made", WAIT, || async {
        let payments = simulator.payments_for(&silent.disbursement_id).await?;
        Ok((!payments.is_empty()).then_some(()))
    })
    .await?;
    let statement = simulator
        .client
        .clone()
        .export_statement(ExportStatementRequest {})
        .await?
        .into_inner();
    let mut lines: Vec<String> = statement.csv.lines().map(str::to_owned).collect();
    let line_of = |id: &str| {
        lines
            .iter()
            .find(|l| l.contains(id))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no statement line for {id}"))
    };
    // `value_date,bank_reference,idempotency_key,amount,direction` with another reference and
    // direction.
    let again = |line: &str, reference: &str, direction: &str| {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[1] = reference;
        fields[4] = direction;
        fields.join(",")
    };
    let (silent_line, ordinary_line) = (
        line_of(&silent.disbursement_id)?,
        line_of(&ordinary.disbursement_id)?,
    );
    lines.push(again(&silent_line, "RETURN0001", "CREDIT"));
    lines.push(again(&ordinary_line, "SECOND0001", "DEBIT"));
    let report = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-twice".to_owned(),
            provider: "simulator".to_owned(),
            format: StatementFormat::Csv as i32,
            content: lines.join("\n") + "\n",
            control_count: 4,
            control_total: Some(Money {
                fen: 2 * 700_000 + 2 * 300_000,
            }),
            covers_until: String::new(),
        })
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    assert_eq!(
        (report.settled, report.reversed, report.matched),
        (1, 1, 2),
        "{report:?}"
    );
    let kinds = kinds_of(&report);
    assert_eq!(
        kinds,
        [(
            MismatchKind::PaidTwice as i32,
            ordinary.disbursement_id.clone()
        )]
    );
    disbursement_in(&client, &silent_case, DisbursementState::Reversed).await?;
    let pool = payments.running.store.pool().clone();
    let recoveries: Vec<(String, i64)> =
        sqlx::query_as("SELECT bank_reference, fen FROM recoveries WHERE recovered_at IS NULL")
            .fetch_all(&pool)
            .await?;
    assert_eq!(recoveries, [("SECOND0001".to_owned(), 300_000)]);
    // The reversed payment's money is back in the budget; the paid one stays paid once.
    assert_eq!(
        balances(&mut client.clone()).await?,
        (1_700_000, 0, 300_000)
    );
    ledger_balances(&pool).await?;
    stop_all([payments, decisions, registry]).await;
    Ok(())
}

/// A person cannot be erased while a payment to them is out at the bank (sent, unanswered,
/// perhaps paid): the refusal names the attempt, its money stays held, and once the bank's
/// statement settles it the erasure goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_waits_until_the_persons_payment_is_answered() -> TestResult {
    use jiuzhu_proto::registry::ErasePersonRequest;
    let TwoPayments {
        simulator,
        registry,
        decisions,
        payments,
        payments_port: _,
        mut client,
        silent_case,
        ordinary_case: _,
        silent,
        ordinary: _,
    } = two_payments("erased", (7, 8), ("321", "322")).await?;
    let mut people = registry_client(&registry.running).await?;
    let person = uuid::Uuid::parse_str(&silent.person_id)?;
    let key = format!("{}:1", silent.disbursement_id);
    // The registry learns from the payments topic that the attempt is out.
    let registry_pool = registry.running.store.pool().clone();
    eventually("the registry knowing the payment is out", WAIT, || async {
        let out: Option<String> = sqlx::query_scalar(
            "SELECT attempt_key FROM payments_out WHERE person_id = $1 AND attempt_key IS NOT NULL",
        )
        .bind(person)
        .fetch_optional(&registry_pool)
        .await?;
        Ok(out)
    })
    .await?;
    let erase = |request_id: &str| ErasePersonRequest {
        request_id: request_id.to_owned(),
        person_id: silent.person_id.clone(),
        legal_basis: "个人信息保护法 第47条".to_owned(),
        reason: "the person asked".to_owned(),
        ..ErasePersonRequest::default()
    };
    let refused = people
        .erase_person(erase("erase-while-out"))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("erased while a payment was out"))?;
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains(&key), "{refused:?}");
    let still = disbursement_in(&client, &silent_case, DisbursementState::Submitted).await?;
    assert_eq!(still.attempt, 1);
    assert_eq!(
        balances(&mut client).await?.1,
        700_000,
        "its money still held"
    );
    // The bank's statement: it was paid.
    let statement = simulator
        .client
        .clone()
        .export_statement(ExportStatementRequest {})
        .await?
        .into_inner();
    let line = statement
        .csv
        .lines()
        .find(|l| l.contains(&silent.disbursement_id))
        .ok_or_else(|| anyhow::anyhow!("the bank did not pay the unanswered payment"))?;
    let report = client
        .import_statement(ImportStatementRequest {
            request_id: "statement-erased".to_owned(),
            provider: "simulator".to_owned(),
            format: StatementFormat::Csv as i32,
            content: format!(
                "value_date,bank_reference,idempotency_key,amount,direction\n{line}\n"
            ),
            control_count: 1,
            control_total: Some(Money { fen: 700_000 }),
            covers_until: String::new(),
        })
        .await?
        .into_inner()
        .report
        .ok_or_else(|| anyhow::anyhow!("no report"))?;
    assert_eq!(report.settled, 1, "{report:?}");
    disbursement_in(&client, &silent_case, DisbursementState::Succeeded).await?;
    // Answered: now the person can be erased.
    eventually("the erasure once the payment is answered", WAIT, || {
        let (mut people, request) = (people.clone(), erase("erase-after-answer"));
        async move {
            Ok(match people.erase_person(request).await {
                Ok(_) => Some(()),
                Err(status) if status.code() == Code::FailedPrecondition => None,
                Err(status) => return Err(status.into()),
            })
        }
    })
    .await?;
    stop_all([payments, decisions, registry]).await;
    Ok(())
}

/// A person registered twice and merged is one payee: relief decided for the survivor is paid,
/// once, to the account registered on the merged record (opened with that record's key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_persons_relief_is_paid_to_the_payee_of_either_record() -> TestResult {
    let Paying {
        simulator,
        registry,
        decisions,
        payments,
        mut client,
    } = Paying::start().await?;
    let mut people = registry_client(&registry.running).await?;
    allocate(&mut client, "merge", 5_000_000).await?;
    let first = person(&mut people, "merge-1", "赵桂兰").await?;
    let second = people
        .register_person(jiuzhu_proto::registry::RegisterPersonRequest {
            request_id: "merge-2".to_owned(),
            resident_id: String::new(),
            source_department: "civil_affairs".to_owned(),
            ..villager("merge-1", "赵桂兰", "rural_revitalization")
        })
        .await?
        .into_inner()
        .person_id;
    let masked = register_payee(&client, "merge-1", &first, "赵桂兰", &card(ORDINARY, 3)).await?;
    people
        .merge_persons(jiuzhu_proto::registry::MergePersonsRequest {
            request_id: "merge-3".to_owned(),
            survivor_id: second.clone(),
            absorbed_id: first.clone(),
            reason: "one woman, two departments".to_owned(),
            ..Default::default()
        })
        .await?;
    let pool = payments.running.store.pool().clone();
    let (absorbed, survivor) = (
        uuid::Uuid::parse_str(&first)?,
        uuid::Uuid::parse_str(&second)?,
    );
    eventually("payments to see the merge", WAIT, || async {
        let mut conn = pool.acquire().await?;
        let standing = jiuzhu_persons::lookup(&mut conn, absorbed).await?;
        Ok((standing
            == jiuzhu_persons::Standing::Person {
                survivor,
                erased: false,
            })
        .then_some(()))
    })
    .await?;

    let case = approve_case(
        decisions.running.grpc_addr,
        "301",
        &second,
        PROCURATORATE,
        600_000,
    )
    .await?;
    let paid = disbursement_in(&client, &case, DisbursementState::Succeeded).await?;
    assert_eq!(paid.person_id, second, "the survivor's relief");
    assert_eq!(
        paid.payee_account_masked, masked,
        "to the merged record's payee"
    );
    assert_eq!(
        simulator.payments_for(&paid.disbursement_id).await?.len(),
        1
    );
    for service in [payments, decisions, registry] {
        service.running.stop().await;
    }
    Ok(())
}

/// An applicant objects to the amount paid; another approver raises it on review, and only the
/// difference is paid, once, however often the review is retried. The case's stage is not held
/// up by the objection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_raised_on_objection_pays_only_the_difference_once() -> TestResult {
    use jiuzhu_proto::decisions::{
        FileObjectionRequest, ObjectionOutcome, ReviewObjectionRequest, Stage,
    };
    let Paying {
        simulator,
        registry,
        decisions,
        payments,
        mut client,
    } = Paying::start().await?;
    let decisions_at = decisions.running.grpc_addr;
    let mut office = DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions_at).await?);
    let mut people = registry_client(&registry.running).await?;
    allocate(&mut client, "amend", 5_000_000).await?;
    let zhao = person(&mut people, "amend-zhao", "赵桂兰").await?;
    register_payee(&client, "amend-zhao", &zhao, "赵桂兰", &card(ORDINARY, 7)).await?;
    let case_id = approve_case(decisions_at, "301", &zhao, PROCURATORATE, 600_000).await?;
    let paid = disbursement_in(&client, &case_id, DisbursementState::Succeeded).await?;

    let objected = office
        .file_objection(FileObjectionRequest {
            request_id: "amend-object".to_owned(),
            case_id: case_id.clone(),
            grounds: "the second operation's bill was left out".to_owned(),
            filed_on: String::new(),
        })
        .await?
        .into_inner();
    assert!(!objected.review_due.is_empty(), "the review has a deadline");
    // A second approver of Yunyan's office (the first, approver-department_head, approved).
    let mut reviewer =
        approver_named(decisions_at, "520103", "approver-zhou", "department_head").await?;
    let raise = ReviewObjectionRequest {
        request_id: "amend-review".to_owned(),
        case_id: case_id.clone(),
        outcome: ObjectionOutcome::Amended as i32,
        amount: Some(Money { fen: 750_000 }),
        methods: Vec::new(),
        reason: "the second bill is part of the loss".to_owned(),
    };
    let lower = reviewer
        .review_objection(ReviewObjectionRequest {
            request_id: "amend-review-lower".to_owned(),
            amount: Some(Money { fen: 500_000 }),
            ..raise.clone()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an objection lowered the amount"))?;
    assert_eq!(bad_fields(&lower), ["amount"]);
    reviewer.review_objection(raise.clone()).await?;
    reviewer.review_objection(raise).await?; // a retry changes nothing

    let listed = disbursements_when(&client, &case_id, "the supplement paid", |listed| {
        listed
            .get(1)
            .is_some_and(|d| d.state == DisbursementState::Succeeded as i32)
    })
    .await?;
    assert_eq!(listed.len(), 2, "the payment and one supplement");
    let supplement = listed[1].clone();
    assert!(supplement.supplement);
    assert_eq!(supplement.amount, Some(Money { fen: 150_000 }));
    for disbursement in [&paid, &supplement] {
        let witnessed = simulator
            .payments_for(&disbursement.disbursement_id)
            .await?;
        assert_eq!(witnessed.len(), 1, "paid once");
        assert_eq!(witnessed[0].pay_calls, 1);
    }
    let case = jiuzhu_tests::case_when(
        &office,
        &case_id,
        "the case to show the supplement",
        |case| case.distributed == Some(Money { fen: 750_000 }),
    )
    .await?;
    assert_eq!(case.stage, Stage::Distributed as i32, "not held up");
    let amendment = case.amendment.unwrap_or_default();
    assert_eq!(amendment.approved_amount, Some(Money { fen: 600_000 }));
    assert!(
        amendment.amended_by.ends_with("approver-zhou"),
        "the reviewer's verified identity: {}",
        amendment.amended_by
    );
    assert_eq!(
        balances(&mut client).await?,
        (5_000_000 - 750_000, 0, 750_000),
        "the budget pays the amount amended, no more"
    );
    ledger_balances(payments.running.store.pool()).await?;
    stop_all([payments, decisions, registry]).await;
    Ok(())
}
