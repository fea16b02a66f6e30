//! One suite, two stores: every case runs against the in-memory store and against DynamoDB on
//! moto_server (a fresh server and table per case). Both must give the same answers.

use pipeline::status;
use pipeline::store::{
    Claim, ClaimRequest, ContactKey, DynamoStore, HISTORY_LIMIT, InboundRecord, MemoryStore,
    MessageKey, OptChange, ReplyRecord, StatusChange, StatusUpdate, Store, dynamodb_client,
};
use sinch::callback::conversation::DeliveryStatus;
use testkit::Moto;

const NOW: u64 = 1_763_870_400_000;

fn claim<'a>(key: &'a str, hash: &'a str, now_ms: u64, lease_until_ms: u64) -> ClaimRequest<'a> {
    ClaimRequest {
        key,
        payload_hash: hash,
        lease_until_ms,
        now_ms,
    }
}

fn report(id: &str, status: DeliveryStatus, at_ms: u64) -> StatusUpdate {
    StatusUpdate {
        key: MessageKey::Conversation(id.into()),
        status: status.to_string(),
        progress: status::conversation(&status),
        at_ms,
        reason: (status == DeliveryStatus::Failed).then(|| "RECIPIENT_NOT_REACHABLE".into()),
        channel: Some("WHATSAPP".into()),
    }
}

fn inbound(id: &str) -> InboundRecord {
    InboundRecord {
        id: id.into(),
        from: ContactKey::new("WHATSAPP", "46701234567"),
        to: "app-1".into(),
        kind: "text_message".into(),
        text: Some("STOP".into()),
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
        Claim::Claimed
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
    store.complete("k", NOW / 1000 + 3600).await.unwrap();
    assert_eq!(
        store
            .claim(&claim("k", "h1", NOW + 2, NOW + 7000))
            .await
            .unwrap(),
        Claim::Completed { same_payload: true }
    );
    assert_eq!(
        store
            .claim(&claim("k", "other", NOW + 3, NOW + 8000))
            .await
            .unwrap(),
        Claim::Completed {
            same_payload: false
        }
    );
    assert_eq!(
        store
            .claim(&claim("k2", "h1", NOW, NOW + 5000))
            .await
            .unwrap(),
        Claim::Claimed
    );
}

async fn a_lease_left_behind_is_claimable_once_it_runs_out(store: impl Store) {
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW, NOW + 1000))
            .await
            .unwrap(),
        Claim::Claimed
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
        Claim::Claimed
    );
}

async fn a_released_key_can_be_claimed_again(store: impl Store) {
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW, NOW + 60_000))
            .await
            .unwrap(),
        Claim::Claimed
    );
    store.release("k").await.unwrap();
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 1, NOW + 60_000))
            .await
            .unwrap(),
        Claim::Claimed
    );
    store.release("never-claimed").await.unwrap();
}

async fn a_completed_key_expires_after_its_ttl(store: impl Store) {
    store
        .claim(&claim("k", "h", NOW, NOW + 1000))
        .await
        .unwrap();
    store.complete("k", NOW / 1000 + 10).await.unwrap();
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 9_999, NOW + 20_000))
            .await
            .unwrap(),
        Claim::Completed { same_payload: true }
    );
    assert_eq!(
        store
            .claim(&claim("k", "h", NOW + 10_000, NOW + 20_000))
            .await
            .unwrap(),
        Claim::Claimed
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
        assert!(state.progress.terminal);
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
        state.history[0].reason.as_deref(),
        Some("RECIPIENT_NOT_REACHABLE")
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
        status: status.to_string(),
        progress: status::sms(&status),
        at_ms: NOW,
        reason: None,
        channel: None,
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
    assert_eq!(store.opted_out_by(&contact).await.unwrap(), None);
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
        store.opted_out_by(&contact).await.unwrap().as_deref(),
        Some("01STOP")
    );
    store.record_inbound(&inbound("01HI"), None).await.unwrap();
    assert_eq!(
        store.opted_out_by(&contact).await.unwrap().as_deref(),
        Some("01STOP")
    );
    store
        .record_inbound(
            &inbound("01START"),
            Some(&OptChange::OptIn {
                contact: contact.clone(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(store.opted_out_by(&contact).await.unwrap(), None);
    // Again is harmless.
    store
        .record_inbound(
            &inbound("01START"),
            Some(&OptChange::OptIn {
                contact: contact.clone(),
            }),
        )
        .await
        .unwrap();
}

async fn replies_link_their_delivery_reports(store: impl Store) {
    let reply = |id: &str| ReplyRecord {
        key: MessageKey::Conversation(id.into()),
        in_reply_to: "01IN".into(),
        to: ContactKey::new("WHATSAPP", "46701234567"),
        text: "Hello".into(),
        sent_at_ms: NOW,
    };
    store.record_reply(&reply("01OUT")).await.unwrap();
    let state = store
        .message_state(&MessageKey::Conversation("01OUT".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.in_reply_to.as_deref(), Some("01IN"));
    assert_eq!(state.status, "SENT");
    assert_eq!(
        store
            .record_status(&report("01OUT", DeliveryStatus::Delivered, NOW + 1))
            .await
            .unwrap(),
        StatusChange::Advanced {
            from: "SENT".into(),
            to: "DELIVERED".into()
        }
    );
    let state = store
        .message_state(&MessageKey::Conversation("01OUT".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.status.as_str(), state.in_reply_to.as_deref()),
        ("DELIVERED", Some("01IN"))
    );

    // A report that overtook the reply's record still gets linked.
    store
        .record_status(&report("01FAST", DeliveryStatus::Read, NOW))
        .await
        .unwrap();
    store.record_reply(&reply("01FAST")).await.unwrap();
    let state = store
        .message_state(&MessageKey::Conversation("01FAST".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (state.status.as_str(), state.in_reply_to.as_deref()),
        ("READ", Some("01IN"))
    );
}

async fn dynamo(moto: &Moto) -> DynamoStore {
    let store = DynamoStore::new(dynamodb_client(&moto.sdk_config().await), "sinch-hooks");
    store.create_table().await.expect("moto creates the table");
    store
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::MemoryStore::new()).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    let moto = super::Moto::start();
                    super::$case(super::dynamo(&moto).await).await
                }
            )*
        }
    };
}

contract!(
    a_key_is_claimed_once_then_remembered,
    a_lease_left_behind_is_claimable_once_it_runs_out,
    a_released_key_can_be_claimed_again,
    a_completed_key_expires_after_its_ttl,
    status_ends_at_the_furthest_state_in_every_order,
    the_first_final_status_stays,
    the_history_is_capped,
    sms_keys_are_separate_per_recipient,
    opt_outs_are_stored_with_the_inbound_message,
    replies_link_their_delivery_reports,
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
