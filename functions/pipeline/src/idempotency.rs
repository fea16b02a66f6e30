//! Idempotency keys: a callback's business identity.
//!
//! Sinch retries, SQS redelivers, and several webhooks can share a trigger, so the same callback
//! arrives more than once, sometimes concurrently. The worker claims a key before any side
//! effect that could happen twice ([`crate::handlers::needs_claim`]) and remembers it (48 h by default, beyond Sinch's ~23 h retry horizon). The key is
//! what makes two callbacks "the same" for the business, not their bytes, because a retry or a
//! second webhook may differ in envelope fields:
//!
//! | callback | key |
//! |---|---|
//! | Conversation inbound message | `conversation/message/<message.id>` |
//! | Conversation delivery report | `conversation/delivery/<message_id>/<status>/<channel>` |
//! | SMS inbound (`mo_text`, `mo_binary`, `mo_media`) | `sms/mo/<id>` |
//! | SMS recipient delivery report | `sms/recipient/<batch_id>/<recipient>/<status>/<code>/<at>` |
//! | SMS batch delivery report | `sms/batch/<batch_id>/<SHA-256 of its statuses>` |
//! | anything else | `body/<SHA-256 of the raw body>` |
//!
//! The SHA-256 of the raw body is stored beside the key; a different body under the same key is
//! reported (a warning) and treated as the duplicate it most likely is.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sinch::callback::conversation::Event;
use sinch::callback::{Callback, SmsCallback};

/// Keys longer than this are replaced by their hash (DynamoDB allows 2048 bytes).
const MAX_KEY_LEN: usize = 512;

/// The idempotency key of `callback`, whose raw body is `body`.
pub fn key(callback: &Callback, body: &[u8]) -> String {
    let key = match callback {
        Callback::Conversation(c) => match &c.event {
            Event::MessageInbound(m) => format!("conversation/message/{}", m.id),
            Event::MessageDelivery(r) => format!(
                "conversation/delivery/{}/{}/{}",
                r.message_id,
                r.status,
                r.channel_identity
                    .as_ref()
                    .map(|c| c.channel.as_str())
                    .unwrap_or_default()
            ),
            _ => body_key(body),
        },
        Callback::Sms(sms) => match sms {
            SmsCallback::MoText(mo) | SmsCallback::MoBinary(mo) => format!("sms/mo/{}", mo.id),
            SmsCallback::MoMedia(mo) => format!("sms/mo/{}", mo.id),
            SmsCallback::RecipientDeliveryReport { report, .. } => format!(
                "sms/recipient/{}/{}/{}/{}/{}",
                report.batch_id,
                report.recipient.trim_start_matches('+'),
                report.status,
                report.code,
                report
                    .at
                    .map(|at| at.unix_timestamp_nanos().to_string())
                    .unwrap_or_default()
            ),
            SmsCallback::BatchDeliveryReport { report, .. } => {
                // Our own serialization of the typed statuses: stable whatever the body's layout.
                let statuses = serde_json::to_vec(&report.statuses).unwrap_or_default();
                format!("sms/batch/{}/{}", report.batch_id, digest(&statuses))
            }
            SmsCallback::Unknown { .. } => body_key(body),
        },
        Callback::Unknown { .. } => body_key(body),
    };
    if key.len() > MAX_KEY_LEN {
        format!("hashed/{}", digest(key.as_bytes()))
    } else {
        key
    }
}

/// `key` as a log line may show it: an SMS recipient report's key names the number, which the
/// logs never hold (docs/consent.md), so it stops at the batch.
pub fn for_logs(key: &str) -> &str {
    match key.strip_prefix("sms/recipient/") {
        Some(rest) => {
            let batch = rest.split('/').next().unwrap_or_default();
            &key[.."sms/recipient/".len() + batch.len()]
        }
        None => key,
    }
}

/// SHA-256 of the raw body, stored with the key.
pub fn payload_hash(body: &[u8]) -> String {
    digest(body)
}

fn body_key(body: &[u8]) -> String {
    format!("body/{}", digest(body))
}

/// SHA-256, base64url without padding (43 characters).
fn digest(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sinch::callback::parse;

    fn key_of(body: &str) -> String {
        key(&parse(body.as_bytes()).unwrap(), body.as_bytes())
    }

    #[test]
    fn keys_follow_the_business_identity() {
        assert_eq!(
            key_of(
                r#"{"app_id":"a","accepted_time":"2026-01-01T00:00:00Z","message":{"id":"01M"}}"#
            ),
            "conversation/message/01M"
        );
        // A retry with another envelope is the same message.
        assert_eq!(
            key_of(
                r#"{"app_id":"a","accepted_time":"2026-01-01T00:00:09Z","message":{"id":"01M"}}"#
            ),
            "conversation/message/01M"
        );
        assert_eq!(
            key_of(
                r#"{"message_delivery_report":{"message_id":"01M","status":"READ","channel_identity":{"channel":"WHATSAPP","identity":"1"}}}"#
            ),
            "conversation/delivery/01M/READ/WHATSAPP"
        );
        assert_eq!(
            key_of(r#"{"type":"mo_text","id":"01S","from":"1","to":"2","body":"x"}"#),
            "sms/mo/01S"
        );
        assert_eq!(
            key_of(
                r#"{"type":"recipient_delivery_report_sms","batch_id":"B","recipient":"+46","code":0,"status":"Delivered","at":"2026-01-01T00:00:00.5Z"}"#
            ),
            "sms/recipient/B/46/Delivered/0/1767225600500000000"
        );
    }

    #[test]
    fn batch_reports_key_on_their_statuses() {
        let a = key_of(
            r#"{"type":"delivery_report_sms","batch_id":"B","statuses":[{"code":0,"count":1,"status":"Delivered","recipients":["1"]}]}"#,
        );
        let same = key_of(
            "{\n \"type\": \"delivery_report_sms\", \"statuses\": [{\"status\":\"Delivered\",\"code\":0,\"count\":1,\"recipients\":[\"1\"]}], \"batch_id\": \"B\"\n}",
        );
        let other = key_of(
            r#"{"type":"delivery_report_sms","batch_id":"B","statuses":[{"code":0,"count":2,"status":"Delivered","recipients":["1","2"]}]}"#,
        );
        assert!(a.starts_with("sms/batch/B/"));
        assert_eq!(a, same);
        assert_ne!(a, other);
    }

    #[test]
    fn anything_else_keys_on_its_bytes() {
        let contact = r#"{"app_id":"a","contact_create_notification":{"contact":{"id":"c"}}}"#;
        assert_eq!(
            key_of(contact),
            format!("body/{}", payload_hash(contact.as_bytes()))
        );
        assert_ne!(key_of(contact), key_of(&format!("{contact} ")));
    }

    #[test]
    fn keys_in_logs_name_no_number() {
        let key = key_of(
            r#"{"type":"recipient_delivery_report_sms","batch_id":"B","recipient":"+46701234567","code":0,"status":"Delivered"}"#,
        );
        assert_eq!(for_logs(&key), "sms/recipient/B");
        assert_eq!(for_logs("sms/mo/01S"), "sms/mo/01S");
    }

    #[test]
    fn very_long_keys_are_hashed() {
        let id = "x".repeat(1000);
        let body = format!(r#"{{"message":{{"id":"{id}"}}}}"#);
        let key = key_of(&body);
        assert!(key.starts_with("hashed/") && key.len() < 64, "{key}");
    }
}
