//! A batch's recipients become messages: the fan-out and the cancel jobs the messages API
//! queues for a batch (`POST /batches`, `DELETE /batches/{id}`).
//!
//! The API stores a batch's accepted recipients in chunks beside the batch item, each a list of
//! [`ChunkEntry`] (the message's send job, ready), and queues one [`FanOut`] per chunk on the
//! batch's lane (or schedules it for `send_at`). The worker runs them:
//!
//! | job | for each entry of the chunk | when it runs again (a retry, a duplicate) |
//! |---|---|---|
//! | `fan_out` | the message stored (`ACCEPTED`, or `SCHEDULED` when its own time is later: quiet hours in its zone), then its send job queued on its lane or scheduled; the batch canceled: the message stored and ended `CANCELED`, nothing queued | a message already stored is not stored again; its job is queued again only if it has not begun to leave (the ledger sends it once whatever number of jobs name it) |
//! | `cancel_batch` | a message that has not left ends `CANCELED` (a fenced write: one that has left is not touched) and its schedule is removed | the same: canceling twice is canceling |
//!
//! Each message's send job checks the batch again just before it leaves (see
//! [`super::outbound::send`]), so a message queued while the cancel was on its way never
//! leaves either.
//!
//! The entries are worked [`FAN_OUT_CONCURRENCY`] at a time; a chunk holds at most
//! [`CHUNK_RECIPIENTS`](crate::jobs::CHUNK_RECIPIENTS) of them, which fits well inside one invocation. Out of time, or a store
//! or queue failure: the job is retried, and the entries done are found done.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::time::Instant;
use tracing::{info, warn};

use super::Services;
use crate::clock::unix_millis;
use crate::envelope::Envelope;
use crate::hook::Hook;
use crate::jobs::{ChunkEntry, FanOut, SEND_JOB, schedule_name};
use crate::queue::Queue;
use crate::schedule::{Due, Lanes, Scheduler, dispatch, is_later};
use crate::send_rules::CANCELED;
use crate::status::Status;
use crate::store::{
    Acceptance, AcceptedMessage, BatchRecord, BatchRef, BatchStore, Finished, MessageStore, Reason,
    SendFinish, SendResult, Store, StoreError,
};

/// Entries worked at once.
pub const FAN_OUT_CONCURRENCY: usize = 16;

/// How long a queue or the scheduler may take to confirm one job.
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What a fan-out or a cancel did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FannedOut {
    /// Messages stored now.
    pub made: usize,
    /// Send jobs queued now.
    pub queued: usize,
    /// Send jobs scheduled for later.
    pub scheduled: usize,
    /// Messages ended `CANCELED` now.
    pub canceled: usize,
    /// Entries found done already.
    pub done: usize,
}

impl std::ops::AddAssign for FannedOut {
    fn add_assign(&mut self, other: Self) {
        self.made += other.made;
        self.queued += other.queued;
        self.scheduled += other.scheduled;
        self.canceled += other.canceled;
        self.done += other.done;
    }
}

/// Why a fan-out or a cancel did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FanOutError {
    /// Not a job of this version, or a chunk that is not there: retrying cannot help.
    #[error("bad batch job: {0}")]
    Bad(String),
    /// The store could not be read or written: retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A queue or the scheduler did not take a job.
    #[error("could not queue a send: {0}")]
    Dispatch(String),
    /// The invocation's time ran out; the entries done stay done.
    #[error("out of time after {0} entries")]
    OutOfTime(usize),
}

impl FanOutError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        !matches!(self, FanOutError::Bad(_))
    }
}

/// Reads a fan-out or cancel job from its queued body.
pub fn parse(body: &[u8]) -> Result<FanOut, FanOutError> {
    serde_json::from_slice(body).map_err(|e| FanOutError::Bad(e.to_string()))
}

/// The batch and the chunk's entries.
async fn load<S: BatchStore>(
    store: &S,
    job: &FanOut,
) -> Result<(BatchRecord, Vec<ChunkEntry>), FanOutError> {
    let batch = store
        .batch(&job.batch)
        .await?
        .ok_or_else(|| FanOutError::Bad(format!("no batch {}", job.batch)))?;
    let chunk = store
        .batch_chunk(&job.batch, job.chunk)
        .await?
        .ok_or_else(|| {
            FanOutError::Bad(format!("batch {} has no chunk {}", job.batch, job.chunk))
        })?;
    let entries: Vec<ChunkEntry> = serde_json::from_str(&chunk)
        .map_err(|e| FanOutError::Bad(format!("batch {} chunk {}: {e}", job.batch, job.chunk)))?;
    Ok((batch, entries))
}

/// Runs a chunk's fan-out (see the module docs).
pub async fn fan_out<S: Store, H: Hook, Q: Queue, C: Scheduler>(
    services: &Services<S, H>,
    lanes: &Lanes<Q>,
    scheduler: &C,
    job: &FanOut,
    deadline: Instant,
) -> Result<FannedOut, FanOutError> {
    let (batch, entries) = load(&services.store, job).await?;
    let work = entries
        .iter()
        .map(|entry| Box::pin(make(services, lanes, scheduler, &batch, entry)) as Work<'_>)
        .collect();
    let total = run_entries(work, deadline).await?;
    info!(batch = %job.batch, chunk = job.chunk, made = total.made, queued = total.queued, scheduled = total.scheduled, canceled = total.canceled, done = total.done, "chunk fanned out");
    Ok(total)
}

/// Runs a chunk's cancel (see the module docs).
pub async fn cancel<S: Store, H: Hook, C: Scheduler>(
    services: &Services<S, H>,
    scheduler: &C,
    job: &FanOut,
    deadline: Instant,
) -> Result<FannedOut, FanOutError> {
    let (_, entries) = load(&services.store, job).await?;
    let work = entries
        .iter()
        .map(|entry| Box::pin(cancel_one(services, scheduler, &entry.job.id)) as Work<'_>)
        .collect();
    let total = run_entries(work, deadline).await?;
    info!(batch = %job.batch, chunk = job.chunk, canceled = total.canceled, done = total.done, "chunk canceled");
    Ok(total)
}

/// One entry's work.
type Work<'a> = Pin<Box<dyn Future<Output = Result<FannedOut, FanOutError>> + Send + 'a>>;

/// Works the entries, [`FAN_OUT_CONCURRENCY`] at a time, until they are done or `deadline`.
async fn run_entries(work: Vec<Work<'_>>, deadline: Instant) -> Result<FannedOut, FanOutError> {
    let mut total = FannedOut::default();
    let mut worked = stream::iter(work).buffer_unordered(FAN_OUT_CONCURRENCY);
    loop {
        match tokio::time::timeout_at(deadline, worked.try_next()).await {
            Ok(Ok(Some(one))) => total += one,
            Ok(Ok(None)) => return Ok(total),
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                let done = total.made + total.canceled + total.done;
                return Err(FanOutError::OutOfTime(done));
            }
        }
    }
}

/// One entry of a cancel: the message ended, its schedule removed.
async fn cancel_one<S: Store, H: Hook, C: Scheduler>(
    services: &Services<S, H>,
    scheduler: &C,
    id: &str,
) -> Result<FannedOut, FanOutError> {
    let at_ms = unix_millis(services.clock.now());
    let ended = end_canceled(&services.store, id, at_ms).await?;
    if let Err(error) = scheduler.cancel(&schedule_name(id)).await {
        // Its job, when it comes, finds the message ended.
        warn!(%error, %id, "canceled, but its schedule could not be removed");
    }
    Ok(FannedOut {
        canceled: usize::from(ended),
        done: usize::from(!ended),
        ..FannedOut::default()
    })
}

/// Ends a message `CANCELED` unless it has left; whether this did it.
async fn end_canceled<S: MessageStore>(
    store: &S,
    id: &str,
    at_ms: u64,
) -> Result<bool, StoreError> {
    let result = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new(CANCELED, Some("its batch was canceled".into())),
    };
    let finish = SendFinish {
        id,
        attempt: None,
        result: &result,
        at_ms,
    };
    Ok(store.finish_send(&finish).await? == Finished::Recorded)
}

/// One entry of a fan-out: the message, then its job.
async fn make<S: Store, H: Hook, Q: Queue, C: Scheduler>(
    services: &Services<S, H>,
    lanes: &Lanes<Q>,
    scheduler: &C,
    batch: &BatchRecord,
    entry: &ChunkEntry,
) -> Result<FannedOut, FanOutError> {
    let now_ms = unix_millis(services.clock.now());
    let later = is_later(entry.due_ms, now_ms);
    let message = AcceptedMessage {
        id: entry.job.id.clone(),
        channel: entry.channel.clone(),
        to: entry.job.to.clone(),
        metadata: entry.metadata.clone(),
        caller: batch.caller.clone(),
        at_ms: now_ms,
        status: if later {
            Status::Scheduled
        } else {
            Status::Accepted
        },
        scheduled_at_ms: later.then_some(entry.due_ms),
        batch: Some(BatchRef {
            id: batch.id.clone(),
            index: entry.index,
        }),
        fallback: entry.job.contacts().into_iter().skip(1).collect(),
    };
    let mut did = FannedOut::default();
    match services.store.accept_message(&message).await? {
        Acceptance::New => did.made = 1,
        Acceptance::Existing(state) => {
            // On its way (or ended) already: nothing more to do for it.
            if state.send.is_some() || !matches!(state.status, Status::Accepted | Status::Scheduled)
            {
                did.done = 1;
                return Ok(did);
            }
        }
    }
    if batch.canceled {
        let ended = end_canceled(&services.store, &entry.job.id, now_ms).await?;
        did.canceled = usize::from(ended);
        // Made after its recipient's erasure: what making it wrote of them goes, as the rules
        // would have it when it left.
        for contact in entry.job.contacts() {
            let state = services.store.contact(&contact).await?;
            if state
                .erased_at_ms
                .is_some_and(|erased| batch.created_at_ms <= erased)
            {
                services
                    .store
                    .strip_recipient(&entry.job.id, now_ms)
                    .await?;
                break;
            }
        }
        return Ok(did);
    }
    let body = serde_json::to_string(&entry.job).map_err(|e| FanOutError::Bad(e.to_string()))?;
    let due = Due {
        name: schedule_name(&entry.job.id),
        at_ms: entry.due_ms,
        lane: entry.job.lane,
        envelope: Envelope::job(SEND_JOB, body, SystemTime::now()),
    };
    dispatch(lanes, scheduler, &due, now_ms, DISPATCH_TIMEOUT)
        .await
        .map_err(FanOutError::Dispatch)?;
    if later {
        did.scheduled = 1;
    } else {
        did.queued = 1;
    }
    Ok(did)
}
