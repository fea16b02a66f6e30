//! The messages API as a Lambda function: configuration from the environment, the DynamoDB and
//! SQS clients, the runtime.

use std::time::Duration;

use pipeline::clock::Clock;
use pipeline::config::{ConfigError, Env};
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::store::{DynamoStore, dynamodb_client};

use crate::{Api, ApiConfig};

/// Runs the messages API Lambda until the runtime stops. A configuration error ends the process
/// at init with one line naming the setting.
pub async fn run() -> Result<(), lambda_http::Error> {
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
                required(crate::config::OUTBOUND_QUEUE_URL)?,
            ))
        })
        .unwrap_or_else(|error| pipeline::config::exit_at_init("api", &error));
    let api = Api {
        store: DynamoStore::new(dynamodb_client(&sdk), table),
        queue: SqsQueue::new(
            enqueue_client(&sdk, config.enqueue_timeout.max(Duration::from_millis(50))),
            queue_url,
        ),
        config,
        clock: Clock::System,
    };
    crate::run(api).await
}
