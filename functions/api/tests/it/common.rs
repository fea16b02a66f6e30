//! An API over the in-memory store and queue (or any store), and requests as API Gateway gives
//! them.

#![allow(dead_code)] // each test file uses its own part

use std::time::{Duration, SystemTime};

use api::request::Channels;
use api::{Api, ApiConfig};
use lambda_http::http::Request as HttpRequest;
use lambda_http::{Body, Request};
use pipeline::clock::Clock;
use pipeline::queue::MemoryQueue;
use pipeline::store::{ContactKey, InboundRecord, MemoryStore, Store};
use serde_json::Value;

pub const NOW_MS: u64 = 1_764_576_000_000;

pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(NOW_MS)
}

pub fn config() -> ApiConfig {
    ApiConfig {
        channels: Channels {
            conversation_app: Some("app-1".into()),
            sms_api: true,
            default_sms_sender: Some("46700000001".into()),
        },
        ..ApiConfig::default()
    }
}

pub fn api<S: Store>(store: S) -> Api<S, MemoryQueue> {
    Api {
        store,
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: pipeline::queue::MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(now()),
    }
}

pub fn memory_api() -> Api<MemoryStore, MemoryQueue> {
    api(MemoryStore::new())
}

/// `POST /messages` with `key` (none when `None`) and this body.
pub fn post(key: Option<&str>, body: &str) -> Request {
    let mut builder = HttpRequest::builder()
        .method("POST")
        .uri("https://api.example.com/messages")
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::Text(body.to_owned())).unwrap()
}

pub fn get(path: &str) -> Request {
    HttpRequest::builder()
        .method("GET")
        .uri(format!("https://api.example.com{path}"))
        .body(Body::Empty)
        .unwrap()
}

/// The status, the JSON body, and whether it was replayed.
pub async fn call<S: Store, Q: pipeline::queue::Queue>(
    api: &Api<S, Q>,
    request: Request,
) -> (u16, Value, bool) {
    let response = api::handle(api, request).await;
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotency-replayed").is_some();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body, replayed)
}

/// The contact wrote to us at `at_ms`: WhatsApp's window opens.
pub async fn wrote<S: Store>(store: &S, channel: &str, number: &str, at_ms: u64) {
    store
        .record_inbound(
            &InboundRecord {
                text_digest: None,
                id: ulid::Ulid::generate().to_string(),
                from: ContactKey::new(channel, number),
                to: "app-1".into(),
                kind: "text_message".into(),
                text: Some("hi".into()),
                media: Vec::new(),
                contact_id: None,
                conversation_id: None,
                received_at_ms: at_ms,
            },
            None,
        )
        .await
        .unwrap();
}

/// The same request as API Gateway gives it after IAM authorization of `arn`, on `stage`.
pub fn signed_by(request: lambda_http::Request, arn: &str, stage: &str) -> lambda_http::Request {
    use lambda_http::RequestExt;
    let context: lambda_http::request::RequestContext = serde_json::from_value(serde_json::json!({
        "routeKey": "ANY /messages", "accountId": "123456789012", "stage": stage,
        "requestId": "r", "apiId": "a", "domainName": "d", "domainPrefix": "d", "time": "t", "timeEpoch": 0,
        "http": {"method": "GET", "path": "/messages", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
        "authorizer": {"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA", "userArn": arn, "userId": "AIDA"}}
    }))
    .expect("an HTTP API request context");
    request.with_request_context(context)
}
