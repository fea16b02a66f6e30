//! `sinch-hooks batch send --csv FILE` and `sinch-hooks batch status ID`: batches through the
//! messages API from the command line, with a progress bar.
//!
//! | CSV column | becomes |
//! |---|---|
//! | `to` (required) | the recipient |
//! | `metadata` | the recipient's metadata (a JSON object), merged over the shared one |
//! | any other | a parameter: fills `${column}` in the text and the template's parameters |
//!
//! Rows beyond 10,000 go as further batches (keys `KEY-1`, `KEY-2`, ...), so a retry of the
//! command with the same `--key` is the same batches.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use api::batches::{BatchRequest, Recipient};
use api::request::{SendRequest, Template};
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::schedule::Lane;
use serde_json::{Map, Value};

use crate::CliError;
use crate::cli::{BatchCommand, BatchSendArgs, BatchStatusArgs};
use crate::messages_client::{MessagesClient, POLL};

/// The most recipients a batch takes (the API's limit).
pub const BATCH_LIMIT: usize = api::batches::MAX_RECIPIENTS;

/// Runs `batch send` or `batch status`.
pub fn run(command: &BatchCommand, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    match command {
        BatchCommand::Send(args) => runtime.block_on(send(args, stdout)),
        BatchCommand::Status(args) => runtime.block_on(status(args, stdout)),
    }
}

/// The recipients of a CSV text (see the module docs).
pub fn recipients(csv: &[u8]) -> Result<Vec<Recipient>, CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(csv);
    let headers = reader
        .headers()
        .map_err(|e| CliError::Usage(format!("the CSV has no header row: {e}")))?
        .clone();
    if !headers.iter().any(|h| h == "to") {
        return Err(CliError::Usage(
            "the CSV needs a `to` column (and one per parameter)".into(),
        ));
    }
    let mut recipients = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| CliError::Usage(format!("CSV row {}: {e}", line + 2)))?;
        let mut recipient = Recipient::default();
        for (name, value) in headers.iter().zip(row.iter()) {
            match name {
                "to" => value.clone_into(&mut recipient.to),
                "metadata" if !value.is_empty() => {
                    recipient.metadata = Some(serde_json::from_str(value).map_err(|e| {
                        CliError::Usage(format!(
                            "CSV row {}: metadata is not JSON (an object): {e}",
                            line + 2
                        ))
                    })?);
                }
                "metadata" => {}
                _ => {
                    recipient
                        .parameters
                        .insert(name.to_owned(), value.to_owned());
                }
            }
        }
        recipients.push(recipient);
    }
    if recipients.is_empty() {
        return Err(CliError::Usage("the CSV has no rows".into()));
    }
    Ok(recipients)
}

/// The shared fields from the flags (`--json` replaces them).
pub fn shared(args: &BatchSendArgs) -> Result<Map<String, Value>, CliError> {
    if let Some(json) = &args.json {
        return serde_json::from_str(json)
            .map_err(|e| CliError::Usage(format!("--json is not JSON (an object): {e}")));
    }
    let priority = args
        .priority
        .as_deref()
        .map(|lane| serde_json::from_value::<Lane>(Value::String(lane.to_owned())))
        .transpose()
        .map_err(|e| CliError::Usage(format!("--priority: {e}")))?;
    let template = match &args.content.template_name {
        Some(name) => Some(Template {
            name: Some(name.clone()),
            language: args.content.template_language.clone(),
            parameters: super::message::pairs(&args.content.param)?,
            ..Template::default()
        }),
        None => None,
    };
    let request = SendRequest {
        channel: args.content.channel.clone(),
        text: args.content.text.clone(),
        send_at: args.send_at.clone(),
        priority,
        sms_sender: args.content.sms_sender.clone(),
        template,
        ..SendRequest::default()
    };
    match serde_json::to_value(request) {
        Ok(Value::Object(shared)) => Ok(shared),
        Ok(_) => Err(CliError::Usage("a request is a JSON object".into())),
        Err(e) => Err(CliError::Usage(e.to_string())),
    }
}

fn bar(len: u64, quiet: bool, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn send(args: &BatchSendArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let csv = std::fs::read(&args.csv)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.csv.display())))?;
    let recipients = recipients(&csv)?;
    let shared = shared(args)?;
    let client = MessagesClient::new(&args.api.url, args.api.auth, args.api.region.clone(), 1)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| ulid::Ulid::generate().to_string());
    let posting = bar(
        recipients.len() as u64,
        args.quiet,
        "posting {bar:40} {pos}/{len} recipients",
    );
    let mut batches = Vec::new();
    let mut refused = 0;
    for (n, chunk) in recipients.chunks(BATCH_LIMIT).enumerate() {
        let body = BatchRequest {
            shared: shared.clone(),
            recipients: chunk.to_vec(),
        };
        let key = if recipients.len() > BATCH_LIMIT {
            format!("{key}-{}", n + 1)
        } else {
            key.clone()
        };
        let answer = client.send_batch(&key, &body).await;
        if answer.status != Some(202) {
            posting.abandon();
            writeln!(
                stdout,
                "batch {} (rows {} to {}): {}",
                n + 1,
                n * BATCH_LIMIT + 1,
                n * BATCH_LIMIT + chunk.len(),
                answer.line()
            )?;
            writeln!(
                stdout,
                "idempotency-key: {key} (run again with --key {key} to resume)"
            )?;
            return Ok(ExitCode::from(1));
        }
        let view: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        // Refusals come by code, with the positions of the recipients in this request.
        for group in view["refused"].as_array().into_iter().flatten() {
            let positions = group["recipients"].as_array().into_iter().flatten();
            for position in positions.filter_map(Value::as_u64) {
                let to = usize::try_from(position)
                    .ok()
                    .and_then(|k| chunk.get(k))
                    .map(|recipient| recipient.to.as_str())
                    .unwrap_or_default();
                posting.suspend(|| {
                    eprintln!(
                        "refused {to}: {} ({})",
                        group["code"].as_str().unwrap_or_default(),
                        group["message"].as_str().unwrap_or_default()
                    )
                });
                refused += 1;
            }
        }
        posting.inc(chunk.len() as u64);
        batches.push(view);
    }
    posting.finish_and_clear();
    let accepted: u64 = batches.iter().filter_map(|b| b["accepted"].as_u64()).sum();
    for batch in &batches {
        writeln!(
            stdout,
            "{} accepted {} {}",
            batch["id"].as_str().unwrap_or_default(),
            batch["accepted"],
            batch["status"].as_str().unwrap_or_default()
        )?;
    }
    writeln!(
        stdout,
        "{accepted} accepted, {refused} refused; idempotency-key: {key}"
    )?;
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<String> = batches
        .iter()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect();
    follow(&client, &ids, args.timeout_secs, args.quiet, stdout).await
}

/// Polls the batches until every message is final, a bar of final messages over all.
async fn follow(
    client: &MessagesClient,
    ids: &[String],
    timeout_secs: u64,
    quiet: bool,
    stdout: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let until = Instant::now() + Duration::from_secs(timeout_secs);
    let progress = bar(0, quiet, "{bar:40} {pos}/{len} final  {msg}");
    loop {
        let mut total = 0;
        let mut finals = 0;
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        let mut views = Vec::new();
        for id in ids {
            let answer = client.batch(id).await;
            let view: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            if answer.status != Some(200) {
                progress.abandon();
                writeln!(stdout, "{id}: {:?} {}", answer.status, answer.body)?;
                return Ok(ExitCode::from(1));
            }
            total += view["total"].as_u64().unwrap_or_default();
            for (status, n) in view["counts"].as_object().into_iter().flatten() {
                let n = n.as_u64().unwrap_or_default();
                *counts.entry(status.clone()).or_default() += n;
                if pipeline::status::Status::from(status.as_str())
                    .settles_on(view["channel"].as_str())
                {
                    finals += n;
                }
            }
            views.push(view);
        }
        progress.set_length(total);
        progress.set_position(finals);
        progress.set_message(
            counts
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let done = views.iter().all(|v| v["final"] == true);
        if done || Instant::now() >= until {
            progress.finish_and_clear();
            for view in &views {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string(view).unwrap_or_default()
                )?;
            }
            if !done {
                writeln!(stdout, "not final after {timeout_secs} s")?;
            }
            return Ok(if done {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        // Each look reads every message of the batches (about one DynamoDB call per hundred):
        // half a second apart, and a millisecond more per recipient (10 s at 10,000).
        let pause = Duration::from_millis(500 + total.min(14_500));
        tokio::time::sleep(POLL.max(pause)).await;
    }
}

async fn status(args: &BatchStatusArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let client = MessagesClient::new(&args.api.url, args.api.auth, args.api.region.clone(), 1)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if args.wait {
        return follow(
            &client,
            std::slice::from_ref(&args.id),
            args.timeout_secs,
            args.quiet,
            stdout,
        )
        .await;
    }
    let answer = client.batch(&args.id).await;
    writeln!(stdout, "{}", answer.line())?;
    Ok(if answer.status == Some(200) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_csv_becomes_recipients_with_parameters_and_metadata() {
        let csv =
            b"to,name,metadata\n+46701234567,Ada,\"{\"\"row\"\": 1}\"\n +46707654321 , Bo ,\n";
        let read = recipients(csv).unwrap();
        assert_eq!(
            serde_json::to_value(read).unwrap(),
            json!([
                {"to": "+46701234567", "parameters": {"name": "Ada"}, "metadata": {"row": 1}},
                {"to": "+46707654321", "parameters": {"name": "Bo"}},
            ])
        );
        for (csv, why) in [
            (&b"name\nAda\n"[..], "a `to` column"),
            (&b"to\n"[..], "no rows"),
            (&b"to,metadata\n+46701234567,{oops\n"[..], "not JSON"),
            (&b"to,name\n+46701234567,Ada,extra\n"[..], "row 2"),
        ] {
            let error = recipients(csv).unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
    }
}
