//! One queued callback, start to finish: read the envelope, parse, claim its idempotency key,
//! run the handler, and say whether a failure is worth a retry.

use sinch::callback::{self, Callback};
use tokio::time::Instant;

use tracing::{error, warn};

use crate::clock::unix_millis;
use crate::envelope::Envelope;
use crate::handlers::{self, Handled, HandlerError, Services};
use crate::hook::Hook;
use crate::idempotency;
use crate::store::{Claim, ClaimRequest, Store};

/// Why a callback was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// It will never succeed as it is: park it in the dead-letter queue with `reason`.
    #[error("{reason}: {detail}")]
    Poison {
        /// A stable code, one of the constants below.
        reason: &'static str,
        /// What was wrong, for the log and the dead-letter item.
        detail: String,
    },
    /// It may succeed later: let the queue deliver it again. `sinch` when Sinch's answer (or
    /// silence) was the cause; `store` when the state store was.
    #[error("{detail}")]
    Transient {
        /// What went wrong, for the log.
        detail: String,
        /// Sinch's answer (or silence) was the cause.
        sinch: bool,
        /// The state store was the cause.
        store: bool,
    },
}

/// Dead-letter reason: the message is not a readable envelope.
pub const BAD_ENVELOPE: &str = "bad_envelope";
/// Dead-letter reason: the body is not a Sinch callback.
pub const UNPARSEABLE: &str = "unparseable_payload";
/// Dead-letter reason: a Conversation callback with several trigger keys; which one was meant
/// cannot be told, so none is acted on.
pub const AMBIGUOUS: &str = "ambiguous_payload";
/// Dead-letter reason: Sinch refused our request for good (a 4xx other than 429).
pub const SINCH_REJECTED: &str = "sinch_rejected";
/// Dead-letter reason: the hook ([`crate::hook`]) failed for good.
pub const HOOK_FAILED: &str = "hook_failed";

impl Failure {
    /// A failure to park with `reason`.
    pub fn poison(reason: &'static str, detail: impl ToString) -> Self {
        Failure::Poison {
            reason,
            detail: detail.to_string(),
        }
    }
}

/// Handles one queued callback, at most once per idempotency key:
///
/// 1. parse (a body that is not a callback is poison);
/// 2. claim the key, with a lease until `deadline` (a key completed before is a duplicate:
///    nothing is done; a key in progress elsewhere fails the record for a later retry);
/// 3. run the handler;
/// 4. complete the key (remembered for the TTL), or release it when the handler failed so the
///    retry can run.
///
/// Callbacks that are safe to run twice skip the claim ([`handlers::needs_claim`]).
pub async fn process<S: Store, H: Hook>(
    services: &Services<S, H>,
    envelope: &Envelope,
    deadline: Instant,
) -> Result<(Callback, Handled), Failure> {
    let body = envelope
        .raw_body()
        .map_err(|e| Failure::poison(BAD_ENVELOPE, e))?;
    let callback = callback::parse(&body).map_err(|e| match e {
        callback::ParseError::Ambiguous { .. } => Failure::poison(AMBIGUOUS, e),
        _ => Failure::poison(UNPARSEABLE, e),
    })?;
    if !handlers::needs_claim(&callback, &services.hook) {
        return run(services, callback, deadline).await;
    }

    let store = &services.store;
    let key = idempotency::key(&callback, &body);
    let payload_hash = idempotency::payload_hash(&body);
    let now_ms = unix_millis(services.clock.now());
    let remaining = deadline.saturating_duration_since(Instant::now());
    let claim = ClaimRequest {
        key: &key,
        payload_hash: &payload_hash,
        lease_until_ms: now_ms + u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
        now_ms,
        value: None,
    };
    match store.claim(&claim).await.map_err(transient)? {
        Claim::Claimed { .. } => {}
        // (Only claims that hold a value are `Reused`; a callback's hold none.)
        Claim::Reused => {
            return Ok((
                callback,
                Handled::Duplicate {
                    key,
                    same_payload: false,
                },
            ));
        }
        Claim::Completed { same_payload, .. } => {
            if !same_payload {
                warn!(key = idempotency::for_logs(&key), %payload_hash, "a different payload under an idempotency key already handled: treated as a duplicate");
            }
            return Ok((callback, Handled::Duplicate { key, same_payload }));
        }
        Claim::InProgress { lease_until_ms } => {
            return Err(Failure::Transient {
                detail: format!(
                    "{} is being handled elsewhere (lease until {lease_until_ms} ms)",
                    idempotency::for_logs(&key)
                ),
                sinch: false,
                store: false,
            });
        }
    }

    let result = run(services, callback, deadline).await;
    if result.is_ok() {
        let expires_at_s = now_ms / 1000 + services.idempotency_ttl.as_secs();
        if let Err(error) = store.complete(&key, expires_at_s, None).await {
            // The effects happened. Failing the record now would only repeat them once the
            // lease runs out; acknowledging leaves at worst a late duplicate to the same fate.
            error!(key = idempotency::for_logs(&key), %error, "handled, but the idempotency record could not be completed");
        }
    } else if let Err(error) = store.release(&key).await {
        // The lease still runs out at the deadline, and the retry comes after that.
        warn!(key = idempotency::for_logs(&key), %error, "could not release the idempotency claim; the retry waits for the lease");
    }
    result
}

/// The handler, with its error classified.
async fn run<S: Store, H: Hook>(
    services: &Services<S, H>,
    callback: Callback,
    deadline: Instant,
) -> Result<(Callback, Handled), Failure> {
    match handlers::handle(services, &callback, deadline).await {
        Ok(handled) => Ok((callback, handled)),
        Err(error) if error.is_transient() => Err(Failure::Transient {
            detail: error.to_string(),
            sinch: error.is_sinch(),
            store: error.is_store(),
        }),
        Err(error @ HandlerError::Hook(_)) => Err(Failure::poison(HOOK_FAILED, error)),
        Err(error) => Err(Failure::poison(SINCH_REJECTED, error)),
    }
}

/// The state store failed.
fn transient(error: impl ToString) -> Failure {
    Failure::Transient {
        detail: error.to_string(),
        sinch: false,
        store: true,
    }
}
