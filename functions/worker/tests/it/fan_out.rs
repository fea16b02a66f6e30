//! A batch from the API to Sinch through the worker's fan-out, on both stores: each recipient
//! one message sent once whatever is delivered twice; a cancel that reaches what has not left
//! and nothing that has; quiet hours per recipient; an expired send; a send with no slot in
//! its invocation queued again. Counted at the fake Sinch and in the store.

use super::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use api::Api;
use common::*;
use lambda_http::{Body, Request};
use pipeline::clock::{Clock, unix_millis};
use pipeline::handlers::Handled;
use pipeline::jobs::{OutboundJob, Route};
use pipeline::queue::{MemoryQueue, Queue};
use pipeline::schedule::{Lane, Lanes, MemoryScheduler};
use pipeline::status::Status;
use pipeline::store::{AcceptedMessage, MessageKey, Store};
use serde_json::{Value, json};
use wiremock::MockServer;
use worker::{RecordOutcome, Worker, process_batch};

const SMS: &str = "/xms/v1/plan/batches";

/// The API and the worker over one store, one pair of lanes and one scheduler, at `clock`.
struct Pipeline<S> {
    api: Api<S, MemoryQueue>,
    worker: Arc<Worker<S, MemoryQueue>>,
}

fn pipeline<S: Store + Clone>(store: S, sinch: &MockServer, clock: Clock) -> Pipeline<S> {
    let lanes = Lanes {
        transactional: MemoryQueue::new("outbound"),
        bulk: MemoryQueue::new("bulk"),
    };
    let scheduler = MemoryScheduler::new();
    let api = Api {
        store: store.clone(),
        lanes: lanes.clone(),
        scheduler: scheduler.clone(),
        config: api::ApiConfig {
            channels: api::request::Channels {
                conversation_app: Some("app-1".into()),
                sms_api: true,
                default_sms_sender: Some("46700000001".into()),
            },
            ..api::ApiConfig::default()
        },
        clock,
    };
    let worker = Arc::new(Worker {
        services: pipeline::handlers::Services {
            clock,
            ..services(store, sinch)
        },
        dead_letters: MemoryQueue::new("dlq"),
        lanes,
        scheduler,
        concurrency: 4,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
    });
    Pipeline { api, worker }
}

fn request(method: &str, path: &str, body: Option<Value>) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json")
        .header("idempotency-key", "batch-key")
        .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
        .unwrap()
}

async fn call<S: Store>(api: &Api<S, MemoryQueue>, request: Request) -> (u16, Value) {
    let response = api::handle(api, request).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

/// Runs what waits on `queue` through the worker; every record must be handled.
async fn run<S: Store + 'static>(p: &Pipeline<S>, queue: &MemoryQueue) -> Vec<Handled> {
    let outcomes = process_batch(p.worker.clone(), drain(queue), deadline()).await;
    outcomes
        .into_iter()
        .map(|(_, outcome)| match outcome {
            RecordOutcome::Handled { handled, .. } => handled,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Runs what waits on `queue` one record at a time (a job queued twice then meets its own
/// finished send, never its attempt in flight).
async fn run_one_by_one<S: Store + 'static>(p: &Pipeline<S>, queue: &MemoryQueue) -> Vec<Handled> {
    let mut handled = Vec::new();
    for record in drain(queue).records {
        let outcomes = process_batch(
            p.worker.clone(),
            {
                let mut one = event(Vec::new());
                one.records.push(record);
                one
            },
            deadline(),
        )
        .await;
        for (_, outcome) in outcomes {
            match outcome {
                RecordOutcome::Handled { handled: h, .. } => handled.push(h),
                other => panic!("{other:?}"),
            }
        }
    }
    handled
}

/// The SMS bodies Sinch received, by their `client_reference`.
async fn at_sinch(sinch: &MockServer) -> Vec<Value> {
    sinch
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == SMS)
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap_or_default())
        .collect()
}

fn three() -> Value {
    json!({"channel": "SMS_API", "text": "Hi ${name}, your table is ready", "recipients": [
        {"to": "+46701110000", "parameters": {"name": "Ada"}},
        {"to": "+46701110001", "parameters": {"name": "Bo"}},
        {"to": "+46701110002", "parameters": {"name": "Cy"}, "metadata": {"table": 7}}]})
}

async fn a_batch_becomes_its_messages_each_sent_once<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let p = pipeline(store.clone(), &sinch, Clock::System);
    let (status, batch) = call(&p.api, request("POST", "/batches", Some(three()))).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["id"].as_str().unwrap().to_owned();
    // The fan-out, delivered twice.
    let fan_out = p.api.lanes.bulk.snapshot();
    assert_eq!(fan_out.len(), 1);
    p.api.lanes.bulk.send(&fan_out[0].envelope).await.unwrap();
    let made = run(&p, &p.api.lanes.bulk).await;
    // Between them the two deliveries made each message once (which made which depends on
    // how they interleaved: run concurrently, one may make two and the other one), and each
    // queued every message's job (a job queued twice is sent once: the ledger).
    let made_by_each: Vec<usize> = made
        .iter()
        .filter_map(|h| match h {
            Handled::Batch { made, queued, .. } => {
                assert_eq!(*queued, 3, "{made:?}");
                Some(*made)
            }
            _ => None,
        })
        .collect();
    assert_eq!(made_by_each.len(), 2, "{made:?}");
    assert_eq!(made_by_each.iter().sum::<usize>(), 3, "{made:?}");
    let message = |k: u32| MessageKey::Ours(format!("msg_{}_{k}", id.trim_start_matches("bat_")));
    let state = store.message_state(&message(2)).await.unwrap().unwrap();
    assert_eq!(state.status, Status::Accepted);
    assert_eq!(state.to.as_deref(), Some("+46701110002"));
    assert_eq!(state.metadata.as_deref(), Some(r#"{"table":7}"#));
    // The sends (some queued twice by the fan-out delivered twice), then each again.
    let jobs = p.api.lanes.bulk.snapshot();
    assert!((3..=6).contains(&jobs.len()), "{}", jobs.len());
    run_one_by_one(&p, &p.api.lanes.bulk).await;
    for job in &jobs {
        p.api.lanes.bulk.send(&job.envelope).await.unwrap();
    }
    let again = run_one_by_one(&p, &p.api.lanes.bulk).await;
    assert!(
        again.iter().all(|h| matches!(
            h,
            Handled::Outbound {
                left_at_ms: None,
                ..
            }
        )),
        "{again:?}"
    );
    let sent = at_sinch(&sinch).await;
    let mut bodies: Vec<&str> = sent.iter().map(|b| b["body"].as_str().unwrap()).collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        [
            "Hi Ada, your table is ready",
            "Hi Bo, your table is ready",
            "Hi Cy, your table is ready"
        ],
        "each once"
    );
    let (_, view) = call(&p.api, request("GET", &format!("/batches/{id}"), None)).await;
    assert_eq!(view["counts"], json!({"SENT": 3}), "{view}");
    assert_eq!(
        view["final"], false,
        "SENT is not final: the reports decide"
    );
    // Every message has left: nothing to cancel (409), and what has left stays as it is.
    let (status, refused) = call(&p.api, request("DELETE", &format!("/batches/{id}"), None)).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("not_cancelable")),
        "{refused}"
    );
    run(&p, &p.api.lanes.transactional).await;
    let (_, view) = call(&p.api, request("GET", &format!("/batches/{id}"), None)).await;
    assert_eq!(view["counts"], json!({"SENT": 3}), "{view}");
}

async fn a_canceled_batch_reaches_sinch_with_nothing<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let p = pipeline(store.clone(), &sinch, Clock::System);
    let (_, batch) = call(&p.api, request("POST", "/batches", Some(three()))).await;
    let id = batch["id"].as_str().unwrap().to_owned();
    run(&p, &p.api.lanes.bulk).await;
    assert_eq!(
        p.api.lanes.bulk.len(),
        3,
        "three send jobs wait on the bulk lane"
    );
    let (status, _) = call(&p.api, request("DELETE", &format!("/batches/{id}"), None)).await;
    assert_eq!(status, 200);
    // The cancel job on the fast lane ends each; the send jobs then find them ended.
    let canceled = run(&p, &p.api.lanes.transactional).await;
    assert!(
        matches!(canceled[..], [Handled::Batch { canceled: 3, .. }]),
        "{canceled:?}"
    );
    run(&p, &p.api.lanes.bulk).await;
    assert!(at_sinch(&sinch).await.is_empty(), "nothing reached Sinch");
    let (_, view) = call(&p.api, request("GET", &format!("/batches/{id}"), None)).await;
    assert_eq!(view["counts"], json!({"CANCELED": 3}), "{view}");
    assert_eq!(view["final"], true);
    assert!(view["completed_at"].is_string(), "{view}");
    assert_eq!(
        call(&p.api, request("DELETE", &format!("/batches/{id}"), None))
            .await
            .0,
        409,
        "every message has ended"
    );

    // Canceled before its fan-out ran: the fan-out makes each message CANCELED, sends none.
    let (_, batch) = call(
        &p.api,
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("https://api.example.com/batches")
            .header("idempotency-key", "second")
            .body(Body::Text(three().to_string()))
            .unwrap(),
    )
    .await;
    let id = batch["id"].as_str().unwrap().to_owned();
    call(&p.api, request("DELETE", &format!("/batches/{id}"), None)).await;
    run(&p, &p.api.lanes.transactional).await;
    run(&p, &p.api.lanes.bulk).await;
    assert!(p.api.lanes.bulk.is_empty(), "nothing queued to send");
    assert!(at_sinch(&sinch).await.is_empty());
    let (_, view) = call(&p.api, request("GET", &format!("/batches/{id}"), None)).await;
    assert_eq!(view["counts"], json!({"CANCELED": 3}), "{view}");
}

async fn quiet_hours_hold_each_recipient_in_their_own_zone<S: Store + Clone + 'static>(store: S) {
    // 2025-12-01 22:00 UTC: 23:00 in Stockholm, 17:00 in New York.
    let night = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_626_400_000);
    let sinch = fake_sinch().await;
    let p = pipeline(store, &sinch, Clock::Fixed(night));
    let (status, batch) = call(
        &p.api,
        request(
            "POST",
            "/batches",
            Some(json!({"channel": "SMS_API", "text": "Reminder",
                "quiet_hours": {"start": "21:00", "end": "08:00"},
                "recipients": [{"to": "+46701110000"}, {"to": "+12125550100"}, {"to": "+46701110001"}]})),
        ),
    )
    .await;
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["accepted"], 2, "{batch}");
    assert_eq!(batch["refused"][0]["code"], "time_zone_required", "{batch}");
    run(&p, &p.api.lanes.bulk).await;
    assert!(p.api.lanes.bulk.is_empty(), "nothing leaves at 23:00");
    let pending = p.worker.scheduler.pending();
    let morning = 1_764_626_400_000 + 9 * 3600 * 1000;
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert!(
        pending
            .iter()
            .all(|(_, at, lane)| *at == morning && *lane == Lane::Bulk)
    );
    let id = batch["id"].as_str().unwrap();
    let (_, view) = call(&p.api, request("GET", &format!("/batches/{id}"), None)).await;
    assert_eq!(view["counts"], json!({"SCHEDULED": 2}), "{view}");
}

async fn an_expired_send_ends_expired_unsent<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let p = pipeline(store.clone(), &sinch, Clock::System);
    let now = unix_millis(SystemTime::now());
    store
        .accept_message(&AcceptedMessage {
            id: "msg_expired".into(),
            channel: "SMS_API".into(),
            to: "+46701110000".into(),
            metadata: None,
            caller: "local".into(),
            at_ms: now - 60_000,
            status: Status::Accepted,
            scheduled_at_ms: None,
            batch: None,
            fallback: Vec::new(),
        })
        .await
        .unwrap();
    let job = OutboundJob {
        id: "msg_expired".into(),
        to: "+46701110000".into(),
        route: Route::Sms {
            from: "46700000001".into(),
            body: "Flash sale: until 10:00".into(),
            ttl_secs: None,
        },
        expires_at_ms: Some(now - 1),
        batch: None,
        lane: Lane::Bulk,
        quiet_hours: None,
    };
    let outcomes = process_batch(
        p.worker.clone(),
        event(vec![job_record("m", &job, 1)]),
        deadline(),
    )
    .await;
    assert!(
        matches!(outcomes[0].1, RecordOutcome::Handled { .. }),
        "{outcomes:?}"
    );
    assert!(at_sinch(&sinch).await.is_empty());
    let state = store
        .message_state(&MessageKey::Ours("msg_expired".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, Status::Expired);
    assert_eq!(state.reason().map(|r| r.code.as_str()), Some("expired"));
}

async fn a_send_with_no_slot_in_time_waits_its_turn_again<S: Store + Clone + 'static>(store: S) {
    let sinch = fake_sinch().await;
    let mut p = pipeline(store.clone(), &sinch, Clock::System);
    Arc::get_mut(&mut p.worker).unwrap().services.pacing =
        pipeline::pacing::Pacing::new(Some(10.0), Some(10.0));
    // The SMS timeline is booked a minute ahead.
    let now_us = unix_millis(SystemTime::now()) * 1000;
    store
        .take_slot("sms", 60_000_000, now_us, None)
        .await
        .unwrap();
    store.take_slot("sms", 1, now_us, None).await.unwrap();
    let job = OutboundJob {
        id: "msg_waits".into(),
        to: "+46701110000".into(),
        route: Route::Sms {
            from: "46700000001".into(),
            body: "Your code is 1234".into(),
            ttl_secs: None,
        },
        expires_at_ms: None,
        batch: None,
        lane: Lane::Transactional,
        quiet_hours: None,
    };
    let outcomes = process_batch(
        p.worker.clone(),
        event(vec![job_record("m", &job, 4)]),
        tokio::time::Instant::now() + Duration::from_secs(2),
    )
    .await;
    assert!(
        matches!(
            &outcomes[0].1,
            RecordOutcome::Handled {
                handled: Handled::Deferred { .. },
                ..
            }
        ),
        "acked, not retried: {outcomes:?}"
    );
    assert!(at_sinch(&sinch).await.is_empty());
    let pending = p.worker.scheduler.pending();
    assert_eq!(pending.len(), 1, "queued again, due later: {pending:?}");
    assert_eq!(pending[0].0, "defer-msg_waits");
    assert_eq!(pending[0].2, Lane::Transactional);
}

/// A batch canceled before its fan-out ran, one of its recipients erased meanwhile: their
/// message is made `CANCELED` and holds nothing of them (found by review: it kept the number).
async fn a_canceled_batchs_message_made_after_an_erasure_holds_nothing_of_them<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    let sinch = fake_sinch().await;
    let p = pipeline(store.clone(), &sinch, Clock::System);
    let (_, batch) = call(&p.api, request("POST", "/batches", Some(three()))).await;
    let id = batch["id"].as_str().unwrap().to_owned();
    call(&p.api, request("DELETE", &format!("/batches/{id}"), None)).await;
    let now = pipeline::clock::unix_millis(std::time::SystemTime::now());
    store
        .erase_contact(
            &pipeline::store::ContactKey::new("SMS", "46701110001"),
            "era_b",
            now + 1,
            100,
        )
        .await
        .unwrap();
    run(&p, &p.api.lanes.transactional).await;
    run(&p, &p.api.lanes.bulk).await;
    assert!(at_sinch(&sinch).await.is_empty());
    let message = |k: u32| {
        let store = store.clone();
        let id = api::batches::message_id(&id, k);
        async move {
            store
                .message_state(&MessageKey::Ours(id))
                .await
                .unwrap()
                .expect("made")
        }
    };
    let erased = message(1).await;
    assert_eq!(erased.status, pipeline::status::Status::Canceled);
    assert_eq!((erased.to, erased.metadata), (None, None));
    assert_eq!(
        message(0).await.to.as_deref(),
        Some("+46701110000"),
        "the others are as they were"
    );
}

testkit::for_both_stores!(
    a_canceled_batchs_message_made_after_an_erasure_holds_nothing_of_them,
    a_batch_becomes_its_messages_each_sent_once,
    a_canceled_batch_reaches_sinch_with_nothing,
    quiet_hours_hold_each_recipient_in_their_own_zone,
    an_expired_send_ends_expired_unsent,
    a_send_with_no_slot_in_time_waits_its_turn_again,
);
