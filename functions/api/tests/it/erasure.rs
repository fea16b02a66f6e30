//! `DELETE /contacts/{channel}/{identity}`, on both stores: afterwards nothing in the whole
//! store names the person or holds their texts (a full dump is searched), they stay opted out
//! (as a keyed hash), the events emitted after name no one, and every refusal has its code.

use lambda_http::Body;
use lambda_http::http::Request as HttpRequest;
use pipeline::status::Status;
use pipeline::store::{
    ContactKey, InboundRecord, MemoryStore, MessageKey, OptChange, SendAttempt, SendIntent,
    StatusUpdate, Store,
};
use serde_json::{Value, json};
use testkit::Dump;

use crate::common::{NOW_MS, api, call, get, post};

const NUMBER: &str = "46701234567";
const OTHER: &str = "46709876543";

fn request(method: &str, path: &str) -> lambda_http::Request {
    HttpRequest::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .body(Body::Empty)
        .unwrap()
}

fn inbound(id: &str, number: &str, text: &str) -> InboundRecord {
    InboundRecord {
        id: id.into(),
        from: ContactKey::new("SMS", number),
        to: "46700000001".into(),
        kind: "mo_text".into(),
        text: Some(text.into()),
        text_digest: None,
        media: Vec::new(),
        contact_id: None,
        conversation_id: None,
        received_at_ms: NOW_MS,
    }
}

/// Everything the pipeline keeps of a person: a send of the API (with metadata), an inbound
/// message that opted them out, a reply to it, an SMS report keyed by their number.
async fn a_person<S: Store>(
    api: &api::Api<S, pipeline::queue::MemoryQueue>,
    number: &str,
) -> String {
    let body = json!({"to": format!("+{number}"), "channel": "SMS_API", "text": format!("code for {number}"),
        "metadata": {"customer": format!("name of {number}")}});
    // Ids and keys that do not spell the number (a caller's choice the pipeline cannot see).
    let tag = &number[number.len() - 2..];
    let (status, sent, _) = call(api, post(Some(&format!("k-{tag}")), &body.to_string())).await;
    assert_eq!(status, 202, "{sent}");
    let stop = inbound(&format!("in-{tag}"), number, &format!("STOP said {number}"));
    api.store
        .record_inbound(
            &stop,
            Some(&OptChange::OptOut {
                contact: stop.from.clone(),
                by: stop.id.clone(),
            }),
        )
        .await
        .unwrap();
    let intent = SendIntent {
        to: ContactKey::new("SMS", number),
        in_reply_to: Some(stop.id.clone()),
        text: Some(format!("reply to {number}")),
    };
    let reply = format!("rpl_in-{tag}");
    api.store
        .begin_send(&SendAttempt {
            id: &reply,
            attempt: "a1",
            now_ms: NOW_MS,
            settle_before_ms: NOW_MS - 60_000,
            takeover: None,
            intent: &intent,
        })
        .await
        .unwrap();
    api.store
        .record_status(&StatusUpdate {
            key: MessageKey::Sms {
                batch_id: format!("batch-{tag}"),
                recipient: number.into(),
            },
            status: Status::from("Delivered"),
            at_ms: NOW_MS,
            reason: None,
            channel: Some("SMS".into()),
            sinch_id: None,
        })
        .await
        .unwrap();
    sent["id"].as_str().unwrap().to_owned()
}

async fn an_erased_person_is_nowhere_and_stays_opted_out<S: Store + Dump + Clone>(store: S) {
    let api = api(store.clone());
    let sent = a_person(&api, NUMBER).await;
    a_person(&api, OTHER).await;
    let before = store.dump().await;
    assert!(before.contains(NUMBER) && before.contains(&format!("STOP said {NUMBER}")));

    let (status, answer, _) = call(
        &api,
        request("DELETE", &format!("/contacts/SMS/%2B{NUMBER}")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["complete"], true);
    assert_eq!(answer["opt_out_kept"], true);
    assert_eq!(answer["erased"]["inbound"], 1, "{answer}");
    assert_eq!(answer["erased"]["messages"], 3, "{answer}");
    assert!(answer["reference"].as_str().unwrap().starts_with("era_"));

    // The whole store: nothing names them or holds their texts; the other person is untouched.
    let after = store.dump().await;
    for gone in [
        NUMBER.to_owned(),
        format!("STOP said {NUMBER}"),
        format!("reply to {NUMBER}"),
        format!("code for {NUMBER}"),
        format!("name of {NUMBER}"),
    ] {
        assert!(!after.contains(&gone), "{gone:?} is still stored: {after}");
    }
    for kept in [
        OTHER.to_owned(),
        format!("STOP said {OTHER}"),
        format!("name of {OTHER}"),
    ] {
        assert!(after.contains(&kept), "{kept:?} was erased too");
    }
    // Their message's status is still there, for the team's accounting: it had not left, so
    // the erasure canceled it.
    let (status, view, _) = call(&api, get(&format!("/messages/{sent}"))).await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("CANCELED")),
        "{view}"
    );
    assert_eq!(answer["erased"]["canceled"], 1, "{answer}");
    assert!(
        !view.to_string().contains(NUMBER),
        "no reason or history names them: {view}"
    );
    assert!(view.get("to").is_none_or(Value::is_null), "{view}");
    // Still opted out (the hash), on any send; not listed.
    let body = json!({"to": format!("+{NUMBER}"), "channel": "SMS_API", "text": "Sale!"});
    let (status, refused, _) = call(&api, post(Some("after"), &body.to_string())).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("recipient_opted_out"))
    );
    let (_, list, _) = call(&api, get("/optouts?channel=SMS")).await;
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["identity"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [OTHER]);
    // Erasing again is harmless.
    let (status, again, _) =
        call(&api, request("DELETE", &format!("/contacts/SMS/{NUMBER}"))).await;
    assert_eq!(
        (status, &again["erased"]["inbound"]),
        (200, &json!(0)),
        "{again}"
    );
    assert_eq!(again["opt_out_kept"], true);
    // Opting back in lifts the kept opt-out.
    let (status, lifted, _) =
        call(&api, request("DELETE", &format!("/optouts/SMS/{NUMBER}"))).await;
    assert_eq!(
        (status, &lifted["changed"]),
        (200, &json!(true)),
        "{lifted}"
    );
    assert_eq!(
        call(&api, post(Some("after-2"), &body.to_string())).await.0,
        202
    );
}

async fn a_person_never_opted_out_leaves_nothing_behind<S: Store + Dump + Clone>(store: S) {
    let api = api(store.clone());
    let body = json!({"to": format!("+{NUMBER}"), "channel": "SMS_API", "text": "hello"});
    assert_eq!(call(&api, post(Some("k"), &body.to_string())).await.0, 202);
    api.store
        .record_inbound(&inbound("in-1", NUMBER, "just a question"), None)
        .await
        .unwrap();
    let (status, answer, _) =
        call(&api, request("DELETE", &format!("/contacts/SMS/{NUMBER}"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["opt_out_kept"], false);
    let after = store.dump().await;
    assert!(
        !after.contains(NUMBER) && !after.contains("just a question"),
        "{after}"
    );
    // Not opted out: a send goes.
    assert_eq!(call(&api, post(Some("k2"), &body.to_string())).await.0, 202);
}

async fn bad_erasures_are_refused_with_their_code<S: Store + Clone>(store: S) {
    let api = api(store);
    for (method, path, status, code) in [
        (
            "DELETE",
            "/contacts/FAX/46701234567",
            400,
            "invalid_channel",
        ),
        (
            "DELETE",
            "/contacts/SMS/not-a-number",
            400,
            "invalid_identity",
        ),
        (
            "GET",
            "/contacts/SMS/46701234567",
            405,
            "method_not_allowed",
        ),
        ("DELETE", "/contacts/SMS", 404, "not_found"),
        ("DELETE", "/contacts", 404, "not_found"),
    ] {
        let (got, body, _) = call(&api, request(method, path)).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {body}"
        );
    }
}

/// A send scheduled for an hour ahead, then the person erased: the message ends `CANCELED`
/// (`recipient_erased`) at once, its schedule is removed, and the answer counts it.
async fn a_scheduled_send_to_an_erased_person_is_canceled_with_its_schedule<
    S: Store + Dump + Clone,
>(
    store: S,
) {
    let api = api(store.clone());
    let body = json!({"to": format!("+{NUMBER}"), "channel": "SMS_API", "text": "see you",
        "send_at": "2025-12-01T09:00:00Z"});
    let (status, sent, _) = call(&api, post(Some("later"), &body.to_string())).await;
    assert_eq!(
        (status, sent["status"].as_str()),
        (202, Some("SCHEDULED")),
        "{sent}"
    );
    assert_eq!(api.scheduler.pending().len(), 1);
    let (status, answer, _) =
        call(&api, request("DELETE", &format!("/contacts/SMS/{NUMBER}"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["erased"]["canceled"], 1, "{answer}");
    assert!(
        api.scheduler.pending().is_empty(),
        "its schedule is removed"
    );
    let (_, view, _) = call(
        &api,
        get(&format!("/messages/{}", sent["id"].as_str().unwrap())),
    )
    .await;
    assert_eq!(view["status"], "CANCELED", "{view}");
    assert!(view.to_string().contains("recipient_erased"), "{view}");
    assert!(!store.dump().await.contains(NUMBER));
}

/// A WhatsApp send with an SMS fallback names the person on SMS too: erasing them on SMS
/// reaches it (canceled before it left, stripped) and leaves their number nowhere (DynamoDB: the
/// message was under `WHATSAPP/<number>` in the people index; its alias under `SMS/<number>`).
/// Erasing them on WhatsApp afterwards finds nothing more.
async fn a_send_that_may_fall_back_to_them_is_reached<S: Store + Dump + Clone>(store: S) {
    let api = api(store.clone());
    let body = json!({"to": format!("+{NUMBER}"), "channel": "WHATSAPP", "fallback": ["SMS"],
        "text": "hello on whatsapp", "send_at": "2025-12-01T09:00:00Z"});
    let (status, sent, _) = call(&api, post(Some("fallback"), &body.to_string())).await;
    assert_eq!(status, 202, "{sent}");
    // Someone else's message on WhatsApp only is not theirs.
    let other = json!({"to": format!("+{OTHER}"), "channel": "WHATSAPP", "fallback": ["SMS"],
        "text": "hello other", "send_at": "2025-12-01T09:00:00Z"});
    assert_eq!(
        call(&api, post(Some("other"), &other.to_string())).await.0,
        202
    );
    assert!(store.dump().await.contains(NUMBER));
    let (status, answer, _) =
        call(&api, request("DELETE", &format!("/contacts/SMS/{NUMBER}"))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["erased"]["canceled"], 1, "{answer}");
    let (_, view, _) = call(
        &api,
        get(&format!("/messages/{}", sent["id"].as_str().unwrap())),
    )
    .await;
    assert_eq!(view["status"], "CANCELED", "{view}");
    let after = store.dump().await;
    assert!(
        !after.contains(NUMBER) && !after.contains("hello on whatsapp"),
        "{after}"
    );
    assert!(after.contains(OTHER), "the other person's message stays");
    let (status, answer, _) = call(
        &api,
        request("DELETE", &format!("/contacts/WHATSAPP/{NUMBER}")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["erased"]["canceled"], 0, "{answer}");
}

testkit::for_both_stores!(
    a_send_that_may_fall_back_to_them_is_reached,
    a_scheduled_send_to_an_erased_person_is_canceled_with_its_schedule,
    an_erased_person_is_nowhere_and_stays_opted_out,
    a_person_never_opted_out_leaves_nothing_behind,
    bad_erasures_are_refused_with_their_code,
);

/// The events made from the erasure on: `Contact Erased` and nothing that names the person.
#[tokio::test]
async fn the_events_after_an_erasure_name_no_one() {
    let (store, mut changes) = MemoryStore::with_change_feed();
    let api = api(store);
    a_person(&api, NUMBER).await;
    while changes.try_recv().is_ok() {}
    let (status, _, _) = call(&api, request("DELETE", &format!("/contacts/SMS/{NUMBER}"))).await;
    assert_eq!(status, 200);
    let mut events = Vec::new();
    while let Ok(change) = changes.try_recv() {
        events.extend(pipeline::events::derive(&change));
    }
    let text = serde_json::to_string(
        &events
            .iter()
            .map(|e| (&e.detail_type, &e.detail))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!text.contains(NUMBER), "{text}");
    let erased: Vec<&Value> = events
        .iter()
        .filter(|e| e.detail_type == "Contact Erased")
        .map(|e| &e.detail)
        .collect();
    assert_eq!(erased.len(), 1, "{text}");
    assert_eq!(erased[0]["messages"], 3);
    assert_eq!(erased[0]["opt_out_kept"], true);
}
