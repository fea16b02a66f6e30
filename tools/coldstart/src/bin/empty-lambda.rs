//! An empty Rust Lambda: the runtime and one handler that answers `{}`. What a cold start costs
//! when a function does nothing of its own (`tools/coldstart` compares every function to it).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({}))
    }))
    .await
}
