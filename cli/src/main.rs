//! `sinch-hooks`: the command-line companion of the pipeline.

use std::process::ExitCode;

use clap::Parser;
use sinch_hooks::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Not locked for the whole run: the long-running commands log from other threads.
    match sinch_hooks::run(
        cli,
        &mut std::io::stdin(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    ) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sinch-hooks: {error}");
            ExitCode::from(2)
        }
    }
}
