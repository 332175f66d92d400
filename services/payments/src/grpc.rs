//! The payments service's gRPC shell: budget allocation (which also reserves the orders that
//! waited for it) and balances; disbursement commands follow with the provider.

use futures::FutureExt;
use jiuzhu_eventstore::EventStore;
use jiuzhu_proto::common::Money;
use jiuzhu_proto::payments::payments_service_server::PaymentsService;
use jiuzhu_proto::payments::*;
use jiuzhu_runtime::grpc::{FieldViolations, database_status, run_command, store_status};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::books;
use crate::domain::PaymentsEvent;
use crate::ledger::{FINANCE, Transaction, budget};

const SERVICE: &str = "jiuzhu.payments.v1.PaymentsService";

#[derive(Debug, Clone)]
pub struct PaymentsApi {
    store: EventStore,
}

impl PaymentsApi {
    pub fn new(store: EventStore) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }
}

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn allocate_budget(
        &self,
        request: Request<AllocateBudgetRequest>,
    ) -> Result<Response<AllocateBudgetResponse>, Status> {
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        violations.require(&[
            ("procuratorate", &request.procuratorate),
            ("document_reference", &request.document_reference),
            ("allocated_by", &request.allocated_by),
        ]);
        let fen = request.amount.map_or(0, |m| m.fen);
        if fen <= 0 {
            violations.add("amount", "must be a positive number of fen");
        }
        violations.into_result()?;
        let procuratorate = request.procuratorate.trim().to_owned();
        let allocated = BudgetAllocated {
            allocation_id: Uuid::now_v7().to_string(),
            procuratorate: procuratorate.clone(),
            amount: Some(Money { fen }),
            document_reference: request.document_reference.trim().to_owned(),
            allocated_by: request.allocated_by.trim().to_owned(),
        };
        let transaction = Transaction::transfer(FINANCE, &budget(&procuratorate), fen)
            .map_err(|error| FieldViolations::single("amount", error.to_string()))?;
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/AllocateBudget"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let stream = allocated.allocation_id.clone();
                    work.append(
                        &stream,
                        0,
                        &procuratorate,
                        &[PaymentsEvent::BudgetAllocated(allocated.clone())],
                    )
                    .await
                    .map_err(store_status)?;
                    books::post(
                        work.connection(),
                        &transaction,
                        &format!("allocation {}", allocated.document_reference),
                    )
                    .await
                    .map_err(database_status)?;
                    // Orders waiting for funds are served first, oldest first.
                    crate::orders::reserve_waiting(work, &procuratorate).await?;
                    let free =
                        books::balance_for_update(work.connection(), &budget(&procuratorate))
                            .await
                            .map_err(database_status)?;
                    Ok(AllocateBudgetResponse {
                        allocation_id: stream,
                        budget: Some(Money { fen: free }),
                    })
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_balances(
        &self,
        request: Request<GetBalancesRequest>,
    ) -> Result<Response<GetBalancesResponse>, Status> {
        let procuratorate = request.into_inner().procuratorate.trim().to_owned();
        if procuratorate.is_empty() {
            return Err(FieldViolations::single("procuratorate", "is required"));
        }
        let (budget, reserved, paid) = books::balances(self.store.pool(), &procuratorate)
            .await
            .map_err(database_status)?;
        Ok(Response::new(GetBalancesResponse {
            budget: Some(Money { fen: budget }),
            reserved: Some(Money { fen: reserved }),
            paid: Some(Money { fen: paid }),
        }))
    }
}
