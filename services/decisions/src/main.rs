//! `jiuzhu-decisions`: serves the decisions service (see `jiuzhu-decisions --help`).

fn main() -> std::process::ExitCode {
    jiuzhu_runtime::cli::main::<jiuzhu_decisions::Decisions>()
}
