//! Receiver Lambda entry point: [`receiver::lambda::run`].

// One thread: a Lambda instance handles one event at a time on a fraction of a vCPU (128-256 MB),
// so worker threads would only cost init time and memory; its concurrency is asynchronous.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    receiver::lambda::run().await
}
