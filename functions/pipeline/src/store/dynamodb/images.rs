//! Items read back as the changes events are made from (a stream record's images).

use super::*;

/// Which message a `msg#...` partition key names (the inverse of [`MessageKey`]'s display).
fn message_key(pk: &str) -> Option<MessageKey> {
    let key = pk.strip_prefix(keys::MESSAGE)?;
    if let Some(id) = key.strip_prefix("ours/") {
        return Some(MessageKey::Ours(id.to_owned()));
    }
    if let Some(id) = key.strip_prefix("conversation/") {
        return Some(MessageKey::Conversation(id.to_owned()));
    }
    let (batch_id, recipient) = key.strip_prefix("sms/")?.split_once('/')?;
    Some(MessageKey::Sms {
        batch_id: batch_id.to_owned(),
        recipient: recipient.to_owned(),
    })
}

/// An item of the table as events see it (a stream record's image): `None` for items no event
/// speaks of (idempotency records) and for anything unreadable.
pub fn snapshot(item: &Item) -> Option<Snapshot> {
    let pk = text(item, "pk")?;
    if let Some(key) = message_key(pk) {
        return message_state(&key, item).map(Snapshot::Message);
    }
    if pk.starts_with(keys::BATCH) {
        return batch_record(item).map(Snapshot::Batch);
    }
    if let Some(id) = pk.strip_prefix(keys::INBOUND) {
        return Some(Snapshot::Inbound(InboundRecord {
            text_digest: text(item, "text_sha256").map(|sha256| TextDigest {
                length: usize::try_from(number(item, "text_length").unwrap_or(0)).unwrap_or(0),
                sha256: sha256.to_owned(),
            }),
            id: id.to_owned(),
            from: ContactKey {
                channel: Channel::from(text(item, "from_channel")?),
                identity: text(item, "from_identity")?.to_owned(),
            },
            to: text(item, "to").unwrap_or_default().to_owned(),
            kind: text(item, "kind").unwrap_or_default().to_owned(),
            text: text(item, "text").map(str::to_owned),
            media: item
                .get("media")
                .and_then(|v| v.as_l().ok())
                .map(|urls| {
                    urls.iter()
                        .filter_map(|url| url.as_s().ok().cloned())
                        .collect()
                })
                .unwrap_or_default(),
            contact_id: text(item, "contact_id").map(str::to_owned),
            conversation_id: text(item, "conversation_id").map(str::to_owned),
            received_at_ms: number(item, "received_at_ms").unwrap_or_default(),
        }));
    }
    if let Some(contact) = pk.strip_prefix(keys::CONTACT) {
        let (channel, identity) = contact.split_once('/')?;
        return Some(Snapshot::Contact {
            key: ContactKey {
                channel: Channel::from(channel),
                identity: identity.to_owned(),
            },
            state: contact_state(item),
        });
    }
    if let Some(reference) = pk.strip_prefix(keys::ERASURE) {
        let count = |name| u32::try_from(number(item, name).unwrap_or(0)).unwrap_or(u32::MAX);
        return Some(Snapshot::Erasure(ErasureRecord {
            reference: reference.to_owned(),
            channel: Channel::from(text(item, "channel")?),
            erased: Erased {
                inbound: count("inbound"),
                messages: count("messages"),
                canceled: Vec::new(),
                opt_out_kept: item
                    .get("opt_out_kept")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                complete: true,
            },
            at_ms: number(item, "at_ms").unwrap_or_default(),
        }));
    }
    if let Some(message_id) = pk.strip_prefix(keys::DEAD_LETTER) {
        return Some(Snapshot::DeadLetter(DeadLetter {
            message_id: message_id.to_owned(),
            reason: text(item, "reason").unwrap_or_default().to_owned(),
            detail: text(item, "detail").unwrap_or_default().to_owned(),
            kind: text(item, "kind").map(str::to_owned),
            at_ms: number(item, "at_ms").unwrap_or_default(),
        }));
    }
    None
}
