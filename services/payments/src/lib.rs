//! The payments service: Budgets, a double-entry ledger and exactly-once disbursement of relief funds.
//!
//! Today it starts with its own database (event store, outbox and consumer tables migrated),
//! provisions `jiuzhu.payments.events.v1`, runs its outbox relay and serves gRPC health and
//! reflection. In place: the double-entry ledger (`ledger`, kept in PostgreSQL by `books`),
//! budget allocation and balances (`grpc`), the disbursement state machine (`domain`) and the
//! event contracts, and disbursements ordered from approved decisions with their funds reserved
//! or waiting (`orders`). The provider adapters and simulator, submission, reconciliation and
//! `projections` arrive with the rest of its issue.

pub mod books;
pub mod domain;
pub mod grpc;
pub mod ledger;
pub mod orders;

use jiuzhu_proto::payments::payments_service_server::PaymentsServiceServer;
use jiuzhu_runtime::{Components, Service, ServiceContext, StartError, register_inbound};

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
        let api = grpc::PaymentsApi::new(context.store.clone());
        Ok(Components::new()
            .grpc(PaymentsServiceServer::new(api.clone()))
            .inbound(register_inbound(orders::DecisionOrders::new(api))))
    }
}
