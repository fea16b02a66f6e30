//! A message's recipient on the channels it may fall back to, in the `people` index.
//!
//! The index finds every item that names a person (what an erasure reaches), but an item has one
//! index key: a message to WhatsApp with an SMS fallback is under `WHATSAPP/<number>`, yet it
//! may reach the person by SMS and holds their number. So each fallback gets a small item of its
//! own under the person it names there.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | a fallback's alias | `alias#<message id>#<channel>` | `person` (`<channel>/<identity>`: the people index's key), `expires_at` (the message's when accepted, plus `MessageRetentionDays`: the message's own moves on with its send and reports) |
//!
//! | moment | what happens |
//! |---|---|
//! | the message accepted (or accepted again by a retry) | the message item lists its fallback channels (`fallback`, channel names only); an alias is put for each (a put: again is harmless) |
//! | an erasure of the person on a fallback channel | finds the alias, and treats its message as one that names them: stripped, canceled if it has not left |
//! | the message stripped (by any erasure) | its aliases are deleted: the `fallback` list stays on it, so a strip repeated after a crash deletes them again |

use super::{DynamoStore, Item, failed, keys, n, s};
use crate::store::{ContactKey, StoreError};

/// The message an alias's key points at (our message id).
pub(super) fn aliased_message(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix(keys::ALIAS)?;
    rest.rsplit_once('#').map(|(id, _)| id)
}

/// The message item's list of fallback channels, for `fallback` (none: no attribute).
pub(super) fn fallback_attribute(
    fallback: &[ContactKey],
) -> Option<aws_sdk_dynamodb::types::AttributeValue> {
    let mut channels: Vec<String> = fallback
        .iter()
        .map(|contact| contact.channel.as_str().to_owned())
        .collect();
    channels.sort();
    channels.dedup();
    (!channels.is_empty()).then_some(aws_sdk_dynamodb::types::AttributeValue::Ss(channels))
}

impl DynamoStore {
    /// Puts an alias of message `id` for each of its fallback recipients. `expires_at`: the
    /// message's when it is accepted; an alias outlives that by a retention, as the message's
    /// own expiry moves on with each write (its send, its reports).
    pub(super) async fn put_aliases(
        &self,
        id: &str,
        fallback: &[ContactKey],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let expires_at = expires_at.saturating_add(self.retention.messages.as_secs());
        for contact in fallback {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(keys::alias(id, contact.channel.as_str())))
                .item(super::PERSON, s(contact.to_string()))
                .item("expires_at", n(expires_at))
                .send()
                .await
                .map_err(|e| failed("accept message", e))?;
        }
        Ok(())
    }

    /// Deletes the aliases of message `id`, as its item (`item`) lists them.
    pub(super) async fn delete_aliases(&self, id: &str, item: &Item) -> Result<(), StoreError> {
        let Some(channels) = item.get("fallback").and_then(|v| v.as_ss().ok()) else {
            return Ok(());
        };
        for channel in channels {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(keys::alias(id, channel)))
                .send()
                .await
                .map_err(|e| failed("strip recipient", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_names_its_message() {
        let pk = keys::alias("msg_01ABC", "SMS");
        assert_eq!(pk, "alias#msg_01ABC#SMS");
        assert_eq!(aliased_message(&pk), Some("msg_01ABC"));
        assert_eq!(aliased_message("msg#ours/msg_01ABC"), None);
    }
}
