//! Receiver Lambda entry point: logging, configuration, clients, run.

use pipeline::queue::{SqsQueue, enqueue_client};
use receiver::{Receiver, ReceiverConfig};

// One thread: a Lambda instance handles one event at a time on a fraction of a vCPU (128-256 MB),
// so worker threads would only cost init time and memory; its concurrency is asynchronous.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = pipeline::aws::sdk_config().await;
    let config = match pipeline::secrets::environment(&sdk).await {
        Ok(env) => ReceiverConfig::from(&env),
        Err(error) => Err(error),
    }
    .unwrap_or_else(|error| {
        // One line, naming the variable; Lambda reports the failed init.
        eprintln!("receiver: configuration error: {error}");
        std::process::exit(1)
    });
    let sqs = enqueue_client(&sdk, config.enqueue_timeout);
    let receiver = Receiver::new(
        &config,
        SqsQueue::new(sqs.clone(), &config.queue_url),
        SqsQueue::new(sqs, &config.dead_letter_queue_url),
    )
    .with_metrics(pipeline::metrics::Metrics::stdout("receiver"));
    receiver::run(receiver).await
}
