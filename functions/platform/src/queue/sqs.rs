//! The SQS queue (aws-sdk-sqs), for AWS and anything that speaks its API (moto_server,
//! LocalStack).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::retry::RetryConfig;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;

use super::{MessageId, Queue, QueueError};
use envelope::Envelope;

/// An SQS client whose calls cannot outlast `budget`: each attempt gets a share of it, the SDK
/// retries (with its own backoff) at most twice, and the whole operation is cut at `budget`.
///
/// The receiver must answer Sinch quickly even when SQS is slow; it is better to answer 503 (and
/// let Sinch retry) than to hang until API Gateway gives up.
pub fn enqueue_client(sdk: &aws_config::SdkConfig, budget: Duration) -> Client {
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(budget / 3)
                .operation_attempt_timeout(budget / 2)
                .operation_timeout(budget)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .build();
    Client::from_conf(config)
}

/// One SQS queue, by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    /// The queue at `url`, through `client`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Queue for SqsQueue {
    async fn send(&self, envelope: &Envelope) -> Result<MessageId, QueueError> {
        super::check_size(envelope)?;
        let unavailable = |detail: String| QueueError::Unavailable {
            queue: self.url.clone(),
            detail,
        };
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(envelope.queued_body());
        for (name, value) in envelope.attributes() {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| unavailable(e.to_string()))?;
            request = request.message_attributes(name, value);
        }
        let output = request
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(MessageId(output.message_id.unwrap_or_default()))
    }

    fn name(&self) -> &str {
        &self.url
    }
}
