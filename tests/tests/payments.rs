//! Budgets on real PostgreSQL and the broker: allocations move money from finance into a
//! procuratorate's budget exactly once per request, the balances are the ledger's, and the
//! allocations are events on `jiuzhu.payments.events.v1`.

use jiuzhu_payments::Payments;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::payments::payments_service_client::PaymentsServiceClient;
use jiuzhu_proto::payments::*;
use jiuzhu_testkit::{kafka_brokers, unique_namespace};
use jiuzhu_tests::payments::approve_case;
use jiuzhu_tests::{TestResult, eventually, read_topic, start};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_move_money_once_and_the_balances_are_the_ledger_s() -> TestResult {
    let payments = start::<Payments>(&unique_namespace()).await?;
    let mut client =
        PaymentsServiceClient::new(jiuzhu_testkit::channel(payments.running.grpc_addr).await?);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_decision_is_ordered_once_waits_for_funds_and_is_reserved_when_budget_comes()
-> TestResult {
    use jiuzhu_proto::decisions::decisions_service_client::DecisionsServiceClient;
    use jiuzhu_proto::decisions::*;
    let wait = std::time::Duration::from_secs(60);
    let ns = unique_namespace();
    let decisions = start::<jiuzhu_decisions::Decisions>(&ns).await?;
    let payments = start::<Payments>(&ns).await?;
    let relief =
        DecisionsServiceClient::new(jiuzhu_testkit::channel(decisions.running.grpc_addr).await?);
    let procuratorate = "贵阳市云岩区人民检察院";
    // Emergency relief: decided and approved straight after the application.
    let person_id = uuid::Uuid::now_v7().to_string();
    jiuzhu_tests::announce_registered(&ns, std::slice::from_ref(&person_id)).await?;
    let case_id = approve_case(
        decisions.running.grpc_addr,
        "8",
        &person_id,
        procuratorate,
        800_000,
    )
    .await?;

    // No budget yet: ordered, and waiting for funds.
    let pool = payments.running.store.pool().clone();
    let count = |event_type: &'static str| {
        let pool = pool.clone();
        async move {
            anyhow::Ok(
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE event_type = $1")
                    .bind(event_type)
                    .fetch_one(&pool)
                    .await?,
            )
        }
    };
    eventually("the order waiting for funds", wait, || async {
        Ok((count("jiuzhu.payments.v1.FundsShort").await? == 1).then_some(()))
    })
    .await?;
    assert_eq!(count("jiuzhu.payments.v1.DisbursementOrdered").await?, 1);
    // The case shows it: waiting for funds.
    let waiting = |expected: bool| {
        let (relief, case_id) = (relief.clone(), case_id.clone());
        eventually("the case to show its funding", wait, move || {
            let (mut relief, case_id) = (relief.clone(), case_id.clone());
            async move {
                let case = relief
                    .get_case(GetCaseRequest {
                        purpose: jiuzhu_tests::PURPOSE.to_owned(),
                        case_id,
                    })
                    .await?
                    .into_inner()
                    .relief_case
                    .unwrap_or_default();
                Ok((case.waiting_for_funds == expected).then_some(()))
            }
        })
    };
    waiting(true).await?;

    // Budget arrives: the waiting order is reserved in the same transaction.
    let mut client =
        PaymentsServiceClient::new(jiuzhu_testkit::channel(payments.running.grpc_addr).await?);
    let allocated = client
        .allocate_budget(AllocateBudgetRequest {
            request_id: "pay-alloc".to_owned(),
            procuratorate: procuratorate.to_owned(),
            amount: Some(Money { fen: 1_000_000 }),
            document_reference: "黔财行〔2026〕31号".to_owned(),
            allocated_by: "finance-officer-2".to_owned(),
        })
        .await?
        .into_inner();
    assert_eq!(allocated.budget, Some(Money { fen: 200_000 }));
    let balances = client
        .get_balances(GetBalancesRequest {
            procuratorate: procuratorate.to_owned(),
        })
        .await?
        .into_inner();
    assert_eq!(balances.reserved, Some(Money { fen: 800_000 }));
    assert_eq!(count("jiuzhu.payments.v1.FundsReserved").await?, 1);
    waiting(false).await?;

    // The case's disbursement with its history; cancelled, its money returns to the budget.
    let listed = client
        .list_disbursements(ListDisbursementsRequest {
            case_id: case_id.clone(),
        })
        .await?
        .into_inner()
        .disbursements;
    assert_eq!(listed.len(), 1);
    let disbursement = &listed[0];
    assert_eq!(disbursement.state, DisbursementState::Reserved as i32);
    let history: Vec<&str> = disbursement
        .history
        .iter()
        .map(|h| h.event_type.as_str())
        .collect();
    assert_eq!(
        history,
        [
            "jiuzhu.payments.v1.DisbursementOrdered",
            "jiuzhu.payments.v1.FundsShort",
            "jiuzhu.payments.v1.FundsReserved"
        ]
    );
    let cancel = CancelDisbursementRequest {
        request_id: "pay-cancel".to_owned(),
        disbursement_id: disbursement.disbursement_id.clone(),
        reason: "the applicant died; the heirs apply anew".to_owned(),
        cancelled_by: "relief-prosecutor-2".to_owned(),
    };
    client.cancel_disbursement(cancel.clone()).await?;
    client.cancel_disbursement(cancel.clone()).await?; // a retry: nothing more moves
    let again = client
        .cancel_disbursement(CancelDisbursementRequest {
            request_id: "pay-cancel-2".to_owned(),
            ..cancel
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a cancelled disbursement was cancelled again"))?;
    assert_eq!(again.code(), Code::FailedPrecondition);
    let balances = client
        .get_balances(GetBalancesRequest {
            procuratorate: procuratorate.to_owned(),
        })
        .await?
        .into_inner();
    assert_eq!(
        (balances.budget, balances.reserved),
        (Some(Money { fen: 1_000_000 }), Some(Money { fen: 0 }))
    );

    // The approval delivered again (the same record, re-sent) orders nothing new.
    let topic = decisions.running.store.topic().to_owned();
    let records = read_topic(&kafka_brokers(), &topic, 1)?;
    let approval = records
        .iter()
        .find(|r| {
            jiuzhu_messaging::header_map(rdkafka::Message::headers(*r))
                .get("jiuzhu-event-type")
                .is_some_and(|t| t == "jiuzhu.decisions.v1.DecisionApproved")
        })
        .ok_or_else(|| anyhow::anyhow!("no approval on the topic"))?;
    let consumed = || jiuzhu_tests::checkpoint_total(&pool, "payments.decision_orders");
    let before = eventually("every decision event consumed", wait, || async {
        let total = consumed().await?;
        Ok((total >= i64::try_from(records.len())?).then_some(total))
    })
    .await?;
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let payload = rdkafka::Message::payload(approval)
        .unwrap_or_default()
        .to_vec();
    let key = rdkafka::Message::key(approval).unwrap_or_default().to_vec();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key(&key)
                .payload(&payload),
            std::time::Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    let handled = || async {
        anyhow::Ok(
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM commands WHERE command_type = 'jiuzhu.payments.v1.DisbursementOrders'",
            )
            .fetch_one(&pool)
            .await?,
        )
    };
    eventually("the re-sent approval consumed", wait, || async {
        Ok((consumed().await? > before).then_some(()))
    })
    .await?;
    assert_eq!(
        handled().await?,
        1,
        "one ordering command, answered again from its log"
    );
    assert_eq!(count("jiuzhu.payments.v1.DisbursementOrdered").await?, 1);
    payments.running.stop().await;
    decisions.running.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_belongs_to_the_office_that_funds_it_and_serves_only_its_cases() -> TestResult {
    use jiuzhu_proto::decisions::{DecisionApproved, ReliefMethod};
    use prost::Message as _;
    let wait = std::time::Duration::from_secs(60);
    let ns = unique_namespace();
    let payments = start::<Payments>(&ns).await?;
    let procuratorate = "北京市朝阳区人民检察院";
    let allocate = |request_id: &str, fen: i64| AllocateBudgetRequest {
        request_id: request_id.to_owned(),
        procuratorate: procuratorate.to_owned(),
        amount: Some(Money { fen }),
        document_reference: "京财行〔2026〕8号".to_owned(),
        allocated_by: "typed, and ignored".to_owned(),
    };
    let balances_of = || GetBalancesRequest {
        procuratorate: procuratorate.to_owned(),
    };
    let (mut chaoyang, mut haidian, mut beijing) = (
        jiuzhu_tests::payments::finance_in(payments.running.grpc_addr, "110105").await?,
        jiuzhu_tests::payments::finance_in(payments.running.grpc_addr, "110108").await?,
        jiuzhu_tests::payments::finance_in(payments.running.grpc_addr, "110100").await?,
    );
    // Nothing funded yet: nothing to hide.
    let empty = haidian.get_balances(balances_of()).await?.into_inner();
    assert_eq!(empty.budget, Some(Money { fen: 0 }));

    // Chaoyang's first allocation makes the budget Chaoyang's.
    chaoyang
        .allocate_budget(allocate("office-alloc-1", 1_000_000))
        .await?;
    for refused in [
        haidian
            .allocate_budget(allocate("office-alloc-2", 1_000_000))
            .await
            .err(),
        haidian.get_balances(balances_of()).await.err(),
    ] {
        let refused = refused.ok_or_else(|| anyhow::anyhow!("another office used the budget"))?;
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("jurisdiction"), "{refused:?}");
    }
    // The city's office holds its districts.
    beijing
        .allocate_budget(allocate("office-alloc-3", 500_000))
        .await?;
    let balances = chaoyang.get_balances(balances_of()).await?.into_inner();
    assert_eq!(balances.budget, Some(Money { fen: 1_500_000 }));

    // Each allocation records the budget's office and who allocated, from the certificates.
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'jiuzhu.payments.v1.BudgetAllocated' \
         ORDER BY position",
    )
    .fetch_all(payments.running.store.pool())
    .await?;
    let recorded: Vec<(String, String)> = payloads
        .iter()
        .map(|p| BudgetAllocated::decode(p.as_slice()).map(|e| (e.office, e.allocated_by)))
        .collect::<Result<_, _>>()?;
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|(office, _)| office == "110105"));
    assert!(
        recorded[0]
            .1
            .contains("/office/110105/role/finance_officer/")
    );
    assert!(
        recorded[1]
            .1
            .contains("/office/110100/role/finance_officer/")
    );

    // A Haidian case naming Chaoyang's procuratorate does not draw on its budget; a Chaoyang
    // case does.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let mut cases = Vec::new();
    for region in ["110108", "110105"] {
        let (case_id, person_id) = (
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::now_v7().to_string(),
        );
        jiuzhu_tests::publish(
            &producer,
            &ns,
            "decisions",
            &person_id,
            &DecisionApproved {
                case_id: case_id.clone(),
                person_id: person_id.clone(),
                amount: Some(Money { fen: 300_000 }),
                methods: vec![ReliefMethod::OneTimePayment as i32],
                procuratorate: procuratorate.to_owned(),
                approved_on: "2026-06-01".to_owned(),
                region_code: region.to_owned(),
                ..DecisionApproved::default()
            },
        )
        .await?;
        cases.push(case_id);
    }
    let mut service =
        PaymentsServiceClient::new(jiuzhu_testkit::channel(payments.running.grpc_addr).await?);
    let state_of = |case_id: String| {
        let mut service = service.clone();
        async move {
            let listed = service
                .list_disbursements(ListDisbursementsRequest { case_id })
                .await?
                .into_inner()
                .disbursements;
            anyhow::Ok(listed.first().map(|d| d.state))
        }
    };
    let states = eventually("both cases ordered", wait, || async {
        let states = (
            state_of(cases[0].clone()).await?,
            state_of(cases[1].clone()).await?,
        );
        Ok(match states {
            (Some(haidian), Some(chaoyang)) => Some((haidian, chaoyang)),
            _ => None,
        })
    })
    .await?;
    assert_eq!(
        states,
        (
            DisbursementState::WaitingForFunds as i32,
            DisbursementState::Reserved as i32
        )
    );
    // More money for Chaoyang serves its queue, never the Haidian case.
    chaoyang
        .allocate_budget(allocate("office-alloc-4", 400_000))
        .await?;
    assert_eq!(
        state_of(cases[0].clone()).await?,
        Some(DisbursementState::WaitingForFunds as i32)
    );
    let balances = service.get_balances(balances_of()).await?.into_inner();
    assert_eq!(
        (balances.budget, balances.reserved),
        (Some(Money { fen: 1_600_000 }), Some(Money { fen: 300_000 }))
    );
    payments.running.stop().await;
    Ok(())
}

/// An approval that can never be paid (5 fen in 12 instalments, from a producer that did not
/// check) goes to the dead-letter topic at once with its reason, and the approval behind it on
/// the same partition (the same person) is ordered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_can_never_be_paid_is_dead_lettered_and_the_next_is_ordered() -> TestResult
{
    use jiuzhu_proto::decisions::{DecisionApproved, ReliefMethod};
    let wait = std::time::Duration::from_secs(60);
    let ns = unique_namespace();
    let payments = start::<Payments>(&ns).await?;
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()?;
    let person_id = uuid::Uuid::now_v7().to_string();
    let approval = |fen: i64, instalments: i32| DecisionApproved {
        case_id: uuid::Uuid::now_v7().to_string(),
        person_id: person_id.clone(),
        amount: Some(Money { fen }),
        methods: vec![ReliefMethod::OneTimePayment as i32],
        procuratorate: "贵阳市南明区人民检察院".to_owned(),
        approved_on: "2026-06-01".to_owned(),
        region_code: "520102".to_owned(),
        instalments,
        instalment_every_months: 1,
        ..DecisionApproved::default()
    };
    let (poison, next) = (approval(5, 12), approval(300_000, 1));
    for approved in [&poison, &next] {
        jiuzhu_tests::publish(&producer, &ns, "decisions", &person_id, approved).await?;
    }
    let mut client =
        PaymentsServiceClient::new(jiuzhu_testkit::channel(payments.running.grpc_addr).await?);
    let ordered = eventually("the next approval ordered", wait, || {
        let (mut client, case_id) = (client.clone(), next.case_id.clone());
        async move {
            let listed = client
                .list_disbursements(ListDisbursementsRequest { case_id })
                .await?
                .into_inner()
                .disbursements;
            Ok((!listed.is_empty()).then_some(listed.len()))
        }
    })
    .await?;
    assert_eq!(ordered, 1);
    let none = client
        .list_disbursements(ListDisbursementsRequest {
            case_id: poison.case_id.clone(),
        })
        .await?
        .into_inner()
        .disbursements;
    assert!(none.is_empty(), "{none:?}");
    let topic = format!("{ns}{}.dlq", jiuzhu_messaging::service_topic("decisions"));
    let dead = read_topic(&kafka_brokers(), &topic, 1)?;
    assert_eq!(dead.len(), 1);
    let headers = jiuzhu_messaging::header_map(rdkafka::Message::headers(&dead[0]));
    let reason = headers
        .get("jiuzhu-dlq-reason")
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("0 fen can never be reserved"), "{reason}");
    payments.running.stop().await;
    Ok(())
}
