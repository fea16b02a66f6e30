//! Signature verification cost. Target (issue 2): verify a 1 KiB body in at most 5 us.
//!
//! Run: `cargo bench -p sinch --bench signature`

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sinch::signature::{Secrets, Verifier, sign_headers};

fn verify(c: &mut Criterion) {
    let secrets: Secrets = "bench-secret".parse().expect("valid secret list");
    let verifier = Verifier::new(&secrets);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut group = c.benchmark_group("verify");
    for size in [1024usize, 64 * 1024] {
        let body = vec![b'a'; size];
        let signed = sign_headers(
            "bench-secret",
            &body,
            "01FJA8B4A7BM43YGWSG9GBV067",
            1_700_000_000,
        );
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| verifier.verify_parts(black_box(body), &signed.parts(), now))
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
