//! One queued callback, start to finish: read the envelope, parse, run the handler, and say
//! whether a failure is worth a retry.

use sinch::callback::{self, Callback};
use tokio::time::Instant;

use crate::envelope::Envelope;
use crate::handlers::{self, Handled, Services};
use crate::store::Store;

/// Why a callback was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// It will never succeed as it is: park it in the dead-letter queue with `reason`.
    #[error("{reason}: {detail}")]
    Poison {
        reason: &'static str,
        detail: String,
    },
    /// It may succeed later: let the queue deliver it again.
    #[error("{detail}")]
    Transient { detail: String },
}

/// Dead-letter reason: the message is not a readable envelope.
pub const BAD_ENVELOPE: &str = "bad_envelope";
/// Dead-letter reason: the body is not a Sinch callback.
pub const UNPARSEABLE: &str = "unparseable_payload";
/// Dead-letter reason: Sinch refused our request for good (a 4xx other than 429).
pub const SINCH_REJECTED: &str = "sinch_rejected";

impl Failure {
    pub fn poison(reason: &'static str, detail: impl ToString) -> Self {
        Failure::Poison {
            reason,
            detail: detail.to_string(),
        }
    }
}

/// Parses the envelope's body.
pub fn parse(envelope: &Envelope) -> Result<Callback, Failure> {
    let body = envelope
        .raw_body()
        .map_err(|e| Failure::poison(BAD_ENVELOPE, e))?;
    callback::parse(&body).map_err(|e| Failure::poison(UNPARSEABLE, e))
}

/// Handles one queued callback.
pub async fn process<S: Store>(
    services: &Services<S>,
    envelope: &Envelope,
    deadline: Instant,
) -> Result<(Callback, Handled), Failure> {
    let callback = parse(envelope)?;
    match handlers::handle(services, &callback, deadline).await {
        Ok(handled) => Ok((callback, handled)),
        Err(error) if error.is_transient() => Err(Failure::Transient {
            detail: error.to_string(),
        }),
        Err(error) => Err(Failure::poison(SINCH_REJECTED, error)),
    }
}
