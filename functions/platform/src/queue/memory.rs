//! An in-memory queue that behaves like SQS where it matters: SQS's size limit, receive with a
//! visibility timeout, delete after success, receive counts. The local stack, benchmarks and
//! tests use it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{MessageId, Queue, QueueError};
use envelope::Envelope;

/// A message as stored in a [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// Its id, unique in the queue.
    pub id: MessageId,
    /// What was sent.
    pub envelope: Envelope,
    /// How many times it has been received (like SQS's `ApproximateReceiveCount`).
    pub receive_count: u32,
}

#[derive(Debug)]
struct Entry {
    message: QueuedMessage,
    /// Hidden from receivers until then (in flight).
    invisible_until: Option<Instant>,
}

/// A queue of envelopes in this process. Clones share the same queue.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    name: Arc<str>,
    entries: Arc<Mutex<VecDeque<Entry>>>,
    next_id: Arc<AtomicU64>,
    arrived: Arc<Notify>,
}

impl MemoryQueue {
    /// An empty queue named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            entries: Arc::default(),
            next_id: Arc::default(),
            arrived: Arc::default(),
        }
    }

    /// How many messages it holds, visible or in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds no message.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many messages are in flight (received, neither deleted nor visible again).
    pub fn in_flight(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|entry| entry.invisible_until.is_some_and(|until| until > now))
            .count()
    }

    /// A copy of every message, oldest first.
    pub fn snapshot(&self) -> Vec<QueuedMessage> {
        self.lock()
            .iter()
            .map(|entry| entry.message.clone())
            .collect()
    }

    /// Removes and returns up to `max` messages, oldest first, visible or not.
    pub fn take(&self, max: usize) -> Vec<QueuedMessage> {
        let mut entries = self.lock();
        let n = max.min(entries.len());
        entries.drain(..n).map(|entry| entry.message).collect()
    }

    /// Receives up to `max` visible messages, oldest first: each becomes invisible for
    /// `visibility_timeout` and its receive count goes up, as with SQS `ReceiveMessage`.
    pub fn receive(&self, max: usize, visibility_timeout: Duration) -> Vec<QueuedMessage> {
        let now = Instant::now();
        let mut received = Vec::new();
        for entry in self.lock().iter_mut() {
            if received.len() == max {
                break;
            }
            if entry.invisible_until.is_some_and(|until| until > now) {
                continue;
            }
            entry.invisible_until = Some(now + visibility_timeout);
            entry.message.receive_count += 1;
            received.push(entry.message.clone());
        }
        received
    }

    /// How many messages a receive would get now.
    pub fn visible(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|entry| entry.invisible_until.is_none_or(|until| until <= now))
            .count()
    }

    /// Deletes a message (after it was handled). False when it is not there.
    pub fn delete(&self, id: &MessageId) -> bool {
        let mut entries = self.lock();
        match entries.iter().position(|entry| &entry.message.id == id) {
            Some(index) => {
                entries.remove(index);
                true
            }
            None => false,
        }
    }

    /// Waits until a message is sent, or `timeout` passes.
    pub async fn wait_for_message(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.arrived.notified()).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // Every mutation completes before the guard drops, so a poisoned lock still holds
        // consistent state.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
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
        self.lock().push_back(Entry {
            message: QueuedMessage {
                id: id.clone(),
                envelope: envelope.clone(),
                receive_count: 0,
            },
            invisible_until: None,
        });
        self.arrived.notify_one();
        Ok(id)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope::{SQS_MAX_MESSAGE_BYTES, SignatureHeaders};
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
    async fn received_messages_hide_until_deleted_or_their_visibility_ends() {
        let queue = MemoryQueue::new("q");
        let id = queue.send(&envelope(b"1")).await.unwrap();
        queue.send(&envelope(b"2")).await.unwrap();
        let first = queue.receive(1, Duration::from_millis(50));
        assert_eq!(
            (first[0].id.clone(), first[0].receive_count),
            (id.clone(), 1)
        );
        assert_eq!((queue.in_flight(), queue.visible()), (1, 1));
        let second = queue.receive(10, Duration::from_millis(50));
        assert_eq!(second.len(), 1, "the first is in flight");
        assert!(queue.receive(10, Duration::from_millis(50)).is_empty());
        tokio::time::sleep(Duration::from_millis(60)).await;
        let again = queue.receive(10, Duration::from_secs(30));
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].receive_count, 2);
        assert!(queue.delete(&id));
        assert!(!queue.delete(&id));
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn a_send_wakes_a_waiting_receiver() {
        let queue = MemoryQueue::new("q");
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                queue.wait_for_message(Duration::from_secs(5)).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.send(&envelope(b"1")).await.unwrap();
        assert!(waiter.await.unwrap() < Duration::from_secs(1));
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
