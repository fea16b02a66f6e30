//! Messages API Lambda entry point: logging, configuration, clients, run.

use std::convert::Infallible;
use std::time::Duration;

use api::{Api, ApiConfig};
use lambda_http::service_fn;
use pipeline::clock::Clock;
use pipeline::config::{ConfigError, Env};
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::store::{DynamoStore, dynamodb_client};

// One thread: a Lambda instance handles one event at a time on a fraction of a vCPU (128-256 MB),
// so worker threads would only cost init time and memory; its concurrency is asynchronous.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = pipeline::aws::sdk_config().await;
    let env = Env::process();
    let required = |name: &'static str| {
        env.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is not set"))
    };
    let (config, table, queue_url) = ApiConfig::from(&env)
        .and_then(|config| {
            Ok((
                config,
                required("TABLE_NAME")?,
                required(api::config::OUTBOUND_QUEUE_URL)?,
            ))
        })
        .unwrap_or_else(|error| {
            eprintln!("api: configuration error: {error}");
            std::process::exit(1)
        });
    let api = Api {
        store: DynamoStore::new(dynamodb_client(&sdk), table),
        queue: SqsQueue::new(
            enqueue_client(&sdk, config.enqueue_timeout.max(Duration::from_millis(50))),
            queue_url,
        ),
        config,
        clock: Clock::System,
    };
    let api = &api;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, Infallible>(api::handle(api, request).await)
    }))
    .await
}
