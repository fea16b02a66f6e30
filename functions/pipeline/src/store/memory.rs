//! The in-memory store: the local stack, tests and benchmarks.
//!
//! With a change feed ([`MemoryStore::with_change_feed`]) it also says what each write changed,
//! item by item and in commit order, as the DynamoDB table's stream does in AWS: events are
//! derived from that ([`crate::events`]). Without one, nothing is copied for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::mpsc;

use super::{
    Acceptance, AcceptedMessage, BatchCancel, BatchRecord, BatchRef, Change, Claim, ClaimRequest,
    ContactHasher, ContactKey, ContactState, Counted, DeadLetter, Erased, ErasureRecord, Finished,
    HISTORY_LIMIT, HistoryEntry, InboundRecord, MessageKey, MessageState, OptChange, OptOutPage,
    OptSource, OptWrite, Reason, SendAttempt, SendFinish, SendIntent, SendResult, SendSlot,
    SendState, Slot, Snapshot, StatusChange, StatusUpdate, Store, StoreError, WindowState,
    entry_id,
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

impl Store for MemoryStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        let mut value = request.value.map(str::to_owned);
        match state.idempotency.get(request.key) {
            Some(Idempotency::Completed {
                expires_at_s,
                payload_hash,
                response,
            }) if expires_at_s.saturating_mul(1000) > request.now_ms => {
                return Ok(Claim::Completed {
                    same_payload: payload_hash == request.payload_hash,
                    response: response.clone(),
                });
            }
            Some(Idempotency::InProgress { lease_until_ms, .. })
                if *lease_until_ms > request.now_ms =>
            {
                return Ok(Claim::InProgress {
                    lease_until_ms: *lease_until_ms,
                });
            }
            // A lease that ran out: its value stays with its payload.
            Some(Idempotency::InProgress {
                payload_hash,
                value: Some(held),
                ..
            }) if request.value.is_some() => {
                if payload_hash != request.payload_hash {
                    return Ok(Claim::Reused);
                }
                value = Some(held.clone());
            }
            _ => {}
        }
        state.idempotency.insert(
            request.key.to_owned(),
            Idempotency::InProgress {
                lease_until_ms: request.lease_until_ms,
                payload_hash: request.payload_hash.to_owned(),
                value: value.clone(),
            },
        );
        Ok(Claim::Claimed { value })
    }

    async fn complete(
        &self,
        key: &str,
        expires_at_s: u64,
        response: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let payload_hash = match state.idempotency.get(key) {
            Some(Idempotency::InProgress { payload_hash, .. })
            | Some(Idempotency::Completed { payload_hash, .. }) => payload_hash.clone(),
            None => String::new(),
        };
        state.idempotency.insert(
            key.to_owned(),
            Idempotency::Completed {
                expires_at_s,
                payload_hash,
                response: response.map(str::to_owned),
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.lock().idempotency.remove(key);
        Ok(())
    }

    async fn record_status(&self, update: &StatusUpdate) -> Result<StatusChange, StoreError> {
        let entry = HistoryEntry {
            status: update.status.clone(),
            at_ms: update.at_ms,
            reason: update.reason.clone(),
            channel: update.channel.clone(),
        };
        let id = entry_id(&entry, None);
        Ok(self.write_message(&update.key, |state| {
            let item = state.message(&update.key);
            if item.state.channel.is_none() {
                item.state.channel = update.channel.clone();
            }
            if item.state.sinch_id.is_none() {
                item.state.sinch_id = update.sinch_id.clone();
            }
            apply(item, &update.status, entry, id)
        }))
    }

    async fn message_state(&self, key: &MessageKey) -> Result<Option<MessageState>, StoreError> {
        Ok(self
            .lock()
            .messages
            .get(key)
            .filter(|item| !is_unset(&item.state.status))
            .map(|item| item.state.clone()))
    }

    async fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let before = self.watched().then(|| {
            (
                state
                    .inbound
                    .get(&inbound.id)
                    .cloned()
                    .map(Snapshot::Inbound),
                state.contact_snapshot(&inbound.from),
            )
        });
        // A change older than the consent that stands fails the whole write, as DynamoDB's
        // transaction does (the handler judged it on a read that a newer change overtook).
        let at = inbound.received_at_ms;
        let view = state.contact_view(&inbound.from);
        if let Some(change) = change
            && !view.applies(matches!(change, OptChange::OptOut { .. }), at)
        {
            return Err(StoreError {
                operation: "record inbound",
                detail: "a newer opt-out or opt-in stands (the transaction's condition failed)"
                    .into(),
            });
        }
        state.inbound.insert(inbound.id.clone(), inbound.clone());
        let contact = state.contacts.entry(inbound.from.clone()).or_default();
        contact.last_inbound_at_ms = Some(at);
        match change {
            Some(OptChange::OptOut { by, .. }) => {
                contact.opted_out_by = Some(by.clone());
                contact.opted_out_at_ms = Some(at);
                contact.opt_source = Some(OptSource::Keyword);
            }
            Some(OptChange::OptIn { .. }) => {
                contact.opted_out_by = None;
                contact.opted_out_at_ms = None;
                contact.opted_in_at_ms = Some(at);
                contact.opt_source = Some(OptSource::Keyword);
            }
            None => {}
        }
        if matches!(change, Some(OptChange::OptIn { .. })) {
            state
                .hashed_opt_outs
                .remove(&ContactHasher::default().of(&inbound.from));
        }
        if let Some((inbound_before, contact_before)) = before {
            self.emit(inbound_before, Some(Snapshot::Inbound(inbound.clone())));
            self.emit(contact_before, state.contact_snapshot(&inbound.from));
        }
        Ok(())
    }

    async fn set_opt_out(&self, write: &OptWrite<'_>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        // Older than the consent that stands (an erased contact's kept opt-out included):
        // nothing changes.
        if !state
            .contact_view(write.contact)
            .applies(write.opted_out, write.at_ms)
        {
            return Ok(false);
        }
        // Opting back in lifts an erased contact's opt-out too.
        let lifted = !write.opted_out
            && state
                .hashed_opt_outs
                .remove(&ContactHasher::default().of(write.contact))
                .is_some();
        let opted_out = state
            .contacts
            .get(write.contact)
            .is_some_and(|contact| contact.opted_out_by.is_some());
        if opted_out == write.opted_out {
            if !write.opted_out {
                // Not opted out: the opt-in's time is still the person's latest word.
                let contact = state.contacts.entry(write.contact.clone()).or_default();
                contact.opted_in_at_ms = Some(contact.opted_in_at_ms.unwrap_or(0).max(write.at_ms));
                contact.opt_source = Some(write.source.clone());
            }
            return Ok(lifted);
        }
        let before = self
            .watched()
            .then(|| state.contact_snapshot(write.contact));
        let contact = state.contacts.entry(write.contact.clone()).or_default();
        contact.opt_source = Some(write.source.clone());
        if write.opted_out {
            contact.opted_out_by = Some(write.reference.to_owned());
            contact.opted_out_at_ms = Some(write.at_ms);
        } else {
            contact.opted_out_by = None;
            contact.opted_out_at_ms = None;
            contact.opted_in_at_ms = Some(write.at_ms);
        }
        if let Some(before) = before {
            self.emit(before, state.contact_snapshot(write.contact));
        }
        Ok(true)
    }

    async fn opt_outs(
        &self,
        channel: Option<&Channel>,
        after: Option<&ContactKey>,
        limit: usize,
    ) -> Result<OptOutPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let order = |key: &ContactKey| format!("{}/{}", key.channel.as_str(), key.identity);
        let after = after.map(order);
        let state = self.lock();
        let mut listed: Vec<(String, &ContactKey, &ContactState)> = state
            .contacts
            .iter()
            .filter(|(key, contact)| {
                contact.opted_out_by.is_some() && channel.is_none_or(|c| &key.channel == c)
            })
            .map(|(key, contact)| (order(key), key, contact))
            .filter(|(text, ..)| after.as_ref().is_none_or(|after| text > after))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let items: Vec<(ContactKey, ContactState)> = listed
            .into_iter()
            .take(limit)
            .map(|(_, key, contact)| (key.clone(), contact.clone()))
            .collect();
        let next = (items.len() == limit)
            .then(|| items.last().map(|(key, _)| key.clone()))
            .flatten();
        Ok(OptOutPage { items, next })
    }

    async fn count_in_window(
        &self,
        key: &str,
        window_ms: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Counted, StoreError> {
        let mut state = self.lock();
        let stored = state.windows.get(key).copied();
        Ok(match super::slide(stored, now_ms, window_ms, limit) {
            Ok(next) => {
                state.windows.insert(key.to_owned(), next);
                Counted::Counted
            }
            Err(retry_after_ms) => Counted::Limited { retry_after_ms },
        })
    }

    async fn count_down(&self, key: &str, n: u32) -> Result<(), StoreError> {
        if let Some(count) = self.lock().counts.get_mut(key) {
            *count = count.saturating_sub(n);
        }
        Ok(())
    }

    async fn count_up_to(
        &self,
        key: &str,
        n: u32,
        cap: u32,
        expires_at_s: u64,
    ) -> Result<u32, StoreError> {
        // Keys name their period, so nothing here needs forgetting (DynamoDB's TTL only
        // keeps the table small).
        let _ = expires_at_s;
        let mut state = self.lock();
        let count = state.counts.entry(key.to_owned()).or_default();
        let added = n.min(cap.saturating_sub(*count));
        *count += added;
        Ok(added)
    }

    async fn contact(&self, contact: &ContactKey) -> Result<ContactState, StoreError> {
        Ok(self.lock().contact_view(contact))
    }

    async fn accept_message(&self, accepted: &AcceptedMessage) -> Result<Acceptance, StoreError> {
        let key = MessageKey::Ours(accepted.id.clone());
        self.write_message(&key, |state| {
            let item = state.message(&key);
            if !is_unset(&item.state.status) || item.state.send.is_some() {
                let message = &item.state;
                let same = message.caller.as_deref() == Some(accepted.caller.as_str())
                    && message.to.as_deref() == Some(accepted.to.as_str())
                    && message.channel.as_deref() == Some(accepted.channel.as_str());
                if same {
                    return Ok(Acceptance::Existing(Box::new(message.clone())));
                }
                return Err(StoreError {
                    operation: "accept message",
                    detail: format!("message {} exists", accepted.id),
                });
            }
            item.state.channel = Some(accepted.channel.clone());
            item.state.to = Some(accepted.to.clone());
            item.state.metadata = accepted.metadata.clone();
            item.state.caller = Some(accepted.caller.clone());
            item.state.scheduled_at_ms = accepted.scheduled_at_ms;
            item.state.batch = accepted.batch.clone();
            item.fallback = accepted.fallback.clone();
            let entry = HistoryEntry {
                status: accepted.status.clone(),
                at_ms: accepted.at_ms,
                reason: None,
                channel: None,
            };
            let id = entry_id(&entry, None);
            apply(item, &accepted.status, entry, id);
            Ok(Acceptance::New)
        })
    }

    async fn begin_send(&self, request: &SendAttempt<'_>) -> Result<SendSlot, StoreError> {
        let key = MessageKey::Ours(request.id.to_owned());
        self.write_message(&key, |state| {
            let item = state.message(&key);
            let proven = item.state.sinch_id.clone();
            let on_record = item.ledger.as_ref().map(|ledger| ledger.attempt.clone());
            // The same order of judgement as DynamoDB's (its condition, then the old item).
            match item.state.send {
                Some(SendState::Sent) => {
                    return Ok(SendSlot::Accepted {
                        sinch_id: proven,
                        recorded: true,
                        attempt: on_record,
                    });
                }
                Some(SendState::Failed) => {
                    return Ok(SendSlot::Refused {
                        reason: failure_reason(item),
                    });
                }
                _ if proven.is_some() => {
                    return Ok(SendSlot::Accepted {
                        sinch_id: proven,
                        recorded: false,
                        attempt: on_record,
                    });
                }
                _ if item.erased => {
                    return Ok(SendSlot::Refused {
                        reason: super::erased_reason(),
                    });
                }
                Some(SendState::Sending) => {
                    if let Some(ledger) = &item.ledger {
                        // This very attempt again (a write retried): it stands.
                        if ledger.attempt == request.attempt {
                            return Ok(SendSlot::Go);
                        }
                        if ledger.attempt_at_ms > request.settle_before_ms
                            && request.takeover != Some(ledger.attempt.as_str())
                        {
                            return Ok(SendSlot::Unsettled {
                                attempt: ledger.attempt.clone(),
                                attempt_at_ms: ledger.attempt_at_ms,
                            });
                        }
                    }
                }
                None => {}
            }
            let attempts = item.ledger.as_ref().map_or(0, |l| l.attempts) + 1;
            item.ledger = Some(Ledger {
                attempt: request.attempt.to_owned(),
                attempt_at_ms: request.now_ms,
                attempts,
                intent: request.intent.clone(),
            });
            let message = &mut item.state;
            message.send = Some(SendState::Sending);
            if message.channel.is_none() {
                message.channel = Some(request.intent.to.channel.to_string());
            }
            if message.in_reply_to.is_none() {
                message.in_reply_to = request.intent.in_reply_to.clone();
            }
            if message.to.is_none() {
                message.to = Some(request.intent.to.identity.clone());
            }
            if message.text.is_none() {
                message.text = request.intent.text.clone();
            }
            Ok(SendSlot::Go)
        })
    }

    async fn finish_send(&self, finish: &SendFinish<'_>) -> Result<Finished, StoreError> {
        let send_state = match finish.result {
            SendResult::Accepted { .. } => SendState::Sent,
            SendResult::Refused { .. } | SendResult::Ended { .. } => SendState::Failed,
        };
        let key = MessageKey::Ours(finish.id.to_owned());
        Ok(self.write_message(&key, |state| {
            let Some(item) = state.messages.get_mut(&key) else {
                return Finished::Superseded;
            };
            let on_record = item.ledger.as_ref().map(|l| l.attempt.as_str());
            let fence_holds = match finish.attempt {
                Some(attempt) => {
                    item.state.send == Some(SendState::Sending) && on_record == Some(attempt)
                }
                None => item.state.send.is_none(),
            };
            if !fence_holds {
                // This very write again (it landed before): recorded.
                return if item.state.send == Some(send_state) && on_record == finish.attempt {
                    Finished::Recorded
                } else {
                    Finished::Superseded
                };
            }
            item.state.send = Some(send_state);
            let (status, reason) = match finish.result {
                SendResult::Accepted { sinch_id } => {
                    if item.state.sinch_id.is_none() {
                        item.state.sinch_id = sinch_id.clone();
                    }
                    (Status::Sent, None)
                }
                SendResult::Refused { reason } => (Status::Failed, Some(reason.clone())),
                SendResult::Ended { status, reason } => (status.clone(), Some(reason.clone())),
            };
            let entry = HistoryEntry {
                status: status.clone(),
                at_ms: finish.at_ms,
                reason,
                channel: None,
            };
            let id = entry_id(&entry, finish.attempt);
            apply(item, &status, entry, id);
            Finished::Recorded
        }))
    }

    async fn record_dead_letter(&self, dead: &DeadLetter) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.dead_letters.contains_key(&dead.message_id) {
            state
                .dead_letters
                .insert(dead.message_id.clone(), dead.clone());
            self.emit(None, Some(Snapshot::DeadLetter(dead.clone())));
        }
        Ok(())
    }

    async fn abandon_send(&self, id: &str, attempt: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(item) = state.messages.get_mut(&MessageKey::Ours(id.to_owned()))
            && item.state.send == Some(SendState::Sending)
            && item
                .ledger
                .as_ref()
                .is_some_and(|ledger| ledger.attempt == attempt)
        {
            // As DynamoDB's REMOVE of the send state (the count of attempts stays).
            item.state.send = None;
        }
        Ok(())
    }

    async fn contacts(&self, contacts: &[ContactKey]) -> Result<Vec<ContactState>, StoreError> {
        let state = self.lock();
        Ok(contacts.iter().map(|key| state.contact_view(key)).collect())
    }

    async fn erase_contact(
        &self,
        contact: &ContactKey,
        reference: &str,
        at_ms: u64,
        max_items: usize,
    ) -> Result<Erased, StoreError> {
        let _ = max_items; // everything at once: it is all in memory
        let mut erased = Erased::default();
        // First, so that nothing accepted before it leaves from here on, wherever it waits.
        self.lock()
            .erasures
            .insert(ContactHasher::default().of(contact), at_ms);
        // Ours that name them: the ones that have not left end after the strip (below).
        let ours: Vec<String> = {
            let state = self.lock();
            state
                .messages
                .iter()
                .filter(|(key, item)| names(key, item, contact))
                .filter_map(|(key, _)| match key {
                    MessageKey::Ours(id) => Some(id.clone()),
                    _ => None,
                })
                .collect()
        };
        {
            let mut state = self.lock();
            let inbound: Vec<String> = state
                .inbound
                .iter()
                .filter(|(_, record)| record.from == *contact)
                .map(|(id, _)| id.clone())
                .collect();
            for id in inbound {
                if let Some(old) = state.inbound.remove(&id) {
                    erased.inbound += 1;
                    self.emit(Some(Snapshot::Inbound(old)), None);
                }
            }
            let named: Vec<MessageKey> = state
                .messages
                .iter()
                .filter(|(key, item)| names(key, item, contact))
                .map(|(key, _)| key.clone())
                .collect();
            for key in named {
                erased.messages += 1;
                if matches!(key, MessageKey::Sms { .. }) {
                    // The number is in its key: the item goes.
                    if let Some(old) = state.messages.remove(&key) {
                        self.emit(Some(Snapshot::Message(old.state)), None);
                    }
                    continue;
                }
                self.strip(&mut state, &key);
            }
            let view = state.contact_view(contact);
            erased.opt_out_kept = view.opted_out_by.is_some();
            if erased.opt_out_kept {
                state.hashed_opt_outs.insert(
                    ContactHasher::default().of(contact),
                    ContactState {
                        opted_out_by: Some(reference.to_owned()),
                        opted_out_at_ms: view.opted_out_at_ms,
                        opt_source: view.opt_source,
                        last_inbound_at_ms: None,
                        opted_in_at_ms: None,
                        erased_at_ms: None,
                    },
                );
            }
            if let Some(old) = state.contacts.remove(contact) {
                self.emit(
                    Some(Snapshot::Contact {
                        key: contact.clone(),
                        state: old,
                    }),
                    None,
                );
            }
            erased.complete = true;
            self.emit(
                None,
                Some(Snapshot::Erasure(ErasureRecord {
                    reference: reference.to_owned(),
                    channel: contact.channel.clone(),
                    erased: Erased {
                        canceled: Vec::new(),
                        ..erased.clone()
                    },
                    at_ms,
                })),
            );
        }
        // Stripped first (their ends' events name no one), then ours that had not left end,
        // as DynamoDB's do (a fenced finish each).
        let canceled = SendResult::Ended {
            status: Status::Canceled,
            reason: super::erased_reason(),
        };
        for id in ours {
            let finish = SendFinish {
                id: &id,
                attempt: None,
                result: &canceled,
                at_ms,
            };
            if self.finish_send(&finish).await? == Finished::Recorded {
                erased.canceled.push(id);
            }
        }
        Ok(erased)
    }

    async fn statuses(&self, ids: &[String]) -> Result<Vec<Option<Status>>, StoreError> {
        let state = self.lock();
        Ok(ids
            .iter()
            .map(|id| {
                state
                    .messages
                    .get(&MessageKey::Ours(id.clone()))
                    .map(|item| item.state.status.clone())
                    .filter(|status| !is_unset(status))
            })
            .collect())
    }

    async fn create_batch(
        &self,
        batch: &BatchRecord,
        chunks: &[String],
        answer: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.batches.contains_key(&batch.id) {
            return Ok(());
        }
        state.batches.insert(
            batch.id.clone(),
            Batch {
                record: batch.clone(),
                finals: BTreeSet::new(),
                chunks: chunks.to_vec(),
                answer: answer.to_owned(),
            },
        );
        self.emit(None, Some(Snapshot::Batch(batch.clone())));
        Ok(())
    }

    async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .map(|batch| batch.record.clone()))
    }

    async fn batch_counts(
        &self,
        id: &str,
        _total: u32,
    ) -> Result<Option<Vec<(Status, u32)>>, StoreError> {
        let mut counts: Vec<(Status, u32)> = Vec::new();
        let state = self.lock();
        let of_batch = state.messages.values().filter(|item| {
            item.state
                .batch
                .as_ref()
                .is_some_and(|batch| batch.id == id)
                && !is_unset(&item.state.status)
        });
        for item in of_batch {
            match counts
                .iter_mut()
                .find(|(held, _)| *held == item.state.status)
            {
                Some((_, count)) => *count += 1,
                None => counts.push((item.state.status.clone(), 1)),
            }
        }
        Ok(Some(counts))
    }

    async fn strip_recipient(&self, id: &str, _at_ms: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.strip(&mut state, &MessageKey::Ours(id.to_owned()));
        Ok(())
    }

    async fn batch_canceled(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .is_some_and(|batch| batch.record.canceled))
    }

    async fn batch_answer(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .map(|batch| batch.answer.clone()))
    }

    async fn batch_chunk(&self, id: &str, chunk: u32) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .and_then(|batch| batch.chunks.get(chunk as usize).cloned()))
    }

    async fn cancel_batch(&self, id: &str) -> Result<BatchCancel, StoreError> {
        let mut state = self.lock();
        let Some(batch) = state.batches.get_mut(id) else {
            return Ok(BatchCancel::Missing);
        };
        if batch.record.completed_at_ms.is_some() {
            return Ok(BatchCancel::Completed);
        }
        if !batch.record.canceled {
            let before = batch.record.clone();
            batch.record.canceled = true;
            let after = batch.record.clone();
            self.emit(Some(Snapshot::Batch(before)), Some(Snapshot::Batch(after)));
        }
        Ok(BatchCancel::Canceled)
    }

    async fn take_slot(
        &self,
        timeline: &str,
        interval_us: u64,
        now_us: u64,
        horizon_us: Option<u64>,
    ) -> Result<Slot, StoreError> {
        let mut state = self.lock();
        let next = state.timelines.entry(timeline.to_owned()).or_insert(0);
        let slot = (*next).max(now_us);
        if horizon_us.is_some_and(|horizon| slot > now_us.saturating_add(horizon)) {
            return Ok(Slot::Busy { next_us: slot });
        }
        *next = slot.saturating_add(interval_us);
        Ok(Slot::Taken(slot))
    }
}
