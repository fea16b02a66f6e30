//! Events out: every committed change, as a domain event for the team's own systems.
//!
//! Events are derived from committed state only: a [`Change`] is one item of the state table
//! as it was before and after a write (in AWS, a record of the table's DynamoDB stream; in the
//! local stack, the in-memory store's change feed), and [`derive()`] says which events it makes.
//! No write, no event; a write that changes nothing an event speaks of (a retry storing the
//! same inbound message again, a late report the status does not move for), no event.
//!
//! | detail-type | made when | detail (schema) |
//! |---|---|---|
//! | `Message Received` | an inbound message (any channel) is first stored | `message_id`, `channel`, `from`, `to`, `kind`, `text` or `media` (URLs), `contact_id`, `conversation_id`, `received_at` (`schemas/events/message-received.v1.json`) |
//! | `Message Status Changed` | a message's status moves forward (its first status included) | `previous_status`, `status`, `rank`, `final`, `reason` (`code`, `description`), `channel` (the one used, after a fallback), `message_id` (ours) and/or `sinch_message_id` / `sinch_batch_id`, `metadata` (a send's, as given), `at` (`schemas/events/message-status-changed.v1.json`) |
//! | `Reply Sent` | Sinch accepted one of the pipeline's replies | `message_id` (`rpl_...`), `in_reply_to`, `channel`, `to`, `text`, Sinch's id (`schemas/events/reply-sent.v1.json`) |
//! | `Contact Opted Out` | a contact opted out on a channel: a keyword (STOP, ...), `PUT /optouts/...`, an import, or Sinch's `opt_out_notification` | `channel`, `identity`, `by` (`keyword`, `api`, `import`, `sinch`), `by_message_id` (the inbound message, or the change's reference) (`schemas/events/contact-opted-out.v1.json`) |
//! | `Contact Opted In` | an opted-out contact opted back in (START, ..., `DELETE /optouts/...`, Sinch's `opt_in_notification`) | `channel`, `identity`, `by`, `opt_out_message_id` (the opt-out it ends) (`schemas/events/contact-opted-in.v1.json`) |
//! | `Batch Completed` | the last message of a batch of the messages API reached a final status | `batch_id`, `total` (messages), `refused` (recipients refused at the door), `canceled`, `created_at`, `completed_at` (`schemas/events/batch-completed.v1.json`) |
//! | `Contact Erased` | a contact was erased (`DELETE /contacts/{channel}/{identity}`) | `reference` (`era_...`), `channel`, `inbound` and `messages` (items removed or stripped), `opt_out_kept` (their opt-out kept as a keyed hash), `at`: nothing that names the person (`schemas/events/contact-erased.v1.json`) |
//! | `Callback Dead-Lettered` | the worker parked a callback in the dead-letter queue | `message_id` (SQS's), `reason`, `detail`, `kind` (`schemas/events/callback-dead-lettered.v1.json`) |
//!
//! The `id` is the same however often a change is seen (a stream record delivered twice, a
//! publisher that crashed mid-batch): consumers dedupe on it. It travels in the detail, as
//! `detail.event_id` (EventBridge gives each delivery an `id` of its own). Statuses carry their `rank`, so a
//! consumer that sees `DELIVERED` after `READ` (EventBridge does not keep order) keeps `READ`.
//! Each detail has `version` ([`SCHEMA_VERSION`]); the JSON Schema of every detail-type is in
//! `schemas/events/` at the top of the repository (`truncated.v1.json` for an event too large
//! for an EventBridge entry, whose detail names the item instead).

mod derive;

pub use derive::derive;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{Change, Snapshot};

/// The version of every detail's schema (`schemas/events/*.v1.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// The default EventBridge `source` (`EVENT_SOURCE` changes it).
pub const DEFAULT_SOURCE: &str = "sinch-hooks";

/// The detail-types, as EventBridge rules match them.
pub const MESSAGE_RECEIVED: &str = "Message Received";
/// A message's status moved (ours, the Conversation API's or the SMS API's).
pub const MESSAGE_STATUS_CHANGED: &str = "Message Status Changed";
/// A reply to an inbound message was sent.
pub const REPLY_SENT: &str = "Reply Sent";
/// A contact opted out (a keyword).
pub const CONTACT_OPTED_OUT: &str = "Contact Opted Out";
/// A contact opted in again.
pub const CONTACT_OPTED_IN: &str = "Contact Opted In";
/// A callback was parked in the dead-letter queue.
pub const CALLBACK_DEAD_LETTERED: &str = "Callback Dead-Lettered";
/// Every message of a batch reached a final status.
pub const BATCH_COMPLETED: &str = "Batch Completed";
/// A contact was erased (`DELETE /contacts/...`); the event names no one.
pub const CONTACT_ERASED: &str = "Contact Erased";

/// Every detail-type, with the file of its schema.
pub const DETAIL_TYPES: [(&str, &str); 8] = [
    (MESSAGE_RECEIVED, "message-received.v1.json"),
    (MESSAGE_STATUS_CHANGED, "message-status-changed.v1.json"),
    (REPLY_SENT, "reply-sent.v1.json"),
    (CONTACT_OPTED_OUT, "contact-opted-out.v1.json"),
    (CONTACT_OPTED_IN, "contact-opted-in.v1.json"),
    (CALLBACK_DEAD_LETTERED, "callback-dead-lettered.v1.json"),
    (BATCH_COMPLETED, "batch-completed.v1.json"),
    (CONTACT_ERASED, "contact-erased.v1.json"),
];

/// One event, before it is an EventBridge entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Stable: the same change always gives the same id.
    pub id: String,
    /// One of [`DETAIL_TYPES`].
    #[serde(rename = "detail-type")]
    pub detail_type: &'static str,
    /// When the change was committed (Unix ms).
    pub time_ms: u64,
    /// The state item it came from, as the table names it (`msg#ours/...`, `in#...`): where a
    /// consumer reads more, and what replaces a detail too large to publish.
    pub item: String,
    /// The event's detail, as its schema in `schemas/events/` describes it.
    pub detail: serde_json::Value,
}

impl Event {
    /// An event whose id is derived from its type, its item and `parts` (what about the item
    /// changed).
    fn new(
        detail_type: &'static str,
        item: String,
        parts: &[&str],
        time_ms: u64,
        detail: serde_json::Value,
    ) -> Self {
        let mut hash = Sha256::new();
        hash.update(detail_type.as_bytes());
        hash.update([0u8]);
        hash.update(item.as_bytes());
        for part in parts {
            hash.update([0u8]);
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let id = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            detail_type,
            time_ms,
            item,
            detail,
        }
    }

    /// The detail with the event's `id` in it, as published: EventBridge gives each entry an id
    /// of its own, so ours travels in the detail (`detail.event_id`).
    pub fn published_detail(&self) -> serde_json::Value {
        let mut detail = self.detail.clone();
        if let Some(object) = detail.as_object_mut() {
            object.insert("event_id".into(), self.id.clone().into());
        }
        detail
    }
}
