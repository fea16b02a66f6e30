//! DynamoDB calls per processed callback, counted by an SDK interceptor against moto_server.
//! Targets (issue 4): at most 3 for a delivery report, at most 4 plus the reply's record for an
//! inbound message. A reply's record is two writes since issue 9 (the attempt before the send,
//! Sinch's answer after it: see `pipeline::ledger`), so a replied message costs 6. The test
//! fails when a target is missed, and prints the table:
//!
//! `cargo test -p worker --test it dynamodb_calls -- --nocapture`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{deadline, event, fake_sinch, inbound, record, services};
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use pipeline::queue::MemoryQueue;
use pipeline::store::DynamoStore;
use testkit::Moto;
use worker::{RecordOutcome, Worker, process_batch};

/// Counts every DynamoDB operation the SDK starts (retries of one operation count once).
#[derive(Debug, Clone, Default)]
struct CallCounter(Arc<AtomicUsize>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A store on a new table of `moto` whose every DynamoDB call `counter` counts.
async fn counted_store(moto: &Moto) -> (DynamoStore, CallCounter) {
    let sdk = moto.sdk_config().await;
    let counter = CallCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let store = DynamoStore::new(client, "sinch-hooks");
    store.create_table().await.expect("table");
    (store, counter)
}

#[tokio::test]
async fn each_callback_stays_within_its_dynamodb_calls() {
    let moto = Moto::start();
    let (store, counter) = counted_store(&moto).await;
    let sinch = fake_sinch().await;
    let worker = Arc::new(Worker {
        services: services(store, &sinch),
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

    let delivery = |id: &str, status: &str| {
        format!(
            r#"{{"app_id":"a","message_delivery_report":{{"message_id":"{id}","status":"{status}","channel_identity":{{"channel":"WHATSAPP","identity":"46701234567"}}}}}}"#
        )
    };
    let sms_mo =
        r#"{"type":"mo_text","id":"01SMS","from":"46701234567","to":"46700000001","body":"HELP"}"#;
    // (scenario, body, target or 0 for "report only")
    let scenarios: Vec<(&str, String, usize)> = vec![
        ("delivery report", delivery("01M", "DELIVERED"), 3),
        ("delivery report, later status", delivery("01M", "READ"), 3),
        ("delivery report, duplicate", delivery("01M", "READ"), 3),
        (
            "inbound HELP, replied",
            inbound("01A", "46701234567", "HELP"),
            6,
        ),
        (
            "inbound text, no reply",
            inbound("01B", "46701234567", "hello"),
            4,
        ),
        (
            "inbound STOP, opt-out + reply",
            inbound("01C", "46701234567", "STOP"),
            6,
        ),
        (
            "inbound while opted out",
            inbound("01D", "46701234567", "HELP"),
            4,
        ),
        (
            "inbound, duplicate",
            inbound("01A", "46701234567", "HELP"),
            6,
        ),
        ("SMS inbound HELP, replied", sms_mo.to_owned(), 6),
        (
            "contact event (no effects)",
            r#"{"app_id":"a","contact_create_notification":{"contact":{"id":"c"}}}"#.to_owned(),
            0,
        ),
    ];
    println!(
        "{:<34} {:>14} {:>8}",
        "callback", "DynamoDB calls", "target"
    );
    let mut missed = Vec::new();
    for (name, body, target) in scenarios {
        counter.0.store(0, Ordering::Relaxed);
        let outcomes =
            process_batch(worker.clone(), event(vec![record("m", &body)]), deadline()).await;
        assert!(
            matches!(outcomes[0].1, RecordOutcome::Handled { .. }),
            "{name}: {outcomes:?}"
        );
        let calls = counter.0.load(Ordering::Relaxed);
        let target_text = if target == 0 {
            "-".to_owned()
        } else {
            target.to_string()
        };
        println!("{name:<34} {calls:>14} {target_text:>8}");
        if target != 0 && calls > target {
            missed.push(format!("{name}: {calls} calls, target {target}"));
        }
    }
    assert!(missed.is_empty(), "targets missed: {missed:?}");
}

/// DynamoDB calls per send of the messages API's job, and per read of a batch's progress
/// (what `GET /batches/{id}` asks of the store), counted as above. Targets: a send 3 (its
/// attempt, the contact's consent read after its slot, its outcome), a batch's message two more
/// (the batch's cancel flag, and its tally: each one small item, whatever the batch's size); a
/// batch's progress 3 reads whatever its size up to 10,000 (its item, its finals' 16 shards, its
/// tally's hundred blocks).
#[tokio::test]
async fn each_send_stays_within_its_dynamodb_calls() {
    use pipeline::store::prelude::*;
    use pipeline::store::{AcceptedMessage, BatchRecord, BatchRef};
    let moto = Moto::start();
    let (store, counter) = counted_store(&moto).await;
    let sinch = fake_sinch().await;
    let worker = crate::outbound::worker(store.clone(), &sinch);
    let batch = BatchRecord {
        id: "bat_01CALLS".into(),
        caller: "test".into(),
        channel: "WHATSAPP".into(),
        total: 10_000,
        refused: 0,
        chunks: 1,
        created_at_ms: 1_763_870_400_000,
        send_at_ms: None,
        canceled: false,
        finals: 0,
        completed_at_ms: None,
    };
    store
        .create_batch(&batch, &["[]".to_owned()], "{}")
        .await
        .unwrap();
    let accept = |id: &str, batch: Option<BatchRef>| AcceptedMessage {
        id: id.into(),
        channel: "WHATSAPP".into(),
        to: "+46701234567".into(),
        metadata: None,
        caller: "test".into(),
        at_ms: 1_763_870_400_000,
        status: pipeline::status::Status::Accepted,
        scheduled_at_ms: None,
        batch,
        fallback: Vec::new(),
    };
    crate::outbound::wrote(&store, "+46701234567", None).await;
    store
        .accept_message(&accept("msg_01ONE", None))
        .await
        .unwrap();
    let in_batch = BatchRef {
        id: batch.id.clone(),
        index: 0,
    };
    store
        .accept_message(&accept("msg_01CALLS_0", Some(in_batch.clone())))
        .await
        .unwrap();
    let mut batch_job = crate::outbound::job("msg_01CALLS_0", "+46701234567");
    batch_job.batch = Some(batch.id.clone());
    let sends = [
        (
            "a send",
            crate::outbound::job("msg_01ONE", "+46701234567"),
            3,
        ),
        ("a batch's message", batch_job, 5),
    ];
    println!("{:<34} {:>14} {:>8}", "work", "DynamoDB calls", "target");
    let mut missed = Vec::new();
    for (name, job, target) in sends {
        counter.0.store(0, Ordering::Relaxed);
        let outcomes = process_batch(
            worker.clone(),
            event(vec![crate::common::job_record("m", &job, 1)]),
            deadline(),
        )
        .await;
        assert!(
            matches!(outcomes[0].1, RecordOutcome::Handled { .. }),
            "{name}: {outcomes:?}"
        );
        let calls = counter.0.load(Ordering::Relaxed);
        println!("{name:<34} {calls:>14} {target:>8}");
        if calls > target {
            missed.push(format!("{name}: {calls} calls, target {target}"));
        }
    }
    // A batch of 10,000's progress, as GET /batches/{id} reads it.
    counter.0.store(0, Ordering::Relaxed);
    let read = store.batch(&batch.id).await.unwrap().unwrap();
    let counts = store.batch_counts(&batch.id, read.total).await.unwrap();
    assert_eq!(counts, Some(vec![(pipeline::status::Status::Sent, 1)]));
    let calls = counter.0.load(Ordering::Relaxed);
    println!(
        "{:<34} {calls:>14} {:>8}",
        "a batch of 10,000's progress", 3
    );
    if calls > 3 {
        missed.push(format!("a batch's progress: {calls} calls, target 3"));
    }
    assert!(missed.is_empty(), "targets missed: {missed:?}");
}
