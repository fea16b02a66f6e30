//! Events in the local stack, made as in AWS: from the store's committed changes (the in-memory
//! store's change feed, or the table's DynamoDB stream on moto, LocalStack or AWS), by the
//! publisher's own code, into a sink of this process. From there:
//!
//! | where | what |
//! |---|---|
//! | the page (`GET /`) and `GET /events` | the last events, newest first |
//! | `--events-to URL` | each event POSTed as JSON, as EventBridge would deliver it to a target |
//! | `--events-file PATH` | each event appended to PATH as one line of JSON |
//!
//! A consumer that does not answer, or a file that cannot be written, is logged and counted
//! (`events_not_forwarded`); the stack goes on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pipeline::store::{Change, Snapshot};
use publisher::poll::StreamPoller;
use publisher::{MemorySink, Pending, Publisher};
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::warn;

use super::stats::Stats;

/// How many events the page keeps.
pub const KEEP: usize = 200;

/// Where events go besides the page.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    /// POST each event here.
    pub to: Option<String>,
    /// Append each event here, one JSON line each.
    pub file: Option<PathBuf>,
    /// The events' `source`.
    pub source: Option<String>,
}

impl EventsOptions {
    fn source(&self) -> String {
        self.source
            .clone()
            .unwrap_or_else(|| pipeline::events::DEFAULT_SOURCE.to_owned())
    }
}

/// Publishes the in-memory store's changes as they commit.
pub fn from_changes(
    mut changes: mpsc::UnboundedReceiver<Change>,
    sink: MemorySink,
    options: &EventsOptions,
) {
    let publisher = Publisher::new(sink, options.source());
    tokio::spawn(async move {
        let mut sequence = 0u64;
        while let Some(change) = changes.recv().await {
            // As the table stream's filter in AWS: only the items events come from.
            let prefix = change
                .new
                .as_ref()
                .or(change.old.as_ref())
                .map(Snapshot::key_prefix);
            if !prefix.is_some_and(pipeline::store::stream_admits) {
                continue;
            }
            sequence += 1;
            let pending = [Pending::from_change(sequence.to_string(), &change)];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            publisher::publish(&publisher, &pending, deadline).await;
        }
    });
}

const POLL_FAST: Duration = Duration::from_millis(200);
const POLL_IDLE: Duration = Duration::from_secs(1);
const POLL_FAILING: Duration = Duration::from_secs(5);

/// Publishes the table's stream, read as Lambda's event source reads it, until `stop`.
pub async fn from_stream(
    sdk: &aws_config::SdkConfig,
    table: &str,
    sink: MemorySink,
    options: &EventsOptions,
    stats: std::sync::Arc<super::stats::Stats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), publisher::poll::PollError> {
    let mut poller = StreamPoller::for_table(sdk, table).await?;
    let publisher = Publisher::new(sink, options.source());
    tokio::spawn(async move {
        // Polled no harder than it needs: every 200 ms while records come, twice as slowly
        // each empty poll up to once a second, and backing off to 5 s while it fails.
        let mut pause = POLL_FAST;
        loop {
            pause = match poller.poll().await {
                Ok(records) if !records.is_empty() => {
                    // The template's stream filter, as the event source mapping applies it.
                    let pending: Vec<Pending> = records
                        .iter()
                        .filter(|record| publisher::stream::admitted(record))
                        .map(Pending::from_record)
                        .collect();
                    if !pending.is_empty() {
                        // Filtered out, a record invokes nothing (the mapping's filter).
                        let started = tokio::time::Instant::now();
                        let deadline = started + Duration::from_secs(30);
                        publisher::publish(&publisher, &pending, deadline).await;
                        stats.invoked("publisher", started.elapsed());
                    }
                    POLL_FAST
                }
                Ok(_) => (pause * 2).min(POLL_IDLE),
                Err(error) => {
                    warn!(%error, "the table's stream could not be read; trying again");
                    (pause * 2).clamp(POLL_IDLE, POLL_FAILING)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
        }
    });
    Ok(())
}

/// Counts each event the sink takes, and sends it to `--events-to` and `--events-file`.
pub fn forward(sink: &MemorySink, options: &EventsOptions, stats: Arc<Stats>) {
    let mut events = sink.subscribe();
    let (to, file) = (options.to.clone(), options.file.clone());
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        loop {
            let entry = match events.recv().await {
                Ok(entry) => entry,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    // Without a destination nothing was to be forwarded (only the page's counts
                    // of events miss them).
                    if to.is_some() || file.is_some() {
                        warn!(skipped, "events not forwarded: the consumer fell behind");
                        stats.events_not_forwarded(skipped);
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            stats.event(&entry.detail_type);
            if to.is_none() && file.is_none() {
                continue;
            }
            let event = entry.envelope();
            if let Some(url) = &to {
                let posted = client
                    .post(url)
                    .json(&event)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .and_then(|response| response.error_for_status());
                if let Err(error) = posted {
                    warn!(%url, event_id = %entry.event_id, %error, "event not posted");
                    stats.events_not_forwarded(1);
                }
            }
            if let Some(path) = &file
                && let Err(error) = append(path, &event).await
            {
                warn!(path = %path.display(), event_id = %entry.event_id, %error, "event not written");
                stats.events_not_forwarded(1);
            }
        }
    });
}

async fn append(path: &std::path::Path, event: &serde_json::Value) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    file.write_all(format!("{event}\n").as_bytes()).await?;
    file.flush().await
}
