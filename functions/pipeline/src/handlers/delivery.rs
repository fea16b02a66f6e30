//! Delivery reports: the message status moves forward only, the history keeps everything.

use sinch::callback::conversation::{Envelope, MessageDeliveryReport};
use sinch::callback::sms::{BatchDeliveryReport, RecipientDeliveryReport};
use tracing::info;

use super::{Handled, HandlerError, Services, millis};
use crate::status;
use crate::store::{MessageKey, StatusUpdate, Store};

/// A Conversation `message_delivery_report`.
pub async fn conversation<S: Store>(
    services: &Services<S>,
    envelope: &Envelope,
    report: &MessageDeliveryReport,
) -> Result<Handled, HandlerError> {
    let update = StatusUpdate {
        key: MessageKey::Conversation(report.message_id.clone()),
        status: report.status.to_string(),
        progress: status::conversation(&report.status),
        at_ms: millis(
            envelope.event_time.or(envelope.accepted_time),
            &services.clock,
        ),
        reason: report
            .reason
            .as_ref()
            .map(|r| r.code.clone())
            .filter(|code| !code.is_empty()),
        channel: report
            .channel_identity
            .as_ref()
            .map(|c| c.channel.to_string()),
    };
    apply(services, vec![update]).await
}

/// An SMS `recipient_delivery_report_*`.
pub async fn sms_recipient<S: Store>(
    services: &Services<S>,
    report: &RecipientDeliveryReport,
) -> Result<Handled, HandlerError> {
    let update = StatusUpdate {
        key: sms_key(&report.batch_id, &report.recipient),
        status: report.status.to_string(),
        progress: status::sms(&report.status),
        at_ms: millis(report.at, &services.clock),
        reason: (report.code != 0).then(|| report.code.to_string()),
        channel: Some("SMS".to_owned()),
    };
    apply(services, vec![update]).await
}

/// An SMS `delivery_report_*` for a whole batch: applied to each recipient it lists (a `full`
/// report lists them; a `summary` report only counts, and changes nothing).
pub async fn sms_batch<S: Store>(
    services: &Services<S>,
    report: &BatchDeliveryReport,
) -> Result<Handled, HandlerError> {
    let at_ms = millis(None, &services.clock);
    let updates = report
        .statuses
        .iter()
        .flat_map(|count| {
            count.recipients.iter().map(move |recipient| StatusUpdate {
                key: sms_key(&report.batch_id, recipient),
                status: count.status.to_string(),
                progress: status::sms(&count.status),
                at_ms,
                reason: (count.code != 0).then(|| count.code.to_string()),
                channel: Some("SMS".to_owned()),
            })
        })
        .collect();
    apply(services, updates).await
}

/// SMS recipients arrive with and without `+`; keys never have it.
pub fn sms_key(batch_id: &str, recipient: &str) -> MessageKey {
    MessageKey::Sms {
        batch_id: batch_id.to_owned(),
        recipient: recipient.trim().trim_start_matches('+').to_owned(),
    }
}

async fn apply<S: Store>(
    services: &Services<S>,
    updates: Vec<StatusUpdate>,
) -> Result<Handled, HandlerError> {
    let mut changes = Vec::with_capacity(updates.len());
    for update in updates {
        let change = services.store.record_status(&update).await?;
        info!(message = %update.key, status = %update.status, ?change, "delivery status recorded");
        changes.push((update.key, change));
    }
    Ok(Handled::Status(changes))
}
