//! The messages API's own cost per send, with the in-memory store and queue (so no network is
//! measured). Target (issue 10): at most 50 us per request.
//!
//! Run: `cargo bench -p api --bench api`
//!
//! Building the request happens in the untimed setup; what is timed is `api::handle`: the key,
//! parsing and every validation rule, the idempotency claim, the contact read (window and
//! opt-out), storing ACCEPTED, the enqueue, completing the key and the answer. A replay of a
//! key is measured too.

use std::time::{Duration, SystemTime};

use api::request::Channels;
use api::{Api, ApiConfig};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lambda_http::http::Request as HttpRequest;
use lambda_http::{Body, Request};
use pipeline::clock::Clock;
use pipeline::queue::MemoryQueue;
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, InboundRecord, MemoryStore};

const NOW_MS: u64 = 1_764_576_000_000;

fn api() -> Api<MemoryStore, MemoryQueue> {
    Api {
        store: MemoryStore::new(),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: pipeline::queue::MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: ApiConfig {
            channels: Channels {
                conversation_app: Some("app-1".into()),
                sms_api: true,
                default_sms_sender: Some("46700000001".into()),
            },
            ..ApiConfig::default()
        },
        clock: Clock::Fixed(SystemTime::UNIX_EPOCH + Duration::from_millis(NOW_MS)),
    }
}

fn post(key: &str, body: &str) -> Request {
    HttpRequest::builder()
        .method("POST")
        .uri("https://api.example.com/messages")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::Text(body.to_owned()))
        .expect("a request")
}

const TEXT: &str = r#"{"to":"+46701234567","channel":"WHATSAPP","text":"Your order A-1042 has shipped and will arrive tomorrow.","metadata":{"order":"A-1042"}}"#;
const TEMPLATE: &str = r#"{"to":"+46701234567","channel":"WHATSAPP","fallback":["SMS"],"template":{"name":"order_shipped","language":"en_US","parameters":{"body[1]text":"A-1042","button[0]url[1]text":"A-1042"},"id":"01H","version":"latest","omni_parameters":{"order":"A-1042"}}}"#;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let api = api();
    runtime.block_on(async {
        api.store
            .record_inbound(
                &InboundRecord {
                    text_digest: None,
                    id: "01W".into(),
                    from: ContactKey::new("WHATSAPP", "46701234567"),
                    to: "app-1".into(),
                    kind: "text_message".into(),
                    text: Some("hi".into()),
                    media: Vec::new(),
                    contact_id: None,
                    conversation_id: None,
                    received_at_ms: NOW_MS - 1000,
                },
                None,
            )
            .await
            .expect("stored");
    });
    let mut n = 0u64;
    let mut group = c.benchmark_group("messages api");
    for (name, body) in [
        ("POST /messages, WhatsApp text", TEXT),
        (
            "POST /messages, WhatsApp template with SMS fallback",
            TEMPLATE,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    post(&format!("bench-{n}"), body)
                },
                |request| {
                    let response = runtime.block_on(api::handle(&api, request));
                    assert_eq!(response.status().as_u16(), 202);
                    // Keep the queue from growing without bound.
                    if api.lanes.transactional.len() > 10_000 {
                        api.lanes.transactional.take(usize::MAX);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    runtime.block_on(api::handle(&api, post("replayed", TEXT)));
    group.bench_function("POST /messages, a replay of a key", |b| {
        b.iter_batched(
            || post("replayed", TEXT),
            |request| {
                let response = runtime.block_on(api::handle(&api, request));
                assert_eq!(response.status().as_u16(), 202);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
