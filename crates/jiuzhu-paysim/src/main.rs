//! `jiuzhu-paysim`: the payment provider simulator as a process.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use jiuzhu_paysim::{Behaviour, Scenario, Simulator, bind, serve};

/// A payment provider simulator serving the gateway protocol (jiuzhu.gateway.v1).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "JIUZHU_PAYSIM_LISTEN", default_value = "127.0.0.1:50060")]
    listen: SocketAddr,
    /// The payments service's endpoint for outcome notices (e.g. http://127.0.0.1:50054);
    /// none: no notices.
    #[arg(long, env = "JIUZHU_PAYSIM_NOTIFY")]
    notify: Option<String>,
    /// OTLP/gRPC endpoint for the simulator's spans (default: OTEL_EXPORTER_OTLP_ENDPOINT;
    /// neither: none leave the process).
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Certificates (`ca.pem`, `paysim.pem`, `paysim.key`, as `jiuzhu dev certs` writes them):
    /// served over mutual TLS, notices sent with the same certificate.
    #[arg(long, env = "JIUZHU_PAYSIM_TLS_DIR", default_value = ".jiuzhu/certs")]
    tls_dir: std::path::PathBuf,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer "pending" and send the outcome as a notice.
    #[arg(long)]
    asynchronous: bool,
    /// Delay of a notice after the payment, in milliseconds.
    #[arg(long, default_value_t = 50)]
    notice_delay_ms: u64,
    /// Extra copies of every notice.
    #[arg(long, default_value_t = 0)]
    duplicate_notices: u32,
    /// Send one more copy of each notice this many milliseconds late (0: none).
    #[arg(long, default_value_t = 0)]
    late_notice_ms: u64,
    /// Share of payments refused as retryable, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Share of payments made without ever answering, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// How long an unanswered call is held, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    timeout_hold_ms: u64,
    /// Seed for the rates (the same seed repeats a run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// PREFIX=reject|flaky|timeout: what happens to accounts starting with PREFIX (repeatable).
    #[arg(long = "scenario", value_parser = parse_scenario)]
    scenarios: Vec<(String, Scenario)>,
    /// Keep the record of payments in this file (JSON lines), read back at start: a restarted
    /// simulator remembers what it paid. None: the record lives as long as the process.
    #[arg(long)]
    journal: Option<std::path::PathBuf>,
}

fn parse_scenario(text: &str) -> Result<(String, Scenario), String> {
    let (prefix, scenario) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected PREFIX=reject|flaky|timeout"))?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "`{prefix}`: an account prefix is letters and digits"
        ));
    }
    Ok((prefix.to_owned(), scenario.parse()?))
}

fn rate(name: &str, value: f64) -> anyhow::Result<f64> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        anyhow::bail!("--{name} must be between 0 and 1, not {value}")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Spans go where OTEL_EXPORTER_OTLP_ENDPOINT says (or `--otlp-endpoint`), like a bank's
    // gateway that joins the caller's trace.
    let telemetry = jiuzhu_telemetry::init(
        "jiuzhu-paysim",
        &jiuzhu_telemetry::TelemetrySettings {
            otlp_endpoint: args.otlp_endpoint.clone().unwrap_or_default(),
            ..jiuzhu_telemetry::TelemetrySettings::default()
        },
    )?;
    let behaviour = Behaviour {
        latency: Duration::from_millis(args.latency_ms),
        asynchronous: args.asynchronous,
        notice_delay: Duration::from_millis(args.notice_delay_ms),
        duplicate_notices: args.duplicate_notices,
        late_notice: Duration::from_millis(args.late_notice_ms),
        failure_rate: rate("failure-rate", args.failure_rate)?,
        timeout_rate: rate("timeout-rate", args.timeout_rate)?,
        timeout_hold: Duration::from_millis(args.timeout_hold_ms),
        seed: args.seed,
        scenarios: args.scenarios,
    };
    let tls = jiuzhu_access::TlsSettings::in_dir(&args.tls_dir);
    let notify = match args.notify.as_deref() {
        Some(url) if !url.is_empty() => Some(tls.endpoint("paysim", url)?),
        _ => None,
    };
    let mut simulator = Simulator::new(behaviour, notify)?;
    if let Some(path) = &args.journal {
        let (journaled, read) = simulator.with_journal(path)?;
        simulator = journaled;
        println!(
            "jiuzhu-paysim: {read} payments read back from {}",
            path.display()
        );
    }
    let (listener, addr) = bind(args.listen).await?;
    println!("jiuzhu-paysim listening on {addr}");
    let served = serve(simulator, listener, tls.server("paysim")?, async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            Some(()) = async { terminate.as_mut()?.recv().await } => {}
        }
    })
    .await;
    // A clean stop sends the spans still buffered.
    telemetry.shutdown().await;
    served
}
