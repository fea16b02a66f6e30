//! The in-memory store: the local stack, tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    Claim, ClaimRequest, ContactKey, HISTORY_LIMIT, HistoryEntry, InboundRecord, MessageKey,
    MessageState, OptChange, ReplyRecord, StatusChange, StatusUpdate, Store, StoreError,
};
use crate::status::Progress;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Idempotency {
    InProgress {
        lease_until_ms: u64,
        payload_hash: String,
    },
    Completed {
        expires_at_s: u64,
        payload_hash: String,
    },
}

#[derive(Debug, Default)]
struct State {
    idempotency: BTreeMap<String, Idempotency>,
    messages: BTreeMap<MessageKey, MessageState>,
    inbound: BTreeMap<String, InboundRecord>,
    opted_out: BTreeMap<ContactKey, String>,
    replies: BTreeMap<MessageKey, ReplyRecord>,
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
        self.lock().messages.values().cloned().collect()
    }

    /// Every stored inbound message.
    pub fn inbound(&self) -> Vec<InboundRecord> {
        self.lock().inbound.values().cloned().collect()
    }

    /// Every reply sent.
    pub fn replies(&self) -> Vec<ReplyRecord> {
        self.lock().replies.values().cloned().collect()
    }

    /// Every opted-out contact.
    pub fn opted_out(&self) -> Vec<ContactKey> {
        self.lock().opted_out.keys().cloned().collect()
    }
}

impl Store for MemoryStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        match state.idempotency.get(request.key) {
            Some(Idempotency::Completed {
                expires_at_s,
                payload_hash,
            }) if expires_at_s.saturating_mul(1000) > request.now_ms => {
                return Ok(Claim::Completed {
                    same_payload: payload_hash == request.payload_hash,
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

    async fn complete(&self, key: &str, expires_at_s: u64) -> Result<(), StoreError> {
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
        };
        let Some(message) = state.messages.get_mut(&update.key) else {
            state.messages.insert(
                update.key.clone(),
                MessageState {
                    key: update.key.clone(),
                    status: update.status.clone(),
                    progress: update.progress,
                    channel: update.channel.clone(),
                    history: vec![entry],
                    in_reply_to: None,
                },
            );
            return Ok(StatusChange::Created {
                status: update.status.clone(),
            });
        };
        if message.history.len() < HISTORY_LIMIT {
            message.history.push(entry);
        }
        if message.channel.is_none() {
            message.channel = update.channel.clone();
        }
        if message.progress.advances_to(update.progress) {
            let from = std::mem::replace(&mut message.status, update.status.clone());
            message.progress = update.progress;
            Ok(StatusChange::Advanced {
                from,
                to: update.status.clone(),
            })
        } else {
            Ok(StatusChange::Kept {
                status: message.status.clone(),
            })
        }
    }

    async fn message_state(&self, key: &MessageKey) -> Result<Option<MessageState>, StoreError> {
        Ok(self.lock().messages.get(key).cloned())
    }

    async fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.inbound.insert(inbound.id.clone(), inbound.clone());
        match change {
            Some(OptChange::OptOut { contact, by }) => {
                state.opted_out.insert(contact.clone(), by.clone());
            }
            Some(OptChange::OptIn { contact }) => {
                state.opted_out.remove(contact);
            }
            None => {}
        }
        Ok(())
    }

    async fn opted_out_by(&self, contact: &ContactKey) -> Result<Option<String>, StoreError> {
        Ok(self.lock().opted_out.get(contact).cloned())
    }

    async fn record_reply(&self, reply: &ReplyRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.replies.insert(reply.key.clone(), reply.clone());
        // A delivery report may already have arrived for it; link it either way.
        let key = reply.key.clone();
        let message = state.messages.entry(key.clone()).or_insert(MessageState {
            key,
            status: "SENT".to_owned(),
            progress: Progress {
                rank: 1,
                terminal: false,
            },
            channel: Some(reply.to.channel.clone()),
            history: Vec::new(),
            in_reply_to: None,
        });
        message.in_reply_to = Some(reply.in_reply_to.clone());
        Ok(())
    }
}
