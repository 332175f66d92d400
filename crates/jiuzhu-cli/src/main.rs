//! `jiuzhu`: the operator's command line. `jiuzhu registry import` loads a department's file
//! into the registry through its bulk API (streaming, with progress, per-record rejects and a
//! summary); `jiuzhu link` links case parties to registry persons in batch; `jiuzhu gen`
//! writes deterministic synthetic data (a population, case parties, past relief cases) for
//! tests, demos and benchmarks; `jiuzhu recommend` trains and exports the relief
//! recommendation model; `jiuzhu demo seed` takes the demo county's cases through the running
//! platform; `jiuzhu call` makes any unary call with JSON by reflection; `jiuzhu policy check |
//! cap` and `jiuzhu calendar add-working-days` read the policy directory the services read;
//! `jiuzhu keys rotate` wraps a key store's data keys under a new master key;
//! `jiuzhu audit verify` checks a service's audit log against its key and signed checkpoints;
//! `jiuzhu dev certs` makes a development certificate authority and certificates (every API is
//! served over mutual TLS). Each service binary has its own operations
//! (`jiuzhu-<service> serve | migrate | projections | rebuild`).

mod audit;
mod call;
mod demo;
mod dlq;
mod evaluation;
mod generate;
mod import;
mod keys;
mod link;
mod parties;
mod policy;
mod recommend;
mod records;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What scripts can rely on.
const EXIT_STATUS: &str = "Exit status: 0 done; 1 failed (the message says why and where); \
2 wrong usage; 3 done, but some records were rejected (listed in the rejects file).\n\
Service operations (migrate, rebuild a projection) are the service binaries' own: \
jiuzhu-<service> --help.";

/// Exit status of a command that finished but rejected some of its input.
const SOME_REJECTED: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "jiuzhu",
    version,
    about = "Jiuzhu operator commands",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Registry operations.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Link case parties to registry persons in batch (back-fills, evaluation).
    Link(link::LinkArgs),
    /// Generate synthetic data.
    Gen {
        #[command(subcommand)]
        command: GenCommand,
    },
    /// Relief recommendation models.
    Recommend {
        #[command(subcommand)]
        command: RecommendCommand,
    },
    /// Call any unary RPC of a running service with a JSON request, its types learnt from the
    /// server's reflection (like grpcurl), over mutual TLS as `--as`.
    Call(call::CallArgs),
    /// The demo county of `make run`.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// The policy directory: check it as a whole, or ask it the relief cap of a region.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The working-day calendar of the policy directory.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// The key store of a service that owns personal data.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The audit log of personal-data access.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Dead letters of a service's consumers: list, show, replay, discard.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// The dead letters (unresolved unless --resolved), by consumer, topic and reason.
    List(dlq::ListArgs),
    /// One dead letter, with its original message's headers.
    Show(dlq::ShowArgs),
    /// Send dead letters' original messages again, to their consumer only (the inbox of every
    /// other consumer has them): applied once through the usual idempotent path.
    Replay(dlq::ResolveArgs),
    /// Record that dead letters are not to be applied, by whom and why.
    Discard(dlq::ResolveArgs),
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// Take the demo county's ten victims to different stages (clues, open cases, approval,
    /// payment, follow-up) through the running services' APIs, each step as the role that
    /// takes it. Safe to run again: every request id is fixed, so nothing happens twice.
    Seed(demo::SeedArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Wrap every data key of a service's key store again under a new master key (in
    /// batches, with progress); old keys keep working while listed as previous.
    Rotate(keys::RotateArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check a service's audit log against its key and signed checkpoints; exits 1 when a
    /// record was changed, deleted, spliced, rewritten or cut from the end, and says which.
    Verify(audit::VerifyArgs),
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Write a fresh development certificate authority (`ca.pem`, its key is not kept) and
    /// certificates: one per Jiuzhu system (role `service`) and one per role (`as-<role>`).
    /// Never for production: an installation uses its own authority.
    Certs {
        /// Directory to write to (the services' `[tls] dir`).
        #[arg(long, default_value = ".jiuzhu/certs")]
        out: PathBuf,
        /// The six-digit region code of the office the role certificates belong to.
        #[arg(long, default_value = "520102")]
        office: String,
        /// Another office to write every role's certificate for, as `as-<role>@<office>` (and
        /// approvers as `as-approver.<tier>@<office>`); repeatable.
        #[arg(long = "extra-office", value_name = "CODE")]
        extra_offices: Vec<String>,
    },
}

/// How a command reaches a service: over mutual TLS with a certificate from `--certs`, as the
/// role the operator chooses (the CLI holds no identity of its own).
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Directory holding `ca.pem` and the certificate to present (`jiuzhu dev certs`).
    #[arg(long, env = "JIUZHU_CERTS", default_value = ".jiuzhu/certs")]
    certs: PathBuf,
    /// Which certificate in `--certs` to act as: a role's (`as-relief_prosecutor`,
    /// `as-auditor`, `as-department_integrator.civil_affairs`, …). Each command says its default,
    /// if it has one.
    #[arg(long = "as", value_name = "NAME")]
    identity: Option<String>,
}

impl Connection {
    /// A connected channel to `url`, as `--as` or else `default`; without either, an error that
    /// asks the operator to choose.
    pub async fn channel(
        &self,
        url: &str,
        default: Option<&str>,
    ) -> anyhow::Result<tonic::transport::Channel> {
        use anyhow::Context as _;
        let identity = self.identity.as_deref().or(default).ok_or_else(|| {
            anyhow::anyhow!(
                "say which certificate in {} to act as with --as NAME (e.g. --as as-relief_prosecutor): \
                 the call is made, checked and audited as that role",
                self.certs.display()
            )
        })?;
        jiuzhu_access::TlsSettings::in_dir(&self.certs)
            .endpoint(identity, url)?
            .connect()
            .await
            .with_context(|| format!("cannot reach {url}"))
    }
}

fn dev_certs(out: &std::path::Path, office: &str, extra_offices: &[String]) -> anyhow::Result<()> {
    let is_region = |code: &str| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    if !is_region(office) {
        anyhow::bail!("--office must be a six-digit region code, not `{office}`");
    }
    if let Some(code) = extra_offices.iter().find(|code| !is_region(code)) {
        anyhow::bail!("--extra-office must be a six-digit region code, not `{code}`");
    }
    // Approvers per tier and integrators per department, as the policy names them (the
    // directory's, else the shipped).
    let book = jiuzhu_policy::PolicyBook::load(std::path::Path::new("policy"))
        .or_else(|_| jiuzhu_policy::PolicyBook::compiled_in())?;
    let scopes = jiuzhu_access::dev::Scopes {
        tiers: book.approval_tiers(),
        departments: book.departments(),
        extra_offices: extra_offices.to_vec(),
    };
    let written = jiuzhu_access::dev::write_certs(out, office, &scopes)?;
    println!(
        "wrote a development certificate authority and {} certificates to {}",
        (written.len() - 1) / 2,
        out.display()
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
enum RecommendCommand {
    /// Train a model on past cases, evaluate it against the baseline on held-out cases, and
    /// write it as JSON.
    Train(recommend::TrainArgs),
    /// Recommend for every case of a file with a trained model (amount, methods, factors,
    /// precedents; JSON Lines), to audit recommendations offline.
    Predict(recommend::PredictArgs),
    /// Write the platform's own decided cases (from the decisions service) as history.
    Export(recommend::ExportArgs),
    /// Write synthetic history with a historic cut for some counties or for women built in
    /// (to show the fairness report finding it and the mitigation removing it).
    History(recommend::HistoryArgs),
    /// Fairness of recommended (and historic) amounts: the amount for equal need by gender,
    /// age band and county, gaps over 5% flagged, and the inputs that could be proxies.
    Report(recommend::ReportArgs),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check a policy directory as a whole (every file parses; what one file names exists in
    /// the others; every province has a wage figure; the calendar covers the year). Prints
    /// `file:line: error|warning: reason` and exits 1 on any error.
    Check(policy::CheckArgs),
    /// The normal relief cap of a region on a decision date, with the wage figure, its year,
    /// region level, source and status, and the policy version.
    Cap(policy::CapArgs),
}

#[derive(Debug, Subcommand)]
enum CalendarCommand {
    /// The date N working days after a date (ISO 8601, first line), then whether the calendar
    /// over that span is official or provisional.
    AddWorkingDays(policy::AddWorkingDaysArgs),
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Import a department's persons from CSV or JSON Lines (UTF-8 or GB18030).
    Import(import::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum GenCommand {
    /// Write a synthetic registry population as CSV.
    Registry {
        /// Number of persons.
        #[arg(long, default_value_t = 1000)]
        persons: u64,
        /// Seed: the same seed gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Everyone lives in this county (six-digit GB/T 2260 code, e.g. 520121); default:
        /// rural counties of Guizhou, Yunnan and Gansu.
        #[arg(long)]
        county: Option<String>,
        /// Output file (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write synthetic past relief cases (JSON Lines) with a documented truth.
    ReliefHistory {
        /// Number of cases.
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// Seed: the same seed gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a registry and case parties with ground truth from the second, independent
    /// generator (`jiuzhu-evalgen`: clan villages, generation names, twins, hukou default dates,
    /// Yi names, hard negatives): every linkage figure is reported on both generators.
    LinkageEval {
        #[arg(long, default_value_t = 200_000)]
        persons: u64,
        #[arg(long, default_value_t = 10_000)]
        parties: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Registry file to write (CSV).
        #[arg(long)]
        registry: PathBuf,
        /// Parties file to write (CSV, with true_person_id).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write past relief cases from the second, independent generator (`jiuzhu-evalgen`: a
    /// non-linear amount rule, outcomes that depend on fitting methods; JSON Lines with gender
    /// and age).
    ReliefEval {
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Past amounts 10% lower for women and 8% lower in one county (for the fairness report).
        #[arg(long)]
        biased: bool,
        /// Output file (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write case parties drawn from a generated registry file, with noise and ground truth.
    Parties {
        /// The registry file written by `jiuzhu gen registry`.
        #[arg(long)]
        registry: PathBuf,
        /// Number of parties.
        #[arg(long, default_value_t = 1000)]
        parties: u64,
        /// How badly the case files are written.
        #[arg(long, value_enum, default_value_t = parties::Noise::Realistic)]
        noise: parties::Noise,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the asynchronous commands (those that talk to services).
fn block_on<T>(command: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(command)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Gen {
            command:
                GenCommand::Registry {
                    persons,
                    seed,
                    county,
                    out,
                },
        } => generate::write_population(persons, seed, county.as_deref(), out.as_deref()),
        Command::Gen {
            command:
                GenCommand::Parties {
                    registry,
                    parties,
                    noise,
                    seed,
                    out,
                },
        } => parties::write_parties(&registry, parties, noise, seed, out.as_deref()),
        Command::Gen {
            command: GenCommand::ReliefHistory { cases, seed, out },
        } => recommend::write_history(cases, seed, out.as_deref()),
        Command::Gen {
            command:
                GenCommand::LinkageEval {
                    persons,
                    parties,
                    seed,
                    registry,
                    out,
                },
        } => evaluation::write_linkage_set(persons, parties, seed, &registry, &out),
        Command::Gen {
            command:
                GenCommand::ReliefEval {
                    cases,
                    seed,
                    biased,
                    out,
                },
        } => evaluation::write_relief_history(cases, seed, biased, out.as_deref()),
        Command::Recommend {
            command: RecommendCommand::Train(args),
        } => recommend::train(args),
        Command::Recommend {
            command: RecommendCommand::Predict(args),
        } => recommend::predict(args),
        Command::Recommend {
            command: RecommendCommand::Export(args),
        } => block_on(recommend::export(args)),
        Command::Recommend {
            command: RecommendCommand::History(args),
        } => recommend::write_biased_history(args),
        Command::Recommend {
            command: RecommendCommand::Report(args),
        } => recommend::report(args),
        Command::Link(args) => link::run(args),
        Command::Dev {
            command:
                DevCommand::Certs {
                    out,
                    office,
                    extra_offices,
                },
        } => dev_certs(&out, &office, &extra_offices),
        Command::Demo {
            command: DemoCommand::Seed(args),
        } => block_on(demo::seed(args)),
        Command::Call(args) => block_on(call::run(args)),
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => policy::run_check(&args),
        Command::Policy {
            command: PolicyCommand::Cap(args),
        } => policy::run_cap(&args),
        Command::Calendar {
            command: CalendarCommand::AddWorkingDays(args),
        } => policy::run_add_working_days(&args),
        Command::Keys {
            command: KeysCommand::Rotate(args),
        } => block_on(keys::rotate(args)),
        Command::Dlq { command } => match command {
            DlqCommand::List(args) => block_on(dlq::list(args)),
            DlqCommand::Show(args) => block_on(dlq::show(args)),
            DlqCommand::Replay(args) => block_on(dlq::replay(args)),
            DlqCommand::Discard(args) => block_on(dlq::discard(args)),
        },
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => {
            return match block_on(audit::verify(args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => failed(&error),
            };
        }
        Command::Registry {
            command: RegistryCommand::Import(args),
        } => {
            return match block_on(import::run(args)) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(SOME_REJECTED),
                Err(error) => failed(&error),
            };
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failed(&error),
    }
}

fn failed(error: &anyhow::Error) -> ExitCode {
    eprintln!("jiuzhu: {error:#}");
    ExitCode::FAILURE
}
