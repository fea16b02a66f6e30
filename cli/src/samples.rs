//! Sample callback bodies in Sinch's shapes, with fresh ids, for the demo, `send` and `events`.

use serde_json::json;

/// A ULID, as Sinch's ids are.
pub fn id() -> String {
    ulid::Ulid::generate().to_string()
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A Conversation API inbound text message (MESSAGE_INBOUND) on `channel`.
pub fn inbound(message_id: &str, channel: &str, from: &str, text: &str) -> Vec<u8> {
    json!({
        "app_id": "01EB37HMH1M6SV18ABNS3G135H",
        "accepted_time": now(),
        "event_time": now(),
        "project_id": "c36f3d3d-1523-4edd-ae42-11995557ff61",
        "message": {
            "id": message_id,
            "direction": "TO_APP",
            "contact_message": {"text_message": {"text": text}},
            "channel_identity": {"channel": channel, "identity": from, "app_id": "01EB37HMH1M6SV18ABNS3G135H"},
            "conversation_id": "01EQ8172WMDB8008EFT4M30481",
            "contact_id": "01EQ4174TGGY5B1VPTPGHW19R0",
            "metadata": "",
            "accept_time": now(),
            "processing_mode": "CONVERSATION"
        },
        "message_metadata": ""
    })
    .to_string()
    .into_bytes()
}

/// A Conversation API delivery report (MESSAGE_DELIVERY). `correlation_id` is what the send
/// carried (empty for none): Sinch echoes it, and our own sends are found by it.
pub fn delivery(
    message_id: &str,
    status: &str,
    channel: &str,
    to: &str,
    correlation_id: &str,
) -> Vec<u8> {
    json!({
        "app_id": "01EB37HMH1M6SV18ABNS3G135H",
        "accepted_time": now(),
        "event_time": now(),
        "project_id": "c36f3d3d-1523-4edd-ae42-11995557ff61",
        "message_delivery_report": {
            "message_id": message_id,
            "conversation_id": "01EQ8172WMDB8008EFT4M30481",
            "status": status,
            "channel_identity": {"channel": channel, "identity": to, "app_id": ""},
            "contact_id": "01EQ4174TGGY5B1VPTPGHW19R0",
            "metadata": correlation_id,
            "processing_mode": "CONVERSATION"
        },
        "message_metadata": correlation_id,
        "correlation_id": correlation_id
    })
    .to_string()
    .into_bytes()
}

/// An SMS API inbound text (`mo_text`) from `from` to our number `to`.
pub fn sms_inbound(id: &str, from: &str, to: &str, text: &str) -> Vec<u8> {
    json!({
        "type": "mo_text", "id": id, "from": from, "to": to, "body": text,
        "received_at": now(), "operator_id": "24001"
    })
    .to_string()
    .into_bytes()
}

/// An SMS API per-recipient delivery report.
pub fn sms_delivery(batch_id: &str, recipient: &str, status: &str, code: i64) -> Vec<u8> {
    json!({
        "type": "recipient_delivery_report_sms", "batch_id": batch_id, "recipient": recipient,
        "code": code, "status": status, "at": now(), "operator_status_at": now()
    })
    .to_string()
    .into_bytes()
}
