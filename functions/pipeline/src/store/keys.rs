//! Every item kind of the table and its partition key, defined here once: the DynamoDB store's
//! writers and readers, the erasure, the stream's images and the events' ids all name keys
//! through these. The
//! template's IAM (`dynamodb:LeadingKeys`) and stream filter name the same prefixes; the
//! least-privilege and stream-filter tests hold them to it.
//!
//! | item | `pk` | written by |
//! |---|---|---|
//! | idempotency record | `idem#<key>` (the messages API's: `idem#api/...`) | every function that claims a key |
//! | message state | `msg#ours/<our id>`, `msg#conversation/<Sinch id>`, `msg#sms/<batch>/<recipient>` | the worker, the API |
//! | inbound message | `in#<Sinch id>` | the worker |
//! | contact | `contact#<channel>/<identity>` | the worker, the API |
//! | an erased contact's opt-out | `optout#<keyed hash>` | an erasure |
//! | an erasure's mark | `erased#<keyed hash>` | an erasure |
//! | an erasure's record (its event) | `erasure#<reference>` | an erasure |
//! | dead letter | `dead#<SQS message id>` | the worker |
//! | batch | `batch#<id>` | the API |
//! | a batch's recipients | `chunk#<id>#<k>` (`batch#<id>#<k>` for batches stored before) | the API |
//! | a batch's answer | `answer#<id>` | the API |
//! | a batch's finals | `finals#<id>#<k % 16>` | the API, the worker |
//! | a batch's tally | `tally#<id>#<k / 100>` | the worker, the API |
//! | a fallback's alias | `alias#<message id>#<channel>` | the API, the worker |
//! | a guard's counter | `guard#<key>` (`guard#dest/...`, `guard#cap/...`) | the API |
//! | a pacing timeline | `pace#<timeline>` | the worker |
//!
//! A batch's parts are outside the `batch#` prefix, so that the stream's filter (which admits
//! `batch#` for `Batch Completed`) does not hand the publisher its chunks (up to 300 KB of
//! numbers and texts each), its answer or its counts.

use crate::store::{ContactKey, MessageKey};

/// Message states.
pub const MESSAGE: &str = "msg#";
/// Our own messages' states (replies and the messages API's sends).
pub const OUR_MESSAGE: &str = "msg#ours/";
/// SMS delivery reports keyed by their batch and recipient (the number is in the key).
pub const SMS_REPORT: &str = "msg#sms/";
/// Inbound messages.
pub const INBOUND: &str = "in#";
/// Contacts.
pub const CONTACT: &str = "contact#";
/// Batches.
pub const BATCH: &str = "batch#";
/// Erasures' records.
pub const ERASURE: &str = "erasure#";
/// Dead letters.
pub const DEAD_LETTER: &str = "dead#";
/// Fallbacks' aliases.
pub const ALIAS: &str = "alias#";

/// An idempotency record.
pub fn idempotency(key: &str) -> String {
    format!("idem#{key}")
}

/// A message's state.
pub fn message(key: &MessageKey) -> String {
    format!("{MESSAGE}{key}")
}

/// An inbound message.
pub fn inbound(id: &str) -> String {
    format!("{INBOUND}{id}")
}

/// A contact.
pub fn contact(contact: &ContactKey) -> String {
    format!("{CONTACT}{contact}")
}

/// An erased contact's opt-out, under the keyed hash of the contact.
pub fn hashed_opt_out(hash: &str) -> String {
    format!("optout#{hash}")
}

/// An erasure's mark, under the keyed hash of the contact.
pub fn erased(hash: &str) -> String {
    format!("erased#{hash}")
}

/// An erasure's record.
pub fn erasure(reference: &str) -> String {
    format!("{ERASURE}{reference}")
}

/// A dead letter.
pub fn dead_letter(message_id: &str) -> String {
    format!("{DEAD_LETTER}{message_id}")
}

/// A batch.
pub fn batch(id: &str) -> String {
    format!("{BATCH}{id}")
}

/// A chunk of a batch's recipients.
pub fn chunk(id: &str, chunk: u32) -> String {
    format!("chunk#{id}#{chunk}")
}

/// Where chunks were kept before they left the `batch#` prefix (read for a batch stored then).
pub fn legacy_chunk(id: &str, chunk: u32) -> String {
    format!("{BATCH}{id}#{chunk}")
}

/// A batch's answer.
pub fn answer(id: &str) -> String {
    format!("answer#{id}")
}

/// A shard of a batch's finals.
pub fn finals(id: &str, shard: u32) -> String {
    format!("finals#{id}#{shard}")
}

/// A block of a batch's tally.
pub fn tally(id: &str, block: u32) -> String {
    format!("tally#{id}#{block}")
}

/// A message's alias on a fallback channel.
pub fn alias(id: &str, channel: &str) -> String {
    format!("{ALIAS}{id}#{channel}")
}

/// A guard's counter.
pub fn guard(key: &str) -> String {
    format!("guard#{key}")
}

/// A pacing timeline.
pub fn pace(timeline: &str) -> String {
    format!("pace#{timeline}")
}
