//! `jiuzhu-console`: serves the staff console, and manages its staff directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jiuzhu_config::{Layers, Validate};
use jiuzhu_console::ConsoleSettings;

#[derive(Parser)]
#[command(name = "jiuzhu-console", about = "The Jiuzhu staff console")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the console (the default).
    Serve,
    /// Add a staff member; prints the authenticator secret once.
    AddStaff {
        #[arg(long)]
        staff_no: String,
        #[arg(long)]
        name: String,
        /// Six-digit region code of the member's office.
        #[arg(long)]
        office: String,
        #[arg(long)]
        role: String,
        /// An approver's approval tier.
        #[arg(long, default_value = "")]
        tier: String,
        #[arg(long)]
        administrator: bool,
        /// The password is read from this environment variable, never from the command line.
        #[arg(long, default_value = "JIUZHU_CONSOLE_PASSWORD")]
        password_env: String,
    },
    /// Add the demo staff of `make run` (those not there yet).
    DemoStaff,
    /// Print a member's current authenticator code (development and demo only: it reads the
    /// secret from the database).
    Code { staff_no: String },
}

fn settings() -> anyhow::Result<(
    ConsoleSettings,
    PathBuf,
    jiuzhu_telemetry::TelemetrySettings,
    jiuzhu_clock::ClockSettings,
)> {
    let layers = Layers::load()?;
    let console: ConsoleSettings = layers.section("console")?;
    console.validate("console")?;
    let policy: jiuzhu_policy::PolicySettings = layers.section("policy")?;
    let telemetry = layers.section("telemetry")?;
    let clock: jiuzhu_clock::ClockSettings = layers.section("clock")?;
    clock.validate("clock")?;
    Ok((console, policy.dir, telemetry, clock))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (console, policy_dir, telemetry, clock) = settings()?;
    let clock = clock.clock();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let guard = jiuzhu_telemetry::init("jiuzhu-console", &telemetry)?;
            let running = jiuzhu_console::start(console, &policy_dir, clock)
                .await
                .context("starting the console")?;
            println!("console: {}", running.url());
            tokio::select! {
                _ = tokio::signal::ctrl_c() => running.stop().await,
                () = async {
                    #[cfg(unix)]
                    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                        term.recv().await;
                    }
                } => {}
            }
            guard.shutdown().await;
        }
        Command::AddStaff {
            staff_no,
            name,
            office,
            role,
            tier,
            administrator,
            password_env,
        } => {
            let password = std::env::var(&password_env)
                .with_context(|| format!("set the password in ${password_env}"))?;
            let pool = jiuzhu_console::database(&console).await?;
            let new = jiuzhu_console::staff::NewStaff {
                staff_no: staff_no.clone(),
                display_name: name,
                office,
                role,
                tier,
                administrator,
                password,
            };
            let secret =
                jiuzhu_console::staff::add(&pool, "command-line", &new, clock.now()).await?;
            println!(
                "added {staff_no}; authenticator secret (enter it in the app, shown once): {secret}"
            );
        }
        Command::DemoStaff => {
            let pool = jiuzhu_console::database(&console).await?;
            let added = jiuzhu_console::demo::add_demo_staff(&pool, clock.now()).await?;
            if !added.is_empty() {
                println!("added demo staff: {}", added.join(", "));
            }
        }
        Command::Code { staff_no } => {
            let pool = jiuzhu_console::database(&console).await?;
            let secret = jiuzhu_console::staff::totp_secret(&pool, &staff_no).await?;
            println!(
                "{}",
                jiuzhu_console::staff::totp_code(&secret, clock.now())?
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("jiuzhu-console: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("jiuzhu-console: {error:#}");
            ExitCode::FAILURE
        }
    }
}
