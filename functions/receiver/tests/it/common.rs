//! Builders for API Gateway HTTP API (payload 2.0) requests, as Lambda delivers them.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::Request;
use platform::clock::Clock;
use receiver::ReceiverConfig;
use serde_json::{Map, Value, json};
use sinch::signature::{Tolerance, sign_headers};

pub const SECRET: &str = "test-webhook-secret";
pub const NONCE: &str = "01FJA8B4A7BM43YGWSG9GBV067";
/// The instant the tests stand at.
pub const NOW: u64 = 1_763_870_400;

pub fn clock() -> Clock {
    Clock::Fixed(UNIX_EPOCH + Duration::from_secs(NOW))
}

pub fn now() -> SystemTime {
    clock().now()
}

pub fn config(queue_url: &str, dead_letter_queue_url: &str) -> ReceiverConfig {
    ReceiverConfig {
        secrets: format!("{SECRET},second-secret")
            .parse()
            .expect("valid secrets"),
        queue_url: queue_url.into(),
        dead_letter_queue_url: dead_letter_queue_url.into(),
        tolerance: Tolerance::default(),
        max_body_bytes: 64 * 1024,
        enqueue_timeout: Duration::from_millis(500),
    }
}

/// Signature headers for `body`, signed with `secret` at `timestamp`.
pub fn signed(secret: &str, body: &[u8], timestamp: u64) -> Vec<(String, String)> {
    sign_headers(secret, body, NONCE, timestamp)
        .pairs()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .chain([("content-type".to_owned(), "application/json".to_owned())])
        .collect()
}

/// An API Gateway v2 event. UTF-8 bodies travel as text, others base64-encoded (as API Gateway
/// does for binary media), unless `force_base64`.
pub fn event(method: &str, headers: &[(String, String)], body: &[u8], force_base64: bool) -> Value {
    let mut header_map = Map::new();
    for (name, value) in headers {
        header_map.insert(name.clone(), Value::String(value.clone()));
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) if !force_base64 => (Value::String(text.to_owned()), false),
        _ => (Value::String(BASE64.encode(body)), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "POST /webhook",
        "rawPath": "/webhook",
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "id.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "id",
            "http": {
                "method": method,
                "path": "/webhook",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Sinch-Webhook"
            },
            "requestId": "apigw-request-id-1",
            "routeKey": "POST /webhook",
            "stage": "$default",
            "time": "23/Nov/2026:04:00:00 +0000",
            "timeEpoch": NOW * 1000
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

pub fn request(method: &str, headers: &[(String, String)], body: &[u8]) -> Request {
    from_event(&event(method, headers, body, false))
}

pub fn from_event(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

/// A signed POST of `body`, as Sinch would send it now.
pub fn sinch_post(body: &[u8]) -> Request {
    request("POST", &signed(SECRET, body, NOW), body)
}

pub fn fixture(path: &str) -> Vec<u8> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../sinch/fixtures/");
    std::fs::read(format!("{root}{path}")).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
