//! Worker Lambda entry point: [`worker::lambda::run`], the worker with its default hook (the
//! reply policy).

// One thread: a Lambda instance handles one batch at a time on a fraction of a vCPU (128-256
// MB), so worker threads would only cost init time and memory; a batch's records run
// concurrently on it all the same.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    worker::lambda::run().await
}
