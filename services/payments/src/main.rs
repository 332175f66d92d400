//! `jiuzhu-payments`: serves the payments service (see `jiuzhu-payments --help`).

fn main() -> std::process::ExitCode {
    jiuzhu_runtime::cli::main::<jiuzhu_payments::Payments>()
}
