//! The staff console and the victims' application page: server-rendered pages in
//! Simplified Chinese (English available) that act through the five services' gRPC APIs for the
//! signed-in person. The console holds one certificate (role `console`) and, for every call,
//! signs the member's staff number, office, role and approval tier; the services judge the call
//! as that member's, so the access table, jurisdiction and audit apply to the person. Staff sign
//! in with a password (Argon2id) and an authenticator code (TOTP); the directory, its audit and
//! the sessions live in the console's own PostgreSQL database. Pages carry a strict
//! Content-Security-Policy, forms a per-session token, cookies `HttpOnly; SameSite=Strict;
//! Secure`.

pub mod assets;
pub mod demo;
pub mod i18n;
pub mod pages;
pub mod platform;
pub mod policy;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod sms;
pub mod staff;
pub mod web;

use std::net::SocketAddr;

use jiuzhu_clock::Clock;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::oneshot;

pub use settings::ConsoleSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console's database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the console's database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Platform(#[from] platform::PlatformError),
    #[error(transparent)]
    Policy(#[from] jiuzhu_policy::PolicyError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The console's migrations (its own database only).
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// Opens the console's database, bringing its tables up to date.
pub async fn database(settings: &ConsoleSettings) -> Result<sqlx::PgPool, ConsoleError> {
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(settings.database_url.expose())
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

/// A console serving until stopped.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking requests and waits for those in flight.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.served).await;
    }

    /// Waits until the server ends (it does when stopped, or on a fatal error).
    pub async fn wait(mut self) {
        let _ = (&mut self.served).await;
    }
}

/// Starts the console: its database, the policy from `policy_dir`, the channels to the
/// services, and the web server on `settings.listen` (port 0: any free port).
pub async fn start(
    settings: ConsoleSettings,
    policy_dir: &std::path::Path,
    clock: Clock,
) -> Result<Running, ConsoleError> {
    let pool = database(&settings).await?;
    let policy = policy::Policy::load(policy_dir)?;
    let platform = platform::Platform::new(&settings, clock.clone())?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ConsoleError::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ConsoleError::Listen {
            addr: settings.listen,
            source,
        })?;
    let state = web::AppState::new(pool, platform, settings, clock, policy);
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the console stopped serving");
        }
    });
    tracing::info!(%addr, "console serving");
    Ok(Running {
        addr,
        stop: Some(stop),
        served,
    })
}
