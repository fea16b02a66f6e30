//! `sinch-hooks optouts import FILE` and `sinch-hooks optouts export`: the messages API's
//! opt-out list in and out as JSON lines, one `{"channel", "identity"}` object a line (export
//! adds `opted_out`, `by`, `reference`, `opted_out_at`, so an export imports as it is).
//!
//! | import: a line | becomes |
//! |---|---|
//! | `{"channel": "SMS", "identity": "+46701234567", "opted_out_at"?}` | `PUT /optouts/SMS/%2B46701234567` with `{"by": "import", "at": opted_out_at}`: counted new, or already there (the first opt-out stands; an opt-out older than their opt-in is not applied) |
//! | empty | skipped |
//! | not such an object, or refused by the API (`invalid_channel`, `invalid_identity`) | listed with its line number and reason, counted refused |
//! | no answer, or 503 | listed, counted failed: run the import again (it is harmless) |
//!
//! The exit code is 0 when every line was imported (new or already there), 1 otherwise.

use std::io::{Read, Write};
use std::process::ExitCode;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{OptoutsCommand, OptoutsExportArgs, OptoutsImportArgs};
use crate::messages_client::MessagesClient;

/// Runs `optouts import` or `optouts export`.
pub fn run(
    command: &OptoutsCommand,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    match command {
        OptoutsCommand::Import(args) => {
            let file = (args.file.as_os_str() != "-").then_some(args.file.as_path());
            let text = crate::body::read(file, stdin)?;
            runtime.block_on(import(args, &text, stdout))
        }
        OptoutsCommand::Export(args) => runtime.block_on(export(args, stdout)),
    }
}

/// One line of an import.
#[derive(Debug, Deserialize)]
struct Line {
    channel: String,
    identity: String,
    /// When they opted out (an export's): an opt-in made after it is not overridden.
    #[serde(default)]
    opted_out_at: Option<String>,
}

/// What became of one line.
enum Fate {
    New,
    Already,
    Refused(String),
    Failed(String),
}

async fn import(
    args: &OptoutsImportArgs,
    text: &[u8],
    stdout: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let client = MessagesClient::new(
        &args.api.url,
        args.api.auth,
        args.api.region.clone(),
        args.concurrency,
    )
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let text = String::from_utf8_lossy(text);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .collect();
    let client = &client;
    let mut fates: Vec<(usize, Fate)> = futures::stream::iter(lines)
        .map(|(number, line)| async move {
            let fate = match serde_json::from_str::<Line>(line) {
                Err(error) => Fate::Refused(format!(
                    "not a {{\"channel\", \"identity\"}} object: {error}"
                )),
                Ok(line) => {
                    let answer = client
                        .opt_out(
                            &line.channel,
                            &line.identity,
                            "import",
                            line.opted_out_at.as_deref(),
                        )
                        .await;
                    let body = answer.json();
                    match answer.status {
                        Some(200) if body["changed"] == Value::Bool(true) => Fate::New,
                        Some(200) => Fate::Already,
                        Some(status) if (400..500).contains(&status) => Fate::Refused(format!(
                            "{} {}",
                            body["error"]["code"].as_str().unwrap_or("refused"),
                            body["error"]["message"].as_str().unwrap_or(&answer.body)
                        )),
                        _ => Fate::Failed(answer.line()),
                    }
                }
            };
            (number, fate)
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    fates.sort_by_key(|(number, _)| *number);
    let (mut new, mut already, mut refused, mut failed) = (0, 0, 0, 0);
    for (number, fate) in &fates {
        match fate {
            Fate::New => new += 1,
            Fate::Already => already += 1,
            Fate::Refused(why) => {
                refused += 1;
                writeln!(stdout, "line {number}: refused: {why}")?;
            }
            Fate::Failed(why) => {
                failed += 1;
                writeln!(stdout, "line {number}: failed: {why}")?;
            }
        }
    }
    writeln!(
        stdout,
        "{} lines: {new} opted out, {already} already opted out, {refused} refused, {failed} failed",
        fates.len()
    )?;
    Ok(if refused + failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn export(args: &OptoutsExportArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let client = MessagesClient::new(&args.api.url, args.api.auth, args.api.region.clone(), 1)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let mut cursor: Option<String> = None;
    loop {
        let answer = client
            .opt_outs(args.channel.as_deref(), cursor.as_deref())
            .await;
        if answer.status != Some(200) {
            writeln!(stdout, "GET /optouts: {}", answer.line())?;
            return Ok(ExitCode::from(1));
        }
        let page = answer.json();
        for item in page["items"].as_array().into_iter().flatten() {
            let line = json!({
                "channel": item["channel"],
                "identity": item["identity"],
                "opted_out": item["opted_out"],
                "by": item["by"],
                "reference": item["reference"],
                "opted_out_at": item["opted_out_at"],
            });
            writeln!(stdout, "{line}")?;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}
