//! Pacing: sends leave at a configured rate per Sinch API, held across every concurrent worker,
//! with a fast lane.
//!
//! Sinch drains an app's outbound queue first in, first out (about 20 messages/s by default) and
//! an SMS service plan at its own rate: whatever is handed over faster only waits there, in
//! front of everything sent after it. So the pipeline holds its bulk sends itself and hands
//! Sinch no more than the rate.
//!
//! | what | how |
//! |---|---|
//! | the rate | `CONVERSATION_SEND_RATE`, `SMS_SEND_RATE` (messages a second; 0: unpaced). Slots are `1 / (rate × 0.95)` apart: 5 % below the rate absorbs up to about 50 ms of jitter between a slot and the request's arrival. Where the way to Sinch is slower than that now and then, set the rate further under Sinch's (the scale test, on a busy machine, sets 45 against 50); a 429 that still comes is retried |
//! | held across workers | one timeline per API in the store (`pace#conversation`, `pace#sms`): each send takes the next slot with one conditional write, then waits for it |
//! | the fast lane | a transactional send takes the next slot wherever it is; a bulk send only one within [`BULK_HORIZON`] of now, and otherwise waits and asks again: slots beyond the horizon are left to transactional sends, which therefore go ahead of every bulk send still waiting |
//! | a slot past the invocation's time | not taken: the record goes back to its queue |
//!
//! The SMS API's rate is counted per recipient; our SMS sends have one recipient each, so a
//! send is a slot.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::schedule::Lane;
use crate::store::{CounterStore, Slot, StoreError};

/// How far ahead of now a bulk send may take a slot.
pub const BULK_HORIZON: Duration = Duration::from_millis(250);

/// The share of the configured rate the pacer uses.
pub const RATE_MARGIN: f64 = 0.95;

/// Which Sinch API a send goes through: each has its own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Conversation `messages:send` (the app's outbound queue).
    Conversation,
    /// The SMS API (the service plan's rate).
    Sms,
}

impl Api {
    /// The store's timeline for it.
    pub fn timeline(self) -> &'static str {
        match self {
            Api::Conversation => "conversation",
            Api::Sms => "sms",
        }
    }
}

/// The configured rates, and this process's gate for bulk sends.
#[derive(Debug, Clone, Default)]
pub struct Pacing {
    /// Conversation API messages a second (`None`: unpaced).
    pub conversation_rate: Option<f64>,
    /// SMS API messages a second (`None`: unpaced).
    pub sms_rate: Option<f64>,
    /// One bulk send of this process at a time asks the store for a slot; the others wait
    /// here, not on the store.
    bulk_gate: Arc<tokio::sync::Mutex<()>>,
}

impl PartialEq for Pacing {
    fn eq(&self, other: &Self) -> bool {
        self.conversation_rate == other.conversation_rate && self.sms_rate == other.sms_rate
    }
}

/// Why a send cannot have its slot now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaceError {
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No slot before the invocation must end: the record goes back to its queue.
    #[error("no send slot before the invocation's deadline")]
    OutOfTime,
}

/// Conversation API messages a second (the variable and the template parameter).
pub const CONVERSATION_SEND_RATE: &str = "CONVERSATION_SEND_RATE";
/// SMS API messages a second.
pub const SMS_SEND_RATE: &str = "SMS_SEND_RATE";
/// Both, unless set: a Conversation app's outbound queue drains at about 20 a second by default.
pub const DEFAULT_SEND_RATE: f64 = 20.0;

impl Pacing {
    /// These rates (messages a second; `None`: unpaced).
    pub fn new(conversation_rate: Option<f64>, sms_rate: Option<f64>) -> Self {
        Self {
            conversation_rate,
            sms_rate,
            bulk_gate: Arc::default(),
        }
    }

    /// The rates from `CONVERSATION_SEND_RATE` and `SMS_SEND_RATE` (messages a second, up to
    /// 10,000; `0`: unpaced), [`DEFAULT_SEND_RATE`] when unset.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &crate::config::Env<F>,
    ) -> Result<Self, crate::config::ConfigError> {
        let rate = |name: &'static str| -> Result<Option<f64>, crate::config::ConfigError> {
            let Some(text) = env.optional(name) else {
                return Ok(Some(DEFAULT_SEND_RATE));
            };
            match text.parse::<f64>() {
                Ok(0.0) => Ok(None),
                Ok(rate) if (0.01..=10_000.0).contains(&rate) => Ok(Some(rate)),
                _ => Err(crate::config::ConfigError::new(
                    name,
                    format!("must be messages a second, 0.01 to 10000 (0: unpaced), got {text:?}"),
                )),
            }
        };
        Ok(Self::new(
            rate(CONVERSATION_SEND_RATE)?,
            rate(SMS_SEND_RATE)?,
        ))
    }

    /// The time between two slots on `api`, if it is paced.
    pub fn interval(&self, api: Api) -> Option<Duration> {
        let rate = match api {
            Api::Conversation => self.conversation_rate,
            Api::Sms => self.sms_rate,
        }?;
        (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / (rate * RATE_MARGIN)))
    }

    /// Waits for this send's slot on `api` (at once when unpaced), never past `deadline`.
    pub async fn wait_for_slot<S: CounterStore>(
        &self,
        store: &S,
        api: Api,
        lane: Lane,
        deadline: Instant,
    ) -> Result<(), PaceError> {
        let Some(interval) = self.interval(api) else {
            return Ok(());
        };
        let interval_us = u64::try_from(interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let horizon_us = u64::try_from(BULK_HORIZON.as_micros()).unwrap_or(u64::MAX);
        // A bulk send waits its turn in this process first: one asks the store at a time.
        let _turn = match lane {
            Lane::Transactional => None,
            Lane::Bulk => Some(
                tokio::time::timeout_at(deadline, self.bulk_gate.lock())
                    .await
                    .map_err(|_| PaceError::OutOfTime)?,
            ),
        };
        loop {
            let now_us = now_us();
            let remaining_us = u64::try_from(
                deadline
                    .saturating_duration_since(Instant::now())
                    .as_micros(),
            )
            .unwrap_or(u64::MAX);
            // A transactional slot no further than the time left; a bulk one within its horizon.
            let horizon = match lane {
                Lane::Transactional => remaining_us,
                Lane::Bulk => horizon_us.min(remaining_us),
            };
            match store
                .take_slot(api.timeline(), interval_us, now_us, Some(horizon))
                .await?
            {
                Slot::Taken(slot_us) => {
                    drop(_turn);
                    // The timer's grain is a millisecond: a slot closer than that is now.
                    let wait = Duration::from_micros(slot_us.saturating_sub(now_us));
                    if wait >= Duration::from_millis(1) {
                        tokio::time::sleep(wait).await;
                    }
                    return Ok(());
                }
                Slot::Busy { .. } if remaining_us <= horizon_us => {
                    return Err(PaceError::OutOfTime);
                }
                // Further ahead than this lane may take: ask again when it is within reach
                // (at least a slot's time from now, so the store is asked at most at the rate).
                Slot::Busy { next_us } => {
                    let reach = next_us.saturating_sub(now_us).saturating_sub(horizon);
                    let wait = Duration::from_micros(reach.max(interval_us));
                    if Instant::now() + wait >= deadline {
                        return Err(PaceError::OutOfTime);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CounterStore, MemoryStore};

    #[test]
    fn slots_are_a_little_further_apart_than_the_rate() {
        let pacing = Pacing::new(Some(50.0), None);
        let interval = pacing.interval(Api::Conversation).unwrap();
        assert!(interval > Duration::from_millis(20) && interval < Duration::from_millis(22));
        assert_eq!(pacing.interval(Api::Sms), None);
    }

    #[tokio::test]
    async fn a_bulk_send_leaves_the_slots_beyond_its_horizon_to_the_fast_lane() {
        let store = MemoryStore::new();
        let interval_us = 100_000; // 10 a second
        let now = 1_000_000_000;
        // Bulk takes the slots within 250 ms: now, +100 ms, +200 ms; not +300 ms.
        let mut bulk = Vec::new();
        for _ in 0..4 {
            bulk.push(
                store
                    .take_slot("t", interval_us, now, Some(250_000))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(
            bulk,
            [
                Slot::Taken(now),
                Slot::Taken(now + 100_000),
                Slot::Taken(now + 200_000),
                Slot::Busy {
                    next_us: now + 300_000
                }
            ]
        );
        // A transactional send takes the next one, wherever it is.
        assert_eq!(
            store.take_slot("t", interval_us, now, None).await.unwrap(),
            Slot::Taken(now + 300_000)
        );
        // Idle later: the slot is now.
        let later = now + 10_000_000;
        assert_eq!(
            store
                .take_slot("t", interval_us, later, None)
                .await
                .unwrap(),
            Slot::Taken(later)
        );
    }
}
