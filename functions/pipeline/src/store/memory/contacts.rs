//! MemoryStore's part: contacts: inbound messages and what they change (the WhatsApp window, keywords' consent), opt-outs from every source, erasure.

use super::*;

impl ContactStore for MemoryStore {
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

    async fn contact(&self, contact: &ContactKey) -> Result<ContactState, StoreError> {
        Ok(self.lock().contact_view(contact))
    }

    async fn contacts(&self, contacts: &[ContactKey]) -> Result<Vec<ContactState>, StoreError> {
        let state = self.lock();
        Ok(contacts.iter().map(|key| state.contact_view(key)).collect())
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
            reason: crate::store::erased_reason(),
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
}
