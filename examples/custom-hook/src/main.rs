//! The worker Lambda with the example's hook.

use custom_hook::{FixedOrders, OrderHook};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    worker::lambda::run_with(|config| OrderHook {
        orders: FixedOrders(vec![("1042".into(), "shipped, arriving Thursday".into())]),
        policy: config.policy.clone(),
    })
    .await
}
