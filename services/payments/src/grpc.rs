//! The payments service's gRPC shell: budget allocation (which also reserves the orders that
//! waited for it) and balances; disbursement commands follow with the provider.

use futures::FutureExt;
use jiuzhu_access::Caller;
use jiuzhu_errors::{AppError, FieldViolations};
use jiuzhu_proto::common::Money;
use jiuzhu_proto::gateway::gateway_notice_service_server::GatewayNoticeService;
use jiuzhu_proto::gateway::{NotifyRequest, NotifyResponse};
use jiuzhu_proto::payments::payments_service_server::PaymentsService;
use jiuzhu_proto::payments::*;
use jiuzhu_runtime::grpc::{PersonalAccess, run_command};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::{PaymentsApi, SERVICE, state_of};
use crate::books;
use crate::domain::{Disbursement as DisbursementAggregate, PaymentsEvent, State};
use crate::ledger::{Transaction, budget};
use crate::submission::Notices;

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn allocate_budget(
        &self,
        request: Request<AllocateBudgetRequest>,
    ) -> Result<Response<AllocateBudgetResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        violations.require(&[
            ("procuratorate", &request.procuratorate),
            ("document_reference", &request.document_reference),
        ]);
        let fen = request.amount.map_or(0, |m| m.fen);
        if fen <= 0 {
            violations.add("amount", "must be a positive number of fen");
        }
        violations.into_result()?;
        let procuratorate = request.procuratorate.trim().to_owned();
        let mut allocated = BudgetAllocated {
            allocation_id: Uuid::now_v7().to_string(),
            procuratorate: procuratorate.clone(),
            amount: Some(Money { fen }),
            document_reference: request.document_reference.trim().to_owned(),
            allocated_by: caller.recorded_as(),
            office: String::new(),
        };
        let transaction = Transaction::allocation(&procuratorate, fen)
            .map_err(|error| FieldViolations::single("amount", error.to_string()))?;
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/AllocateBudget"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    allocated.office =
                        books::bind_budget(work.connection().await?, &procuratorate, &caller)
                            .await?;
                    let stream = allocated.allocation_id.clone();
                    work.append(
                        &stream,
                        0,
                        &procuratorate,
                        &[PaymentsEvent::BudgetAllocated(allocated.clone())],
                    )
                    .await
                    .map_err(AppError::from)?;
                    books::post(
                        work.connection().await?,
                        &transaction,
                        &format!("allocation {}", allocated.document_reference),
                    )
                    .await
                    .map_err(AppError::storage)?;
                    // Orders waiting for funds are served first, oldest first.
                    crate::orders::reserve_waiting(work, &procuratorate).await?;
                    let free = books::balance_for_update(
                        work.connection().await?,
                        &budget(&procuratorate),
                    )
                    .await
                    .map_err(AppError::storage)?;
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

    async fn get_disbursement(
        &self,
        request: Request<GetDisbursementRequest>,
    ) -> Result<Response<GetDisbursementResponse>, Status> {
        let access = PersonalAccess::read(&request, &request.get_ref().purpose, "")?;
        let answer: Result<Response<GetDisbursementResponse>, Status> = async {
            access.check_purpose()?;
            let id =
                jiuzhu_errors::uuid_field("disbursement_id", &request.get_ref().disbursement_id)?;
            Ok(Response::new(GetDisbursementResponse {
                disbursement: Some(self.disbursement(access.caller(), id).await?),
            }))
        }
        .await;
        access
            .finish(answer, |answer| {
                answer
                    .get_ref()
                    .disbursement
                    .as_ref()
                    .map(|d| d.person_id.clone())
                    .unwrap_or_default()
            })
            .await
    }

    async fn list_disbursements(
        &self,
        request: Request<ListDisbursementsRequest>,
    ) -> Result<Response<ListDisbursementsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let case_id = jiuzhu_errors::uuid_field("case_id", &request.get_ref().case_id)?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            // The supplement of an amended decision is claimed as instalment 0: it comes last.
            "SELECT disbursement_id FROM disbursement_claims WHERE case_id = $1 \
             ORDER BY instalment = 0, instalment",
        )
        .bind(case_id)
        .fetch_all(self.store.pool())
        .await
        .map_err(AppError::storage)?;
        let mut disbursements = Vec::with_capacity(ids.len());
        for id in ids {
            disbursements.push(self.disbursement(&caller, id).await?);
        }
        Ok(Response::new(ListDisbursementsResponse { disbursements }))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, disbursement_id = %request.get_ref().disbursement_id))]
    async fn cancel_disbursement(
        &self,
        request: Request<CancelDisbursementRequest>,
    ) -> Result<Response<CancelDisbursementResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let id = jiuzhu_errors::uuid_field("disbursement_id", &request.disbursement_id)?;
        violations.require(&[("reason", &request.reason)]);
        violations.into_result()?;
        let (reason, by) = (request.reason.trim().to_owned(), caller.recorded_as());
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/CancelDisbursement"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let disbursement = work
                        .decide_on(&id.to_string(), |d: &DisbursementAggregate| {
                            caller.office_check(d.region_code())?;
                            Ok::<_, AppError>(d.cancel(&reason, &by)?)
                        })
                        .await?
                        .before;
                    let ordered = disbursement.ordered.clone().unwrap_or_default();
                    // Held money goes back to the budget; a waiting order leaves the queue.
                    if disbursement.reserved {
                        let fen = ordered.amount.map_or(0, |m| m.fen);
                        let transaction = Transaction::release(&ordered.procuratorate, fen)
                            .map_err(|error| AppError::internal(error.to_string()))?;
                        books::post(
                            work.connection().await?,
                            &transaction,
                            &format!("cancel {id}"),
                        )
                        .await
                        .map_err(AppError::storage)?;
                    }
                    sqlx::query("DELETE FROM waiting_for_funds WHERE disbursement_id = $1")
                        .bind(id)
                        .execute(work.connection().await?)
                        .await
                        .map_err(AppError::storage)?;
                    Ok(CancelDisbursementResponse {})
                }
                .boxed()
            },
        )
        .await?;
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn register_payee(
        &self,
        request: Request<RegisterPayeeRequest>,
    ) -> Result<Response<RegisterPayeeResponse>, Status> {
        let access = PersonalAccess::change(&request, &request.get_ref().person_id)?;
        let answer: Result<Response<RegisterPayeeResponse>, Status> = async {
            let actor = jiuzhu_access::Actor::Caller(access.caller().clone());
            let audited = access.change_record(&request.get_ref().person_id);
            let answer =
                crate::payees::register(self, &actor, &audited, request.into_inner()).await?;
            self.wake_submitter();
            Ok(Response::new(answer))
        }
        .await;
        access.finish(answer, |_| String::new()).await
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id, disbursement_id = %request.get_ref().disbursement_id))]
    async fn retry_disbursement(
        &self,
        request: Request<RetryDisbursementRequest>,
    ) -> Result<Response<RetryDisbursementResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        violations.check_request_id(&request.request_id);
        let id = jiuzhu_errors::uuid_field("disbursement_id", &request.disbursement_id)?;
        violations.require(&[("reason", &request.reason)]);
        violations.into_result()?;
        let (by, reason) = (caller.recorded_as(), request.reason.trim().to_owned());
        let answer = run_command(
            &self.store,
            &format!("{SERVICE}/RetryDisbursement"),
            &request.request_id,
            &request,
            move |work| {
                async move {
                    let decided = work
                        .decide_on(&id.to_string(), |d: &DisbursementAggregate| {
                            caller.office_check(d.region_code())?;
                            Ok::<_, AppError>(d.retry(&by, &reason)?)
                        })
                        .await?;
                    let (retried, version) = (decided.after, decided.version);
                    if retried.state == State::Reserved {
                        crate::orders::due_now(work, &retried).await?;
                    } else {
                        // The definite failure released the money: hold it again, or wait.
                        crate::orders::reserve(work, &retried, version).await?;
                    }
                    let (now, _) = work
                        .load::<DisbursementAggregate>(&id.to_string())
                        .await
                        .map_err(AppError::from)?;
                    Ok(RetryDisbursementResponse {
                        state: state_of(now.state).into(),
                    })
                }
                .boxed()
            },
        )
        .await?;
        self.wake_submitter();
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all, fields(request_id = %request.get_ref().request_id))]
    async fn import_statement(
        &self,
        request: Request<ImportStatementRequest>,
    ) -> Result<Response<ImportStatementResponse>, Status> {
        let caller = Caller::of(&request)?;
        let answer = crate::reconciliation::import(
            &self.store,
            self.settings(),
            &caller,
            request.into_inner(),
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_reconciliation_report(
        &self,
        request: Request<GetReconciliationReportRequest>,
    ) -> Result<Response<GetReconciliationReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        let answer = crate::reconciliation::report(
            self.store.pool(),
            &caller,
            &request.get_ref().statement_id,
        )
        .await?;
        Ok(Response::new(answer))
    }

    async fn get_balances(
        &self,
        request: Request<GetBalancesRequest>,
    ) -> Result<Response<GetBalancesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let procuratorate = request.into_inner().procuratorate.trim().to_owned();
        if procuratorate.is_empty() {
            return Err(FieldViolations::single("procuratorate", "is required").into());
        }
        let pool = self.store.pool();
        let office = books::budget_office(pool, &procuratorate)
            .await
            .map_err(AppError::storage)?;
        let (budget, reserved, paid) = books::balances(pool, &procuratorate)
            .await
            .map_err(AppError::storage)?;
        match office {
            Some(office) => caller.office_check(&office)?,
            // Funded before budgets had offices: its next allocation binds it.
            None if !caller.nationwide && (budget, reserved, paid) != (0, 0, 0) => {
                return Err(AppError::permission_denied(format!(
                    "the budget of {procuratorate} belongs to no office yet, so to no jurisdiction \
                     of office {}; its next allocation binds it",
                    caller.identity.office
                ))
                .into());
            }
            None => {}
        }
        Ok(Response::new(GetBalancesResponse {
            budget: Some(Money { fen: budget }),
            reserved: Some(Money { fen: reserved }),
            paid: Some(Money { fen: paid }),
        }))
    }
}

#[tonic::async_trait]
impl GatewayNoticeService for Notices {
    #[tracing::instrument(skip_all, fields(key = %request.get_ref().idempotency_key))]
    async fn notify(
        &self,
        request: Request<NotifyRequest>,
    ) -> Result<Response<NotifyResponse>, Status> {
        Ok(Response::new(
            Notices::notify(self, request.into_inner()).await?,
        ))
    }
}
