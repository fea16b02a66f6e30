//! Redact mode and retention: no message text is stored or emitted in Redact mode (the
//! keywords still work), and every item that holds personal data carries its TTL.

use std::time::{Duration, SystemTime};

use pipeline::handlers::Privacy;
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, MemoryStore, OptSource, OptWrite};
use serde_json::Value;
use testkit::Dump;

use crate::common::{deadline, fake_sinch, inbound, services};

const SECRET_TEXT: &str = "HELP my card is 4111 1111 1111 1111";

async fn process<S: Store>(services: &pipeline::handlers::Services<S>, body: &str) {
    let envelope = testkit::envelope(body.as_bytes().to_vec());
    pipeline::process::process(services, &envelope, deadline())
        .await
        .expect("handled");
}

async fn redact_mode_keeps_no_text_and_keywords_still_work<S: Store + Dump + Clone>(store: S) {
    let sinch = fake_sinch().await;
    let mut services = services(store.clone(), &sinch);
    services.privacy = Privacy { redact: true };
    services.hook = pipeline::reply::ReplyPolicy::from_json(
        r#"{"rules": [{"keywords": ["STOP"], "action": "opt_out", "reply": "You are unsubscribed"}],
            "default_reply": "We got your message about your order"}"#,
    )
    .unwrap();
    process(&services, &inbound("01RED1", "46701234567", SECRET_TEXT)).await;
    process(&services, &inbound("01RED2", "46701234567", "stop")).await;
    // The keyword worked, and the reply left with its text.
    assert!(
        services
            .store
            .contact(&ContactKey::new("WHATSAPP", "46701234567"))
            .await
            .unwrap()
            .opted_out_by
            .is_some()
    );
    let sent: Vec<Value> = sinch
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("messages:send"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 2, "both replies left");
    // Nothing of any text is kept: not the inbound messages', not the replies'.
    let dump = store.dump().await;
    for text in [
        SECRET_TEXT,
        "4111",
        "stop",
        "We got your message",
        "unsubscribed",
    ] {
        assert!(!dump.contains(text), "{text:?} is stored: {dump}");
    }
    let digest = pipeline::store::TextDigest::of(SECRET_TEXT);
    assert!(dump.contains(&digest.sha256), "the hash is kept");
    assert_eq!(digest.length, SECRET_TEXT.chars().count());
}

async fn the_default_keeps_texts<S: Store + Dump + Clone>(store: S) {
    let sinch = fake_sinch().await;
    let services = services(store.clone(), &sinch);
    process(&services, &inbound("01KEEP", "46701234567", SECRET_TEXT)).await;
    assert!(store.dump().await.contains(SECRET_TEXT));
}

testkit::for_both_stores!(
    redact_mode_keeps_no_text_and_keywords_still_work,
    the_default_keeps_texts,
);

/// Redact mode's events: `text_length` and `text_sha256`, no text (the in-memory change feed,
/// as the publisher derives events).
#[tokio::test]
async fn redacted_events_carry_a_length_and_a_hash() {
    let sinch = fake_sinch().await;
    let (store, mut changes) = MemoryStore::with_change_feed();
    let mut services = services(store, &sinch);
    services.privacy = Privacy { redact: true };
    process(&services, &inbound("01EVT", "46701234567", SECRET_TEXT)).await;
    let mut events = Vec::new();
    while let Ok(change) = changes.try_recv() {
        events.extend(pipeline::events::derive(&change));
    }
    let text =
        serde_json::to_string(&events.iter().map(|e| &e.detail).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains("4111"), "{text}");
    let received = events
        .iter()
        .find(|e| e.detail_type == "Message Received")
        .expect("a Message Received event");
    assert_eq!(received.detail["text_length"], SECRET_TEXT.chars().count());
    assert_eq!(
        received.detail["text_sha256"],
        pipeline::store::TextDigest::of(SECRET_TEXT).sha256
    );
    assert!(received.detail.get("text").is_none());
}

/// Every item that names a person expires, but an opt-out: DynamoDB's `expires_at` per kind.
#[tokio::test]
async fn every_personal_item_carries_its_retention_but_opt_outs() {
    let moto = testkit::Moto::start();
    let retention = pipeline::store::Retention {
        inbound: Duration::from_secs(10 * 86_400),
        messages: Duration::from_secs(20 * 86_400),
        contacts: Duration::from_secs(30 * 86_400),
    };
    let store = testkit::dynamo_store(&moto).await.with_retention(retention);
    let sinch = fake_sinch().await;
    let services = services(store.clone(), &sinch);
    process(&services, &inbound("01TTL1", "46700000001", "HELP")).await;
    process(&services, &inbound("01TTL2", "46700000002", "STOP")).await;
    // An opted-out contact writing again stays kept.
    process(&services, &inbound("01TTL3", "46700000002", "hello?")).await;
    // Opted out and back in through the API: its retention again.
    let api_contact = ContactKey::new("SMS", "46700000003");
    for opted_out in [true, false] {
        store
            .set_opt_out(&OptWrite {
                contact: &api_contact,
                opted_out,
                source: &OptSource::Api,
                reference: "api_01TTL",
                at_ms: pipeline::clock::unix_millis(SystemTime::now()),
            })
            .await
            .unwrap();
    }
    let now_s = pipeline::clock::unix_millis(SystemTime::now()) / 1000;
    let near = |expires: u64, days: u64| expires.abs_diff(now_s + days * 86_400) < 600;
    let items = store.items().await.unwrap();
    let expiry = |pk: &str| -> Option<u64> {
        items
            .iter()
            .find(|item| item["pk"].as_s().is_ok_and(|p| p == pk))
            .and_then(|item| item.get("expires_at"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    };
    for id in ["01TTL1", "01TTL2", "01TTL3"] {
        assert!(near(expiry(&format!("in#{id}")).unwrap(), 10), "in#{id}");
    }
    assert!(near(expiry("msg#ours/rpl_01TTL1").unwrap(), 20));
    assert!(near(expiry("contact#WHATSAPP/46700000001").unwrap(), 30));
    assert_eq!(
        expiry("contact#WHATSAPP/46700000002"),
        Some(u64::from(u32::MAX)),
        "an opt-out is kept"
    );
    assert!(near(expiry("contact#SMS/46700000003").unwrap(), 30));
    // Nothing else that names a person is kept forever.
    for item in &items {
        let pk = item["pk"].as_s().unwrap();
        if pk.starts_with("in#") || pk.starts_with("msg#") || pk.starts_with("contact#") {
            assert!(item.contains_key("expires_at"), "{pk} has no TTL");
        }
    }
}
