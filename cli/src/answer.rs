//! What an HTTP endpoint answered, for the CLI's clients (signed callbacks to a webhook, the
//! messages API): one way to send a request and read its answer.

use std::time::{Duration, Instant};

/// What an endpoint answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status, or `None` when no answer came (connection refused, timeout).
    pub status: Option<u16>,
    /// The answer's headers (empty when none came).
    pub headers: reqwest::header::HeaderMap,
    /// The body, or what went wrong when no answer came.
    pub body: String,
    /// From the request's start to the whole body read.
    pub latency: Duration,
}

impl Answer {
    /// An answer that never came: `why`.
    pub fn none(why: impl Into<String>, latency: Duration) -> Self {
        Self {
            status: None,
            headers: reqwest::header::HeaderMap::new(),
            body: why.into(),
            latency,
        }
    }

    /// `202 {"id": ...}`, or `no answer <why>`: the status and the body, as the CLI prints them.
    pub fn line(&self) -> String {
        let status = self
            .status
            .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        format!("{status} {}", self.body)
    }

    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// Sends `request` and reads its whole answer.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let started = Instant::now();
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.unwrap_or_default();
            Answer {
                status: Some(status),
                headers,
                body,
                latency: started.elapsed(),
            }
        }
        Err(error) => Answer::none(error.to_string(), started.elapsed()),
    }
}
