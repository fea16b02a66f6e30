//! `sinch-hooks message send` and `sinch-hooks message status`: the messages API from the
//! command line, against a deployed stack (SigV4) or the local one.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use api::request::{Media, SendRequest, Template};
use serde_json::{Value, json};

use crate::CliError;
use crate::cli::{MessageCommand, MessageSendArgs, MessageStatusArgs};
use crate::messages_client::{MessagesClient, POLL};

/// Runs `message send` or `message status`.
pub fn run(command: &MessageCommand, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    match command {
        MessageCommand::Send(args) => runtime.block_on(send(args, stdout)),
        MessageCommand::Status(args) => runtime.block_on(status(args, stdout)),
    }
}

/// `KEY=VALUE` flags (a template's parameters) as a map.
pub fn pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::Usage(format!("{pair:?} is not KEY=VALUE")))
        })
        .collect()
}

/// The request body from the flags (`--json` replaces them all).
pub fn body(args: &MessageSendArgs) -> Result<Value, CliError> {
    if let Some(json) = &args.json {
        return serde_json::from_str(json)
            .map_err(|e| CliError::Usage(format!("--json is not JSON: {e}")));
    }
    let template = if args.content.template_name.is_some() || args.template_id.is_some() {
        Some(Template {
            name: args.content.template_name.clone(),
            language: args.content.template_language.clone(),
            parameters: pairs(&args.content.param)?,
            id: args.template_id.clone(),
            version: args.template_version.clone(),
            omni_parameters: Some(pairs(&args.omni_param)?).filter(|p| !p.is_empty()),
            ..Template::default()
        })
    } else {
        None
    };
    let metadata = args
        .metadata
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--metadata is not JSON: {e}")))?;
    let request = SendRequest {
        to: args.to.clone().unwrap_or_default(),
        channel: args.content.channel.clone(),
        text: args.content.text.clone(),
        media: args.media_url.clone().map(|url| Media {
            url,
            caption: args.caption.clone(),
            ..Media::default()
        }),
        template,
        fallback: args.fallback.clone(),
        metadata,
        ttl: args.ttl,
        sms_sender: args.content.sms_sender.clone(),
        ..SendRequest::default()
    };
    serde_json::to_value(request).map_err(|e| CliError::Usage(e.to_string()))
}

async fn send(args: &MessageSendArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let body = body(args)?;
    let client = MessagesClient::new(
        &args.api.url,
        args.api.auth,
        args.api.region.clone(),
        args.concurrency,
    )
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?;
    if args.count > 1 {
        // A load: every send its own key (and, for numbers, its own recipient).
        let started = Instant::now();
        let report = super::post_callbacks::load(args.count, args.concurrency, args.quiet, |n| {
            let mut body = body.clone();
            if args.vary_recipient
                && let Some(to) = body["to"].as_str()
            {
                body["to"] = json!(format!(
                    "{}{:06}",
                    &to[..to.len().saturating_sub(6)],
                    n % 1_000_000
                ));
            }
            let key = format!(
                "{}-{n}",
                args.key
                    .clone()
                    .unwrap_or_else(|| ulid::Ulid::generate().to_string())
            );
            let client = &client;
            async move { client.send(&key, &body).await }
        })
        .await;
        writeln!(
            stdout,
            "posted {} send(s) to {}/messages in {:.2} s: {:.0}/s",
            report.sent,
            args.api.url.trim_end_matches('/'),
            started.elapsed().as_secs_f64(),
            report.per_second()
        )?;
        report.print(stdout)?;
        return Ok(if report.count("202") == report.sent {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let key = args
        .key
        .clone()
        .unwrap_or_else(|| ulid::Ulid::generate().to_string());
    let answer = client.send(&key, &body).await;
    writeln!(stdout, "{}", answer.line())?;
    writeln!(stdout, "idempotency-key: {key}")?;
    Ok(if answer.status == Some(202) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn status(args: &MessageStatusArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let client = MessagesClient::new(&args.api.url, args.api.auth, args.api.region.clone(), 1)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let until = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut last = String::new();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        let answer = client.status(&args.id).await;
        let view: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        if answer.status != Some(200) {
            writeln!(stdout, "{}", answer.line())?;
            return Ok(ExitCode::from(1));
        }
        let line = timeline(&view);
        let done = view["final"] == true;
        if args.wait && !done && Instant::now() < until {
            if line != last {
                // A live line: rewritten in place on a terminal, one per change otherwise.
                if interactive {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
                last = line;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        // The last line too, so the live lines always end at where it stands (and there is
        // one even when it was final at the first look).
        if args.wait && interactive {
            eprintln!("\r\x1b[2K{line}");
        } else if args.wait && line != last {
            eprintln!("{line}");
        }
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        )?;
        return Ok(if !args.wait || done {
            ExitCode::SUCCESS
        } else {
            writeln!(stdout, "not final after {} s", args.timeout_secs)?;
            ExitCode::from(1)
        });
    }
}

/// `msg_01J…  ACCEPTED → SENT → QUEUED_ON_CHANNEL → DELIVERED  (WHATSAPP)`
fn timeline(view: &Value) -> String {
    let steps: Vec<&str> = view["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    format!(
        "{}  {}  ({})",
        view["id"].as_str().unwrap_or_default(),
        steps.join(" → "),
        view["channel"].as_str().unwrap_or_default()
    )
}
