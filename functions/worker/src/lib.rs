//! The worker Lambda: takes SQS batches of accepted callbacks and runs the handlers.
//!
//! Per batch, every record is processed independently and concurrently (up to
//! `WORKER_CONCURRENCY` at once), each in its own task, so a panic in one record fails that
//! record only. The answer is an `SqsBatchResponse` listing exactly the records to retry:
//!
//! | record outcome | answer to SQS | side effect |
//! |---|---|---|
//! | handled | acked | status / inbound message / reply recorded |
//! | a kind without a handler (contact events, opt-in results, ...) or unknown to this version | acked | logged with its kind |
//! | transient failure (Sinch 429/5xx/network, state store unavailable) | in `batchItemFailures` | SQS delivers it again; the queue's redrive policy parks it in the DLQ after N receives |
//! | permanent failure (not a Sinch callback, two trigger keys in one body, Sinch 4xx) | acked | sent to the DLQ with `dead-letter-reason` (`unparseable_payload`, `ambiguous_payload`, `sinch_rejected`, `bad_envelope`) and `dead-letter-detail` |
//! | permanent failure and the DLQ unreachable | in `batchItemFailures` | nothing is acked that is not stored somewhere |
//! | panic in a handler | in `batchItemFailures` | logged; the other records are unaffected |
//!
//! The same worker runs the sends of the messages API from the outbound queue (records with the
//! `job` attribute `send`, see `pipeline::jobs`):
//!
//! | send outcome | answer | side effect |
//! |---|---|---|
//! | Sinch took it (now, or before: the ledger knew) | acked | `SENT` with Sinch's id |
//! | Sinch refused it (4xx) | acked | `FAILED` with Sinch's reason |
//! | the recipient opted out, or WhatsApp's window closed, when it was about to leave | acked | `FAILED` with `recipient_opted_out` / `whatsapp_window_closed`, never sent |
//! | transient (429/5xx, no connection, store, outcome unknown) | `batchItemFailures` | retried; on the last receive a send Sinch never took is `FAILED` (`RETRIES_EXHAUSTED`), one that may have reached it `UNKNOWN` (`SEND_OUTCOME_UNKNOWN`), and the queue parks the job (`pipeline::handlers::outbound`) |
//! | no send slot before the invocation ends (the lane's backlog is longer: [`pipeline::pacing`]) | acked | queued again on its lane, due [`DEFER_BY`] later, as a new message: waiting spends none of the queue's receives |
//! | a batch's `fan_out` / `cancel_batch` job (`pipeline::handlers::fan_out`) | acked when every entry is done; else `batchItemFailures` | the chunk's messages made and queued, or ended `CANCELED` |
//! | not a job of this version | acked | dead-lettered as `bad_job` |
//!
//! [`handle_batch`] is a plain async function over its dependencies; [`run`] wires it to the
//! Lambda runtime, and [`lambda::run_with`] is the whole Lambda (configuration, clients), with
//! the hook you give it ([`pipeline::hook`]).

#![warn(missing_docs)]

pub mod config;
pub mod lambda;
pub mod wiring;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{LambdaEvent, service_fn};
use pipeline::clock::unix_millis;
use pipeline::envelope::{Envelope, EnvelopeError};
use pipeline::handlers::{Handled, ReplyOutcome, Services};
use pipeline::handlers::{fan_out, outbound};
use pipeline::hook::Hook;
use pipeline::jobs;
use pipeline::ledger::SendError;
use pipeline::metrics::{Metric, Metrics, cold_start};
use pipeline::process::{self, BAD_ENVELOPE, Failure, SINCH_REJECTED};
use pipeline::queue::Queue;
use pipeline::reply::ReplyPolicy;
use pipeline::schedule::{Lanes, MemoryScheduler, ScheduledJob, Scheduler};
use pipeline::store::DeadLetter;
use pipeline::store::Store;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

pub use config::WorkerConfig;

/// Time kept back from the Lambda deadline for dead-lettering and answering.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(1500);

/// The worker's dependencies, built once per cold start.
#[derive(Debug)]
pub struct Worker<S, Q, H = ReplyPolicy, C = MemoryScheduler> {
    /// What the handlers use.
    pub services: Services<S, H>,
    /// The dead-letter queue.
    pub dead_letters: Q,
    /// Where a batch's send jobs go: the lanes' queues, or the scheduler when they are due later.
    pub lanes: Lanes<Q>,
    /// Takes jobs due later to their lane at their time.
    pub scheduler: C,
    /// How many records of a batch are handled at once.
    pub concurrency: usize,
    /// EMF metrics (off in tests and the local stack).
    pub metrics: Metrics,
    /// The outbound queue's `maxReceiveCount`: on that receive, a send that keeps failing is
    /// marked FAILED before the queue parks it.
    pub outbound_max_receives: u32,
    /// Whether the state store failed lately: batches then go one record at a time.
    pub store_health: StoreHealth,
}

/// How long after a failure of the state store the worker stays careful, before jitter.
pub const STORE_COOL_DOWN: Duration = Duration::from_secs(2);

/// The state store's health as this process saw it last: after a failure, for
/// [`STORE_COOL_DOWN`] (with up to as much again of jitter, so that many workers do not come
/// back at once), records go one at a time, and once one of a batch fails on the store the
/// rest of that batch is not tried (it would only wait on the same store) and goes back to the
/// queue at once. A record that succeeds ends the cool-down.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Unix ms until which the worker is careful; 0 when healthy.
    careful_until_ms: std::sync::atomic::AtomicU64,
}

impl StoreHealth {
    fn now_ms() -> u64 {
        unix_millis(std::time::SystemTime::now())
    }

    /// Whether the store failed within the cool-down.
    pub fn careful(&self) -> bool {
        self.careful_until_ms.load(Ordering::Relaxed) > Self::now_ms()
    }

    fn failed(&self) {
        let cool_down = u64::try_from(STORE_COOL_DOWN.as_millis()).unwrap_or(u64::MAX);
        // Jitter from the clock's low bits: no randomness to seed, spread enough.
        let jitter = Self::now_ms().wrapping_mul(2_654_435_761) % cool_down.max(1);
        self.careful_until_ms
            .store(Self::now_ms() + cool_down + jitter, Ordering::Relaxed);
    }

    fn succeeded(&self) {
        self.careful_until_ms.store(0, Ordering::Relaxed);
    }
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Done: acked.
    Handled {
        /// The callback's or job's kind.
        kind: String,
        /// What the handler did.
        handled: Handled,
    },
    /// Permanently failed and parked in the DLQ: acked.
    DeadLettered {
        /// The dead-letter reason code.
        reason: &'static str,
    },
    /// To be delivered again: reported in `batchItemFailures`.
    Retry {
        /// Why, for the log.
        detail: String,
    },
}

/// A batch whose failures cannot be reported record by record.
#[derive(Debug, thiserror::Error)]
#[error("{0} failed record(s) have no message id; the whole batch must be retried")]
pub struct UnidentifiedFailures(usize);

/// Processes one SQS batch; the response lists the records SQS must deliver again.
pub async fn handle_batch<S, Q, H, C>(
    worker: Arc<Worker<S, Q, H, C>>,
    event: SqsEvent,
    deadline: Instant,
) -> Result<SqsBatchResponse, UnidentifiedFailures>
where
    S: Store + 'static,
    Q: Queue + 'static,
    H: Hook,
    C: Scheduler + 'static,
{
    batch_response(&process_batch(worker, event, deadline).await)
}

/// The answer to SQS for these outcomes: every record to retry, by message id.
pub fn batch_response(
    outcomes: &[(Option<String>, RecordOutcome)],
) -> Result<SqsBatchResponse, UnidentifiedFailures> {
    let mut response = SqsBatchResponse::default();
    let mut unidentified = 0;
    for (message_id, outcome) in outcomes {
        if let RecordOutcome::Retry { .. } = outcome {
            // An empty or unknown id would make Lambda fail the whole batch anyway; say so.
            match message_id.as_deref().filter(|id| !id.is_empty()) {
                Some(id) => response.add_failure(id),
                None => unidentified += 1,
            }
        }
    }
    if unidentified > 0 {
        return Err(UnidentifiedFailures(unidentified));
    }
    Ok(response)
}

/// Every record's outcome, keyed by its message id (in completion order).
pub async fn process_batch<S, Q, H, C>(
    worker: Arc<Worker<S, Q, H, C>>,
    event: SqsEvent,
    deadline: Instant,
) -> Vec<(Option<String>, RecordOutcome)>
where
    S: Store + 'static,
    Q: Queue + 'static,
    H: Hook,
    C: Scheduler + 'static,
{
    // After a store failure, one record at a time (see `StoreHealth`).
    let concurrency = if worker.store_health.careful() {
        1
    } else {
        worker.concurrency.max(1)
    };
    let limit = Arc::new(Semaphore::new(concurrency));
    let store_down = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    let mut ids = HashMap::new();
    for record in event.records {
        let message_id = record.message_id.clone();
        let worker = worker.clone();
        let limit = limit.clone();
        let store_down = store_down.clone();
        let task = tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits for a free slot.
            let _slot = limit.acquire_owned().await.ok();
            if store_down.load(Ordering::Relaxed) {
                return RecordOutcome::Retry {
                    detail: "not tried: the state store failed for another record of this batch"
                        .to_owned(),
                };
            }
            let (outcome, store_failed) = judged_record(&worker, record, deadline).await;
            if store_failed {
                store_down.store(true, Ordering::Relaxed);
                worker.store_health.failed();
            } else if !matches!(outcome, RecordOutcome::Retry { .. }) {
                worker.store_health.succeeded();
            }
            outcome
        });
        ids.insert(task.id(), message_id);
    }
    let mut outcomes = Vec::with_capacity(ids.len());
    while let Some(joined) = tasks.join_next_with_id().await {
        let (task_id, outcome) = match joined {
            Ok((task_id, outcome)) => (task_id, outcome),
            Err(join_error) => {
                let detail = if join_error.is_panic() {
                    "the handler panicked".to_owned()
                } else {
                    join_error.to_string()
                };
                let message_id = ids.get(&join_error.id()).cloned().flatten();
                error!(message_id = message_id.as_deref().unwrap_or(""), %detail, "record failed");
                (join_error.id(), RecordOutcome::Retry { detail })
            }
        };
        outcomes.push((ids.remove(&task_id).flatten(), outcome));
    }
    outcomes
}

/// One record, start to finish. Never panics on bad input; a panic in a handler is caught by
/// the task around it.
pub async fn process_record<S: Store, Q: Queue, H: Hook, C: Scheduler>(
    worker: &Worker<S, Q, H, C>,
    record: SqsMessage,
    deadline: Instant,
) -> RecordOutcome {
    judged_record(worker, record, deadline).await.0
}

/// One record, and whether it failed on the state store.
async fn judged_record<S: Store, Q: Queue, H: Hook, C: Scheduler>(
    worker: &Worker<S, Q, H, C>,
    record: SqsMessage,
    deadline: Instant,
) -> (RecordOutcome, bool) {
    let started = Instant::now();
    let message_id = record.message_id.clone().unwrap_or_default();
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .cloned()
        .unwrap_or_default();
    let (envelope, failure) = match read_envelope(&record) {
        Ok(envelope) if envelope.job.as_deref() == Some(jobs::SEND_JOB) => {
            let receives = receive_count.parse().unwrap_or(1);
            match send_job(worker, &envelope, receives, deadline).await {
                Ok(handled) => {
                    let kind = "outbound.send".to_owned();
                    count_handled(&worker.metrics, &kind, &handled);
                    info!(%message_id, ?handled, elapsed_us = started.elapsed().as_micros() as u64, outcome = "handled", "send processed");
                    return (RecordOutcome::Handled { kind, handled }, false);
                }
                Err(failure) => (envelope, failure),
            }
        }
        Ok(envelope)
            if matches!(
                envelope.job.as_deref(),
                Some(jobs::FAN_OUT_JOB | jobs::CANCEL_BATCH_JOB)
            ) =>
        {
            match batch_job(worker, &envelope, deadline).await {
                Ok(handled) => {
                    let kind = format!("batch.{}", envelope.job.as_deref().unwrap_or_default());
                    info!(%message_id, ?handled, elapsed_us = started.elapsed().as_micros() as u64, outcome = "handled", "batch job processed");
                    return (RecordOutcome::Handled { kind, handled }, false);
                }
                Err(failure) => (envelope, failure),
            }
        }
        Ok(envelope) => match process::process(&worker.services, &envelope, deadline).await {
            Ok((callback, handled)) => {
                let kind = callback.kind().into_owned();
                let summary = callback.summary();
                let callback_id = summary.message_id.or(summary.batch_id).unwrap_or_default();
                let elapsed_us = started.elapsed().as_micros() as u64;
                let cold_start = cold_start();
                count_handled(&worker.metrics, &kind, &handled);
                match &handled {
                    Handled::Unknown { kind: detail } => warn!(
                        %message_id, kind = %detail, elapsed_us, cold_start,
                        "unknown callback kind: logged and acknowledged"
                    ),
                    Handled::Ignored { .. } => info!(
                        %message_id, %kind, %callback_id, elapsed_us, cold_start,
                        "no handler for this kind: acknowledged"
                    ),
                    Handled::Duplicate { key, .. } => info!(
                        %message_id, %kind, %callback_id, key = pipeline::idempotency::for_logs(key), elapsed_us, cold_start,
                        outcome = "duplicate", "already handled: acknowledged without effects"
                    ),
                    // Each status is at INFO already, by its handler, with the message it moved
                    // (a line a report, the most common record: CloudWatch Logs bills the bytes).
                    Handled::Status(_) => debug!(
                        %message_id, %kind, %callback_id, elapsed_us, cold_start,
                        outcome = "handled", "record processed"
                    ),
                    _ => info!(
                        %message_id, %kind, %callback_id, elapsed_us, cold_start,
                        outcome = "handled", "record processed"
                    ),
                }
                return (RecordOutcome::Handled { kind, handled }, false);
            }
            Err(failure) => (envelope, failure),
        },
        // Not one of ours: keep it exactly as it is for the dead-letter queue.
        Err(error) => (
            Envelope::unverified(record.body.unwrap_or_default()),
            Failure::poison(BAD_ENVELOPE, error),
        ),
    };
    match failure {
        Failure::Transient {
            detail,
            sinch,
            store,
        } => {
            if sinch {
                worker.metrics.count(Metric::ReplyFailed, None);
            }
            warn!(%message_id, %receive_count, %detail, store, outcome = "retry", "transient failure: SQS will deliver it again");
            (RecordOutcome::Retry { detail }, store)
        }
        Failure::Poison { reason, detail } => {
            if reason == SINCH_REJECTED {
                worker.metrics.count(Metric::ReplyFailed, None);
            }
            (
                dead_letter(worker, &message_id, envelope, reason, &detail).await,
                false,
            )
        }
    }
}

/// Runs one send of the messages API.
async fn send_job<S: Store, Q: Queue, H: Hook, C: Scheduler>(
    worker: &Worker<S, Q, H, C>,
    envelope: &Envelope,
    receives: u32,
    deadline: Instant,
) -> Result<Handled, Failure> {
    let body = envelope
        .raw_body()
        .map_err(|e| Failure::poison(BAD_ENVELOPE, e))?;
    let job = jobs::parse(&body).map_err(|e| Failure::poison(BAD_JOB, e))?;
    match outbound::send(&worker.services, &job, deadline).await {
        Ok(sent) => Ok(Handled::Outbound {
            id: job.id,
            sinch_id: sent.sinch_id,
            left_at_ms: sent.left_at_ms,
        }),
        Err(SendError::Refused { id, reason } | SendError::Withheld { id, reason }) => {
            Ok(Handled::OutboundRefused {
                id,
                reason: reason.to_string(),
            })
        }
        // Not its moment (no slot in time, quiet hours), or no time left in this invocation to
        // send: nothing left; it waits its turn again, as a new message of its lane (a receive
        // spent on waiting would bring it closer to the dead-letter queue).
        Err(SendError::Held { until_ms, why, .. }) => {
            defer(worker, envelope, &job, until_ms, &why).await
        }
        Err(SendError::NotSent {
            error: sinch::client::SinchError::OutOfTime { .. },
            ..
        }) => {
            defer(
                worker,
                envelope,
                &job,
                None,
                "no time left in this invocation",
            )
            .await
        }
        Err(SendError::NotConfigured(api)) => Err(Failure::poison(
            SINCH_REJECTED,
            format!("the {api} API has no credentials in the worker"),
        )),
        Err(error) => {
            if receives >= worker.outbound_max_receives {
                match outbound::give_up(&worker.services, &job, &error).await {
                    Ok(outbound::GaveUp::Failed) => {
                        warn!(id = %job.id, %error, "retries spent: the message is FAILED")
                    }
                    Ok(outbound::GaveUp::Parked) => {
                        warn!(id = %job.id, %error, "retries spent, and whether it reached Sinch is not known: the message is UNKNOWN")
                    }
                    Ok(outbound::GaveUp::Nothing) => {}
                    Err(store) => {
                        warn!(id = %job.id, %store, "retries spent, and the message's end could not be recorded: it waits in the dead-letter queue")
                    }
                }
            }
            Err(Failure::Transient {
                detail: error.to_string(),
                sinch: error.sinch().is_some(),
                store: matches!(error, SendError::Store(_)),
            })
        }
    }
}

/// How long a send that found no slot waits before it asks again.
pub const DEFER_BY: Duration = Duration::from_secs(2);

/// Queues a send again on its lane, due at `until_ms` (quiet hours: the message is `SCHEDULED`
/// until then) or [`DEFER_BY`] from now; acked once it is there.
async fn defer<S: Store, Q: Queue, H: Hook, C: Scheduler>(
    worker: &Worker<S, Q, H, C>,
    envelope: &Envelope,
    job: &jobs::OutboundJob,
    until_ms: Option<u64>,
    why: &str,
) -> Result<Handled, Failure> {
    let now_ms = unix_millis(worker.services.clock.now());
    let soon = now_ms + u64::try_from(DEFER_BY.as_millis()).unwrap_or(2000);
    if until_ms.is_some() {
        // Said where the caller looks (only forward: a message further along stays).
        let update = pipeline::store::StatusUpdate {
            key: pipeline::store::MessageKey::Ours(job.id.clone()),
            status: pipeline::status::Status::Scheduled,
            at_ms: now_ms,
            reason: Some(pipeline::store::Reason::new(
                pipeline::send_rules::HELD,
                Some(why.to_owned()),
            )),
            channel: None,
            sinch_id: None,
        };
        if let Err(error) = worker.services.store.record_status(&update).await {
            return Err(Failure::Transient {
                detail: format!("held ({why}), and its SCHEDULED could not be recorded: {error}"),
                sinch: false,
                store: true,
            });
        }
    }
    let due = pipeline::schedule::Due {
        name: format!("defer-{}", job.id),
        at_ms: until_ms.unwrap_or(soon),
        lane: job.lane,
        envelope: envelope.clone(),
    };
    match pipeline::schedule::dispatch(
        &worker.lanes,
        &worker.scheduler,
        &due,
        now_ms,
        Duration::from_secs(5),
    )
    .await
    {
        Ok(()) => {
            info!(id = %job.id, lane = job.lane.as_str(), due_ms = due.at_ms, %why, "not its moment: queued again");
            Ok(Handled::Deferred {
                id: job.id.clone(),
                by: Duration::from_millis(due.at_ms.saturating_sub(now_ms)),
            })
        }
        Err(detail) => Err(Failure::Transient {
            detail: format!("no send slot, and the job could not be queued again: {detail}"),
            sinch: false,
            store: false,
        }),
    }
}

/// Runs a batch's fan-out or cancel job ([`fan_out`]).
async fn batch_job<S: Store, Q: Queue, H: Hook, C: Scheduler>(
    worker: &Worker<S, Q, H, C>,
    envelope: &Envelope,
    deadline: Instant,
) -> Result<Handled, Failure> {
    let body = envelope
        .raw_body()
        .map_err(|e| Failure::poison(BAD_ENVELOPE, e))?;
    let job = fan_out::parse(&body).map_err(|e| Failure::poison(BAD_JOB, e))?;
    let services = &worker.services;
    let done = if envelope.job.as_deref() == Some(jobs::CANCEL_BATCH_JOB) {
        fan_out::cancel(services, &worker.scheduler, &job, deadline).await
    } else {
        fan_out::fan_out(services, &worker.lanes, &worker.scheduler, &job, deadline).await
    };
    match done {
        Ok(done) => Ok(Handled::Batch {
            batch: job.batch,
            chunk: job.chunk,
            made: done.made,
            queued: done.queued + done.scheduled,
            canceled: done.canceled,
        }),
        Err(error) if error.is_transient() => Err(Failure::Transient {
            detail: error.to_string(),
            sinch: false,
            store: matches!(error, fan_out::FanOutError::Store(_)),
        }),
        Err(error) => Err(Failure::poison(BAD_JOB, error)),
    }
}

/// The metrics for a handled record.
fn count_handled(metrics: &Metrics, kind: &str, handled: &Handled) {
    match handled {
        Handled::Duplicate { .. } => metrics.count(Metric::Duplicate, None),
        Handled::Inbound {
            reply: ReplyOutcome::Sent { .. },
            ..
        } => {
            metrics.count(Metric::Processed, Some(("Kind", kind)));
            metrics.count(Metric::ReplySent, None);
        }
        Handled::Outbound {
            left_at_ms: Some(_),
            ..
        } => metrics.count(Metric::MessageSent, None),
        Handled::OutboundRefused { .. } => metrics.count(Metric::MessageFailed, None),
        _ => metrics.count(Metric::Processed, Some(("Kind", kind))),
    }
}

/// Parks a poison message in the DLQ; only once it is stored there is the record acked.
async fn dead_letter<S: Store, Q: Queue, H: Hook, C: Scheduler>(
    worker: &Worker<S, Q, H, C>,
    message_id: &str,
    mut envelope: Envelope,
    reason: &'static str,
    detail: &str,
) -> RecordOutcome {
    // Remembered first, so that its event comes from committed state; a store that cannot take
    // it now makes this a retry (and after the queue's last receive, SQS's own redrive parks
    // it, without an event).
    let dead = DeadLetter {
        message_id: message_id.to_owned(),
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        kind: envelope
            .raw_body()
            .ok()
            .and_then(|body| sinch::callback::parse(&body).ok())
            .map(|callback| callback.kind().into_owned()),
        at_ms: unix_millis(worker.services.clock.now()),
    };
    if let Err(store_error) = worker.services.store.record_dead_letter(&dead).await {
        warn!(%message_id, reason, detail, %store_error, outcome = "retry", "permanent failure, and the state store did not take its record: retrying");
        return RecordOutcome::Retry {
            detail: format!("{reason}: {detail}; {store_error}"),
        };
    }
    envelope.dead_letter(reason, detail);
    match worker.dead_letters.send(&envelope).await {
        Ok(dlq_id) => {
            worker
                .metrics
                .count(Metric::DeadLettered, Some(("Reason", reason)));
            error!(%message_id, reason, detail, dead_letter_id = %dlq_id, outcome = "dead_lettered", "permanent failure: parked in the dead-letter queue");
            RecordOutcome::DeadLettered { reason }
        }
        Err(send_error) => {
            error!(%message_id, reason, detail, %send_error, outcome = "retry", "permanent failure, and the dead-letter queue did not take it: retrying");
            RecordOutcome::Retry {
                detail: format!("{reason}: {detail}; dead-letter queue: {send_error}"),
            }
        }
    }
}

/// The envelope from an SQS record's body and string attributes; a job EventBridge Scheduler
/// delivered (a body only) is unwrapped into the envelope it stands for
/// ([`pipeline::schedule`]).
fn read_envelope(record: &SqsMessage) -> Result<Envelope, EnvelopeError> {
    let attributes = &record.message_attributes;
    if attributes.is_empty()
        && let Some(envelope) = record.body.as_deref().and_then(ScheduledJob::unwrap)
    {
        return Ok(envelope);
    }
    Envelope::from_message(record.body.clone().unwrap_or_default(), |name| {
        attributes
            .get(name)
            .and_then(|attribute| attribute.string_value.as_deref())
    })
}

/// Dead-letter reason: a queued send this version cannot read.
pub const BAD_JOB: &str = "bad_job";

/// Serves batches from the Lambda runtime until it stops.
pub async fn run<S, Q, H, C>(worker: Worker<S, Q, H, C>) -> Result<(), lambda_runtime::Error>
where
    S: Store + 'static,
    Q: Queue + 'static,
    H: Hook,
    C: Scheduler + 'static,
{
    let worker = Arc::new(worker);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move {
            let deadline = pipeline::clock::deadline_from(event.context.deadline, SAFETY_MARGIN);
            handle_batch(worker, event.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
