//! The DynamoDB store: one on-demand table, partition key `pk` (string), TTL attribute
//! `expires_at` (Unix seconds).
//!
//! Every item kind and its partition key are defined once, in [`keys`] (which also says who
//! writes each); their attributes:
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | idempotency record | `idem#<key>` (see [`crate::idempotency`]; the messages API's keys are `idem#api/...`) | `state` (`INPROGRESS` / `COMPLETED`), `lease_until_ms`, `payload_hash`, `value` (the messages API: the message id the key reserved), `response` (what the messages API replays), `expires_at` (TTL) |
//! | message state | `msg#<message key>`, e.g. `msg#ours/rpl_01EQ...`, `msg#conversation/01EQ...` or `msg#sms/<batch>/<recipient>` | `s<rank>` (the first status seen at each rank), `history` (list of `status`, `at_ms`, `reason`, `description`, `channel`), `history_count`, `history_ids` (a string set: which entries it holds), `channel`, `in_reply_to`, `updated_at_ms`; for our own sends also `send_state` (`SENDING` / `SENT` / `FAILED`), `attempt`, `fallback` (channel names), `attempt_at_ms`, `attempts`, `sinch_message_id` or `sinch_batch_id`, `to_identity`, `text`; for sends of the messages API `caller`, `metadata` |
//! | inbound message | `in#<Sinch message id>` | `from_channel`, `from_identity`, `to`, `kind`, `text`, `media` (list of URLs), `contact_id`, `conversation_id`, `received_at_ms` |
//! | contact | `contact#<channel>/<identity>` | `last_inbound_at_ms` (WhatsApp's window), `opted_out_by` (the inbound message that opted out), `opted_out_at_ms` |
//! | batch | `batch#<id>` | `caller`, `channel`, `total`, `refused`, `chunks`, `shards`, `shards_done`, `created_at_ms`, `send_at_ms`, `canceled`, `completed_at_ms`, `expires_at`: small, read by each of its sends before it leaves |
//! | a batch's recipients | `chunk#<id>#<k>` | `recipients` (JSON, up to a thousand), `expires_at` (the message retention from when it is due) |
//! | a batch's answer | `answer#<id>` | `answer` (what its request answered; read by a replay only), `expires_at` |
//! | a batch's finals | `finals#<id>#<k % 16>` | `expected`, `finals` (a number set), `counted` (once complete), `expires_at` |
//! | a fallback's alias | `alias#<message id>#<channel>` | `person` (the recipient on a channel the message may fall back to, for the people index: [`fallback`]), `expires_at` |
//! | a batch's tally | `tally#<id>#<k / 100>` | `st_<STATUS>` (number sets of places: where each message stands, [`tally`]), `expires_at` |
//! | an erased contact's opt-out | `optout#<HMAC-SHA256(CONTACT_HASH_KEY, channel/identity)>` | `opted_out_by` (the erasure's reference), `opted_out_at_ms`, `opt_source`: kept |
//! | an erasure's mark | `erased#<the same keyed hash>` | `erased_at_ms`, `expires_at` ([`super::ERASURE_REACH`]): a send accepted before it does not leave |
//! | an erasure's record | `erasure#<reference>` | `channel`, `inbound`, `messages`, `opt_out_kept`, `at_ms`, `expires_at` (the message retention): what an erasure did, for its event; no identity |
//! | a guard's counter | `guard#<guard key>` | `window`, `count`, `previous` (a sliding window, [`crate::store::slide`]), `expires_at` |
//! | a pacing timeline | `pace#<timeline>` | `next_us` (the next free send slot, Unix µs), `expires_at` |
//! | a batch's recipients, before `chunk#` | `batch#<id>#<k>` | `recipients`: read for a batch stored by an older version, never written |
//! | dead letter | `dead#<SQS message id>` | `reason`, `detail`, `kind`, `at_ms`, `expires_at` (14 days, the dead-letter queue's retention): written once, before the callback goes to the dead-letter queue, so that its event comes from the stream |
//!
//! Why these shapes:
//!
//! - **Idempotency** follows Powertools for AWS Lambda: a conditional put claims the key (it
//!   succeeds when the key is new, its lease ran out, or its completed record expired); the
//!   condition failure returns the old item, which says "done" or "in progress". A claim that
//!   holds a value (the messages API's reserved message id) is taken over after its lease by a
//!   second, fenced update that keeps the value. Completed
//!   records live for the TTL (48 h by default, beyond Sinch's retry horizon); abandoned claims
//!   carry a TTL too, so nothing is left forever.
//! - **Status only moves forward in one unconditional write.** Each rank has its own attribute,
//!   written with `if_not_exists`, and the status is the highest rank present. Because terminal
//!   statuses hold the top rank ([`crate::status::TERMINAL_RANK`]) and the first one written
//!   wins, READ and FAILED are final whatever arrives later, and reports racing each other
//!   cannot lose a step: no read-modify-write, no retries on conflicts. The history is appended
//!   in the same write, once per entry (a condition that `history_ids` lacks the entry's id, so
//!   a write the SDK retried after it landed adds nothing) and until it holds [`HISTORY_LIMIT`]
//!   entries (a condition on `history_count`); past that a second write moves the status alone.
//! - **Every move of the send ledger is fenced**: finishing an attempt is conditional on the
//!   ledger still being `SENDING` under that attempt (or, for a send failed before it left, on
//!   no attempt on record), so a late or stray outcome never overwrites another attempt's.
//! - **An inbound message, its contact's last inbound time and the opt-out it causes** are
//!   written in one transaction.
//! - **A send of the messages API** is put as `ACCEPTED` (with the channel asked for, the
//!   recipient, the caller's metadata) before it is queued; the ledger and the reports then move
//!   it as they do a reply.
//! - **A send is recorded before it leaves** ([`crate::ledger`]): one conditional update starts an
//!   attempt only when no earlier attempt settles it; a delivery report that names one of our
//!   messages writes Sinch's id on the same item, which settles a send whose answer was lost.
//!
//! Calls per callback: a delivery report costs 3 (claim, status, complete), or 1 when it goes
//! unclaimed ([`crate::handlers::needs_claim`]); an inbound message
//! 4 (claim, opt-out read, inbound write, complete) plus 2 for a reply (the attempt before the
//! send, the outcome after it); a status write of a batch's message one more, its tally.

mod batches;
mod contacts;
mod counters;
mod dead_letters;
mod fallback;
mod idempotency;
mod images;
use super::keys;
mod messages;
mod opt_out_list;
mod table;
mod tally;

pub use images::snapshot;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::{
    Acceptance, AcceptedMessage, BatchCancel, BatchRecord, BatchRef, BatchStore, Claim,
    ClaimRequest, ContactHasher, ContactKey, ContactState, ContactStore, Counted, CounterStore,
    DeadLetter, DeadLetterStore, ERASURE_REACH, Erased, ErasureRecord, Finished, HISTORY_LIMIT,
    HistoryEntry, IdempotencyStore, InboundRecord, MessageKey, MessageState, MessageStore,
    OptChange, OptOutPage, OptSource, OptWrite, Reason, Retention, SendAttempt, SendFinish,
    SendResult, SendStart, SendState, SinchId, Slot, Snapshot, StatusChange, StatusUpdate,
    StoreError, TextDigest, WindowState, entry_id,
};
use crate::status::{Progress, Status};
use sinch::Channel;

/// One item of the table, as the SDK gives it.
pub type Item = HashMap<String, AttributeValue>;

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";
/// Abandoned claims are removed by TTL this long after their lease.
const ABANDONED_CLAIM_TTL_S: u64 = 24 * 3600;
/// Dead-letter records live as long as the dead-letter queue keeps messages.
const DEAD_LETTER_TTL_S: u64 = 14 * 24 * 3600;

/// A DynamoDB client whose calls are bounded in time (a worker must not hang on its store).
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .build();
    Client::from_conf(config)
}

/// The store in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention: Retention,
    hasher: ContactHasher,
    /// Each pacing timeline's next free slot as this process last saw it (Unix µs): when that is
    /// already past, the idle move goes first, so that a send costs one write whether the
    /// timeline is busy or idle, not a failed one and then one.
    timelines_seen: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

impl DynamoStore {
    /// The store in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: Retention::default(),
            hasher: ContactHasher::default(),
            timelines_seen: std::sync::Arc::default(),
        }
    }

    /// The same store, erased contacts' opt-outs kept under `hasher`'s keyed hashes.
    pub fn with_hasher(mut self, hasher: ContactHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Where an erased contact's opt-out is kept.
    fn hashed_pk(&self, contact: &ContactKey) -> String {
        keys::hashed_opt_out(&self.hasher.of(contact))
    }

    /// Where a contact's erasure is remembered (its time only), under the same keyed hash.
    fn erased_pk(&self, contact: &ContactKey) -> String {
        keys::erased(&self.hasher.of(contact))
    }

    /// The same store, its items kept as long as `retention` says.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// When an item of the kind `kept` for that long, changed now, expires (Unix s).
    fn expiry(kept: Duration) -> u64 {
        crate::clock::unix_millis(std::time::SystemTime::now()) / 1000 + kept.as_secs()
    }

    /// `kept` from `at_ms` or from now, whichever is later: a message scheduled ahead is kept
    /// for the retention from when it is due, never expiring before it leaves.
    fn expiry_from(at_ms: Option<u64>, kept: Duration) -> u64 {
        let now_ms = crate::clock::unix_millis(std::time::SystemTime::now());
        at_ms.unwrap_or(0).max(now_ms) / 1000 + kept.as_secs()
    }

    /// Every item of the table (a full `Scan`, paged): for audits and tests (an erasure's proof
    /// scans everything), never on a hot path.
    pub async fn items(&self) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed("scan", e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, operation: &'static str, pk: String) -> Result<Option<Item>, StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map(|output| output.item)
            .map_err(|e| failed(operation, e))
    }
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(number: u64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

/// An `UpdateItem`'s output, or `None` when its condition did not hold; any other failure is
/// the store's.
fn conditional<T, R: std::fmt::Debug>(
    operation: &'static str,
    result: Result<T, SdkError<UpdateItemError, R>>,
) -> Result<Option<T>, StoreError> {
    match result {
        Ok(output) => Ok(Some(output)),
        Err(SdkError::ServiceError(service))
            if matches!(
                service.err(),
                UpdateItemError::ConditionalCheckFailedException(_)
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(failed(operation, error)),
    }
}

fn failed<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError {
        operation,
        detail: DisplayErrorContext(&error).to_string(),
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
}

/// A history entry as stored (a one-element list, for `list_append`): `status`, `at_ms`, and
/// `reason` / `description` / `channel` when known.
fn history_entry(entry: &HistoryEntry) -> AttributeValue {
    let mut item = HashMap::from([
        ("status".to_owned(), s(entry.status.as_str())),
        ("at_ms".to_owned(), n(entry.at_ms)),
    ]);
    if let Some(channel) = &entry.channel {
        item.insert("channel".to_owned(), s(channel));
    }
    if let Some(reason) = &entry.reason {
        item.insert("reason".to_owned(), s(&reason.code));
        if let Some(description) = &reason.description {
            item.insert("description".to_owned(), s(description));
        }
    }
    AttributeValue::L(vec![AttributeValue::M(item)])
}

/// Sinch's id on an item, if any answer or report put it there.
fn sinch_id(item: &Item) -> Option<SinchId> {
    text(item, "sinch_message_id")
        .map(|id| SinchId::Message(id.to_owned()))
        .or_else(|| text(item, "sinch_batch_id").map(|id| SinchId::Batch(id.to_owned())))
}

/// The attribute that holds a Sinch id of this kind.
fn sinch_id_attribute(id: &SinchId) -> &'static str {
    match id {
        SinchId::Message(_) => "sinch_message_id",
        SinchId::Batch(_) => "sinch_batch_id",
    }
}

/// A message item read back; `None` while it has no status.
fn message_state(key: &MessageKey, item: &Item) -> Option<MessageState> {
    let (_, status) = furthest(item)?;
    let history = item
        .get("history")
        .and_then(|v| v.as_l().ok())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| {
                    let entry = entry.as_m().ok()?;
                    Some(HistoryEntry {
                        status: Status::from(text(entry, "status")?),
                        at_ms: number(entry, "at_ms").unwrap_or_default(),
                        reason: text(entry, "reason").map(|code| {
                            Reason::new(code, text(entry, "description").map(str::to_owned))
                        }),
                        channel: text(entry, "channel").map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(MessageState {
        key: key.clone(),
        status,
        channel: text(item, "channel")
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        history,
        in_reply_to: text(item, "in_reply_to").map(str::to_owned),
        sinch_id: sinch_id(item),
        send: text(item, "send_state").and_then(SendState::parse),
        to: text(item, "to_identity").map(str::to_owned),
        metadata: text(item, "metadata").map(str::to_owned),
        caller: text(item, "caller").map(str::to_owned),
        text: text(item, "text").map(str::to_owned),
        scheduled_at_ms: number(item, "scheduled_at_ms"),
        batch: text(item, "batch_id").map(|id| BatchRef {
            id: id.to_owned(),
            index: number(item, "batch_index")
                .and_then(|i| u32::try_from(i).ok())
                .unwrap_or_default(),
        }),
    })
}

/// How many items a batch's finals are spread over (message `k` in shard `k % 16`).
const BATCH_FINAL_SHARDS: u32 = 16;

/// A batch item read back.
fn batch_record(item: &Item) -> Option<BatchRecord> {
    let id = text(item, "pk")?.strip_prefix(keys::BATCH)?;
    if id.contains('#') {
        return None;
    }
    let count = |name| {
        number(item, name)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or_default()
    };
    Some(BatchRecord {
        id: id.to_owned(),
        caller: text(item, "caller").unwrap_or_default().to_owned(),
        channel: text(item, "channel").unwrap_or_default().to_owned(),
        total: count("total"),
        refused: count("refused"),
        chunks: count("chunks"),
        created_at_ms: number(item, "created_at_ms").unwrap_or_default(),
        send_at_ms: number(item, "send_at_ms"),
        canceled: item
            .get("canceled")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        finals: item
            .get("finals")
            .and_then(|v| v.as_ns().ok())
            .map_or(0, |set| u32::try_from(set.len()).unwrap_or(u32::MAX)),
        completed_at_ms: number(item, "completed_at_ms"),
    })
}

/// Whether an item's history already holds the entry `id`.
fn has_entry(item: &Item, id: &str) -> bool {
    item.get("history_ids")
        .and_then(|v| v.as_ss().ok())
        .is_some_and(|ids| ids.iter().any(|held| held == id))
}

/// An update of a message item that adds one history entry: once (the entry's id must not be
/// in `history_ids`) and within [`HISTORY_LIMIT`]; past the limit the rest of the update goes
/// alone. `fence`, when given, must hold for any of it to be written.
struct HistoryWrite<'a> {
    pk: String,
    /// `SET` clauses besides the history's, comma-separated.
    set: String,
    /// `ADD` clauses besides the history's, comma-separated (may be empty).
    add: &'a str,
    /// A condition for the whole write, and the same judged on an old item.
    fence: Option<(&'a str, &'a Judged<'a>)>,
    names: Vec<(&'static str, String)>,
    values: Vec<(&'static str, AttributeValue)>,
    entry: AttributeValue,
    entry_id: String,
}

/// A condition judged on an item read back.
type Judged<'a> = dyn Fn(&Item) -> bool + Sync + 'a;

/// What a [`HistoryWrite`] did.
enum Written {
    /// Written (with or without its entry); the item as it was before.
    Applied(Option<Item>),
    /// The entry was there already: this very write landed before. The item as it is.
    AlreadyThere(Item),
    /// The fence did not hold: nothing written. The item as it is.
    Fenced(Item),
}

impl DynamoStore {
    async fn write_with_history(
        &self,
        operation: &'static str,
        write: HistoryWrite<'_>,
    ) -> Result<Written, StoreError> {
        // Every change to a message keeps it for the retention from now.
        let set = format!("{}, expires_at = :retain", write.set);
        let retain = n(Self::expiry(self.retention.messages));
        let condition = |rest: Option<&str>| match (write.fence.map(|(c, _)| c), rest) {
            (Some(fence), Some(rest)) => Some(format!("({fence}) AND {rest}")),
            (Some(fence), None) => Some(fence.to_owned()),
            (None, rest) => rest.map(str::to_owned),
        };
        let add = |extra: &str| match (write.add.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!(" ADD {extra}"),
            (false, true) => format!(" ADD {}", write.add),
            (false, false) => format!(" ADD {extra}, {}", write.add),
        };
        let update = |expression: String, condition: Option<String>| {
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&write.pk))
                .update_expression(expression)
                .set_condition_expression(condition)
                .return_values(ReturnValue::AllOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            for (name, value) in &write.names {
                update = update.expression_attribute_names(*name, value);
            }
            for (name, value) in &write.values {
                update = update.expression_attribute_values(*name, value.clone());
            }
            update.expression_attribute_values(":retain", retain.clone())
        };
        let with_history = update(
            format!(
                "SET {}, history = list_append(if_not_exists(history, :empty), :entry){}",
                set,
                add("history_count :one, history_ids :entry_ids")
            ),
            condition(Some(
                "NOT contains(history_ids, :entry_id) \
                 AND (attribute_not_exists(history_count) OR history_count < :cap)",
            )),
        )
        .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
        .expression_attribute_values(":entry", write.entry.clone())
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":cap", n(HISTORY_LIMIT as u64))
        .expression_attribute_values(":entry_id", s(&write.entry_id))
        .expression_attribute_values(
            ":entry_ids",
            AttributeValue::Ss(vec![write.entry_id.clone()]),
        );
        let old = match with_history.send().await {
            Ok(output) => return Ok(Written::Applied(output.attributes)),
            Err(error) => self.condition_failed(operation, &write.pk, error).await?,
        };
        if let Some((_, holds)) = write.fence
            && !holds(&old)
        {
            return Ok(Written::Fenced(old));
        }
        if has_entry(&old, &write.entry_id) {
            return Ok(Written::AlreadyThere(old));
        }
        // The history is full: the rest alone.
        match update(format!("SET {}{}", set, add("")), condition(None))
            .send()
            .await
        {
            Ok(output) => Ok(Written::Applied(output.attributes)),
            Err(error) => Ok(Written::Fenced(
                self.condition_failed(operation, &write.pk, error).await?,
            )),
        }
    }

    /// Puts `item` unless an item with its key exists: `None` when it was put, else the item
    /// there (read back when the implementation does not return it).
    async fn put_new(
        &self,
        operation: &'static str,
        item: Item,
    ) -> Result<Option<Item>, StoreError> {
        let pk = text(&item, "pk").unwrap_or_default().to_owned();
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let old = match service.into_err() {
                    PutItemError::ConditionalCheckFailedException(check) => check.item,
                    _ => None,
                };
                match old {
                    Some(old) => Ok(Some(old)),
                    None => Ok(Some(self.get(operation, pk).await?.unwrap_or_default())),
                }
            }
            Err(error) => Err(failed(operation, error)),
        }
    }

    /// The item a failed condition returned (read when the implementation returns none); any
    /// other error is the store's.
    async fn condition_failed<R: std::fmt::Debug>(
        &self,
        operation: &'static str,
        pk: &str,
        error: SdkError<UpdateItemError, R>,
    ) -> Result<Item, StoreError> {
        match error {
            SdkError::ServiceError(service) => match service.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed_check) => {
                    match failed_check.item {
                        Some(item) => Ok(item),
                        // Not every DynamoDB implementation returns the old item; read it.
                        None => Ok(self
                            .get(operation, pk.to_owned())
                            .await?
                            .unwrap_or_default()),
                    }
                }
                other => Err(StoreError {
                    operation,
                    detail: DisplayErrorContext(&other).to_string(),
                }),
            },
            error => Err(failed(operation, error)),
        }
    }
}

/// How many times a guard's conditional write is tried against writers racing it.
const GUARD_ATTEMPTS: usize = 8;

/// What opting a contact out sets (and so puts it in the opt-out index).
/// An opted-out contact is kept (`keep_until` marks it, so that a later inbound message does
/// not give it back a TTL).
const OPT_OUT_SET: &str = "opted_out_by = :by, opted_out_at_ms = :at_out, opt_source = :src, \
     optout_list = :list, optout_key = :okey, keep_until = :never, expires_at = :never";
/// What opting a contact back in sets (its retention again, from now), and removes (taking it
/// out of the index).
const OPT_IN_SET: &str = "opt_source = :src, expires_at = :retain, opted_in_at_ms = :at_in";
/// Consent in the person's order ([`ContactState::applies`]): an opt-out applies unless a later
/// opt-in stands; an opt-in only when later than the opt-out that stands (and than the last
/// opt-in: a retry of the same one passes).
const OPT_OUT_IS_NEWER: &str =
    "(attribute_not_exists(opted_in_at_ms) OR opted_in_at_ms <= :at_out)";
const OPT_IN_IS_NEWER: &str = "(attribute_not_exists(opted_out_at_ms) OR opted_out_at_ms <= :at_in) \
     AND (attribute_not_exists(opted_in_at_ms) OR opted_in_at_ms <= :at_in)";
const OPT_IN_REMOVE: &str =
    "REMOVE opted_out_by, opted_out_at_ms, optout_list, optout_key, keep_until";
/// `expires_at` of what is kept: the largest TTL DynamoDB will ever reach (2106).
const KEPT: u64 = u32::MAX as u64;

/// The index's sort key of a contact.
fn opt_out_key(contact: &ContactKey) -> String {
    format!("{}/{}", contact.channel.as_str(), contact.identity)
}

/// A contact item read back.
fn contact_state(item: &Item) -> ContactState {
    ContactState {
        opted_out_by: text(item, "opted_out_by").map(str::to_owned),
        opted_out_at_ms: number(item, "opted_out_at_ms"),
        opt_source: text(item, "opt_source").map(OptSource::from),
        last_inbound_at_ms: number(item, "last_inbound_at_ms"),
        opted_in_at_ms: number(item, "opted_in_at_ms"),
        erased_at_ms: number(item, "erased_at_ms"),
    }
}

/// The sparse index of opted-out contacts (the template's `optouts`): only an opted-out
/// contact carries its keys, [`OPT_OUT_LIST`] (one of [`OPT_OUT_LIST_VALUE`]'s shards) and
/// [`OPT_OUT_KEY`] (`<channel>/<identity>`).
pub const OPT_OUT_INDEX: &str = "optouts";
/// The index's partition key attribute.
pub const OPT_OUT_LIST: &str = "optout_list";
/// Its value, and the prefix of its others: the opt-outs are spread over several index keys
/// (see `store/dynamodb/opt_out_list.rs`).
pub const OPT_OUT_LIST_VALUE: &str = "optouts";
/// The index's sort key attribute.
pub const OPT_OUT_KEY: &str = "optout_key";
/// The index of who each item names (the template's `people`): [`PERSON`] is a contact's
/// `<channel>/<identity>`, on inbound messages and message states.
pub const PEOPLE_INDEX: &str = "people";
/// The people index's key attribute.
pub const PERSON: &str = "person";

/// The batch a message item belongs to.
fn batch_of(item: &Item) -> Option<BatchRef> {
    Some(BatchRef {
        id: text(item, "batch_id")?.to_owned(),
        index: number(item, "batch_index").and_then(|i| u32::try_from(i).ok())?,
    })
}

/// Every rank a status can be stored at (for projections of statuses alone).
const RANKS: [u8; 10] = [0, 1, 2, 3, 5, 10, 20, 25, 30, 40];

impl DynamoStore {
    /// Counts a batch's message as final (a set of indexes: again is a no-op); the batch is
    /// complete when all are.
    async fn batch_final(&self, message: &BatchRef) -> Result<(), StoreError> {
        // The message's shard of the batch's finals: a small item, so that neither the sends'
        // batch checks nor these writes grow with the batch (a set of 10,000 on the batch item
        // made each of them read or write 60 KB).
        let shard = message.index % BATCH_FINAL_SHARDS;
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::finals(&message.id, shard)))
            .update_expression("ADD finals :index")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":index",
                AttributeValue::Ns(vec![message.index.to_string()]),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let Some(output) = conditional("batch final", added)? else {
            // No shard: the batch is gone (expired), or older than the shards.
            return self.batch_final_legacy(message).await;
        };
        let shard_item = output.attributes.unwrap_or_default();
        let done = shard_item
            .get("finals")
            .and_then(|v| v.as_ns().ok())
            .map_or(0, Vec::len);
        let expected = number(&shard_item, "expected").unwrap_or(u64::MAX);
        if u64::try_from(done).unwrap_or(u64::MAX) < expected {
            return Ok(());
        }
        if !shard_item.contains_key("counted") {
            // The shard complete: counted once on the batch, in one transaction with its mark.
            let mark = aws_sdk_dynamodb::types::Update::builder()
                .table_name(&self.table)
                .key("pk", s(keys::finals(&message.id, shard)))
                .update_expression("SET counted = :yes")
                .condition_expression("attribute_not_exists(counted)")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .build()
                .map_err(|e| StoreError {
                    operation: "batch final",
                    detail: e.to_string(),
                })?;
            let count = aws_sdk_dynamodb::types::Update::builder()
                .table_name(&self.table)
                .key("pk", s(keys::batch(&message.id)))
                .update_expression("ADD shards_done :one")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":one", n(1))
                .build()
                .map_err(|e| StoreError {
                    operation: "batch final",
                    detail: e.to_string(),
                })?;
            let counted = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(mark).build())
                .transact_items(TransactWriteItem::builder().update(count).build())
                .send()
                .await;
            match counted {
                Ok(_) => {}
                // Counted by another delivery of the same report, or a retry that landed.
                Err(SdkError::ServiceError(service))
                    if matches!(
                        service.err(),
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(_)
                    ) => {}
                Err(error) => return Err(failed("batch final", error)),
            }
        }
        // Whenever its shard is complete (so a retry after a crash here still gets there):
        // the batch completes when every shard is.
        let Some(batch) = self.get("batch final", keys::batch(&message.id)).await? else {
            return Ok(());
        };
        let shards = number(&batch, "shards").unwrap_or(u64::MAX);
        if number(&batch, "shards_done").unwrap_or(0) < shards
            || batch.contains_key("completed_at_ms")
        {
            return Ok(());
        }
        self.complete_batch(&message.id).await
    }

    /// A message item stripped of who it went to and what it said (an erasure's part), marked
    /// so that no attempt on it begins again; nothing when it does not exist.
    async fn strip(&self, pk: &str, at_ms: u64) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .update_expression(
                "REMOVE to_identity, #text, metadata, #person SET erased_at_ms = :at",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#text", "text")
            .expression_attribute_names("#person", PERSON)
            .expression_attribute_values(":at", n(at_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        // Its fallback recipients' aliases go too (listed on it: again after a crash).
        if let Some(stripped) = conditional("strip recipient", result)?
            && let Some(id) = pk.strip_prefix(keys::OUR_MESSAGE)
        {
            self.delete_aliases(id, &stripped.attributes.unwrap_or_default())
                .await?;
        }
        Ok(())
    }

    /// Sets a batch's completion time, once.
    async fn complete_batch(&self, id: &str) -> Result<(), StoreError> {
        let now_ms = crate::clock::unix_millis(std::time::SystemTime::now());
        let completed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::batch(id)))
            .update_expression("SET completed_at_ms = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(completed_at_ms)")
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        conditional("batch complete", completed).map(|_| ())
    }

    /// A batch stored before its finals had shards: the set on the batch item.
    async fn batch_final_legacy(&self, message: &BatchRef) -> Result<(), StoreError> {
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::batch(&message.id)))
            .update_expression("ADD finals :index")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(shards)")
            .expression_attribute_values(
                ":index",
                AttributeValue::Ns(vec![message.index.to_string()]),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let batch = match conditional("batch final", added)? {
            Some(output) => output.attributes.as_ref().and_then(batch_record),
            None => return Ok(()),
        };
        match batch {
            Some(batch) if batch.finals >= batch.total && batch.completed_at_ms.is_none() => {
                self.complete_batch(&batch.id).await
            }
            _ => Ok(()),
        }
    }

    /// Items by key, a hundred at a time, keys DynamoDB left unprocessed asked again: the
    /// items found, by `pk`.
    async fn get_many(
        &self,
        operation: &'static str,
        pks: &[String],
        projection: Option<&str>,
    ) -> Result<HashMap<String, Item>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found = HashMap::new();
        for chunk in pks.chunks(100) {
            let mut unique: Vec<&String> = chunk.iter().collect();
            unique.sort();
            unique.dedup();
            let keys: Vec<Item> = unique
                .into_iter()
                .map(|pk| HashMap::from([("pk".to_owned(), s(pk))]))
                .collect();
            let mut wanted = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true);
            if let Some(projection) = projection {
                wanted = wanted.projection_expression(projection);
            }
            let mut request = Some(HashMap::from([(
                self.table.clone(),
                wanted.build().map_err(|e| StoreError {
                    operation,
                    detail: e.to_string(),
                })?,
            )]));
            // DynamoDB may leave keys unprocessed under load: the protocol is to ask again.
            let mut rounds = 0;
            while let Some(items) = request.take().filter(|r| !r.is_empty()) {
                rounds += 1;
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| failed(operation, e))?;
                for item in output
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    if let Some(pk) = text(&item, "pk") {
                        found.insert(pk.to_owned(), item);
                    }
                }
                request = output.unprocessed_keys.filter(|left| !left.is_empty());
                if request.is_some() {
                    if rounds >= 8 {
                        return Err(StoreError {
                            operation,
                            detail: "keys left unprocessed after 8 rounds".into(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20 << rounds)).await;
                }
            }
        }
        Ok(found)
    }
}

/// The furthest status an item holds: its highest `s<rank>` attribute.
fn furthest(item: &Item) -> Option<(u8, Status)> {
    item.iter()
        .filter_map(|(name, value)| {
            let rank = name.strip_prefix('s')?.parse::<u8>().ok()?;
            Some((rank, Status::from(value.as_s().ok()?.as_str())))
        })
        .max_by_key(|(rank, _)| *rank)
}
