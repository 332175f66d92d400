//! The payments service: Budgets, a double-entry ledger and exactly-once disbursement of relief funds.
//!
//! Today it starts with its own database (event store, outbox and consumer tables migrated),
//! provisions `jiuzhu.payments.events.v1`, runs its outbox relay and serves gRPC health and
//! reflection. Its double-entry ledger (`ledger`), the disbursement state machine (`domain`) and
//! the event contracts are in place; the shell (`grpc`, the provider adapters and simulator,
//! `projections`, migrations) arrives with the rest of its issue.

pub mod domain;
pub mod ledger;

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

    fn components(_context: &ServiceContext) -> Result<Components, StartError> {
        Ok(Components::new())
    }
}
