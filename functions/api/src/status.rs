//! `GET /messages/{id}`: what became of a message.
//!
//! ```json
//! {"id": "msg_01J...", "status": "DELIVERED", "channel": "WHATSAPP", "to": "+46701234567",
//!  "history": [{"status": "ACCEPTED", "at": "2026-12-01T08:00:00.000Z"}, ...],
//!  "sinch_message_id": "01J...", "reason": null, "metadata": {"order": "A-1042"}}
//! ```
//!
//! - `status`: `ACCEPTED` (taken, queued), `UNKNOWN` (parked: its retries ran out and whether
//!   Sinch took it cannot be told; a late report still moves it), `SENT` (Sinch accepted it),
//!   then Sinch's statuses in
//!   upper case: `QUEUED_ON_CHANNEL`, `SWITCHING_CHANNEL`, `DELIVERED`, `READ`, `FAILED` (and for
//!   `SMS_API`: `QUEUED`, `DISPATCHED`, `DELIVERED`, `FAILED`, `EXPIRED`, `REJECTED`, ...). It
//!   only moves forward; `READ`, `FAILED` and the final SMS statuses are final (`"final":
//!   true`).
//! - `channel`: the channel the current status was reported from (after a fallback, the one
//!   that took it), else the one asked for.
//! - `sinch_message_id` (Conversation) or `sinch_batch_id` (SMS API): once Sinch answered, or
//!   a delivery report named the message.
//! - `reason`: `{"code", "description"}` of a `FAILED` (or `SWITCHING_CHANNEL`) status; `null`
//!   otherwise.
//! - `metadata`: as given when it was sent.

use pipeline::store::{MessageState, SinchId};
use serde_json::{Value, json};

/// The status of message `id`, as the API shows it.
pub fn view(id: &str, state: &MessageState) -> Value {
    let history: Vec<Value> = state
        .history
        .iter()
        .map(|entry| {
            let mut item =
                json!({"status": entry.status.as_str().to_uppercase(), "at": at(entry.at_ms)});
            if let Some(reason) = &entry.reason {
                item["reason"] = json!({"code": reason.code, "description": reason.description});
            }
            if let Some(channel) = &entry.channel {
                item["channel"] = json!(channel);
            }
            item
        })
        .collect();
    let mut view = json!({
        "id": id,
        "status": state.status.as_str().to_uppercase(),
        "final": state.settled(),
        "channel": state.channel_used(),
        "to": state.to,
        "history": history,
        "reason": state.reason().map(|r| json!({"code": r.code, "description": r.description})),
        "metadata": state
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok()),
    });
    match &state.sinch_id {
        Some(SinchId::Message(sinch)) => view["sinch_message_id"] = json!(sinch),
        Some(SinchId::Batch(sinch)) => view["sinch_batch_id"] = json!(sinch),
        None => {}
    }
    if let Some(in_reply_to) = &state.in_reply_to {
        view["in_reply_to"] = json!(in_reply_to);
    }
    view
}

/// Unix milliseconds as RFC 3339.
fn at(ms: u64) -> String {
    pipeline::clock::rfc3339(ms)
}
