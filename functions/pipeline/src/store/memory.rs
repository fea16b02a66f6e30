//! The in-memory store: the local stack, tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    AcceptedMessage, Claim, ClaimRequest, ContactKey, ContactState, HISTORY_LIMIT, HistoryEntry,
    InboundRecord, MessageKey, MessageState, OptChange, SendAttempt, SendIntent, SendResult,
    SendSlot, SendState, StatusChange, StatusUpdate, Store, StoreError,
};
use crate::status::{self, Progress};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Idempotency {
    InProgress {
        lease_until_ms: u64,
        payload_hash: String,
    },
    Completed {
        expires_at_s: u64,
        payload_hash: String,
        response: Option<String>,
    },
}

/// The send ledger of one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ledger {
    state: SendState,
    attempt: String,
    attempt_at_ms: u64,
    attempts: u32,
    intent: SendIntent,
}

#[derive(Debug, Default)]
struct State {
    idempotency: BTreeMap<String, Idempotency>,
    messages: BTreeMap<MessageKey, MessageState>,
    inbound: BTreeMap<String, InboundRecord>,
    contacts: BTreeMap<ContactKey, ContactState>,
    sends: BTreeMap<String, Ledger>,
}

impl State {
    /// The message item, created empty (no status yet) when missing.
    fn message(&mut self, key: &MessageKey) -> &mut MessageState {
        self.messages
            .entry(key.clone())
            .or_insert_with(|| MessageState {
                key: key.clone(),
                status: String::new(),
                progress: Progress::from_rank(0),
                channel: None,
                history: Vec::new(),
                in_reply_to: None,
                sinch_id: None,
                send: None,
                to: None,
                metadata: None,
            })
    }
}

/// Applies a status to a message: forward only, history kept (up to the limit).
fn apply(
    message: &mut MessageState,
    status: &str,
    progress: Progress,
    entry: HistoryEntry,
) -> StatusChange {
    let first = message.status.is_empty();
    if message.history.len() < HISTORY_LIMIT {
        message.history.push(entry);
    }
    if first {
        message.status = status.to_owned();
        message.progress = progress;
        return StatusChange::Created {
            status: status.to_owned(),
        };
    }
    // Ranks are first-come: a status of the same rank never replaces the one there.
    if message.progress.advances_to(progress) {
        let from = std::mem::replace(&mut message.status, status.to_owned());
        message.progress = progress;
        StatusChange::Advanced {
            from,
            to: status.to_owned(),
        }
    } else {
        StatusChange::Kept {
            status: message.status.clone(),
        }
    }
}

/// State in this process. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
            .filter(|message| !message.status.is_empty())
            .cloned()
            .collect()
    }

    /// Every stored inbound message.
    pub fn inbound(&self) -> Vec<InboundRecord> {
        self.lock().inbound.values().cloned().collect()
    }

    /// Every message of ours that was sent, or is being sent, with its intent.
    pub fn sends(&self) -> Vec<(String, SendState, SendIntent)> {
        self.lock()
            .sends
            .iter()
            .map(|(id, ledger)| (id.clone(), ledger.state, ledger.intent.clone()))
            .collect()
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

impl Store for MemoryStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let mut state = self.lock();
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
            _ => {}
        }
        state.idempotency.insert(
            request.key.to_owned(),
            Idempotency::InProgress {
                lease_until_ms: request.lease_until_ms,
                payload_hash: request.payload_hash.to_owned(),
            },
        );
        Ok(Claim::Claimed)
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
        let mut state = self.lock();
        let entry = HistoryEntry {
            status: update.status.clone(),
            at_ms: update.at_ms,
            reason: update.reason.clone(),
            channel: update.channel.clone(),
        };
        let message = state.message(&update.key);
        if message.channel.is_none() {
            message.channel = update.channel.clone();
        }
        if message.sinch_id.is_none() {
            message.sinch_id = update.sinch_id.clone();
        }
        Ok(apply(message, &update.status, update.progress, entry))
    }

    async fn message_state(&self, key: &MessageKey) -> Result<Option<MessageState>, StoreError> {
        Ok(self
            .lock()
            .messages
            .get(key)
            .filter(|message| !message.status.is_empty())
            .cloned())
    }

    async fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.inbound.insert(inbound.id.clone(), inbound.clone());
        let contact = state.contacts.entry(inbound.from.clone()).or_default();
        contact.last_inbound_at_ms = Some(inbound.received_at_ms);
        match change {
            Some(OptChange::OptOut { by, .. }) => contact.opted_out_by = Some(by.clone()),
            Some(OptChange::OptIn { .. }) => contact.opted_out_by = None,
            None => {}
        }
        Ok(())
    }

    async fn contact(&self, contact: &ContactKey) -> Result<ContactState, StoreError> {
        Ok(self
            .lock()
            .contacts
            .get(contact)
            .cloned()
            .unwrap_or_default())
    }

    async fn accept_message(&self, accepted: &AcceptedMessage) -> Result<(), StoreError> {
        let mut state = self.lock();
        let message = state.message(&MessageKey::Ours(accepted.id.clone()));
        if !message.status.is_empty() {
            return Err(StoreError {
                operation: "accept message",
                detail: format!("message {} exists", accepted.id),
            });
        }
        message.channel = Some(accepted.channel.clone());
        message.to = Some(accepted.to.clone());
        message.metadata = accepted.metadata.clone();
        let entry = HistoryEntry {
            status: status::ACCEPTED.to_owned(),
            at_ms: accepted.at_ms,
            reason: None,
            channel: None,
        };
        apply(message, status::ACCEPTED, Progress::ACCEPTED, entry);
        Ok(())
    }

    async fn begin_send(&self, request: &SendAttempt<'_>) -> Result<SendSlot, StoreError> {
        let mut state = self.lock();
        let key = MessageKey::Ours(request.id.to_owned());
        let proven = state
            .messages
            .get(&key)
            .and_then(|message| message.sinch_id.clone());
        if let Some(ledger) = state.sends.get(request.id) {
            match ledger.state {
                SendState::Sent => {
                    return Ok(SendSlot::Accepted {
                        sinch_id: proven,
                        recorded: true,
                    });
                }
                SendState::Failed => {
                    let reason = state
                        .messages
                        .get(&key)
                        .and_then(|message| message.reason().cloned())
                        .unwrap_or_else(|| super::Reason::new("UNKNOWN", None));
                    return Ok(SendSlot::Refused { reason });
                }
                SendState::Sending if proven.is_some() => {
                    return Ok(SendSlot::Accepted {
                        sinch_id: proven,
                        recorded: false,
                    });
                }
                SendState::Sending
                    if ledger.attempt_at_ms > request.settle_before_ms
                        && request.takeover != Some(ledger.attempt.as_str()) =>
                {
                    return Ok(SendSlot::Unsettled {
                        attempt: ledger.attempt.clone(),
                        attempt_at_ms: ledger.attempt_at_ms,
                    });
                }
                SendState::Sending => {}
            }
        } else if proven.is_some() {
            // A report named it although no attempt is on record: Sinch has it.
            return Ok(SendSlot::Accepted {
                sinch_id: proven,
                recorded: false,
            });
        }
        let attempts = state.sends.get(request.id).map_or(0, |l| l.attempts) + 1;
        state.sends.insert(
            request.id.to_owned(),
            Ledger {
                state: SendState::Sending,
                attempt: request.attempt.to_owned(),
                attempt_at_ms: request.now_ms,
                attempts,
                intent: request.intent.clone(),
            },
        );
        let message = state.message(&key);
        message.send = Some(SendState::Sending);
        if message.channel.is_none() {
            message.channel = Some(request.intent.to.channel.clone());
        }
        if message.in_reply_to.is_none() {
            message.in_reply_to = request.intent.in_reply_to.clone();
        }
        Ok(SendSlot::Go)
    }

    async fn finish_send(
        &self,
        id: &str,
        result: &SendResult,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let send_state = match result {
            SendResult::Accepted { .. } => SendState::Sent,
            SendResult::Refused { .. } => SendState::Failed,
        };
        if let Some(ledger) = state.sends.get_mut(id) {
            ledger.state = send_state;
        }
        let message = state.message(&MessageKey::Ours(id.to_owned()));
        message.send = Some(send_state);
        match result {
            SendResult::Accepted { sinch_id } => {
                if message.sinch_id.is_none() {
                    message.sinch_id = sinch_id.clone();
                }
                let entry = HistoryEntry {
                    status: status::SENT.to_owned(),
                    at_ms,
                    reason: None,
                    channel: None,
                };
                apply(message, status::SENT, Progress::SENT, entry);
            }
            SendResult::Refused { reason } => {
                let entry = HistoryEntry {
                    status: status::FAILED.to_owned(),
                    at_ms,
                    reason: Some(reason.clone()),
                    channel: None,
                };
                apply(message, status::FAILED, Progress::FAILED, entry);
            }
        }
        Ok(())
    }

    async fn abandon_send(&self, id: &str, attempt: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(ledger) = state.sends.get_mut(id)
            && ledger.state == SendState::Sending
            && ledger.attempt == attempt
        {
            ledger.attempt_at_ms = 0;
        }
        Ok(())
    }
}
