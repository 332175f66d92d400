//! `jiuzhu-clues`: serves clue acquisition (see `jiuzhu-clues --help`).

fn main() -> std::process::ExitCode {
    jiuzhu_runtime::cli::main::<jiuzhu_clues::Clues>()
}
