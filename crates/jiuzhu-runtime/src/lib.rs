//! The host every Jiuzhu service runs in, so that a service crate holds its domain and little
//! else. A service describes itself with [`Service`] (name, migrations, topics, gRPC routes,
//! projections); the runtime loads and validates settings, connects to PostgreSQL and migrates,
//! provisions Kafka topics, serves gRPC with health, reflection and trace propagation, runs the
//! outbox relay and projection consumers, offers `migrate`/`projections`/`rebuild` commands,
//! and shuts everything down cleanly on SIGTERM or Ctrl-C.

pub mod cli;
pub mod grpc;
mod host;
pub mod metrics;
mod projection;
pub mod readiness;
mod settings;
pub mod supervise;

pub use host::{
    Components, Running, ServiceContext, StartError, assemble, connect, migrate, migrators_of,
    start,
};
pub use projection::{
    RegisteredInbound, RegisteredProjection, register, register_inbound, register_reaction,
};
pub use settings::{DeadlineSettings, PeerSettings, ServiceSettings, Settings};

use sqlx::migrate::Migrator;

/// What a service tells the runtime about itself.
pub trait Service: Send + Sync + 'static {
    /// Short name: `registry`, `clues`, `decisions`, `payments`, `followup`.
    const NAME: &'static str;
    /// Port the service listens on unless configured otherwise.
    const DEFAULT_PORT: u16;
    /// The settings sections the service owns (payments' `provider`); it reads them from
    /// `settings.own` in `components`.
    const SECTIONS: &'static [&'static str] = &[];

    /// Migrations of the service's own tables (versions 1000 and above).
    fn migrator() -> Migrator;

    /// Migrations of shared projections the service keeps (such as `jiuzhu_persons`), run after
    /// the platform's and before its own.
    fn shared_migrators() -> Vec<Migrator> {
        Vec::new()
    }

    /// Builds the gRPC services and projections over the started plumbing; fails (with a
    /// message naming the setting) when the service's own configuration is unusable.
    fn components(context: &ServiceContext) -> Result<Components, StartError>;
}
