//! The Lambda event source mapping, emulated: poll the queue, hand batches to the worker,
//! delete what succeeded, leave failures to come back after the visibility timeout, and move a
//! message that keeps failing to the dead-letter queue after `max_receive_count` receives.
//!
//! Two sources: the in-memory queue (the emulation does the redrive, as SQS would) and real SQS
//! (moto_server, LocalStack or AWS; the queue's own redrive policy moves messages).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use pipeline::envelope::Envelope;
use pipeline::queue::{MemoryQueue, Queue, QueuedMessage};
use pipeline::store::Store;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{error, warn};
use worker::{RecordOutcome, Worker, process_batch};

use super::stats::Stats;

/// The event source mapping's settings (the SAM template's parameters, locally).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSourceConfig {
    /// Records per batch (SQS allows up to 10 per receive).
    pub batch_size: usize,
    /// How long to wait for a fuller batch.
    pub batching_window: Duration,
    /// How long a received message stays hidden; a failed record comes back after it.
    pub visibility_timeout: Duration,
    /// Receives after which a message goes to the dead-letter queue.
    pub max_receive_count: u32,
    /// Batches processed at once (`ScalingConfig.MaximumConcurrency`).
    pub max_concurrency: usize,
    /// The emulated function timeout: each batch's deadline.
    pub function_timeout: Duration,
}

impl Default for EventSourceConfig {
    fn default() -> Self {
        Self {
            batch_size: 10,
            batching_window: Duration::ZERO,
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 5,
            max_concurrency: 4,
            function_timeout: Duration::from_secs(20),
        }
    }
}

/// How full the queues are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depths {
    /// Messages waiting.
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Messages in the dead-letter queue.
    pub dead_letters: u64,
}

/// A message of the dead-letter queue, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetterView {
    /// The queue's id of the message.
    pub id: String,
    /// `dead-letter-reason` (`stale_signature`, `unparseable_payload`, ...), or the queue's own
    /// redrive.
    pub reason: String,
    /// `dead-letter-detail`: the error behind the reason.
    pub detail: String,
    /// The callback's kind, when its body reads as one.
    pub kind: Option<String>,
    /// The body, cut at the console's limit.
    pub body: String,
}

impl DeadLetterView {
    fn of(id: String, envelope: &Envelope) -> Self {
        let body = envelope
            .raw_body()
            .map(|b| b.into_owned())
            .unwrap_or_default();
        let shown = &body[..body.len().min(super::console::BODY_KEEP)];
        Self {
            id,
            reason: envelope
                .dead_letter_reason
                .clone()
                .unwrap_or_else(|| "max_receive_count_exceeded".into()),
            detail: envelope.dead_letter_detail.clone().unwrap_or_default(),
            kind: sinch::callback::parse(&body)
                .ok()
                .map(|c| c.kind().into_owned()),
            body: String::from_utf8_lossy(shown).into_owned(),
        }
    }
}

/// A queue the event source polls.
pub trait Source: Send + Sync + 'static {
    /// Up to `max` records as Lambda would get them (waiting a little when there are none).
    fn receive(&self, max: usize) -> impl Future<Output = Vec<Value>> + Send;
    /// Deletes handled records by receipt handle.
    fn delete(&self, receipts: Vec<String>) -> impl Future<Output = ()> + Send;
    /// How full the queue and its dead-letter queue are.
    fn depths(&self) -> impl Future<Output = Depths> + Send;
    /// What the dead-letter queue holds (at most 100), oldest first.
    fn dead_letters(&self) -> impl Future<Output = Vec<DeadLetterView>> + Send;
    /// Moves one dead letter (`Some(id)`) or all of them back to the queue, without their
    /// dead-letter reason; how many moved.
    fn redrive(&self, id: Option<&str>) -> impl Future<Output = Result<usize, String>> + Send;
}

/// Polls `source` until `stop` is set, running batches through `worker`.
pub async fn run<S, Q, H, Src>(
    source: Arc<Src>,
    worker: Arc<Worker<S, Q, H>>,
    config: EventSourceConfig,
    stats: Arc<Stats>,
    stop: tokio::sync::watch::Receiver<bool>,
) where
    S: Store + 'static,
    Q: Queue + 'static,
    H: pipeline::hook::Hook + 'static,
    Src: Source,
{
    let slots = Arc::new(Semaphore::new(config.max_concurrency.max(1)));
    while !*stop.borrow() {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let records = source.receive(config.batch_size.clamp(1, 10)).await;
        if records.is_empty() {
            continue;
        }
        let receipts: Vec<(Option<String>, String)> = records
            .iter()
            .map(|r| {
                (
                    r["messageId"].as_str().map(str::to_owned),
                    r["receiptHandle"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let event: SqsEvent = match serde_json::from_value(json!({ "Records": records })) {
            Ok(event) => event,
            Err(e) => {
                error!(%e, "could not build an SQS event");
                continue;
            }
        };
        let source = source.clone();
        let worker = worker.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let started = Instant::now();
            let deadline = started + config.function_timeout;
            let outcomes = process_batch(worker, event, deadline).await;
            stats.invoked("worker", started.elapsed());
            let mut done = Vec::new();
            for (message_id, outcome) in &outcomes {
                stats.record(outcome);
                if !matches!(outcome, RecordOutcome::Retry { .. })
                    && let Some((_, receipt)) = receipts.iter().find(|(id, _)| id == message_id)
                {
                    done.push(receipt.clone());
                }
            }
            source.delete(done).await;
        });
    }
}

/// The in-memory queue as a source, with SQS's redrive emulated.
pub struct MemorySource {
    /// The queue records come from.
    pub queue: MemoryQueue,
    /// Where a record goes after `max_receive_count` receives.
    pub dead_letters: MemoryQueue,
    /// The mapping's settings.
    pub config: EventSourceConfig,
    /// Where receives and redrives are counted.
    pub stats: Arc<Stats>,
}

impl Source for MemorySource {
    async fn receive(&self, max: usize) -> Vec<Value> {
        if self.queue.visible() == 0 {
            self.queue
                .wait_for_message(Duration::from_millis(200))
                .await;
        }
        if !self.config.batching_window.is_zero() && self.queue.visible() < max {
            let until = Instant::now() + self.config.batching_window;
            while Instant::now() < until && self.queue.visible() < max {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let mut records = Vec::new();
        for message in self.queue.receive(max, self.config.visibility_timeout) {
            if message.receive_count > self.config.max_receive_count {
                self.redrive(message).await;
            } else {
                records.push(memory_record(&message));
            }
        }
        records
    }

    async fn delete(&self, receipts: Vec<String>) {
        for receipt in receipts {
            self.queue.delete(&pipeline::queue::MessageId(receipt));
        }
    }

    async fn depths(&self) -> Depths {
        Depths {
            visible: self.queue.visible() as u64,
            in_flight: self.queue.in_flight() as u64,
            dead_letters: self.dead_letters.len() as u64,
        }
    }

    async fn dead_letters(&self) -> Vec<DeadLetterView> {
        self.dead_letters
            .snapshot()
            .iter()
            .take(100)
            .map(|message| DeadLetterView::of(message.id.0.clone(), &message.envelope))
            .collect()
    }

    async fn redrive(&self, id: Option<&str>) -> Result<usize, String> {
        let mut moved = 0;
        for message in self.dead_letters.snapshot() {
            if id.is_some_and(|id| id != message.id.0) {
                continue;
            }
            let mut envelope = message.envelope;
            envelope.dead_letter_reason = None;
            envelope.dead_letter_detail = None;
            // Back in the queue first; only then out of the dead-letter queue.
            self.queue
                .send(&envelope)
                .await
                .map_err(|e| e.to_string())?;
            self.dead_letters.delete(&message.id);
            moved += 1;
        }
        Ok(moved)
    }
}

impl MemorySource {
    /// What SQS's redrive policy does: the message moves to the dead-letter queue as it is.
    async fn redrive(&self, message: QueuedMessage) {
        let mut envelope = message.envelope.clone();
        envelope.dead_letter(
            "max_receive_count_exceeded",
            &format!("received {} times", message.receive_count - 1),
        );
        match self.dead_letters.send(&envelope).await {
            Ok(_) => {
                self.queue.delete(&message.id);
                self.stats.redriven();
                warn!(message_id = %message.id, "moved to the dead-letter queue after too many receives");
            }
            Err(e) => {
                error!(message_id = %message.id, %e, "could not move to the dead-letter queue")
            }
        }
    }
}

/// A Lambda SQS record for an in-memory message; the message id doubles as receipt handle.
fn memory_record(message: &QueuedMessage) -> Value {
    record(
        &message.id.0,
        &message.id.0,
        &message.envelope,
        message.receive_count,
    )
}

fn record(message_id: &str, receipt: &str, envelope: &Envelope, receive_count: u32) -> Value {
    let attributes: Map<String, Value> = envelope
        .attributes()
        .map(|(name, value)| {
            (
                name.to_owned(),
                json!({"stringValue": value, "dataType": "String"}),
            )
        })
        .collect();
    json!({
        "messageId": message_id,
        "receiptHandle": receipt,
        "body": envelope.queued_body(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string()},
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
    })
}

/// Real SQS as a source; the queue's redrive policy handles poison.
pub struct SqsSource {
    /// The SQS client.
    pub client: aws_sdk_sqs::Client,
    /// The queue records come from.
    pub queue_url: String,
    /// Its dead-letter queue (for the console's list).
    pub dead_letter_queue_url: String,
    /// The mapping's settings.
    pub config: EventSourceConfig,
}

impl Source for SqsSource {
    async fn receive(&self, max: usize) -> Vec<Value> {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(1)
            .visibility_timeout(self.config.visibility_timeout.as_secs().max(1) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await;
        let messages = match received {
            Ok(output) => output.messages.unwrap_or_default(),
            Err(e) => {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Vec::new();
            }
        };
        messages
            .into_iter()
            .map(|m| {
                let attributes: Map<String, Value> = m
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| {
                        (
                            name,
                            json!({"stringValue": value.string_value, "dataType": value.data_type}),
                        )
                    })
                    .collect();
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": receive_count},
                    "messageAttributes": attributes,
                    "eventSource": "aws:sqs",
                })
            })
            .collect()
    }

    async fn delete(&self, receipts: Vec<String>) {
        for chunk in receipts.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .ok()
                })
                .collect();
            if let Err(e) = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed; the messages will come back");
            }
        }
    }

    async fn depths(&self) -> Depths {
        let count = |url: String| {
            let client = self.client.clone();
            async move {
                let output = client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                    .send()
                    .await
                    .ok()?;
                let attributes = output.attributes?;
                let get = |name| {
                    attributes
                        .get(&name)
                        .and_then(|v: &String| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                Some((
                    get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
                    get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                ))
            }
        };
        let (visible, in_flight) = count(self.queue_url.clone()).await.unwrap_or_default();
        let (dead, dead_in_flight) = count(self.dead_letter_queue_url.clone())
            .await
            .unwrap_or_default();
        Depths {
            visible,
            in_flight,
            dead_letters: dead + dead_in_flight,
        }
    }

    async fn dead_letters(&self) -> Vec<DeadLetterView> {
        // A look that hides nothing: received with no visibility timeout (SQS hands out a
        // sample: up to ten).
        let received = self
            .client
            .receive_message()
            .queue_url(&self.dead_letter_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await;
        let Ok(output) = received else {
            return Vec::new();
        };
        output
            .messages()
            .iter()
            .filter_map(|m| {
                let attributes = m.message_attributes();
                let envelope =
                    Envelope::from_message(m.body().unwrap_or_default().to_owned(), |name| {
                        attributes?.get(name).and_then(|a| a.string_value())
                    })
                    .ok()?;
                Some(DeadLetterView::of(
                    m.message_id().unwrap_or_default().to_owned(),
                    &envelope,
                ))
            })
            .collect()
    }

    async fn redrive(&self, id: Option<&str>) -> Result<usize, String> {
        let failed = |e: &dyn std::fmt::Display| e.to_string();
        let mut moved = 0;
        let mut seen = std::collections::HashSet::new();
        loop {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.dead_letter_queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| failed(&aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            let messages = output.messages.unwrap_or_default();
            if messages.iter().all(|m| !seen.insert(m.message_id.clone())) {
                return Ok(moved);
            }
            for message in messages {
                let receipt = message.receipt_handle.clone().unwrap_or_default();
                if id.is_some_and(|id| Some(id) != message.message_id.as_deref()) {
                    // Not this one: visible again at once.
                    let _ = self
                        .client
                        .change_message_visibility()
                        .queue_url(&self.dead_letter_queue_url)
                        .receipt_handle(&receipt)
                        .visibility_timeout(0)
                        .send()
                        .await;
                    continue;
                }
                let mut attributes = message.message_attributes.clone().unwrap_or_default();
                attributes.remove(pipeline::envelope::DEAD_LETTER_REASON);
                attributes.remove(pipeline::envelope::DEAD_LETTER_DETAIL);
                self.client
                    .send_message()
                    .queue_url(&self.queue_url)
                    .set_message_body(message.body.clone())
                    .set_message_attributes(Some(attributes))
                    .send()
                    .await
                    .map_err(|e| failed(&aws_sdk_sqs::error::DisplayErrorContext(e)))?;
                self.client
                    .delete_message()
                    .queue_url(&self.dead_letter_queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| failed(&aws_sdk_sqs::error::DisplayErrorContext(e)))?;
                moved += 1;
                if id.is_some() {
                    return Ok(moved);
                }
            }
        }
    }
}
