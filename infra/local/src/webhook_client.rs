//! Posting freshly signed callbacks to a webhook URL, as Sinch does.

use std::time::{Duration, Instant, SystemTime};

use sinch::signature::{sign_headers, unix_seconds};

/// What an endpoint answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status, or `None` when no answer came (connection refused, timeout).
    pub status: Option<u16>,
    pub body: String,
    pub latency: Duration,
}

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
    let started = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Answer {
                status: Some(status),
                body,
                latency: started.elapsed(),
            }
        }
        Err(error) => Answer {
            status: None,
            body: error.to_string(),
            latency: started.elapsed(),
        },
    }
}
