//! Where events go: EventBridge in AWS ([`EventBridgeSink`]), or this process for the local
//! stack ([`MemorySink`]: the last events kept for the page, and a channel for whoever wants
//! each, e.g. to post it to a URL).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use pipeline::events::Event;
use tokio::sync::broadcast;

use crate::MAX_REQUEST_BYTES;

/// One event as an EventBridge entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Our id of the event (also in the detail as `event_id`).
    pub event_id: String,
    /// The events' `source`.
    pub source: String,
    /// One of the detail-types (`pipeline::events::DETAIL_TYPES`).
    pub detail_type: String,
    /// The detail, JSON.
    pub detail: String,
    /// When the change was committed, Unix ms (the entry's `Time`).
    pub time_ms: u64,
    /// The state item it came from.
    pub item: String,
}

impl Entry {
    /// The entry for `event`; a detail over the size limit is replaced by a reference to the
    /// item it came from (`truncated: true`), which a consumer can read from the table.
    pub fn from_event(event: &Event, source: &str) -> Self {
        let mut entry = Self {
            event_id: event.id.clone(),
            source: source.to_owned(),
            detail_type: event.detail_type.to_owned(),
            detail: event.published_detail().to_string(),
            time_ms: event.time_ms,
            item: event.item.clone(),
        };
        if entry.size() > MAX_REQUEST_BYTES {
            entry.detail = serde_json::json!({
                "version": pipeline::events::SCHEMA_VERSION,
                "event_id": event.id,
                "truncated": true,
                "item": event.item,
            })
            .to_string();
        }
        entry
    }

    /// Its size as EventBridge counts it: source, detail-type, detail, and 14 bytes for the
    /// time.
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len() + 14
    }

    /// The event as EventBridge delivers it to a target (the local stack posts and writes
    /// this).
    pub fn envelope(&self) -> serde_json::Value {
        let detail: serde_json::Value =
            serde_json::from_str(&self.detail).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "version": "0",
            "id": self.event_id,
            "detail-type": self.detail_type,
            "source": self.source,
            "time": pipeline::clock::rfc3339(self.time_ms),
            "resources": [],
            "detail": detail,
        })
    }
}

/// A call that failed as a whole (no entry taken).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events could not be put: {0}")]
pub struct SinkError(pub String);

/// Where events go. One call takes at most [`crate::MAX_ENTRIES`] entries; the answer says, per
/// entry in order, whether it was taken (`Err` with the service's error code if not).
pub trait EventSink: Send + Sync {
    /// Puts `entries`, in one call.
    fn put(
        &self,
        entries: &[&Entry],
    ) -> impl Future<Output = Result<Vec<Result<(), String>>, SinkError>> + Send;
}

/// Amazon EventBridge: `PutEvents` on one bus.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    /// The bus `bus`, through `client`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

impl EventSink for EventBridgeSink {
    async fn put(&self, entries: &[&Entry]) -> Result<Vec<Result<(), String>>, SinkError> {
        let mut request = self.client.put_events();
        for entry in entries {
            request = request.entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&entry.source)
                    .detail_type(&entry.detail_type)
                    .detail(&entry.detail)
                    .time(DateTime::from_millis(
                        i64::try_from(entry.time_ms).unwrap_or(i64::MAX),
                    ))
                    .build(),
            );
        }
        let output = request
            .send()
            .await
            .map_err(|e| SinkError(DisplayErrorContext(&e).to_string()))?;
        let results = output.entries();
        // One result per entry, in order; a short answer leaves the rest unconfirmed.
        Ok((0..entries.len())
            .map(|i| match results.get(i) {
                Some(result) => match result.error_code() {
                    Some(code) => Err(format!(
                        "{code}: {}",
                        result.error_message().unwrap_or_default()
                    )),
                    None => Ok(()),
                },
                None => Err("no result for this entry".to_owned()),
            })
            .collect())
    }
}

/// This process: the last events, for a page, and a live feed of every one.
#[derive(Debug, Clone)]
pub struct MemorySink {
    inner: Arc<Memory>,
}

#[derive(Debug)]
struct Memory {
    last: Mutex<VecDeque<Entry>>,
    keep: usize,
    feed: broadcast::Sender<Entry>,
}

impl MemorySink {
    /// Keeps the last `keep` events.
    pub fn new(keep: usize) -> Self {
        let (feed, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Memory {
                last: Mutex::new(VecDeque::with_capacity(keep)),
                keep,
                feed,
            }),
        }
    }

    /// The last events, newest first.
    pub fn last(&self) -> Vec<Entry> {
        let last = self
            .inner
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.iter().rev().cloned().collect()
    }

    /// Every event from now on (a receiver that falls behind by more than 4,096 skips ahead).
    pub fn subscribe(&self) -> broadcast::Receiver<Entry> {
        self.inner.feed.subscribe()
    }
}

impl EventSink for MemorySink {
    async fn put(&self, entries: &[&Entry]) -> Result<Vec<Result<(), String>>, SinkError> {
        let mut last = self
            .inner
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in entries {
            if last.len() == self.inner.keep {
                last.pop_front();
            }
            last.push_back((*entry).clone());
            // Nobody listening is fine.
            let _ = self.inner.feed.send((*entry).clone());
        }
        Ok(vec![Ok(()); entries.len()])
    }
}
