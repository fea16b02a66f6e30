//! One suite, two stores: every case runs against the in-memory store and against DynamoDB on
//! moto_server (a fresh server and table per case). Both must give the same answers.

use pipeline::status::Status;
use pipeline::store::prelude::*;
use pipeline::store::{
    Acceptance, AcceptedMessage, Claim, ClaimRequest, ContactKey, DynamoStore, Finished,
    HISTORY_LIMIT, InboundRecord, MessageKey, OptChange, Reason, SendAttempt, SendFinish,
    SendIntent, SendResult, SendStart, SendState, SinchId, StatusChange, StatusUpdate,
    dynamodb_client,
};
use pipeline::store::{BatchCancel, BatchRecord, BatchRef, Counted, OptSource, OptWrite, Slot};
use sinch::callback::conversation::DeliveryStatus;

const NOW: u64 = 1_763_870_400_000;

fn claim<'a>(key: &'a str, hash: &'a str, now_ms: u64, lease_until_ms: u64) -> ClaimRequest<'a> {
    ClaimRequest {
        key,
        payload_hash: hash,
        lease_until_ms,
        now_ms,
        value: None,
    }
}

fn report(id: &str, status: DeliveryStatus, at_ms: u64) -> StatusUpdate {
    StatusUpdate {
        key: MessageKey::Conversation(id.into()),
        status: Status::from(&status),
        at_ms,
        reason: (status == DeliveryStatus::Failed).then(|| {
            Reason::new(
                "RECIPIENT_NOT_REACHABLE",
                Some("The recipient is not reachable".into()),
            )
        }),
        channel: Some("WHATSAPP".into()),
        sinch_id: None,
    }
}

/// A report for one of our messages (its reference found): keyed by our id, naming Sinch's.
fn our_report(id: &str, sinch_id: &str, status: DeliveryStatus, at_ms: u64) -> StatusUpdate {
    StatusUpdate {
        key: MessageKey::Ours(id.into()),
        sinch_id: Some(SinchId::Message(sinch_id.into())),
        ..report(sinch_id, status, at_ms)
    }
}

fn intent() -> SendIntent {
    SendIntent {
        to: ContactKey::new("WHATSAPP", "46701234567"),
        in_reply_to: Some("01IN".into()),
        text: Some("Hello".into()),
    }
}

fn attempt<'a>(
    id: &'a str,
    token: &'a str,
    now_ms: u64,
    takeover: Option<&'a str>,
    intent: &'a SendIntent,
) -> SendAttempt<'a> {
    SendAttempt {
        id,
        attempt: token,
        now_ms,
        // Attempts settle after 60 s.
        settle_before_ms: now_ms - 60_000,
        takeover,
        intent,
    }
}

fn inbound(id: &str) -> InboundRecord {
    InboundRecord {
        text_digest: None,
        id: id.into(),
        from: ContactKey::new("WHATSAPP", "46701234567"),
        to: "app-1".into(),
        kind: "text_message".into(),
        text: Some("STOP".into()),
        media: Vec::new(),
        contact_id: Some("c".into()),
        conversation_id: None,
        received_at_ms: NOW,
    }
}

async fn a_key_is_claimed_once_then_remembered(store: impl Store) {
    assert_eq!(
        store
            .claim(&claim("k", "h1", NOW, NOW + 5000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
    assert_eq!(
        store
            .claim(&claim("k", "h1", NOW + 1, NOW + 6000))
            .await
            .unwrap(),
        Claim::InProgress {
            lease_until_ms: NOW + 5000
        }
    );
    store.complete("k", NOW / 1000 + 3600, None).await.unwrap();
    assert_eq!(
        store
            .claim(&claim("k", "h1", NOW + 2, NOW + 7000))
            .await
            .unwrap(),
        Claim::Completed {
            same_payload: true,
            response: None
        }
    );
    assert_eq!(
        store
            .claim(&claim("k", "other", NOW + 3, NOW + 8000))
            .await
            .unwrap(),
        Claim::Completed {
            same_payload: false,
            response: None
        }
    );
    assert_eq!(
        store
            .claim(&claim("k2", "h1", NOW, NOW + 5000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
}

async fn a_lease_left_behind_is_claimable_once_it_runs_out(store: impl Store) {
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW, NOW + 1000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
    // The claimer died: no complete, no release.
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 999, NOW + 2000))
            .await
            .unwrap(),
        Claim::InProgress {
            lease_until_ms: NOW + 1000
        }
    );
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 1000, NOW + 3000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
}

async fn a_released_key_can_be_claimed_again(store: impl Store) {
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW, NOW + 60_000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
    store.release("k").await.unwrap();
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 1, NOW + 60_000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
    store.release("never-claimed").await.unwrap();
}

async fn a_completed_key_expires_after_its_ttl(store: impl Store) {
    store
        .claim(&claim("k", "h", NOW, NOW + 1000))
        .await
        .unwrap();
    store.complete("k", NOW / 1000 + 10, None).await.unwrap();
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 9_999, NOW + 20_000))
            .await
            .unwrap(),
        Claim::Completed {
            same_payload: true,
            response: None
        }
    );
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 10_000, NOW + 20_000))
            .await
            .unwrap(),
        Claim::Claimed { value: None }
    );
}

async fn status_ends_at_the_furthest_state_in_every_order(store: impl Store) {
    use DeliveryStatus::*;
    let statuses = [QueuedOnChannel, Delivered, Read];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (n, order) in orders.iter().enumerate() {
        let id = format!("m{n}");
        let mut changes = Vec::new();
        for (i, &index) in order.iter().enumerate() {
            changes.push(
                store
                    .record_status(&report(&id, statuses[index].clone(), NOW + i as u64))
                    .await
                    .unwrap(),
            );
        }
        assert!(
            matches!(changes[0], StatusChange::Created { .. }),
            "{order:?}"
        );
        let state = store
            .message_state(&MessageKey::Conversation(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.status, "READ", "{order:?}");
        assert!(state.progress().terminal);
        assert_eq!(state.history.len(), 3, "{order:?}");
        assert_eq!(state.channel.as_deref(), Some("WHATSAPP"));
        if order[0] == 2 {
            assert!(changes[1..].iter().all(|c| *c
                == StatusChange::Kept {
                    status: "READ".into()
                }));
        }
    }
    assert_eq!(
        store
            .record_status(&report("q", QueuedOnChannel, NOW))
            .await
            .unwrap(),
        StatusChange::Created {
            status: "QUEUED_ON_CHANNEL".into()
        }
    );
    assert_eq!(
        store
            .record_status(&report("q", Delivered, NOW))
            .await
            .unwrap(),
        StatusChange::Advanced {
            from: "QUEUED_ON_CHANNEL".into(),
            to: "DELIVERED".into()
        }
    );
}

async fn the_first_final_status_stays(store: impl Store) {
    use DeliveryStatus::*;
    store
        .record_status(&report("f", Failed, NOW))
        .await
        .unwrap();
    assert_eq!(
        store
            .record_status(&report("f", Read, NOW + 1))
            .await
            .unwrap(),
        StatusChange::Kept {
            status: "FAILED".into()
        }
    );
    store
        .record_status(&report("f", Other("NEW_STATUS".into()), NOW + 2))
        .await
        .unwrap();
    let state = store
        .message_state(&MessageKey::Conversation("f".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "FAILED");
    assert_eq!(state.history.len(), 3);
    assert_eq!(
        state.history[0].reason.as_ref().map(|r| r.code.as_str()),
        Some("RECIPIENT_NOT_REACHABLE")
    );
    assert_eq!(
        state.reason().and_then(|r| r.description.as_deref()),
        Some("The recipient is not reachable")
    );
    assert_eq!(state.history[2].status, "NEW_STATUS");
    assert_eq!(
        store
            .message_state(&MessageKey::Conversation("none".into()))
            .await
            .unwrap(),
        None
    );
}

async fn the_history_is_capped(store: impl Store) {
    for i in 0..HISTORY_LIMIT as u64 + 5 {
        store
            .record_status(&report("h", DeliveryStatus::QueuedOnChannel, NOW + i))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .record_status(&report("h", DeliveryStatus::Delivered, NOW + 99))
            .await
            .unwrap(),
        StatusChange::Advanced {
            from: "QUEUED_ON_CHANNEL".into(),
            to: "DELIVERED".into()
        }
    );
    let state = store
        .message_state(&MessageKey::Conversation("h".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.history.len(), HISTORY_LIMIT);
    assert_eq!(
        state.status, "DELIVERED",
        "the status still moves once the history is full"
    );
}

async fn sms_keys_are_separate_per_recipient(store: impl Store) {
    use sinch::callback::sms::SmsStatus;
    let update = |recipient: &str, status: SmsStatus| StatusUpdate {
        key: MessageKey::Sms {
            batch_id: "B".into(),
            recipient: recipient.into(),
        },
        status: Status::from(&status),
        at_ms: NOW,
        reason: None,
        channel: None,
        sinch_id: None,
    };
    store
        .record_status(&update("1", SmsStatus::Delivered))
        .await
        .unwrap();
    store
        .record_status(&update("2", SmsStatus::Dispatched))
        .await
        .unwrap();
    let two = MessageKey::Sms {
        batch_id: "B".into(),
        recipient: "2".into(),
    };
    let state = store.message_state(&two).await.unwrap().unwrap();
    assert_eq!(state.status, "Dispatched");
    assert_eq!(state.channel, None);
}

async fn opt_outs_are_stored_with_the_inbound_message(store: impl Store) {
    let contact = ContactKey::new("WHATSAPP", "+46701234567");
    assert_eq!(store.contact(&contact).await.unwrap().opted_out_by, None);
    store
        .record_inbound(
            &inbound("01STOP"),
            Some(&OptChange::OptOut {
                contact: contact.clone(),
                by: "01STOP".into(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .contact(&contact)
            .await
            .unwrap()
            .opted_out_by
            .as_deref(),
        Some("01STOP")
    );
    store.record_inbound(&inbound("01HI"), None).await.unwrap();
    assert_eq!(
        store
            .contact(&contact)
            .await
            .unwrap()
            .opted_out_by
            .as_deref(),
        Some("01STOP")
    );
    // A START sent after the STOP (consent takes effect in the person's order: store_edges).
    let start = InboundRecord {
        received_at_ms: NOW + 1000,
        ..inbound("01START")
    };
    store
        .record_inbound(
            &start,
            Some(&OptChange::OptIn {
                contact: contact.clone(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(store.contact(&contact).await.unwrap().opted_out_by, None);
    // Again is harmless.
    store
        .record_inbound(
            &start,
            Some(&OptChange::OptIn {
                contact: contact.clone(),
            }),
        )
        .await
        .unwrap();
}

async fn contacts_remember_when_they_last_wrote(store: impl Store) {
    let contact = ContactKey::new("WHATSAPP", "46701234567");
    assert_eq!(store.contact(&contact).await.unwrap(), Default::default());
    store.record_inbound(&inbound("01A"), None).await.unwrap();
    let state = store.contact(&contact).await.unwrap();
    assert_eq!(state.last_inbound_at_ms, Some(NOW));
    assert_eq!(state.opted_out_by, None);
    let later = InboundRecord {
        received_at_ms: NOW + 60_000,
        ..inbound("01B")
    };
    store
        .record_inbound(
            &later,
            Some(&OptChange::OptOut {
                contact: contact.clone(),
                by: "01B".into(),
            }),
        )
        .await
        .unwrap();
    let state = store.contact(&contact).await.unwrap();
    assert_eq!(
        (state.last_inbound_at_ms, state.opted_out_by.as_deref()),
        (Some(NOW + 60_000), Some("01B"))
    );
    // Another channel of the same number is another contact.
    assert_eq!(
        store
            .contact(&ContactKey::new("SMS", "46701234567"))
            .await
            .unwrap(),
        Default::default()
    );
}

async fn a_completed_key_replays_its_response(store: impl Store) {
    store
        .claim(&claim("api/k", "h", NOW, NOW + 5000))
        .await
        .unwrap();
    store
        .complete("api/k", NOW / 1000 + 3600, Some(r#"{"status":202}"#))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim(&claim("api/k", "h", NOW + 1, NOW + 6000))
            .await
            .unwrap(),
        Claim::Completed {
            same_payload: true,
            response: Some(r#"{"status":202}"#.into())
        }
    );
}

async fn an_accepted_message_starts_its_history(store: impl Store) {
    let accepted = AcceptedMessage {
        id: "msg_1".into(),
        channel: "WHATSAPP".into(),
        to: "+46701234567".into(),
        metadata: Some(r#"{"order":"A-1"}"#.into()),
        caller: "arn:aws:iam::1:user/app".into(),
        at_ms: NOW,
        status: Status::Accepted,
        scheduled_at_ms: None,
        batch: None,
        fallback: Vec::new(),
    };
    store.accept_message(&accepted).await.unwrap();
    // The same write again (a retry whose first attempt landed) is that message; another
    // message under the same id is refused.
    store.accept_message(&accepted).await.unwrap();
    let other = AcceptedMessage {
        to: "+46709999999".into(),
        ..accepted.clone()
    };
    assert!(
        store.accept_message(&other).await.is_err(),
        "an id is one message"
    );
    let key = MessageKey::Ours("msg_1".into());
    let state = store.message_state(&key).await.unwrap().unwrap();
    assert_eq!(state.status, "ACCEPTED");
    assert_eq!(state.to.as_deref(), Some("+46701234567"));
    assert_eq!(state.metadata.as_deref(), Some(r#"{"order":"A-1"}"#));
    assert_eq!(state.channel_used(), Some("WHATSAPP"));
    // Sent, then a report from the channel Sinch fell back to.
    let intent = SendIntent {
        to: ContactKey::new("WHATSAPP", "46701234567"),
        in_reply_to: None,
        text: None,
    };
    store
        .begin_send(&attempt("msg_1", "A1", NOW + 10, None, &intent))
        .await
        .unwrap();
    store
        .finish_send(&SendFinish {
            id: "msg_1",
            attempt: Some("A1"),
            result: &SendResult::Accepted {
                sinch_id: Some(SinchId::Message("01S".into())),
            },
            at_ms: NOW + 20,
        })
        .await
        .unwrap();
    let mut report = our_report("msg_1", "01S", DeliveryStatus::Delivered, NOW + 30);
    report.channel = Some("SMS".into());
    store.record_status(&report).await.unwrap();
    let state = store.message_state(&key).await.unwrap().unwrap();
    let history: Vec<&str> = state.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(history, ["ACCEPTED", "SENT", "DELIVERED"]);
    assert_eq!(state.channel_used(), Some("SMS"));
}

async fn a_send_is_attempted_once_and_its_answer_recorded(store: impl Store) {
    let intent = intent();
    assert_eq!(
        store
            .begin_send(&attempt("rpl_1", "A1", NOW, None, &intent))
            .await
            .unwrap(),
        SendStart::Go
    );
    // A second attempt while the first is unsettled waits.
    assert_eq!(
        store
            .begin_send(&attempt("rpl_1", "A2", NOW + 1000, None, &intent))
            .await
            .unwrap(),
        SendStart::Unsettled {
            attempt: "A1".into(),
            attempt_at_ms: NOW
        }
    );
    store
        .finish_send(&SendFinish {
            id: "rpl_1",
            attempt: Some("A1"),
            result: &SendResult::Accepted {
                sinch_id: Some(SinchId::Message("01OUT".into())),
            },
            at_ms: NOW + 10,
        })
        .await
        .unwrap();
    // Once Sinch took it, no attempt goes again, even long after.
    assert_eq!(
        store
            .begin_send(&attempt("rpl_1", "A3", NOW + 3_600_000, None, &intent))
            .await
            .unwrap(),
        SendStart::Accepted {
            sinch_id: Some(SinchId::Message("01OUT".into())),
            recorded: true,
            attempt: Some("A1".into()),
        }
    );
    let key = MessageKey::Ours("rpl_1".into());
    let state = store.message_state(&key).await.unwrap().unwrap();
    assert_eq!(
        (
            state.status.as_str(),
            state.in_reply_to.as_deref(),
            state.send,
            state.channel.as_deref()
        ),
        (
            "SENT",
            Some("01IN"),
            Some(SendState::Sent),
            Some("WHATSAPP")
        )
    );
    assert_eq!(state.sinch_id, Some(SinchId::Message("01OUT".into())));
    // Its reports move it on.
    assert_eq!(
        store
            .record_status(&our_report(
                "rpl_1",
                "01OUT",
                DeliveryStatus::Delivered,
                NOW + 20
            ))
            .await
            .unwrap(),
        StatusChange::Advanced {
            from: "SENT".into(),
            to: "DELIVERED".into()
        }
    );
}

async fn an_unsettled_attempt_is_replaced_after_the_settle_time_or_by_its_owner(store: impl Store) {
    let intent = intent();
    store
        .begin_send(&attempt("m", "A1", NOW, None, &intent))
        .await
        .unwrap();
    // Its owner knows it never reached Sinch: taken over at once.
    assert_eq!(
        store
            .begin_send(&attempt("m", "A2", NOW + 5, Some("A1"), &intent))
            .await
            .unwrap(),
        SendStart::Go
    );
    // Someone else's token takes nothing over.
    assert!(matches!(
        store
            .begin_send(&attempt("m", "A3", NOW + 10, Some("A1"), &intent))
            .await
            .unwrap(),
        SendStart::Unsettled { attempt, .. } if attempt == "A2"
    ));
    // Withdrawn: the next attempt goes at once.
    store.abandon_send("m", "A2").await.unwrap();
    assert_eq!(
        store
            .begin_send(&attempt("m", "A4", NOW + 20, None, &intent))
            .await
            .unwrap(),
        SendStart::Go
    );
    // Withdrawing a replaced attempt changes nothing.
    store.abandon_send("m", "A2").await.unwrap();
    assert!(matches!(
        store
            .begin_send(&attempt("m", "A5", NOW + 30, None, &intent))
            .await
            .unwrap(),
        SendStart::Unsettled { .. }
    ));
    // Nothing settled it for the settle time: presumed lost, a new attempt goes.
    assert_eq!(
        store
            .begin_send(&attempt("m", "A6", NOW + 20 + 60_000, None, &intent))
            .await
            .unwrap(),
        SendStart::Go
    );
}

async fn a_delivery_report_settles_a_send_whose_answer_was_lost(store: impl Store) {
    let intent = intent();
    store
        .begin_send(&attempt("lost", "A1", NOW, None, &intent))
        .await
        .unwrap();
    // No answer came back, but Sinch's report names our message.
    store
        .record_status(&our_report(
            "lost",
            "01SINCH",
            DeliveryStatus::QueuedOnChannel,
            NOW + 100,
        ))
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_send(&attempt("lost", "A2", NOW + 3_600_000, None, &intent))
            .await
            .unwrap(),
        SendStart::Accepted {
            sinch_id: Some(SinchId::Message("01SINCH".into())),
            recorded: false,
            attempt: Some("A1".into()),
        }
    );
    // A report that overtook the send's answer: the answer records SENT under it.
    store
        .finish_send(&SendFinish {
            id: "lost",
            attempt: Some("A1"),
            result: &SendResult::Accepted {
                sinch_id: Some(SinchId::Message("01SINCH".into())),
            },
            at_ms: NOW + 200,
        })
        .await
        .unwrap();
    let state = store
        .message_state(&MessageKey::Ours("lost".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "QUEUED_ON_CHANNEL");
    assert_eq!(state.send, Some(SendState::Sent));
    let history: Vec<&str> = state.history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(history, ["QUEUED_ON_CHANNEL", "SENT"]);
}

async fn a_refused_send_is_failed_for_good(store: impl Store) {
    let intent = intent();
    store
        .begin_send(&attempt("bad", "A1", NOW, None, &intent))
        .await
        .unwrap();
    let reason = Reason::new("INVALID_ARGUMENT", Some("recipient is malformed".into()));
    store
        .finish_send(&SendFinish {
            id: "bad",
            attempt: Some("A1"),
            result: &SendResult::Refused {
                reason: reason.clone(),
            },
            at_ms: NOW + 5,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_send(&attempt("bad", "A2", NOW + 3_600_000, None, &intent))
            .await
            .unwrap(),
        SendStart::Refused {
            reason: reason.clone()
        }
    );
    let state = store
        .message_state(&MessageKey::Ours("bad".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "FAILED");
    assert_eq!(state.send, Some(SendState::Failed));
    assert_eq!(state.reason(), Some(&reason));
}

fn valued<'a>(key: &'a str, hash: &'a str, now_ms: u64, value: &'a str) -> ClaimRequest<'a> {
    ClaimRequest {
        value: Some(value),
        ..claim(key, hash, now_ms, now_ms + 1000)
    }
}

async fn a_claim_keeps_the_value_it_reserved_for_its_payload(store: impl Store) {
    assert_eq!(
        store.claim(&valued("k", "h", NOW, "msg_A")).await.unwrap(),
        Claim::Claimed {
            value: Some("msg_A".into())
        }
    );
    // Its lease runs: in flight.
    assert!(matches!(
        store
            .claim(&valued("k", "h", NOW + 10, "msg_B"))
            .await
            .unwrap(),
        Claim::InProgress { .. }
    ));
    // Its lease ran out (the claimer died): another body may not take it over...
    assert_eq!(
        store
            .claim(&valued("k", "other", NOW + 2000, "msg_C"))
            .await
            .unwrap(),
        Claim::Reused
    );
    // ...the same body does, and finds the value reserved first.
    assert_eq!(
        store
            .claim(&valued("k", "h", NOW + 2000, "msg_D"))
            .await
            .unwrap(),
        Claim::Claimed {
            value: Some("msg_A".into())
        }
    );
    assert!(matches!(
        store
            .claim(&valued("k", "h", NOW + 2001, "msg_E"))
            .await
            .unwrap(),
        Claim::InProgress { .. }
    ));
    // Completed, then expired: a fresh start with a fresh value.
    store.complete("k", NOW / 1000 + 10, None).await.unwrap();
    assert_eq!(
        store
            .claim(&valued("k", "other", NOW + 20_000, "msg_F"))
            .await
            .unwrap(),
        Claim::Claimed {
            value: Some("msg_F".into())
        }
    );
    // Released: a fresh value too.
    store.release("k").await.unwrap();
    assert_eq!(
        store
            .claim(&valued("k", "h", NOW + 20_001, "msg_G"))
            .await
            .unwrap(),
        Claim::Claimed {
            value: Some("msg_G".into())
        }
    );
}

fn accepted_message(id: &str) -> AcceptedMessage {
    AcceptedMessage {
        id: id.into(),
        channel: "WHATSAPP".into(),
        to: "+46701234567".into(),
        metadata: None,
        caller: "arn:aws:iam::1:user/app".into(),
        at_ms: NOW,
        status: Status::Accepted,
        scheduled_at_ms: None,
        batch: None,
        fallback: Vec::new(),
    }
}

fn finish<'a>(id: &'a str, attempt: Option<&'a str>, result: &'a SendResult) -> SendFinish<'a> {
    SendFinish {
        id,
        attempt,
        result,
        at_ms: NOW + 50,
    }
}

fn sent(sinch_id: &str) -> SendResult {
    SendResult::Accepted {
        sinch_id: Some(SinchId::Message(sinch_id.into())),
    }
}

fn refused(code: &str) -> SendResult {
    SendResult::Refused {
        reason: Reason::new(code, Some("why".into())),
    }
}

async fn history_of(store: &impl Store, id: &str) -> Vec<String> {
    store
        .message_state(&MessageKey::Ours(id.into()))
        .await
        .unwrap()
        .map(|state| {
            state
                .history
                .into_iter()
                .map(|h| h.status.to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn an_outcome_is_recorded_only_for_the_attempt_on_record(store: impl Store) {
    let intent = intent();
    store.accept_message(&accepted_message("m")).await.unwrap();
    store
        .begin_send(&attempt("m", "A1", NOW, None, &intent))
        .await
        .unwrap();
    // Taken over by A2 (A1 was known never to have reached Sinch).
    store
        .begin_send(&attempt("m", "A2", NOW + 5, Some("A1"), &intent))
        .await
        .unwrap();
    assert_eq!(
        store
            .finish_send(&finish("m", Some("A1"), &refused("LATE")))
            .await
            .unwrap(),
        Finished::Superseded,
        "a stray outcome of A1 changes nothing"
    );
    assert_eq!(
        store
            .finish_send(&finish("m", None, &refused("ENQUEUE_FAILED")))
            .await
            .unwrap(),
        Finished::Superseded,
        "an attempt is on record: it cannot be failed as never sent"
    );
    assert_eq!(
        store
            .finish_send(&finish("m", Some("A2"), &sent("01S")))
            .await
            .unwrap(),
        Finished::Recorded
    );
    // The same write again (the SDK retried it after it landed): recorded, one entry.
    assert_eq!(
        store
            .finish_send(&finish("m", Some("A2"), &sent("01S")))
            .await
            .unwrap(),
        Finished::Recorded
    );
    // Another outcome for the same attempt, after it ended: nothing.
    assert_eq!(
        store
            .finish_send(&finish("m", Some("A2"), &refused("LATE")))
            .await
            .unwrap(),
        Finished::Superseded
    );
    let state = store
        .message_state(&MessageKey::Ours("m".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.status.as_str(), state.send),
        ("SENT", Some(SendState::Sent))
    );
    assert_eq!(history_of(&store, "m").await, ["ACCEPTED", "SENT"]);
    // No message at all: nothing to finish.
    assert_eq!(
        store
            .finish_send(&finish("nothing", None, &refused("ENQUEUE_FAILED")))
            .await
            .unwrap(),
        Finished::Superseded
    );
}

async fn a_message_failed_before_any_attempt_can_never_be_sent(store: impl Store) {
    let intent = intent();
    store.accept_message(&accepted_message("m")).await.unwrap();
    let failed = refused("ENQUEUE_FAILED");
    assert_eq!(
        store
            .finish_send(&finish("m", None, &failed))
            .await
            .unwrap(),
        Finished::Recorded
    );
    assert_eq!(
        store
            .finish_send(&finish("m", None, &failed))
            .await
            .unwrap(),
        Finished::Recorded,
        "the same write again"
    );
    assert_eq!(
        store
            .begin_send(&attempt("m", "A1", NOW + 3_600_000, None, &intent))
            .await
            .unwrap(),
        SendStart::Refused {
            reason: Reason::new("ENQUEUE_FAILED", Some("why".into()))
        }
    );
    let state = store
        .message_state(&MessageKey::Ours("m".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.status.as_str(), state.send, state.progress().terminal),
        ("FAILED", Some(SendState::Failed), true)
    );
    assert_eq!(history_of(&store, "m").await, ["ACCEPTED", "FAILED"]);
}

async fn the_same_message_accepted_again_is_that_message(store: impl Store) {
    let first = accepted_message("m");
    assert_eq!(store.accept_message(&first).await.unwrap(), Acceptance::New);
    // A retry, later, of the request that reserved the id.
    let again = AcceptedMessage {
        at_ms: NOW + 40_000,
        ..first.clone()
    };
    let Acceptance::Existing(state) = store.accept_message(&again).await.unwrap() else {
        panic!("the message is there")
    };
    assert_eq!(state.status, "ACCEPTED");
    assert_eq!(state.caller.as_deref(), Some("arn:aws:iam::1:user/app"));
    assert_eq!(state.history.len(), 1, "accepted once");
    let other_caller = AcceptedMessage {
        caller: "arn:aws:iam::1:user/eve".into(),
        ..first
    };
    assert!(store.accept_message(&other_caller).await.is_err());
}

async fn the_history_holds_each_entry_once_and_within_its_limit(store: impl Store) {
    // The same report twice (Sinch's duplicate, or the SDK's retry of a write that landed).
    let queued = our_report("m", "01S", DeliveryStatus::QueuedOnChannel, NOW + 10);
    store.accept_message(&accepted_message("m")).await.unwrap();
    store.record_status(&queued).await.unwrap();
    assert_eq!(
        store.record_status(&queued).await.unwrap(),
        StatusChange::Kept {
            status: "QUEUED_ON_CHANNEL".into()
        }
    );
    assert_eq!(
        history_of(&store, "m").await,
        ["ACCEPTED", "QUEUED_ON_CHANNEL"]
    );
    // A full history: a send's outcome still moves the status, and adds no entry.
    let intent = intent();
    store
        .accept_message(&accepted_message("full"))
        .await
        .unwrap();
    store
        .begin_send(&attempt("full", "A1", NOW, None, &intent))
        .await
        .unwrap();
    for i in 0..HISTORY_LIMIT as u64 + 3 {
        let mut noise = our_report(
            "full",
            "01F",
            DeliveryStatus::Other("NOISE".into()),
            NOW + i,
        );
        noise.sinch_id = None;
        store.record_status(&noise).await.unwrap();
    }
    assert_eq!(
        store
            .finish_send(&finish("full", Some("A1"), &sent("01F")))
            .await
            .unwrap(),
        Finished::Recorded
    );
    let state = store
        .message_state(&MessageKey::Ours("full".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.history.len(), HISTORY_LIMIT);
    assert_eq!(
        (state.status.as_str(), state.send),
        ("SENT", Some(SendState::Sent))
    );
}

fn batch_record(id: &str, total: u32) -> BatchRecord {
    BatchRecord {
        id: id.into(),
        caller: "arn:aws:iam::1:user/app".into(),
        channel: "SMS_API".into(),
        total,
        refused: 1,
        chunks: 2,
        created_at_ms: NOW,
        send_at_ms: Some(NOW + 60_000),
        canceled: false,
        finals: 0,
        completed_at_ms: None,
    }
}

fn batch_message(batch: &str, index: u32) -> AcceptedMessage {
    AcceptedMessage {
        batch: Some(BatchRef {
            id: batch.into(),
            index,
        }),
        ..accepted_message(&format!("msg_{batch}_{index}"))
    }
}

async fn a_batch_is_stored_once_with_its_chunks(store: impl Store) {
    let record = batch_record("bat_1", 3);
    let chunks = vec![r#"[{"a":1}]"#.to_owned(), r#"[{"b":2}]"#.to_owned()];
    store
        .create_batch(&record, &chunks, r#"{"accepted":3}"#)
        .await
        .unwrap();
    // Again (a retried request): nothing changes, neither the chunks nor the answer.
    let again = BatchRecord {
        total: 99,
        ..record.clone()
    };
    store
        .create_batch(&again, &[r#"[{"c":3}]"#.to_owned()], r#"{"accepted":99}"#)
        .await
        .unwrap();
    assert_eq!(store.batch("bat_1").await.unwrap(), Some(record));
    assert_eq!(
        store.batch_answer("bat_1").await.unwrap().as_deref(),
        Some(r#"{"accepted":3}"#)
    );
    assert_eq!(
        store.batch_chunk("bat_1", 0).await.unwrap().as_deref(),
        Some(r#"[{"a":1}]"#)
    );
    assert_eq!(
        store.batch_chunk("bat_1", 1).await.unwrap().as_deref(),
        Some(r#"[{"b":2}]"#)
    );
    assert_eq!(store.batch_chunk("bat_1", 2).await.unwrap(), None);
    assert_eq!(store.batch("bat_none").await.unwrap(), None);
}

async fn a_batch_completes_when_each_of_its_messages_is_final_once(store: impl Store) {
    store
        .create_batch(&batch_record("bat_2", 2), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    for index in 0..2 {
        store
            .accept_message(&batch_message("bat_2", index))
            .await
            .unwrap();
    }
    let failed = SendResult::Refused {
        reason: Reason::new("recipient_opted_out", None),
    };
    // The first message ends, and ends again (a retried write): it counts once.
    for _ in 0..2 {
        store
            .finish_send(&finish("msg_bat_2_0", None, &failed))
            .await
            .unwrap();
    }
    let batch = store.batch("bat_2").await.unwrap().unwrap();
    assert_eq!((batch.finals, batch.completed_at_ms), (1, None));
    // A report on a final message changes nothing for the batch.
    store
        .record_status(&our_report(
            "msg_bat_2_0",
            "01X",
            DeliveryStatus::Delivered,
            NOW + 60,
        ))
        .await
        .unwrap();
    assert_eq!(store.batch("bat_2").await.unwrap().unwrap().finals, 1);
    let canceled = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new("canceled", None),
    };
    store
        .finish_send(&finish("msg_bat_2_1", None, &canceled))
        .await
        .unwrap();
    let batch = store.batch("bat_2").await.unwrap().unwrap();
    assert_eq!(batch.finals, 2);
    assert!(batch.completed_at_ms.is_some(), "{batch:?}");
    // Once complete, it cannot be canceled.
    assert_eq!(
        store.cancel_batch("bat_2").await.unwrap(),
        BatchCancel::Completed
    );
    assert_eq!(
        store
            .statuses(&["msg_bat_2_1".into(), "msg_none".into()])
            .await
            .unwrap(),
        vec![Some(Status::Canceled), None]
    );
}

async fn a_batch_is_canceled_until_it_completes(store: impl Store) {
    assert_eq!(
        store.cancel_batch("bat_none").await.unwrap(),
        BatchCancel::Missing
    );
    store
        .create_batch(&batch_record("bat_3", 5), &["[]".to_owned()], "{}")
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(
            store.cancel_batch("bat_3").await.unwrap(),
            BatchCancel::Canceled
        );
    }
    assert!(store.batch("bat_3").await.unwrap().unwrap().canceled);
}

async fn contacts_are_read_many_at_once_in_order(store: impl Store) {
    let opted = ContactKey::new("SMS", "+46700000001");
    let record = InboundRecord {
        from: opted.clone(),
        ..inbound("01STOPMANY")
    };
    store
        .record_inbound(
            &record,
            Some(&OptChange::OptOut {
                contact: opted.clone(),
                by: "01STOPMANY".into(),
            }),
        )
        .await
        .unwrap();
    let mut asked: Vec<ContactKey> = (0..150)
        .map(|k| ContactKey::new("SMS", &format!("+4670{k:07}")))
        .collect();
    asked.push(opted.clone());
    asked.push(opted.clone());
    let states = store.contacts(&asked).await.unwrap();
    assert_eq!(states.len(), 152);
    assert_eq!(
        states[1].opted_out_by.as_deref(),
        Some("01STOPMANY"),
        "+46700000001 is asked second"
    );
    assert_eq!(states[151].opted_out_by.as_deref(), Some("01STOPMANY"));
    assert!(states[0].opted_out_by.is_none() && states[2].opted_out_by.is_none());
}

async fn pacing_slots_are_handed_out_once_each(store: impl Store) {
    let (interval, now) = (50_000, 2_000_000_000_000);
    assert_eq!(
        store
            .take_slot("conversation", interval, now, None)
            .await
            .unwrap(),
        Slot::Taken(now)
    );
    assert_eq!(
        store
            .take_slot("conversation", interval, now, Some(100_000))
            .await
            .unwrap(),
        Slot::Taken(now + 50_000)
    );
    assert_eq!(
        store
            .take_slot("conversation", interval, now, Some(100_000))
            .await
            .unwrap(),
        Slot::Taken(now + 100_000)
    );
    assert_eq!(
        store
            .take_slot("conversation", interval, now, Some(100_000))
            .await
            .unwrap(),
        Slot::Busy {
            next_us: now + 150_000
        }
    );
    // Another timeline is its own.
    assert_eq!(
        store
            .take_slot("sms", interval, now, Some(0))
            .await
            .unwrap(),
        Slot::Taken(now)
    );
    // Concurrent takers each get their own slot.
    let taken = futures_util::future::join_all(
        (0..20).map(|_| store.take_slot("burst", interval, now, None)),
    )
    .await;
    let mut slots: Vec<u64> = taken
        .into_iter()
        .map(|slot| match slot.unwrap() {
            Slot::Taken(at) => at,
            busy => panic!("{busy:?}"),
        })
        .collect();
    slots.sort_unstable();
    let expected: Vec<u64> = (0..20).map(|k| now + k * interval).collect();
    assert_eq!(slots, expected);
}

async fn set(
    store: &impl Store,
    contact: &ContactKey,
    out: bool,
    source: OptSource,
    at: u64,
) -> bool {
    let reference = format!("{}_{at}", source.as_str());
    store
        .set_opt_out(&OptWrite {
            contact,
            opted_out: out,
            source: &source,
            reference: &reference,
            at_ms: at,
        })
        .await
        .unwrap()
}

async fn opt_outs_are_set_and_lifted_once_by_any_source(store: impl Store) {
    let contact = ContactKey::new("SMS", "+46701234567");
    // Opting in someone who never opted out changes nothing but keeps the opt-in's time (an
    // older opt-out arriving late must not override it).
    assert!(!set(&store, &contact, false, OptSource::Api, NOW).await);
    let kept = store.contact(&contact).await.unwrap();
    assert_eq!((kept.opted_out_by, kept.opted_in_at_ms), (None, Some(NOW)));
    assert!(set(&store, &contact, true, OptSource::Api, NOW).await);
    let state = store.contact(&contact).await.unwrap();
    assert_eq!(state.opted_out_by.as_deref(), Some(&*format!("api_{NOW}")));
    assert_eq!(state.opted_out_at_ms, Some(NOW));
    assert_eq!(state.opt_source, Some(OptSource::Api));
    // Again, from another source: the first opt-out stands.
    assert!(!set(&store, &contact, true, OptSource::Sinch, NOW + 1).await);
    let again = store.contact(&contact).await.unwrap();
    assert_eq!(again, state);
    // A keyword opt-in lifts it, whoever set it.
    store
        .record_inbound(
            &InboundRecord {
                from: contact.clone(),
                ..inbound("01START")
            },
            Some(&OptChange::OptIn {
                contact: contact.clone(),
            }),
        )
        .await
        .unwrap();
    let state = store.contact(&contact).await.unwrap();
    assert_eq!(
        (state.opted_out_by, state.opt_source),
        (None, Some(OptSource::Keyword))
    );
    assert!(!set(&store, &contact, false, OptSource::Import, NOW + 2).await);
    // A keyword opt-out records its source and time; the API lifts it.
    store
        .record_inbound(
            &InboundRecord {
                from: contact.clone(),
                received_at_ms: NOW + 3,
                ..inbound("01STOP")
            },
            Some(&OptChange::OptOut {
                contact: contact.clone(),
                by: "01STOP".into(),
            }),
        )
        .await
        .unwrap();
    let state = store.contact(&contact).await.unwrap();
    assert_eq!(
        (
            state.opted_out_by.as_deref(),
            state.opted_out_at_ms,
            state.opt_source
        ),
        (Some("01STOP"), Some(NOW + 3), Some(OptSource::Keyword))
    );
    assert!(set(&store, &contact, false, OptSource::Api, NOW + 4).await);
    let state = store.contact(&contact).await.unwrap();
    assert_eq!((state.opted_out_by, state.opted_out_at_ms), (None, None));
    assert_eq!(state.last_inbound_at_ms, Some(NOW + 3));
}

async fn opt_outs_are_listed_in_order_by_page(store: impl Store) {
    let mut expected = Vec::new();
    for (channel, n) in [("WHATSAPP", 3), ("SMS", 4), ("RCS", 1)] {
        for k in 0..n {
            let contact = ContactKey::new(channel, &format!("4670000000{k}"));
            assert!(set(&store, &contact, true, OptSource::Import, NOW + k).await);
            expected.push(format!("{channel}/4670000000{k}"));
        }
    }
    // One opted back in, one never opted out: neither is listed.
    let lifted = ContactKey::new("SMS", "46700000003");
    assert!(set(&store, &lifted, false, OptSource::Api, NOW + 9).await);
    expected.retain(|key| key != "SMS/46700000003");
    store.record_inbound(&inbound("01HI"), None).await.unwrap();
    expected.sort();
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = store.opt_outs(None, after.as_ref(), 3).await.unwrap();
        assert!(page.items.len() <= 3);
        for (key, state) in &page.items {
            assert!(state.opted_out_by.is_some(), "{key}");
            assert_eq!(state.opt_source, Some(OptSource::Import));
            listed.push(key.to_string());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, expected);
    let sms = store
        .opt_outs(Some(&sinch::Channel::Sms), None, 100)
        .await
        .unwrap();
    let sms: Vec<String> = sms.items.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(
        sms,
        ["SMS/46700000000", "SMS/46700000001", "SMS/46700000002"]
    );
    assert_eq!(
        store.opt_outs(None, None, 100).await.unwrap().next,
        None,
        "a short page is the last"
    );
}

async fn a_sliding_window_counts_up_to_its_limit_and_frees_as_it_slides(store: impl Store) {
    const WINDOW: u64 = 10_000;
    let start = (NOW / WINDOW + 1) * WINDOW;
    let count = |at: u64| store.count_in_window("dest/467012", WINDOW, 3, at);
    for k in 0..3 {
        assert_eq!(count(start + k).await.unwrap(), Counted::Counted, "{k}");
    }
    assert_eq!(
        count(start + 100).await.unwrap(),
        Counted::Limited {
            retry_after_ms: WINDOW - 100
        }
    );
    // Another key has its own window.
    assert_eq!(
        store
            .count_in_window("dest/467013", WINDOW, 3, start + 100)
            .await
            .unwrap(),
        Counted::Counted
    );
    // The next window: the previous one's three weigh almost fully at its start...
    assert!(matches!(
        count(start + WINDOW).await.unwrap(),
        Counted::Limited { .. }
    ));
    // ... half at its middle: 1.5 + 1 fits, 1.5 + 2 does not, until 2/3 of the way.
    let middle = start + WINDOW + WINDOW / 2;
    assert_eq!(count(middle).await.unwrap(), Counted::Counted);
    assert_eq!(
        count(middle).await.unwrap(),
        Counted::Limited {
            retry_after_ms: 1_667
        }
    );
    assert_eq!(count(middle + 1_700).await.unwrap(), Counted::Counted);
    // Two windows later the past is gone.
    for _ in 0..3 {
        assert_eq!(count(start + 3 * WINDOW).await.unwrap(), Counted::Counted);
    }
    // Concurrent callers never overshoot the limit.
    let at = start + 10 * WINDOW;
    let results = futures_util::future::join_all(
        (0..20).map(|_| store.count_in_window("dest/burst", WINDOW, 5, at)),
    )
    .await;
    let counted = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Counted::Counted)))
        .count();
    assert_eq!(counted, 5);
}

async fn a_capped_count_adds_as_many_as_fit_once_each(store: impl Store) {
    let key = "cap/SMS_API/2026-12";
    assert_eq!(store.count_up_to(key, 4, 10, NOW / 1000).await.unwrap(), 4);
    assert_eq!(store.count_up_to(key, 4, 10, NOW / 1000).await.unwrap(), 4);
    assert_eq!(store.count_up_to(key, 4, 10, NOW / 1000).await.unwrap(), 2);
    assert_eq!(store.count_up_to(key, 1, 10, NOW / 1000).await.unwrap(), 0);
    // Given back (a batch that could not be stored): that many fit again; never below 0.
    store.count_down(key, 3).await.unwrap();
    assert_eq!(store.count_up_to(key, 4, 10, NOW / 1000).await.unwrap(), 3);
    store
        .count_down("cap/SMS_API/never-counted", 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .count_up_to("cap/SMS_API/never-counted", 1, 10, NOW / 1000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_up_to("cap/SMS_API/2027-01", 1, 10, NOW / 1000)
            .await
            .unwrap(),
        1
    );
    // Concurrent callers add exactly the cap between them.
    let added = futures_util::future::join_all(
        (0..30).map(|_| store.count_up_to("cap/WHATSAPP/2026-12", 1, 10, NOW / 1000)),
    )
    .await;
    let total: u32 = added.into_iter().map(Result::unwrap).sum();
    assert_eq!(total, 10);
}

testkit::for_both_stores!(
    a_sliding_window_counts_up_to_its_limit_and_frees_as_it_slides,
    a_capped_count_adds_as_many_as_fit_once_each,
    opt_outs_are_set_and_lifted_once_by_any_source,
    opt_outs_are_listed_in_order_by_page,
    a_batch_is_stored_once_with_its_chunks,
    a_batch_completes_when_each_of_its_messages_is_final_once,
    a_batch_is_canceled_until_it_completes,
    contacts_are_read_many_at_once_in_order,
    pacing_slots_are_handed_out_once_each,
    a_key_is_claimed_once_then_remembered,
    a_lease_left_behind_is_claimable_once_it_runs_out,
    a_released_key_can_be_claimed_again,
    a_completed_key_expires_after_its_ttl,
    status_ends_at_the_furthest_state_in_every_order,
    the_first_final_status_stays,
    the_history_is_capped,
    sms_keys_are_separate_per_recipient,
    opt_outs_are_stored_with_the_inbound_message,
    contacts_remember_when_they_last_wrote,
    a_completed_key_replays_its_response,
    an_accepted_message_starts_its_history,
    a_send_is_attempted_once_and_its_answer_recorded,
    an_unsettled_attempt_is_replaced_after_the_settle_time_or_by_its_owner,
    a_delivery_report_settles_a_send_whose_answer_was_lost,
    a_refused_send_is_failed_for_good,
    a_claim_keeps_the_value_it_reserved_for_its_payload,
    an_outcome_is_recorded_only_for_the_attempt_on_record,
    a_message_failed_before_any_attempt_can_never_be_sent,
    the_same_message_accepted_again_is_that_message,
    the_history_holds_each_entry_once_and_within_its_limit,
);

#[tokio::test]
async fn an_unreachable_dynamodb_is_a_store_error() {
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let store = DynamoStore::new(dynamodb_client(&sdk), "sinch-hooks");
    let error = store
        .claim(&claim("k", "h", NOW, NOW + 1000))
        .await
        .unwrap_err();
    assert_eq!(error.operation, "claim");
    assert!(
        store
            .record_status(&report("m", DeliveryStatus::Read, NOW))
            .await
            .is_err()
    );
}
