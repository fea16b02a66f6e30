//! What pacing adds to a send: taking its slot. In the process (the in-memory store: the
//! pacer's own cost), and one conditional write against DynamoDB on moto_server (what a
//! Lambda pays per send, a round trip to the table; moto's is slower than DynamoDB's few
//! milliseconds). The rate is set so high that no send waits: only the bookkeeping is timed.
//!
//! Run: `cargo bench -p pipeline --bench pacing` (the moto case needs `MOTO_SERVER`, as the
//! tests; without it, it is skipped).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pipeline::pacing::{Api, Pacing};
use pipeline::schedule::Lane;
use pipeline::store::{DynamoStore, MemoryStore};
use testkit::bench::Spread;

/// A rate no send waits for: slots a nanosecond apart.
fn unwaited() -> Pacing {
    Pacing::new(Some(1e9), Some(1e9))
}

fn in_memory(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let store = MemoryStore::new();
    let mut group = c.benchmark_group("pacing a send");
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    group.bench_function("unpaced", |b| {
        let pacing = Pacing::default();
        b.iter(|| {
            runtime
                .block_on(pacing.wait_for_slot(&store, Api::Sms, Lane::Transactional, deadline()))
                .expect("a slot")
        })
    });
    for lane in [Lane::Transactional, Lane::Bulk] {
        let pacing = unwaited();
        group.bench_function(format!("{} lane, in memory", lane.as_str()), |b| {
            b.iter(|| {
                runtime
                    .block_on(pacing.wait_for_slot(&store, Api::Conversation, lane, deadline()))
                    .expect("a slot")
            })
        });
    }
    group.finish();
}

fn against_moto(_: &mut Criterion) {
    testkit::bench::on_moto("pacing", |moto| async move {
        let sdk = moto.sdk_config().await;
        let store = DynamoStore::with_new_table(&sdk, "bench")
            .await
            .expect("a table");
        let pacing = unwaited();
        let mut times = Vec::new();
        for _ in 0..testkit::bench::calls(500) {
            let started = Instant::now();
            pacing
                .wait_for_slot(
                    &store,
                    Api::Conversation,
                    Lane::Transactional,
                    tokio::time::Instant::now() + Duration::from_secs(5),
                )
                .await
                .expect("a slot");
            times.push(started.elapsed());
        }
        eprintln!(
            "pacing a send against moto (one conditional UpdateItem): {}",
            Spread::of(times)
        );
    });
}

criterion_group!(benches, in_memory, against_moto);
criterion_main!(benches);
