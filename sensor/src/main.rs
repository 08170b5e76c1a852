//! `sensor`: see `sensor --help`.

fn main() -> std::process::ExitCode {
    sensor::cli::main()
}
