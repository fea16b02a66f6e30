//! The `sinch-hooks` CLI, as a library so every command can be tested without a process.
//!
//! Commands write to the streams they are given and return the exit code: 0 for success, 1 for
//! a negative answer (a signature that does not verify, a malformed callback), 2 for usage and
//! input errors (a body that is not JSON).

#![warn(missing_docs)]

pub mod answer;
pub mod body;
pub mod cli;
pub mod commands;
pub mod cost;
pub mod logging;
pub mod messages_client;
pub mod samples;
pub mod stack;
pub mod webhook_client;

use std::io::{Read, Write};
use std::process::ExitCode;

use cli::{Cli, Command};

/// An error that stops a command (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read standard input: {0}")]
    ReadStdin(std::io::Error),
    /// Standard output could not be written.
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
    /// The arguments do not make sense together (the words say why).
    #[error("{0}")]
    Usage(String),
}

/// Runs one parsed command line.
pub fn run(
    cli: Cli,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Demo => commands::demo::run(stdout),
        Command::Verify(args) => commands::verify::run(&args, stdin, stdout, stderr),
        Command::Sign(args) => commands::sign::run(&args, stdin, stdout),
        Command::Inspect(args) => commands::inspect::run(&args, stdin, stdout),
        Command::Serve(args) => commands::serve::run(&args),
        Command::PostCallbacks(args) => commands::post_callbacks::run(&args, stdout),
        Command::Fixtures(args) => commands::fixtures::run(&args, stdout),
        Command::RegisterWebhook(args) => commands::register_webhook::run(&args, stdout),
        Command::Redrive(args) => commands::redrive::run(&args, stdout),
        Command::Message(command) => commands::message::run(&command, stdout),
        Command::Batch(command) => commands::batch::run(&command, stdout),
        Command::Optouts(command) => commands::optouts::run(&command, stdin, stdout),
        Command::SinchSimulator(args) => commands::simulator::run(&args, stdout),
        Command::Cost(args) => commands::cost::run(&args, stdout),
    }
}
