//! Any bytes as a callback body: `parse` answers a callback or an error, never a panic, and
//! whatever it understood can be named and summarised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinch::callback;

fuzz_target!(|body: &[u8]| {
    if let Ok(callback) = callback::parse(body) {
        let kind = callback.kind();
        assert!(!kind.is_empty());
        let _ = callback.is_known();
        // The summary is what `inspect` prints: it must always serialize.
        serde_json::to_string(&callback.summary()).expect("a summary serializes");
    }
});
