//! The receiver against real SQS APIs served by moto_server (one fresh server per test), and
//! against SQS endpoints that refuse or never answer.

use super::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use envelope::{self, Envelope};
use lambda_http::http::StatusCode;
use platform::queue::{SqsQueue, enqueue_client};
use receiver::{Receiver, ReceiverConfig, handle};
use sinch::signature::{
    ALGORITHM_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier, sign_headers,
};
use testkit::Moto;

/// A message as moto hands it back: body and string attributes.
struct Received {
    body: String,
    attributes: HashMap<String, String>,
}

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Received> {
    let output = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("ReceiveMessage");
    output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| Received {
            body: m.body.unwrap_or_default(),
            attributes: m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                .collect(),
        })
        .collect()
}

async fn sqs_receiver(endpoint: &str, queue_url: &str, dlq_url: &str) -> Receiver<SqsQueue> {
    let config: ReceiverConfig = config(queue_url, dlq_url);
    let sdk = testkit::sdk_config_for(endpoint).await;
    let client = enqueue_client(&sdk, config.enqueue_timeout);
    Receiver::new(
        &config,
        SqsQueue::new(client.clone(), queue_url),
        SqsQueue::new(client, dlq_url),
    )
    .with_clock(clock())
}

#[tokio::test]
async fn accepted_callbacks_land_in_sqs_byte_identical_with_attributes() {
    let moto = Moto::start();
    let queue_url = moto.create_queue("callbacks").await;
    let dlq_url = moto.create_queue("callbacks-dlq").await;
    let receiver = sqs_receiver(moto.endpoint(), &queue_url, &dlq_url).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);

    let bodies = [
        fixture("conversation/message_inbound_text.json"),
        b"{\n  \"pretty\": \"Gr\xc3\xbc\xc3\x9fe \xf0\x9f\x91\x8b\"\n}\n".to_vec(),
    ];
    for body in &bodies {
        let response = handle(&receiver, sinch_post(body)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let messages = receive_all(&sqs, &queue_url).await;
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(
            message.body.as_bytes(),
            body.as_slice(),
            "byte-identical body"
        );

        let signed = sign_headers(SECRET, body, NONCE, NOW);
        let attributes = &message.attributes;
        assert_eq!(attributes[SIGNATURE_HEADER], signed.signature);
        assert_eq!(attributes[NONCE_HEADER], NONCE);
        assert_eq!(attributes[TIMESTAMP_HEADER], NOW.to_string());
        assert_eq!(attributes[ALGORITHM_HEADER], "HmacSHA256");
        assert_eq!(
            attributes[envelope::RECEIVED_AT_MS],
            (NOW * 1000).to_string()
        );
        assert_eq!(attributes[envelope::REQUEST_ID], "apigw-request-id-1");
        assert_eq!(attributes[envelope::CONTENT_TYPE], "application/json");
        assert!(!attributes.contains_key(envelope::BODY_ENCODING));

        // The worker can rebuild the envelope and re-verify the signature from the message.
        let envelope = Envelope::from_message(message.body.clone(), |name| {
            attributes.get(name).map(String::as_str)
        })
        .expect("the message reads back as an envelope");
        let verifier = Verifier::new(&SECRET.parse().unwrap());
        verifier
            .verify_parts(
                &envelope.raw_body().unwrap(),
                &envelope.signature.as_ref().unwrap().as_parts(),
                now(),
            )
            .expect("re-verifies from the queued message");
    }
    assert!(receive_all(&sqs, &dlq_url).await.is_empty());
}

#[tokio::test]
async fn binary_bodies_are_queued_base64_and_read_back_exactly() {
    let moto = Moto::start();
    let queue_url = moto.create_queue("callbacks").await;
    let dlq_url = moto.create_queue("callbacks-dlq").await;
    let receiver = sqs_receiver(moto.endpoint(), &queue_url, &dlq_url).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);

    let body = b"\xff\x00{\"not\":\"utf-8\"}\x07".to_vec();
    let response = handle(&receiver, sinch_post(&body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let messages = receive_all(&sqs, &queue_url).await;
    let message = &messages[0];
    assert_eq!(message.attributes[envelope::BODY_ENCODING], "base64");
    let envelope = Envelope::from_message(message.body.clone(), |name| {
        message.attributes.get(name).map(String::as_str)
    })
    .unwrap();
    assert_eq!(envelope.raw_body().unwrap().as_ref(), body.as_slice());
}

#[tokio::test]
async fn stale_authentic_callbacks_go_to_the_dlq_with_a_reason() {
    let moto = Moto::start();
    let queue_url = moto.create_queue("callbacks").await;
    let dlq_url = moto.create_queue("callbacks-dlq").await;
    let receiver = sqs_receiver(moto.endpoint(), &queue_url, &dlq_url).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);

    let body = fixture("conversation/message_delivery_failed.json");
    let response = handle(
        &receiver,
        request("POST", &signed(SECRET, &body, NOW - 3600), &body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let parked = receive_all(&sqs, &dlq_url).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body.as_bytes(), body.as_slice());
    assert_eq!(
        parked[0].attributes[envelope::DEAD_LETTER_REASON],
        envelope::STALE_SIGNATURE
    );
    assert_eq!(
        parked[0].attributes[TIMESTAMP_HEADER],
        (NOW - 3600).to_string()
    );
    assert!(receive_all(&sqs, &queue_url).await.is_empty());
}

#[tokio::test]
async fn a_missing_queue_is_503() {
    let moto = Moto::start();
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let receiver = sqs_receiver(moto.endpoint(), &missing, &missing).await;
    let response = handle(&receiver, sinch_post(b"{}")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn sqs_refusing_connections_is_503_within_the_bound() {
    let endpoint = testkit::refused_endpoint();
    let url = format!("{endpoint}/123456789012/callbacks");
    let receiver = sqs_receiver(&endpoint, &url, &url).await;
    let started = Instant::now();
    let response = handle(&receiver, sinch_post(b"{}")).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        elapsed < Duration::from_millis(500) + Duration::from_millis(250),
        "answered after {elapsed:?}"
    );
}

#[tokio::test]
async fn sqs_that_never_answers_is_503_within_the_bound() {
    let (_listener, endpoint) = testkit::silent_endpoint();
    let url = format!("{endpoint}/123456789012/callbacks");
    let receiver = sqs_receiver(&endpoint, &url, &url).await;
    let body = fixture("sms/mo_text.json");

    // Both the queue and, for a stale callback, the dead-letter queue.
    for request in [
        sinch_post(&body),
        request("POST", &signed(SECRET, &body, NOW - 3600), &body),
    ] {
        let started = Instant::now();
        let response = handle(&receiver, request).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(json["status"], "unavailable");
        // The configured bound is 500 ms; allow scheduling slack, but nowhere near a hang.
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(900),
            "answered after {elapsed:?}"
        );
    }
}
