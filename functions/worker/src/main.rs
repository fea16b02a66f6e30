//! Worker Lambda entry point: logging, configuration, clients, run.

use pipeline::clock::Clock;
use pipeline::handlers::Services;
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::store::MemoryStore;
use sinch::client::SinchClient;
use worker::{Worker, WorkerConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = WorkerConfig::from_env().unwrap_or_else(|error| {
        eprintln!("worker: configuration error: {error}");
        std::process::exit(1)
    });
    let sdk = aws_config::load_from_env().await;
    let sinch = SinchClient::new(config.sinch.clone())?;
    if !sinch.has_conversation() {
        tracing::warn!("no Conversation API credentials: Conversation replies are disabled");
    }
    if !sinch.has_sms() {
        tracing::warn!("no SMS API credentials: SMS replies are disabled");
    }
    let worker = Worker {
        services: Services {
            store: MemoryStore::new(),
            sinch,
            policy: config.policy,
            app_id: config.app_id,
            idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
            clock: Clock::System,
        },
        dead_letters: SqsQueue::new(
            enqueue_client(&sdk, std::time::Duration::from_secs(5)),
            config.dead_letter_queue_url,
        ),
        concurrency: config.concurrency,
    };
    worker::run(worker).await
}
