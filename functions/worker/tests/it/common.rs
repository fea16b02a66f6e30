//! Shared by the worker's tests and benchmarks: a fake Sinch, SQS records as Lambda delivers
//! them, services.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use pipeline::clock::Clock;
use pipeline::envelope::{Envelope, SignatureHeaders};
use pipeline::handlers::Services;
use pipeline::reply::ReplyPolicy;
use serde_json::json;
use sinch::client::{
    ClientConfig, ConversationCredentials, RetrySettings, SinchClient, SmsCredentials, Urls,
};
use tokio::time::Instant;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A fake Sinch: tokens; `messages:send` answers 503 for identity `transient`, 400 for
/// `rejected`, and otherwise 200 after `delay`; SMS batches answer 201.
pub async fn fake_sinch_with_delay(delay: Duration) -> MockServer {
    let server = testkit::fake_sinch().await;
    let send = "/v1/projects/p/messages:send";
    let to = |identity: &str| {
        body_partial_json(
            json!({"recipient": {"identified_by": {"channel_identities": [{"identity": identity}]}}}),
        )
    };
    Mock::given(method("POST"))
        .and(path(send))
        .and(to("transient"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(send))
        .and(to("rejected"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 400, "message": "Recipient not allowed", "status": "INVALID_ARGUMENT"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(send))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message_id": "01REPLY"}))
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/xms/v1/plan/batches"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "01BATCH"})))
        .mount(&server)
        .await;
    server
}

pub async fn fake_sinch() -> MockServer {
    fake_sinch_with_delay(Duration::ZERO).await
}

pub fn sinch_client(server: &MockServer) -> SinchClient {
    let mut config = ClientConfig::new(Urls::all_at(&server.uri()));
    config.conversation = Some(ConversationCredentials {
        project_id: "p".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    config.sms = Some(SmsCredentials {
        service_plan_id: "plan".into(),
        api_token: "tok".into(),
    });
    config.retry = RetrySettings {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 2,
    };
    // Sends start with a fifth of a second left: a one-second invocation can lose an answer.
    config.send_budget = Duration::from_millis(200);
    SinchClient::new(config).unwrap()
}

/// A Conversation inbound text message on WhatsApp.
pub fn inbound(id: &str, identity: &str, text: &str) -> String {
    json!({
        "app_id": "app-1", "project_id": "p", "accepted_time": testkit::now_rfc3339(),
        "message": {
            "id": id, "direction": "TO_APP",
            "contact_message": {"text_message": {"text": text}},
            "channel_identity": {"channel": "WHATSAPP", "identity": identity, "app_id": "app-1"},
            "contact_id": "c", "conversation_id": "cv", "processing_mode": "CONVERSATION"
        }
    })
    .to_string()
}

/// An SQS record as the event source mapping delivers it, with the receiver's attributes.
pub fn record(message_id: &str, body: &str) -> serde_json::Value {
    let mut envelope = Envelope::new(
        body.as_bytes().to_vec(),
        SignatureHeaders {
            signature: "c2ln".into(),
            nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
            timestamp: "1763870400".into(),
            algorithm: Some("HmacSHA256".into()),
        },
        std::time::UNIX_EPOCH + Duration::from_secs(1_763_870_400),
    );
    envelope.request_id = Some(format!("req-{message_id}"));
    envelope_record(message_id, &envelope, 1)
}

/// A send job of the messages API, as the outbound queue delivers it (`receives`: the
/// ApproximateReceiveCount).
pub fn job_record(
    message_id: &str,
    job: &pipeline::jobs::OutboundJob,
    receives: u32,
) -> serde_json::Value {
    let envelope = Envelope::job(
        pipeline::jobs::SEND_JOB,
        serde_json::to_string(job).expect("a job serializes"),
        std::time::UNIX_EPOCH + Duration::from_secs(1_763_870_400),
    );
    envelope_record(message_id, &envelope, receives)
}

/// An SQS record carrying `envelope` (`receives`: the ApproximateReceiveCount).
pub fn envelope_record(message_id: &str, envelope: &Envelope, receives: u32) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = envelope
        .attributes()
        .map(|(name, value)| {
            (
                name.to_owned(),
                json!({"stringValue": value, "dataType": "String", "stringListValues": [], "binaryListValues": []}),
            )
        })
        .collect();
    json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}"),
        "body": envelope.queued_body(),
        "attributes": {"ApproximateReceiveCount": receives.to_string(), "SentTimestamp": "1763870400000"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:callbacks",
        "awsRegion": "eu-west-1"
    })
}

pub fn event(records: Vec<serde_json::Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("a valid SQS event")
}

pub fn services<S>(store: S, server: &MockServer) -> Services<S> {
    services_with(store, server, ReplyPolicy::default())
}

/// [`services`] with the hook `hook`.
pub fn services_with<S, H>(store: S, server: &MockServer, hook: H) -> Services<S, H> {
    Services {
        privacy: Default::default(),
        store,
        sinch: sinch_client(server),
        hook,
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        send_rules: pipeline::send_rules::SendRules::default(),
        ledger: pipeline::ledger::Ledger::default(),
        pacing: Default::default(),
        clock: Clock::System,
    }
}

/// An invocation's deadline, wide enough for a loaded two-core machine talking to moto
/// (tests of running out of time set their own).
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Everything waiting in `queue`, taken out, as the records of one SQS event.
pub fn drain(queue: &pipeline::queue::MemoryQueue) -> SqsEvent {
    let records = queue
        .take(usize::MAX)
        .iter()
        .map(|queued| envelope_record(&queued.id.0, &queued.envelope, 1))
        .collect();
    event(records)
}
