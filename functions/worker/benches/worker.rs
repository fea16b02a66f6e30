//! The worker's cost per record and per batch. Targets (issue 3): parse + dispatch per record
//! at most 20 us; a batch of 10 inbound messages, each answered through a fake Sinch that takes
//! 50 ms, in at most 80 ms (the replies go out concurrently, not one after another).
//!
//! Run: `cargo bench -p worker --bench worker`

#[path = "../tests/it/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{event, fake_sinch_with_delay, record, services};
use criterion::{BatchSize, Criterion, criterion_group};
use pipeline::queue::MemoryQueue;
use pipeline::store::MemoryStore;
use serde_json::json;
use tokio::time::Instant;
use worker::{Worker, handle_batch, process_record};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../sinch/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
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
/// the in-memory store; no network). Twice: as in AWS (events come from the table's stream,
/// nothing in the worker), and with the in-memory store's change feed on (the local stack: each
/// write also reports its change, drained by another task as the local publisher does).
fn per_record(c: &mut Criterion) {
    let runtime = current_thread();
    let server = runtime.block_on(fake_sinch_with_delay(Duration::ZERO));
    let (watched, mut changes) = MemoryStore::with_change_feed();
    runtime.spawn(async move { while changes.recv().await.is_some() {} });
    for (name, store) in [
        (
            "worker/record: parse + claim + delivery handler + complete",
            MemoryStore::new(),
        ),
        (
            "worker/record: the same, with the change feed on (events, locally)",
            watched,
        ),
    ] {
        let worker = Worker {
            services: services(store, &server),
            dead_letters: MemoryQueue::new("dlq"),
            lanes: pipeline::schedule::Lanes {
                transactional: MemoryQueue::new("outbound"),
                bulk: MemoryQueue::new("bulk"),
            },
            scheduler: pipeline::schedule::MemoryScheduler::new(),
            concurrency: 1,
            metrics: pipeline::metrics::Metrics::off(),
            outbound_max_receives: 5,
            store_health: Default::default(),
        };
        let body = fixture("conversation/message_delivery_failed.json");
        let mut next = 0u64;
        c.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                || {
                    // A new message each time: a repeated one would be a (cheaper) duplicate.
                    next += 1;
                    let body = body.replace("01EQBF0BT63J7S1FEKJZ0Z08VD", &format!("01MSG{next}"));
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
}

/// Ten inbound HELP messages, each answered through a Sinch that takes 50 ms.
fn batch_with_replies(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(fake_sinch_with_delay(Duration::from_millis(50)));
    let worker = Arc::new(Worker {
        services: services(MemoryStore::new(), &server),
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 10,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
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

/// The per-record path N times, untimed (`testkit::bench`: for instruction counts).
fn fixed_iterations(n: usize) {
    let runtime = current_thread();
    let server = runtime.block_on(fake_sinch_with_delay(Duration::ZERO));
    let worker = Worker {
        services: services(MemoryStore::new(), &server),
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 1,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
    };
    let body = fixture("conversation/message_delivery_failed.json");
    let records: Vec<_> = (0..n)
        .map(|next| {
            let body = body.replace("01EQBF0BT63J7S1FEKJZ0Z08VD", &format!("01MSG{next}"));
            event(vec![record("m", &body)])
                .records
                .pop()
                .expect("one record")
        })
        .collect();
    if testkit::bench::setup_only() {
        std::hint::black_box(records);
        return;
    }
    runtime.block_on(async {
        for record in records {
            let deadline = Instant::now() + Duration::from_secs(5);
            let outcome = process_record(&worker, record, deadline).await;
            // The path measured is the handled one, not a cheaper failure.
            assert!(
                matches!(outcome, worker::RecordOutcome::Handled { .. }),
                "{outcome:?}"
            );
        }
    });
}

/// The runtime a Lambda runs on (one thread).
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

criterion_group!(benches, parse, per_record, batch_with_replies);

testkit::criterion_main_or_fixed!(fixed_iterations; benches);
