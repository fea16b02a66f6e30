//! MemoryStore's part: messages and their send ledger: statuses that only move forward, our sends recorded before they leave, stripped by an erasure.

use super::*;

impl MessageStore for MemoryStore {
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

    async fn begin_send(&self, request: &SendAttempt<'_>) -> Result<SendStart, StoreError> {
        let key = MessageKey::Ours(request.id.to_owned());
        self.write_message(&key, |state| {
            let item = state.message(&key);
            let proven = item.state.sinch_id.clone();
            let on_record = item.ledger.as_ref().map(|ledger| ledger.attempt.clone());
            // The same order of judgement as DynamoDB's (its condition, then the old item).
            match item.state.send {
                Some(SendState::Sent) => {
                    return Ok(SendStart::Accepted {
                        sinch_id: proven,
                        recorded: true,
                        attempt: on_record,
                    });
                }
                Some(SendState::Failed) => {
                    return Ok(SendStart::Refused {
                        reason: failure_reason(item),
                    });
                }
                _ if proven.is_some() => {
                    return Ok(SendStart::Accepted {
                        sinch_id: proven,
                        recorded: false,
                        attempt: on_record,
                    });
                }
                _ if item.erased => {
                    return Ok(SendStart::Refused {
                        reason: crate::store::erased_reason(),
                    });
                }
                Some(SendState::Sending) => {
                    if let Some(ledger) = &item.ledger {
                        // This very attempt again (a write retried): it stands.
                        if ledger.attempt == request.attempt {
                            return Ok(SendStart::Go);
                        }
                        if ledger.attempt_at_ms > request.settle_before_ms
                            && request.takeover != Some(ledger.attempt.as_str())
                        {
                            return Ok(SendStart::Unsettled {
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
            Ok(SendStart::Go)
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

    async fn strip_recipient(&self, id: &str, _at_ms: u64) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.strip(&mut state, &MessageKey::Ours(id.to_owned()));
        Ok(())
    }
}
