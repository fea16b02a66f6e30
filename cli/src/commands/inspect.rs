//! `sinch-hooks inspect`: what is this callback? One JSON line per callback with its kind and
//! key fields (never the message text, only its length).
//!
//! Reads a callback body, or a dead-letter-queue dump: the output of `aws sqs receive-message`
//! (`{"Messages": [...]}`), one SQS message (`Body`, `MessageAttributes`), or a Lambda SQS record
//! (`body`, `messageAttributes`). A base64-encoded body (`body-encoding: base64`) is decoded.

use std::io::{Read, Write};
use std::process::ExitCode;

use pipeline::envelope::Envelope;
use serde_json::{Map, Value};
use sinch::callback::{self, ParseError};

use crate::cli::InspectArgs;
use crate::{CliError, body};

/// Runs `inspect`: one JSON line per callback read.
pub fn run(
    args: &InspectArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let input = body::read(args.body_file.as_deref(), stdin)?;
    let value: Value = serde_json::from_slice(&input).map_err(|e| {
        // serde_json stops at 128 levels: valid JSON, but too deep to read.
        if e.to_string().starts_with("recursion limit exceeded") {
            CliError::Usage(format!("the input is JSON nested too deeply to read: {e}"))
        } else {
            CliError::Usage(format!("the input is not JSON: {e}"))
        }
    })?;
    let mut all_valid = true;
    for item in items(value, &input)? {
        let line = describe(&item)?;
        all_valid &= line.get("error").is_none();
        writeln!(stdout, "{}", Value::Object(line))?;
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One callback to describe: its exact bytes, and what the queue said about it.
struct Item {
    body: Vec<u8>,
    sqs_message_id: Option<String>,
    dead_letter_reason: Option<String>,
    dead_letter_detail: Option<String>,
}

fn items(value: Value, raw: &[u8]) -> Result<Vec<Item>, CliError> {
    if let Some(Value::Array(messages)) = value.get("Messages") {
        return messages.iter().map(from_message).collect();
    }
    if value.get("Body").is_some()
        || value.get("body").is_some() && value.get("messageId").is_some()
    {
        return Ok(vec![from_message(&value)?]);
    }
    Ok(vec![Item {
        body: raw.to_vec(),
        sqs_message_id: None,
        dead_letter_reason: None,
        dead_letter_detail: None,
    }])
}

/// An SQS message in either spelling: the API's (`Body`, `StringValue`) or Lambda's (`body`,
/// `stringValue`).
fn from_message(message: &Value) -> Result<Item, CliError> {
    let field = |upper: &str, lower: &str| message.get(upper).or_else(|| message.get(lower));
    let body = field("Body", "body")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Usage("an SQS message without a Body".into()))?;
    let attributes = field("MessageAttributes", "messageAttributes").and_then(Value::as_object);
    let attribute = |name: &str| {
        attributes
            .and_then(|a| a.get(name))
            .and_then(|a| a.get("StringValue").or_else(|| a.get("stringValue")))
            .and_then(Value::as_str)
    };
    let envelope = Envelope::from_message(body.to_owned(), attribute)
        .map_err(|e| CliError::Usage(format!("cannot read the SQS message: {e}")))?;
    let bytes = envelope
        .raw_body()
        .map_err(|e| CliError::Usage(format!("cannot read the SQS message: {e}")))?
        .into_owned();
    Ok(Item {
        body: bytes,
        sqs_message_id: field("MessageId", "messageId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        dead_letter_reason: envelope.dead_letter_reason,
        dead_letter_detail: envelope.dead_letter_detail,
    })
}

fn describe(item: &Item) -> Result<Map<String, Value>, CliError> {
    let mut line = match callback::parse(&item.body) {
        Ok(callback) => match serde_json::to_value(callback.summary()) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        Err(ParseError::NotAnObject(e)) => {
            return Err(CliError::Usage(format!(
                "the callback body is not a JSON object: {e}"
            )));
        }
        Err(ParseError::Malformed { kind, source }) => {
            let mut map = Map::new();
            map.insert("kind".into(), Value::String(kind));
            map.insert("error".into(), Value::String(source.to_string()));
            map
        }
        Err(error @ ParseError::Ambiguous { .. }) => {
            let mut map = Map::new();
            map.insert("kind".into(), Value::String("conversation".into()));
            map.insert("error".into(), Value::String(error.to_string()));
            map
        }
    };
    let mut extra = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            line.insert(name.to_owned(), Value::String(value.clone()));
        }
    };
    extra("sqs_message_id", &item.sqs_message_id);
    extra("dead_letter_reason", &item.dead_letter_reason);
    extra("dead_letter_detail", &item.dead_letter_detail);
    Ok(line)
}
