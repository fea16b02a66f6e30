//! Send once: a message Sinch accepted is never sent again, whatever fails around the send.
//!
//! Neither Sinch send API takes an idempotency key, so a send retried after a failure can reach
//! the phone twice. Every send of ours (a reply; a message of the messages API) therefore goes
//! through [`Ledger::send`], which keeps a small ledger on the message's own item in the store,
//! keyed by our deterministic id (a reply's id comes from the inbound message it answers):
//!
//! 1. **Its turn.** It waits for its pacing slot ([`crate::pacing`]) with nothing on record:
//!    while it waits it is still only `ACCEPTED`, so a cancel, an opt-out or an erasure that
//!    comes meanwhile is seen by what follows. No slot in time: [`SendError::Held`], back to
//!    its queue.
//! 2. **The attempt on record**: one conditional write (`SENDING`, a fresh attempt token, the
//!    time). It succeeds only when no earlier attempt settles the send and the message has not
//!    ended (canceled, erased, failed).
//! 3. **The rules, again** ([`crate::send_rules::Verdict`]): opt-out, WhatsApp's window, the country
//!    list, a canceled batch, the expiry and quiet hours, read from the store now, after the
//!    slot, just before the request leaves; nothing slow comes between them and the request. A
//!    send they forbid ends with the rule's code ([`SendError::Withheld`]) and never leaves; one
//!    they hold (quiet hours) withdraws its attempt and waits ([`SendError::Held`]).
//! 4. **The send**, with our id in `correlation_id` and `message_metadata` (Conversation) or
//!    `client_reference` (SMS), so every delivery report names the message it belongs to. One
//!    request: a 429 or 5xx is retried by the caller through all of this again, a slot each.
//! 5. **After the answer**, a second write records it: `SENT` with Sinch's id, or `FAILED` with
//!    Sinch's reason. It is fenced on the attempt: an outcome is recorded only while the ledger
//!    is still at the attempt it belongs to.
//!
//! What a retry finds, and does:
//!
//! | found | meaning | what happens |
//! |---|---|---|
//! | nothing | never tried | record the attempt, send |
//! | `SENT`, or Sinch's id put there by a delivery report | Sinch has it | finish the bookkeeping; no send |
//! | `FAILED` | Sinch refused it for good | the same refusal; no send |
//! | `SENDING`, and this process saw Sinch accept it (the write after the send failed) | Sinch has it | record `SENT` from this process's memory; no send |
//! | `SENDING`, an attempt this process knows never reached Sinch (429, 5xx, no connection, or the attempt write itself failed) | not sent | take it over at once and send |
//! | `SENDING`, younger than the settle time ([`DEFAULT_SETTLE_AFTER`]) | outcome unknown: the request may have left and its answer been lost | retry later; a delivery report naming our id settles it as sent |
//! | `SENDING`, older than the settle time, no report | presumed lost | a new attempt, send |
//!
//! Sinch's answers are classified as they bear on "did it take it?": any HTTP answer other than
//! 2xx means no; a 2xx whose body cannot be read means yes (recorded without an id); no
//! connection means no; a connection that broke or timed out after the request was written
//! means unknown, and the client never repeats such a request by itself.
//!
//! The residual risk, in one sentence: a send whose answer was lost (or whose outcome could
//! not be recorded, on another process than the one that sent it) and for which no delivery
//! report arrives within the settle time is sent a second time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sinch::client::SinchError;
use tracing::{info, warn};

use crate::clock::{Clock, unix_millis};
use crate::pacing::PaceError;
use crate::send_rules::{self, Verdict};
use crate::store::{
    Finished, Reason, SendAttempt, SendFinish, SendIntent, SendResult, SendStart, SinchId, Store,
    StoreError,
};

/// How long an attempt whose outcome is unknown waits for a delivery report before it is taken
/// as lost and sent again.
pub const DEFAULT_SETTLE_AFTER: Duration = Duration::from_secs(60);

/// Our references at Sinch: `correlation_id`, `message_metadata` and `client_reference` carry
/// [`reference::PREFIX`] and our id, so reports for our messages are told from reports for
/// messages others sent through the same app.
pub mod reference {
    /// Marks a value as ours.
    pub const PREFIX: &str = "sinch-hooks:";

    /// The value to give Sinch for our message `id`.
    pub fn to_sinch(id: &str) -> String {
        format!("{PREFIX}{id}")
    }

    /// Our message id, if `value` (as Sinch echoes it) names one.
    pub fn ours(value: Option<&str>) -> Option<&str> {
        value?.strip_prefix(PREFIX).filter(|id| !id.is_empty())
    }

    /// Our id for the reply to inbound message `inbound_id`: the same for every retry.
    pub fn reply_id(inbound_id: &str) -> String {
        format!("rpl_{inbound_id}")
    }
}

/// How a send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Sinch's id, when known.
    pub sinch_id: Option<SinchId>,
    /// When this call's request left for Sinch (ms since the epoch); `None` when this call
    /// did not send: an earlier attempt had already reached Sinch, and this call only finished
    /// its bookkeeping.
    pub left_at_ms: Option<u64>,
}

impl Sent {
    /// Whether an earlier attempt had sent it and this call only recorded that.
    pub fn resumed(&self) -> bool {
        self.left_at_ms.is_none()
    }
}

/// Why a send did not happen (yet). [`SendError::is_transient`] decides between a retry and a
/// final failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The store could not record the attempt or its outcome.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sinch refused the message for good (now, or on an earlier attempt).
    #[error("Sinch refused message {id}: {reason}")]
    Refused {
        /// Our message id.
        id: String,
        /// Sinch's reason (or the rule's code).
        reason: Reason,
    },
    /// A sending rule forbade it when it was about to leave (now, or on an earlier attempt):
    /// the recipient opted out, or WhatsApp's window closed. It is `FAILED` with the rule's
    /// code and was never sent.
    #[error("message {id} withheld: {reason}")]
    Withheld {
        /// Our message id.
        id: String,
        /// The rule's code.
        reason: Reason,
    },
    /// Sinch did not take it (429, 5xx, no connection, out of time): safe to send again.
    /// `attempt` is the attempt on record, withdrawn.
    #[error("message {id} not sent: {error}")]
    NotSent {
        /// Our message id.
        id: String,
        /// The attempt's token.
        attempt: String,
        /// What Sinch (or the network) said.
        error: SinchError,
    },
    /// The request may have reached Sinch, and its answer did not come back.
    #[error(
        "message {id}: outcome unknown ({error}); a delivery report or the settle time decides"
    )]
    Unknown {
        /// Our message id.
        id: String,
        /// What broke.
        error: SinchError,
    },
    /// An earlier attempt's outcome is not known yet.
    #[error("message {id}: attempt {attempt} is unsettled until {settles_at_ms} ms")]
    Unsettled {
        /// Our message id.
        id: String,
        /// The attempt on record.
        attempt: String,
        /// When it is taken as lost if no report names it (Unix ms).
        settles_at_ms: u64,
    },
    /// The API needed has no credentials: nothing was sent, nothing will be.
    #[error("the {0} API is not configured")]
    NotConfigured(&'static str),
    /// Not its moment: no send slot came in time, or a rule holds it (quiet hours) until
    /// `until_ms`. Nothing was sent and no attempt stays on record; it waits and is judged again.
    #[error("message {id} held: {why}")]
    Held {
        /// Our message id.
        id: String,
        /// When it may be tried again (Unix ms); `None`: as soon as a slot may come.
        until_ms: Option<u64>,
        /// Why, in words.
        why: String,
    },
}

impl SendError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            SendError::Refused { .. } | SendError::Withheld { .. } | SendError::NotConfigured(_)
        )
    }

    /// The Sinch error behind it, when Sinch (or its silence) was the cause.
    pub fn sinch(&self) -> Option<&SinchError> {
        match self {
            SendError::NotSent { error, .. } | SendError::Unknown { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What this process knows about an attempt that the store may not (its write failed).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// The attempt (by token) never reached Sinch.
    NotSent { attempt: String },
    /// Sinch answered `attempt`; the answer still has to be recorded.
    Answered { attempt: String, result: SendResult },
}

/// Sends through the ledger; one per process, shared (clones share what they know).
#[derive(Debug, Clone)]
pub struct Ledger {
    settle_after: Duration,
    known: Arc<Mutex<HashMap<String, Known>>>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new(DEFAULT_SETTLE_AFTER)
    }
}

impl Ledger {
    /// A ledger that takes an unanswered attempt as lost after `settle_after`.
    pub fn new(settle_after: Duration) -> Self {
        Self {
            settle_after,
            known: Arc::default(),
        }
    }

    /// How long an unanswered attempt waits for a report before it is taken as lost.
    pub fn settle_after(&self) -> Duration {
        self.settle_after
    }

    fn known(&self, id: &str) -> Option<Known> {
        self.lock().get(id).cloned()
    }

    fn remember(&self, id: &str, known: Known) {
        self.lock().insert(id.to_owned(), known);
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        // Every change is one insert or remove: a poisoned map is still consistent.
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends message `id` at most once, at its moment of leaving (see the module docs): `turn`
    /// waits for its slot, then the attempt is recorded, then `send_rules` judge it, then `send` runs,
    /// only when the ledger says no earlier attempt reached Sinch and the rules let it go.
    /// `send` must put our id in the request ([`reference::to_sinch`]) and make one request.
    #[allow(clippy::too_many_arguments)]
    pub async fn send<S, T, TFut, R, RFut, F, Fut>(
        &self,
        store: &S,
        clock: &Clock,
        id: &str,
        intent: &SendIntent,
        turn: T,
        send_rules: R,
        send: F,
    ) -> Result<Sent, SendError>
    where
        S: Store,
        T: FnOnce() -> TFut,
        TFut: Future<Output = Result<(), PaceError>>,
        R: FnOnce() -> RFut,
        RFut: Future<Output = Result<Verdict, StoreError>>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SinchId, SinchError>>,
    {
        let now_ms = unix_millis(clock.now());
        let takeover = match self.known(id) {
            // Sinch answered an earlier attempt of this process: record that, send nothing.
            Some(Known::Answered { attempt, result }) => {
                return self
                    .record(store, id, Some(&attempt), result, now_ms, None)
                    .await;
            }
            Some(Known::NotSent { attempt }) => Some(attempt),
            None => None,
        };
        // Its turn, with nothing on record: whatever happens while it waits is judged below.
        if let Err(error) = turn().await {
            return Err(SendError::Held {
                id: id.to_owned(),
                until_ms: None,
                why: format!("no send slot: {error}"),
            });
        }
        let now_ms = unix_millis(clock.now());
        let attempt = ulid::Ulid::generate().to_string();
        let settle_ms = u64::try_from(self.settle_after.as_millis()).unwrap_or(u64::MAX);
        let request = SendAttempt {
            id,
            attempt: &attempt,
            now_ms,
            settle_before_ms: now_ms.saturating_sub(settle_ms),
            takeover: takeover.as_deref(),
            intent,
        };
        let start = match store.begin_send(&request).await {
            Ok(start) => start,
            Err(error) => {
                // The write may have landed: this attempt is ours to take over, never sent.
                self.remember(id, Known::NotSent { attempt });
                return Err(error.into());
            }
        };
        match start {
            SendStart::Go => {}
            SendStart::Accepted {
                sinch_id,
                recorded: true,
                ..
            } => {
                self.forget(id);
                return Ok(Sent {
                    sinch_id,
                    left_at_ms: None,
                });
            }
            SendStart::Accepted {
                sinch_id,
                recorded: false,
                attempt,
            } => {
                let result = SendResult::Accepted { sinch_id };
                return self
                    .record(store, id, attempt.as_deref(), result, now_ms, None)
                    .await;
            }
            SendStart::Refused { reason } => {
                self.forget(id);
                return Err(refused(id, reason));
            }
            SendStart::Unsettled {
                attempt,
                attempt_at_ms,
            } => {
                return Err(SendError::Unsettled {
                    id: id.to_owned(),
                    attempt,
                    settles_at_ms: attempt_at_ms.saturating_add(settle_ms),
                });
            }
        }

        // The rules, as they stand now that the slot is taken and the attempt is on record.
        match send_rules().await {
            Ok(Verdict::Go) => {}
            Ok(Verdict::Hold { until_ms, why }) => {
                info!(
                    message = id,
                    until_ms, %why, "held at the moment of sending: it waits, nothing sent"
                );
                self.withdraw(store, id, &attempt).await;
                return Err(SendError::Held {
                    id: id.to_owned(),
                    until_ms: Some(until_ms),
                    why,
                });
            }
            Ok(Verdict::Refuse(refusal)) => {
                info!(
                    message = id,
                    code = refusal.code,
                    "withheld at the moment of sending: the message is FAILED, nothing sent"
                );
                let result = if refusal.status == crate::status::Status::Failed {
                    SendResult::Refused {
                        reason: refusal.reason(),
                    }
                } else {
                    SendResult::Ended {
                        status: refusal.status.clone(),
                        reason: refusal.reason(),
                    }
                };
                let recorded = self
                    .record(store, id, Some(&attempt), result, now_ms, None)
                    .await;
                // Written after its recipient's erasure (a reply, a batch's message made from
                // its chunk): what this attempt wrote of them goes too.
                if refusal.code == crate::store::RECIPIENT_ERASED
                    && let Err(error) = store.strip_recipient(id, now_ms).await
                {
                    tracing::warn!(message = id, %error, "stopped by an erasure, but its recipient could not be stripped");
                }
                return recorded;
            }
            Err(error) => {
                self.withdraw(store, id, &attempt).await;
                return Err(error.into());
            }
        }

        let left_at_ms = unix_millis(clock.now());
        let answer = send().await;
        let now_ms = unix_millis(clock.now());
        let result = match answer {
            Ok(sinch_id) => SendResult::Accepted {
                sinch_id: Some(sinch_id),
            },
            // A 2xx we cannot read: Sinch took it.
            Err(SinchError::Decode { .. }) => SendResult::Accepted { sinch_id: None },
            Err(error) if reached_sinch_maybe(&error) => {
                warn!(message = id, %error, attempt, "send outcome unknown: waiting for a delivery report or the settle time");
                return Err(SendError::Unknown {
                    id: id.to_owned(),
                    error,
                });
            }
            Err(SinchError::NotConfigured(api)) => {
                self.withdraw(store, id, &attempt).await;
                return Err(SendError::NotConfigured(api));
            }
            Err(error) if error.is_transient() => {
                self.withdraw(store, id, &attempt).await;
                return Err(SendError::NotSent {
                    id: id.to_owned(),
                    attempt,
                    error,
                });
            }
            Err(error) => SendResult::Refused {
                reason: refusal(&error),
            },
        };
        self.remember(
            id,
            Known::Answered {
                attempt: attempt.clone(),
                result: result.clone(),
            },
        );
        self.record(store, id, Some(&attempt), result, now_ms, Some(left_at_ms))
            .await
    }

    /// Records how `attempt` ended, then forgets it; on a store failure it stays known to this
    /// process so the retry records it without sending. `left_at_ms`: when this call's request
    /// left (`None`: this call sent nothing).
    async fn record<S: Store>(
        &self,
        store: &S,
        id: &str,
        attempt: Option<&str>,
        result: SendResult,
        now_ms: u64,
        left_at_ms: Option<u64>,
    ) -> Result<Sent, SendError> {
        let finish = SendFinish {
            id,
            attempt,
            result: &result,
            at_ms: now_ms,
        };
        match store.finish_send(&finish).await {
            Ok(Finished::Recorded) => {}
            Ok(Finished::Superseded) => {
                // Another attempt holds the ledger now (this one outlived its settle time):
                // its outcome is its own to record.
                warn!(
                    message = id,
                    attempt, "the ledger moved on before this attempt's outcome was recorded"
                );
            }
            Err(error) => {
                if let Some(attempt) = attempt {
                    self.remember(
                        id,
                        Known::Answered {
                            attempt: attempt.to_owned(),
                            result,
                        },
                    );
                }
                warn!(message = id, %error, "the outcome could not be recorded; the retry records it without sending");
                return Err(error.into());
            }
        }
        self.forget(id);
        match result {
            SendResult::Accepted { sinch_id } => {
                if left_at_ms.is_none() {
                    info!(
                        message = id,
                        sinch_id = sinch_id.as_ref().map(SinchId::as_str),
                        "already sent: bookkeeping finished, nothing sent again"
                    );
                }
                Ok(Sent {
                    sinch_id,
                    left_at_ms,
                })
            }
            SendResult::Refused { reason } | SendResult::Ended { reason, .. } => {
                Err(refused(id, reason))
            }
        }
    }

    /// An attempt that never reached Sinch: the next one may go at once.
    async fn withdraw<S: Store>(&self, store: &S, id: &str, attempt: &str) {
        self.remember(
            id,
            Known::NotSent {
                attempt: attempt.to_owned(),
            },
        );
        if let Err(error) = store.abandon_send(id, attempt).await {
            // Another process will wait for the settle time instead; this one knows.
            warn!(message = id, %error, "could not withdraw an attempt that never reached Sinch");
        }
    }
}

/// A failed send as an error: withheld by a rule, or refused by Sinch.
fn refused(id: &str, reason: Reason) -> SendError {
    let id = id.to_owned();
    if send_rules::is_withheld(&reason) {
        SendError::Withheld { id, reason }
    } else {
        SendError::Refused { id, reason }
    }
}

/// True when the request may have reached Sinch although no answer came back.
fn reached_sinch_maybe(error: &SinchError) -> bool {
    matches!(
        error,
        SinchError::Network {
            maybe_delivered: true,
            ..
        }
    )
}

/// The reason recorded for a send Sinch refused.
fn refusal(error: &SinchError) -> Reason {
    match error {
        SinchError::Api { status, detail, .. } => Reason::new(
            detail
                .status
                .clone()
                .or_else(|| detail.code.clone())
                .unwrap_or_else(|| format!("HTTP_{status}")),
            Some(detail.message.clone()),
        ),
        other => Reason::new("SEND_FAILED", Some(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::reference;

    #[test]
    fn references_are_recognised_only_with_our_prefix() {
        let value = reference::to_sinch("msg_01H");
        assert_eq!(reference::ours(Some(&value)), Some("msg_01H"));
        assert_eq!(reference::ours(Some("someone-else")), None);
        assert_eq!(reference::ours(Some("sinch-hooks:")), None);
        assert_eq!(reference::ours(None), None);
        assert_eq!(reference::reply_id("01IN"), "rpl_01IN");
    }
}
