//! What the guards cost per send: each one alone (the country check needs no store; the
//! velocity limit and the monthly cap each one conditional write, the velocity limit a read
//! before it), and a whole `POST /messages` with every guard off and on, in memory; then the
//! store calls themselves against DynamoDB on moto_server, where the network is what costs.
//!
//! Run: `cargo bench -p api --bench guards` (the moto case needs `MOTO_SERVER`, as the tests;
//! without it, it is skipped).

use std::time::Instant;

use api::guards::{Guards, Velocity};
use api::request::Channels;
use api::{Api, ApiConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::Body;
use lambda_http::http::Request as HttpRequest;
use pipeline::clock::Clock;
use pipeline::queue::MemoryQueue;
use pipeline::schedule::{Lanes, MemoryScheduler};
use pipeline::store::{DynamoStore, MemoryStore};
use serde_json::json;
use testkit::bench::Spread;

fn every_guard() -> Guards {
    Guards {
        allowed_countries: pipeline::send_rules::Countries::of(["46", "47", "358"]),
        velocity: Some(Velocity {
            limit: u32::MAX,
            window_ms: 3_600_000,
            prefix_digits: 6,
        }),
        monthly_caps: [("SMS_API".to_owned(), u32::MAX)].into_iter().collect(),
        fast_lane_batch_callers: Vec::new(),
    }
}

fn api(guards: Guards) -> Api<MemoryStore, MemoryQueue> {
    Api {
        store: MemoryStore::new(),
        lanes: Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: MemoryScheduler::new(),
        config: ApiConfig {
            channels: Channels {
                conversation_app: Some("app-1".into()),
                sms_api: true,
                default_sms_sender: Some("46700000001".into()),
            },
            guards,
            ..ApiConfig::default()
        },
        clock: Clock::System,
    }
}

fn per_send(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let guards = every_guard();
    let store = MemoryStore::new();
    let sms_api = ["SMS_API".to_owned()];
    let mut group = c.benchmark_group("guards, per send");
    group.bench_function("country allow-list", |b| {
        b.iter(|| guards.country(&sms_api, std::hint::black_box("+46701234567")))
    });
    let mut k = 0u64;
    group.bench_function("velocity limit, in memory", |b| {
        b.iter(|| {
            k += 1;
            let to = format!("+4670{:07}", k % 1_000_000);
            runtime
                .block_on(guards.velocity(&store, &sms_api, &to, 1_764_576_000_000))
                .expect("under the limit")
        })
    });
    group.bench_function("monthly cap, in memory", |b| {
        b.iter(|| {
            runtime
                .block_on(guards.monthly_cap(&store, "SMS_API", 1, 1_764_576_000_000))
                .expect("under the cap")
        })
    });
    for (name, guards) in [("off", Guards::default()), ("all on", every_guard())] {
        let api = api(guards);
        let mut key = 0u64;
        group.bench_function(format!("POST /messages, guards {name}, in memory"), |b| {
            b.iter(|| {
                key += 1;
                let body = json!({"to": format!("+4670{:07}", key % 1_000_000), "channel": "SMS_API", "text": "Your code is 1234"});
                let request = HttpRequest::builder()
                    .method("POST")
                    .uri("https://api.example.com/messages")
                    .header("idempotency-key", format!("k{key}"))
                    .body(Body::Text(body.to_string()))
                    .expect("a request");
                let response = runtime.block_on(api::handle(&api, request));
                assert_eq!(response.status().as_u16(), 202);
            })
        });
    }
    group.finish();
}

/// The guards' store calls against moto: 200 of each (20 in test mode), timed one by one.
fn against_moto(_: &mut Criterion) {
    testkit::bench::on_moto("guards", |moto| async move {
        let sdk = moto.sdk_config().await;
        let store = DynamoStore::with_new_table(&sdk, "bench")
            .await
            .expect("a table");
        let guards = every_guard();
        let mut velocity = Vec::new();
        let mut cap = Vec::new();
        for k in 0..testkit::bench::calls(200) as u64 {
            // Ten numbers a prefix: the window item is read and rewritten, as under load.
            let to = format!("+467{:04}{:04}", k / 10, k);
            let started = Instant::now();
            guards
                .velocity(&store, &["SMS_API".to_owned()], &to, 1_764_576_000_000 + k)
                .await
                .expect("under the limit");
            velocity.push(started.elapsed());
            let started = Instant::now();
            guards
                .monthly_cap(&store, "SMS_API", 1, 1_764_576_000_000)
                .await
                .expect("under the cap");
            cap.push(started.elapsed());
        }
        eprintln!(
            "velocity limit (GetItem + conditional UpdateItem) against moto: {}",
            Spread::of(velocity)
        );
        eprintln!(
            "monthly cap (one conditional UpdateItem) against moto: {}",
            Spread::of(cap)
        );
    });
}

criterion_group!(benches, per_send, against_moto);
criterion_main!(benches);
