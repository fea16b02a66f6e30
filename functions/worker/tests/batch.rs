//! Whole batches through the worker: a fake Sinch (wiremock), SQS on moto_server for the
//! dead-letter queue, the in-memory store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use pipeline::clock::Clock;
use pipeline::envelope::{self, Envelope, SignatureHeaders};
use pipeline::handlers::{Handled, ReplyOutcome, Services};
use pipeline::queue::{MemoryQueue, SqsQueue, enqueue_client};
use pipeline::reply::ReplyPolicy;
use pipeline::store::{
    Claim, ClaimRequest, ContactKey, InboundRecord, MemoryStore, MessageKey, MessageState,
    OptChange, ReplyRecord, StatusChange, StatusUpdate, Store, StoreError,
};
use serde_json::json;
use sinch::client::{
    ClientConfig, ConversationCredentials, RetrySettings, SinchClient, SmsCredentials, Urls,
};
use testkit::Moto;
use tokio::time::Instant;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use worker::{RecordOutcome, Worker, handle_batch, process_batch};

/// The in-memory store, except that storing inbound message `PANIC_ID` panics: the only way to
/// make a handler panic on purpose.
#[derive(Debug, Clone, Default)]
struct PanicOn(MemoryStore);

const PANIC_ID: &str = "01PANIC";

impl Store for PanicOn {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        self.0.claim(request).await
    }
    async fn complete(&self, key: &str, expires_at_s: u64) -> Result<(), StoreError> {
        self.0.complete(key, expires_at_s).await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.0.release(key).await
    }
    async fn record_status(&self, update: &StatusUpdate) -> Result<StatusChange, StoreError> {
        self.0.record_status(update).await
    }
    async fn message_state(&self, key: &MessageKey) -> Result<Option<MessageState>, StoreError> {
        self.0.message_state(key).await
    }
    async fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> Result<(), StoreError> {
        assert_ne!(inbound.id, PANIC_ID, "deliberate panic for the test");
        self.0.record_inbound(inbound, change).await
    }
    async fn opted_out_by(&self, contact: &ContactKey) -> Result<Option<String>, StoreError> {
        self.0.opted_out_by(contact).await
    }
    async fn record_reply(&self, reply: &ReplyRecord) -> Result<(), StoreError> {
        self.0.record_reply(reply).await
    }
}

async fn fake_sinch() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t", "expires_in": 3600})),
        )
        .mount(&server)
        .await;
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
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01REPLY"})))
        .mount(&server)
        .await;
    server
}

fn sinch_client(server: &MockServer) -> SinchClient {
    let mut config = ClientConfig::new(Urls {
        auth: server.uri(),
        conversation: server.uri(),
        sms: server.uri(),
    });
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
    SinchClient::new(config).unwrap()
}

fn inbound(id: &str, identity: &str, text: &str) -> String {
    json!({
        "app_id": "app-1", "project_id": "p", "accepted_time": "2026-11-23T04:00:00.123456789Z",
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
fn record(message_id: &str, body: &str) -> serde_json::Value {
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
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1763870400000"},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:callbacks",
        "awsRegion": "eu-west-1"
    })
}

fn event(records: Vec<serde_json::Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("a valid SQS event")
}

fn services<S>(store: S, server: &MockServer) -> Services<S> {
    Services {
        store,
        sinch: sinch_client(server),
        policy: ReplyPolicy::default(),
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        clock: Clock::System,
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn a_mixed_batch_fails_exactly_the_records_to_retry() {
    let sinch = fake_sinch().await;
    let moto = Moto::start();
    let dlq_url = moto.create_queue("callbacks-dlq").await;
    let sdk = moto.sdk_config().await;
    let store = PanicOn::default();
    let worker = Arc::new(Worker {
        services: services(store.clone(), &sinch),
        dead_letters: SqsQueue::new(enqueue_client(&sdk, Duration::from_secs(2)), &dlq_url),
        concurrency: 4,
    });

    let delivery = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sinch/fixtures/conversation/message_delivery_failed.json"
    ))
    .unwrap();
    let batch = event(vec![
        record("good-help", &inbound("01HELP", "46701234567", "HELP")),
        record("good-delivery", &delivery),
        record("poison-json", "this is not JSON {"),
        record("poison-rejected", &inbound("01REJ", "rejected", "HELP")),
        record("transient", &inbound("01TRANS", "transient", "HELP")),
        record("panics", &inbound(PANIC_ID, "46700000000", "HELP")),
        record(
            "unknown-kind",
            r#"{"app_id":"a","comment_event":{"id":"x"}}"#,
        ),
        record(
            "quiet",
            &inbound("01QUIET", "46709999999", "just saying hi"),
        ),
    ]);
    let response = handle_batch(worker, batch, deadline()).await.unwrap();

    let failed: BTreeSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, BTreeSet::from(["transient", "panics"]));

    // The good records had their effects.
    let replies = store.0.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].in_reply_to, "01HELP");
    let states = store.0.messages();
    assert!(states.iter().any(|s| s.key
        == MessageKey::Conversation("01EQBF0BT63J7S1FEKJZ0Z08VD".into())
        && s.status == "FAILED"));

    // The poison records are in the DLQ, bodies intact, with their reasons.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let received = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let parked: HashMap<String, (String, HashMap<String, String>)> = received
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                .collect();
            (
                attributes[envelope::DEAD_LETTER_REASON].clone(),
                (m.body.unwrap_or_default(), attributes),
            )
        })
        .collect();
    assert_eq!(parked.len(), 2, "{parked:?}");
    let (body, attributes) = &parked["unparseable_payload"];
    assert_eq!(body, "this is not JSON {");
    assert_eq!(attributes[envelope::REQUEST_ID], "req-poison-json");
    assert!(attributes.contains_key("x-sinch-webhook-signature"));
    let (body, attributes) = &parked["sinch_rejected"];
    assert_eq!(body, &inbound("01REJ", "rejected", "HELP"));
    assert!(
        attributes[envelope::DEAD_LETTER_DETAIL].contains("Recipient not allowed"),
        "{attributes:?}"
    );
}

#[tokio::test]
async fn outcomes_say_what_happened_to_each_record() {
    let sinch = fake_sinch().await;
    let dead_letters = MemoryQueue::new("dlq");
    let worker = Arc::new(Worker {
        services: services(MemoryStore::new(), &sinch),
        dead_letters: dead_letters.clone(),
        concurrency: 2,
    });
    let outcomes: HashMap<String, RecordOutcome> = process_batch(
        worker,
        event(vec![
            record("help", &inbound("01HELP", "46701234567", "HELP")),
            record("garbage", "\u{1}\u{2}"),
            record("unknown", r#"{"type":"mo_hologram"}"#),
        ]),
        deadline(),
    )
    .await
    .into_iter()
    .map(|(id, outcome)| (id.unwrap(), outcome))
    .collect();
    assert_eq!(
        outcomes["help"],
        RecordOutcome::Handled {
            kind: "conversation.message".into(),
            handled: Handled::Inbound {
                id: "01HELP".into(),
                reply: ReplyOutcome::Sent {
                    message_id: "01REPLY".into(),
                    text: "This number is answered automatically. Reply STOP to unsubscribe, START to subscribe again.".into()
                }
            }
        }
    );
    assert_eq!(
        outcomes["garbage"],
        RecordOutcome::DeadLettered {
            reason: "unparseable_payload"
        }
    );
    assert!(
        matches!(&outcomes["unknown"], RecordOutcome::Handled { kind, handled: Handled::Unknown { .. } } if kind == "unknown")
    );
    assert_eq!(dead_letters.len(), 1);
    // Base64-encoded because SQS cannot store those control characters, and decoded back.
    let parked = &dead_letters.snapshot()[0].envelope;
    assert_eq!(parked.raw_body().unwrap().as_ref(), "\u{1}\u{2}".as_bytes());
}

#[tokio::test]
async fn poison_is_retried_when_the_dead_letter_queue_is_unreachable() {
    let sinch = fake_sinch().await;
    let endpoint = testkit::refused_endpoint();
    let sdk = testkit::sdk_config_for(&endpoint).await;
    let worker = Arc::new(Worker {
        services: services(MemoryStore::new(), &sinch),
        dead_letters: SqsQueue::new(
            enqueue_client(&sdk, Duration::from_millis(300)),
            format!("{endpoint}/123456789012/dlq"),
        ),
        concurrency: 2,
    });
    let response = handle_batch(worker, event(vec![record("poison", "nope")]), deadline())
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "poison");
}

#[tokio::test]
async fn messages_without_receiver_attributes_are_still_processed() {
    let sinch = fake_sinch().await;
    let store = MemoryStore::new();
    let worker = Arc::new(Worker {
        services: services(store.clone(), &sinch),
        dead_letters: MemoryQueue::new("dlq"),
        concurrency: 1,
    });
    let bare = json!({
        "messageId": "bare", "receiptHandle": "h",
        "body": inbound("01BARE", "46701234567", "hello"),
        "attributes": {}, "messageAttributes": {}
    });
    let response = handle_batch(worker, event(vec![bare]), deadline())
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(store.inbound()[0].id, "01BARE");
}

#[tokio::test]
async fn a_failure_without_a_message_id_fails_the_whole_batch() {
    let sinch = fake_sinch().await;
    let worker = Arc::new(Worker {
        services: services(PanicOn::default(), &sinch),
        dead_letters: MemoryQueue::new("dlq"),
        concurrency: 1,
    });
    let mut nameless = record("x", &inbound(PANIC_ID, "1", "HELP"));
    nameless.as_object_mut().unwrap().remove("messageId");
    assert!(
        handle_batch(worker, event(vec![nameless]), deadline())
            .await
            .is_err()
    );
}
