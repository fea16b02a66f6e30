//! `sinch-hooks redrive`: after a fix, moves dead-lettered callbacks back to the queue, body and
//! attributes unchanged (minus the dead-letter reason), and reports what it moved.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use pipeline::envelope::{DEAD_LETTER_DETAIL, DEAD_LETTER_REASON, Envelope};

use crate::CliError;
use crate::cli::RedriveArgs;

/// Runs `redrive`.
pub fn run(args: &RedriveArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    runtime.block_on(redrive(args, stdout))
}

async fn redrive(args: &RedriveArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = &args.aws_endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let sqs = aws_sdk_sqs::Client::new(&loader.load().await);
    let failed = |what: &str, e: &dyn std::fmt::Display| CliError::Usage(format!("{what}: {e}"));
    let mut moved = 0usize;
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    while moved < args.max {
        let wanted = (args.max - moved).min(10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(&args.dlq_url)
            .max_number_of_messages(wanted)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .visibility_timeout(30)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| {
                failed(
                    "ReceiveMessage",
                    &aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let mut progress = false;
        for message in messages {
            let id = message.message_id.clone().unwrap_or_default();
            let receipt = message.receipt_handle.clone().unwrap_or_default();
            if !seen.insert(id.clone()) {
                if args.dry_run {
                    make_visible(&sqs, &args.dlq_url, &receipt).await;
                }
                continue;
            }
            progress = true;
            let mut attributes = message.message_attributes.clone().unwrap_or_default();
            let reason = attributes
                .remove(DEAD_LETTER_REASON)
                .and_then(|a| a.string_value)
                .unwrap_or_else(|| "redriven by the queue".into());
            attributes.remove(DEAD_LETTER_DETAIL);
            let body = message.body.clone().unwrap_or_default();
            let kind = describe(&body, &attributes);
            writeln!(
                stdout,
                "{}{id}  {reason}  {kind}",
                if args.dry_run {
                    "would move "
                } else {
                    "moved "
                }
            )?;
            *by_reason.entry(reason).or_default() += 1;
            moved += 1;
            if args.dry_run {
                make_visible(&sqs, &args.dlq_url, &receipt).await;
                continue;
            }
            sqs.send_message()
                .queue_url(&args.queue_url)
                .message_body(body)
                .set_message_attributes(Some(attributes))
                .send()
                .await
                .map_err(|e| failed("SendMessage", &aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            // Only once it is back in the queue does it leave the dead-letter queue.
            sqs.delete_message()
                .queue_url(&args.dlq_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| {
                    failed("DeleteMessage", &aws_sdk_sqs::error::DisplayErrorContext(e))
                })?;
            if moved >= args.max {
                break;
            }
        }
        if !progress {
            break;
        }
    }
    let reasons: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    writeln!(
        stdout,
        "{} {moved} message(s){}",
        if args.dry_run { "would move" } else { "moved" },
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A dry run only looks: the message is visible again at once.
async fn make_visible(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) {
    let _ = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await;
}

/// The callback's kind, for the report.
fn describe(
    body: &str,
    attributes: &std::collections::HashMap<String, MessageAttributeValue>,
) -> String {
    let envelope = Envelope::from_message(body.to_owned(), |name| {
        attributes.get(name).and_then(|a| a.string_value.as_deref())
    });
    match envelope.as_ref().map(|e| e.raw_body()) {
        Ok(Ok(bytes)) => sinch::callback::parse(&bytes)
            .map(|c| c.kind().into_owned())
            .unwrap_or_else(|_| "not a callback".into()),
        _ => "unreadable".into(),
    }
}
