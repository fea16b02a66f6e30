//! What a caller gives reaches Sinch field for field: a message posted to the messages API
//! (through the API, its queue and the worker) arrives at the fake Sinch as the very same
//! `message` object, whatever its kind and fields, known to this version or not. Our own fields
//! (`correlation_id`, `message_metadata`, the recipient) are added beside it, never inside.

use super::common;

use std::time::Duration;

use api::Api;
use common::*;
use lambda_http::{Body, Request};
use pipeline::clock::Clock;
use pipeline::queue::MemoryQueue;
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, InboundRecord, MemoryStore};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use worker::{RecordOutcome, Worker, process_batch};

const SEND: &str = "/v1/projects/p/messages:send";

fn api(store: MemoryStore) -> Api<MemoryStore, MemoryQueue> {
    Api {
        store,
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: pipeline::queue::MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: api::ApiConfig {
            channels: api::request::Channels {
                conversation_app: Some("app-1".into()),
                sms_api: true,
                default_sms_sender: Some("46700000001".into()),
            },
            ..api::ApiConfig::default()
        },
        clock: Clock::System,
    }
}

fn post(key: &str, body: &Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/messages")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::Text(body.to_string()))
        .unwrap()
}

/// The recipient wrote a minute ago: WhatsApp's window is open.
async fn wrote(store: &MemoryStore, identity: &str) {
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    store
        .record_inbound(
            &InboundRecord {
                text_digest: None,
                id: format!("in-{identity}"),
                from: ContactKey::new("WHATSAPP", identity),
                to: "app-1".into(),
                kind: "text_message".into(),
                text: Some("hi".into()),
                media: Vec::new(),
                contact_id: None,
                conversation_id: None,
                received_at_ms: now - 60_000,
            },
            None,
        )
        .await
        .unwrap();
}

/// Posts `message` to the API, runs the job it queued through the worker, and answers what the
/// fake Sinch received for it.
async fn through(sinch: &wiremock::MockServer, key: &str, request: Value) -> Result<Value, String> {
    let store = MemoryStore::new();
    wrote(&store, "46701234567").await;
    let api = api(store.clone());
    let response = api::handle(&api, post(key, &request)).await;
    if response.status() != 202 {
        return Err(format!("{}: {:?}", response.status(), response.body()));
    }
    let worker = std::sync::Arc::new(Worker {
        services: services(store, sinch),
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 1,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 3,
        store_health: Default::default(),
    });
    let queued = api.lanes.transactional.take(1);
    let job = pipeline::jobs::parse(queued[0].envelope.queued_body().as_bytes())
        .map_err(|e| e.to_string())?;
    let outcomes = process_batch(worker, event(vec![job_record("m", &job, 1)]), deadline()).await;
    if !matches!(outcomes[0].1, RecordOutcome::Handled { .. }) {
        return Err(format!("{outcomes:?}"));
    }
    let reference = format!("sinch-hooks:{}", job.id);
    sinch
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == SEND)
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap_or_default())
        .find(|body| body["correlation_id"] == reference.as_str())
        .ok_or_else(|| "nothing reached Sinch".to_owned())
}

fn whatsapp(message: Value) -> Value {
    json!({"to": "+46701234567", "channel": "WHATSAPP", "message": message})
}

#[tokio::test]
async fn cards_carousels_media_and_templates_arrive_whole() {
    let sinch = fake_sinch().await;
    let cases = [
        json!({"card_message": {"title": "Your order", "description": "Shipped",
            "media_message": {"url": "https://x.example/p.png", "thumbnail_url": "https://x.example/t.png"},
            "height": "MEDIUM",
            "choices": [
                {"text_message": {"text": "Track"}, "postback_data": "track"},
                {"url_message": {"title": "Open", "url": "https://x.example/o"}},
                {"call_message": {"title": "Call us", "phone_number": "+46700000000"}}]}}),
        json!({"carousel_message": {"cards": [
                {"title": "A", "description": "a", "choices": [{"text_message": {"text": "Pick A"}}]},
                {"title": "B", "description": "b", "media_message": {"url": "https://x.example/b.png"}}],
            "choices": [{"text_message": {"text": "More"}, "postback_data": "more"}]}}),
        json!({"media_message": {"url": "https://x.example/doc.pdf",
            "thumbnail_url": "https://x.example/doc.png", "filename_override": "invoice.pdf"}}),
        json!({"template_message": {
            "channel_template": {"WHATSAPP": {"template_id": "order_shipped", "language_code": "en_US",
                "parameters": {"body[1]text": "A-1042"}, "a_field_sinch_adds_later": true}},
            "omni_template": {"template_id": "01H", "version": "latest", "language_code": "en"}}}),
        json!({"choice_message": {"text_message": {"text": "Pick"},
            "choices": [{"location_message": {"coordinates": {"latitude": 59.3, "longitude": 18.0}, "title": "Here"}}],
            "message_properties": {"whatsapp_header": "Hi"}},
            "explicit_channel_message": {"WHATSAPP": "{\"type\":\"text\"}"},
            "agent": {"display_name": "Ada", "type": "BOT"}}),
        json!({"list_message": {"title": "Menu", "sections": [{"title": "Mains", "items": [
            {"choice": {"title": "Soup", "postback_data": "soup"}}]}],
            "message_properties": {"catalog_id": "c1"}}}),
        json!({"hologram_message": {"depth": 3, "nested": {"deep": [1, "two", false, null]}}}),
    ];
    for (n, message) in cases.into_iter().enumerate() {
        let received = through(&sinch, &format!("case-{n}"), whatsapp(message.clone()))
            .await
            .unwrap_or_else(|e| panic!("{message}: {e}"));
        assert_eq!(received["message"], message, "field for field");
    }
    // Media given the short way keeps its thumbnail too.
    let received = through(
        &sinch,
        "short-media",
        json!({"to": "+46701234567", "channel": "WHATSAPP", "media": {
            "url": "https://x.example/p.png", "thumbnail_url": "https://x.example/t.png"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        received["message"],
        json!({"media_message": {"url": "https://x.example/p.png", "thumbnail_url": "https://x.example/t.png"}})
    );
}

/// Any JSON value (no floats: they do not survive every round trip exactly).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        "\\PC{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A message Sinch may take: one kind (known or not) with any fields, and any of the fields that
/// sit beside the kind.
fn message() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just("card_message".to_owned()),
        Just("choice_message".to_owned()),
        Just("location_message".to_owned()),
        Just("contact_info_message".to_owned()),
        Just("list_message".to_owned()),
        Just("media_message".to_owned()),
        "[a-z]{3,8}_message".prop_filter("not a field beside the kind", |k| {
            sinch::client::is_kind(k) && k != "text_message" && k != "template_message"
        }),
    ];
    let body = prop::collection::btree_map(
        "[a-z_]{1,10}".prop_filter("limits apply to these", |k| {
            !["choices", "cards"].contains(&k.as_str())
        }),
        value(),
        0..6,
    );
    let beside = prop::collection::btree_map(
        prop_oneof![
            Just("explicit_channel_message".to_owned()),
            Just("channel_specific_message".to_owned()),
            Just("agent".to_owned()),
            Just("a_field_sinch_adds_later".to_owned()),
        ],
        value(),
        0..3,
    );
    (kind, body, beside).prop_map(|(kind, body, beside)| {
        let mut message: Map<String, Value> = beside.into_iter().collect();
        message.insert(kind, Value::Object(body.into_iter().collect()));
        Value::Object(message)
    })
}

#[test]
fn any_accepted_message_reaches_sinch_as_given() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sinch = runtime.block_on(fake_sinch());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&message(), |message| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let received = runtime
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        through(&sinch, &format!("prop-{n}"), whatsapp(message.clone())),
                    )
                    .await
                })
                .map_err(|_| TestCaseError::fail("timed out"))?
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(&received["message"], &message);
            Ok(())
        })
        .unwrap();
}
