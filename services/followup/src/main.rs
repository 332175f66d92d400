//! `jiuzhu-followup`: serves the followup service (see `jiuzhu-followup --help`).

fn main() -> std::process::ExitCode {
    jiuzhu_runtime::cli::main::<jiuzhu_followup::Followup>()
}
