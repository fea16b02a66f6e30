//! The store's part of the promises kept where time passes or two paths meet (consent in the
//! person's order, a cancel reaching a send waiting for its turn, batches that end on every
//! channel and count every message however its end was written), against both stores.

use pipeline::status::Status;
use pipeline::store::{
    AcceptedMessage, BatchRecord, BatchRef, ContactKey, Finished, InboundRecord, MessageKey,
    OptChange, OptSource, OptWrite, Reason, SendAttempt, SendFinish, SendIntent, SendResult,
    SendStart, StatusUpdate, Store,
};

const NOW: u64 = 1_763_870_400_000;

fn keyword(id: &str, text: &str, at_ms: u64) -> InboundRecord {
    InboundRecord {
        text_digest: None,
        id: id.into(),
        from: ContactKey::new("SMS", "46701234567"),
        to: "46700000001".into(),
        kind: "mo_text".into(),
        text: Some(text.into()),
        media: Vec::new(),
        contact_id: None,
        conversation_id: None,
        received_at_ms: at_ms,
    }
}

fn opt_out(contact: &ContactKey, id: &str) -> OptChange {
    OptChange::OptOut {
        contact: contact.clone(),
        by: id.into(),
    }
}

fn opt_in(contact: &ContactKey) -> OptChange {
    OptChange::OptIn {
        contact: contact.clone(),
    }
}

async fn opted_out(store: &impl Store, contact: &ContactKey) -> bool {
    store.contact(contact).await.unwrap().opted_out_by.is_some()
}

async fn set(store: &impl Store, contact: &ContactKey, out: bool, at_ms: u64) -> bool {
    store
        .set_opt_out(&OptWrite {
            contact,
            opted_out: out,
            source: &OptSource::Api,
            reference: &format!("api_{at_ms}"),
            at_ms,
        })
        .await
        .unwrap()
}

/// STOP at t+10, START at t+5 arriving after it (SQS reordered them): still opted out; the
/// START sent at t+20 lifts it; a STOP of t+15 arriving after that changes nothing. At the same
/// millisecond, the opt-out wins. The API's changes (`at`) and keywords share one order.
async fn consent_takes_effect_in_the_persons_order(store: impl Store) {
    let contact = ContactKey::new("SMS", "46701234567");
    let stop = keyword("01STOP", "STOP", NOW + 10);
    store
        .record_inbound(&stop, Some(&opt_out(&contact, "01STOP")))
        .await
        .unwrap();
    // The handler reads the contact, finds the START older, and records it without the change;
    // a store asked to apply it anyway refuses (a newer change overtook the read).
    let state = store.contact(&contact).await.unwrap();
    assert!(!state.applies(false, NOW + 5));
    let late_start = keyword("01START", "START", NOW + 5);
    assert!(
        store
            .record_inbound(&late_start, Some(&opt_in(&contact)))
            .await
            .is_err(),
        "an opt-in older than the opt-out that stands is refused"
    );
    assert!(opted_out(&store, &contact).await);
    store.record_inbound(&late_start, None).await.unwrap();
    assert!(opted_out(&store, &contact).await);
    // The API, with the person's time: an opt-in older than their STOP changes nothing.
    assert!(!set(&store, &contact, false, NOW + 8).await);
    assert!(opted_out(&store, &contact).await);
    // A newer START lifts it (and a retry of it is harmless).
    let start = keyword("01START2", "START", NOW + 20);
    for _ in 0..2 {
        store
            .record_inbound(&start, Some(&opt_in(&contact)))
            .await
            .unwrap();
    }
    assert!(!opted_out(&store, &contact).await);
    let state = store.contact(&contact).await.unwrap();
    assert_eq!(state.opted_in_at_ms, Some(NOW + 20));
    // A STOP sent before that START, arriving now: refused by the store, not applied.
    assert!(!state.applies(true, NOW + 15));
    assert!(
        store
            .record_inbound(
                &keyword("01STOP2", "STOP", NOW + 15),
                Some(&opt_out(&contact, "01STOP2"))
            )
            .await
            .is_err()
    );
    assert!(!set(&store, &contact, true, NOW + 15).await);
    assert!(!opted_out(&store, &contact).await);
    // At the START's own millisecond, the change that arrives last applies.
    assert!(set(&store, &contact, true, NOW + 20).await);
    assert!(opted_out(&store, &contact).await);
    assert!(set(&store, &contact, false, NOW + 20).await);
    assert!(!opted_out(&store, &contact).await);
    // An opt-in while not opted out still records the person's latest word.
    assert!(!set(&store, &contact, false, NOW + 30).await);
    assert!(!set(&store, &contact, true, NOW + 25).await);
    assert!(!opted_out(&store, &contact).await);
}

fn accepted(id: &str, batch: Option<BatchRef>) -> AcceptedMessage {
    AcceptedMessage {
        id: id.into(),
        channel: "SMS".into(),
        to: "+46701234567".into(),
        metadata: None,
        caller: "arn:aws:iam::1:user/app".into(),
        at_ms: NOW,
        status: Status::Accepted,
        scheduled_at_ms: None,
        batch,
        fallback: Vec::new(),
    }
}

fn intent() -> SendIntent {
    SendIntent {
        to: ContactKey::new("SMS", "46701234567"),
        in_reply_to: None,
        text: Some("Hello".into()),
    }
}

/// An attempt withdrawn (it met a 429, or quiet hours held it) leaves the message as it was
/// before: a cancel reaches it (200, not "it has left"), and no later attempt goes.
async fn a_withdrawn_attempt_leaves_the_message_cancelable(store: impl Store) {
    store
        .accept_message(&accepted("msg_w", None))
        .await
        .unwrap();
    let intent = intent();
    let begin = |token: &'static str| SendAttempt {
        id: "msg_w",
        attempt: token,
        now_ms: NOW,
        settle_before_ms: NOW - 60_000,
        takeover: None,
        intent: &intent,
    };
    assert_eq!(store.begin_send(&begin("a1")).await.unwrap(), SendStart::Go);
    store.abandon_send("msg_w", "a1").await.unwrap();
    let canceled = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new("canceled", None),
    };
    let cancel = SendFinish {
        id: "msg_w",
        attempt: None,
        result: &canceled,
        at_ms: NOW + 1,
    };
    assert_eq!(
        store.finish_send(&cancel).await.unwrap(),
        Finished::Recorded
    );
    assert!(matches!(
        store.begin_send(&begin("a2")).await.unwrap(),
        SendStart::Refused { .. }
    ));
    let state = store
        .message_state(&MessageKey::Ours("msg_w".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, Status::Canceled);
}

fn batch(id: &str, total: u32, channel: &str) -> BatchRecord {
    BatchRecord {
        id: id.into(),
        caller: "arn:aws:iam::1:user/app".into(),
        channel: channel.into(),
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

fn delivered(id: &str, channel: &str) -> StatusUpdate {
    StatusUpdate {
        key: MessageKey::Ours(id.into()),
        status: Status::Delivered,
        at_ms: NOW + 100,
        reason: None,
        channel: Some(channel.into()),
        sinch_id: None,
    }
}

/// On SMS (no READ ever comes), DELIVERED ends a message and so its batch; on WhatsApp it does
/// not (READ ends it), and a READ on SMS later changes nothing of the count.
async fn a_batch_on_a_channel_without_read_receipts_completes_at_delivered(store: impl Store) {
    store
        .create_batch(&batch("bat_sms", 2, "SMS"), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    store
        .create_batch(&batch("bat_wa", 1, "WHATSAPP"), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    let member = |batch: &str, index| {
        Some(BatchRef {
            id: batch.into(),
            index,
        })
    };
    for (id, at) in [
        ("msg_sms_0", member("bat_sms", 0)),
        ("msg_sms_1", member("bat_sms", 1)),
        ("msg_wa_0", member("bat_wa", 0)),
    ] {
        store.accept_message(&accepted(id, at)).await.unwrap();
    }
    store
        .record_status(&delivered("msg_sms_0", "SMS"))
        .await
        .unwrap();
    store
        .record_status(&delivered("msg_wa_0", "WHATSAPP"))
        .await
        .unwrap();
    assert_eq!(store.batch("bat_sms").await.unwrap().unwrap().finals, 1);
    let wa = store.batch("bat_wa").await.unwrap().unwrap();
    assert_eq!((wa.finals, wa.completed_at_ms), (0, None));
    store
        .record_status(&delivered("msg_sms_1", "SMS"))
        .await
        .unwrap();
    let sms = store.batch("bat_sms").await.unwrap().unwrap();
    assert_eq!(sms.finals, 2);
    assert!(sms.completed_at_ms.is_some(), "{sms:?}");
    let state = store
        .message_state(&MessageKey::Ours("msg_sms_1".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(state.settled());
    let read = StatusUpdate {
        status: Status::Read,
        ..delivered("msg_sms_1", "SMS")
    };
    store.record_status(&read).await.unwrap();
    assert_eq!(store.batch("bat_sms").await.unwrap().unwrap().finals, 2);
}

/// A message that ended while its batch's count could not take it (here: before the batch was
/// on record) is counted when a retry of its send finds it ended, on any instance.
async fn a_message_ended_elsewhere_is_counted_when_its_send_is_retried(store: impl Store) {
    let member = Some(BatchRef {
        id: "bat_late".into(),
        index: 0,
    });
    store
        .accept_message(&accepted("msg_late_0", member))
        .await
        .unwrap();
    let failed = SendResult::Refused {
        reason: Reason::new("recipient_opted_out", None),
    };
    store
        .finish_send(&SendFinish {
            id: "msg_late_0",
            attempt: None,
            result: &failed,
            at_ms: NOW,
        })
        .await
        .unwrap();
    store
        .create_batch(&batch("bat_late", 1, "SMS"), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    assert_eq!(store.batch("bat_late").await.unwrap().unwrap().finals, 0);
    let intent = intent();
    let retried = store
        .begin_send(&SendAttempt {
            id: "msg_late_0",
            attempt: "a9",
            now_ms: NOW + 1000,
            settle_before_ms: NOW - 59_000,
            takeover: None,
            intent: &intent,
        })
        .await
        .unwrap();
    assert!(matches!(retried, SendStart::Refused { .. }), "{retried:?}");
    let batch = store.batch("bat_late").await.unwrap().unwrap();
    assert_eq!(batch.finals, 1);
    assert!(batch.completed_at_ms.is_some());
}

/// An erasure reaches what is still waiting: a message not yet sent ends `CANCELED`
/// (`recipient_erased`) and is named for its schedule's removal; one whose attempt stands is
/// stripped, and no attempt on it begins again (it would write the number back); the mark tells
/// the rules at the moment of leaving (a batch's message made after the erasure from a chunk).
async fn an_erasure_reaches_sends_still_waiting(store: impl Store) {
    let contact = ContactKey::new("SMS", "46701234567");
    store
        .accept_message(&accepted("msg_waiting", None))
        .await
        .unwrap();
    store
        .accept_message(&accepted("msg_leaving", None))
        .await
        .unwrap();
    let intent = intent();
    let begin =
        |id: &'static str, token: &'static str, takeover: Option<&'static str>| SendAttempt {
            id,
            attempt: token,
            now_ms: NOW,
            settle_before_ms: NOW - 60_000,
            takeover,
            intent: &intent,
        };
    assert_eq!(
        store
            .begin_send(&begin("msg_leaving", "a1", None))
            .await
            .unwrap(),
        SendStart::Go
    );
    let mut canceled = Vec::new();
    loop {
        let erased = store
            .erase_contact(&contact, "era_1", NOW + 5, 100)
            .await
            .unwrap();
        canceled.extend(erased.canceled);
        if erased.complete {
            break;
        }
    }
    assert_eq!(canceled, ["msg_waiting"]);
    let waiting = store
        .message_state(&MessageKey::Ours("msg_waiting".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.status, Status::Canceled);
    assert_eq!(
        waiting.reason().map(|r| r.code.as_str()),
        Some(pipeline::store::RECIPIENT_ERASED)
    );
    assert!(matches!(
        store
            .begin_send(&begin("msg_waiting", "a2", None))
            .await
            .unwrap(),
        SendStart::Refused { .. }
    ));
    // The attempt that stood is taken over (a redelivered job): refused, nothing written back.
    let taken = store
        .begin_send(&begin("msg_leaving", "a3", Some("a1")))
        .await
        .unwrap();
    assert!(matches!(taken, SendStart::Refused { .. }), "{taken:?}");
    for id in ["msg_waiting", "msg_leaving"] {
        let state = store
            .message_state(&MessageKey::Ours(id.into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.to, None, "{id}");
        assert_eq!(state.text, None, "{id}");
    }
    // The mark: when they were erased, for the rules when a send accepted before would leave.
    assert_eq!(
        store.contact(&contact).await.unwrap().erased_at_ms,
        Some(NOW + 5)
    );
}

/// An erased person's kept opt-out is newer than a late opt-in: the opt-in changes nothing and
/// writes nothing under their number (DynamoDB wrote a contact item; found by review).
async fn a_late_opt_in_after_an_erasure_writes_nothing(store: impl Store) {
    let contact = ContactKey::new("SMS", "46701234567");
    assert!(set(&store, &contact, true, NOW + 10).await);
    loop {
        if store
            .erase_contact(&contact, "era_late", NOW + 20, 100)
            .await
            .unwrap()
            .complete
        {
            break;
        }
    }
    assert!(!set(&store, &contact, false, NOW + 5).await);
    let state = store.contact(&contact).await.unwrap();
    assert!(state.opted_out_by.is_some(), "still opted out");
    assert_eq!(
        state.opted_in_at_ms, None,
        "nothing written under their number"
    );
    // A newer opt-in lifts it.
    assert!(set(&store, &contact, false, NOW + 30).await);
    assert!(!opted_out(&store, &contact).await);
}

/// Lists every page of opt-outs (`channel` only, when given) in pages of `limit`.
async fn every_page(
    store: &impl Store,
    channel: Option<&sinch::Channel>,
    limit: usize,
) -> Vec<String> {
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .opt_outs(channel, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(page.items.len() <= limit);
        listed.extend(page.items.iter().map(|(key, _)| key.to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    listed
}

/// Opt-outs spread over the index's partitions (DynamoDB: eight keys) are listed whole and in
/// order, page by page, with or without a channel, whatever the page's size.
async fn opt_outs_spread_over_the_index_are_listed_whole_in_order(store: impl Store) {
    let mut expected = Vec::new();
    for (channel, n) in [("SMS", 23), ("WHATSAPP", 17), ("MESSENGER", 2)] {
        for k in 0..n {
            let contact = ContactKey::new(channel, &format!("4671{k:07}"));
            assert!(set(&store, &contact, true, NOW + k).await);
            expected.push(contact.to_string());
        }
    }
    expected.sort();
    for limit in [1, 4, 7, 100] {
        assert_eq!(
            every_page(&store, None, limit).await,
            expected,
            "pages of {limit}"
        );
    }
    let sms: Vec<String> = expected
        .iter()
        .filter(|k| k.starts_with("SMS/"))
        .cloned()
        .collect();
    // Pages of one within a channel: the cursor's own shard answers only the cursor first
    // (found by review: three contacts skipped on DynamoDB).
    for limit in [1, 2, 5] {
        assert_eq!(
            every_page(&store, Some(&sinch::Channel::Sms), limit).await,
            sms,
            "SMS in pages of {limit}"
        );
    }
    // A cursor of another channel: from the channel's start if before it, nothing if after.
    let before = ContactKey::new("MESSENGER", "46710000001");
    let page = store
        .opt_outs(Some(&sinch::Channel::Sms), Some(&before), 100)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 23);
    let past = ContactKey::new("WHATSAPP", "46710000000");
    let page = store
        .opt_outs(Some(&sinch::Channel::Sms), Some(&past), 100)
        .await
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none(), "{page:?}");
    // Past the highest key the channel could have: nothing, not DynamoDB's refusal of the range.
    let beyond = ContactKey::new("SMS", "\u{10FFFF}\u{10FFFF}x");
    let page = store
        .opt_outs(Some(&sinch::Channel::Sms), Some(&beyond), 100)
        .await
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none(), "{page:?}");
}

testkit::for_both_stores!(
    opt_outs_spread_over_the_index_are_listed_whole_in_order,
    a_late_opt_in_after_an_erasure_writes_nothing,
    an_erasure_reaches_sends_still_waiting,
    consent_takes_effect_in_the_persons_order,
    a_withdrawn_attempt_leaves_the_message_cancelable,
    a_batch_on_a_channel_without_read_receipts_completes_at_delivered,
    a_message_ended_elsewhere_is_counted_when_its_send_is_retried,
);
