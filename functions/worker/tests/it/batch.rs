//! Whole batches through the worker: a fake Sinch (wiremock), SQS on moto_server for the
//! dead-letter queue, the in-memory store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::common;

use common::*;
use pipeline::envelope;
use pipeline::handlers::{Handled, ReplyOutcome};
use pipeline::queue::{MemoryQueue, SqsQueue, enqueue_client};
use pipeline::store::{MemoryStore, MessageKey, SendState, SinchId};
use serde_json::json;
use testkit::Moto;
use testkit::faulty::{Fault, FaultyStore};
use worker::{RecordOutcome, Worker, handle_batch, process_batch};

/// The in-memory store, except that storing inbound message `PANIC_ID` panics: the only way to
/// make a handler panic on purpose.
fn panic_on() -> FaultyStore<MemoryStore> {
    let store = FaultyStore::new(MemoryStore::new());
    store.fail_for("record_inbound", PANIC_ID, Fault::Panic);
    store
}

const PANIC_ID: &str = "01PANIC";

/// Two trigger keys: an inbound message and a delivery report in one body.
const AMBIGUOUS: &str = r#"{"app_id":"a","message":{"id":"01AMB","contact_message":{"text_message":{"text":"HELP"}}},"message_delivery_report":{"message_id":"01AMB","status":"READ"}}"#;

#[tokio::test]
async fn a_mixed_batch_fails_exactly_the_records_to_retry() {
    let sinch = fake_sinch().await;
    let moto = Moto::start();
    let dlq_url = moto.create_queue("callbacks-dlq").await;
    let sdk = moto.sdk_config().await;
    let store = panic_on();
    let worker = Arc::new(Worker {
        services: services(store.clone(), &sinch),
        dead_letters: SqsQueue::new(enqueue_client(&sdk, Duration::from_secs(2)), &dlq_url),
        // Nothing of this batch is a batch job: the lanes are never used.
        lanes: pipeline::schedule::Lanes {
            transactional: SqsQueue::new(enqueue_client(&sdk, Duration::from_secs(2)), &dlq_url),
            bulk: SqsQueue::new(enqueue_client(&sdk, Duration::from_secs(2)), &dlq_url),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 4,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
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
        record("poison-ambiguous", AMBIGUOUS),
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
    let sends = store.inner().sends();
    let replies: Vec<_> = sends
        .iter()
        .filter(|(_, state, _)| *state == SendState::Sent)
        .collect();
    assert_eq!(replies.len(), 1, "{sends:?}");
    assert_eq!(replies[0].2.in_reply_to.as_deref(), Some("01HELP"));
    let help_sends = sinch
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| {
            r.url.path().ends_with("messages:send")
                && String::from_utf8_lossy(&r.body).contains("rpl_01HELP")
        })
        .count();
    assert_eq!(help_sends, 1, "one reply reached Sinch");
    let states = store.inner().messages();
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
    assert_eq!(parked.len(), 3, "{parked:?}");
    let (body, attributes) = &parked["ambiguous_payload"];
    assert_eq!(body, AMBIGUOUS);
    assert!(
        attributes[envelope::DEAD_LETTER_DETAIL].contains("several trigger keys"),
        "{attributes:?}"
    );
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
    let captured = testkit::Captured::default();
    let worker = Arc::new(Worker {
        services: services(MemoryStore::new(), &sinch),
        dead_letters: dead_letters.clone(),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 2,
        metrics: pipeline::metrics::Metrics::to_writer("worker", captured.clone()),
        outbound_max_receives: 5,
        store_health: Default::default(),
    });
    let started_ms = pipeline::clock::unix_millis(std::time::SystemTime::now());
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
    // Sent by this run, now: it left after the test began.
    let mut help = outcomes["help"].clone();
    let RecordOutcome::Handled {
        handled:
            Handled::Inbound {
                reply: ReplyOutcome::Sent { left_at_ms, .. },
                ..
            },
        ..
    } = &mut help
    else {
        panic!("the HELP was not answered: {help:?}");
    };
    assert!(left_at_ms.take().is_some_and(|at| at >= started_ms));
    assert_eq!(
        help,
        RecordOutcome::Handled {
            kind: "conversation.message".into(),
            handled: Handled::Inbound {
                id: "01HELP".into(),
                reply: ReplyOutcome::Sent {
                    id: "rpl_01HELP".into(),
                    sinch_id: Some(SinchId::Message("01REPLY".into())),
                    text: "This number is answered automatically. Reply STOP to unsubscribe, START to subscribe again.".into(),
                    left_at_ms: None,
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

    // One valid EMF line per metric.
    let text = captured.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| pipeline::metrics::validate(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let has = |metric: &str, dimension: Option<(&str, &str)>| {
        lines
            .iter()
            .any(|l| l[metric] == 1 && dimension.is_none_or(|(name, value)| l[name] == value))
    };
    assert!(
        has("Processed", Some(("Kind", "conversation.message"))),
        "{text}"
    );
    assert!(has("ReplySent", None), "{text}");
    assert!(
        has("DeadLettered", Some(("Reason", "unparseable_payload"))),
        "{text}"
    );
    assert!(has("Processed", Some(("Kind", "unknown"))), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
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
        lanes: pipeline::schedule::Lanes {
            transactional: SqsQueue::new(
                enqueue_client(&sdk, Duration::from_millis(300)),
                format!("{endpoint}/123456789012/outbound"),
            ),
            bulk: SqsQueue::new(
                enqueue_client(&sdk, Duration::from_millis(300)),
                format!("{endpoint}/123456789012/bulk"),
            ),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 2,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
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
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 1,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
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
        services: services(panic_on(), &sinch),
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 1,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
    });
    let mut nameless = record("x", &inbound(PANIC_ID, "1", "HELP"));
    nameless.as_object_mut().unwrap().remove("messageId");
    assert!(
        handle_batch(worker, event(vec![nameless]), deadline())
            .await
            .is_err()
    );
}

/// The store down: a batch stops trying once one record met it, and the next batches go one
/// record at a time until one succeeds; nothing is lost (every record is retried).
#[tokio::test]
async fn a_failing_store_is_not_hammered() {
    let sinch = fake_sinch().await;
    let store = FaultyStore::new(MemoryStore::new());
    store.fail("claim", Fault::Before);
    let worker = Arc::new(Worker {
        services: services(store.clone(), &sinch),
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 4,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
    });
    let batch = |round: usize| {
        event(
            (0..10)
                .map(|n| {
                    record(
                        &format!("m{round}-{n}"),
                        &inbound(&format!("01R{round}N{n}"), "someone", "hi"),
                    )
                })
                .collect(),
        )
    };
    let outcomes = process_batch(worker.clone(), batch(1), deadline()).await;
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| matches!(o, RecordOutcome::Retry { .. }))
    );
    let first = store.calls("claim");
    assert!(first <= 4, "at most the records already under way: {first}");
    assert!(worker.store_health.careful());
    let outcomes = process_batch(worker.clone(), batch(2), deadline()).await;
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| matches!(o, RecordOutcome::Retry { .. }))
    );
    assert_eq!(store.calls("claim") - first, 1, "one probe while careful");
    // Back: the next batch probes, succeeds, and every record is handled.
    store.heal();
    let outcomes = process_batch(worker.clone(), batch(3), deadline()).await;
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| matches!(o, RecordOutcome::Handled { .. })),
        "{outcomes:?}"
    );
    assert!(!worker.store_health.careful());
}
