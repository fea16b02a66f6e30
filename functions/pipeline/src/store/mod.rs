//! What the worker remembers: message status with history, inbound messages, opt-outs, and the
//! replies it sent.
//!
//! Behind a trait so the handlers do not care where state lives: an in-memory store for the
//! local stack and tests, DynamoDB in AWS.

mod dynamodb;
mod memory;

pub use dynamodb::{DynamoStore, dynamodb_client};
pub use memory::MemoryStore;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::status::Progress;

/// Which message a delivery status belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MessageKey {
    /// A Conversation API message, by its message id.
    Conversation(String),
    /// One recipient of an SMS batch.
    Sms { batch_id: String, recipient: String },
}

impl std::fmt::Display for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageKey::Conversation(id) => write!(f, "conversation/{id}"),
            MessageKey::Sms {
                batch_id,
                recipient,
            } => write!(f, "sms/{batch_id}/{recipient}"),
        }
    }
}

/// One delivery report, as the store needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub key: MessageKey,
    pub status: String,
    pub progress: Progress,
    /// When Sinch says it happened (or when we received it), Unix milliseconds.
    pub at_ms: u64,
    /// Failure or switch reason, e.g. `OUTSIDE_ALLOWED_SENDING_WINDOW`, or an SMS code.
    pub reason: Option<String>,
    pub channel: Option<String>,
}

/// One entry of a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub status: String,
    pub at_ms: u64,
    pub reason: Option<String>,
}

/// Longest history kept per message: the first reports are kept, later ones beyond it only
/// move the status. (A message sees a handful of reports; the cap bounds a pathological one.)
pub const HISTORY_LIMIT: usize = 32;

/// A message's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    pub key: MessageKey,
    pub status: String,
    pub progress: Progress,
    pub channel: Option<String>,
    pub history: Vec<HistoryEntry>,
    /// Set when this is a reply we sent: the inbound message it answered.
    pub in_reply_to: Option<String>,
}

/// What a status update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// First report for this message.
    Created { status: String },
    /// Moved forward.
    Advanced { from: String, to: String },
    /// Recorded in the history; the status stayed (a late or final-state report).
    Kept { status: String },
}

/// Who a contact is, for opt-outs: a channel and the identity on it. SMS API and Conversation
/// SMS share the `SMS` channel, so a STOP on either counts for both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContactKey {
    pub channel: String,
    pub identity: String,
}

impl ContactKey {
    /// Phone numbers arrive with and without `+`; the key never has it.
    pub fn new(channel: &str, identity: &str) -> Self {
        Self {
            channel: channel.to_owned(),
            identity: identity.trim().trim_start_matches('+').to_owned(),
        }
    }
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
    pub from: ContactKey,
    /// Who received it: our SMS number, or the Conversation app id.
    pub to: String,
    /// e.g. `text_message`, `media_message`, `mo_text`.
    pub kind: String,
    pub text: Option<String>,
    pub contact_id: Option<String>,
    pub conversation_id: Option<String>,
    pub received_at_ms: u64,
}

/// A reply we sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRecord {
    /// What its delivery reports will be keyed by: our Conversation message id, or our SMS
    /// batch id and the recipient.
    pub key: MessageKey,
    /// The inbound message it answers.
    pub in_reply_to: String,
    pub to: ContactKey,
    pub text: String,
    pub sent_at_ms: u64,
}

/// The store could not be read or written; the work can be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store unavailable during {operation}: {detail}")]
pub struct StoreError {
    pub operation: &'static str,
    pub detail: String,
}

/// A request to claim an idempotency key before running a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    pub key: &'a str,
    /// SHA-256 of the payload, hex: a different payload under the same key is reported.
    pub payload_hash: &'a str,
    /// Until when (Unix ms) the claim holds if the claimer never completes nor releases it: the
    /// end of the invocation that claimed it.
    pub lease_until_ms: u64,
    pub now_ms: u64,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: run the handler, then complete or release.
    Claimed,
    /// Already done: acknowledge without effects.
    Completed { same_payload: bool },
    /// Someone else holds a live lease: try again later.
    InProgress { lease_until_ms: u64 },
}

/// A change to a contact's opt-out, stored together with the inbound message that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptChange {
    OptOut { contact: ContactKey, by: String },
    OptIn { contact: ContactKey },
}

/// Where the worker keeps state. Every method is one atomic step; implementations must give the
/// same answers for the same calls (`tests/store_contract.rs` runs one suite against each).
pub trait Store: Send + Sync {
    /// Claims an idempotency key (a conditional write): see [`Claim`]. A key whose lease ran
    /// out, or whose completed record expired, can be claimed again.
    fn claim(
        &self,
        request: &ClaimRequest<'_>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks a claimed key done; it is remembered until `expires_at_s` (Unix seconds).
    fn complete(
        &self,
        key: &str,
        expires_at_s: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a claimed key up (the handler failed), so a retry can run.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies a delivery report: the status moves only forward (see [`crate::status`]); the
    /// report is appended to the history either way.
    fn record_status(
        &self,
        update: &StatusUpdate,
    ) -> impl Future<Output = Result<StatusChange, StoreError>> + Send;

    /// A message's state, if any report or reply is known for it.
    fn message_state(
        &self,
        key: &MessageKey,
    ) -> impl Future<Output = Result<Option<MessageState>, StoreError>> + Send;

    /// Stores an inbound message (again is harmless), and the opt-out change it causes, at once.
    fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The inbound message that opted the contact out, if they are opted out. Knowing which
    /// message did it lets a retried STOP still send its confirmation.
    fn opted_out_by(
        &self,
        contact: &ContactKey,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Remembers a reply, so its later delivery reports attach to the message it answered.
    fn record_reply(
        &self,
        reply: &ReplyRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
