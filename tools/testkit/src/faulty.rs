//! A store that fails on command: [`FaultyStore`] wraps any [`Store`] (the in-memory one, or
//! DynamoDB on moto) and, for the operations a test names, fails where a real store would.
//!
//! | fault | what the caller sees | what the store behind did |
//! |---|---|---|
//! | [`Fault::Before`] | a `StoreError` | nothing: the call never reached it |
//! | [`Fault::After`] | a `StoreError` | the write, in full: only its answer was lost |
//! | [`Fault::Panic`] | a panic | nothing |
//!
//! A fault holds for every call of that operation, or only for calls about one subject (a key, a
//! message id, an inbound message id: [`FaultyStore::fail_for`]), and for every call or only the
//! next `n` ([`FaultyStore::fail_times`]).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use pipeline::status::Status;
use pipeline::store::DeadLetter;
use pipeline::store::{
    Acceptance, AcceptedMessage, BatchCancel, BatchRecord, Claim, ClaimRequest, ContactKey,
    ContactState, Finished, InboundRecord, MessageKey, MessageState, OptChange, SendAttempt,
    SendFinish, SendStart, Slot, StatusChange, StatusUpdate, Store, StoreError,
};
use pipeline::store::{
    BatchStore, ContactStore, CounterStore, DeadLetterStore, IdempotencyStore, MessageStore,
};
use pipeline::store::{Counted, Erased, OptOutPage, OptWrite};
use sinch::Channel;

/// How an operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call never reaches the store.
    Before,
    /// The store applies it, and the answer is lost.
    After,
    /// The handler panics (the only way to make one panic on purpose).
    Panic,
}

#[derive(Debug, Clone)]
struct Rule {
    operation: &'static str,
    fault: Fault,
    subject: Option<String>,
    times: Option<u32>,
}

/// A [`Store`] whose operations fail on command; clones share the commands.
#[derive(Debug, Clone, Default)]
pub struct FaultyStore<S> {
    inner: S,
    rules: Arc<Mutex<Vec<Rule>>>,
    calls: Arc<Mutex<std::collections::HashMap<&'static str, usize>>>,
}

impl<S: Store> FaultyStore<S> {
    /// `inner`, with no fault armed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rules: Arc::default(),
            calls: Arc::default(),
        }
    }

    /// How many calls of `operation` came (failed or not).
    pub fn calls(&self, operation: &str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// The store behind.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Every call of `operation` (a [`Store`] method's name) fails so.
    pub fn fail(&self, operation: &'static str, fault: Fault) {
        self.add(operation, fault, None, None);
    }

    /// Calls of `operation` about `subject` fail so.
    pub fn fail_for(&self, operation: &'static str, subject: &str, fault: Fault) {
        self.add(operation, fault, Some(subject.to_owned()), None);
    }

    /// The next `times` calls of `operation` fail so.
    pub fn fail_times(&self, operation: &'static str, fault: Fault, times: u32) {
        self.add(operation, fault, None, Some(times));
    }

    /// No more faults.
    pub fn heal(&self) {
        self.lock().clear();
    }

    fn add(
        &self,
        operation: &'static str,
        fault: Fault,
        subject: Option<String>,
        times: Option<u32>,
    ) {
        self.lock().push(Rule {
            operation,
            fault,
            subject,
            times,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault for this call, if any (a counted rule is used up by it).
    fn fault(&self, operation: &str, subject: &str) -> Option<Fault> {
        let mut rules = self.lock();
        let index = rules.iter().position(|rule| {
            rule.operation == operation
                && rule.subject.as_deref().is_none_or(|s| s == subject)
                && rule.times != Some(0)
        })?;
        let rule = &mut rules[index];
        if let Some(times) = &mut rule.times {
            *times -= 1;
        }
        Some(rule.fault)
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        subject: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let error = StoreError {
            operation,
            detail: "injected fault".into(),
        };
        *self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(operation)
            .or_default() += 1;
        match self.fault(operation, subject) {
            None => call.await,
            Some(Fault::Before) => Err(error),
            Some(Fault::After) => {
                call.await?;
                Err(error)
            }
            Some(Fault::Panic) => panic!("deliberate panic in {operation} for {subject}"),
        }
    }
}

impl<S: Store> IdempotencyStore for FaultyStore<S> {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.call("claim", request.key, self.inner.claim(request))
            .await
    }
    async fn complete(
        &self,
        key: &str,
        expires_at_s: u64,
        response: Option<&str>,
    ) -> Result<(), StoreError> {
        self.call(
            "complete",
            key,
            self.inner.complete(key, expires_at_s, response),
        )
        .await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.call("release", key, self.inner.release(key)).await
    }
}

impl<S: Store> MessageStore for FaultyStore<S> {
    async fn record_status(&self, update: &StatusUpdate) -> Result<StatusChange, StoreError> {
        let subject = update.key.to_string();
        self.call("record_status", &subject, self.inner.record_status(update))
            .await
    }
    async fn message_state(&self, key: &MessageKey) -> Result<Option<MessageState>, StoreError> {
        let subject = key.to_string();
        self.call("message_state", &subject, self.inner.message_state(key))
            .await
    }
    async fn accept_message(&self, message: &AcceptedMessage) -> Result<Acceptance, StoreError> {
        self.call(
            "accept_message",
            &message.id,
            self.inner.accept_message(message),
        )
        .await
    }
    async fn begin_send(&self, attempt: &SendAttempt<'_>) -> Result<SendStart, StoreError> {
        self.call("begin_send", attempt.id, self.inner.begin_send(attempt))
            .await
    }
    async fn finish_send(&self, finish: &SendFinish<'_>) -> Result<Finished, StoreError> {
        self.call("finish_send", finish.id, self.inner.finish_send(finish))
            .await
    }
    async fn abandon_send(&self, id: &str, attempt: &str) -> Result<(), StoreError> {
        self.call("abandon_send", id, self.inner.abandon_send(id, attempt))
            .await
    }
    async fn statuses(&self, ids: &[String]) -> Result<Vec<Option<Status>>, StoreError> {
        self.call("statuses", "", self.inner.statuses(ids)).await
    }
    async fn strip_recipient(&self, id: &str, at_ms: u64) -> Result<(), StoreError> {
        self.call("strip_recipient", id, self.inner.strip_recipient(id, at_ms))
            .await
    }
}

impl<S: Store> ContactStore for FaultyStore<S> {
    async fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> Result<(), StoreError> {
        self.call(
            "record_inbound",
            &inbound.id,
            self.inner.record_inbound(inbound, change),
        )
        .await
    }
    async fn contact(&self, contact: &ContactKey) -> Result<ContactState, StoreError> {
        let subject = contact.to_string();
        self.call("contact", &subject, self.inner.contact(contact))
            .await
    }
    async fn contacts(&self, contacts: &[ContactKey]) -> Result<Vec<ContactState>, StoreError> {
        self.call("contacts", "", self.inner.contacts(contacts))
            .await
    }
    async fn set_opt_out(&self, write: &OptWrite<'_>) -> Result<bool, StoreError> {
        let subject = write.contact.to_string();
        self.call("set_opt_out", &subject, self.inner.set_opt_out(write))
            .await
    }
    async fn opt_outs(
        &self,
        channel: Option<&Channel>,
        after: Option<&ContactKey>,
        limit: usize,
    ) -> Result<OptOutPage, StoreError> {
        self.call(
            "opt_outs",
            channel.map_or("", Channel::as_str),
            self.inner.opt_outs(channel, after, limit),
        )
        .await
    }
    async fn erase_contact(
        &self,
        contact: &ContactKey,
        reference: &str,
        at_ms: u64,
        max_items: usize,
    ) -> Result<Erased, StoreError> {
        let subject = contact.to_string();
        self.call(
            "erase_contact",
            &subject,
            self.inner
                .erase_contact(contact, reference, at_ms, max_items),
        )
        .await
    }
}

impl<S: Store> BatchStore for FaultyStore<S> {
    async fn create_batch(
        &self,
        batch: &BatchRecord,
        chunks: &[String],
        answer: &str,
    ) -> Result<(), StoreError> {
        self.call(
            "create_batch",
            &batch.id,
            self.inner.create_batch(batch, chunks, answer),
        )
        .await
    }
    async fn batch_counts(
        &self,
        id: &str,
        total: u32,
    ) -> Result<Option<Vec<(Status, u32)>>, StoreError> {
        self.call("batch_counts", id, self.inner.batch_counts(id, total))
            .await
    }
    async fn batch_canceled(&self, id: &str) -> Result<bool, StoreError> {
        self.call("batch_canceled", id, self.inner.batch_canceled(id))
            .await
    }
    async fn batch_answer(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.call("batch_answer", id, self.inner.batch_answer(id))
            .await
    }
    async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        self.call("batch", id, self.inner.batch(id)).await
    }
    async fn batch_chunk(&self, id: &str, chunk: u32) -> Result<Option<String>, StoreError> {
        self.call("batch_chunk", id, self.inner.batch_chunk(id, chunk))
            .await
    }
    async fn cancel_batch(&self, id: &str) -> Result<BatchCancel, StoreError> {
        self.call("cancel_batch", id, self.inner.cancel_batch(id))
            .await
    }
}

impl<S: Store> CounterStore for FaultyStore<S> {
    async fn count_in_window(
        &self,
        key: &str,
        window_ms: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Counted, StoreError> {
        self.call(
            "count_in_window",
            key,
            self.inner.count_in_window(key, window_ms, limit, now_ms),
        )
        .await
    }
    async fn count_down(&self, key: &str, n: u32) -> Result<(), StoreError> {
        self.call("count_down", key, self.inner.count_down(key, n))
            .await
    }
    async fn count_up_to(
        &self,
        key: &str,
        n: u32,
        cap: u32,
        expires_at_s: u64,
    ) -> Result<u32, StoreError> {
        self.call(
            "count_up_to",
            key,
            self.inner.count_up_to(key, n, cap, expires_at_s),
        )
        .await
    }
    async fn take_slot(
        &self,
        timeline: &str,
        interval_us: u64,
        now_us: u64,
        horizon_us: Option<u64>,
    ) -> Result<Slot, StoreError> {
        self.call(
            "take_slot",
            timeline,
            self.inner
                .take_slot(timeline, interval_us, now_us, horizon_us),
        )
        .await
    }
}

impl<S: Store> DeadLetterStore for FaultyStore<S> {
    async fn record_dead_letter(&self, dead: &DeadLetter) -> Result<(), StoreError> {
        self.call(
            "record_dead_letter",
            &dead.message_id,
            self.inner.record_dead_letter(dead),
        )
        .await
    }
}
