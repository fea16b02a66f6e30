//! A batch's counts by status (`GET /batches/{id}`, `DELETE /batches/{id}`), against both
//! stores: each message counted once, at the status it holds, whatever order its writes came
//! in, however often they were retried; the messages not made yet in none.

use pipeline::status::Status;
use pipeline::store::prelude::*;
use pipeline::store::{
    AcceptedMessage, BatchRecord, BatchRef, ContactKey, MessageKey, Reason, SendAttempt,
    SendFinish, SendIntent, SendResult, SendStart, SinchId, StatusUpdate,
};

const NOW: u64 = 1_763_870_400_000;

fn batch(id: &str, total: u32) -> BatchRecord {
    BatchRecord {
        id: id.into(),
        caller: "arn:aws:iam::1:user/app".into(),
        channel: "WHATSAPP".into(),
        total,
        refused: 0,
        chunks: 1,
        created_at_ms: NOW,
        send_at_ms: None,
        canceled: false,
        finals: 0,
        completed_at_ms: None,
    }
}

fn member(batch: &str, index: u32) -> AcceptedMessage {
    AcceptedMessage {
        id: format!("msg_{batch}_{index}"),
        channel: "WHATSAPP".into(),
        to: "+46701234567".into(),
        metadata: None,
        caller: "arn:aws:iam::1:user/app".into(),
        at_ms: NOW,
        status: Status::Accepted,
        scheduled_at_ms: None,
        batch: Some(BatchRef {
            id: batch.into(),
            index,
        }),
        fallback: Vec::new(),
    }
}

fn report(id: &str, status: Status, at_ms: u64) -> StatusUpdate {
    StatusUpdate {
        key: MessageKey::Ours(id.into()),
        status,
        at_ms,
        reason: None,
        channel: Some("WHATSAPP".into()),
        sinch_id: Some(SinchId::Message(format!("sinch_{id}"))),
    }
}

/// Sends message `id`: an attempt, then Sinch's answer.
async fn send(store: &impl Store, id: &str) {
    let intent = SendIntent {
        to: ContactKey::new("WHATSAPP", "46701234567"),
        in_reply_to: None,
        text: Some("Hello".into()),
    };
    let attempt = SendAttempt {
        id,
        attempt: "a1",
        now_ms: NOW,
        settle_before_ms: NOW - 60_000,
        takeover: None,
        intent: &intent,
    };
    assert_eq!(store.begin_send(&attempt).await.unwrap(), SendStart::Go);
    let sent = SendResult::Accepted {
        sinch_id: Some(SinchId::Message(format!("sinch_{id}"))),
    };
    store
        .finish_send(&SendFinish {
            id,
            attempt: Some("a1"),
            result: &sent,
            at_ms: NOW + 1,
        })
        .await
        .unwrap();
}

/// The counts, sorted, as `(STATUS, n)`.
async fn counts(store: &impl Store, id: &str, total: u32) -> Vec<(String, u32)> {
    let mut counts: Vec<(String, u32)> = store
        .batch_counts(id, total)
        .await
        .unwrap()
        .expect("a batch stored now has a tally")
        .into_iter()
        .map(|(status, n)| (status.as_str().to_owned(), n))
        .collect();
    counts.sort();
    counts
}

/// What each message holds, read message by message: what the counts must agree with.
async fn counted_one_by_one(store: &impl Store, id: &str, total: u32) -> Vec<(String, u32)> {
    let ids: Vec<String> = (0..total).map(|k| format!("msg_{id}_{k}")).collect();
    let mut counts: Vec<(String, u32)> = Vec::new();
    for status in store.statuses(&ids).await.unwrap().into_iter().flatten() {
        match counts.iter_mut().find(|(held, _)| held == status.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((status.as_str().to_owned(), 1)),
        }
    }
    counts.sort();
    counts
}

fn owned(counts: &[(&str, u32)]) -> Vec<(String, u32)> {
    counts.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
}

/// Reports late, twice and out of order, a final racing another, a retried outcome: each
/// message is counted once, at the status it holds; a message not made yet is in none.
async fn a_batch_counts_each_message_once_at_the_status_it_holds(store: impl Store) {
    store
        .create_batch(&batch("bat_t", 5), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    // Four of five made (the fifth's chunk not fanned out yet); the first made twice (a retry).
    for index in [0, 0, 1, 2, 3] {
        store.accept_message(&member("bat_t", index)).await.unwrap();
    }
    assert_eq!(counts(&store, "bat_t", 5).await, owned(&[("ACCEPTED", 4)]));
    // 0: sent, READ, then a late DELIVERED and QUEUED_ON_CHANNEL, and READ again.
    send(&store, "msg_bat_t_0").await;
    for (status, at) in [
        (Status::Read, 30),
        (Status::Delivered, 20),
        (Status::QueuedOnChannel, 10),
        (Status::Read, 30),
    ] {
        store
            .record_status(&report("msg_bat_t_0", status, NOW + at))
            .await
            .unwrap();
    }
    // 1: FAILED, then a READ: the first final stays.
    send(&store, "msg_bat_t_1").await;
    for status in [Status::Failed, Status::Read] {
        store
            .record_status(&report("msg_bat_t_1", status, NOW + 40))
            .await
            .unwrap();
    }
    // 2: sent, its outcome's write retried (it landed the first time).
    send(&store, "msg_bat_t_2").await;
    let sent = SendResult::Accepted {
        sinch_id: Some(SinchId::Message("sinch_msg_bat_t_2".into())),
    };
    store
        .finish_send(&SendFinish {
            id: "msg_bat_t_2",
            attempt: Some("a1"),
            result: &sent,
            at_ms: NOW + 1,
        })
        .await
        .unwrap();
    // 3: canceled before it left.
    let canceled = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new("canceled", None),
    };
    store
        .finish_send(&SendFinish {
            id: "msg_bat_t_3",
            attempt: None,
            result: &canceled,
            at_ms: NOW + 2,
        })
        .await
        .unwrap();
    let expected = owned(&[("CANCELED", 1), ("FAILED", 1), ("READ", 1), ("SENT", 1)]);
    assert_eq!(counts(&store, "bat_t", 5).await, expected);
    assert_eq!(counted_one_by_one(&store, "bat_t", 5).await, expected);
    // Another batch's counts are its own.
    assert_eq!(counts(&store, "bat_other", 5).await, owned(&[]));
}

/// A batch over several blocks of the tally (a hundred messages each): every message counted.
async fn a_batch_over_many_blocks_counts_every_message(store: impl Store) {
    let total = 230;
    store
        .create_batch(&batch("bat_big", total), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    for index in 0..total {
        store
            .accept_message(&member("bat_big", index))
            .await
            .unwrap();
    }
    for index in [0, 99, 100, 199, 200, 229] {
        store
            .record_status(&report(
                &format!("msg_bat_big_{index}"),
                Status::Delivered,
                NOW + 5,
            ))
            .await
            .unwrap();
    }
    let expected = owned(&[("ACCEPTED", total - 6), ("DELIVERED", 6)]);
    assert_eq!(counts(&store, "bat_big", total).await, expected);
    assert_eq!(counted_one_by_one(&store, "bat_big", total).await, expected);
}

testkit::for_both_stores!(
    a_batch_counts_each_message_once_at_the_status_it_holds,
    a_batch_over_many_blocks_counts_every_message,
);

/// A batch stored before batches had a tally (its item without `tallied`, no blocks): the store
/// says so, for its messages to be read one by one, rather than counting none of them.
#[tokio::test]
async fn a_batch_older_than_tallies_is_told_apart_on_dynamodb() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let moto = testkit::Moto::start();
    let sdk = moto.sdk_config().await;
    let store = testkit::dynamo_store(&moto).await;
    store
        .create_batch(&batch("bat_old", 2), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    // Not made yet, stored now: nothing counted, and that is the answer.
    assert_eq!(
        store.batch_counts("bat_old", 2).await.unwrap(),
        Some(Vec::new())
    );
    // As an older version stored it: no `tallied` mark.
    pipeline::store::dynamodb_client(&sdk)
        .update_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("batch#bat_old".into()))
        .update_expression("REMOVE tallied")
        .send()
        .await
        .unwrap();
    assert_eq!(store.batch_counts("bat_old", 2).await.unwrap(), None);
}
