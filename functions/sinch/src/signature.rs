//! Sinch webhook signatures: verify the four `x-sinch-webhook-signature*` headers against the raw
//! body, and sign bodies for tests and tools.
//!
//! The scheme (Conversation API, and SMS API once HMAC is enabled for a service plan):
//!
//! ```text
//! signed    = raw_body + "." + nonce + "." + timestamp
//! signature = base64(HMAC-SHA256(key = the secret's UTF-8 bytes, message = signed))
//! ```
//!
//! Sinch's own SDKs stop at that comparison, and three of them compare in variable time. This
//! module goes further, because the pipeline promises that nothing forged gets in and nothing
//! authentic is lost:
//!
//! - the comparison is constant-time and every configured secret is tried, so timing reveals
//!   neither the signature nor which secret matched;
//! - freshness is judged only *after* the HMAC matched, so [`Rejection::TooOld`] and
//!   [`Rejection::TooNew`] always mean "Sinch really signed this" (the receiver parks such
//!   callbacks in the dead-letter queue instead of dropping them), while a forged stale callback
//!   is a plain [`Rejection::Mismatch`];
//! - the clock is a parameter, so tests and the CLI can check a signature "as of" any time.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use sinch::signature::{sign_headers, Secrets, Verifier};
//!
//! let secrets: Secrets = "new-secret,old-secret".parse().unwrap();
//! let verifier = Verifier::new(&secrets);
//! let body = br#"{"message":{"id":"01EQ8235TD19N21XQTH12B145D"}}"#;
//! let signed = sign_headers("old-secret", body, "01FJA8B4A7BM43YGWSG9GBV067", 1_634_579_353);
//! let now = UNIX_EPOCH + Duration::from_secs(1_634_579_360);
//! let verified = verifier.verify_parts(body, &signed.parts(), now).unwrap();
//! assert_eq!(verified.secret_index, 1);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Header carrying base64 of the HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "x-sinch-webhook-signature";
/// Header carrying the per-delivery nonce (a ULID in practice).
pub const NONCE_HEADER: &str = "x-sinch-webhook-signature-nonce";
/// Header carrying the signing time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-sinch-webhook-signature-timestamp";
/// Header naming the algorithm; optional, and when present it must be [`HMAC_SHA256`].
pub const ALGORITHM_HEADER: &str = "x-sinch-webhook-signature-algorithm";
/// The only algorithm Sinch uses for webhook signatures.
pub const HMAC_SHA256: &str = "HmacSHA256";

/// How far a signature's timestamp may lie in the past or the future, by default 300 s each way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;
/// Values echoed back inside a [`Rejection`] are cut to this many characters, so a hostile
/// header cannot bloat logs.
const ECHO_LIMIT: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// One or more webhook secrets. Several are normal: during a rotation both the old and the new
/// secret are valid, and SMS and Conversation webhooks may be configured with different ones.
///
/// Parsed from a comma-separated list (`SINCH_WEBHOOK_SECRET=new,old`); surrounding whitespace
/// is trimmed. The `Debug` output never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

/// Why a list of secrets was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// No secret at all.
    #[error("no secret given")]
    Empty,
    /// An empty entry in a comma-separated list.
    #[error("secret number {position} in the comma-separated list is empty")]
    EmptyEntry {
        /// Its position, from 1.
        position: usize,
    },
}

impl Secrets {
    /// Builds the list from individual secrets (no comma splitting), refusing empty ones.
    pub fn new<I, S>(secrets: I) -> Result<Self, SecretsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let secrets: Vec<String> = secrets.into_iter().map(Into::into).collect();
        if secrets.is_empty() {
            return Err(SecretsError::Empty);
        }
        if let Some(index) = secrets.iter().position(|s| s.is_empty()) {
            return Err(SecretsError::EmptyEntry {
                position: index + 1,
            });
        }
        Ok(Self(secrets))
    }

    /// How many secrets there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Secrets` holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secrets themselves, in the configured order (for signing in tools and tests).
    pub fn expose(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl FromStr for Secrets {
    type Err = SecretsError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        if list.trim().is_empty() {
            return Err(SecretsError::Empty);
        }
        Self::new(list.split(',').map(str::trim))
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets([redacted; {}])", self.0.len())
    }
}

/// The signature headers of one request, borrowed as text.
///
/// The timestamp is kept as received: the HMAC covers the header's exact characters, not a
/// re-formatted number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureParts<'a> {
    /// `x-sinch-webhook-signature`: the base64 HMAC.
    pub signature: &'a str,
    /// `x-sinch-webhook-signature-nonce`.
    pub nonce: &'a str,
    /// `x-sinch-webhook-signature-timestamp`: Unix seconds, as sent.
    pub timestamp: &'a str,
    /// `x-sinch-webhook-signature-algorithm`, when sent.
    pub algorithm: Option<&'a str>,
}

impl<'a> SignatureParts<'a> {
    /// Reads the headers (names are case-insensitive in [`HeaderMap`]). A header that is absent
    /// or not visible ASCII is a rejection naming it.
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, Rejection> {
        let text = |name: &'static str| -> Result<Option<&'a str>, Rejection> {
            headers
                .get(name)
                .map(|value| value.to_str().map_err(|_| Rejection::MalformedHeader(name)))
                .transpose()
        };
        let required = |name: &'static str| text(name)?.ok_or(Rejection::MissingHeader(name));
        Ok(Self {
            signature: required(SIGNATURE_HEADER)?,
            nonce: required(NONCE_HEADER)?,
            timestamp: required(TIMESTAMP_HEADER)?,
            algorithm: text(ALGORITHM_HEADER)?,
        })
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The signing time, Unix seconds.
    pub timestamp: u64,
    /// Which configured secret matched (0-based, in configuration order). Useful during a
    /// rotation: once no callback matches the old secret any more, it can be removed.
    pub secret_index: usize,
}

/// Why a request was not accepted as a Sinch callback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A signature header is absent (its name).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A signature header is not visible ASCII (its name).
    #[error("header {0} is not visible ASCII text")]
    MalformedHeader(&'static str),
    /// An algorithm other than HMAC-SHA256 (as given).
    #[error("unsupported signature algorithm {0:?} (only {HMAC_SHA256} is supported)")]
    UnsupportedAlgorithm(String),
    /// The timestamp is not Unix seconds (as given).
    #[error("timestamp {0:?} is not a decimal number of Unix seconds")]
    MalformedTimestamp(String),
    /// The signature is not base64 of 32 bytes.
    #[error("signature is not the base64 of a 32-byte HMAC-SHA256")]
    MalformedSignature,
    /// No configured secret gives this signature: forged, or signed with another secret.
    #[error("signature does not match the body with any configured secret")]
    Mismatch,
    /// Signed longer ago than tolerated (a replay, or a retry after a long outage).
    #[error("authentic, but signed {age_secs} s ago, more than the tolerated {tolerance_secs} s")]
    TooOld {
        /// How long ago, in seconds.
        age_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// Signed further ahead of our clock than tolerated.
    #[error(
        "authentic, but signed {ahead_secs} s in the future, more than the tolerated {tolerance_secs} s"
    )]
    TooNew {
        /// How far ahead, in seconds.
        ahead_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
}

impl Rejection {
    /// A stable snake_case code for logs, metrics and HTTP answers.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::MissingHeader(_) => "missing_header",
            Rejection::MalformedHeader(_) => "malformed_header",
            Rejection::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Rejection::MalformedTimestamp(_) => "malformed_timestamp",
            Rejection::MalformedSignature => "malformed_signature",
            Rejection::Mismatch => "signature_mismatch",
            Rejection::TooOld { .. } => "too_old",
            Rejection::TooNew { .. } => "too_new",
        }
    }

    /// True when the HMAC matched and only the timestamp was out of tolerance: the callback is
    /// Sinch's, and must not be lost.
    pub fn is_authentic(&self) -> bool {
        matches!(self, Rejection::TooOld { .. } | Rejection::TooNew { .. })
    }
}

/// How far from `now` a signature's timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    /// How old a timestamp may be (five minutes by default).
    pub past: Duration,
    /// How far ahead of our clock a timestamp may be (clock skew).
    pub future: Duration,
}

impl Tolerance {
    /// The same bound in both directions.
    pub const fn symmetric(bound: Duration) -> Self {
        Self {
            past: bound,
            future: bound,
        }
    }
}

impl Default for Tolerance {
    fn default() -> Self {
        Self::symmetric(DEFAULT_TOLERANCE)
    }
}

/// Verifies Sinch webhook signatures against a fixed set of secrets.
///
/// Built once (at cold start) and shared: each secret's keyed HMAC state is computed up front,
/// so a verification costs the hashing of the body and nothing else.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<HmacSha256>,
    tolerance: Tolerance,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// A verifier for these secrets with the default tolerance of 300 s each way.
    pub fn new(secrets: &Secrets) -> Self {
        Self {
            keys: secrets.expose().map(keyed_mac).collect(),
            tolerance: Tolerance::default(),
        }
    }

    /// The same verifier with another timestamp tolerance.
    pub fn with_tolerance(mut self, tolerance: Tolerance) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The timestamp tolerance in force.
    pub fn tolerance(&self) -> Tolerance {
        self.tolerance
    }

    /// Verifies `body` (the exact bytes received) against the signature headers in `headers`,
    /// as of `now`.
    pub fn verify(
        &self,
        body: &[u8],
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Verified, Rejection> {
        self.verify_parts(body, &SignatureParts::from_headers(headers)?, now)
    }

    /// Verifies `body` against signature header values obtained some other way (the CLI, a
    /// queued message's attributes).
    ///
    /// Checks run cheapest first and the clock last, so that a time rejection is only ever
    /// given to a callback whose HMAC matched.
    pub fn verify_parts(
        &self,
        body: &[u8],
        parts: &SignatureParts<'_>,
        now: SystemTime,
    ) -> Result<Verified, Rejection> {
        if let Some(algorithm) = parts.algorithm
            && algorithm != HMAC_SHA256
        {
            return Err(Rejection::UnsupportedAlgorithm(echo(algorithm)));
        }
        let timestamp = parse_timestamp(parts.timestamp)?;
        let expected = decode_signature(parts.signature)?;

        // Try every secret without stopping at the first match, and select the match with
        // constant-time operations, so the time taken says nothing about which one matched.
        let mut found = Choice::from(0);
        let mut first_match = 0u64;
        for (index, key) in self.keys.iter().enumerate() {
            let is_match = tag(key.clone(), body, parts.nonce, parts.timestamp).ct_eq(&expected);
            first_match.conditional_assign(&(index as u64), is_match & !found);
            found |= is_match;
        }
        if !bool::from(found) {
            return Err(Rejection::Mismatch);
        }
        let secret_index = usize::try_from(first_match).unwrap_or(usize::MAX);

        self.check_freshness(timestamp, now)?;
        Ok(Verified {
            timestamp,
            secret_index,
        })
    }

    fn check_freshness(&self, timestamp: u64, now: SystemTime) -> Result<(), Rejection> {
        let now = unix_seconds(now);
        if now > timestamp {
            let age_secs = now - timestamp;
            if age_secs > self.tolerance.past.as_secs() {
                return Err(Rejection::TooOld {
                    age_secs,
                    tolerance_secs: self.tolerance.past.as_secs(),
                });
            }
        } else {
            let ahead_secs = timestamp - now;
            if ahead_secs > self.tolerance.future.as_secs() {
                return Err(Rejection::TooNew {
                    ahead_secs,
                    tolerance_secs: self.tolerance.future.as_secs(),
                });
            }
        }
        Ok(())
    }
}

/// The four headers of a signed request, owned, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `x-sinch-webhook-signature`.
    pub signature: String,
    /// `x-sinch-webhook-signature-nonce`.
    pub nonce: String,
    /// `x-sinch-webhook-signature-timestamp`.
    pub timestamp: String,
    /// `x-sinch-webhook-signature-algorithm`.
    pub algorithm: &'static str,
}

impl SignedHeaders {
    /// `(name, value)` pairs in the order Sinch documents them.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (SIGNATURE_HEADER, &self.signature),
            (NONCE_HEADER, &self.nonce),
            (TIMESTAMP_HEADER, &self.timestamp),
            (ALGORITHM_HEADER, self.algorithm),
        ]
    }

    /// Borrowed as the verifier's input.
    pub fn parts(&self) -> SignatureParts<'_> {
        SignatureParts {
            signature: &self.signature,
            nonce: &self.nonce,
            timestamp: &self.timestamp,
            algorithm: Some(self.algorithm),
        }
    }
}

/// The `x-sinch-webhook-signature` value for `body` signed with `secret` at `timestamp`.
pub fn sign(secret: &str, body: &[u8], nonce: &str, timestamp: u64) -> String {
    let timestamp = timestamp.to_string();
    BASE64.encode(tag(keyed_mac(secret), body, nonce, &timestamp))
}

/// All four headers Sinch would send with `body` signed with `secret` at `timestamp`.
pub fn sign_headers(secret: &str, body: &[u8], nonce: &str, timestamp: u64) -> SignedHeaders {
    SignedHeaders {
        signature: sign(secret, body, nonce, timestamp),
        nonce: nonce.to_owned(),
        timestamp: timestamp.to_string(),
        algorithm: HMAC_SHA256,
    }
}

/// Seconds since the Unix epoch; times before it count as 0.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn keyed_mac(secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail; the key is the secret as typed.
    <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length")
}

/// HMAC over `body . nonce . timestamp`, fed in pieces so the body is never copied.
fn tag(mut mac: HmacSha256, body: &[u8], nonce: &str, timestamp: &str) -> [u8; TAG_LEN] {
    mac.update(body);
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Strict Unix seconds: ASCII digits only (no sign, no spaces), within `u64`.
fn parse_timestamp(text: &str) -> Result<u64, Rejection> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::MalformedTimestamp(echo(text)));
    }
    text.parse()
        .map_err(|_| Rejection::MalformedTimestamp(echo(text)))
}

fn decode_signature(text: &str) -> Result<[u8; TAG_LEN], Rejection> {
    // A valid signature is exactly 44 characters; refusing anything longer first keeps a
    // hostile header from costing a large decode.
    if text.len() != 44 {
        return Err(Rejection::MalformedSignature);
    }
    // The decoder wants room for its conservative estimate (33 bytes for 44 characters).
    let mut buffer = [0u8; TAG_LEN + 3];
    match BASE64.decode_slice(text, &mut buffer) {
        Ok(TAG_LEN) => {
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&buffer[..TAG_LEN]);
            Ok(tag)
        }
        _ => Err(Rejection::MalformedSignature),
    }
}

fn echo(text: &str) -> String {
    text.chars().take(ECHO_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    /// The public vector from Sinch's Node, Java and .NET SDK tests.
    const VECTOR_SECRET: &str = "foo_secret1234";
    const VECTOR_NONCE: &str = "01FJA8B4A7BM43YGWSG9GBV067";
    const VECTOR_TIMESTAMP: u64 = 1_634_579_353;
    const VECTOR_BODY: &str = r#"{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}"#;
    const VECTOR_SIGNATURE: &str = "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn secrets(list: &str) -> Secrets {
        list.parse().expect("valid secret list")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                HeaderValue::from_str(value).expect("valid header value"),
            );
        }
        map
    }

    fn vector_headers() -> HeaderMap {
        headers(&[
            (SIGNATURE_HEADER, VECTOR_SIGNATURE),
            (NONCE_HEADER, VECTOR_NONCE),
            (TIMESTAMP_HEADER, "1634579353"),
            (ALGORITHM_HEADER, HMAC_SHA256),
        ])
    }

    fn signed_map(secret: &str, body: &[u8], timestamp: u64) -> HeaderMap {
        let signed = sign_headers(secret, body, VECTOR_NONCE, timestamp);
        headers(&signed.pairs())
    }

    #[test]
    fn public_vector_signs_and_verifies() {
        assert_eq!(
            sign(
                VECTOR_SECRET,
                VECTOR_BODY.as_bytes(),
                VECTOR_NONCE,
                VECTOR_TIMESTAMP
            ),
            VECTOR_SIGNATURE
        );
        let verified = Verifier::new(&secrets(VECTOR_SECRET))
            .verify(
                VECTOR_BODY.as_bytes(),
                &vector_headers(),
                at(VECTOR_TIMESTAMP + 1),
            )
            .expect("the public vector verifies");
        assert_eq!(
            verified,
            Verified {
                timestamp: VECTOR_TIMESTAMP,
                secret_index: 0
            }
        );
    }

    #[test]
    fn header_names_match_in_any_case() {
        let map = headers(&[
            ("X-Sinch-Webhook-Signature", VECTOR_SIGNATURE),
            ("X-SINCH-WEBHOOK-SIGNATURE-NONCE", VECTOR_NONCE),
            ("x-Sinch-webhook-Signature-Timestamp", "1634579353"),
            ("X-Sinch-Webhook-Signature-Algorithm", HMAC_SHA256),
        ]);
        Verifier::new(&secrets(VECTOR_SECRET))
            .verify(VECTOR_BODY.as_bytes(), &map, at(VECTOR_TIMESTAMP))
            .expect("header names are case-insensitive");
    }

    #[test]
    fn algorithm_header_is_optional() {
        let mut map = vector_headers();
        map.remove(ALGORITHM_HEADER);
        Verifier::new(&secrets(VECTOR_SECRET))
            .verify(VECTOR_BODY.as_bytes(), &map, at(VECTOR_TIMESTAMP))
            .expect("no algorithm header means HmacSHA256");
    }

    #[test]
    fn the_exact_bytes_are_signed() {
        let verifier = Verifier::new(&secrets("s3cret"));
        let cases: [&[u8]; 4] = [
            b"{\"a\":1}\n",
            b"{\n  \"message\": {\n    \"text\": \"hi\"\n  }\n}",
            "{\"text\":\"Grüße, 你好 👋\"}".as_bytes(),
            b"\xff\xfe not utf-8",
        ];
        for body in cases {
            let map = signed_map("s3cret", body, 1_000);
            verifier
                .verify(body, &map, at(1_000))
                .expect("a signed body verifies");
            // The same text without its last byte (a trailing newline, a closing brace) fails.
            assert_eq!(
                verifier.verify(&body[..body.len() - 1], &map, at(1_000)),
                Err(Rejection::Mismatch)
            );
        }
    }

    #[test]
    fn any_of_several_secrets_matches_and_is_reported() {
        let verifier = Verifier::new(&secrets("new-secret, old-secret ,third"));
        let body = b"{}";
        for (index, secret) in ["new-secret", "old-secret", "third"].iter().enumerate() {
            let verified = verifier
                .verify(body, &signed_map(secret, body, 50), at(50))
                .expect("each configured secret verifies");
            assert_eq!(verified.secret_index, index);
        }
        assert_eq!(
            verifier.verify(body, &signed_map("retired", body, 50), at(50)),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn each_missing_header_is_named() {
        let verifier = Verifier::new(&secrets(VECTOR_SECRET));
        for name in [SIGNATURE_HEADER, NONCE_HEADER, TIMESTAMP_HEADER] {
            let mut map = vector_headers();
            map.remove(name);
            let rejection = verifier
                .verify(VECTOR_BODY.as_bytes(), &map, at(VECTOR_TIMESTAMP))
                .expect_err("a missing header rejects");
            assert_eq!(rejection, Rejection::MissingHeader(name));
            assert_eq!(rejection.reason(), "missing_header");
            assert!(rejection.to_string().contains(name));
        }
    }

    #[test]
    fn a_header_that_is_not_text_is_named() {
        let mut map = vector_headers();
        map.insert(
            NONCE_HEADER,
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are a valid header value"),
        );
        assert_eq!(
            Verifier::new(&secrets(VECTOR_SECRET)).verify(
                VECTOR_BODY.as_bytes(),
                &map,
                at(VECTOR_TIMESTAMP)
            ),
            Err(Rejection::MalformedHeader(NONCE_HEADER))
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        for algorithm in ["HmacSHA1", "hmacsha256", "", "HmacSHA512"] {
            let mut map = vector_headers();
            map.insert(
                ALGORITHM_HEADER,
                HeaderValue::from_str(algorithm).expect("ascii"),
            );
            let rejection = Verifier::new(&secrets(VECTOR_SECRET))
                .verify(VECTOR_BODY.as_bytes(), &map, at(VECTOR_TIMESTAMP))
                .expect_err("only HmacSHA256 is accepted");
            assert_eq!(rejection, Rejection::UnsupportedAlgorithm(algorithm.into()));
            assert_eq!(rejection.reason(), "unsupported_algorithm");
        }
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for timestamp in [
            "",
            "abc",
            "-1634579353",
            "+1634579353",
            " 1634579353",
            "1634579353.5",
            "1e9",
            "99999999999999999999999",
        ] {
            let mut map = vector_headers();
            map.insert(
                TIMESTAMP_HEADER,
                HeaderValue::from_str(timestamp).expect("ascii"),
            );
            let rejection = Verifier::new(&secrets(VECTOR_SECRET))
                .verify(VECTOR_BODY.as_bytes(), &map, at(VECTOR_TIMESTAMP))
                .expect_err("not Unix seconds");
            assert_eq!(rejection, Rejection::MalformedTimestamp(timestamp.into()));
            assert_eq!(rejection.reason(), "malformed_timestamp");
        }
    }

    #[test]
    fn echoed_values_are_cut_short() {
        let long = "9".repeat(10_000) + "x";
        let parts = SignatureParts {
            signature: VECTOR_SIGNATURE,
            nonce: VECTOR_NONCE,
            timestamp: &long,
            algorithm: None,
        };
        let rejection = Verifier::new(&secrets(VECTOR_SECRET))
            .verify_parts(b"", &parts, at(0))
            .expect_err("not a timestamp");
        assert!(rejection.to_string().len() < 200, "{rejection}");
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let too_short = BASE64.encode([0u8; 31]);
        let too_long = BASE64.encode([0u8; 33]);
        for signature in [
            "",
            "not base64 at all!",
            too_short.as_str(),
            too_long.as_str(),
            "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE",
            "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE==",
            "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXew*E=",
            "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
        ] {
            let mut map = vector_headers();
            map.insert(
                SIGNATURE_HEADER,
                HeaderValue::from_str(signature).expect("ascii"),
            );
            assert_eq!(
                Verifier::new(&secrets(VECTOR_SECRET)).verify(
                    VECTOR_BODY.as_bytes(),
                    &map,
                    at(VECTOR_TIMESTAMP)
                ),
                Err(Rejection::MalformedSignature),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn the_url_safe_alphabet_is_not_accepted() {
        // Sinch uses the standard alphabet; the same bytes in the URL-safe one are not a
        // Sinch signature. This vector happens to contain no '+' or '/', so craft one that does.
        let body = b"{\"n\":7}";
        let mut found = None;
        for timestamp in 0..1_000u64 {
            let signature = sign("s", body, "n", timestamp);
            if signature.contains('+') || signature.contains('/') {
                found = Some((timestamp, signature));
                break;
            }
        }
        let (timestamp, signature) = found.expect("some signature uses + or /");
        let url_safe = signature.replace('+', "-").replace('/', "_");
        let parts = SignatureParts {
            signature: &url_safe,
            nonce: "n",
            timestamp: &timestamp.to_string(),
            algorithm: None,
        };
        assert_eq!(
            Verifier::new(&secrets("s")).verify_parts(body, &parts, at(timestamp)),
            Err(Rejection::MalformedSignature)
        );
    }

    #[test]
    fn time_is_judged_only_after_the_hmac_matched() {
        let verifier = Verifier::new(&secrets(VECTOR_SECRET));
        let body = VECTOR_BODY.as_bytes();
        let map = vector_headers();
        let tolerance = DEFAULT_TOLERANCE.as_secs();

        // At the edges of the window: accepted.
        verifier
            .verify(body, &map, at(VECTOR_TIMESTAMP + tolerance))
            .expect("exactly the tolerance old is fine");
        verifier
            .verify(body, &map, at(VECTOR_TIMESTAMP - tolerance))
            .expect("exactly the tolerance ahead is fine");

        // One second beyond: authentic, but rejected.
        let old = verifier
            .verify(body, &map, at(VECTOR_TIMESTAMP + tolerance + 1))
            .expect_err("too old");
        assert_eq!(
            old,
            Rejection::TooOld {
                age_secs: tolerance + 1,
                tolerance_secs: tolerance
            }
        );
        assert!(old.is_authentic());
        assert_eq!(old.reason(), "too_old");
        let new = verifier
            .verify(body, &map, at(VECTOR_TIMESTAMP - tolerance - 1))
            .expect_err("too far ahead");
        assert_eq!(
            new,
            Rejection::TooNew {
                ahead_secs: tolerance + 1,
                tolerance_secs: tolerance
            }
        );
        assert!(new.is_authentic());

        // A forgery is a mismatch whatever its age: it must never reach the dead-letter queue.
        let forged = verifier
            .verify(b"{}", &map, at(VECTOR_TIMESTAMP + 86_400))
            .expect_err("forged");
        assert_eq!(forged, Rejection::Mismatch);
        assert!(!forged.is_authentic());
    }

    #[test]
    fn tolerance_is_configurable_each_way() {
        let verifier = Verifier::new(&secrets(VECTOR_SECRET)).with_tolerance(Tolerance {
            past: Duration::from_secs(10),
            future: Duration::from_secs(2),
        });
        let body = VECTOR_BODY.as_bytes();
        let map = vector_headers();
        assert!(
            verifier
                .verify(body, &map, at(VECTOR_TIMESTAMP + 10))
                .is_ok()
        );
        assert!(matches!(
            verifier.verify(body, &map, at(VECTOR_TIMESTAMP + 11)),
            Err(Rejection::TooOld { .. })
        ));
        assert!(
            verifier
                .verify(body, &map, at(VECTOR_TIMESTAMP - 2))
                .is_ok()
        );
        assert!(matches!(
            verifier.verify(body, &map, at(VECTOR_TIMESTAMP - 3)),
            Err(Rejection::TooNew { .. })
        ));
    }

    #[test]
    fn secrets_parse_from_a_comma_separated_list() {
        assert_eq!(
            secrets(" a , b,c ").expose().collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!("".parse::<Secrets>(), Err(SecretsError::Empty));
        assert_eq!("  ".parse::<Secrets>(), Err(SecretsError::Empty));
        assert_eq!(
            "a,,b".parse::<Secrets>(),
            Err(SecretsError::EmptyEntry { position: 2 })
        );
        assert_eq!(
            "a,".parse::<Secrets>(),
            Err(SecretsError::EmptyEntry { position: 2 })
        );
        assert_eq!(Secrets::new(Vec::<String>::new()), Err(SecretsError::Empty));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let list = secrets("hunter2,correct-horse");
        let debug = format!("{list:?} {:?}", Verifier::new(&list));
        assert!(
            !debug.contains("hunter2") && !debug.contains("correct-horse"),
            "{debug}"
        );
        assert!(debug.contains("redacted; 2"), "{debug}");
    }

    fn flip(text: &str, index: usize, xor: u8) -> Option<String> {
        let mut bytes = text.as_bytes().to_vec();
        let i = index % bytes.len();
        bytes[i] ^= xor;
        String::from_utf8(bytes).ok()
    }

    proptest! {
        /// Changing any byte of the body, the nonce or the timestamp makes verification fail,
        /// and never as an "authentic" rejection.
        #[test]
        fn any_changed_byte_fails(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            nonce in "[0-9A-Z]{26}",
            timestamp in 1_000_000_000u64..4_000_000_000,
            index in any::<usize>(),
            xor in 1u8..=255,
            target in 0..3u8,
        ) {
            let verifier = Verifier::new(&secrets("prop-secret"));
            let signed = sign_headers("prop-secret", &body, &nonce, timestamp);
            let now = at(timestamp);
            prop_assert!(verifier.verify_parts(&body, &signed.parts(), now).is_ok());

            let mut body2 = body.clone();
            let mut nonce2 = nonce.clone();
            let mut timestamp2 = signed.timestamp.clone();
            match target {
                0 => { let i = index % body2.len(); body2[i] ^= xor; }
                1 => match flip(&nonce, index, xor) { Some(n) => nonce2 = n, None => return Ok(()) },
                _ => match flip(&signed.timestamp, index, xor) { Some(t) => timestamp2 = t, None => return Ok(()) },
            }
            let parts = SignatureParts { signature: &signed.signature, nonce: &nonce2, timestamp: &timestamp2, algorithm: Some(HMAC_SHA256) };
            let result = verifier.verify_parts(&body2, &parts, now);
            prop_assert!(matches!(&result, Err(r) if !r.is_authentic()), "{result:?}");
        }
    }
}
