//! The receiver as a Lambda function: configuration from the environment (the webhook secret
//! from Secrets Manager), the SQS clients, the runtime.

use platform::queue::{SqsQueue, enqueue_client};

use crate::{Receiver, ReceiverConfig};

/// Runs the receiver Lambda until the runtime stops. A configuration error ends the process at
/// init with one line naming the setting.
pub async fn run() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = platform::aws::sdk_config().await;
    let config = match platform::secrets::environment(&sdk).await {
        Ok(env) => ReceiverConfig::from_env(&env),
        Err(error) => Err(error),
    }
    .unwrap_or_else(|error| platform::config::exit_at_init("receiver", &error));
    let sqs = enqueue_client(&sdk, config.enqueue_timeout);
    let receiver = Receiver::new(
        &config,
        SqsQueue::new(sqs.clone(), &config.queue_url),
        SqsQueue::new(sqs, &config.dead_letter_queue_url),
    )
    .with_metrics(platform::metrics::Metrics::stdout("receiver"));
    crate::run(receiver).await
}
