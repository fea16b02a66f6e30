//! Which events a committed change makes (see the table in [`super`]).

use serde_json::{Map, Value, json};

use super::{
    BATCH_COMPLETED, CALLBACK_DEAD_LETTERED, CONTACT_ERASED, CONTACT_OPTED_IN, CONTACT_OPTED_OUT,
    Change, Event, MESSAGE_RECEIVED, MESSAGE_STATUS_CHANGED, REPLY_SENT, SCHEMA_VERSION, Snapshot,
};
use crate::clock::rfc3339;
use crate::store::{MessageKey, MessageState, SendState, SinchId, keys};

/// The events of one change, in the order a consumer would want them (a status before the
/// reply it proves sent).
pub fn derive(change: &Change) -> Vec<Event> {
    match (&change.old, &change.new) {
        (old, Some(Snapshot::Message(new))) => {
            let old = match old {
                Some(Snapshot::Message(old)) => Some(old),
                _ => None,
            };
            message(old, new, change.at_ms)
        }
        (None, Some(Snapshot::Inbound(inbound))) => {
            let mut detail = object([
                ("message_id", json!(inbound.id)),
                ("channel", json!(inbound.from.channel)),
                ("from", json!(inbound.from.identity)),
                ("to", json!(inbound.to)),
                ("kind", json!(inbound.kind)),
                ("received_at", json!(rfc3339(inbound.received_at_ms))),
            ]);
            optional(&mut detail, "text", inbound.text.as_deref());
            if let Some(digest) = &inbound.text_digest {
                detail.insert("text_length".into(), json!(digest.length));
                detail.insert("text_sha256".into(), json!(digest.sha256));
            }
            if !inbound.media.is_empty() {
                detail.insert("media".into(), json!(inbound.media));
            }
            optional(&mut detail, "contact_id", inbound.contact_id.as_deref());
            optional(
                &mut detail,
                "conversation_id",
                inbound.conversation_id.as_deref(),
            );
            vec![Event::new(
                MESSAGE_RECEIVED,
                keys::inbound(&inbound.id),
                &[],
                change.at_ms,
                Value::Object(detail),
            )]
        }
        (old, Some(Snapshot::Contact { key, state })) => {
            let before = match old {
                Some(Snapshot::Contact { state, .. }) => state.opted_out_by.as_deref(),
                _ => None,
            };
            let item = keys::contact(key);
            // Where the change came from: a keyword unless the item says otherwise (items
            // written before sources were recorded were all keywords).
            let source = state
                .opt_source
                .as_ref()
                .map_or("keyword", |source| source.as_str());
            let detail = |by: &str| {
                Value::Object(object([
                    ("channel", json!(key.channel)),
                    ("identity", json!(key.identity)),
                    ("by", json!(source)),
                    ("by_message_id", json!(by)),
                    ("at", json!(rfc3339(change.at_ms))),
                ]))
            };
            match (before, state.opted_out_by.as_deref()) {
                (None, Some(by)) => vec![Event::new(
                    CONTACT_OPTED_OUT,
                    item,
                    &[by],
                    change.at_ms,
                    detail(by),
                )],
                (Some(by), None) => {
                    let mut event =
                        Event::new(CONTACT_OPTED_IN, item, &[by], change.at_ms, detail(by));
                    // Opted back in by a later message; `by` names the opt-out it ends.
                    if let Some(detail) = event.detail.as_object_mut() {
                        let by = detail.remove("by_message_id").unwrap_or_default();
                        detail.insert("opt_out_message_id".into(), by);
                    }
                    vec![event]
                }
                _ => Vec::new(),
            }
        }
        (old, Some(Snapshot::Batch(batch))) => {
            let was_complete =
                matches!(old, Some(Snapshot::Batch(b)) if b.completed_at_ms.is_some());
            match batch.completed_at_ms {
                Some(completed_at_ms) if !was_complete => {
                    let detail = object([
                        ("batch_id", json!(batch.id)),
                        ("total", json!(batch.total)),
                        ("refused", json!(batch.refused)),
                        ("canceled", json!(batch.canceled)),
                        ("created_at", json!(rfc3339(batch.created_at_ms))),
                        ("completed_at", json!(rfc3339(completed_at_ms))),
                    ]);
                    vec![Event::new(
                        BATCH_COMPLETED,
                        keys::batch(&batch.id),
                        &[],
                        change.at_ms,
                        Value::Object(detail),
                    )]
                }
                _ => Vec::new(),
            }
        }
        (None, Some(Snapshot::Erasure(erasure))) => {
            let detail = object([
                ("reference", json!(erasure.reference)),
                ("channel", json!(erasure.channel)),
                ("inbound", json!(erasure.erased.inbound)),
                ("messages", json!(erasure.erased.messages)),
                ("opt_out_kept", json!(erasure.erased.opt_out_kept)),
                ("at", json!(rfc3339(erasure.at_ms))),
            ]);
            vec![Event::new(
                CONTACT_ERASED,
                keys::erasure(&erasure.reference),
                &[],
                change.at_ms,
                Value::Object(detail),
            )]
        }
        (None, Some(Snapshot::DeadLetter(dead))) => {
            let mut detail = object([
                ("message_id", json!(dead.message_id)),
                ("reason", json!(dead.reason)),
                ("detail", json!(dead.detail)),
                ("at", json!(rfc3339(dead.at_ms))),
            ]);
            optional(&mut detail, "kind", dead.kind.as_deref());
            vec![Event::new(
                CALLBACK_DEAD_LETTERED,
                keys::dead_letter(&dead.message_id),
                &[],
                change.at_ms,
                Value::Object(detail),
            )]
        }
        _ => Vec::new(),
    }
}

/// A message item's events: its status moved; one of our replies was sent.
fn message(old: Option<&MessageState>, new: &MessageState, at_ms: u64) -> Vec<Event> {
    let item = keys::message(&new.key);
    let mut events = Vec::new();
    if let Some(status) = status_of(Some(new))
        && status_of(old) != Some(status)
    {
        let mut detail = identity(new);
        detail.insert("status".into(), json!(status));
        detail.insert("previous_status".into(), json!(status_of(old)));
        detail.insert("rank".into(), json!(new.progress().rank));
        detail.insert("final".into(), json!(new.progress().terminal));
        if let Some(reason) = new.reason() {
            detail.insert(
                "reason".into(),
                json!({"code": reason.code, "description": reason.description}),
            );
        }
        optional(&mut detail, "channel", new.channel_used());
        if let Some(metadata) = &new.metadata {
            // Stored as the caller sent it (JSON text): echoed as JSON.
            let value = serde_json::from_str(metadata).unwrap_or_else(|_| json!(metadata));
            detail.insert("metadata".into(), value);
        }
        let when = new
            .history
            .iter()
            .find(|entry| entry.status.as_str() == status)
            .map_or(at_ms, |entry| entry.at_ms);
        detail.insert("at".into(), json!(rfc3339(when)));
        events.push(Event::new(
            MESSAGE_STATUS_CHANGED,
            item.clone(),
            &[status],
            at_ms,
            Value::Object(detail),
        ));
    }
    if let Some(in_reply_to) = &new.in_reply_to
        && sent(Some(new))
        && !sent(old)
    {
        let mut detail = identity(new);
        detail.insert("in_reply_to".into(), json!(in_reply_to));
        optional(&mut detail, "channel", new.channel.as_deref());
        optional(&mut detail, "to", new.to.as_deref());
        optional(&mut detail, "text", new.text.as_deref());
        detail.insert("at".into(), json!(rfc3339(at_ms)));
        events.push(Event::new(
            REPLY_SENT,
            item,
            &[],
            at_ms,
            Value::Object(detail),
        ));
    }
    events
}

/// A message's status, once it has one.
fn status_of(state: Option<&MessageState>) -> Option<&str> {
    state
        .map(|s| s.status.as_str())
        .filter(|status| !status.is_empty())
}

/// Whether Sinch accepted the send (recorded `SENT`).
fn sent(state: Option<&MessageState>) -> bool {
    state.and_then(|s| s.send) == Some(SendState::Sent)
}

/// Which message: our id for ours, Sinch's ids for all.
fn identity(state: &MessageState) -> Map<String, Value> {
    let mut detail = object([]);
    match &state.key {
        MessageKey::Ours(id) => {
            detail.insert("message_id".into(), json!(id));
        }
        MessageKey::Conversation(id) => {
            detail.insert("sinch_message_id".into(), json!(id));
        }
        MessageKey::Sms {
            batch_id,
            recipient,
        } => {
            detail.insert("sinch_batch_id".into(), json!(batch_id));
            detail.insert("recipient".into(), json!(recipient));
        }
    }
    match &state.sinch_id {
        Some(SinchId::Message(id)) => {
            detail.insert("sinch_message_id".into(), json!(id));
        }
        Some(SinchId::Batch(id)) => {
            detail.insert("sinch_batch_id".into(), json!(id));
        }
        None => {}
    }
    detail
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("version".into(), json!(SCHEMA_VERSION));
    for (name, value) in fields {
        map.insert(name.into(), value);
    }
    map
}

fn optional(detail: &mut Map<String, Value>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        detail.insert(name.into(), json!(value));
    }
}
