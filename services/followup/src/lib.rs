//! The followup service: Return visits, effect evaluation and return-to-poverty alerts after relief is paid.
//!
//! Today it starts with its own database (event store, outbox and consumer tables migrated),
//! provisions `jiuzhu.followup.events.v1`, runs its outbox relay and serves gRPC health and
//! reflection. Its domain (`domain`, `grpc`, `projections` modules and its own
//! migrations, as in the registry) arrives with its own issue.

pub mod domain;
pub mod policy;

use jiuzhu_runtime::{Components, Service, ServiceContext, StartError};

/// The followup service as the runtime sees it.
#[derive(Debug)]
pub struct Followup;

impl Service for Followup {
    const NAME: &'static str = "followup";
    const DEFAULT_PORT: u16 = 50055;

    fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("./migrations")
    }

    fn components(_context: &ServiceContext) -> Result<Components, StartError> {
        Ok(Components::new())
    }
}
