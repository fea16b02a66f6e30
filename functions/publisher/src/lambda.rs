//! The publisher as a Lambda function: configuration from the environment, the EventBridge
//! client, the runtime.

use pipeline::config::Env;

use crate::{EventBridgeSink, Publisher, PublisherConfig};

/// Runs the publisher Lambda until the runtime stops. A configuration error ends the process at
/// init with one line naming the setting.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = PublisherConfig::from_env(&Env::process())
        .unwrap_or_else(|error| pipeline::config::exit_at_init("publisher", &error));
    let sdk = pipeline::aws::sdk_config().await;
    let sink = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.bus);
    crate::run(Publisher::new(sink, config.source)).await
}
