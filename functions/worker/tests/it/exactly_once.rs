//! Exactly-once effects with DynamoDB on moto_server: duplicates delivered concurrently to
//! several workers, a worker that dies holding a claim, DynamoDB unreachable.

use super::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pipeline::idempotency;
use pipeline::queue::MemoryQueue;
use pipeline::store::prelude::*;
use pipeline::store::{Claim, ClaimRequest, DynamoStore, MessageKey, dynamodb_client};
use testkit::Moto;
use tokio::time::Instant;
use wiremock::MockServer;
use worker::{RecordOutcome, Worker, handle_batch, process_batch};

async fn sends(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("messages:send"))
        .count()
}

/// A worker with its own DynamoDB client on the shared table, like separate Lambda instances.
async fn worker_on(moto: &Moto, sinch: &MockServer) -> Arc<Worker<DynamoStore, MemoryQueue>> {
    let store = DynamoStore::new(dynamodb_client(&moto.sdk_config().await), "sinch-hooks");
    Arc::new(Worker {
        services: services(store, sinch),
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
    })
}

async fn table(moto: &Moto) {
    DynamoStore::new(dynamodb_client(&moto.sdk_config().await), "sinch-hooks")
        .create_table()
        .await
        .expect("table created");
}

#[tokio::test]
async fn the_same_message_delivered_three_times_concurrently_is_answered_once() {
    let moto = Moto::start();
    table(&moto).await;
    // A slow Sinch keeps the first worker inside its claim while the others arrive.
    let sinch = fake_sinch_with_delay(Duration::from_millis(300)).await;
    let workers = [
        worker_on(&moto, &sinch).await,
        worker_on(&moto, &sinch).await,
        worker_on(&moto, &sinch).await,
    ];
    let body = inbound("01SAME", "46701234567", "HELP");
    let deliver = |worker: &Arc<Worker<DynamoStore, MemoryQueue>>, n: usize| {
        handle_batch(
            worker.clone(),
            event(vec![record(&format!("delivery-{n}"), &body)]),
            deadline(),
        )
    };
    let (a, b, c) = tokio::join!(
        deliver(&workers[0], 0),
        deliver(&workers[1], 1),
        deliver(&workers[2], 2)
    );
    let retried: Vec<usize> = [a, b, c]
        .into_iter()
        .enumerate()
        .filter(|(_, r)| !r.as_ref().unwrap().batch_item_failures.is_empty())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(sends(&sinch).await, 1, "exactly one reply");
    assert!(retried.len() <= 2, "at least one delivery was handled");

    // SQS delivers the ones that saw the claim in progress again: now they are duplicates.
    for n in retried {
        let outcomes = process_batch(
            workers[n].clone(),
            event(vec![record(&format!("delivery-{n}"), &body)]),
            deadline(),
        )
        .await;
        assert!(
            matches!(
                &outcomes[0].1,
                RecordOutcome::Handled {
                    handled: pipeline::handlers::Handled::Duplicate {
                        same_payload: true,
                        ..
                    },
                    ..
                }
            ),
            "{outcomes:?}"
        );
    }
    assert_eq!(sends(&sinch).await, 1, "still exactly one reply");
    let inbound_state = workers[0]
        .services
        .store
        .message_state(&MessageKey::Ours("rpl_01SAME".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbound_state.in_reply_to.as_deref(), Some("01SAME"));
    assert_eq!(
        inbound_state.sinch_id,
        Some(pipeline::store::SinchId::Message("01REPLY".into()))
    );
}

#[tokio::test]
async fn delivery_reports_in_every_order_through_the_worker() {
    let moto = Moto::start();
    table(&moto).await;
    let sinch = fake_sinch().await;
    let worker = worker_on(&moto, &sinch).await;
    let report = |id: &str, status: &str, second: u32| {
        serde_json::json!({
            "app_id": "a", "event_time": format!("2026-11-23T04:00:0{second}Z"),
            "message_delivery_report": {"message_id": id, "status": status,
                "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567"}}
        })
        .to_string()
    };
    let statuses = ["DELIVERED", "QUEUED_ON_CHANNEL", "READ"];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let id = format!("01ORDER{n}");
        // One batch per report, in this order (reports of one message rarely share a batch).
        for (i, &index) in order.iter().enumerate() {
            let response = handle_batch(
                worker.clone(),
                event(vec![record(
                    &format!("r{i}"),
                    &report(&id, statuses[index], i as u32),
                )]),
                deadline(),
            )
            .await
            .unwrap();
            assert!(response.batch_item_failures.is_empty());
        }
        let state = worker
            .services
            .store
            .message_state(&MessageKey::Conversation(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.status, "READ", "{order:?}");
        let mut seen: Vec<&str> = state.history.iter().map(|h| h.status.as_str()).collect();
        seen.sort();
        assert_eq!(
            seen,
            ["DELIVERED", "QUEUED_ON_CHANNEL", "READ"],
            "{order:?}"
        );
    }
}

/// The default hook leaves statuses alone, so our messages' Conversation reports with their
/// event's time are not claimed (two DynamoDB writes saved on each): the status write alone
/// must make a report delivered again, at once or later, change nothing.
#[tokio::test]
async fn a_report_delivered_again_concurrently_and_later_is_written_once_and_never_claimed() {
    let moto = Moto::start();
    table(&moto).await;
    let sinch = fake_sinch().await;
    let workers = [
        worker_on(&moto, &sinch).await,
        worker_on(&moto, &sinch).await,
        worker_on(&moto, &sinch).await,
    ];
    let body = serde_json::json!({
        "app_id": "a", "event_time": "2026-11-23T04:00:01Z",
        "correlation_id": pipeline::ledger::reference::to_sinch("msg_01TWICE"),
        "message_delivery_report": {"message_id": "01TWICE", "status": "DELIVERED",
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567"}}
    })
    .to_string();
    let deliver = |worker: &Arc<Worker<DynamoStore, MemoryQueue>>, n: usize| {
        // Twice in one batch, as SQS may.
        handle_batch(
            worker.clone(),
            event(vec![
                record(&format!("a{n}"), &body),
                record(&format!("b{n}"), &body),
            ]),
            deadline(),
        )
    };
    let (a, b, c) = tokio::join!(
        deliver(&workers[0], 0),
        deliver(&workers[1], 1),
        deliver(&workers[2], 2)
    );
    let later = deliver(&workers[0], 3).await;
    for response in [a, b, c, later] {
        // Nothing waits for another's claim: every delivery is done at once.
        assert!(response.unwrap().batch_item_failures.is_empty());
    }
    let store = &workers[0].services.store;
    let state = store
        .message_state(&MessageKey::Ours("msg_01TWICE".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "DELIVERED");
    assert_eq!(state.history.len(), 1, "{:?}", state.history);
    let callback = sinch::callback::parse(body.as_bytes()).unwrap();
    let key = idempotency::key(&callback, body.as_bytes());
    let now_ms = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let claim = store
        .claim(&ClaimRequest {
            key: &key,
            payload_hash: "h",
            lease_until_ms: now_ms + 1000,
            now_ms,
            value: None,
        })
        .await
        .unwrap();
    assert_eq!(
        claim,
        Claim::Claimed { value: None },
        "no claim was written"
    );
}

#[tokio::test]
async fn a_claim_left_by_a_dead_worker_is_taken_over_when_its_lease_ends() {
    let moto = Moto::start();
    table(&moto).await;
    let sinch = fake_sinch().await;
    let worker = worker_on(&moto, &sinch).await;
    let body = inbound("01ORPHAN", "46701234567", "HELP");

    // A worker claimed the message and died: its lease runs 2 s from now.
    let callback = sinch::callback::parse(body.as_bytes()).unwrap();
    let key = idempotency::key(&callback, body.as_bytes());
    let now_ms = pipeline::clock::unix_millis(std::time::SystemTime::now());
    let lease_until_ms = now_ms + 2000;
    let claimed = worker
        .services
        .store
        .claim(&ClaimRequest {
            key: &key,
            payload_hash: &idempotency::payload_hash(body.as_bytes()),
            lease_until_ms,
            now_ms,
            value: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed, Claim::Claimed { value: None });

    // Redelivered before the lease ends: not processed, retried later.
    let response = handle_batch(
        worker.clone(),
        event(vec![record("again", &body)]),
        deadline(),
    )
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(sends(&sinch).await, 0);

    // Once the lease has ended, the next delivery does the work, once.
    let wait = Duration::from_millis(
        lease_until_ms.saturating_sub(pipeline::clock::unix_millis(std::time::SystemTime::now()))
            + 100,
    );
    tokio::time::sleep(wait).await;
    let response = handle_batch(
        worker.clone(),
        event(vec![record("again", &body)]),
        deadline(),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(sends(&sinch).await, 1);
    let response = handle_batch(worker, event(vec![record("again", &body)]), deadline())
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(sends(&sinch).await, 1, "a later duplicate does nothing");
}

#[tokio::test]
async fn a_failed_handler_releases_its_claim_for_the_retry() {
    let moto = Moto::start();
    table(&moto).await;
    let sinch = fake_sinch().await;
    let worker = worker_on(&moto, &sinch).await;
    // Sinch answers 503 for this identity: transient, the claim is released.
    let body = inbound("01FLAKY", "transient", "HELP");
    let response = handle_batch(
        worker.clone(),
        event(vec![record("flaky", &body)]),
        deadline(),
    )
    .await
    .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    // The retry is not blocked by a lease: it runs (and fails the same way, again retried).
    let outcomes = process_batch(worker, event(vec![record("flaky", &body)]), deadline()).await;
    assert!(
        matches!(&outcomes[0].1, RecordOutcome::Retry { detail } if detail.contains("503")),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn dynamodb_unreachable_fails_the_record_and_acks_nothing() {
    let sinch = fake_sinch().await;
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let worker = Arc::new(Worker {
        services: services(
            DynamoStore::new(dynamodb_client(&sdk), "sinch-hooks"),
            &sinch,
        ),
        dead_letters: MemoryQueue::new("dlq"),
        lanes: pipeline::schedule::Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 2,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
    });
    let delivery = r#"{"app_id":"a","message_delivery_report":{"message_id":"m","status":"READ"}}"#;
    let started = Instant::now();
    let response = handle_batch(
        worker.clone(),
        event(vec![
            record("inbound", &inbound("01X", "46701234567", "HELP")),
            record("delivery", delivery),
        ]),
        deadline(),
    )
    .await
    .unwrap();
    let mut failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort();
    assert_eq!(failed, ["delivery", "inbound"]);
    assert_eq!(sends(&sinch).await, 0, "no effect without a claim");
    assert!(
        worker.dead_letters.is_empty(),
        "a store outage is not poison"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
