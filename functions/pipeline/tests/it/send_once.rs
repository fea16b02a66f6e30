//! Send once, at every failure point around a send: before it, Sinch refusing, Sinch's answer
//! lost, the record write after it failing, the idempotency completion failing. In every case
//! at most one send reaches the fake Sinch (counted there, by what it received), and the
//! message's status ends right. Each case runs against the in-memory store and against DynamoDB
//! on moto_server, with faults injected at the store's door.

use std::time::{Duration, SystemTime};

use pipeline::clock::Clock;
use pipeline::envelope::{Envelope, SignatureHeaders};
use pipeline::handlers::{Handled, ReplyOutcome, Services};
use pipeline::ledger::Ledger;
use pipeline::process::{Failure, process};
use pipeline::reply::ReplyPolicy;
use pipeline::store::{MessageKey, MessageState, SendState, SinchId, Store};
use serde_json::json;
use sinch::callback::Callback;
use sinch::client::{ClientConfig, ConversationCredentials, SinchClient, Urls};
use testkit::faulty::{Fault, FaultyStore};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SEND: &str = "/v1/projects/project-1/messages:send";
const INBOUND_ID: &str = "01HELPME";
const REPLY_ID: &str = "rpl_01HELPME";

/// A fake Sinch whose send endpoint answers `answer`.
async fn fake_sinch(answer: ResponseTemplate) -> MockServer {
    let server = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"message_id": "01SINCH"}))
}

/// How many sends reached the fake Sinch.
async fn sends(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == SEND)
        .count()
}

/// Services for one worker process: its own send ledger memory, its clock.
fn worker<S: Store>(store: S, server: &MockServer, clock: Clock) -> Services<S> {
    let mut config = ClientConfig::new(Urls::all_at(&server.uri()));
    config.conversation = Some(ConversationCredentials {
        project_id: "project-1".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    // Quick retries, so a 500 then 200 fits in one invocation; sends started with half a second
    // left, so that a one-second invocation can lose Sinch's answer.
    config.retry.min_delay = Duration::from_millis(10);
    config.send_budget = Duration::from_millis(500);
    Services {
        privacy: Default::default(),
        store,
        sinch: SinchClient::new(config).unwrap(),
        hook: ReplyPolicy::default(),
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        send_rules: pipeline::send_rules::SendRules::default(),
        ledger: Ledger::new(Duration::from_secs(60)),
        pacing: Default::default(),
        clock,
    }
}

fn help() -> Envelope {
    let body = json!({"app_id": "app-1", "message": {"id": INBOUND_ID,
        "contact_message": {"text_message": {"text": "HELP"}},
        "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567", "app_id": "app-1"}}});
    envelope(body)
}

/// A delivery report for our reply, naming it as Sinch echoes our reference.
fn report(status: &str) -> Envelope {
    envelope(
        json!({"app_id": "app-1", "correlation_id": format!("sinch-hooks:{REPLY_ID}"),
        "message_delivery_report": {"message_id": "01SINCH", "status": status,
        "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567"}}}),
    )
}

fn envelope(body: serde_json::Value) -> Envelope {
    let signature = SignatureHeaders {
        signature: "s".into(),
        nonce: "n".into(),
        timestamp: "1".into(),
        algorithm: None,
    };
    Envelope::new(body.to_string().into_bytes(), signature, SystemTime::now())
}

fn deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

async fn reply_state<S: Store>(store: &S) -> MessageState {
    store
        .message_state(&MessageKey::Ours(REPLY_ID.into()))
        .await
        .unwrap()
        .expect("the reply has a status")
}

fn sent_now(result: &Result<(Callback, Handled), Failure>) -> Option<bool> {
    match result {
        Ok((
            _,
            Handled::Inbound {
                reply: ReplyOutcome::Sent { left_at_ms, .. },
                ..
            },
        )) => Some(left_at_ms.is_some()),
        _ => None,
    }
}

/// The store fails before the send: nothing leaves; the retry sends once.
async fn the_store_failing_before_the_send<S: Store + Clone>(store: S) {
    let sinch = fake_sinch(accepted()).await;
    let store = FaultyStore::new(store);
    let services = worker(store.clone(), &sinch, Clock::System);
    for fault in [Fault::Before, Fault::After] {
        store.fail("begin_send", fault);
        let result = process(&services, &help(), deadline(5)).await;
        assert!(
            matches!(result, Err(Failure::Transient { .. })),
            "{result:?}"
        );
        assert_eq!(sends(&sinch).await, 0, "{fault:?}: nothing sent");
        store.heal();
    }
    // The attempt whose record landed is this process's own: taken over at once.
    let result = process(&services, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(true), "{result:?}");
    assert_eq!(sends(&sinch).await, 1);
    let state = reply_state(&store).await;
    assert_eq!(
        (state.status.as_str(), state.send),
        ("SENT", Some(SendState::Sent))
    );
}

/// Sinch refuses (400): FAILED with its reason, dead-lettered, never sent again.
async fn sinch_refusing<S: Store + Clone>(store: S) {
    let sinch = fake_sinch(ResponseTemplate::new(400).set_body_json(json!({"error": {
        "code": 400, "message": "Invalid recipient", "status": "INVALID_ARGUMENT"}})))
    .await;
    let services = worker(store.clone(), &sinch, Clock::System);
    let result = process(&services, &help(), deadline(5)).await;
    assert!(matches!(result, Err(Failure::Poison { .. })), "{result:?}");
    // A redrive of the dead letter: the same refusal, from the ledger.
    let result = process(&services, &help(), deadline(5)).await;
    assert!(matches!(result, Err(Failure::Poison { .. })), "{result:?}");
    assert_eq!(sends(&sinch).await, 1, "refused once, never retried");
    let state = reply_state(&store).await;
    assert_eq!(state.status, "FAILED");
    let reason = state.reason().expect("a reason");
    assert_eq!(reason.code, "INVALID_ARGUMENT");
    assert_eq!(reason.description.as_deref(), Some("Invalid recipient"));
}

/// Sinch answers 500 then 200: retried within the call (Sinch said no), one message there.
async fn sinch_answering_500_then_200<S: Store + Clone>(store: S) {
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(accepted())
        .mount(&sinch)
        .await;
    let services = worker(store.clone(), &sinch, Clock::System);
    let result = process(&services, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(true), "{result:?}");
    assert_eq!(sends(&sinch).await, 2, "the 500 and the 200");
    let result = process(&services, &help(), deadline(5)).await;
    assert!(
        matches!(result, Ok((_, Handled::Duplicate { .. }))),
        "{result:?}"
    );
    assert_eq!(reply_state(&store).await.status, "SENT");
}

/// Sinch takes the send and its answer never comes back: not repeated; Sinch's delivery report,
/// naming our reply, settles it; the retry then only finishes the bookkeeping.
async fn sinchs_answer_lost<S: Store + Clone>(store: S) {
    // Sinch holds its answer longer than the invocation has (4 s: room for the store's calls
    // before the send on a loaded machine; with 1 s they ran out before it, and the test failed).
    let sinch = fake_sinch(accepted().set_delay(Duration::from_secs(10))).await;
    let services = worker(store.clone(), &sinch, Clock::System);
    // The invocation's time runs out while Sinch holds the answer.
    let result = process(&services, &help(), deadline(4)).await;
    assert!(
        matches!(result, Err(Failure::Transient { .. })),
        "{result:?}"
    );
    assert_eq!(sends(&sinch).await, 1);
    // SQS delivers it again at once: the outcome is unknown, so no blind second send.
    let result = process(&services, &help(), deadline(4)).await;
    assert!(
        matches!(result, Err(Failure::Transient { .. })),
        "{result:?}"
    );
    assert_eq!(sends(&sinch).await, 1, "not repeated while unsettled");
    // Sinch's report arrives, carrying our reference.
    process(&services, &report("QUEUED_ON_CHANNEL"), deadline(5))
        .await
        .unwrap();
    let result = process(&services, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(false), "{result:?}");
    assert_eq!(sends(&sinch).await, 1, "still one message at Sinch");
    let state = reply_state(&store).await;
    assert_eq!(state.status, "QUEUED_ON_CHANNEL");
    assert_eq!(state.send, Some(SendState::Sent));
    assert_eq!(state.sinch_id, Some(SinchId::Message("01SINCH".into())));
}

/// The answer lost and no report within the settle time: presumed lost and sent again, once.
/// This is the documented residual risk, here made visible.
async fn sinchs_answer_lost_and_no_report_within_the_settle_time<S: Store + Clone>(store: S) {
    // The first answer held past the invocation's time; the second given at once.
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(accepted().set_delay(Duration::from_secs(10)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(accepted())
        .mount(&sinch)
        .await;
    let services = worker(store.clone(), &sinch, Clock::System);
    let result = process(&services, &help(), deadline(4)).await;
    assert!(
        matches!(result, Err(Failure::Transient { .. })),
        "{result:?}"
    );
    let later = worker(
        store.clone(),
        &sinch,
        Clock::Fixed(SystemTime::now() + Duration::from_secs(61)),
    );
    let result = process(&later, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(true), "{result:?}");
    assert_eq!(sends(&sinch).await, 2);
}

/// Sinch takes it, and the write that records it fails: the retry records it without sending,
/// in this process (it remembers the answer) and in another one (a report settles it).
async fn the_record_write_after_the_send_failing<S: Store + Clone>(store: S) {
    let sinch = fake_sinch(accepted()).await;
    let store = FaultyStore::new(store);
    let services = worker(store.clone(), &sinch, Clock::System);
    store.fail("finish_send", Fault::Before);
    let result = process(&services, &help(), deadline(5)).await;
    assert!(
        matches!(result, Err(Failure::Transient { .. })),
        "{result:?}"
    );
    assert_eq!(sends(&sinch).await, 1);
    // Another process retries while the store is still failing that write: it must not send.
    let other = worker(store.clone(), &sinch, Clock::System);
    let result = process(&other, &help(), deadline(5)).await;
    assert!(
        matches!(result, Err(Failure::Transient { .. })),
        "{result:?}"
    );
    assert_eq!(sends(&sinch).await, 1, "the other process waits");
    store.heal();
    // The process that sent retries: bookkeeping only.
    let result = process(&services, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(false), "{result:?}");
    assert_eq!(sends(&sinch).await, 1);
    let state = reply_state(&store).await;
    assert_eq!(
        (state.status.as_str(), state.send),
        ("SENT", Some(SendState::Sent))
    );
    assert_eq!(state.sinch_id, Some(SinchId::Message("01SINCH".into())));
}

/// The handler succeeded and its idempotency key could not be completed: the record is acked,
/// and a later copy (after the lease) finds the reply sent.
async fn the_completion_failing<S: Store + Clone>(store: S) {
    let sinch = fake_sinch(accepted()).await;
    let store = FaultyStore::new(store);
    let services = worker(store.clone(), &sinch, Clock::System);
    store.fail("complete", Fault::Before);
    let result = process(&services, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(true), "acked: {result:?}");
    store.heal();
    // A copy of the callback (Sinch retried) after the lease ran out, in another process.
    let later = worker(
        store.clone(),
        &sinch,
        Clock::Fixed(SystemTime::now() + Duration::from_secs(30)),
    );
    let result = process(&later, &help(), deadline(5)).await;
    assert_eq!(sent_now(&result), Some(false), "{result:?}");
    assert_eq!(sends(&sinch).await, 1, "one reply in all");
    assert_eq!(reply_state(&store).await.status, "SENT");
}

testkit::for_both_stores!(
    the_store_failing_before_the_send,
    sinch_refusing,
    sinch_answering_500_then_200,
    sinchs_answer_lost,
    sinchs_answer_lost_and_no_report_within_the_settle_time,
    the_record_write_after_the_send_failing,
    the_completion_failing,
);
