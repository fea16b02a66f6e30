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
    /// Records handled, by callback kind (duplicates of claimed callbacks not included; a repeat
    /// of a report that goes unclaimed is handled again, and changes nothing).
    pub processed: BTreeMap<String, u64>,
    /// Records acknowledged as duplicates of work already done (claimed callbacks only).
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
    /// Each function's invocations as Lambda would bill them (`receiver`, `api`, `worker`,
    /// `publisher`): one per request or per event source batch.
    pub invocations: BTreeMap<String, Invocations>,
}

/// A function's invocations and their duration, as Lambda bills it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Invocations {
    /// How many.
    pub count: u64,
    /// Their billed duration: each rounded up to the millisecond.
    pub billed_ms: u64,
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
    /// Sends that left for Sinch, per second they left (Unix s), the last [`RATE_WINDOW_S`]
    /// seconds.
    sends: BTreeMap<u64, u64>,
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
                    let left_at_ms = match handled {
                        Handled::Outbound { left_at_ms, .. }
                        | Handled::Inbound {
                            reply: ReplyOutcome::Sent { left_at_ms, .. },
                            ..
                        } => *left_at_ms,
                        _ => None,
                    };
                    // In the second it left, not the second its batch finished.
                    if let Some(left_at_ms) = left_at_ms {
                        let now = unix_seconds();
                        *inner.sends.entry(left_at_ms / 1000).or_default() += 1;
                        inner.sends.retain(|second, _| second + RATE_WINDOW_S > now);
                    }
                    let status = &mut inner.status;
                    match handled {
                        Handled::Inbound {
                            reply:
                                ReplyOutcome::Sent {
                                    left_at_ms: Some(_),
                                    ..
                                },
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

    /// One invocation of `function` that took `elapsed`.
    pub fn invoked(&self, function: &str, elapsed: std::time::Duration) {
        let billed_ms = u64::try_from(elapsed.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
        self.with(|inner| {
            let invocations = inner
                .status
                .invocations
                .entry(function.to_owned())
                .or_default();
            invocations.count += 1;
            invocations.billed_ms = invocations.billed_ms.saturating_add(billed_ms);
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

    /// Sends that left for Sinch in each of the last [`RATE_WINDOW_S`] seconds, oldest first (the
    /// current second last, still counting). Each is counted in the second its request left,
    /// once its record is handled: a second's count may still grow while its batch finishes,
    /// never past what left in it.
    pub fn send_rate(&self) -> Vec<u64> {
        let now = unix_seconds();
        self.with(|inner| {
            (0..RATE_WINDOW_S)
                .rev()
                .map(|ago| inner.sends.get(&(now - ago)).copied().unwrap_or(0))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(left_at_ms: Option<u64>) -> RecordOutcome {
        RecordOutcome::Handled {
            kind: "outbound".into(),
            handled: Handled::Outbound {
                id: "msg".into(),
                sinch_id: None,
                left_at_ms,
            },
        }
    }

    #[test]
    fn a_send_counts_in_the_second_it_left_not_when_its_batch_ended() {
        let stats = Stats::default();
        let now_ms = unix_seconds() * 1000;
        // A batch of ten whose sends left over the two seconds before this one, recorded now.
        for k in 0..10 {
            stats.record(&sent(Some(now_ms - 2000 + k * 200)));
        }
        // Resumed: an earlier attempt sent it, nothing left now.
        stats.record(&sent(None));
        let rate = stats.send_rate();
        assert_eq!(rate.len(), RATE_WINDOW_S as usize);
        // Five in each of those two seconds (wherever the clock's second now falls).
        assert!(rate.windows(2).any(|w| w == [5, 5]), "{rate:?}");
        assert_eq!(rate.iter().sum::<u64>(), 10);
    }

    #[test]
    fn sends_older_than_the_window_are_dropped() {
        let stats = Stats::default();
        let now_ms = unix_seconds() * 1000;
        stats.record(&sent(Some(now_ms - RATE_WINDOW_S * 1000 - 1000)));
        stats.record(&sent(Some(now_ms)));
        assert_eq!(stats.send_rate().iter().sum::<u64>(), 1);
        assert_eq!(stats.with(|inner| inner.sends.len()), 1);
    }
}
