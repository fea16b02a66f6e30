//! Signature verification on hostile headers and bodies, and the sign-then-verify round trip:
//! whatever is signed with a secret verifies with it, and a changed body never does.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sinch::signature::{Rejection, Secrets, SignatureParts, Tolerance, Verifier, sign};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secrets: Vec<&'a str>,
    signature: &'a str,
    nonce: &'a str,
    timestamp: &'a str,
    algorithm: Option<&'a str>,
    now: u64,
    body: &'a [u8],
    signed_at: u32,
    flip: usize,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(secrets) = Secrets::new(input.secrets.iter().copied()) else {
        return;
    };
    let verifier =
        Verifier::new(&secrets).with_tolerance(Tolerance::symmetric(Duration::from_secs(300)));
    let now = UNIX_EPOCH + Duration::from_secs(input.now % (1 << 40));

    // Arbitrary headers: an answer, never a panic.
    let parts = SignatureParts {
        signature: input.signature,
        nonce: input.nonce,
        timestamp: input.timestamp,
        algorithm: input.algorithm,
    };
    let _ = verifier.verify_parts(input.body, &parts, now);

    // Signed with the last secret, verified as received: valid, and that secret matched.
    let secret = input.secrets[input.secrets.len() - 1];
    let timestamp = u64::from(input.signed_at).to_string();
    let signature = sign(secret, input.body, input.nonce, u64::from(input.signed_at));
    let parts = SignatureParts {
        signature: &signature,
        nonce: input.nonce,
        timestamp: &timestamp,
        algorithm: Some("HmacSHA256"),
    };
    let at = UNIX_EPOCH + Duration::from_secs(u64::from(input.signed_at));
    let verified = verifier
        .verify_parts(input.body, &parts, at)
        .expect("what is signed verifies");
    assert!(verified.secret_index < secrets.len());

    // One byte changed: never valid (unless another configured secret happens to match, which
    // would need a collision of HMAC-SHA256).
    if !input.body.is_empty() {
        let mut changed = input.body.to_vec();
        let index = input.flip % changed.len();
        changed[index] ^= 0x01;
        assert_eq!(
            verifier.verify_parts(&changed, &parts, at).unwrap_err(),
            Rejection::Mismatch
        );
    }
});
