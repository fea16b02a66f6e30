//! The worker's cost per record and per batch. Targets (issue 3): parse + dispatch per record
//! at most 20 us; a batch of 10 inbound messages, each answered through a fake Sinch that takes
//! 50 ms, in at most 80 ms (the replies go out concurrently, not one after another).
//!
//! Run: `cargo bench -p worker --bench worker`

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pipeline::clock::Clock;
use pipeline::envelope::{Envelope, SignatureHeaders};
use pipeline::handlers::Services;
use pipeline::queue::MemoryQueue;
use pipeline::reply::ReplyPolicy;
use pipeline::store::MemoryStore;
use serde_json::json;
use sinch::client::{ClientConfig, ConversationCredentials, SinchClient, Urls};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use worker::{Worker, handle_batch, process_record};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../sinch/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn record(message_id: &str, body: &str) -> serde_json::Value {
    let envelope = Envelope::new(
        body.as_bytes().to_vec(),
        SignatureHeaders {
            signature: "c2ln".into(),
            nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
            timestamp: "1763870400".into(),
            algorithm: Some("HmacSHA256".into()),
        },
        std::time::SystemTime::now(),
    );
    let attributes: serde_json::Map<String, serde_json::Value> = envelope
        .attributes()
        .map(|(n, v)| {
            (
                n.to_owned(),
                json!({"stringValue": v, "dataType": "String"}),
            )
        })
        .collect();
    json!({"messageId": message_id, "receiptHandle": "h", "body": envelope.queued_body(),
           "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": attributes})
}

fn event(records: Vec<serde_json::Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("event")
}

fn services(sinch_url: &str) -> Services<MemoryStore> {
    let mut config = ClientConfig::new(Urls {
        auth: sinch_url.into(),
        conversation: sinch_url.into(),
        sms: sinch_url.into(),
    });
    config.conversation = Some(ConversationCredentials {
        project_id: "p".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    Services {
        store: MemoryStore::new(),
        sinch: SinchClient::new(config).expect("client"),
        policy: ReplyPolicy::default(),
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        clock: Clock::System,
    }
}

/// Parsing alone, per kind.
fn parse(c: &mut Criterion) {
    for (name, file) in [
        (
            "conversation.message",
            "conversation/message_inbound_text.json",
        ),
        (
            "conversation.message_delivery_report",
            "conversation/message_delivery_failed.json",
        ),
        ("sms.mo_text", "sms/mo_text.json"),
        (
            "sms.recipient_delivery_report_sms",
            "sms/recipient_delivery_report.json",
        ),
    ] {
        let body = fixture(file);
        c.bench_function(&format!("parse/{name}"), |b| {
            b.iter(|| sinch::callback::parse(std::hint::black_box(body.as_bytes())))
        });
    }
}

/// One SQS record through the worker: envelope, parse, dispatch, handler (delivery report into
/// the in-memory store; no network).
fn per_record(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let worker = Worker {
        services: services("http://127.0.0.1:9"),
        dead_letters: MemoryQueue::new("dlq"),
        concurrency: 1,
    };
    let body = fixture("conversation/message_delivery_failed.json");
    c.bench_function("worker/record: parse + dispatch + delivery handler", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                event(vec![record("m", &body)])
                    .records
                    .pop()
                    .expect("one record")
            },
            |record| process_record(&worker, record, Instant::now() + Duration::from_secs(5)),
            BatchSize::SmallInput,
        )
    });
}

/// Ten inbound HELP messages, each answered through a Sinch that takes 50 ms.
fn batch_with_replies(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": "t", "expires_in": 3600})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"message_id": "01OUT"}))
                    .set_delay(Duration::from_millis(50)),
            )
            .mount(&server)
            .await;
        server
    });
    let worker = Arc::new(Worker {
        services: services(&server.uri()),
        dead_letters: MemoryQueue::new("dlq"),
        concurrency: 10,
    });
    let mut next = 0u64;
    let mut group = c.benchmark_group("worker/batch");
    group.sample_size(20);
    group.bench_function("10 inbound, each replied to a 50 ms Sinch", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                let records = (0..10)
                    .map(|i| {
                        next += 1;
                        let body = json!({"app_id": "app", "message": {
                            "id": format!("01IN{next}"), "contact_message": {"text_message": {"text": "HELP"}},
                            "channel_identity": {"channel": "WHATSAPP", "identity": format!("4670000{i:04}")}
                        }});
                        record(&format!("m{i}"), &body.to_string())
                    })
                    .collect();
                event(records)
            },
            |event| {
                let worker = worker.clone();
                async move {
                    let response = handle_batch(worker, event, Instant::now() + Duration::from_secs(5))
                        .await
                        .expect("batch");
                    assert!(response.batch_item_failures.is_empty());
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse, per_record, batch_with_replies);
criterion_main!(benches);
