//! The receiver's own cost per request, with the in-memory queue (so no network is measured).
//! Target (issue 2): at most 20 us per request for a 1 KiB callback.
//!
//! Run: `cargo bench -p receiver --bench receiver`
//!
//! Building the `lambda_http::Request` (the runtime's JSON decoding) happens in the untimed
//! setup; what is timed is `receiver::handle`: method and size checks, signature verification,
//! the envelope, the enqueue and the answer. One variant logs through a JSON subscriber into a
//! sink, as the Lambda does with `AWS_LAMBDA_LOG_FORMAT=JSON`.

use std::time::{Duration, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group};
use lambda_http::Request;
use platform::clock::Clock;
use platform::queue::MemoryQueue;
use receiver::{Receiver, ReceiverConfig, handle};
use serde_json::json;
use sinch::signature::{Tolerance, sign_headers};

const NOW: u64 = 1_763_870_400;

fn callback_body(size: usize) -> Vec<u8> {
    let mut body = br#"{"app_id":"01EB37HMH1M6SV18ABNS3G135H","message":{"id":"01EQ8235TD19N21XQTH12B145D","contact_message":{"text_message":{"text":""#.to_vec();
    while body.len() < size - 5 {
        body.push(b'x');
    }
    body.extend_from_slice(br#""}}}}"#);
    body
}

fn request(body: &[u8]) -> Request {
    let signed = sign_headers("bench-secret", body, "01FJA8B4A7BM43YGWSG9GBV067", NOW);
    let mut headers = serde_json::Map::new();
    for (name, value) in signed.pairs() {
        headers.insert(name.into(), value.into());
    }
    headers.insert("content-type".into(), "application/json".into());
    let event = json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/webhook"}, "requestId": "bench", "timeEpoch": 0},
        "body": std::str::from_utf8(body).expect("utf-8"), "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid event")
}

fn receiver() -> (Receiver<MemoryQueue>, MemoryQueue) {
    let config = ReceiverConfig {
        secrets: "bench-secret".parse().expect("secret"),
        queue_url: "memory://callbacks".into(),
        dead_letter_queue_url: "memory://callbacks-dlq".into(),
        tolerance: Tolerance::default(),
        max_body_bytes: 1024 * 1024,
        enqueue_timeout: Duration::from_secs(1),
    };
    let queue = MemoryQueue::new("callbacks");
    let receiver = Receiver::new(&config, queue.clone(), MemoryQueue::new("dlq"))
        .with_clock(Clock::Fixed(UNIX_EPOCH + Duration::from_secs(NOW)));
    (receiver, queue)
}

fn bench_handler(c: &mut Criterion, name: &str) {
    let runtime = current_thread();
    let (receiver, queue) = receiver();
    let body = callback_body(1024);
    c.bench_function(name, |b| {
        b.to_async(&runtime).iter_batched(
            || {
                queue.take(usize::MAX);
                request(&body)
            },
            |request| handle(&receiver, request),
            BatchSize::SmallInput,
        )
    });
}

fn handler(c: &mut Criterion) {
    bench_handler(c, "receiver/handle 1 KiB, no subscriber");
    let subscriber = tracing_subscriber::fmt()
        .json()
        .without_time()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        bench_handler(c, "receiver/handle 1 KiB, JSON logs to a sink")
    });
}

/// The handler N times on a 1 KiB callback, untimed (`testkit::bench`: for instruction counts).
fn fixed_iterations(n: usize) {
    let runtime = current_thread();
    let (receiver, queue) = receiver();
    let body = callback_body(1024);
    let requests: Vec<_> = (0..n).map(|_| request(&body)).collect();
    if testkit::bench::setup_only() {
        std::hint::black_box(requests);
        return;
    }
    runtime.block_on(async {
        for request in requests {
            let response = handle(&receiver, request).await;
            // The path measured is the accepted one, not a cheaper refusal.
            assert_eq!(response.status(), 200);
        }
    });
    std::hint::black_box(queue.take(usize::MAX));
}

/// The runtime a Lambda runs on (one thread).
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

criterion_group!(benches, handler);

testkit::criterion_main_or_fixed!(fixed_iterations; benches);
