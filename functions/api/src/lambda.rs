//! The messages API as a Lambda function: configuration from the environment, the DynamoDB and
//! SQS clients, the scheduler, the runtime.

use std::time::Duration;

use pipeline::clock::Clock;
use pipeline::config::ConfigError;
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::schedule::{EventBridgeScheduler, LaneQueue, Lanes};
use pipeline::store::{DynamoStore, dynamodb_client};

use crate::config::{
    BULK_QUEUE_ARN, BULK_QUEUE_URL, OUTBOUND_QUEUE_ARN, OUTBOUND_QUEUE_URL, SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN,
};
use crate::{Api, ApiConfig};

/// Runs the messages API Lambda until the runtime stops. A configuration error ends the process
/// at init with one line naming the setting.
pub async fn run() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = pipeline::aws::sdk_config().await;
    let env = pipeline::secrets::environment(&sdk)
        .await
        .unwrap_or_else(|error| pipeline::config::exit_at_init("api", &error));
    let required = |name: &'static str| {
        env.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is not set"))
    };
    let lane = |url: &'static str, arn: &'static str| -> Result<LaneQueue, ConfigError> {
        Ok(LaneQueue {
            url: required(url)?,
            arn: required(arn)?,
        })
    };
    let settings = ApiConfig::from(&env).and_then(|config| {
        Ok((
            (
                config,
                pipeline::store::Retention::from_env(&env)?,
                pipeline::store::ContactHasher::from_env(&env)?,
            ),
            required("TABLE_NAME")?,
            Lanes {
                transactional: lane(OUTBOUND_QUEUE_URL, OUTBOUND_QUEUE_ARN)?,
                bulk: lane(BULK_QUEUE_URL, BULK_QUEUE_ARN)?,
            },
            required(SCHEDULER_ROLE_ARN)?,
            env.optional(SCHEDULE_GROUP)
                .unwrap_or_else(|| "default".to_owned()),
        ))
    });
    let ((mut config, retention, hasher), table, queues, role, group) =
        settings.unwrap_or_else(|error| pipeline::config::exit_at_init("api", &error));
    config.metrics = pipeline::metrics::Metrics::stdout("api");
    let sqs = enqueue_client(&sdk, config.enqueue_timeout.max(Duration::from_millis(50)));
    let api = Api {
        store: DynamoStore::new(dynamodb_client(&sdk), table)
            .with_retention(retention)
            .with_hasher(hasher),
        lanes: Lanes {
            transactional: SqsQueue::new(sqs.clone(), queues.transactional.url.clone()),
            bulk: SqsQueue::new(sqs.clone(), queues.bulk.url.clone()),
        },
        scheduler: EventBridgeScheduler::new(&sdk, sqs, role, group, queues),
        config,
        clock: Clock::System,
    };
    crate::run(api).await
}
