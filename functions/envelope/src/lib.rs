//! The envelope: how an accepted callback travels from the receiver to the worker.
//!
//! The queue message body is the callback body byte for byte, so what the worker parses (and
//! what an operator sees in the console or the dead-letter queue) is exactly what Sinch signed.
//! SQS only stores a subset of Unicode text, so a body that is not UTF-8, or holds characters
//! SQS refuses, is base64-encoded instead and the `body-encoding` attribute says so.
//!
//! Everything else rides in message attributes, under the names below: the four signature
//! headers (so the worker or an operator can re-verify), when and through which API Gateway
//! request it arrived, its content type, and, for parked messages, why it was dead-lettered.

#![warn(missing_docs)]

use std::borrow::Cow;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sinch::signature::{
    ALGORITHM_HEADER, NONCE_HEADER, SIGNATURE_HEADER, SignatureParts, TIMESTAMP_HEADER,
};

/// Attribute: when the receiver got the request, Unix milliseconds.
pub const RECEIVED_AT_MS: &str = "received-at-ms";
/// Attribute: API Gateway's request id (or the Lambda request id), for tracing a callback
/// from the access log to the worker's log.
pub const REQUEST_ID: &str = "request-id";
/// Attribute: the request's `Content-Type`.
pub const CONTENT_TYPE: &str = "content-type";
/// Attribute: present with value `base64` when the body had to be encoded.
pub const BODY_ENCODING: &str = "body-encoding";
/// Attribute: why a message was sent to the dead-letter queue (e.g. `stale_signature`).
pub const DEAD_LETTER_REASON: &str = "dead-letter-reason";

/// Attribute: the error behind the dead-letter reason, for the operator.
pub const DEAD_LETTER_DETAIL: &str = "dead-letter-detail";

/// Attribute: present on work we queued ourselves rather than a callback, naming it: `send` for
/// a send of the messages API (the body is the job, JSON).
pub const JOB: &str = "job";

/// Value of [`DEAD_LETTER_REASON`] for an authentic callback whose timestamp was out of
/// tolerance.
pub const STALE_SIGNATURE: &str = "stale_signature";

/// The largest message SQS accepts: body plus attribute names, types and values.
pub const SQS_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// How the queued body relates to the callback's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// The queued text is the body itself.
    Raw,
    /// The queued text is the standard base64 of the body.
    Base64,
}

/// The signature headers as received, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `x-sinch-webhook-signature`.
    pub signature: String,
    /// `x-sinch-webhook-signature-nonce`.
    pub nonce: String,
    /// `x-sinch-webhook-signature-timestamp`.
    pub timestamp: String,
    /// `x-sinch-webhook-signature-algorithm`, when sent.
    pub algorithm: Option<String>,
}

impl SignatureHeaders {
    /// The headers, borrowed, as the verifier takes them.
    pub fn as_parts(&self) -> SignatureParts<'_> {
        SignatureParts {
            signature: &self.signature,
            nonce: &self.nonce,
            timestamp: &self.timestamp,
            algorithm: self.algorithm.as_deref(),
        }
    }
}

impl From<&SignatureParts<'_>> for SignatureHeaders {
    fn from(parts: &SignatureParts<'_>) -> Self {
        Self {
            signature: parts.signature.to_owned(),
            nonce: parts.nonce.to_owned(),
            timestamp: parts.timestamp.to_owned(),
            algorithm: parts.algorithm.map(str::to_owned),
        }
    }
}

/// One callback as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    body: String,
    encoding: BodyEncoding,
    /// The signature headers the callback arrived with; `None` only for a message that did not
    /// come through the receiver (an operator's test message, say).
    pub signature: Option<SignatureHeaders>,
    /// Unix milliseconds.
    pub received_at_ms: u64,
    /// API Gateway's request id (or the local stack's), for tracing a callback end to end.
    pub request_id: Option<String>,
    /// The `Content-Type` the callback arrived with.
    pub content_type: Option<String>,
    /// Set when parked in the dead-letter queue: why (a stable code).
    pub dead_letter_reason: Option<String>,
    /// The error behind [`Envelope::dead_letter_reason`], cut to [`DETAIL_LIMIT`] bytes.
    pub dead_letter_detail: Option<String>,
    /// Set for work we queued ourselves ([`JOB`]); `None` for a callback.
    pub job: Option<String>,
}

/// Longest `dead-letter-detail` kept.
pub const DETAIL_LIMIT: usize = 512;

/// Why a queued message could not be read back as an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A required message attribute is absent (its name).
    #[error("message attribute {0} is missing")]
    MissingAttribute(&'static str),
    /// A message attribute has a value this version cannot read.
    #[error("message attribute {name} is malformed: {value:?}")]
    MalformedAttribute {
        /// Its name.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The body is marked base64 but does not decode.
    #[error("the body is marked base64 but does not decode")]
    BadBase64,
}

impl Envelope {
    /// Wraps a received body. Takes ownership so a UTF-8 body is queued without a copy.
    pub fn new(body: Vec<u8>, signature: SignatureHeaders, received_at: SystemTime) -> Self {
        let (body, encoding) = match String::from_utf8(body) {
            Ok(text) if sqs_accepts(&text) => (text, BodyEncoding::Raw),
            Ok(text) => (BASE64.encode(text.as_bytes()), BodyEncoding::Base64),
            Err(error) => (BASE64.encode(error.as_bytes()), BodyEncoding::Base64),
        };
        Self {
            body,
            encoding,
            signature: Some(signature),
            received_at_ms: received_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            request_id: None,
            content_type: None,
            dead_letter_reason: None,
            dead_letter_detail: None,
            job: None,
        }
    }

    /// A message body queued by someone other than the receiver, kept as it is (used to
    /// dead-letter a message whose attributes cannot be read).
    pub fn unverified(body: String) -> Self {
        Self {
            body,
            encoding: BodyEncoding::Raw,
            signature: None,
            received_at_ms: 0,
            request_id: None,
            content_type: None,
            dead_letter_reason: None,
            dead_letter_detail: None,
            job: None,
        }
    }

    /// Reads a queued message back: its body text and an attribute lookup.
    pub fn from_message<'a>(
        body: String,
        attribute: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Self, EnvelopeError> {
        let optional = |name: &str| attribute(name).map(str::to_owned);
        let encoding = match attribute(BODY_ENCODING) {
            None => BodyEncoding::Raw,
            Some("base64") => BodyEncoding::Base64,
            Some(other) => {
                return Err(EnvelopeError::MalformedAttribute {
                    name: BODY_ENCODING,
                    value: other.to_owned(),
                });
            }
        };
        let received_at_ms = match attribute(RECEIVED_AT_MS) {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| EnvelopeError::MalformedAttribute {
                    name: RECEIVED_AT_MS,
                    value: text.to_owned(),
                })?,
        };
        Ok(Self {
            body,
            encoding,
            signature: match (
                attribute(SIGNATURE_HEADER),
                attribute(NONCE_HEADER),
                attribute(TIMESTAMP_HEADER),
            ) {
                (Some(signature), Some(nonce), Some(timestamp)) => Some(SignatureHeaders {
                    signature: signature.to_owned(),
                    nonce: nonce.to_owned(),
                    timestamp: timestamp.to_owned(),
                    algorithm: optional(ALGORITHM_HEADER),
                }),
                (None, None, None) => None,
                (None, _, _) => return Err(EnvelopeError::MissingAttribute(SIGNATURE_HEADER)),
                (_, None, _) => return Err(EnvelopeError::MissingAttribute(NONCE_HEADER)),
                (_, _, None) => return Err(EnvelopeError::MissingAttribute(TIMESTAMP_HEADER)),
            },
            received_at_ms,
            request_id: optional(REQUEST_ID),
            content_type: optional(CONTENT_TYPE),
            dead_letter_reason: optional(DEAD_LETTER_REASON),
            dead_letter_detail: optional(DEAD_LETTER_DETAIL),
            job: optional(JOB),
        })
    }

    /// Work we queue ourselves: `kind` names it, `body` (JSON text) is the job.
    pub fn job(kind: &str, body: String, at: SystemTime) -> Self {
        let mut envelope = Self::unverified(body);
        envelope.received_at_ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        envelope.job = Some(kind.to_owned());
        envelope
    }

    /// Marks the envelope for the dead-letter queue: why, and the error behind it.
    pub fn dead_letter(&mut self, reason: &str, detail: &str) {
        self.dead_letter_reason = Some(reason.to_owned());
        let mut end = detail.len().min(DETAIL_LIMIT);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        self.dead_letter_detail = Some(detail[..end].to_owned());
    }

    /// The text that goes into the queue message body.
    pub fn queued_body(&self) -> &str {
        &self.body
    }

    /// How the body is written in the queue message.
    pub fn encoding(&self) -> BodyEncoding {
        self.encoding
    }

    /// The callback's exact bytes, decoding base64 when the body had to be encoded.
    pub fn raw_body(&self) -> Result<Cow<'_, [u8]>, EnvelopeError> {
        match self.encoding {
            BodyEncoding::Raw => Ok(Cow::Borrowed(self.body.as_bytes())),
            BodyEncoding::Base64 => BASE64
                .decode(&self.body)
                .map(Cow::Owned)
                .map_err(|_| EnvelopeError::BadBase64),
        }
    }

    /// The message attributes, `(name, value)`, skipping absent ones (SQS refuses empty
    /// values).
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
        let signature = self.signature.as_ref();
        [
            (SIGNATURE_HEADER, signature.map(|s| Cow::from(&s.signature))),
            (NONCE_HEADER, signature.map(|s| Cow::from(&s.nonce))),
            (TIMESTAMP_HEADER, signature.map(|s| Cow::from(&s.timestamp))),
            (
                ALGORITHM_HEADER,
                signature.and_then(|s| s.algorithm.as_deref().map(Cow::from)),
            ),
            (
                RECEIVED_AT_MS,
                Some(Cow::from(self.received_at_ms.to_string())),
            ),
            (REQUEST_ID, self.request_id.as_deref().map(Cow::from)),
            (CONTENT_TYPE, self.content_type.as_deref().map(Cow::from)),
            (
                BODY_ENCODING,
                (self.encoding == BodyEncoding::Base64).then_some(Cow::from("base64")),
            ),
            (
                DEAD_LETTER_REASON,
                self.dead_letter_reason.as_deref().map(Cow::from),
            ),
            (
                DEAD_LETTER_DETAIL,
                self.dead_letter_detail.as_deref().map(Cow::from),
            ),
            (JOB, self.job.as_deref().map(Cow::from)),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.filter(|v| !v.is_empty()).map(|v| (name, v)))
    }

    /// The size SQS counts against its limit: body, and each attribute's name, data type
    /// (`String`) and value.
    pub fn queued_size(&self) -> usize {
        self.body.len()
            + self
                .attributes()
                .map(|(name, value)| name.len() + "String".len() + value.len())
                .sum::<usize>()
    }
}

/// Whether SQS stores this text as a message body unchanged. SQS accepts `#x9 | #xA | #xD |
/// #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`; Rust strings hold no surrogates, so the
/// only characters to refuse are the C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF.
fn sqs_accepts(text: &str) -> bool {
    text.bytes()
        .all(|b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
        && !text.contains(['\u{FFFE}', '\u{FFFF}'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::{Duration, UNIX_EPOCH};

    fn headers() -> SignatureHeaders {
        SignatureHeaders {
            signature: "c2lnbmF0dXJl".into(),
            nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
            timestamp: "1634579353".into(),
            algorithm: Some("HmacSHA256".into()),
        }
    }

    fn round_trip(envelope: &Envelope) -> Envelope {
        let attributes: HashMap<&str, String> = envelope
            .attributes()
            .map(|(name, value)| (name, value.into_owned()))
            .collect();
        Envelope::from_message(envelope.queued_body().to_owned(), |name| {
            attributes.get(name).map(String::as_str)
        })
        .expect("an envelope reads back")
    }

    #[test]
    fn utf8_json_is_queued_byte_for_byte() {
        let body = "{\n  \"text\": \"Grüße 👋\"\n}\n";
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut envelope = Envelope::new(body.as_bytes().to_vec(), headers(), at);
        envelope.request_id = Some("req-1".into());
        envelope.content_type = Some("application/json".into());
        assert_eq!(envelope.encoding(), BodyEncoding::Raw);
        assert_eq!(envelope.queued_body(), body);
        assert_eq!(envelope.raw_body().unwrap().as_ref(), body.as_bytes());
        assert_eq!(envelope.received_at_ms, 1_700_000_000_123);
        assert_eq!(round_trip(&envelope), envelope);
    }

    #[test]
    fn bodies_sqs_cannot_store_are_base64_encoded() {
        for body in [
            b"\xff\xfe{}".to_vec(),
            b"{\"a\":\"\x00\"}".to_vec(),
            b"bell\x07".to_vec(),
            "\u{FFFF}".as_bytes().to_vec(),
        ] {
            let envelope = Envelope::new(body.clone(), headers(), UNIX_EPOCH);
            assert_eq!(envelope.encoding(), BodyEncoding::Base64, "{body:?}");
            assert_eq!(envelope.raw_body().unwrap().as_ref(), body.as_slice());
            assert!(
                envelope
                    .attributes()
                    .any(|(name, value)| name == BODY_ENCODING && value == "base64")
            );
            assert_eq!(round_trip(&envelope).raw_body().unwrap().as_ref(), body);
        }
    }

    #[test]
    fn absent_attributes_are_left_out() {
        let mut signature = headers();
        signature.algorithm = None;
        assert_eq!(signature.as_parts().algorithm, None);
        let envelope = Envelope::new(b"{}".to_vec(), signature, UNIX_EPOCH);
        let names: Vec<_> = envelope.attributes().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                SIGNATURE_HEADER,
                NONCE_HEADER,
                TIMESTAMP_HEADER,
                RECEIVED_AT_MS
            ]
        );
    }

    #[test]
    fn queued_size_counts_body_and_attributes() {
        let envelope = Envelope::new(b"{}".to_vec(), headers(), UNIX_EPOCH);
        let expected = 2 + envelope
            .attributes()
            .map(|(n, v)| n.len() + 6 + v.len())
            .sum::<usize>();
        assert_eq!(envelope.queued_size(), expected);
    }

    #[test]
    fn a_message_without_signature_attributes_reads_as_unverified() {
        let envelope = Envelope::from_message("{}".into(), |_| None).unwrap();
        assert_eq!(envelope, Envelope::unverified("{}".into()));
        assert_eq!(envelope.attributes().count(), 1, "only received-at-ms");
    }

    #[test]
    fn dead_letter_details_are_cut_at_a_character_boundary() {
        let mut envelope = Envelope::unverified("{}".into());
        envelope.dead_letter("sinch_rejected", &"é".repeat(DETAIL_LIMIT));
        let detail = envelope.dead_letter_detail.as_deref().unwrap();
        assert!(detail.len() <= DETAIL_LIMIT && detail.len() >= DETAIL_LIMIT - 1);
        assert_eq!(
            round_trip(&envelope).dead_letter_reason.as_deref(),
            Some("sinch_rejected")
        );
    }

    #[test]
    fn unreadable_messages_say_why() {
        let partial =
            Envelope::from_message("{}".into(), |name| (name == NONCE_HEADER).then_some("n"));
        assert_eq!(
            partial,
            Err(EnvelopeError::MissingAttribute(SIGNATURE_HEADER))
        );
        let envelope = Envelope::new(b"{}".to_vec(), headers(), UNIX_EPOCH);
        let attributes: HashMap<&str, String> = envelope
            .attributes()
            .map(|(name, value)| (name, value.into_owned()))
            .chain([(BODY_ENCODING, "gzip".to_owned())])
            .collect();
        assert_eq!(
            Envelope::from_message("{}".into(), |n| attributes.get(n).map(String::as_str)),
            Err(EnvelopeError::MalformedAttribute {
                name: BODY_ENCODING,
                value: "gzip".into()
            })
        );
    }

    /// The largest body that fits in one SQS message with the receiver's attributes (a real
    /// signature, nonce and timestamp, an API Gateway request id, the content type): the
    /// figures the README's 413 row gives.
    #[test]
    fn the_largest_queueable_body() {
        let largest = |byte: u8| {
            let wrap = |size: usize| {
                let mut envelope = Envelope::new(
                    vec![byte; size],
                    SignatureHeaders {
                        signature: "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=".into(),
                        ..headers()
                    },
                    UNIX_EPOCH + Duration::from_millis(1_763_870_400_000),
                );
                envelope.request_id = Some("dGhpc2lzYXJlcUlk=".into());
                envelope.content_type = Some("application/json".into());
                envelope.queued_size()
            };
            let (mut fits, mut too_big) = (0, SQS_MAX_MESSAGE_BYTES + 1);
            while too_big - fits > 1 {
                let middle = (fits + too_big) / 2;
                if wrap(middle) <= SQS_MAX_MESSAGE_BYTES {
                    fits = middle;
                } else {
                    too_big = middle;
                }
            }
            fits
        };
        let utf8 = largest(b'a');
        let base64 = largest(0xff);
        assert_eq!(utf8, 1_048_236, "UTF-8 bodies");
        assert_eq!(base64, 786_156, "bodies queued as base64");
    }
}
