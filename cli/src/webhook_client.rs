//! Posting freshly signed callbacks to a webhook URL, as Sinch does.

use std::time::{Duration, SystemTime};

use sinch::signature::{sign_headers, unix_seconds};

use crate::answer::{self, Answer};

/// An HTTP client for webhook traffic (connection reuse, bounded waits).
pub fn http_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// POSTs `body` to `url` signed with `secret` at `timestamp` (now when `None`) with a fresh
/// nonce.
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    body: Vec<u8>,
    timestamp: Option<u64>,
) -> Answer {
    let timestamp = timestamp.unwrap_or_else(|| unix_seconds(SystemTime::now()));
    let signed = sign_headers(secret, &body, &crate::samples::id(), timestamp);
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in signed.pairs() {
        request = request.header(name, value);
    }
    answer::send(request).await
}
