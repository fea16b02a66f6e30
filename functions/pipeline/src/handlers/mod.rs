//! The handlers: what the worker does with each kind of callback.
//!
//! - delivery reports ([`delivery`]) move a message's status forward and extend its history;
//! - inbound messages ([`inbound`]) are stored and go through the reply policy;
//! - Sinch's opt-out and opt-in notifications ([`opt_notification`]) opt the contact out or in;
//! - sends of the messages API ([`outbound`]) and batches' chunks ([`fan_out`]) are jobs;
//! - everything else is logged with its kind and acknowledged.
//!
//! Handlers are plain async functions over [`Services`], so tests and the local stack call them
//! with an in-memory store and a fake Sinch.

pub mod delivery;
pub mod fan_out;
pub mod inbound;
pub mod opt_notification;
pub mod outbound;

use sinch::callback::conversation::Event;
use sinch::callback::{Callback, SmsCallback};
use sinch::client::{SendMessageRequest, SinchClient, SinchError, SmsBatchRequest};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::hook::{Hook, HookError};
use crate::ledger::{Ledger, SendError, Sent};
use crate::pacing::{self, Pacing};
use crate::reply::ReplyPolicy;
use crate::schedule::Lane;
use crate::send_rules::SendRules;
use crate::store::{MessageKey, SendIntent, SinchId, StatusChange, Store, StoreError};

/// What the handlers work with; built once per process.
#[derive(Debug, Clone)]
pub struct Services<S, H = ReplyPolicy> {
    /// Where state is kept.
    pub store: S,
    /// The client replies and sends go through.
    pub sinch: SinchClient,
    /// The team's logic ([`crate::hook`]); the reply policy by default.
    pub hook: H,
    /// App to reply from when a Conversation callback does not name one (`SINCH_APP_ID`).
    pub app_id: Option<String>,
    /// How long a handled callback is remembered as done (48 h by default).
    pub idempotency_ttl: std::time::Duration,
    /// Sends through the send-once ledger (see [`crate::ledger`]).
    pub ledger: Ledger,
    /// The sending rules, checked again just before anything leaves ([`crate::send_rules`]).
    pub send_rules: SendRules,
    /// The send rates, held across workers ([`crate::pacing`]); unpaced by default.
    pub pacing: Pacing,
    /// What is kept of message texts ([`Privacy`]).
    pub privacy: Privacy,
    /// What "now" is (the system clock but in tests).
    pub clock: Clock,
}

/// What is kept of message texts.
///
/// | mode | inbound messages | our replies | events |
/// |---|---|---|---|
/// | default | the text is stored | the text is stored | `text` in `Message Received` and `Reply Sent` |
/// | `Redact` (`REDACT_TEXT=true`) | no text: its length and SHA-256 ([`crate::store::TextDigest`]) | no text | `text_length` and `text_sha256` instead of `text`; no reply text |
///
/// The hook (the keyword rules) still reads the text in memory: redaction decides what is kept,
/// not what is decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Privacy {
    /// Store and emit no message text.
    pub redact: bool,
}

/// `REDACT_TEXT`: `true` for [`Privacy::redact`].
pub const REDACT_TEXT: &str = "REDACT_TEXT";

impl Privacy {
    /// The mode the environment sets (`REDACT_TEXT`: `true` or `false`, the default).
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &crate::config::Env<F>,
    ) -> Result<Self, crate::config::ConfigError> {
        match env.optional(REDACT_TEXT).as_deref() {
            None | Some("false") => Ok(Self { redact: false }),
            Some("true") => Ok(Self { redact: true }),
            Some(other) => Err(crate::config::ConfigError::new(
                REDACT_TEXT,
                format!("must be true or false, got {other:?}"),
            )),
        }
    }
}

/// Default for [`Services::idempotency_ttl`]: beyond Sinch's ~23 h retry horizon.
pub const DEFAULT_IDEMPOTENCY_TTL: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// What handling a callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Delivery report(s) applied.
    Status(Vec<(MessageKey, StatusChange)>),
    /// An inbound message stored, and what the reply policy did.
    Inbound {
        /// Sinch's id of the inbound message.
        id: String,
        /// What became of the reply.
        reply: ReplyOutcome,
    },
    /// A kind we know but have no handler for (contact events, opt-in results, ...).
    Ignored {
        /// The callback's kind.
        kind: String,
    },
    /// Already handled once (the idempotency key was completed): nothing done.
    Duplicate {
        /// The idempotency key.
        key: String,
        /// Whether the payload was the same as the first time (a different one under the same key is logged).
        same_payload: bool,
    },
    /// A kind this version does not know.
    Unknown {
        /// The kind as received.
        kind: String,
    },
    /// A send of the messages API went to Sinch (or had gone before: no `left_at_ms`).
    Outbound {
        /// Our message id.
        id: String,
        /// Sinch's id, when its answer could be read.
        sinch_id: Option<SinchId>,
        /// When this run's request left for Sinch (ms since the epoch); `None` when an earlier
        /// attempt had sent it and this run only recorded that.
        left_at_ms: Option<u64>,
    },
    /// A send of the messages API that Sinch refused for good: the message is FAILED.
    OutboundRefused {
        /// Our message id.
        id: String,
        /// Sinch's reason code.
        reason: String,
    },
    /// A send that found no slot in this invocation's time (the lane's backlog is longer):
    /// queued again, to wait its turn without spending the queue's receives.
    Deferred {
        /// Our message id.
        id: String,
        /// How much later it is due again.
        by: std::time::Duration,
    },
    /// Sinch's opt-out or opt-in notification applied ([`opt_notification`]).
    Opt {
        /// The contact (`<channel>/<identity>`).
        contact: String,
        /// Opted out (else back in).
        opted_out: bool,
        /// Whether it changed anything (they were not already so).
        changed: bool,
    },
    /// A batch's chunk fanned out into messages, or canceled ([`fan_out`]).
    Batch {
        /// The batch's id.
        batch: String,
        /// Which chunk of its recipients.
        chunk: u32,
        /// Messages stored.
        made: usize,
        /// Send jobs queued or scheduled.
        queued: usize,
        /// Messages ended `CANCELED`.
        canceled: usize,
    },
}

/// What became of the reply to an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The reply left.
    Sent {
        /// Our id for the reply (`rpl_<inbound id>`): its status is under
        /// [`MessageKey::Ours`].
        id: String,
        /// Sinch's id, when its answer could be read.
        sinch_id: Option<SinchId>,
        /// The text sent.
        text: String,
        /// When this run's request left for Sinch (ms since the epoch); `None` when an earlier
        /// attempt had sent it and this run only recorded that.
        left_at_ms: Option<u64>,
    },
    /// The policy had nothing to say.
    None,
    /// The contact is opted out.
    Suppressed,
    /// A sending rule forbade the reply when it was about to leave (the contact opted out
    /// meanwhile, WhatsApp's window closed before a late retry): it is `FAILED` with the rule's
    /// code, never sent.
    Withheld {
        /// Our id for the reply.
        id: String,
        /// The rule's code, e.g. `recipient_opted_out`.
        reason: String,
    },
    /// The API to reply through has no credentials; the message is stored, nothing sent.
    NotConfigured {
        /// `conversation` or `sms`.
        api: &'static str,
    },
}

/// Why a callback could not be handled. [`HandlerError::is_transient`] decides between a retry
/// and the dead-letter queue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// The store could not be read or written: retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sinch did not answer as asked: retried when transient.
    #[error(transparent)]
    Sinch(#[from] SinchError),
    /// A send through the ledger did not happen (yet).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The team's hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
}

impl HandlerError {
    /// Whether trying again later can help (else the callback goes to the dead-letter queue).
    pub fn is_transient(&self) -> bool {
        match self {
            HandlerError::Store(_) => true,
            HandlerError::Sinch(error) => error.is_transient(),
            HandlerError::Send(error) => error.is_transient(),
            HandlerError::Hook(error) => matches!(error, HookError::Transient(_)),
        }
    }

    /// Whether the state store was the cause.
    pub fn is_store(&self) -> bool {
        matches!(
            self,
            HandlerError::Store(_) | HandlerError::Send(SendError::Store(_))
        )
    }

    /// Whether Sinch (its refusal or its silence) was the cause, as opposed to the store.
    pub fn is_sinch(&self) -> bool {
        match self {
            HandlerError::Store(_) | HandlerError::Hook(_) => false,
            HandlerError::Sinch(_) => true,
            HandlerError::Send(error) => matches!(
                error,
                SendError::Refused { .. } | SendError::NotSent { .. } | SendError::Unknown { .. }
            ),
        }
    }
}

/// Whether `callback` is claimed under its idempotency key before it is handled: only those
/// whose handling would do something twice if it ran twice.
///
/// | callback | claimed | why |
/// |---|---|---|
/// | an inbound message | always | the reply, the hook's decision and the stored message happen once |
/// | an opt-out or opt-in notification | always | the consent change and its event happen once |
/// | a Conversation delivery report for our message, with its event's time | when [`Hook::wants_status`] | its status write is idempotent by itself ([`delivery::idempotent_alone`]); the hook's `on_status` may not be |
/// | any other delivery report | always | a repeat would add history (no time of its own) or bring an erased number back (SMS items are keyed by it) |
/// | anything else | when [`Hook::wants_other`] | the pipeline does nothing with it; the hook's `on_other` may |
pub fn needs_claim<H: Hook>(callback: &Callback, hook: &H) -> bool {
    match callback {
        Callback::Conversation(c) => match &c.event {
            Event::MessageInbound(_) | Event::OptOut(_) | Event::OptIn(_) => true,
            Event::MessageDelivery(report) => {
                hook.wants_status() || !delivery::idempotent_alone(&c.envelope, report)
            }
            _ => hook.wants_other(),
        },
        Callback::Sms(sms) => match sms {
            SmsCallback::MoText(_)
            | SmsCallback::MoMedia(_)
            | SmsCallback::RecipientDeliveryReport { .. }
            | SmsCallback::BatchDeliveryReport { .. } => true,
            _ => hook.wants_other(),
        },
        Callback::Unknown { .. } => hook.wants_other(),
    }
}

/// Runs the handler for `callback`, and the hook's `on_other` for the kinds without one. Sinch
/// calls must finish before `deadline`.
pub async fn handle<S: Store, H: Hook>(
    services: &Services<S, H>,
    callback: &Callback,
    deadline: Instant,
) -> Result<Handled, HandlerError> {
    let handled = dispatch(services, callback, deadline).await?;
    if matches!(handled, Handled::Ignored { .. } | Handled::Unknown { .. })
        && services.hook.wants_other()
    {
        services.hook.on_other(callback).await?;
    }
    Ok(handled)
}

async fn dispatch<S: Store, H: Hook>(
    services: &Services<S, H>,
    callback: &Callback,
    deadline: Instant,
) -> Result<Handled, HandlerError> {
    match callback {
        Callback::Conversation(conversation) => match &conversation.event {
            Event::MessageDelivery(report) => {
                delivery::conversation(services, &conversation.envelope, report).await
            }
            Event::MessageInbound(message) => {
                inbound::conversation(services, &conversation.envelope, message, deadline).await
            }
            Event::OptOut(notification) => {
                opt_notification::apply(services, &conversation.envelope, notification, true).await
            }
            Event::OptIn(notification) => {
                opt_notification::apply(services, &conversation.envelope, notification, false).await
            }
            Event::Unknown { key } => Ok(Handled::Unknown {
                kind: format!("conversation.{key}"),
            }),
            _ => Ok(Handled::Ignored {
                kind: callback.kind().into_owned(),
            }),
        },
        Callback::Sms(sms) => match sms {
            SmsCallback::RecipientDeliveryReport { report, .. } => {
                delivery::sms_recipient(services, report).await
            }
            SmsCallback::BatchDeliveryReport { report, .. } => {
                delivery::sms_batch(services, report).await
            }
            SmsCallback::MoText(mo) => {
                inbound::sms(
                    services,
                    mo,
                    "mo_text",
                    Some(&mo.body),
                    Vec::new(),
                    deadline,
                )
                .await
            }
            SmsCallback::MoMedia(mo) => {
                inbound::sms(
                    services,
                    mo,
                    "mo_media",
                    mo.body.message.as_deref(),
                    mo.body.media.iter().map(|m| m.url.clone()).collect(),
                    deadline,
                )
                .await
            }
            SmsCallback::MoBinary(_) => Ok(Handled::Ignored {
                kind: callback.kind().into_owned(),
            }),
            SmsCallback::Unknown { kind } => Ok(Handled::Unknown {
                kind: format!("sms.{kind}"),
            }),
        },
        Callback::Unknown { keys } => Ok(Handled::Unknown {
            kind: format!("unknown({})", keys.join(",")),
        }),
    }
}

/// One of our sends, as it goes to Sinch.
#[derive(Debug, Clone, PartialEq)]
pub enum SinchRequest {
    /// Conversation `messages:send`.
    Conversation(SendMessageRequest),
    /// An SMS API batch.
    Sms(SmsBatchRequest),
}

/// Sends `request`, our message `id`, at most once through the ledger, at its moment of leaving
/// ([`crate::ledger`]): its lane's slot, then `send_rules`, then the request. Replies and sends of the
/// messages API alike.
///
/// Sinch's 429 and 5xx (and a connection never made) mean it certainly did not take it: the
/// send goes through all of it again (a new slot, the rules judged again, a new attempt) after
/// `Retry-After` or a backoff with full jitter (`retry-policies`), as many times as the client's
/// retry settings allow and while a send still fits before `deadline`; what is left is the
/// queue's to retry.
pub(crate) async fn send_once<S, H, R, RFut>(
    services: &Services<S, H>,
    id: &str,
    intent: &SendIntent,
    send_rules: R,
    (request, lane): (&SinchRequest, Lane),
    deadline: Instant,
) -> Result<Sent, SendError>
where
    S: Store,
    H: Hook,
    R: Fn() -> RFut,
    RFut: std::future::Future<Output = Result<crate::send_rules::Verdict, StoreError>>,
{
    use retry_policies::{Jitter, RetryDecision, RetryPolicy, policies::ExponentialBackoff};
    let sinch = &services.sinch;
    let api = match request {
        SinchRequest::Conversation(_) => pacing::Api::Conversation,
        SinchRequest::Sms(_) => pacing::Api::Sms,
    };
    let settings = sinch.retry_settings();
    let policy = ExponentialBackoff::builder()
        .retry_bounds(settings.min_delay, settings.max_delay)
        .jitter(Jitter::Full)
        .build_with_max_retries(settings.max_retries);
    let started = std::time::SystemTime::now();
    let mut retries = 0;
    loop {
        let sent = services
            .ledger
            .send(
                &services.store,
                &services.clock,
                id,
                intent,
                || async {
                    services
                        .pacing
                        .wait_for_slot(&services.store, api, lane, deadline)
                        .await
                },
                &send_rules,
                || async {
                    match request {
                        SinchRequest::Conversation(request) => sinch
                            .send_message(request, deadline)
                            .await
                            .map(|answer| SinchId::Message(answer.message_id)),
                        SinchRequest::Sms(batch) => sinch
                            .send_sms(batch, deadline)
                            .await
                            .map(|answer| SinchId::Batch(answer.id)),
                    }
                },
            )
            .await;
        let Err(SendError::NotSent { error, .. }) = &sent else {
            return sent;
        };
        let RetryDecision::Retry { execute_after } = policy.should_retry(started, retries) else {
            return sent;
        };
        let backoff = execute_after
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        let delay = error
            .retry_after()
            .map_or(backoff, |asked| asked.min(settings.max_delay));
        if !error.is_transient() || Instant::now() + delay + sinch.send_budget() >= deadline {
            return sent;
        }
        tracing::debug!(message = id, %error, delay_ms = delay.as_millis() as u64, retry = retries + 1, "Sinch did not take it: again, in a slot of its own");
        tokio::time::sleep(delay).await;
        retries += 1;
    }
}

/// Unix milliseconds of a Sinch timestamp, or of now.
fn millis(at: Option<OffsetDateTime>, clock: &Clock) -> u64 {
    match at {
        Some(at) => u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
        None => crate::clock::unix_millis(clock.now()),
    }
}
