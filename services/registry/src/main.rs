//! `jiuzhu-registry`: serves the registry (see `jiuzhu-registry --help`).

fn main() -> std::process::ExitCode {
    jiuzhu_runtime::cli::main::<jiuzhu_registry::Registry>()
}
