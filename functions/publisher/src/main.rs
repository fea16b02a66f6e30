//! Publisher Lambda entry point: [`publisher::lambda::run`].

// One thread: a Lambda instance handles one batch at a time on a fraction of a vCPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    publisher::lambda::run().await
}
