//! The publisher against an EventBridge that refuses, stalls and answers short, spoken to over
//! its real protocol (`AWSEvents.PutEvents`, AWS JSON 1.1) by a local fake: what reached the
//! fake is what counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pipeline::store::{Change, Snapshot};
use pipeline::store::{ContactKey, InboundRecord};
use publisher::{EventBridgeSink, MAX_ENTRIES, Pending, Publisher};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

/// `n` stream records, each an inbound message stored (one event each).
fn records(n: usize, text_len: usize) -> Vec<Pending> {
    (0..n)
        .map(|i| {
            let change = Change {
                old: None,
                new: Some(Snapshot::Inbound(InboundRecord {
                    text_digest: None,
                    id: format!("01IN{i:03}"),
                    from: ContactKey::new("WHATSAPP", "46701234567"),
                    to: "app".into(),
                    kind: "text_message".into(),
                    text: Some("x".repeat(text_len)),
                    media: Vec::new(),
                    contact_id: None,
                    conversation_id: None,
                    received_at_ms: 1_763_870_400_000,
                })),
                at_ms: 1_763_870_400_000,
            };
            Pending::from_change(format!("seq-{i:03}"), &change)
        })
        .collect()
}

/// Decides, per call and entry, what the fake answers.
type Rule = dyn Fn(usize, &Value) -> Option<&'static str> + Send + Sync;

/// A fake EventBridge: `refuse(call, entry)` names the error code of an entry it refuses;
/// `stall_from` makes calls from that one on never answer (a publisher stuck there dies).
struct FakeEventBridge {
    calls: AtomicUsize,
    refuse: Box<Rule>,
    stall_from: Option<usize>,
}

impl Respond for FakeEventBridge {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.stall_from.is_some_and(|from| call >= from) {
            return ResponseTemplate::new(200).set_delay(Duration::from_secs(3600));
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let entries = body["Entries"].as_array().cloned().unwrap_or_default();
        let mut failed = 0;
        let results: Vec<Value> = entries
            .iter()
            .map(|entry| match (self.refuse)(call, entry) {
                Some(code) => {
                    failed += 1;
                    json!({"ErrorCode": code, "ErrorMessage": "refused by the fake"})
                }
                None => json!({"EventId": format!("eb-{call}")}),
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/x-amz-json-1.1")
            .set_body_json(json!({"FailedEntryCount": failed, "Entries": results}))
    }
}

async fn fake(refuse: Box<Rule>, stall_from: Option<usize>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::header("x-amz-target", "AWSEvents.PutEvents"))
        .respond_with(FakeEventBridge {
            calls: AtomicUsize::new(0),
            refuse,
            stall_from,
        })
        .mount(&server)
        .await;
    server
}

async fn publisher(server: &MockServer) -> Publisher<EventBridgeSink> {
    let sdk = testkit::sdk_config_for(&server.uri()).await;
    let mut publisher = Publisher::new(
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), "bus"),
        "sinch-hooks",
    );
    publisher.backoff = retry_policies::policies::ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(4);
    publisher
}

/// The event ids of each PutEvents call the fake received, in order.
async fn calls(server: &MockServer) -> Vec<Vec<String>> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            body["Entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|entry| {
                    let detail: Value =
                        serde_json::from_str(entry["Detail"].as_str().unwrap_or("{}")).unwrap();
                    detail["message_id"].as_str().unwrap_or_default().to_owned()
                })
                .collect()
        })
        .collect()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("01IN{i:03}")).collect()
}

#[tokio::test]
async fn events_go_in_calls_of_at_most_ten_in_order() {
    let server = fake(Box::new(|_, _| None), None).await;
    let published = publisher::publish(&publisher(&server).await, &records(25, 10), soon()).await;
    assert_eq!(published.events, 25);
    assert_eq!(published.records, 25);
    assert!(published.response().batch_item_failures.is_empty());
    let calls = calls(&server).await;
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|call| call.len() <= MAX_ENTRIES));
    assert_eq!(calls.concat(), ids(0..25), "every event once, in order");
}

#[tokio::test]
async fn only_the_refused_entries_are_put_again() {
    // The first call refuses entries 2 and 7 (throttled, an internal error); later calls take all.
    let refuse = |call: usize, entry: &Value| {
        let detail = entry["Detail"].as_str().unwrap_or_default();
        match call {
            0 if detail.contains("01IN002") => Some("ThrottlingException"),
            0 if detail.contains("01IN007") => Some("InternalFailure"),
            _ => None,
        }
    };
    let server = fake(Box::new(refuse), None).await;
    let published = publisher::publish(&publisher(&server).await, &records(10, 10), soon()).await;
    assert_eq!(published.failed_from, None);
    let calls = calls(&server).await;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], ids(0..10));
    assert_eq!(
        calls[1],
        ["01IN002", "01IN007"],
        "only the refused ones again"
    );
}

#[tokio::test]
async fn entries_refused_for_good_fail_the_batch_from_their_record() {
    // Every call refuses 01IN013 (the second call's fourth entry): records 0-12 are done, the
    // stream must deliver 13 and after again.
    let refuse = |_: usize, entry: &Value| {
        entry["Detail"]
            .as_str()
            .unwrap_or_default()
            .contains("01IN013")
            .then_some("InternalFailure")
    };
    let server = fake(Box::new(refuse), None).await;
    let published = publisher::publish(&publisher(&server).await, &records(20, 10), soon()).await;
    assert_eq!(published.failed_from.as_deref(), Some("seq-013"));
    assert_eq!(published.records, 13);
    let response = published.response();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("seq-013")
    );
    let calls = calls(&server).await;
    assert_eq!(calls[0], ids(0..10));
    assert_eq!(calls[1], ids(10..20));
    assert!(calls.len() > 2, "the refused entry was retried: {calls:?}");
    assert!(calls[2..].iter().all(|call| call == &["01IN013"]));
}

#[tokio::test]
async fn a_publisher_that_dies_mid_batch_is_redelivered_and_duplicates_share_their_ids() {
    // The second call never answers: the invocation dies there (here: it is dropped).
    let stalled = fake(Box::new(|_, _| None), Some(1)).await;
    let batch = records(15, 10);
    let dying = publisher(&stalled).await;
    let died = tokio::time::timeout(
        Duration::from_millis(500),
        publisher::publish(&dying, &batch, soon()),
    )
    .await;
    assert!(died.is_err(), "the publisher was stuck on the second call");
    let first = calls(&stalled).await;
    assert_eq!(first[0], ids(0..10));

    // The stream delivers the whole batch again to a fresh instance.
    let healthy = fake(Box::new(|_, _| None), None).await;
    let published = publisher::publish(&publisher(&healthy).await, &batch, soon()).await;
    assert_eq!(published.failed_from, None);
    let second = calls(&healthy).await.concat();
    assert_eq!(second, ids(0..15));
    // What consumers saw: every event at least once; the repeated ones are the same events.
    let mut seen = first[0].clone();
    seen.extend(second);
    for id in ids(0..15) {
        assert!(seen.contains(&id), "{id} reached EventBridge");
    }
    let repeated: Vec<_> = ids(0..15)
        .into_iter()
        .filter(|id| seen.iter().filter(|s| *s == id).count() > 1)
        .collect();
    assert_eq!(repeated, ids(0..10));
}

#[tokio::test]
async fn an_event_too_large_for_an_entry_names_its_item_instead() {
    let server = fake(Box::new(|_, _| None), None).await;
    let mut batch = records(1, 300 * 1024);
    batch.extend(records(2, 10).into_iter().skip(1));
    let published = publisher::publish(&publisher(&server).await, &batch, soon()).await;
    assert_eq!(published.events, 2);
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let detail: Value =
        serde_json::from_str(body["Entries"][0]["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["truncated"], true);
    assert_eq!(detail["item"], "in#01IN000");
    assert!(detail["event_id"].is_string());
    assert!(body.to_string().len() < 256 * 1024);
}

#[tokio::test]
async fn eventbridge_unreachable_fails_the_batch_from_its_first_record() {
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let mut publisher = Publisher::new(
        EventBridgeSink::new(aws_sdk_eventbridge::Client::new(&sdk), "bus"),
        "sinch-hooks",
    );
    publisher.retry_for = Duration::from_millis(200);
    let published = publisher::publish(&publisher, &records(3, 10), soon()).await;
    assert_eq!(published.failed_from.as_deref(), Some("seq-000"));
    assert_eq!(published.events, 0);
}
