//! Where accepted callbacks go: a queue of [`Envelope`]s.
//!
//! The receiver only needs "send this, tell me it is stored". Behind the trait sit SQS (in AWS,
//! moto_server or LocalStack) and an in-memory queue (the local stack, benchmarks, unit tests).

mod memory;
mod sqs;

pub use memory::{MemoryQueue, QueuedMessage};

/// The setting: how long a queue may take to confirm a message, in ms (the receiver's and the
/// messages API's; 2,500 by default).
pub const ENQUEUE_TIMEOUT_MS: &str = "ENQUEUE_TIMEOUT_MS";
/// The setting: the dead-letter queue a function parks what it cannot handle in (the
/// receiver's and the worker's).
pub const DEAD_LETTER_QUEUE_URL: &str = "DEAD_LETTER_QUEUE_URL";

/// Default bound on an enqueue: SQS answers in tens of milliseconds; 2.5 s leaves room for two
/// SDK retries and stays far below API Gateway's 30 s limit and any sensible Sinch timeout.
pub const DEFAULT_ENQUEUE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(2500);

/// `ENQUEUE_TIMEOUT_MS`: 50 ms to 25 s, [`DEFAULT_ENQUEUE_TIMEOUT`] when unset.
pub fn enqueue_timeout<F: Fn(&str) -> Option<String>>(
    env: &crate::config::Env<F>,
) -> Result<std::time::Duration, crate::config::ConfigError> {
    env.millis(
        ENQUEUE_TIMEOUT_MS,
        DEFAULT_ENQUEUE_TIMEOUT.as_millis() as u64,
        50..=25_000,
    )
}
pub use sqs::{SqsQueue, enqueue_client};

use std::future::Future;

use envelope::{Envelope, SQS_MAX_MESSAGE_BYTES};

/// A queue that stores envelopes durably (as far as the implementation goes).
pub trait Queue: Send + Sync {
    /// Stores the envelope. `Ok` means the message is stored and will be delivered; only then
    /// may the receiver answer 2xx.
    fn send(
        &self,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<MessageId, QueueError>> + Send;

    /// A short name for logs (the queue URL or a label).
    fn name(&self) -> &str;
}

/// The id the queue gave a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageId(pub String);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses what SQS would refuse for size, before any network call.
pub(crate) fn check_size(envelope: &Envelope) -> Result<(), QueueError> {
    let size = envelope.queued_size();
    if size > SQS_MAX_MESSAGE_BYTES {
        return Err(QueueError::TooLarge {
            size,
            limit: SQS_MAX_MESSAGE_BYTES,
        });
    }
    Ok(())
}

/// Why a message was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The message is over the queue's size limit; retrying will not help.
    #[error("message of {size} bytes is over the queue's limit of {limit} bytes")]
    TooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The queue's limit in bytes.
        limit: usize,
    },
    /// The queue could not be reached or refused the request; a retry may succeed.
    #[error("queue {queue} did not store the message: {detail}")]
    Unavailable {
        /// The queue's name or URL.
        queue: String,
        /// What went wrong.
        detail: String,
    },
}
