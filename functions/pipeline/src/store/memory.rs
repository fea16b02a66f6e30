//! The in-memory store: the local stack, tests and benchmarks.
//!
//! With a change feed ([`MemoryStore::with_change_feed`]) it also says what each write changed,
//! item by item and in commit order, as the DynamoDB table's stream does in AWS: events are
//! derived from that ([`crate::events`]). Without one, nothing is copied for it.

mod batches;
mod contacts;
mod counters;
mod dead_letters;
mod idempotency;
mod messages;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::{
    Acceptance, AcceptedMessage, BatchCancel, BatchRecord, BatchRef, BatchStore, Change, Claim,
    ClaimRequest, ContactHasher, ContactKey, ContactState, ContactStore, Counted, CounterStore,
    DeadLetter, DeadLetterStore, Erased, ErasureRecord, Finished, HISTORY_LIMIT, HistoryEntry,
    IdempotencyStore, InboundRecord, MessageKey, MessageState, MessageStore, OptChange, OptOutPage,
    OptSource, OptWrite, Reason, SendAttempt, SendFinish, SendIntent, SendResult, SendStart,
    SendState, Slot, Snapshot, StatusChange, StatusUpdate, StoreError, WindowState, entry_id,
};
use crate::clock::unix_millis;
use crate::status::Status;
use sinch::Channel;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Idempotency {
    InProgress {
        lease_until_ms: u64,
        payload_hash: String,
        value: Option<String>,
    },
    Completed {
        expires_at_s: u64,
        payload_hash: String,
        response: Option<String>,
    },
}

/// The send ledger of one of our messages: its attempt on record (its state is the message's
/// `send`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ledger {
    attempt: String,
    attempt_at_ms: u64,
    attempts: u32,
    intent: SendIntent,
}

/// A message item, as DynamoDB's holds it: the state, which history entries it has, the ledger.
#[derive(Debug, Clone)]
struct Item {
    state: MessageState,
    history_ids: BTreeSet<String>,
    ledger: Option<Ledger>,
    /// Stripped by an erasure (DynamoDB's `erased_at_ms`): no attempt begins.
    erased: bool,
    /// The recipient on the channels it may fall back to (DynamoDB's `alias#` items).
    fallback: Vec<ContactKey>,
}

/// A batch, with which of its messages have a final status.
#[derive(Debug, Clone)]
struct Batch {
    record: BatchRecord,
    finals: BTreeSet<u32>,
    chunks: Vec<String>,
    answer: String,
}

#[derive(Debug, Default)]
struct State {
    idempotency: BTreeMap<String, Idempotency>,
    messages: BTreeMap<MessageKey, Item>,
    inbound: BTreeMap<String, InboundRecord>,
    contacts: BTreeMap<ContactKey, ContactState>,
    dead_letters: BTreeMap<String, DeadLetter>,
    batches: BTreeMap<String, Batch>,
    /// Per pacing timeline, the next free slot (Unix µs).
    timelines: BTreeMap<String, u64>,
    /// The guards' sliding windows, by key.
    windows: BTreeMap<String, WindowState>,
    /// The guards' capped counts, by key.
    counts: BTreeMap<String, u32>,
    /// Erased contacts' opt-outs, by keyed hash.
    hashed_opt_outs: BTreeMap<String, ContactState>,
    /// When contacts were erased, by keyed hash.
    erasures: BTreeMap<String, u64>,
}

impl State {
    fn message_snapshot(&self, key: &MessageKey) -> Option<Snapshot> {
        self.messages
            .get(key)
            .map(|item| Snapshot::Message(item.state.clone()))
    }

    fn contact_snapshot(&self, key: &ContactKey) -> Option<Snapshot> {
        self.contacts
            .get(key)
            .cloned()
            .map(|state| Snapshot::Contact {
                key: key.clone(),
                state,
            })
    }

    /// What the rules see of a contact: their item, or an erased contact's opt-out.
    fn contact_view(&self, key: &ContactKey) -> ContactState {
        let mut state = self.contacts.get(key).cloned().unwrap_or_default();
        state.erased_at_ms = self
            .erasures
            .get(&ContactHasher::default().of(key))
            .copied();
        if state.opted_out_by.is_none()
            && let Some(hashed) = self.hashed_opt_outs.get(&ContactHasher::default().of(key))
        {
            state.opted_out_by.clone_from(&hashed.opted_out_by);
            state.opted_out_at_ms = hashed.opted_out_at_ms;
            state.opt_source.clone_from(&hashed.opt_source);
        }
        state
    }

    /// The message item, created empty (no status yet) when missing.
    fn message(&mut self, key: &MessageKey) -> &mut Item {
        self.messages.entry(key.clone()).or_insert_with(|| Item {
            state: MessageState {
                key: key.clone(),
                status: unset(),
                channel: None,
                history: Vec::new(),
                in_reply_to: None,
                sinch_id: None,
                send: None,
                to: None,
                metadata: None,
                caller: None,
                text: None,
                scheduled_at_ms: None,
                batch: None,
            },
            history_ids: BTreeSet::new(),
            ledger: None,
            erased: false,
            fallback: Vec::new(),
        })
    }
}

/// The status of a message item that has none yet.
fn unset() -> Status {
    Status::Other(String::new())
}

fn is_unset(status: &Status) -> bool {
    *status == unset()
}

/// Applies a status to a message: forward only, history kept (once per entry id, up to the
/// limit).
fn apply(item: &mut Item, status: &Status, entry: HistoryEntry, entry_id: String) -> StatusChange {
    let message = &mut item.state;
    let first = is_unset(&message.status);
    let progress = status.progress();
    if item.history_ids.len() < HISTORY_LIMIT && item.history_ids.insert(entry_id) {
        message.history.push(entry);
    }
    if first {
        message.status = status.clone();
        return StatusChange::Created {
            status: status.clone(),
        };
    }
    // Ranks are first-come: a status of the same rank never replaces the one there.
    if message.progress().advances_to(progress) {
        let from = std::mem::replace(&mut message.status, status.clone());
        StatusChange::Advanced {
            from,
            to: status.clone(),
        }
    } else {
        StatusChange::Kept {
            status: message.status.clone(),
        }
    }
}

/// State in this process. Clones share it (and its change feed).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    feed: Option<mpsc::UnboundedSender<Change>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that reports every change it commits, in order, on the receiver.
    pub fn with_change_feed() -> (Self, mpsc::UnboundedReceiver<Change>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let store = Self {
            state: Arc::default(),
            feed: Some(sender),
        };
        (store, receiver)
    }

    /// Whether changes are reported (only then are items copied for it).
    fn watched(&self) -> bool {
        self.feed.is_some()
    }

    /// Reports one item's change, if it changed. Called with the state locked, so changes are
    /// reported in commit order.
    fn emit(&self, old: Option<Snapshot>, new: Option<Snapshot>) {
        if let Some(feed) = &self.feed
            && old != new
        {
            // A closed feed (nobody listening any more) only means nobody wants them.
            let _ = feed.send(Change {
                old,
                new,
                at_ms: unix_millis(SystemTime::now()),
            });
        }
    }

    /// Runs `write` on one message item and reports its change; a message of a batch that is
    /// final now counts as such in its batch.
    fn write_message<T>(&self, key: &MessageKey, write: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.lock();
        let before = self.watched().then(|| state.message_snapshot(key));
        let result = write(&mut state);
        if let Some(before) = before {
            self.emit(before, state.message_snapshot(key));
        }
        let ended = state
            .messages
            .get(key)
            .filter(|item| item.state.settled())
            .and_then(|item| item.state.batch.clone());
        if let Some(batch) = ended {
            self.batch_final(&mut state, &batch);
        }
        result
    }

    /// A message stripped of who it went to and what it said (an erasure's part), marked so
    /// that no attempt on it begins again; nothing when it does not exist.
    fn strip(&self, state: &mut State, key: &MessageKey) {
        if !state.messages.contains_key(key) {
            return;
        }
        let before = state.message_snapshot(key);
        let item = state.message(key);
        item.erased = true;
        item.state.to = None;
        item.state.text = None;
        item.state.metadata = None;
        item.fallback.clear();
        if let Some(ledger) = &mut item.ledger {
            ledger.intent.text = None;
            ledger.intent.to.identity = String::new();
        }
        let after = state.message_snapshot(key);
        self.emit(before, after);
    }

    /// Counts a batch's message as final; the batch is complete when all are.
    fn batch_final(&self, state: &mut State, message: &BatchRef) {
        let Some(batch) = state.batches.get_mut(&message.id) else {
            return;
        };
        if !batch.finals.insert(message.index) {
            return;
        }
        let before = batch.record.clone();
        batch.record.finals = u32::try_from(batch.finals.len()).unwrap_or(u32::MAX);
        if batch.record.finals >= batch.record.total && batch.record.completed_at_ms.is_none() {
            batch.record.completed_at_ms = Some(unix_millis(SystemTime::now()));
        }
        let after = batch.record.clone();
        self.emit(Some(Snapshot::Batch(before)), Some(Snapshot::Batch(after)));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below completes before the guard drops, so a poisoned lock still
        // holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every message state, for status pages and tests.
    pub fn messages(&self) -> Vec<MessageState> {
        self.lock()
            .messages
            .values()
            .filter(|item| !is_unset(&item.state.status))
            .map(|item| item.state.clone())
            .collect()
    }

    /// Every stored inbound message.
    pub fn inbound(&self) -> Vec<InboundRecord> {
        self.lock().inbound.values().cloned().collect()
    }

    /// Every message of ours that was sent, or is being sent, with its intent.
    pub fn sends(&self) -> Vec<(String, SendState, SendIntent)> {
        self.lock()
            .messages
            .iter()
            .filter_map(|(key, item)| match (key, item.state.send, &item.ledger) {
                (MessageKey::Ours(id), Some(state), Some(ledger)) => {
                    Some((id.clone(), state, ledger.intent.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Everything it holds, as text: for audits and tests (an erasure's proof searches it all).
    pub fn dump(&self) -> String {
        format!("{:?}", *self.lock())
    }

    /// Every opted-out contact.
    pub fn opted_out(&self) -> Vec<ContactKey> {
        self.lock()
            .contacts
            .iter()
            .filter(|(_, state)| state.opted_out_by.is_some())
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// Whether a message item names `contact`: its recipient (a send of ours, a reply), or the
/// recipient in its key (an SMS report).
fn names(key: &MessageKey, item: &Item, contact: &ContactKey) -> bool {
    match key {
        MessageKey::Sms { recipient, .. } => {
            contact.channel == Channel::Sms && ContactKey::new("SMS", recipient) == *contact
        }
        _ => {
            let by_state = match (&item.state.channel, &item.state.to) {
                (Some(channel), Some(to)) => super::person(channel, to) == *contact,
                _ => false,
            };
            by_state
                || item.fallback.contains(contact)
                || item
                    .ledger
                    .as_ref()
                    .is_some_and(|l| l.intent.to == *contact)
        }
    }
}

/// The reason a failed message has, as DynamoDB's reads it back.
fn failure_reason(item: &Item) -> Reason {
    item.state
        .reason()
        .cloned()
        .unwrap_or_else(|| Reason::new("UNKNOWN", None))
}
