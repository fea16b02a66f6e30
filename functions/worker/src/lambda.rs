//! The worker as a Lambda function, with any hook: configuration from the environment (secrets
//! from Secrets Manager), the clients, the runtime. The worker's own `main` runs it with the
//! reply policy; a worker of your own (`examples/custom-hook`) with a hook of yours.

use std::time::Duration;

use pipeline::config::ConfigError;
use pipeline::hook::Hook;
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::schedule::{EventBridgeScheduler, Lanes};
use pipeline::store::{DynamoStore, dynamodb_client};
use sinch::client::SinchClient;

use crate::wiring::Adapters;
use crate::{Worker, WorkerConfig};
use pipeline::store::TABLE_NAME;

/// Runs the worker Lambda with its default hook, the reply rules, until the runtime stops:
/// those of the SSM parameter `REPLY_RULES_PARAMETER` when set (read again every
/// `REPLY_RULES_CACHE_SECS`), else `REPLY_RULES` ([`pipeline::reply_rules`]).
pub async fn run() -> Result<(), lambda_runtime::Error> {
    run_inner(|config, sdk| {
        crate::wiring::reply_rules(config, Some(sdk))
            .unwrap_or_else(|error| pipeline::config::exit_at_init("worker", &error))
    })
    .await
}

/// Runs the worker Lambda until the runtime stops; `hook` builds the hook from the
/// configuration (it holds the reply policy `REPLY_RULES` set, to keep or to ignore).
///
/// A configuration error ends the process at init with one line naming the setting.
pub async fn run_with<H: Hook>(
    hook: impl FnOnce(&WorkerConfig) -> H,
) -> Result<(), lambda_runtime::Error> {
    run_inner(|config, _| hook(config)).await
}

async fn run_inner<H: Hook>(
    hook: impl FnOnce(&WorkerConfig, &aws_config::SdkConfig) -> H,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = pipeline::aws::sdk_config().await;
    // The Sinch client's HTTPS setup (its roots of trust) while the secrets are on their way.
    let (environment, http) = tokio::join!(pipeline::secrets::environment(&sdk), async {
        sinch::client::http_client(sinch::client::ClientConfig::default_connect_timeout())
    });
    let config = match environment {
        Ok(env) => WorkerConfig::from_env(&env),
        Err(error) => Err(error),
    }
    .and_then(|config| match &config.table_name {
        // In Lambda, state must outlive the process: the in-memory store is for the local
        // stack and tests only.
        Some(_) => Ok(config),
        None => Err(ConfigError::new(TABLE_NAME, "is not set")),
    })
    .unwrap_or_else(|error| pipeline::config::exit_at_init("worker", &error));
    // The worker's connect timeout is the default, which the HTTP client above was built with.
    let sinch = SinchClient::with_http(config.sinch.clone(), http?);
    if !sinch.has_conversation() {
        tracing::warn!("no Conversation API credentials: Conversation replies are disabled");
    }
    if !sinch.has_sms() {
        tracing::warn!("no SMS API credentials: SMS replies are disabled");
    }
    let hook = hook(&config, &sdk);
    let Some(dispatch) = config.dispatch.clone() else {
        pipeline::config::exit_at_init(
            "worker",
            &ConfigError::new(
                pipeline::schedule::BULK_QUEUE_URL,
                "is not set (the lanes and the scheduler are required in Lambda)",
            ),
        );
    };
    let sqs = enqueue_client(&sdk, Duration::from_secs(5));
    let store = DynamoStore::new(
        dynamodb_client(&sdk),
        config.table_name.clone().unwrap_or_default(),
    )
    .with_retention(config.retention)
    .with_hasher(config.hasher.clone());
    let worker = Worker::new(
        &config,
        Adapters {
            store,
            sinch,
            hook,
            dead_letters: SqsQueue::new(sqs.clone(), config.dead_letter_queue_url.clone()),
            lanes: Lanes {
                transactional: SqsQueue::new(sqs.clone(), dispatch.lanes.transactional.url.clone()),
                bulk: SqsQueue::new(sqs.clone(), dispatch.lanes.bulk.url.clone()),
            },
            scheduler: EventBridgeScheduler::new(&sdk, sqs, dispatch),
            metrics: pipeline::metrics::Metrics::stdout("worker"),
        },
    );
    crate::run(worker).await
}
