//! The payments service: Budgets, a double-entry ledger and exactly-once disbursement of relief funds.
//!
//! Today it starts with its own database (event store, outbox and consumer tables migrated),
//! provisions `jiuzhu.payments.events.v1`, runs its outbox relay and serves gRPC health and
//! reflection. In place: the double-entry ledger (`ledger`, kept in PostgreSQL by `books`),
//! budget allocation and balances (`grpc`), the disbursement state machine (`domain`) and the
//! event contracts. Ordering disbursements from approved decisions, the provider adapters and
//! simulator, reconciliation and `projections` arrive with the rest of its issue.

pub mod books;
pub mod domain;
pub mod grpc;
pub mod ledger;

use jiuzhu_proto::payments::payments_service_server::PaymentsServiceServer;
use jiuzhu_runtime::{Components, Service, ServiceContext, StartError};

/// The payments service as the runtime sees it.
#[derive(Debug)]
pub struct Payments;

impl Service for Payments {
    const NAME: &'static str = "payments";
    const DEFAULT_PORT: u16 = 50054;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn components(context: &ServiceContext) -> Result<Components, StartError> {
        Ok(
            Components::new().grpc(PaymentsServiceServer::new(grpc::PaymentsApi::new(
                context.store.clone(),
            ))),
        )
    }
}
