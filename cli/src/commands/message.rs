//! `sinch-hooks message send` and `sinch-hooks message status`: the messages API from the
//! command line, against a deployed stack (SigV4) or the local one.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

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

/// The request body from the flags (`--json` replaces them all).
pub fn body(args: &MessageSendArgs) -> Result<Value, CliError> {
    if let Some(json) = &args.json {
        return serde_json::from_str(json)
            .map_err(|e| CliError::Usage(format!("--json is not JSON: {e}")));
    }
    let mut body = Map::new();
    let mut put = |name: &str, value: Value| {
        body.insert(name.to_owned(), value);
    };
    put("to", json!(args.to.clone().unwrap_or_default()));
    put("channel", json!(args.content.channel));
    if let Some(text) = &args.content.text {
        put("text", json!(text));
    }
    if let Some(url) = &args.media_url {
        let mut media = json!({"url": url});
        if let Some(caption) = &args.caption {
            media["caption"] = json!(caption);
        }
        put("media", media);
    }
    if args.content.template_name.is_some() || args.template_id.is_some() {
        let pairs = |pairs: &[String]| -> Result<Map<String, Value>, CliError> {
            pairs
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(k, v)| (k.to_owned(), json!(v)))
                        .ok_or_else(|| CliError::Usage(format!("{pair:?} is not KEY=VALUE")))
                })
                .collect()
        };
        let mut template = Map::new();
        for (name, value) in [
            ("name", &args.content.template_name),
            ("language", &args.content.template_language),
            ("id", &args.template_id),
            ("version", &args.template_version),
        ] {
            if let Some(value) = value {
                template.insert(name.to_owned(), json!(value));
            }
        }
        if !args.content.param.is_empty() {
            template.insert(
                "parameters".into(),
                Value::Object(pairs(&args.content.param)?),
            );
        }
        if !args.omni_param.is_empty() {
            template.insert(
                "omni_parameters".into(),
                Value::Object(pairs(&args.omni_param)?),
            );
        }
        put("template", Value::Object(template));
    }
    if !args.fallback.is_empty() {
        put("fallback", json!(args.fallback));
    }
    if let Some(metadata) = &args.metadata {
        let metadata: Value = serde_json::from_str(metadata)
            .map_err(|e| CliError::Usage(format!("--metadata is not JSON: {e}")))?;
        put("metadata", metadata);
    }
    if let Some(ttl) = args.ttl {
        put("ttl", json!(ttl));
    }
    if let Some(sender) = &args.content.sms_sender {
        put("sms_sender", json!(sender));
    }
    Ok(Value::Object(body))
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
