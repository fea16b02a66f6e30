//! Every row of the receiver table (DESIGN.md), through the real `lambda_http` request parsing,
//! with the in-memory queue. The same handler against SQS on moto_server is in `sqs.rs`.

use super::common;

use common::*;
use envelope::{self, BodyEncoding};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use platform::queue::MemoryQueue;
use proptest::prelude::*;
use receiver::{Receiver, handle};
use sinch::signature::{
    ALGORITHM_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_headers,
};

struct Stack {
    receiver: Receiver<MemoryQueue>,
    queue: MemoryQueue,
    dead_letters: MemoryQueue,
}

fn stack() -> Stack {
    let queue = MemoryQueue::new("callbacks");
    let dead_letters = MemoryQueue::new("callbacks-dlq");
    let receiver = Receiver::new(
        &config("memory://callbacks", "memory://callbacks-dlq"),
        queue.clone(),
        dead_letters.clone(),
    )
    .with_clock(clock());
    Stack {
        receiver,
        queue,
        dead_letters,
    }
}

fn body_json(response: &Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).expect("answers are JSON")
}

fn assert_answer(response: &Response<Body>, status: StatusCode, reason: &str) {
    assert_eq!(response.status(), status);
    let json = body_json(response);
    let got = json["reason"].as_str().or(json["status"].as_str());
    assert_eq!(got, Some(reason), "{json}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "every answer is JSON"
    );
}

impl Stack {
    fn assert_nothing_queued(&self) {
        assert!(self.queue.is_empty(), "nothing may be enqueued");
        assert!(self.dead_letters.is_empty(), "nothing may be dead-lettered");
    }
}

#[tokio::test]
async fn a_valid_callback_is_queued_byte_for_byte_with_its_attributes() {
    let s = stack();
    let body = fixture("conversation/message_inbound_text.json");
    let response = handle(&s.receiver, sinch_post(&body)).await;

    assert_answer(&response, StatusCode::OK, "accepted");
    assert_eq!(
        body_json(&response),
        serde_json::json!({"status": "accepted"})
    );
    let queued = s.queue.snapshot();
    assert_eq!(queued.len(), 1);
    let envelope = &queued[0].envelope;
    assert_eq!(envelope.queued_body().as_bytes(), body.as_slice());
    assert_eq!(envelope.encoding(), BodyEncoding::Raw);
    let signed = sign_headers(SECRET, &body, NONCE, NOW);
    let signature = envelope.signature.as_ref().expect("signature headers kept");
    assert_eq!(signature.signature, signed.signature);
    assert_eq!(signature.nonce, NONCE);
    assert_eq!(signature.timestamp, NOW.to_string());
    assert_eq!(signature.algorithm.as_deref(), Some("HmacSHA256"));
    assert_eq!(envelope.received_at_ms, NOW * 1000);
    assert_eq!(envelope.request_id.as_deref(), Some("apigw-request-id-1"));
    assert_eq!(envelope.content_type.as_deref(), Some("application/json"));
    assert_eq!(envelope.dead_letter_reason, None);
    assert!(s.dead_letters.is_empty());
}

#[tokio::test]
async fn every_fixture_is_accepted_unchanged() {
    let s = stack();
    let fixtures = [
        "conversation/contact_create.json",
        "conversation/message_delivery_failed.json",
        "sms/mo_text.json",
        "sms/recipient_delivery_report.json",
        "sinch-sdk/conversation_v1_sinchevents_message_MessageInboundEventDto.json",
        "sinch-sdk/sms_v1_deliveryreports_BatchDeliveryReportSMSDto.json",
    ];
    for path in fixtures {
        let body = fixture(path);
        let response = handle(&s.receiver, sinch_post(&body)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let queued = s.queue.take(1);
        assert_eq!(
            queued[0].envelope.raw_body().unwrap().as_ref(),
            body,
            "{path}"
        );
    }
}

#[tokio::test]
async fn body_variants_verify_on_their_exact_bytes() {
    let s = stack();
    let bodies: [&[u8]; 4] = [
        b"{\"a\":1}\n",
        b"{\n  \"message\": {\n    \"contact_message\": {\"text_message\": {\"text\": \"hi\"}}\n  }\n}\n",
        "{\"message\":{\"contact_message\":{\"text_message\":{\"text\":\"Grüße, 你好 👋\"}}}}".as_bytes(),
        b"\xff\xfe\x00 binary, not UTF-8",
    ];
    for body in bodies {
        let response = handle(&s.receiver, sinch_post(body)).await;
        assert_answer(&response, StatusCode::OK, "accepted");
        let envelope = s.queue.take(1).remove(0).envelope;
        assert_eq!(envelope.raw_body().unwrap().as_ref(), body);
        let expected = if std::str::from_utf8(body).is_ok() {
            BodyEncoding::Raw
        } else {
            BodyEncoding::Base64
        };
        assert_eq!(envelope.encoding(), expected);
    }
}

#[tokio::test]
async fn a_base64_encoded_api_gateway_body_is_verified_after_decoding() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    let event = event("POST", &signed(SECRET, &body, NOW), &body, true);
    assert_eq!(event["isBase64Encoded"], true);
    let response = handle(&s.receiver, from_event(&event)).await;
    assert_answer(&response, StatusCode::OK, "accepted");
    assert_eq!(s.queue.take(1)[0].envelope.queued_body().as_bytes(), body);
}

#[tokio::test]
async fn header_names_in_any_case_are_found() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    let shouted: Vec<(String, String)> = signed(SECRET, &body, NOW)
        .into_iter()
        .map(|(name, value)| (name.to_uppercase(), value))
        .collect();
    let response = handle(&s.receiver, request("POST", &shouted, &body)).await;
    assert_answer(&response, StatusCode::OK, "accepted");
}

#[tokio::test]
async fn any_configured_secret_is_accepted() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    let response = handle(
        &s.receiver,
        request("POST", &signed("second-secret", &body, NOW), &body),
    )
    .await;
    assert_answer(&response, StatusCode::OK, "accepted");
    let response = handle(
        &s.receiver,
        request("POST", &signed("retired-secret", &body, NOW), &body),
    )
    .await;
    assert_answer(&response, StatusCode::UNAUTHORIZED, "signature_mismatch");
    assert_eq!(s.queue.len(), 1);
}

#[tokio::test]
async fn each_missing_signature_header_is_401_and_nothing_queued() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    for missing in [SIGNATURE_HEADER, NONCE_HEADER, TIMESTAMP_HEADER] {
        let headers: Vec<_> = signed(SECRET, &body, NOW)
            .into_iter()
            .filter(|(name, _)| name != missing)
            .collect();
        let response = handle(&s.receiver, request("POST", &headers, &body)).await;
        assert_answer(&response, StatusCode::UNAUTHORIZED, "missing_header");
    }
    let response = handle(&s.receiver, request("POST", &[], &body)).await;
    assert_answer(&response, StatusCode::UNAUTHORIZED, "missing_header");
    s.assert_nothing_queued();
}

fn with_header(body: &[u8], name: &str, value: &str) -> Vec<(String, String)> {
    signed(SECRET, body, NOW)
        .into_iter()
        .map(|(n, v)| {
            if n == name {
                (n, value.to_owned())
            } else {
                (n, v)
            }
        })
        .collect()
}

#[tokio::test]
async fn garbled_headers_are_401_and_nothing_queued() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    let cases = [
        (SIGNATURE_HEADER, "not-base64!!", "malformed_signature"),
        (SIGNATURE_HEADER, "", "malformed_signature"),
        (
            SIGNATURE_HEADER,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "signature_mismatch",
        ),
        (ALGORITHM_HEADER, "HmacSHA1", "unsupported_algorithm"),
        (TIMESTAMP_HEADER, "yesterday", "malformed_timestamp"),
        (TIMESTAMP_HEADER, "-1", "malformed_timestamp"),
        (TIMESTAMP_HEADER, "1.5e9", "malformed_timestamp"),
        (NONCE_HEADER, "another-nonce", "signature_mismatch"),
        (NONCE_HEADER, "é", "malformed_header"),
    ];
    for (name, value, reason) in cases {
        let response = handle(
            &s.receiver,
            request("POST", &with_header(&body, name, value), &body),
        )
        .await;
        assert_answer(&response, StatusCode::UNAUTHORIZED, reason);
    }
    s.assert_nothing_queued();
}

#[tokio::test]
async fn a_changed_body_is_a_mismatch() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    let mut tampered = body.clone();
    tampered.push(b'\n');
    let response = handle(
        &s.receiver,
        request("POST", &signed(SECRET, &body, NOW), &tampered),
    )
    .await;
    assert_answer(&response, StatusCode::UNAUTHORIZED, "signature_mismatch");
    s.assert_nothing_queued();
}

#[tokio::test]
async fn authentic_but_stale_callbacks_are_dead_lettered_with_a_reason() {
    let s = stack();
    let body = fixture("conversation/message_delivery_failed.json");
    for timestamp in [NOW - 301, NOW - 86_400, NOW + 301] {
        let response = handle(
            &s.receiver,
            request("POST", &signed(SECRET, &body, timestamp), &body),
        )
        .await;
        assert_answer(&response, StatusCode::UNAUTHORIZED, "stale_signature");
    }
    assert!(s.queue.is_empty());
    let parked = s.dead_letters.snapshot();
    assert_eq!(parked.len(), 3);
    for message in parked {
        assert_eq!(message.envelope.queued_body().as_bytes(), body);
        assert_eq!(
            message.envelope.dead_letter_reason.as_deref(),
            Some(envelope::STALE_SIGNATURE)
        );
    }
}

#[tokio::test]
async fn a_forged_stale_callback_is_not_dead_lettered() {
    let s = stack();
    let body = fixture("conversation/message_delivery_failed.json");
    let response = handle(
        &s.receiver,
        request("POST", &signed("forger", &body, NOW - 86_400), &body),
    )
    .await;
    assert_answer(&response, StatusCode::UNAUTHORIZED, "signature_mismatch");
    s.assert_nothing_queued();
}

#[tokio::test]
async fn the_edges_of_the_tolerance_are_accepted() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    for timestamp in [NOW - 300, NOW + 300] {
        let response = handle(
            &s.receiver,
            request("POST", &signed(SECRET, &body, timestamp), &body),
        )
        .await;
        assert_answer(&response, StatusCode::OK, "accepted");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let s = stack();
    let body = vec![b' '; 64 * 1024 + 1];
    let response = handle(&s.receiver, sinch_post(&body)).await;
    assert_answer(&response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let at_limit = vec![b' '; 64 * 1024];
    let response = handle(&s.receiver, sinch_post(&at_limit)).await;
    assert_answer(&response, StatusCode::OK, "accepted");
}

#[tokio::test]
async fn an_empty_body_is_refused() {
    let s = stack();
    // Unsigned: nothing to verify.
    let response = handle(&s.receiver, request("POST", &[], b"")).await;
    assert_answer(&response, StatusCode::UNAUTHORIZED, "missing_header");
    // Signed with a wrong secret: a mismatch like any other.
    let response = handle(&s.receiver, request("POST", &signed("x", b"", NOW), b"")).await;
    assert_answer(&response, StatusCode::UNAUTHORIZED, "signature_mismatch");
    // Authentic but empty: no queue message can carry it, and Sinch would never send it.
    let response = handle(&s.receiver, sinch_post(b"")).await;
    assert_answer(&response, StatusCode::BAD_REQUEST, "empty_body");
    s.assert_nothing_queued();
}

#[tokio::test]
async fn methods_other_than_post_are_405() {
    let s = stack();
    let body = fixture("sms/mo_text.json");
    for method in ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let response = handle(
            &s.receiver,
            request(method, &signed(SECRET, &body, NOW), &body),
        )
        .await;
        assert_answer(
            &response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
        assert_eq!(response.headers()["allow"], "POST");
    }
    s.assert_nothing_queued();
}

#[tokio::test]
async fn every_outcome_is_counted_as_an_emf_metric() {
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let queue = MemoryQueue::new("q");
    let dead_letters = MemoryQueue::new("dlq");
    let receiver = Receiver::new(&config("m://q", "m://dlq"), queue, dead_letters)
        .with_clock(clock())
        .with_metrics(platform::metrics::Metrics::to_writer(
            "receiver",
            captured.clone(),
        ));
    let body = fixture("sms/mo_text.json");
    handle(&receiver, sinch_post(&body)).await;
    handle(
        &receiver,
        request("POST", &signed("forged", &body, NOW), &body),
    )
    .await;
    handle(
        &receiver,
        request("POST", &signed(SECRET, &body, NOW - 3600), &body),
    )
    .await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| platform::metrics::validate(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0]["Accepted"], 1);
    assert_eq!(
        (lines[1]["Rejected"].clone(), lines[1]["Reason"].clone()),
        (1.into(), "signature_mismatch".into())
    );
    assert_eq!(lines[2]["Reason"], "stale_signature");
    assert_eq!(lines[3]["DeadLettered"], 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever arrives, the receiver answers from its table and never panics; only a
    /// correctly signed request is queued.
    #[test]
    fn arbitrary_requests_get_a_table_answer(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT")],
        signature in prop_oneof![Just(None), "[ -~]{0,60}".prop_map(Some)],
        nonce in prop_oneof![Just(None), "[ -~]{0,40}".prop_map(Some)],
        timestamp in prop_oneof![Just(None), "[ -~]{0,20}".prop_map(Some), (0u64..4_000_000_000).prop_map(|t| Some(t.to_string()))],
        algorithm in prop_oneof![Just(None), Just(Some("HmacSHA256".to_owned())), "[ -~]{0,20}".prop_map(Some)],
        base64 in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let s = stack();
        let mut headers = Vec::new();
        for (name, value) in [(SIGNATURE_HEADER, signature), (NONCE_HEADER, nonce), (TIMESTAMP_HEADER, timestamp), (ALGORITHM_HEADER, algorithm)] {
            if let Some(value) = value {
                headers.push((name.to_owned(), value));
            }
        }
        let response = runtime.block_on(handle(&s.receiver, from_event(&event(method, &headers, &body, base64))));
        let allowed = [StatusCode::UNAUTHORIZED, StatusCode::METHOD_NOT_ALLOWED, StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE];
        prop_assert!(allowed.contains(&response.status()), "{:?}", response.status());
        prop_assert!(s.queue.is_empty());
        prop_assert!(s.dead_letters.is_empty());
    }
}
