//! Budgets on real PostgreSQL and the broker: allocations move money from finance into a
//! procuratorate's budget exactly once per request, the balances are the ledger's, and the
//! allocations are events on `jiuzhu.payments.events.v1`.

use jiuzhu_payments::Payments;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::payments::*;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::{TestResult, read_topic, start};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_move_money_once_and_the_balances_are_the_ledger_s() -> TestResult {
    let payments = start::<Payments>(&unique_namespace()).await?;
    let mut client =
        PaymentsServiceClient::connect(format!("http://{}", payments.running.grpc_addr)).await?;
    let allocate = |request_id: &str, fen: i64| AllocateBudgetRequest {
        request_id: request_id.to_owned(),
        procuratorate: "贵阳市南明区人民检察院".to_owned(),
        amount: Some(Money { fen }),
        document_reference: "黔财行〔2026〕12号".to_owned(),
        allocated_by: "finance-officer-1".to_owned(),
    };
    let first = client
        .allocate_budget(allocate("alloc-1", 5_000_000))
        .await?
        .into_inner();
    assert_eq!(first.budget, Some(Money { fen: 5_000_000 }));
    // A retry moves nothing; a second allocation adds.
    let retried = client
        .allocate_budget(allocate("alloc-1", 5_000_000))
        .await?
        .into_inner();
    assert_eq!(retried, first);
    client
        .allocate_budget(allocate("alloc-2", 1_000_000))
        .await?;
    let balances = client
        .get_balances(GetBalancesRequest {
            procuratorate: "贵阳市南明区人民检察院".to_owned(),
        })
        .await?
        .into_inner();
    assert_eq!(balances.budget, Some(Money { fen: 6_000_000 }));
    assert_eq!(balances.reserved, Some(Money { fen: 0 }));

    let refused = client
        .allocate_budget(allocate("alloc-3", -5))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a negative allocation was taken"))?;
    assert_eq!(refused.code(), Code::InvalidArgument);

    // The ledger balances: every transaction sums to zero, finance gave what budgets hold.
    let (unbalanced, finance): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries GROUP BY \
         transaction_id HAVING sum(fen) <> 0) t), \
         (SELECT fen FROM account_balances WHERE account = 'finance')",
    )
    .fetch_one(payments.running.store.pool())
    .await?;
    assert_eq!((unbalanced, finance), (0, -6_000_000));
    let topic = payments.running.store.topic().to_owned();
    let records = read_topic(&kafka_brokers(), &topic, 2)?;
    assert_eq!(records.len(), 2);
    payments.running.stop().await;
    Ok(())
}
