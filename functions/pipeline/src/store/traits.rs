//! The store's traits, by aggregate (see [`Store`]).

use std::future::Future;

use super::*;
use crate::status::Status;
use sinch::Channel;

/// Where the worker keeps state, by aggregate: each part a trait of its own, one concept a
/// newcomer can name, with its DynamoDB and in-memory implementations in files of their own.
/// Every method is one atomic step; implementations must give the same answers for the same
/// calls (`tests/it/store_contract.rs` and its neighbours run one suite against each).
///
/// | trait | what |
/// |---|---|
/// | [`IdempotencyStore`] | Idempotency keys: a callback or a request is handled once (claim, complete, release). |
/// | [`MessageStore`] | Messages and their send ledger: statuses that only move forward, our sends recorded before they leave, stripped by an erasure. |
/// | [`ContactStore`] | Contacts: inbound messages and what they change (the WhatsApp window, keywords' consent), opt-outs from every source, erasure. |
/// | [`BatchStore`] | Batches of the messages API: the record, its recipients' chunks, its answer, cancel, completion and counts. |
/// | [`CounterStore`] | Counters held across every caller: the guards' windows and caps, the pacing timelines' slots. |
/// | [`DeadLetterStore`] | Dead letters: a poison callback's record, written before it is parked (its event comes from the stream). |
///
/// A function depends on the parts it uses; `Store` is all of them, for what uses them all (the
/// worker, the local stack).
pub trait Store:
    IdempotencyStore + MessageStore + ContactStore + BatchStore + CounterStore + DeadLetterStore
{
}

impl<T> Store for T where
    T: IdempotencyStore + MessageStore + ContactStore + BatchStore + CounterStore + DeadLetterStore
{
}

/// Idempotency keys: a callback or a request is handled once (claim, complete, release).
pub trait IdempotencyStore: Send + Sync {
    /// Claims an idempotency key (a conditional write): see [`Claim`]. A key whose lease ran
    /// out, or whose completed record expired, can be claimed again; a lease that ran out
    /// keeps the value it held (same payload), an expired completed record does not.
    fn claim(
        &self,
        request: &ClaimRequest<'_>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks a claimed key done; it is remembered until `expires_at_s` (Unix seconds), with
    /// `response` if given (what a replay answers).
    fn complete(
        &self,
        key: &str,
        expires_at_s: u64,
        response: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives a claimed key up (the handler failed), so a retry can run.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Messages and their send ledger: statuses that only move forward, our sends recorded before they leave, stripped by an erasure.
pub trait MessageStore: Send + Sync {
    /// Applies a delivery report: the status moves only forward (see [`crate::status`]); the
    /// report is appended to the history either way (once: the same report again, or a write
    /// retried after it landed, adds no second entry; at most [`HISTORY_LIMIT`] entries).
    fn record_status(
        &self,
        update: &StatusUpdate,
    ) -> impl Future<Output = Result<StatusChange, StoreError>> + Send;

    /// A message's state, if any report or reply is known for it.
    fn message_state(
        &self,
        key: &MessageKey,
    ) -> impl Future<Output = Result<Option<MessageState>, StoreError>> + Send;

    /// Stores a send the messages API accepted (status `ACCEPTED`), before it is queued. The
    /// same message again (same caller, channel and recipient: a retry of the request that
    /// reserved the id, or a write retried after it landed) is [`Acceptance::Existing`], with
    /// its state; another message under the same id is an error.
    fn accept_message(
        &self,
        message: &AcceptedMessage,
    ) -> impl Future<Output = Result<Acceptance, StoreError>> + Send;

    /// Starts an attempt at one of our sends, unless an earlier one settles it (a conditional
    /// write): see [`SendStart`]. The intent is recorded with the first attempt.
    fn begin_send(
        &self,
        attempt: &SendAttempt<'_>,
    ) -> impl Future<Output = Result<SendStart, StoreError>> + Send;

    /// Records how an attempt ended: SENT with Sinch's id, or FAILED with the reason; only
    /// while the ledger is still at that attempt (see [`SendFinish`]), else
    /// [`Finished::Superseded`] and nothing is written. Its history entry is added once.
    fn finish_send(
        &self,
        finish: &SendFinish<'_>,
    ) -> impl Future<Output = Result<Finished, StoreError>> + Send;

    /// Withdraws an attempt that certainly never reached Sinch (it answered 429 or 5xx, no
    /// connection was made, or a rule held it): the message is as it was before the attempt
    /// (no send state), so the next attempt may go at once and a cancel, while it waits for
    /// that, still reaches it. A no-op when another attempt replaced it.
    fn abandon_send(
        &self,
        id: &str,
        attempt: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The statuses of several of our messages at once (`None`: no such message), in the
    /// order asked.
    fn statuses(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Status>>, StoreError>> + Send;

    /// Strips one of our messages of its recipient, text and metadata, as an erasure does
    /// (and marks it so that no attempt on it begins again): for a message written after its
    /// recipient's erasure (a reply, a batch's message made from its chunk), once the rules
    /// stopped it. A no-op for a message that does not exist.
    fn strip_recipient(
        &self,
        id: &str,
        at_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Contacts: inbound messages and what they change (the WhatsApp window, keywords' consent), opt-outs from every source, erasure.
pub trait ContactStore: Send + Sync {
    /// Stores an inbound message (again is harmless), the contact's last inbound time, and the
    /// opt-out change it causes, at once.
    fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// What is known of a contact: who opted them out (knowing which message did it lets a
    /// retried STOP still send its confirmation), and when they last wrote.
    fn contact(
        &self,
        contact: &ContactKey,
    ) -> impl Future<Output = Result<ContactState, StoreError>> + Send;

    /// What is known of several contacts at once (one call per hundred in DynamoDB), in the
    /// order asked.
    fn contacts(
        &self,
        contacts: &[ContactKey],
    ) -> impl Future<Output = Result<Vec<ContactState>, StoreError>> + Send;

    /// Opts a contact out, or back in, unless they already are (then nothing is written and
    /// the answer is `false`: the first opt-out stands, with its source and time), or the
    /// consent that stands is newer than `at_ms` ([`ContactState::applies`]: nothing written,
    /// `false`).
    fn set_opt_out(
        &self,
        write: &OptWrite<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Up to `limit` opted-out contacts after `after` (exclusive), on `channel` only when
    /// given, in the order of `<channel>/<identity>` (as text).
    fn opt_outs(
        &self,
        channel: Option<&Channel>,
        after: Option<&ContactKey>,
        limit: usize,
    ) -> impl Future<Output = Result<OptOutPage, StoreError>> + Send;

    /// Erases a contact: first marks them erased under a keyed hash ([`ContactHasher`],
    /// [`ContactState::erased_at_ms`], for [`ERASURE_REACH`]) so that no send accepted before
    /// leaves, wherever it waits (a queue, a schedule, a batch's chunk); ends our messages to
    /// them that have not left `CANCELED` ([`Erased::canceled`]); removes their inbound
    /// messages, strips their recipient, texts and metadata from message states (nothing writes
    /// them back: an attempt on a stripped message does not begin), and removes the contact,
    /// keeping an opt-out as a keyed hash so that they stay opted out. At most `max_items` items a call:
    /// until [`Erased::complete`], call again (each call is safe to repeat). The last call
    /// writes the [`ErasureRecord`] (`reference`) its event comes from.
    fn erase_contact(
        &self,
        contact: &ContactKey,
        reference: &str,
        at_ms: u64,
        max_items: usize,
    ) -> impl Future<Output = Result<Erased, StoreError>> + Send;
}

/// Batches of the messages API: the record, its recipients' chunks, its answer, cancel, completion and counts.
pub trait BatchStore: Send + Sync {
    /// Stores a batch, its recipients' chunks (each a JSON text) and the answer its request
    /// gave (bounded: what a replay of the request answers), unless a batch with its id exists
    /// (then nothing is written: a retry of the same request).
    fn create_batch(
        &self,
        batch: &BatchRecord,
        chunks: &[String],
        answer: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Where a batch's messages stand: how many of those made so far hold each status (a
    /// message not made yet, its chunk not fanned out, is in none). A bounded read whatever the
    /// batch's size (DynamoDB: its tally, an item per hundred messages, read a hundred at a
    /// time); `total` is the batch's. `None` for a batch stored before batches had a tally
    /// (DynamoDB): its messages must be read one by one ([`MessageStore::statuses`]).
    fn batch_counts(
        &self,
        id: &str,
        total: u32,
    ) -> impl Future<Output = Result<Option<Vec<(Status, u32)>>, StoreError>> + Send;

    /// Whether a batch is canceled (a missing one is not): the check each of its sends makes
    /// just before it leaves, one small read whatever the batch's size.
    fn batch_canceled(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The answer a batch's request gave, as [`BatchStore::create_batch`] stored it.
    fn batch_answer(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// A batch, if there is one under `id`.
    fn batch(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<BatchRecord>, StoreError>> + Send;

    /// One chunk of a batch's recipients (the JSON text stored).
    fn batch_chunk(
        &self,
        id: &str,
        chunk: u32,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Marks a batch canceled, unless every message of it has ended.
    fn cancel_batch(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<BatchCancel, StoreError>> + Send;
}

/// Counters held across every caller: the guards' windows and caps, the pacing timelines' slots.
pub trait CounterStore: Send + Sync {
    /// Counts one more under `key` in a sliding window (see [`WindowState`]) unless that would
    /// go over `limit`; held across every caller (a conditional write on the state read).
    fn count_in_window(
        &self,
        key: &str,
        window_ms: u64,
        limit: u32,
        now_ms: u64,
    ) -> impl Future<Output = Result<Counted, StoreError>> + Send;

    /// Takes `n` back from the count under `key` (never below 0): what [`CounterStore::count_up_to`]
    /// granted for something that then was not done (a batch that could not be stored).
    fn count_down(&self, key: &str, n: u32) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds up to `n` to the count under `key`, as many as fit under `cap`; the answer is how
    /// many were added (0 when it is full). The count is forgotten after `expires_at_s` (Unix
    /// seconds: the end of its period, and then some).
    fn count_up_to(
        &self,
        key: &str,
        n: u32,
        cap: u32,
        expires_at_s: u64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Takes the next send slot on a pacing `timeline` (one per Sinch API): slots are
    /// `interval_us` apart, never earlier than `now_us`. `horizon_us`, when given, is how far
    /// ahead a slot may be taken (the bulk lane's: it leaves the slots beyond it to the fast
    /// lane); past it, [`Slot::Busy`] with the next free one. Times are Unix µs.
    fn take_slot(
        &self,
        timeline: &str,
        interval_us: u64,
        now_us: u64,
        horizon_us: Option<u64>,
    ) -> impl Future<Output = Result<Slot, StoreError>> + Send;
}

/// Dead letters: a poison callback's record, written before it is parked (its event comes from the stream).
pub trait DeadLetterStore: Send + Sync {
    /// Remembers a callback parked in the dead-letter queue (once per SQS message: again is a
    /// no-op), so that its event comes from committed state like every other.
    fn record_dead_letter(
        &self,
        dead: &DeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
