//! An in-memory queue with SQS's size limit, for the local stack, benchmarks and tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{MessageId, Queue, QueueError};
use crate::envelope::Envelope;

/// A message as stored in a [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MessageId,
    pub envelope: Envelope,
}

/// A FIFO of envelopes in this process. Clones share the same queue.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    name: Arc<str>,
    messages: Arc<Mutex<VecDeque<QueuedMessage>>>,
    next_id: Arc<AtomicU64>,
}

impl MemoryQueue {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            messages: Arc::default(),
            next_id: Arc::default(),
        }
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A copy of the waiting messages, oldest first.
    pub fn snapshot(&self) -> Vec<QueuedMessage> {
        self.lock().iter().cloned().collect()
    }

    /// Takes up to `max` messages, oldest first.
    pub fn take(&self, max: usize) -> Vec<QueuedMessage> {
        let mut messages = self.lock();
        let n = max.min(messages.len());
        messages.drain(..n).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<QueuedMessage>> {
        // A panic while holding the lock cannot leave a VecDeque half-modified in a way that
        // matters here, so a poisoned lock is still usable.
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Queue for MemoryQueue {
    async fn send(&self, envelope: &Envelope) -> Result<MessageId, QueueError> {
        super::check_size(envelope)?;
        let id = MessageId(format!(
            "{}-{}",
            self.name,
            self.next_id.fetch_add(1, Ordering::Relaxed) + 1
        ));
        self.lock().push_back(QueuedMessage {
            id: id.clone(),
            envelope: envelope.clone(),
        });
        Ok(id)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{SQS_MAX_MESSAGE_BYTES, SignatureHeaders};
    use std::time::UNIX_EPOCH;

    fn envelope(body: &[u8]) -> Envelope {
        let headers = SignatureHeaders {
            signature: "s".into(),
            nonce: "n".into(),
            timestamp: "1".into(),
            algorithm: None,
        };
        Envelope::new(body.to_vec(), headers, UNIX_EPOCH)
    }

    #[tokio::test]
    async fn stores_in_order_and_hands_out_ids() {
        let queue = MemoryQueue::new("q");
        let first = queue.send(&envelope(b"1")).await.unwrap();
        let second = queue.send(&envelope(b"2")).await.unwrap();
        assert_ne!(first, second);
        assert_eq!(queue.len(), 2);
        let taken = queue.take(10);
        assert_eq!(taken[0].envelope.queued_body(), "1");
        assert_eq!(taken[1].id, second);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn refuses_what_sqs_would_refuse() {
        let queue = MemoryQueue::new("q");
        let result = queue
            .send(&envelope(&vec![b'a'; SQS_MAX_MESSAGE_BYTES]))
            .await;
        assert!(
            matches!(result, Err(QueueError::TooLarge { .. })),
            "{result:?}"
        );
        assert!(queue.is_empty());
    }
}
