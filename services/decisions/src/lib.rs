//! The decisions service: Relief cases from application to approval: eligibility, recommendation, decisions and deadline monitoring.
//!
//! Today it starts with its own database (event store, outbox and consumer tables migrated),
//! provisions `jiuzhu.decisions.events.v1`, runs its outbox relay and serves gRPC health and
//! reflection. Its domain (`domain`, `grpc`, `projections` modules and its own
//! migrations, as in the registry) arrives with its own issue.

use jiuzhu_runtime::{Components, Service, ServiceContext, StartError};

/// The decisions service as the runtime sees it.
#[derive(Debug)]
pub struct Decisions;

impl Service for Decisions {
    const NAME: &'static str = "decisions";
    const DEFAULT_PORT: u16 = 50053;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn components(_context: &ServiceContext) -> Result<Components, StartError> {
        Ok(Components::new())
    }
}
