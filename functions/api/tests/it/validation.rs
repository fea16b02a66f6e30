//! Every rule of `POST /messages`, and every bad input: answered with its status and code,
//! nothing stored, nothing queued, nothing panics.

use super::common;

use common::*;
use pipeline::jobs::{OutboundJob, Route};
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, InboundRecord, MessageKey, OptChange};
use serde_json::json;

/// (what, body, status, code)
fn refusals() -> Vec<(&'static str, String, u16, &'static str)> {
    let long = "x".repeat(4097);
    let sms_long = "x".repeat(2001);
    let choices: Vec<_> = (0..11)
        .map(|i| json!({"text_message": {"text": i.to_string()}}))
        .collect();
    let cards: Vec<_> = (0..11).map(|_| json!({"title": "t"})).collect();
    vec![
        ("not JSON", "{\"to\":".into(), 400, "malformed_json"),
        ("not an object", "[1,2]".into(), 400, "invalid_request"),
        ("trailing garbage", r#"{"to":"+46701234567","channel":"SMS","text":"hi"} x"#.into(), 400, "malformed_json"),
        ("to missing", r#"{"channel":"SMS","text":"hi"}"#.into(), 400, "invalid_request"),
        ("to of the wrong type", r#"{"to":46701234567,"channel":"SMS","text":"hi"}"#.into(), 400, "invalid_request"),
        ("an unknown field", r#"{"to":"+46701234567","channel":"SMS","text":"hi","colour":1}"#.into(), 400, "invalid_request"),
        ("a priority of the wrong type", r#"{"to":"+46701234567","channel":"SMS","text":"hi","priority":1}"#.into(), 400, "invalid_request"),
        ("an unknown priority", r#"{"to":"+46701234567","channel":"SMS","text":"hi","priority":"urgent"}"#.into(), 400, "invalid_request"),
        ("ttl of the wrong type", r#"{"to":"+46701234567","channel":"SMS","text":"hi","ttl":"1h"}"#.into(), 400, "invalid_request"),
        ("unknown channel", r#"{"to":"+46701234567","channel":"PIGEON","text":"hi"}"#.into(), 400, "unknown_channel"),
        ("not E.164", r#"{"to":"0701234567","channel":"WHATSAPP","text":"hi"}"#.into(), 400, "invalid_recipient"),
        ("E.164 too short", r#"{"to":"+4612","channel":"SMS_API","text":"hi"}"#.into(), 400, "invalid_recipient"),
        ("no content", r#"{"to":"+46701234567","channel":"SMS"}"#.into(), 400, "content_missing"),
        ("two contents", r#"{"to":"+46701234567","channel":"SMS","text":"hi","media":{"url":"https://x/y.png"}}"#.into(), 400, "content_ambiguous"),
        ("empty text", r#"{"to":"+46701234567","channel":"SMS","text":"  "}"#.into(), 400, "text_empty"),
        ("WhatsApp text over 4096", json!({"to":"+46701234567","channel":"WHATSAPP","text":long}).to_string(), 422, "text_too_long"),
        ("SMS text over 2000", json!({"to":"+46701234567","channel":"SMS_API","text":sms_long}).to_string(), 422, "text_too_long"),
        ("a fallback to SMS limits the text to 2000", json!({"to":"+46701234567","channel":"WHATSAPP","fallback":["SMS"],"text":sms_long}).to_string(), 422, "text_too_long"),
        ("media not a URL", r#"{"to":"+46701234567","channel":"WHATSAPP","media":{"url":"ftp://x"}}"#.into(), 400, "invalid_media_url"),
        ("template with neither name nor id", r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"language":"en_US"}}"#.into(), 400, "invalid_template"),
        ("WhatsApp template without language", r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"name":"order_shipped"}}"#.into(), 400, "invalid_template"),
        ("WhatsApp template language with a dash", r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"name":"order_shipped","language":"en-US"}}"#.into(), 400, "invalid_template"),
        ("bare WhatsApp parameter key", r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"name":"o","language":"en_US","parameters":{"1":"A-1"}}}"#.into(), 400, "invalid_template_parameter"),
        ("button parameter without its index", r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"name":"o","language":"en_US","parameters":{"button[0]url[0]text":"x"}}}"#.into(), 400, "invalid_template_parameter"),
        ("omni template without version", r#"{"to":"+46701234567","channel":"SMS","template":{"id":"01H"}}"#.into(), 400, "invalid_template"),
        ("a WhatsApp template on SMS", r#"{"to":"+46701234567","channel":"SMS","template":{"name":"o","language":"en_US"}}"#.into(), 422, "template_channel_unsupported"),
        ("a message without a kind", r#"{"to":"+46701234567","channel":"WHATSAPP","message":{"agent":{"display_name":"A"}}}"#.into(), 400, "unknown_message_kind"),
        ("a key that is no kind", r#"{"to":"+46701234567","channel":"WHATSAPP","message":{"hologram":{}}}"#.into(), 400, "unknown_message_kind"),
        ("a kind that is not an object", r#"{"to":"+46701234567","channel":"WHATSAPP","message":{"card_message":[]}}"#.into(), 400, "invalid_message"),
        ("two message kinds", r#"{"to":"+46701234567","channel":"WHATSAPP","message":{"choice_message":{},"card_message":{}}}"#.into(), 400, "unknown_message_kind"),
        ("too many choices", json!({"to":"+46701234567","channel":"WHATSAPP","message":{"choice_message":{"text_message":{"text":"pick"},"choices":choices}}}).to_string(), 422, "too_many_choices"),
        ("too many cards", json!({"to":"+46701234567","channel":"WHATSAPP","message":{"carousel_message":{"cards":cards}}}).to_string(), 422, "too_many_choices"),
        ("metadata not an object", r#"{"to":"+46701234567","channel":"SMS","text":"hi","metadata":[1]}"#.into(), 400, "invalid_metadata"),
        ("metadata too large", json!({"to":"+46701234567","channel":"SMS","text":"hi","metadata":{"x":"y".repeat(1100)}}).to_string(), 422, "metadata_too_large"),
        ("ttl too short", r#"{"to":"+46701234567","channel":"SMS","text":"hi","ttl":2}"#.into(), 422, "ttl_out_of_range"),
        ("ttl over 3 days on the SMS API", r#"{"to":"+46701234567","channel":"SMS_API","text":"hi","ttl":300000}"#.into(), 422, "ttl_out_of_range"),
        ("fallback on the SMS API", r#"{"to":"+46701234567","channel":"SMS_API","text":"hi","fallback":["SMS"]}"#.into(), 400, "invalid_fallback"),
        ("fallback repeating the channel", r#"{"to":"+46701234567","channel":"WHATSAPP","text":"hi","fallback":["WHATSAPP"]}"#.into(), 400, "invalid_fallback"),
        ("fallback to an unknown channel", r#"{"to":"+46701234567","channel":"WHATSAPP","text":"hi","fallback":["FAX"]}"#.into(), 400, "invalid_fallback"),
        ("a sender too long", r#"{"to":"+46701234567","channel":"SMS_API","text":"hi","sms_sender":"AVeryLongSenderName"}"#.into(), 400, "invalid_sender"),
        ("media on the SMS API", r#"{"to":"+46701234567","channel":"SMS_API","media":{"url":"https://x/y.png"}}"#.into(), 422, "content_unsupported_on_channel"),
    ]
}

#[tokio::test]
async fn every_bad_input_is_refused_with_its_code_and_nothing_is_queued() {
    let api = memory_api();
    for (what, body, status, code) in refusals() {
        let (got, answer, _) =
            call(&api, post(Some(&ulid::Ulid::generate().to_string()), &body)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: a message");
    }
    assert!(api.lanes.transactional.is_empty(), "nothing queued");
    assert!(api.store.messages().is_empty(), "nothing stored");
}

#[tokio::test]
async fn refusals_name_the_field() {
    let api = memory_api();
    let cases = [
        (r#"{"to":46701234567,"channel":"SMS","text":"hi"}"#, "to"),
        (
            r#"{"to":"+46701234567","channel":"WHATSAPP","media":{"url":"https://x/y","caption":7}}"#,
            "media.caption",
        ),
        (r#"{"to":"0701","channel":"WHATSAPP","text":"hi"}"#, "to:"),
        (
            r#"{"to":"+46701234567","channel":"WHATSAPP","text":"hi","fallback":["SMS","FAX"]}"#,
            "fallback[1]",
        ),
        (
            r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"name":"o","language":"en_US","parameters":{"1":"x"}}}"#,
            "template.parameters",
        ),
    ];
    for (body, field) in cases {
        let (_, answer, _) = call(&api, post(Some("k"), body)).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{field} in {message:?}");
    }
}

#[tokio::test]
async fn requests_without_a_proper_key_path_or_method() {
    let api = memory_api();
    let body = r#"{"to":"+46701234567","channel":"SMS","text":"hi"}"#;
    let (status, answer, _) = call(&api, post(None, body)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("idempotency_key_missing"))
    );
    let (status, answer, _) = call(&api, post(Some(&"k".repeat(256)), body)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("idempotency_key_invalid"))
    );
    let big = format!(
        r#"{{"to":"+46701234567","channel":"SMS","text":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (status, answer, _) = call(&api, post(Some("k"), &big)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let mut form = post(Some("k"), body);
    form.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(call(&api, form).await.0, 415);
    assert_eq!(call(&api, get("/messages/msg_nope")).await.0, 404);
    assert_eq!(call(&api, get("/messages/a/b")).await.0, 404);
    assert_eq!(call(&api, get("/elsewhere")).await.0, 404);
    assert_eq!(call(&api, get("/messages")).await.0, 405);
    assert!(api.lanes.transactional.is_empty());
}

#[tokio::test]
async fn channels_without_credentials_are_refused() {
    let mut api = memory_api();
    api.config.channels.conversation_app = None;
    api.config.channels.sms_api = false;
    for channel in ["WHATSAPP", "SMS_API"] {
        let body = json!({"to": "+46701234567", "channel": channel, "template": {"id": "01H", "version": "latest"}});
        let body = if channel == "SMS_API" {
            json!({"to": "+46701234567", "channel": channel, "text": "hi"})
        } else {
            body
        };
        let (status, answer, _) = call(&api, post(Some(channel), &body.to_string())).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("channel_not_configured")),
            "{channel}"
        );
    }
    assert!(api.lanes.transactional.is_empty());
}

#[tokio::test]
async fn whatsapp_free_form_needs_the_window_and_opt_outs_hold() {
    let api = memory_api();
    let text = r#"{"to":"+46701234567","channel":"WHATSAPP","text":"Your order shipped"}"#;
    // Never wrote.
    let (status, answer, _) = call(&api, post(Some("a"), text)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("whatsapp_window_closed"))
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("template")
    );
    // Wrote 25 hours ago: still closed.
    wrote(
        &api.store,
        "WHATSAPP",
        "46701234567",
        NOW_MS - 25 * 3600 * 1000,
    )
    .await;
    assert_eq!(
        call(&api, post(Some("b"), text)).await.1["error"]["code"],
        "whatsapp_window_closed"
    );
    // A template is fine outside the window.
    let template = r#"{"to":"+46701234567","channel":"WHATSAPP","template":{"name":"order_shipped","language":"en_US","parameters":{"body[1]text":"A-1042","button[0]url[1]text":"A-1042"}}}"#;
    assert_eq!(call(&api, post(Some("c"), template)).await.0, 202);
    // Wrote an hour ago: open.
    wrote(&api.store, "WHATSAPP", "46701234567", NOW_MS - 3600 * 1000).await;
    assert_eq!(call(&api, post(Some("d"), text)).await.0, 202);
    // A fallback leaves it to Sinch: no window check.
    let other = r#"{"to":"+46709999999","channel":"WHATSAPP","fallback":["SMS"],"text":"hi"}"#;
    assert_eq!(call(&api, post(Some("e"), other)).await.0, 202);

    // STOP on SMS: refused on SMS, on the SMS API, and as a fallback.
    let contact = ContactKey::new("SMS", "46705555555");
    api.store
        .record_inbound(
            &InboundRecord {
                text_digest: None,
                id: "01STOP".into(),
                from: contact.clone(),
                to: "46700000001".into(),
                kind: "mo_text".into(),
                text: Some("STOP".into()),
                media: Vec::new(),
                contact_id: None,
                conversation_id: None,
                received_at_ms: NOW_MS - 1000,
            },
            Some(&OptChange::OptOut {
                contact,
                by: "01STOP".into(),
            }),
        )
        .await
        .unwrap();
    for (key, body) in [
        ("f", r#"{"to":"+46705555555","channel":"SMS","text":"hi"}"#),
        (
            "g",
            r#"{"to":"+46705555555","channel":"SMS_API","text":"hi"}"#,
        ),
        (
            "h",
            r#"{"to":"+46705555555","channel":"RCS","fallback":["SMS"],"text":"hi"}"#,
        ),
    ] {
        let (status, answer, _) = call(&api, post(Some(key), body)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("recipient_opted_out")),
            "{body}"
        );
    }
    assert_eq!(
        api.lanes.transactional.len(),
        3,
        "only the three accepted were queued"
    );
}

#[tokio::test]
async fn an_accepted_send_is_stored_queued_and_readable() {
    let api = memory_api();
    wrote(&api.store, "WHATSAPP", "46701234567", NOW_MS - 1000).await;
    let body = r#"{"to":"+46701234567","channel":"WHATSAPP","text":"Your order shipped","fallback":["SMS"],"metadata":{"order":"A-1042"},"ttl":3600,"sms_sender":"Acme"}"#;
    let response = api::handle(&api, post(Some("k1"), body)).await;
    assert_eq!(response.status().as_u16(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let lambda_http::Body::Text(text) = response.body() else {
        panic!()
    };
    let id = serde_json::from_str::<serde_json::Value>(text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(location, format!("/messages/{id}"));

    // Queued as a send job, with everything the worker needs.
    let queued = api.lanes.transactional.take(10);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].envelope.job.as_deref(), Some("send"));
    let job: OutboundJob = serde_json::from_str(queued[0].envelope.queued_body()).unwrap();
    assert_eq!(job.id, id);
    let Route::Conversation {
        app_id,
        channel,
        fallback,
        channel_properties,
        ttl_secs,
        ..
    } = job.route
    else {
        panic!()
    };
    assert_eq!(
        (app_id.as_str(), channel.as_str(), fallback, ttl_secs),
        ("app-1", "WHATSAPP", vec!["SMS".to_owned()], Some(3600))
    );
    assert_eq!(channel_properties["SMS_SENDER"], "Acme");

    // Readable at once: ACCEPTED, with the metadata.
    let (status, view, _) = call(&api, get(&location)).await;
    assert_eq!(status, 200);
    assert_eq!(view["status"], "ACCEPTED");
    assert_eq!(view["channel"], "WHATSAPP");
    assert_eq!(view["metadata"], json!({"order": "A-1042"}));
    assert_eq!(view["history"][0]["status"], "ACCEPTED");
    assert!(
        view["history"][0]["at"]
            .as_str()
            .unwrap()
            .starts_with("2025-12-01T")
    );
    assert!(
        api.store
            .message_state(&MessageKey::Ours(id))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_message_is_read_only_by_its_caller() {
    let api = memory_api();
    let alice = "arn:aws:iam::123456789012:user/alice";
    let eve = "arn:aws:iam::123456789012:user/eve";
    let body = r#"{"to":"+46701234567","channel":"SMS_API","text":"Your code is 1234"}"#;
    let (status, answer, _) = call(&api, signed_by(post(Some("k"), body), alice, "$default")).await;
    assert_eq!(status, 202);
    let path = format!("/messages/{}", answer["id"].as_str().unwrap());
    assert_eq!(
        call(&api, signed_by(get(&path), alice, "$default")).await.0,
        200
    );
    let (status, answer, _) = call(&api, signed_by(get(&path), eve, "$default")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found")),
        "another caller's message does not exist for them"
    );
    // A reply of the pipeline belongs to the deployment: any caller reads it.
    let intent = pipeline::store::SendIntent {
        to: ContactKey::new("WHATSAPP", "46701234567"),
        in_reply_to: Some("01IN".into()),
        text: Some("hi".into()),
    };
    api.store
        .begin_send(&pipeline::store::SendAttempt {
            id: "rpl_01IN",
            attempt: "A1",
            now_ms: NOW_MS,
            settle_before_ms: NOW_MS - 60_000,
            takeover: None,
            intent: &intent,
        })
        .await
        .unwrap();
    api.store
        .finish_send(&pipeline::store::SendFinish {
            id: "rpl_01IN",
            attempt: Some("A1"),
            result: &pipeline::store::SendResult::Accepted { sinch_id: None },
            at_ms: NOW_MS,
        })
        .await
        .unwrap();
    assert_eq!(
        call(&api, signed_by(get("/messages/rpl_01IN"), eve, "$default"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn routes_match_exactly_and_ids_no_message_can_have_are_404() {
    let api = memory_api();
    let long = "x".repeat(2100);
    for path in [
        "/prefix/messages".to_owned(),
        "/messagesx".to_owned(),
        "/v1/messages/abc".to_owned(),
        "/messages/a/b".to_owned(),
        format!("/messages/{long}"),
        "/messages/%C3%A9t%C3%A9".to_owned(),
        "/messages/msg_%00".to_owned(),
        "/messages/é".to_owned(),
    ] {
        let request = lambda_http::http::Request::builder()
            .method("GET")
            .uri(format!(
                "https://api.example.com{}",
                path.replace('é', "%C3%A9")
            ))
            .body(lambda_http::Body::Empty)
            .unwrap();
        let (status, answer, _) = call(&api, request).await;
        assert_eq!(status, 404, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found", "{path}");
    }
    // A named stage in front of the path is the stage's, not a route.
    let body = r#"{"to":"+46701234567","channel":"SMS_API","text":"hi"}"#;
    let staged =
        |request: lambda_http::Request| signed_by(request, "arn:aws:iam::1:user/a", "prod");
    let mut request = post(Some("staged"), body);
    *request.uri_mut() = "https://api.example.com/prod/messages".parse().unwrap();
    assert_eq!(call(&api, staged(request)).await.0, 202);
    let mut request = post(Some("unstaged"), body);
    *request.uri_mut() = "https://api.example.com/test/messages".parse().unwrap();
    assert_eq!(
        call(&api, staged(request)).await.0,
        404,
        "another stage's name"
    );
}

/// The store down: 503 with our code and a message of ours, nothing of the SDK's.
#[tokio::test]
async fn an_unavailable_store_is_503_without_its_details() {
    let sdk = testkit::sdk_config_for(&testkit::refused_endpoint()).await;
    let store = pipeline::store::DynamoStore::new(
        pipeline::store::dynamodb_client(&sdk),
        "arn:aws:dynamodb:eu-west-1:123456789012:table/sinch-hooks-secret-table",
    );
    let api = api::Api {
        store,
        lanes: pipeline::schedule::Lanes {
            transactional: pipeline::queue::MemoryQueue::new("outbound"),
            bulk: pipeline::queue::MemoryQueue::new("bulk"),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        config: config(),
        clock: pipeline::clock::Clock::Fixed(now()),
    };
    let body = r#"{"to":"+46701234567","channel":"SMS_API","text":"hi"}"#;
    for request in [post(Some("k"), body), get("/messages/msg_01")] {
        let (status, answer, _) = call(&api, request).await;
        assert_eq!(status, 503);
        assert_eq!(answer["error"]["code"], "unavailable");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        for leak in ["arn:", "127.0.0.1", "dispatch", "secret-table", "Error"] {
            assert!(!message.contains(leak), "{leak} in {message}");
        }
    }
}
