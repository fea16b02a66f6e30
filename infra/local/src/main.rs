//! `sinch-hooks`: the command-line companion of the pipeline.

use std::process::ExitCode;

use clap::Parser;
use sinch_hooks::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    match sinch_hooks::run(cli, &mut std::io::stdin().lock(), &mut stdout, &mut stderr) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sinch-hooks: {error}");
            ExitCode::from(2)
        }
    }
}
