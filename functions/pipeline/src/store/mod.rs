//! What the worker remembers: message status with history, inbound messages, opt-outs, and the
//! sends it made (replies and the messages API's sends), each recorded before it leaves.
//!
//! Behind a trait so the handlers do not care where state lives: an in-memory store for the
//! local stack and tests, DynamoDB in AWS.

mod dynamodb;
pub mod keys;
mod memory;
mod settings;
mod traits;
mod window;

pub use dynamodb::{DynamoStore, dynamodb_client, snapshot as dynamodb_snapshot};
pub use memory::MemoryStore;
pub use settings::{
    CONTACT_HASH_KEY, CONTACT_RETENTION_DAYS, ContactHasher, DEFAULT_CONTACT_RETENTION_DAYS,
    DEFAULT_INBOUND_RETENTION_DAYS, DEFAULT_MESSAGE_RETENTION_DAYS, INBOUND_RETENTION_DAYS,
    MESSAGE_RETENTION_DAYS, Retention,
};
pub use traits::{
    BatchStore, ContactStore, CounterStore, DeadLetterStore, IdempotencyStore, MessageStore, Store,
};
pub use window::{Counted, WindowState, slide};

/// Every part of the store at once, for code that holds a concrete store and calls any of it
/// (tests, tools): `use pipeline::store::prelude::*;`.
pub mod prelude {
    pub use super::traits::{
        BatchStore, ContactStore, CounterStore, DeadLetterStore, IdempotencyStore, MessageStore,
        Store,
    };
}

use serde::{Deserialize, Serialize};

use sinch::Channel;

use crate::status::{Progress, Status};

// --- Items as a change sees them (the table's stream in AWS, the in-memory store's feed) ---

/// A callback the worker parked in the dead-letter queue, as the state table remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The SQS message id of the callback.
    pub message_id: String,
    /// Why, e.g. `unparseable_payload` (see [`crate::process`]).
    pub reason: String,
    /// What went wrong, for an operator.
    pub detail: String,
    /// The callback's kind, when it could be read.
    pub kind: Option<String>,
    /// When it was parked, Unix ms.
    pub at_ms: u64,
}

/// One item of the state, as a change sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot {
    /// A message's state (`msg#...`).
    Message(MessageState),
    /// An inbound message (`in#...`).
    Inbound(InboundRecord),
    /// A contact's opt-out and window (`contact#...`).
    Contact {
        /// Who.
        key: ContactKey,
        /// What is known of them.
        state: ContactState,
    },
    /// A dead-lettered callback (`dead#...`).
    DeadLetter(DeadLetter),
    /// A batch of the messages API (`batch#...`).
    Batch(BatchRecord),
    /// A contact erased (`erasure#...`).
    Erasure(ErasureRecord),
}

/// The key prefixes of the table's items that events come from, one per [`Snapshot`] kind.
/// The table stream's filter in template.yaml (the publisher's `FilterCriteria`) admits
/// exactly these (a test reads it), and `serve` applies the same filter to what it publishes,
/// so an event that could never leave in AWS never leaves locally either.
pub const EVENT_ITEM_PREFIXES: [&str; 6] = [
    keys::MESSAGE,
    keys::INBOUND,
    keys::CONTACT,
    keys::DEAD_LETTER,
    keys::BATCH,
    keys::ERASURE,
];

/// Whether the stream filter admits the item keyed `pk` ([`EVENT_ITEM_PREFIXES`]).
pub fn stream_admits(pk: &str) -> bool {
    EVENT_ITEM_PREFIXES
        .iter()
        .any(|prefix| pk.starts_with(prefix))
}

impl Snapshot {
    /// The key prefix of the item it is read from.
    pub fn key_prefix(&self) -> &'static str {
        match self {
            Snapshot::Message(_) => keys::MESSAGE,
            Snapshot::Inbound(_) => keys::INBOUND,
            Snapshot::Contact { .. } => keys::CONTACT,
            Snapshot::DeadLetter(_) => keys::DEAD_LETTER,
            Snapshot::Batch(_) => keys::BATCH,
            Snapshot::Erasure(_) => keys::ERASURE,
        }
    }
}

/// One committed write: the item before and after (`None`: it did not exist / was removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The item before, if it existed.
    pub old: Option<Snapshot>,
    /// The item after, unless it was removed.
    pub new: Option<Snapshot>,
    /// When it was committed (Unix ms): the stream record's creation time.
    pub at_ms: u64,
}

// --- The items' parts ---

/// Which message a delivery status belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageKey {
    /// A message we sent (a reply, or a send of the messages API), by our own id: its delivery
    /// reports carry that id back (see [`crate::ledger::reference`]).
    Ours(String),
    /// A Conversation API message, by its message id (reports that do not name one of ours).
    Conversation(String),
    /// One recipient of an SMS batch.
    Sms {
        /// The SMS batch.
        batch_id: String,
        /// The recipient's number, without `+`.
        recipient: String,
    },
}

impl MessageKey {
    /// The key as a log line may show it: an SMS recipient's number left out (the logs hold
    /// ids, codes and counts, never a number: docs/consent.md).
    pub fn for_logs(&self) -> String {
        match self {
            MessageKey::Sms { batch_id, .. } => format!("sms/{batch_id}"),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageKey::Ours(id) => write!(f, "ours/{id}"),
            MessageKey::Conversation(id) => write!(f, "conversation/{id}"),
            MessageKey::Sms {
                batch_id,
                recipient,
            } => write!(f, "sms/{batch_id}/{recipient}"),
        }
    }
}

/// Sinch's id for a message we sent: what its send API answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SinchId {
    /// A Conversation API message id.
    Message(String),
    /// An SMS API batch id.
    Batch(String),
}

impl SinchId {
    /// The id as Sinch wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            SinchId::Message(id) | SinchId::Batch(id) => id,
        }
    }
}

/// Why a message failed (or switched channel): Sinch's code and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// e.g. `OUTSIDE_ALLOWED_SENDING_WINDOW`, an SMS status code, or Sinch's error code for a
    /// refused send.
    pub code: String,
    /// Sinch's words, if any.
    pub description: Option<String>,
}

impl Reason {
    /// A reason with `code`; an empty description counts as none.
    pub fn new(code: impl Into<String>, description: Option<String>) -> Self {
        Self {
            code: code.into(),
            description: description.filter(|d| !d.is_empty()),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.description {
            Some(description) => write!(f, "{}: {description}", self.code),
            None => f.write_str(&self.code),
        }
    }
}

/// One delivery report, as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// Which message.
    pub key: MessageKey,
    /// The status reported.
    pub status: Status,
    /// When Sinch says it happened (or when we received it), Unix milliseconds.
    pub at_ms: u64,
    /// Failure or switch reason, e.g. `OUTSIDE_ALLOWED_SENDING_WINDOW`, or an SMS code.
    pub reason: Option<Reason>,
    /// The channel the report came from.
    pub channel: Option<String>,
    /// For one of our messages: Sinch's id, as the report names it. A report proves Sinch took
    /// the send, so this settles a send whose answer was lost.
    pub sinch_id: Option<SinchId>,
}

/// One entry of a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The status reported.
    pub status: Status,
    /// When it happened, Unix ms.
    pub at_ms: u64,
    /// Why, for failures and channel switches.
    pub reason: Option<Reason>,
    /// The channel the report came from (after a fallback, not the one first asked for).
    pub channel: Option<String>,
}

/// The identity of a history entry, so that the same entry is never added twice (the same
/// report again; a write the SDK retried after it landed): a report by its content, a send's
/// outcome by its attempt, the acceptance once.
pub(crate) fn entry_id(entry: &HistoryEntry, attempt: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    match (&entry.status, attempt) {
        (Status::Accepted, _) if entry.reason.is_none() => "accepted".to_owned(),
        (_, Some(attempt)) => format!("a:{attempt}:{}", entry.status),
        _ => {
            let mut hash = Sha256::new();
            for part in [
                entry.status.as_str(),
                &entry.at_ms.to_string(),
                entry.reason.as_ref().map_or("", |r| r.code.as_str()),
                entry.channel.as_deref().unwrap_or(""),
            ] {
                hash.update(part.as_bytes());
                hash.update([0]);
            }
            let digest = hash.finalize();
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("r:{hex}")
        }
    }
}

/// Longest history kept per message: the first reports are kept, later ones beyond it only
/// move the status. (A message sees a handful of reports; the cap bounds a pathological one.)
pub const HISTORY_LIMIT: usize = 32;

/// The state table's name (required in Lambda: the template's table).
pub const TABLE_NAME: &str = "TABLE_NAME";

/// A message's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    /// Which message.
    pub key: MessageKey,
    /// Where it is, on the scale of [`Status::progress`].
    pub status: Status,
    /// The channel of the latest report.
    pub channel: Option<String>,
    /// Every status it reported, oldest first (at most [`HISTORY_LIMIT`]).
    pub history: Vec<HistoryEntry>,
    /// Set when this is a reply we sent: the inbound message it answered.
    pub in_reply_to: Option<String>,
    /// For our own sends: Sinch's id, once Sinch answered or a report named it.
    pub sinch_id: Option<SinchId>,
    /// For our own sends: where the send stands.
    pub send: Option<SendState>,
    /// For our own sends: who it goes to (the channel identity).
    pub to: Option<String>,
    /// The caller's metadata (JSON text), for sends of the messages API.
    pub metadata: Option<String>,
    /// For sends of the messages API: who asked (only they may read it back).
    pub caller: Option<String>,
    /// For our replies: the text sent.
    pub text: Option<String>,
    /// When it is due to leave, while it waits (`SCHEDULED`).
    pub scheduled_at_ms: Option<u64>,
    /// The batch it is one recipient of.
    pub batch: Option<BatchRef>,
}

/// One recipient of a batch: the batch, and the recipient's place in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchRef {
    /// The batch's id.
    pub id: String,
    /// The recipient's place in it (from 0).
    pub index: u32,
}

/// A batch of the messages API, as stored (its recipients in chunks beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// `bat_<ULID>`.
    pub id: String,
    /// Who asked (only they may read or cancel it).
    pub caller: String,
    /// The channel asked for.
    pub channel: String,
    /// Messages accepted (the recipients that passed every rule).
    pub total: u32,
    /// Recipients refused at the door.
    pub refused: u32,
    /// How many chunks hold its recipients.
    pub chunks: u32,
    /// When it was accepted, Unix ms.
    pub created_at_ms: u64,
    /// When its messages are due to leave (absent: at once).
    pub send_at_ms: Option<u64>,
    /// Canceled: what has not left never will.
    pub canceled: bool,
    /// How many of its messages have a final status.
    pub finals: u32,
    /// When its last message reached a final status.
    pub completed_at_ms: Option<u64>,
}

/// What [`CounterStore::take_slot`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// This slot is the caller's (Unix µs).
    Taken(u64),
    /// The next free slot is beyond the horizon: this one (Unix µs).
    Busy {
        /// The next free slot, Unix µs.
        next_us: u64,
    },
}

/// What canceling a batch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchCancel {
    /// Canceled now (or before: canceling twice is canceling).
    Canceled,
    /// Every message of it had already ended.
    Completed,
    /// No such batch.
    Missing,
}

impl MessageState {
    /// How far along its status is.
    pub fn progress(&self) -> Progress {
        self.status.progress()
    }

    /// The channel the message is on now: the one its current status was reported from, else
    /// the one asked for.
    pub fn channel_used(&self) -> Option<&str> {
        self.history
            .iter()
            .rev()
            .find(|entry| entry.status == self.status && entry.channel.is_some())
            .and_then(|entry| entry.channel.as_deref())
            .or(self.channel.as_deref())
    }

    /// Whether it has ended for its channel ([`Status::settles_on`]): what `final` says.
    pub fn settled(&self) -> bool {
        self.status.settles_on(self.channel_used())
    }

    /// Why the message is where it is: the reason of the history entry that set the current
    /// status (a FAILED or SWITCHING_CHANNEL report, a refused send).
    pub fn reason(&self) -> Option<&Reason> {
        self.history
            .iter()
            .find(|entry| entry.status == self.status && entry.reason.is_some())
            .and_then(|entry| entry.reason.as_ref())
    }
}

/// Where one of our sends stands in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendState {
    /// An attempt began; its outcome is not recorded (yet).
    Sending,
    /// Sinch accepted it.
    Sent,
    /// Sinch refused it for good.
    Failed,
}

impl SendState {
    /// The name the table stores.
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Sending => "SENDING",
            SendState::Sent => "SENT",
            SendState::Failed => "FAILED",
        }
    }

    /// The state named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "SENDING" => Some(SendState::Sending),
            "SENT" => Some(SendState::Sent),
            "FAILED" => Some(SendState::Failed),
            _ => None,
        }
    }
}

/// What a status update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// First report for this message.
    Created {
        /// The status it starts at.
        status: Status,
    },
    /// Moved forward.
    Advanced {
        /// Where it was.
        from: Status,
        /// Where it is now.
        to: Status,
    },
    /// Recorded in the history; the status stayed (a late or final-state report).
    Kept {
        /// The status it keeps.
        status: Status,
    },
}

/// Who a contact is, for opt-outs: a channel and the identity on it. SMS API and Conversation
/// SMS share the `SMS` channel, so a STOP on either counts for both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContactKey {
    /// The channel (SMS API and Conversation SMS are both `SMS`).
    pub channel: Channel,
    /// The identity on it; for phone channels the number without `+`.
    pub identity: String,
}

impl ContactKey {
    /// Phone numbers arrive with and without `+`; the key never has it.
    pub fn new(channel: impl AsRef<str>, identity: &str) -> Self {
        Self {
            channel: Channel::from(channel.as_ref()),
            identity: identity.trim().trim_start_matches('+').to_owned(),
        }
    }
}

/// The messages API's name for the SMS API (a channel of its own in requests; its contacts are
/// `SMS`'s).
pub const SMS_API: &str = "SMS_API";

/// The contact a send names: its channel as the contact's (the SMS API's recipients are `SMS`
/// contacts, as Conversation SMS's), and its recipient.
pub fn person(channel: &str, to: &str) -> ContactKey {
    ContactKey::new(if channel == SMS_API { "SMS" } else { channel }, to)
}

impl std::fmt::Display for ContactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.channel, self.identity)
    }
}

/// An inbound message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRecord {
    /// Sinch's message id.
    pub id: String,
    /// Who sent it.
    pub from: ContactKey,
    /// Who received it: our SMS number, or the Conversation app id.
    pub to: String,
    /// e.g. `text_message`, `media_message`, `mo_text`.
    pub kind: String,
    /// The text, for text messages; `None` in `Redact` mode (see [`TextDigest`]).
    pub text: Option<String>,
    /// In `Redact` mode, what is kept of the text instead of the text.
    #[serde(default)]
    pub text_digest: Option<TextDigest>,
    /// The URLs of its media (an image, a document, an MMS's parts), in order.
    #[serde(default)]
    pub media: Vec<String>,
    /// The Conversation contact, if any.
    pub contact_id: Option<String>,
    /// The Conversation conversation, if any.
    pub conversation_id: Option<String>,
    /// When it arrived, Unix ms.
    pub received_at_ms: u64,
}

/// What `Redact` mode keeps of a text: its length and a hash, so that a consumer can tell two
/// texts apart, or check one it holds, without the store holding any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextDigest {
    /// Characters (Unicode scalar values).
    pub length: usize,
    /// SHA-256 of the UTF-8 text, hex.
    pub sha256: String,
}

impl TextDigest {
    /// The digest of `text`.
    pub fn of(text: &str) -> Self {
        use sha2::{Digest, Sha256};
        let hash = Sha256::digest(text.as_bytes());
        Self {
            length: text.chars().count(),
            sha256: hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// What a send is, recorded with its first attempt (a reply; the messages API records more
/// when it accepts a send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendIntent {
    /// Who it goes to; the channel is the one asked for.
    pub to: ContactKey,
    /// The inbound message it answers, for a reply.
    pub in_reply_to: Option<String>,
    /// The text, when it is one.
    pub text: Option<String>,
}

/// A request to start an attempt at one of our sends (see [`crate::ledger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendAttempt<'a> {
    /// Our message id.
    pub id: &'a str,
    /// A fresh token naming this attempt.
    pub attempt: &'a str,
    /// Now, Unix ms.
    pub now_ms: u64,
    /// An earlier attempt that began at or before this time, and that no answer or report
    /// settled since, is taken as lost: a new attempt may go.
    pub settle_before_ms: u64,
    /// An earlier attempt this process knows never reached Sinch: it may be replaced at once.
    pub takeover: Option<&'a str>,
    /// What is being sent.
    pub intent: &'a SendIntent,
}

/// How an attempt started: the answer to a [`SendAttempt`] (not a pacing [`Slot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendStart {
    /// The attempt is recorded: send now.
    Go,
    /// Sinch accepted it before: its answer was recorded (`recorded`), or a delivery report
    /// named it (its answer still to be recorded as `SENT`, ending `attempt`, the attempt on
    /// record; `None` when none began).
    Accepted {
        /// Sinch's id, when known.
        sinch_id: Option<SinchId>,
        /// Whether its answer is recorded already.
        recorded: bool,
        /// The attempt on record, if one began.
        attempt: Option<String>,
    },
    /// Sinch refused it for good before.
    Refused {
        /// Sinch's reason.
        reason: Reason,
    },
    /// Another attempt began at `attempt_at_ms` and its outcome is not known yet.
    Unsettled {
        /// The attempt on record.
        attempt: String,
        /// When it began, Unix ms.
        attempt_at_ms: u64,
    },
}

/// How an attempt ended, when Sinch answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Sinch took it (`sinch_id` is `None` when its answer could not be read).
    Accepted {
        /// Sinch's id, if its answer could be read.
        sinch_id: Option<SinchId>,
    },
    /// Sinch refused it for good, or a rule forbade it before it left: the message is FAILED
    /// with this reason.
    Refused {
        /// Why.
        reason: Reason,
    },
    /// It never left and never will, ending at `status` ([`Status::Canceled`],
    /// [`Status::Expired`]) with this reason.
    Ended {
        /// The final status.
        status: Status,
        /// Why.
        reason: Reason,
    },
}

/// The end of one of our sends, as [`MessageStore::finish_send`] records it: fenced on the attempt it
/// belongs to, so that only that attempt's outcome is ever recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFinish<'a> {
    /// Our message id.
    pub id: &'a str,
    /// The attempt it ends (the ledger must still be `SENDING` under it). `None` ends a send
    /// before any attempt began (the messages API's `ENQUEUE_FAILED`): only a message with no
    /// attempt on record, which then can never be sent.
    pub attempt: Option<&'a str>,
    /// How it ended.
    pub result: &'a SendResult,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// What [`MessageStore::finish_send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The outcome is recorded (now, or by an earlier try of this very write).
    Recorded,
    /// The ledger had moved on (another attempt holds it, or it has ended): nothing written.
    Superseded,
}

/// What [`MessageStore::accept_message`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// The message is stored, `ACCEPTED`.
    New,
    /// This very message was stored before (a retry of the request that reserved its id): its
    /// state now.
    Existing(Box<MessageState>),
}

/// The store could not be read or written; the work can be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store unavailable during {operation}: {detail}")]
pub struct StoreError {
    /// What was being done, e.g. `claim`.
    pub operation: &'static str,
    /// What went wrong (the SDK's words; never sent to callers).
    pub detail: String,
}

/// A request to claim an idempotency key before running a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    /// The key, e.g. a callback's or a request's idempotency key.
    pub key: &'a str,
    /// SHA-256 of the payload, hex: a different payload under the same key is reported.
    pub payload_hash: &'a str,
    /// Until when (Unix ms) the claim holds if the claimer never completes nor releases it: the
    /// end of the invocation that claimed it.
    pub lease_until_ms: u64,
    /// Now, Unix ms.
    pub now_ms: u64,
    /// A value the claim holds from its start (the messages API: the id of the message it
    /// reserves), so that whoever takes over a claim whose lease ran out finds the same one.
    pub value: Option<&'a str>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: run the handler, then complete or release. `value` is what the claim holds: the
    /// request's own, or, when it took over a claim whose lease ran out, the value that one
    /// held (for the same payload only: see [`Claim::Reused`]).
    Claimed {
        /// What the claim holds.
        value: Option<String>,
    },
    /// A claim whose lease ran out holds a value for another payload: it is not taken over
    /// (the key was used with another body).
    Reused,
    /// Already done: acknowledge without effects. `response` is what completing it stored (the
    /// messages API replays it).
    Completed {
        /// Whether it was done for the same payload.
        same_payload: bool,
        /// What completing it stored.
        response: Option<String>,
    },
    /// Someone else holds a live lease: try again later.
    InProgress {
        /// Until when the other lease holds, Unix ms.
        lease_until_ms: u64,
    },
}

sinch::open_enum! {
    /// Where a change to a contact's opt-out came from (the `by` of its event).
    pub enum OptSource {
        /// An inbound message matched an opt-out or opt-in keyword rule.
        Keyword = "keyword",
        /// `PUT` or `DELETE /optouts/{channel}/{identity}`.
        Api = "api",
        /// Sinch's `opt_out_notification` / `opt_in_notification` callbacks.
        Sinch = "sinch",
        /// `sinch-hooks optouts import` (the API, marked as an import).
        Import = "import",
    }
}

/// What is known of a contact (a channel identity): the sending rules are decided from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactState {
    /// What opted the contact out, if they are opted out: the inbound message (a keyword), or
    /// the change's own reference (`api_<ULID>`, `import_<ULID>`, `sinch_<request id>`).
    pub opted_out_by: Option<String>,
    /// When they opted out (Unix ms), if they are opted out.
    pub opted_out_at_ms: Option<u64>,
    /// Where the last change to their opt-out came from.
    pub opt_source: Option<OptSource>,
    /// When their last inbound message arrived (Unix ms): WhatsApp's 24-hour window opens then.
    pub last_inbound_at_ms: Option<u64>,
    /// When they last opted back in (Unix ms, the person's time): an opt-out made before it is
    /// late and does not apply.
    pub opted_in_at_ms: Option<u64>,
    /// When they were last erased (Unix ms): a send accepted before then does not leave
    /// (kept under a keyed hash for [`ERASURE_REACH`]).
    pub erased_at_ms: Option<u64>,
}

/// Reason code of a message stopped because its recipient was erased after it was accepted; it
/// ends `CANCELED` (a rule at the moment of leaving, and the erasure itself).
pub const RECIPIENT_ERASED: &str = "recipient_erased";

/// The reason of a message an erasure stopped.
fn erased_reason() -> Reason {
    Reason::new(
        RECIPIENT_ERASED,
        Some("the recipient's data was erased before it left".into()),
    )
}

/// How long an erasure stops sends accepted before it: the longest such a send may still wait
/// (35 days scheduled ahead, 14 in a lane's queue, a campaign's fan-out), with margin.
pub const ERASURE_REACH: std::time::Duration = std::time::Duration::from_secs(60 * 86_400);

impl ContactState {
    /// Whether an opt-out (`opted_out`) or opt-in made at `at_ms` (when the person, or the
    /// system, made it) is newer than the consent that stands, and so applies: consent takes
    /// effect in the person's order, not in the order the changes arrive (SQS reorders, Sinch
    /// retries, an import carries old changes). An opt-out applies unless an opt-in is later;
    /// an opt-in unless an opt-out is later. At the same millisecond the change that arrives
    /// last applies (an API call's time is when it arrives, so two calls apply in their order).
    pub fn applies(&self, opted_out: bool, at_ms: u64) -> bool {
        if opted_out {
            self.opted_in_at_ms.is_none_or(|opted_in| opted_in <= at_ms)
        } else {
            self.opted_out_at_ms
                .is_none_or(|opted_out| opted_out <= at_ms)
        }
    }
}

/// A send the messages API accepted: stored as `ACCEPTED` under our id before it is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedMessage {
    /// Our message id (`msg_<ULID>`).
    pub id: String,
    /// The channel asked for (`WHATSAPP`, `SMS_API`, ...).
    pub channel: String,
    /// The recipient as asked.
    pub to: String,
    /// The caller's metadata, JSON text, echoed back in the status.
    pub metadata: Option<String>,
    /// Who asked (the caller's identity).
    pub caller: String,
    /// When it was accepted, Unix ms.
    pub at_ms: u64,
    /// `ACCEPTED`, or `SCHEDULED` with the time it is due.
    pub status: Status,
    /// When it is due, for a `SCHEDULED` one (Unix ms).
    pub scheduled_at_ms: Option<u64>,
    /// The batch it is one recipient of.
    pub batch: Option<BatchRef>,
    /// The recipient on each channel it may fall back to (after `channel`): an erasure of
    /// them on any of these reaches it too.
    pub fallback: Vec<ContactKey>,
}

/// A change to a contact's opt-out, stored together with the inbound message that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptChange {
    /// The contact opts out.
    OptOut {
        /// Who.
        contact: ContactKey,
        /// The inbound message that said so.
        by: String,
    },
    /// The contact opts in again.
    OptIn {
        /// Who.
        contact: ContactKey,
    },
}

/// A change to a contact's opt-out made without an inbound message: the API, an import, or
/// Sinch's opt-out and opt-in callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptWrite<'a> {
    /// Who.
    pub contact: &'a ContactKey,
    /// `true` opts them out, `false` back in.
    pub opted_out: bool,
    /// Where the change came from.
    pub source: &'a OptSource,
    /// Names the change, unique per change (its event's id derives from it).
    pub reference: &'a str,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// One page of the opted-out contacts, in the order of `<channel>/<identity>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutPage {
    /// The contacts and their opt-outs.
    pub items: Vec<(ContactKey, ContactState)>,
    /// Where the next page starts, when there may be one.
    pub next: Option<ContactKey>,
}

/// What [`ContactStore::erase_contact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Inbound messages removed.
    pub inbound: u32,
    /// Message states stripped of the recipient, the text and the caller's metadata.
    pub messages: u32,
    /// Our messages to them that had not left, now `CANCELED` (`recipient_erased`): their
    /// schedules are the caller's to remove. Not part of the event (ids only, but not counts).
    pub canceled: Vec<String>,
    /// Whether the contact's opt-out was kept, as a keyed hash.
    pub opt_out_kept: bool,
    /// Whether nothing is left: the contact itself is gone and the `Contact Erased` record
    /// written. `false`: call again (more than `max_items` items named them).
    pub complete: bool,
}

/// An erasure, as its event tells it: no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    /// The erasure's own id (`era_<ULID>`).
    pub reference: String,
    /// The channel the contact was on.
    pub channel: Channel,
    /// What was removed or stripped.
    pub erased: Erased,
    /// When, Unix ms.
    pub at_ms: u64,
}
