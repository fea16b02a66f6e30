//! The AWS SDK configuration the Lambdas start with: the standard chain (credentials, region),
//! and for local runs (`sam local`, a container next to moto or LocalStack) every AWS API at
//! one endpoint.
//!
//! | variable | in AWS | locally |
//! |---|---|---|
//! | `SINCH_HOOKS_AWS_ENDPOINT` | empty (the template declares it so `sam local --env-vars` can set it) | `http://172.17.0.1:5000`, say |
//!
//! Not `AWS_ENDPOINT_URL`, which the SDK also reads (and `cargo lambda watch` runs use): declared
//! empty in the template, the SDK would warn about it at every cold start in AWS.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::Env;

/// Every AWS API at this endpoint, when set and not empty.
pub const AWS_ENDPOINT: &str = "SINCH_HOOKS_AWS_ENDPOINT";

/// The SDK configuration from the environment.
pub async fn sdk_config() -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    match Env::process().optional(AWS_ENDPOINT) {
        Some(endpoint) => loader.endpoint_url(endpoint),
        None => loader,
    }
    .load()
    .await
}
