//! Delivery reports: the message status moves forward only, the history keeps everything.
//!
//! A report for one of our messages names it (our reference in `correlation_id` or `metadata`,
//! or the SMS `client_reference`): its status goes to our message, under our id, together with
//! Sinch's id, which also settles a send whose answer was lost ([`crate::ledger`]). Reports that
//! name none of ours are kept under Sinch's ids.

use sinch::callback::conversation::{Envelope, MessageDeliveryReport};
use sinch::callback::sms::{BatchDeliveryReport, RecipientDeliveryReport};
use tracing::info;

use super::{Handled, HandlerError, Services, millis};
use crate::hook::{Hook, Report};
use crate::ledger::reference;
use crate::status::Status;
use crate::store::{MessageKey, Reason, SinchId, StatusUpdate, Store};

/// Whether a Conversation report's status write is idempotent by itself, so that it needs no
/// claim ([`super::needs_claim`]) for the pipeline's sake: it names our message (whose item
/// holds no number: a repeat after an erasure brings no one back), and it carries the time of
/// its event (the same in every retry and every webhook, so a repeat is the same history entry;
/// a report without it is stamped with the time it is handled, which differs).
///
/// SMS reports are always claimed: their item is keyed by the number, and a batch report is
/// stamped with the time it is handled.
pub fn idempotent_alone(envelope: &Envelope, report: &MessageDeliveryReport) -> bool {
    let ours = reference::ours(Some(&envelope.correlation_id))
        .or_else(|| reference::ours(Some(&report.metadata)));
    ours.is_some() && envelope.event_time.is_some()
}

/// A Conversation `message_delivery_report`.
pub async fn conversation<S: Store, H: Hook>(
    services: &Services<S, H>,
    envelope: &Envelope,
    report: &MessageDeliveryReport,
) -> Result<Handled, HandlerError> {
    let ours = reference::ours(Some(&envelope.correlation_id))
        .or_else(|| reference::ours(Some(&report.metadata)));
    let (key, sinch_id) = match ours {
        Some(id) => (
            MessageKey::Ours(id.to_owned()),
            Some(SinchId::Message(report.message_id.clone())),
        ),
        None => (MessageKey::Conversation(report.message_id.clone()), None),
    };
    let update = StatusUpdate {
        key,
        status: Status::from(&report.status),
        at_ms: millis(
            envelope.event_time.or(envelope.accepted_time),
            &services.clock,
        ),
        reason: report
            .reason
            .as_ref()
            .filter(|r| !r.code.is_empty())
            .map(|r| Reason::new(r.code.clone(), Some(r.description.clone()))),
        channel: report
            .channel_identity
            .as_ref()
            .map(|c| c.channel.to_string()),
        sinch_id,
    };
    apply(services, vec![update]).await
}

/// An SMS `recipient_delivery_report_*`.
pub async fn sms_recipient<S: Store, H: Hook>(
    services: &Services<S, H>,
    report: &RecipientDeliveryReport,
) -> Result<Handled, HandlerError> {
    let (key, sinch_id) = sms_target(
        report.client_reference.as_deref(),
        &report.batch_id,
        &report.recipient,
    );
    let update = StatusUpdate {
        key,
        status: Status::from(&report.status),
        at_ms: millis(report.at, &services.clock),
        reason: sms_reason(report.code),
        channel: Some("SMS".to_owned()),
        sinch_id,
    };
    apply(services, vec![update]).await
}

/// An SMS `delivery_report_*` for a whole batch: applied to each recipient it lists (a `full`
/// report lists them; a `summary` report only counts, and changes nothing).
pub async fn sms_batch<S: Store, H: Hook>(
    services: &Services<S, H>,
    report: &BatchDeliveryReport,
) -> Result<Handled, HandlerError> {
    let at_ms = millis(None, &services.clock);
    let updates = report
        .statuses
        .iter()
        .flat_map(|count| {
            count.recipients.iter().map(move |recipient| {
                let (key, sinch_id) = sms_target(
                    report.client_reference.as_deref(),
                    &report.batch_id,
                    recipient,
                );
                StatusUpdate {
                    key,
                    status: Status::from(&count.status),
                    at_ms,
                    reason: sms_reason(count.code),
                    channel: Some("SMS".to_owned()),
                    sinch_id,
                }
            })
        })
        .collect();
    apply(services, updates).await
}

/// Where an SMS report goes: our message when its `client_reference` names one (our sends have
/// one recipient), else the batch's recipient.
fn sms_target(
    client_reference: Option<&str>,
    batch_id: &str,
    recipient: &str,
) -> (MessageKey, Option<SinchId>) {
    match reference::ours(client_reference) {
        Some(id) => (
            MessageKey::Ours(id.to_owned()),
            Some(SinchId::Batch(batch_id.to_owned())),
        ),
        None => (sms_key(batch_id, recipient), None),
    }
}

/// An SMS status code as a reason: 0 is success (no reason); Sinch's own codes are described.
fn sms_reason(code: i64) -> Option<Reason> {
    let description = match code {
        0 => return None,
        400 => "Queued",
        401 => "Dispatched",
        402 => "Message unroutable",
        403 => "Internal error",
        404 => "Temporary delivery failure",
        405 => "Unmatched parameter",
        406 => "Internal expiry",
        407 => "Cancelled",
        408 => "Internal reject",
        410 => "Unmatched default originator",
        411 => "Exceeded parts limit",
        412 => "Unprovisioned region",
        _ => "operator status code",
    };
    Some(Reason::new(code.to_string(), Some(description.to_owned())))
}

/// SMS recipients arrive with and without `+`; keys never have it.
pub fn sms_key(batch_id: &str, recipient: &str) -> MessageKey {
    MessageKey::Sms {
        batch_id: batch_id.to_owned(),
        recipient: recipient.trim().trim_start_matches('+').to_owned(),
    }
}

async fn apply<S: Store, H: Hook>(
    services: &Services<S, H>,
    updates: Vec<StatusUpdate>,
) -> Result<Handled, HandlerError> {
    let mut changes = Vec::with_capacity(updates.len());
    for update in updates {
        let change = services.store.record_status(&update).await?;
        info!(message = %update.key.for_logs(), status = %update.status, ?change, "delivery status recorded");
        services
            .hook
            .on_status(Report {
                key: &update.key,
                update: &update,
                change: &change,
            })
            .await?;
        changes.push((update.key, change));
    }
    Ok(Handled::Status(changes))
}
