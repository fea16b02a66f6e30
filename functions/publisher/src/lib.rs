//! The publisher Lambda: the state table's DynamoDB stream in, domain events out.
//!
//! Each stream record is one committed write (the item before and after); [`pipeline::events`]
//! says which events it makes. They go to an [`EventSink`] (EventBridge in AWS) in order, in
//! `PutEvents` calls of at most 10 entries (and 256 KB), as the service allows:
//!
//! | situation | what happens |
//! |---|---|
//! | every entry accepted | the batch succeeds; the stream moves on |
//! | some entries refused (throttled, an internal error) | only those are put again, with backoff, while the invocation has time |
//! | entries still refused, or the call itself failing | the batch answers `batchItemFailures` from the first record with an unpublished event: the stream delivers it and every later record again (events already out then come twice, with the same `id`) |
//! | the publisher crashing mid-batch | the whole batch is delivered again: same events, same ids |
//! | retries spent (`MaximumRetryAttempts` of the event source) | the stream's on-failure destination (an SQS queue) gets the batch's place in the stream: nothing is dropped silently |
//! | an event over the entry size limit | its detail is replaced by a reference to the item (`truncated: true`, `item`) |
//! | a record of an item no event speaks of, or unreadable | skipped, logged |
//!
//! Order: a stream shard is read in order and so are the events of one item; EventBridge
//! itself does not keep order, so statuses carry their rank ([`pipeline::events`]).
//!
//! [`publish`] is a plain async function over its dependencies; `main.rs` wires it to
//! `lambda_runtime`, and the local stack feeds it the in-memory store's changes.

#![warn(missing_docs)]

pub mod config;
pub mod lambda;
#[cfg(feature = "poller")]
pub mod poll;
pub mod sink;
pub mod stream;

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use pipeline::events::{self, Event};
use pipeline::store::Change;
use retry_policies::policies::ExponentialBackoff;
use retry_policies::{Jitter, RetryDecision, RetryPolicy};
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use config::PublisherConfig;
pub use sink::{Entry, EventBridgeSink, EventSink, MemorySink, SinkError};

/// Most entries in one `PutEvents` call.
pub const MAX_ENTRIES: usize = 10;
/// Most bytes of one `PutEvents` call, and so of one entry, as EventBridge counts them.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// The publisher's dependencies, built once per cold start.
#[derive(Debug, Clone)]
pub struct Publisher<K> {
    /// Where events go.
    pub sink: K,
    /// The events' `source`.
    pub source: String,
    /// How long a refused entry is retried within one invocation (the invocation's deadline
    /// bounds it too).
    pub retry_for: Duration,
    /// Backoff between retries of refused entries.
    pub backoff: ExponentialBackoff,
}

impl<K> Publisher<K> {
    /// A publisher to `sink` with the default retry time and backoff.
    pub fn new(sink: K, source: impl Into<String>) -> Self {
        Self {
            sink,
            source: source.into(),
            retry_for: Duration::from_secs(20),
            backoff: ExponentialBackoff::builder()
                .retry_bounds(Duration::from_millis(50), Duration::from_secs(2))
                .jitter(Jitter::Full)
                .build_with_max_retries(8),
        }
    }
}

/// What a batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Entries EventBridge accepted (the same event twice counts twice).
    pub events: usize,
    /// Records whose events are all out.
    pub records: usize,
    /// The sequence number the stream must deliver again from, if any record is not done.
    pub failed_from: Option<String>,
}

impl Published {
    /// The answer to the stream (`ReportBatchItemFailures`).
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence) = &self.failed_from {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// One stream record's events, with where the record is in the stream.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The record's sequence number (what `batchItemFailures` names).
    pub sequence: String,
    /// The events it gives, in order.
    pub events: Vec<Event>,
}

impl Pending {
    /// The events of one stream record; `None` for records to skip (logged).
    pub fn from_record(record: &EventRecord) -> Self {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let events = match stream::change(record) {
            Ok(Some(change)) => events::derive(&change),
            Ok(None) => Vec::new(),
            Err(error) => {
                warn!(%sequence, %error, "stream record skipped: not an item of ours");
                Vec::new()
            }
        };
        Self { sequence, events }
    }

    /// The events of one change (the in-memory store's feed).
    pub fn from_change(sequence: impl Into<String>, change: &Change) -> Self {
        Self {
            sequence: sequence.into(),
            events: events::derive(change),
        }
    }
}

/// Publishes the events of `records`, in order, until the first one that cannot be published.
pub async fn publish<K: EventSink>(
    publisher: &Publisher<K>,
    records: &[Pending],
    deadline: Instant,
) -> Published {
    let mut published = Published::default();
    // Entries, each with the index of the record it came from.
    let entries: Vec<(usize, Entry)> = records
        .iter()
        .enumerate()
        .flat_map(|(index, record)| {
            record
                .events
                .iter()
                .map(move |event| (index, Entry::from_event(event, &publisher.source)))
        })
        .collect();
    for chunk in chunks(&entries) {
        match put_with_retries(publisher, chunk, deadline).await {
            Ok(()) => published.events += chunk.len(),
            Err(failed_index) => {
                let sequence = &records[failed_index].sequence;
                error!(%sequence, published = published.events, "events not published: the stream delivers again from this record");
                published.records = failed_index;
                published.failed_from = Some(sequence.clone());
                return published;
            }
        }
    }
    published.records = records.len();
    info!(
        records = published.records,
        events = published.events,
        "stream batch published"
    );
    published
}

/// Entries in `PutEvents`-sized groups: at most [`MAX_ENTRIES`], at most [`MAX_REQUEST_BYTES`].
fn chunks(entries: &[(usize, Entry)]) -> Vec<&[(usize, Entry)]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, entry)) in entries.iter().enumerate() {
        let size = entry.size();
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_REQUEST_BYTES) {
            chunks.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        chunks.push(&entries[start..]);
    }
    chunks
}

/// Puts one chunk; refused entries (only those) are put again with backoff. On giving up, the
/// record index of the first entry not published.
async fn put_with_retries<K: EventSink>(
    publisher: &Publisher<K>,
    chunk: &[(usize, Entry)],
    deadline: Instant,
) -> Result<(), usize> {
    let started = SystemTime::now();
    let until = deadline.min(Instant::now() + publisher.retry_for);
    let mut pending: Vec<&(usize, Entry)> = chunk.iter().collect();
    let mut retries = 0;
    loop {
        let entries: Vec<&Entry> = pending.iter().map(|(_, entry)| entry).collect();
        let refused = match publisher.sink.put(&entries).await {
            Ok(results) => {
                let refused: Vec<_> = pending
                    .iter()
                    .zip(results.iter())
                    .filter_map(|(pending, result)| match result {
                        Ok(()) => None,
                        Err(code) => Some((*pending, code.clone())),
                    })
                    .collect();
                if refused.is_empty() {
                    return Ok(());
                }
                for ((index, entry), code) in &refused {
                    warn!(record = index, event_id = %entry.event_id, %code, "entry refused by EventBridge");
                }
                refused.into_iter().map(|(pending, _)| pending).collect()
            }
            Err(error) => {
                warn!(%error, entries = pending.len(), "PutEvents failed");
                pending.clone()
            }
        };
        let first = refused.iter().map(|(index, _)| *index).min().unwrap_or(0);
        let wait = match publisher.backoff.should_retry(started, retries) {
            RetryDecision::Retry { execute_after } => execute_after
                .duration_since(SystemTime::now())
                .unwrap_or_default(),
            RetryDecision::DoNotRetry => return Err(first),
        };
        if Instant::now() + wait >= until {
            return Err(first);
        }
        tokio::time::sleep(wait).await;
        retries += 1;
        pending = refused;
    }
}

/// Serves stream batches from the Lambda runtime until it stops.
pub async fn run<K: EventSink + 'static>(
    publisher: Publisher<K>,
) -> Result<(), lambda_runtime::Error> {
    let publisher = std::sync::Arc::new(publisher);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<aws_lambda_events::event::dynamodb::Event>| {
            let publisher = publisher.clone();
            async move {
                let deadline =
                    pipeline::clock::deadline_from(event.context.deadline, SAFETY_MARGIN);
                let records: Vec<Pending> = event
                    .payload
                    .records
                    .iter()
                    .map(Pending::from_record)
                    .collect();
                let published = publish(&publisher, &records, deadline).await;
                Ok::<_, lambda_runtime::Error>(published.response())
            }
        },
    ))
    .await
}

/// Time kept back from the Lambda deadline to answer the stream.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(1000);
