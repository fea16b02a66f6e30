//! Queued messages as the worker reads them: any body and attributes decode to an envelope or
//! an error, never a panic; and every body the receiver wraps comes back byte for byte.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use envelope::{Envelope, SignatureHeaders};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    queued_body: String,
    attributes: HashMap<&'a str, &'a str>,
    received: Vec<u8>,
    received_at_ms: u64,
}

fuzz_target!(|input: Input<'_>| {
    // Whatever is in the queue: an envelope or an error.
    if let Ok(envelope) = Envelope::from_message(input.queued_body, |name| {
        input.attributes.get(name).copied()
    }) {
        let _ = envelope.raw_body();
        let _ = envelope.queued_size();
    }

    // The receiver's side: wrap, queue, read back: the same envelope, the same bytes.
    let headers = SignatureHeaders {
        signature: "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=".into(),
        nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
        timestamp: "1634579353".into(),
        algorithm: Some("HmacSHA256".into()),
    };
    let at = UNIX_EPOCH + Duration::from_millis(input.received_at_ms % (1 << 45));
    let wrapped = Envelope::new(input.received.clone(), headers, at);
    let attributes: HashMap<&str, String> = wrapped
        .attributes()
        .map(|(name, value)| (name, value.into_owned()))
        .collect();
    for value in attributes.values() {
        assert!(!value.is_empty(), "SQS refuses empty attribute values");
    }
    let read = Envelope::from_message(wrapped.queued_body().to_owned(), |name| {
        attributes.get(name).map(String::as_str)
    })
    .expect("what the receiver queues, the worker reads");
    assert_eq!(read, wrapped);
    assert_eq!(
        read.raw_body().expect("decodes").as_ref(),
        input.received.as_slice()
    );
});
