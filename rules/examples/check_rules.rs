//! Validates a rule file and prints its summary, or every error.
//!
//! ```text
//! cargo run -p rules --example check_rules -- rules/examples/msp.toml
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = args.as_slice() else {
        eprintln!("usage: check_rules RULES.toml");
        return ExitCode::from(2);
    };
    match rules::Rules::load(path) {
        Ok(r) => {
            println!("{}", r.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s)", errors.len());
            ExitCode::from(2)
        }
    }
}
