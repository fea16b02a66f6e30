//! Publisher Lambda entry point: logging, configuration, the EventBridge client, run.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use pipeline::config::Env;
use publisher::{EventBridgeSink, Pending, Publisher, PublisherConfig};

// One thread: a Lambda instance handles one batch at a time on a fraction of a vCPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = PublisherConfig::from(&Env::process()).unwrap_or_else(|error| {
        eprintln!("publisher: configuration error: {error}");
        std::process::exit(1)
    });
    let sdk = pipeline::aws::sdk_config().await;
    let sink = EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), config.bus);
    let publisher = Arc::new(Publisher::new(sink, config.source));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let publisher = publisher.clone();
        async move {
            let deadline = publisher::deadline_from(event.context.deadline);
            let records: Vec<Pending> = event
                .payload
                .records
                .iter()
                .map(Pending::from_record)
                .collect();
            let published = publisher::publish(&publisher, &records, deadline).await;
            Ok::<_, lambda_runtime::Error>(published.response())
        }
    }))
    .await
}
