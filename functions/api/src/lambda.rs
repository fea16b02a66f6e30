//! The messages API as a Lambda function: configuration from the environment, the DynamoDB and
//! SQS clients, the scheduler, the runtime.

use std::time::Duration;

use pipeline::config::ConfigError;
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::schedule::{Dispatch, EventBridgeScheduler, Lanes, OUTBOUND_QUEUE_URL};
use pipeline::store::{ContactHasher, DynamoStore, Retention, TABLE_NAME, dynamodb_client};

use crate::{Api, ApiConfig};

/// Runs the messages API Lambda until the runtime stops. A configuration error ends the process
/// at init with one line naming the setting.
pub async fn run() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = pipeline::aws::sdk_config().await;
    let env = pipeline::secrets::environment(&sdk)
        .await
        .unwrap_or_else(|error| pipeline::config::exit_at_init("api", &error));
    let exit = |error: ConfigError| -> ! { pipeline::config::exit_at_init("api", &error) };
    let mut config = ApiConfig::from_env(&env).unwrap_or_else(|e| exit(e));
    let retention = Retention::from_env(&env).unwrap_or_else(|e| exit(e));
    let hasher = ContactHasher::from_env(&env).unwrap_or_else(|e| exit(e));
    let table = env
        .optional(TABLE_NAME)
        .unwrap_or_else(|| exit(ConfigError::new(TABLE_NAME, "is not set")));
    let dispatch = Dispatch::from_env(&env)
        .and_then(|dispatch| {
            dispatch.ok_or_else(|| ConfigError::new(OUTBOUND_QUEUE_URL, "is not set"))
        })
        .unwrap_or_else(|e| exit(e));
    config.metrics = pipeline::metrics::Metrics::stdout("api");
    let sqs = enqueue_client(&sdk, config.enqueue_timeout.max(Duration::from_millis(50)));
    let store = DynamoStore::new(dynamodb_client(&sdk), table)
        .with_retention(retention)
        .with_hasher(hasher);
    let lanes = Lanes {
        transactional: SqsQueue::new(sqs.clone(), dispatch.lanes.transactional.url.clone()),
        bulk: SqsQueue::new(sqs.clone(), dispatch.lanes.bulk.url.clone()),
    };
    let scheduler = EventBridgeScheduler::new(&sdk, sqs, dispatch);
    crate::run(Api::new(config, store, lanes, scheduler)).await
}
