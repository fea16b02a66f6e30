//! The Idempotency-Key semantics of the IETF draft, against the in-memory store and against
//! DynamoDB on moto_server: replay, reuse with another body, in flight, expiry, per caller.

mod common;

use std::time::Duration;

use api::Api;
use common::*;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use pipeline::clock::Clock;
use pipeline::queue::MemoryQueue;
use pipeline::store::{ClaimRequest, DynamoStore, MemoryStore, Store};
use serde_json::json;
use testkit::Moto;

const BODY: &str = r#"{"to":"+46701234567","channel":"SMS_API","text":"Your code is 1234"}"#;

/// The request as API Gateway gives it after IAM authorization.
fn as_caller(mut request: Request, arn: &str) -> Request {
    let context: RequestContext = serde_json::from_value(json!({
        "routeKey": "POST /messages", "accountId": "123456789012", "stage": "$default",
        "requestId": "r", "apiId": "a", "domainName": "d", "domainPrefix": "d", "time": "t", "timeEpoch": 0,
        "http": {"method": "POST", "path": "/messages", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4", "userAgent": "t"},
        "authorizer": {"iam": {"accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA", "userArn": arn, "userId": "AIDA"}}
    }))
    .expect("an HTTP API request context");
    request = request.with_request_context(context);
    request
}

async fn replays_the_first_answer<S: Store>(api: Api<S, MemoryQueue>) {
    let (status, first, replayed) = call(&api, post(Some("key-1"), BODY)).await;
    assert_eq!((status, replayed), (202, false));
    let (status, again, replayed) = call(&api, post(Some("key-1"), BODY)).await;
    assert_eq!(
        (status, replayed),
        (202, true),
        "the same key and body replay"
    );
    assert_eq!(again, first, "the same answer");
    assert_eq!(api.queue.len(), 1, "queued once");
}

async fn another_body_under_the_same_key_is_422<S: Store>(api: Api<S, MemoryQueue>) {
    assert_eq!(call(&api, post(Some("key-2"), BODY)).await.0, 202);
    let other = BODY.replace("1234", "9999");
    let (status, answer, _) = call(&api, post(Some("key-2"), &other)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    assert_eq!(api.queue.len(), 1);
}

async fn a_key_in_flight_is_409<S: Store>(api: Api<S, MemoryQueue>) {
    // Another request holds the key (its lease runs), as if it were still being handled.
    let scoped = format!("api/{}/key-3", digest("local"));
    api.store
        .claim(&ClaimRequest {
            key: &scoped,
            payload_hash: "h",
            lease_until_ms: NOW_MS + 30_000,
            now_ms: NOW_MS,
        })
        .await
        .unwrap();
    let response = api::handle(&api, post(Some("key-3"), BODY)).await;
    assert_eq!(response.status().as_u16(), 409);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(api.queue.is_empty());
}

async fn a_key_expires_after_24_hours<S: Store + Clone>(api: Api<S, MemoryQueue>) {
    assert_eq!(call(&api, post(Some("key-4"), BODY)).await.0, 202);
    let later = Api {
        store: api.store.clone(),
        queue: MemoryQueue::new("outbound"),
        config: config(),
        clock: Clock::Fixed(now() + Duration::from_secs(24 * 3600 + 1)),
    };
    let (status, _, replayed) = call(&later, post(Some("key-4"), BODY)).await;
    assert_eq!((status, replayed), (202, false), "a new send");
    assert_eq!(later.queue.len(), 1);
}

async fn keys_are_scoped_to_the_caller<S: Store>(api: Api<S, MemoryQueue>) {
    let alice = "arn:aws:iam::123456789012:user/alice";
    let orders = "arn:aws:sts::123456789012:assumed-role/orders/i-0abc";
    let (status, _, replayed) = call(&api, as_caller(post(Some("shared"), BODY), alice)).await;
    assert_eq!((status, replayed), (202, false));
    let (status, _, replayed) = call(&api, as_caller(post(Some("shared"), BODY), orders)).await;
    assert_eq!(
        (status, replayed),
        (202, false),
        "another caller, its own key"
    );
    // Another session of the same role is the same caller.
    let other_session = "arn:aws:sts::123456789012:assumed-role/orders/i-0def";
    let (status, _, replayed) =
        call(&api, as_caller(post(Some("shared"), BODY), other_session)).await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(api.queue.len(), 2);
}

async fn a_rule_refusal_is_remembered<S: Store>(api: Api<S, MemoryQueue>) {
    let closed = r#"{"to":"+46701234567","channel":"WHATSAPP","text":"hi"}"#;
    assert_eq!(call(&api, post(Some("key-5"), closed)).await.0, 422);
    // The contact writes: the same key still answers what it answered.
    wrote(&api.store, "WHATSAPP", "46701234567", NOW_MS).await;
    let (status, _, replayed) = call(&api, post(Some("key-5"), closed)).await;
    assert_eq!((status, replayed), (422, true));
    assert_eq!(
        call(&api, post(Some("key-6"), closed)).await.0,
        202,
        "a new key"
    );
}

fn digest(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text.as_bytes()))
}

fn memory() -> Api<MemoryStore, MemoryQueue> {
    api(MemoryStore::new())
}

async fn dynamo(moto: &Moto) -> Api<DynamoStore, MemoryQueue> {
    api(
        DynamoStore::with_new_table(&moto.sdk_config().await, "sinch-hooks")
            .await
            .expect("moto creates the table"),
    )
}

testkit::for_both_stores!(
    replays_the_first_answer,
    another_body_under_the_same_key_is_422,
    a_key_in_flight_is_409,
    a_key_expires_after_24_hours,
    keys_are_scoped_to_the_caller,
    a_rule_refusal_is_remembered,
);

/// The queue unreachable: 503, the key given back, and the message FAILED so that the worker
/// would never send it even if the queue had taken it; the retry is a new, single send.
#[tokio::test]
async fn a_queue_outage_is_503_and_the_retry_sends_once() {
    let store = MemoryStore::new();
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let broken = Api {
        store: store.clone(),
        queue: pipeline::queue::SqsQueue::new(
            pipeline::queue::enqueue_client(&sdk, Duration::from_millis(500)),
            "http://127.0.0.1:1/queue/outbound",
        ),
        config: config(),
        clock: Clock::Fixed(now()),
    };
    let response = api::handle(&broken, post(Some("key-7"), BODY)).await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let messages = store.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].status, "FAILED");
    assert_eq!(
        messages[0].reason().map(|r| r.code.as_str()),
        Some("ENQUEUE_FAILED")
    );

    let working = api(store.clone());
    let (status, answer, replayed) = call(&working, post(Some("key-7"), BODY)).await;
    assert_eq!(
        (status, replayed),
        (202, false),
        "the key was given back: {answer}"
    );
    assert_eq!(working.queue.len(), 1);
}
