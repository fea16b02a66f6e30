//! What accepting a batch costs: per recipient in the API itself (in-memory store and queues,
//! so no network is measured), and a whole 10,000-recipient batch deployed-like, against
//! DynamoDB and SQS on moto_server (one contacts read per hundred recipients, a chunk item per
//! 500, a fan-out job per chunk). The second must stay well within the API's timeout (10 s by
//! default, 29 s at most).
//!
//! Run: `cargo bench -p api --bench batches` (the moto case needs `MOTO_SERVER`, as the tests;
//! without it, it is skipped).

use std::time::{Duration, Instant, SystemTime};

use api::request::Channels;
use api::{Api, ApiConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lambda_http::http::Request as HttpRequest;
use lambda_http::{Body, Request};
use pipeline::clock::Clock;
use pipeline::queue::{MemoryQueue, Queue, SqsQueue, enqueue_client};
use pipeline::schedule::{Lanes, MemoryScheduler};
use pipeline::store::{DynamoStore, MemoryStore, Store};
use serde_json::json;
use testkit::bench::Spread;

fn config() -> ApiConfig {
    ApiConfig {
        channels: Channels {
            conversation_app: Some("app-1".into()),
            sms_api: true,
            default_sms_sender: Some("46700000001".into()),
        },
        ..ApiConfig::default()
    }
}

fn batch(n: usize) -> String {
    let recipients: Vec<_> = (0..n)
        .map(|k| json!({"to": format!("+4670{k:07}"), "parameters": {"name": format!("Customer {k}")}}))
        .collect();
    json!({"channel": "WHATSAPP", "template": {"name": "winter_sale", "language": "en_US",
        "parameters": {"body[1]text": "${name}"}}, "metadata": {"campaign": "winter"},
        "recipients": recipients})
    .to_string()
}

fn post(key: &str, body: &str) -> Request {
    HttpRequest::builder()
        .method("POST")
        .uri("https://api.example.com/batches")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::Text(body.to_owned()))
        .expect("a request")
}

async fn accept<S: Store, Q: Queue>(api: &Api<S, Q>, key: &str, body: &str) {
    let response = api::handle(api, post(key, body)).await;
    assert_eq!(response.status().as_u16(), 202, "{:?}", response.body());
}

fn per_recipient(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("POST /batches");
    for n in [100, 1000, 10_000] {
        let body = batch(n);
        let mut key = 0u64;
        group.throughput(Throughput::Elements(n as u64));
        group.sample_size(if n == 10_000 { 10 } else { 30 });
        group.bench_function(format!("{n} recipients, in memory"), |b| {
            b.iter_batched(
                || {
                    key += 1;
                    let api = Api {
                        store: MemoryStore::new(),
                        lanes: Lanes {
                            transactional: MemoryQueue::new("outbound"),
                            bulk: MemoryQueue::new("bulk"),
                        },
                        scheduler: MemoryScheduler::new(),
                        config: config(),
                        clock: Clock::System,
                    };
                    (api, format!("k{key}"))
                },
                |(api, key)| runtime.block_on(accept(&api, &key, &body)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// 10,000 recipients against moto, timed end to end five times (once in test mode; not a
/// criterion loop: each run creates items that the next must not find).
fn against_moto(_: &mut Criterion) {
    testkit::bench::on_moto("POST /batches", |moto| async move {
        let sdk = moto.sdk_config().await;
        let store = DynamoStore::with_new_table(&sdk, "bench")
            .await
            .expect("a table");
        let outbound = moto.create_queue("outbound").await;
        let bulk = moto.create_queue("bulk").await;
        let sqs = enqueue_client(&sdk, Duration::from_secs(5));
        let api = Api {
            store,
            lanes: Lanes {
                transactional: SqsQueue::new(sqs.clone(), outbound),
                bulk: SqsQueue::new(sqs, bulk),
            },
            scheduler: MemoryScheduler::new(),
            config: config(),
            clock: Clock::System,
        };
        let body = batch(10_000);
        let mut times = Vec::new();
        for run in 0..testkit::bench::calls(5) {
            let started = Instant::now();
            accept(&api, &format!("moto-{run}-{:?}", SystemTime::now()), &body).await;
            times.push(started.elapsed());
        }
        eprintln!(
            "POST /batches, 10,000 recipients against moto ({} bytes of body): {}",
            body.len(),
            Spread::of(times)
        );
    });
}

criterion_group!(benches, per_recipient, against_moto);
criterion_main!(benches);
