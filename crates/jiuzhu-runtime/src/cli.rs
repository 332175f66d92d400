//! The command line every service binary shares:
//! `serve` (default), `migrate`, `projections`, `rebuild <projection> [--from topic|store]`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use jiuzhu_config::Layers;

use crate::host::{assemble, connect};
use crate::{Service, Settings, start};

#[derive(Debug, Parser)]
#[command(
    about = "A Jiuzhu service. Configuration: config/default.toml, config/$JIUZHU_ENV.toml, JIUZHU__SECTION__KEY variables."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC, relay the outbox and run the projections until SIGTERM or Ctrl-C.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// List the service's projections and the topics they read.
    Projections,
    /// Empty a projection and rebuild it, reporting progress. Stop the service first.
    Rebuild {
        /// Projection name, as `projections` lists it.
        projection: String,
        /// Where the events come from.
        #[arg(long, value_enum, default_value_t = Source::Topic)]
        from: Source,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Source {
    /// The Kafka topics the projection consumes.
    Topic,
    /// This service's own event store.
    Store,
}

/// Entry point of a service binary.
pub fn main<S: Service>() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "jiuzhu-{}: cannot start the async runtime: {error}",
                S::NAME
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::<S>(cli.command.unwrap_or(Command::Serve))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jiuzhu-{}: {error:#}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn run<S: Service>(command: Command) -> anyhow::Result<()> {
    let layers = Layers::load()?;
    let settings = Settings::from_layers(&layers, S::NAME, S::DEFAULT_PORT, S::SECTIONS)?;
    match command {
        Command::Serve => serve::<S>(settings).await,
        Command::Migrate => {
            connect::<S>(&settings).await?;
            eprintln!("jiuzhu-{}: migrations applied", S::NAME);
            Ok(())
        }
        Command::Projections => {
            let pool = connect::<S>(&settings).await?;
            let (_, components) = assemble::<S>(pool, settings)?;
            for projection in components.projections() {
                println!("{}\t{}", projection.name(), projection.topics().join(","));
            }
            Ok(())
        }
        Command::Rebuild { projection, from } => rebuild::<S>(settings, &projection, from).await,
    }
}

async fn serve<S: Service>(settings: Settings) -> anyhow::Result<()> {
    let telemetry = jiuzhu_telemetry::init(&format!("jiuzhu-{}", S::NAME), &settings.telemetry)?;
    let running = match start::<S>(settings).await {
        Ok(running) => running,
        Err(error) => {
            telemetry.shutdown().await;
            return Err(error.into());
        }
    };
    eprintln!(
        "jiuzhu-{} listening on grpc://{}",
        S::NAME,
        running.grpc_addr
    );
    let stop = running.shutdown_token();
    tokio::select! {
        () = termination() => tracing::info!("termination signal received"),
        () = stop.cancelled() => {}
    }
    running.stop().await;
    telemetry.shutdown().await;
    Ok(())
}

async fn termination() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

async fn rebuild<S: Service>(settings: Settings, name: &str, from: Source) -> anyhow::Result<()> {
    let pool = connect::<S>(&settings).await?;
    let (context, components) = assemble::<S>(pool, settings)?;
    let projection = components
        .projections()
        .iter()
        .find(|p| p.name() == name)
        .with_context(|| {
            let known: Vec<&str> = components.projections().iter().map(|p| p.name()).collect();
            format!(
                "no projection named `{name}`; this service has: {}",
                known.join(", ")
            )
        })?;
    let progress = Box::new(|p: jiuzhu_messaging::RebuildProgress| {
        let percent = (p.applied * 100).checked_div(p.total).unwrap_or(100);
        eprintln!(
            "rebuild {name}: {}/{} events ({percent}%)",
            p.applied, p.total
        );
    });
    let done = match from {
        Source::Topic => {
            projection
                .rebuild_from_topic(
                    &context.pool,
                    &context.settings.kafka,
                    &context.settings.consumer,
                    progress,
                )
                .await?
        }
        Source::Store => {
            projection
                .rebuild_from_store(&context.store, &context.settings.consumer, progress)
                .await?
        }
    };
    eprintln!("rebuild {name}: done, {} events applied", done.applied);
    Ok(())
}
