//! What the local stack has done, for the status page, `/status`, the demo and the tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use pipeline::handlers::{Handled, ReplyOutcome};
use pipeline::store::StatusChange;
use serde::Serialize;
use worker::RecordOutcome;

/// A snapshot; the queue depths are filled in by whoever knows the queues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Callbacks the receiver accepted (200).
    pub accepted: u64,
    /// Requests refused, by reason (`signature_mismatch`, `stale_signature`, ...).
    pub rejected: BTreeMap<String, u64>,
    /// Messages waiting in the queue, and received but not yet deleted.
    pub queue_visible: u64,
    /// Messages received and not yet deleted.
    pub queue_in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dead_letter_queue: u64,
    /// Sends of the messages API waiting or in flight, and parked.
    pub outbound_queue: u64,
    /// Sends parked in the fast lane's dead-letter queue.
    pub outbound_dead_letter_queue: u64,
    /// The bulk lane's sends and fan-outs waiting or in flight, and parked.
    pub bulk_queue: u64,
    /// Sends and fan-outs parked in the bulk lane's dead-letter queue.
    pub bulk_dead_letter_queue: u64,
    /// Jobs held by the scheduler until their time.
    pub scheduled: u64,
    /// Records handled, by callback kind (duplicates not included).
    pub processed: BTreeMap<String, u64>,
    /// Records acknowledged as duplicates of work already done.
    pub duplicates: u64,
    /// Records failed for a retry (transient errors, claims in progress elsewhere).
    pub retried: u64,
    /// Records parked in the dead-letter queue by the worker, by reason.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Replies sent, counted where they land: the Sinch simulator's log (with real Sinch, the
    /// worker's count of replies it sent).
    pub replies_sent: u64,
    /// Messages the simulator received more than one send for (same reference): must stay 0.
    pub replies_duplicated: u64,
    /// Sends the simulator answered 429 (`--simulator-rate`): with pacing at or below its rate,
    /// none.
    pub sinch_throttled: u64,
    /// Messages by their current delivery status.
    pub message_statuses: BTreeMap<String, u64>,
    /// Events made from committed changes, by detail-type.
    pub events: BTreeMap<String, u64>,
    /// Events that `--events-to` or `--events-file` could not take.
    pub events_not_forwarded: u64,
}

impl Status {
    /// Records handled once each, over all kinds.
    pub fn processed_total(&self) -> u64 {
        self.processed.values().sum()
    }
}

#[derive(Debug, Default)]
struct Inner {
    status: Status,
    /// Message key -> current status.
    messages: BTreeMap<String, String>,
    /// Sends that reached Sinch, per second (Unix s), the last [`RATE_WINDOW_S`] seconds.
    sends: std::collections::VecDeque<(u64, u64)>,
}

/// Seconds of send counts kept for the console's chart.
pub const RATE_WINDOW_S: u64 = 60;

/// Counters shared by the receiver, the event source and the status page.
#[derive(Debug, Default)]
pub struct Stats(Mutex<Inner>);

impl Stats {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// One receiver answer: `reason` is the outcome's reason code.
    pub fn answered(&self, accepted: bool, reason: &str) {
        self.with(|inner| {
            if accepted {
                inner.status.accepted += 1;
            } else {
                *inner.status.rejected.entry(reason.to_owned()).or_default() += 1;
            }
        });
    }

    /// Records the outcome of one record.
    pub fn record(&self, outcome: &RecordOutcome) {
        self.with(|inner| {
            let status = &mut inner.status;
            match outcome {
                RecordOutcome::Handled {
                    handled: Handled::Duplicate { .. },
                    ..
                } => status.duplicates += 1,
                RecordOutcome::Handled { kind, handled } => {
                    *status.processed.entry(kind.clone()).or_default() += 1;
                    if matches!(
                        handled,
                        Handled::Outbound { resumed: false, .. }
                            | Handled::Inbound {
                                reply: ReplyOutcome::Sent { resumed: false, .. },
                                ..
                            }
                    ) {
                        let now = unix_seconds();
                        match inner.sends.back_mut() {
                            Some((second, count)) if *second == now => *count += 1,
                            _ => inner.sends.push_back((now, 1)),
                        }
                        while inner
                            .sends
                            .front()
                            .is_some_and(|(second, _)| *second + RATE_WINDOW_S <= now)
                        {
                            inner.sends.pop_front();
                        }
                    }
                    let status = &mut inner.status;
                    match handled {
                        Handled::Inbound {
                            reply: ReplyOutcome::Sent { resumed: false, .. },
                            ..
                        } => status.replies_sent += 1,
                        Handled::Status(changes) => {
                            for (key, change) in changes {
                                let now = match change {
                                    StatusChange::Created { status }
                                    | StatusChange::Kept { status } => status,
                                    StatusChange::Advanced { to, .. } => to,
                                };
                                inner.messages.insert(key.to_string(), now.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                RecordOutcome::DeadLettered { reason } => {
                    *status
                        .dead_lettered
                        .entry((*reason).to_owned())
                        .or_default() += 1
                }
                RecordOutcome::Retry { .. } => status.retried += 1,
            }
        });
    }

    /// One event made.
    pub fn event(&self, detail_type: &str) {
        self.with(|inner| {
            *inner
                .status
                .events
                .entry(detail_type.to_owned())
                .or_default() += 1
        });
    }

    /// Events a consumer or file did not take.
    pub fn events_not_forwarded(&self, count: u64) {
        self.with(|inner| inner.status.events_not_forwarded += count);
    }

    /// A message moved to the dead-letter queue by the queue itself (too many receives).
    pub fn redriven(&self) {
        self.with(|inner| {
            *inner
                .status
                .dead_lettered
                .entry("max_receive_count_exceeded".to_owned())
                .or_default() += 1
        });
    }

    /// The counts now.
    pub fn snapshot(&self) -> Status {
        self.with(|inner| {
            let mut status = inner.status.clone();
            status.message_statuses.clear();
            for current in inner.messages.values() {
                *status.message_statuses.entry(current.clone()).or_default() += 1;
            }
            status
        })
    }

    /// Sends that reached Sinch in each of the last [`RATE_WINDOW_S`] seconds, oldest first (the
    /// current second last, still counting).
    pub fn send_rate(&self) -> Vec<u64> {
        let now = unix_seconds();
        self.with(|inner| {
            (0..RATE_WINDOW_S)
                .rev()
                .map(|ago| {
                    let second = now - ago;
                    inner
                        .sends
                        .iter()
                        .find(|(s, _)| *s == second)
                        .map_or(0, |(_, n)| *n)
                })
                .collect()
        })
    }

    /// The current status of each message, by key.
    pub fn messages(&self) -> BTreeMap<String, String> {
        self.with(|inner| inner.messages.clone())
    }
}

fn unix_seconds() -> u64 {
    pipeline::clock::unix_millis(std::time::SystemTime::now()) / 1000
}
