//! Approved decisions become disbursement orders (`DecisionApproved` on
//! `jiuzhu.decisions.events.v1`), once per decision and instalment, and an amended decision
//! (`DecisionAmended`) orders its supplement once, claimed as instalment 0: the funds are reserved at
//! once when the budget covers them, otherwise the order waits for funds (`FundsShort`) and is
//! reserved by the allocation that covers it, oldest first, in the allocation's own transaction.

use futures::FutureExt;
use jiuzhu_errors::AppError;
use jiuzhu_eventstore::UnitOfWork;
use jiuzhu_messaging::{ProjectionError, Reaction, service_topic};
use jiuzhu_proto::common::EventEnvelope;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::decisions::{DecisionAmended, DecisionApproved};
use jiuzhu_proto::payments::DisbursementOrdered;
use jiuzhu_runtime::grpc::run_internal;
use uuid::Uuid;

use crate::app::PaymentsApi;
use crate::books;
use crate::domain::{Disbursement, PaymentsEvent, instalment_plan};
use crate::ledger::{Transaction, budget};

jiuzhu_eventstore::event_enum! {
    /// The decision events that order payments.
    pub enum Approvals {
        DecisionApproved(DecisionApproved),
        DecisionAmended(DecisionAmended),
    }
}

const ORDER: &str = "jiuzhu.payments.v1.DisbursementOrders";

/// Reserves (or records as short) a disbursement inside `work`, moving the money when it can.
pub(crate) async fn reserve(
    work: &mut UnitOfWork<'_>,
    disbursement: &Disbursement,
    version: i64,
) -> Result<bool, AppError> {
    let Some(ordered) = &disbursement.ordered else {
        return Ok(false);
    };
    let fen = ordered.amount.map_or(0, |m| m.fen);
    let office = books::budget_office(work.connection().await?, &ordered.procuratorate)
        .await
        .map_err(AppError::storage)?;
    // Another office's budget of the same name is not this case's to draw on: it waits.
    let available = if books::draws_on(office.as_deref(), &ordered.region_code) {
        books::balance_for_update(work.connection().await?, &budget(&ordered.procuratorate))
            .await
            .map_err(AppError::storage)?
    } else {
        0
    };
    let events = disbursement
        .reserve(available)
        .map_err(|error| AppError::failed_precondition(error.to_string()))?;
    let reserved_now = events
        .iter()
        .any(|e| matches!(e, PaymentsEvent::FundsReserved(_)));
    if events.is_empty() {
        return Ok(false);
    }
    work.append(
        &ordered.disbursement_id,
        version,
        &ordered.person_id,
        &events,
    )
    .await
    .map_err(AppError::from)?;
    let id = Uuid::parse_str(&ordered.disbursement_id)
        .map_err(|_| AppError::internal("disbursement id is not a UUID"))?;
    if reserved_now {
        let transaction = Transaction::reservation(&ordered.procuratorate, fen)
            .map_err(|error| AppError::internal(error.to_string()))?;
        books::post(
            work.connection().await?,
            &transaction,
            &format!("reserve {}", ordered.disbursement_id),
        )
        .await
        .map_err(AppError::storage)?;
        sqlx::query("DELETE FROM waiting_for_funds WHERE disbursement_id = $1")
            .bind(id)
            .execute(work.connection().await?)
            .await
            .map_err(AppError::storage)?;
        due_now(work, disbursement).await?;
    } else {
        sqlx::query(
            "INSERT INTO waiting_for_funds (disbursement_id, procuratorate, fen) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&ordered.procuratorate)
        .bind(fen)
        .execute(work.connection().await?)
        .await
        .map_err(AppError::storage)?;
    }
    Ok(reserved_now)
}

/// Puts a disbursement whose money is held on the submitter's list, due now.
pub(crate) async fn due_now(
    work: &mut UnitOfWork<'_>,
    disbursement: &Disbursement,
) -> Result<(), AppError> {
    let Some(ordered) = &disbursement.ordered else {
        return Ok(());
    };
    let id = Uuid::parse_str(&ordered.disbursement_id)
        .map_err(|_| AppError::internal("disbursement id is not a UUID"))?;
    let person = Uuid::parse_str(&ordered.person_id)
        .map_err(|_| AppError::internal("person id is not a UUID"))?;
    // A later instalment is not due before its day (midnight in Beijing).
    let due = chrono::NaiveDate::parse_from_str(&ordered.pay_from, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc() - chrono::Duration::hours(8))
        .filter(|at| *at > work.clock().now())
        .unwrap_or_else(|| work.clock().now());
    let trace = sqlx::types::Json(jiuzhu_telemetry::current_context_to_map());
    sqlx::query(
        "INSERT INTO submissions (disbursement_id, person_id, due_at, trace_context) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (disbursement_id) DO UPDATE SET due_at = EXCLUDED.due_at",
    )
    .bind(id)
    .bind(person)
    .bind(due)
    .bind(trace)
    .execute(work.connection().await?)
    .await
    .map_err(AppError::storage)?;
    Ok(())
}

/// After budget arrives: reserves the waiting disbursements it covers, oldest first.
pub(crate) async fn reserve_waiting(
    work: &mut UnitOfWork<'_>,
    procuratorate: &str,
) -> Result<usize, AppError> {
    let waiting: Vec<Uuid> = sqlx::query_scalar(
        "SELECT disbursement_id FROM waiting_for_funds WHERE procuratorate = $1 ORDER BY position",
    )
    .bind(procuratorate)
    .fetch_all(work.connection().await?)
    .await
    .map_err(AppError::storage)?;
    let office = books::budget_office(work.connection().await?, procuratorate)
        .await
        .map_err(AppError::storage)?;
    let mut reserved_count = 0;
    for id in waiting {
        let (disbursement, version) = work
            .load::<Disbursement>(&id.to_string())
            .await
            .map_err(AppError::from)?;
        if !books::draws_on(office.as_deref(), disbursement.region_code()) {
            // Not this budget's to serve; it must not hold up the queue either.
            continue;
        }
        if !reserve(work, &disbursement, version).await? {
            // Oldest first: a later, smaller one does not jump the queue.
            break;
        }
        reserved_count += 1;
    }
    Ok(reserved_count)
}

/// Claims (case, instalment) and orders it, reserving its money; false when it was ordered
/// before. A supplement is claimed as instalment 0.
async fn order_instalment(
    work: &mut UnitOfWork<'_>,
    case_id: Uuid,
    order: &DisbursementOrdered,
) -> Result<bool, AppError> {
    let disbursement_id = Uuid::parse_str(&order.disbursement_id)
        .map_err(|_| AppError::internal("disbursement id is not a UUID"))?;
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO disbursement_claims (case_id, instalment, disbursement_id) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING disbursement_id",
    )
    .bind(case_id)
    .bind(if order.supplement {
        0
    } else {
        order.instalment
    })
    .bind(disbursement_id)
    .fetch_optional(work.connection().await?)
    .await
    .map_err(AppError::storage)?;
    if claimed.is_none() {
        return Ok(false);
    }
    let ordered = PaymentsEvent::DisbursementOrdered(order.clone());
    work.append(
        &order.disbursement_id,
        0,
        &order.person_id,
        std::slice::from_ref(&ordered),
    )
    .await
    .map_err(AppError::from)?;
    let mut disbursement = Disbursement::default();
    jiuzhu_eventstore::Aggregate::apply(&mut disbursement, &ordered);
    reserve(work, &disbursement, 1).await?;
    Ok(true)
}

#[derive(Debug)]
pub struct DecisionOrders {
    api: PaymentsApi,
}

impl DecisionOrders {
    pub fn new(api: PaymentsApi) -> Self {
        Self { api }
    }

    async fn order(&self, approved: DecisionApproved) -> Result<(), AppError> {
        // What can never be carried out is dead-lettered at once, naming why.
        let case_id = Uuid::parse_str(&approved.case_id).map_err(|_| {
            AppError::invalid("case_id", format!("`{}` is not a UUID", approved.case_id))
        })?;
        let fen = approved.amount.map_or(0, |m| m.fen);
        if fen <= 0 {
            return Ok(());
        }
        let approved_on = chrono::NaiveDate::parse_from_str(&approved.approved_on, "%Y-%m-%d")
            .unwrap_or_else(|_| self.api.store().clock().today());
        let plan = instalment_plan(
            fen,
            approved.instalments,
            approved.instalment_every_months,
            approved_on,
        );
        if plan.iter().any(|instalment| instalment.fen <= 0) {
            return Err(AppError::failed_precondition(format!(
                "{fen} fen cannot be paid in {} instalments: an instalment of 0 fen can never \
                 be reserved",
                approved.instalments
            )));
        }
        run_internal(
            self.api.store(),
            ORDER,
            &format!("order-{case_id}"),
            move |work| {
                async move {
                    let mut first = DisbursementOrdered::default();
                    for instalment in &plan {
                        let order = DisbursementOrdered {
                            disbursement_id: Uuid::now_v7().to_string(),
                            case_id: approved.case_id.clone(),
                            instalment: instalment.number,
                            person_id: approved.person_id.clone(),
                            procuratorate: approved.procuratorate.clone(),
                            amount: Some(Money {
                                fen: instalment.fen,
                            }),
                            sealed_payee: None,
                            payee_account_masked: String::new(),
                            pay_from: instalment.pay_from.format("%Y-%m-%d").to_string(),
                            instalments: i32::try_from(plan.len()).unwrap_or(1),
                            region_code: approved.region_code.clone(),
                            supplement: false,
                        };
                        if order_instalment(work, case_id, &order).await? && instalment.number == 1
                        {
                            first = order;
                        }
                    }
                    Ok(first)
                }
                .boxed()
            },
        )
        .await?;
        crate::submission::crash_point(self.api.settings(), "after_reserve");
        self.api.wake_submitter();
        Ok(())
    }

    /// The difference an amended decision adds, ordered once as its own disbursement.
    async fn supplement(&self, amended: DecisionAmended) -> Result<(), AppError> {
        let case_id = Uuid::parse_str(&amended.case_id).map_err(|_| {
            AppError::invalid("case_id", format!("`{}` is not a UUID", amended.case_id))
        })?;
        let fen = amended.supplement.map_or(0, |m| m.fen);
        if fen <= 0 {
            return Err(AppError::failed_precondition(format!(
                "a supplement of {fen} fen can never be paid"
            )));
        }
        let order = DisbursementOrdered {
            disbursement_id: Uuid::now_v7().to_string(),
            case_id: amended.case_id.clone(),
            instalment: 1,
            person_id: amended.person_id.clone(),
            procuratorate: amended.procuratorate.clone(),
            amount: Some(Money { fen }),
            sealed_payee: None,
            payee_account_masked: String::new(),
            pay_from: amended.amended_on.clone(),
            instalments: 1,
            region_code: amended.region_code.clone(),
            supplement: true,
        };
        run_internal(
            self.api.store(),
            ORDER,
            &format!("supplement-{case_id}"),
            move |work| {
                async move {
                    order_instalment(work, case_id, &order).await?;
                    Ok(order)
                }
                .boxed()
            },
        )
        .await?;
        self.api.wake_submitter();
        Ok(())
    }
}

impl Reaction for DecisionOrders {
    type Events = Approvals;

    fn name(&self) -> &str {
        "payments.decision_orders"
    }

    fn topics(&self) -> Vec<String> {
        vec![service_topic("decisions")]
    }

    async fn react(
        &self,
        _envelope: &EventEnvelope,
        event: Approvals,
    ) -> Result<(), ProjectionError> {
        match event {
            Approvals::DecisionApproved(approved) => self.order(approved).await,
            Approvals::DecisionAmended(amended) => self.supplement(amended).await,
        }
        .map_err(jiuzhu_messaging::ProjectionError::from)
    }
}
