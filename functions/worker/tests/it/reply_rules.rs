//! Keywords and replies changed at run time: the worker answers with the rules in force when
//! a message is handled, with no restart (the SSM read itself is proven against moto in
//! `pipeline`'s tests; here the source is in memory, its cache time zero).

use std::time::Duration;

use pipeline::reply::ReplyPolicy;
use pipeline::reply_rules::{MemoryRules, ReplyRules};
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, MemoryStore};
use serde_json::Value;

use crate::common::{deadline, fake_sinch, inbound, services_with};

#[tokio::test]
async fn a_changed_keyword_applies_to_the_next_message_without_a_restart() {
    let sinch = fake_sinch().await;
    let rules = MemoryRules::default();
    rules.set(Some(
        r#"{"rules":[{"keywords":["BAJA"],"action":"opt_out","reply":"Dado de baja."}]}"#,
    ));
    let services = services_with(
        MemoryStore::default(),
        &sinch,
        ReplyRules::new(rules.clone(), ReplyPolicy::default(), Duration::ZERO),
    );
    let handle = |id: &'static str, from: &'static str, text: &'static str| {
        let services = &services;
        async move {
            let envelope = testkit::envelope(inbound(id, from, text).into_bytes());
            pipeline::process::process(services, &envelope, deadline())
                .await
                .expect("handled");
        }
    };
    let opted_out = |from: &'static str| {
        let store = services.store.clone();
        async move {
            store
                .contact(&ContactKey::new("WHATSAPP", from))
                .await
                .unwrap()
                .opted_out_by
                .is_some()
        }
    };

    handle("01LIVE1", "46700000001", "baja").await;
    assert!(opted_out("46700000001").await);

    rules.set(Some(
        r#"{"rules":[{"keywords":["ARRÊT"],"action":"opt_out","reply":"Désinscrit."}]}"#,
    ));
    handle("01LIVE2", "46700000002", "Arret").await;
    handle("01LIVE3", "46700000003", "BAJA").await;
    assert!(opted_out("46700000002").await, "the new keyword");
    assert!(!opted_out("46700000003").await, "the old keyword no longer");

    // What reached Sinch: each confirmation in the words in force when it was handled.
    let texts: Vec<String> = sinch
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("messages:send"))
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .map(|body| {
            body["message"]["text_message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(texts, ["Dado de baja.", "Désinscrit."]);
}
