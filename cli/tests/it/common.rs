//! `sinch-hooks serve` as a process, for black-box tests over HTTP.

#![allow(dead_code)] // each test file uses its own part

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use sinch::signature::{sign_headers, unix_seconds};

pub const SECRET: &str = "serve-test-secret";

/// A `sinch-hooks serve` process, killed when dropped.
pub struct Serve {
    child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(extra_args: &[&str], env: &[(&str, &str)]) -> Serve {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // Quick redeliveries: the visibility timeout as short as the function timeout allows (AWS,
    // and serve, refuse a shorter one).
    let given = |name: &str| extra_args.contains(&name);
    let function_timeout = extra_args
        .iter()
        .position(|arg| *arg == "--function-timeout-secs")
        .and_then(|at| extra_args.get(at + 1))
        .copied()
        .unwrap_or("4");
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"));
    command.args(["serve", "--port", &port.to_string()]);
    if !given("--visibility-timeout-secs") {
        command.args(["--visibility-timeout-secs", function_timeout]);
    }
    if !given("--function-timeout-secs") {
        command.args(["--function-timeout-secs", function_timeout]);
    }
    command
        .args(extra_args)
        .env("SINCH_WEBHOOK_SECRET", SECRET)
        .env("MAX_BODY_BYTES", "65536")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(match std::env::var_os("SERVE_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("the log file")),
            None => Stdio::null(),
        });
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("sinch-hooks serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let serve = Serve { child, base };
    let until = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{}/status", serve.base)).is_err() {
        assert!(Instant::now() < until, "serve did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

impl Serve {
    pub fn post(&self, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut request = client
            .post(format!("{}/webhook", self.base))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn post_signed(&self, secret: &str, body: &[u8], timestamp: u64) -> (u16, Value) {
        let signed = sign_headers(secret, body, &ulid::Ulid::generate().to_string(), timestamp);
        let headers: Vec<(&str, String)> = signed
            .pairs()
            .iter()
            .map(|(n, v)| (*n, v.to_string()))
            .collect();
        self.post(&headers, body)
    }

    pub fn status(&self) -> Value {
        reqwest::blocking::get(format!("{}/status", self.base))
            .unwrap()
            .json()
            .unwrap()
    }

    /// Waits until the queue is empty and `done` holds for the status.
    pub fn wait_for(&self, done: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status();
            if status["queue_visible"] == 0 && status["queue_in_flight"] == 0 && done(&status) {
                return status;
            }
            assert!(Instant::now() < until, "not reached: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn now() -> u64 {
    unix_seconds(SystemTime::now())
}

pub fn inbound(id: &str, text: &str) -> Vec<u8> {
    format!(
        r#"{{"app_id":"app","message":{{"id":"{id}","contact_message":{{"text_message":{{"text":"{text}"}}}},"channel_identity":{{"channel":"WHATSAPP","identity":"46701234567","app_id":"app"}}}}}}"#
    )
    .into_bytes()
}

/// What `POST` answered: status, whether it was a replay, the body.
pub struct Answer {
    pub status: u16,
    pub replayed: bool,
    pub body: Value,
}

/// Posts `body` under `key` as a client of the messages API should: while the answer is 409
/// (the key in flight) or 503 (the store slow or away), it waits at least what `Retry-After`
/// says, with exponential backoff and full jitter (`retry-policies`), and posts again, for up to
/// `budget`. Every 409 and 503 must carry `Retry-After`. Returns the last answer.
pub async fn post_as_a_client(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
    budget: Duration,
) -> Answer {
    use retry_policies::{Jitter, RetryDecision, RetryPolicy, policies::ExponentialBackoff};
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(200), Duration::from_secs(5))
        .jitter(Jitter::Full)
        .build_with_total_retry_duration(budget);
    let started = SystemTime::now();
    let mut retries = 0;
    loop {
        let response = client
            .post(url)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{key}: {error}"));
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotency-replayed");
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or_default();
        if !matches!(status, 409 | 503) {
            return Answer {
                status,
                replayed,
                body,
            };
        }
        let Some(retry_after) = retry_after else {
            panic!("{key}: {status} without Retry-After: {body}");
        };
        let RetryDecision::Retry { execute_after } = policy.should_retry(started, retries) else {
            return Answer {
                status,
                replayed,
                body,
            };
        };
        let backoff = execute_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(backoff.max(retry_after)).await;
        retries += 1;
    }
}
