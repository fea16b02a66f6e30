//! Handlers against a fake Sinch (wiremock) and the in-memory store: replies go back where the
//! message came from, opt-outs hold, delivery status only moves forward.

use std::time::Duration;

use pipeline::clock::Clock;
use pipeline::handlers::{Handled, ReplyOutcome, Services, handle};
use pipeline::reply::ReplyPolicy;
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, MemoryStore, MessageKey, SinchId, StatusChange};
use serde_json::{Value, json};
use sinch::callback::parse;
use sinch::client::{ClientConfig, ConversationCredentials, SinchClient, SmsCredentials, Urls};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SEND: &str = "/v1/projects/project-1/messages:send";
const BATCHES: &str = "/xms/v1/plan-1/batches";

async fn fake_sinch() -> MockServer {
    let server = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01OUT"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BATCHES))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "01BATCH"})))
        .mount(&server)
        .await;
    server
}

fn services(server: &MockServer, policy: ReplyPolicy) -> Services<MemoryStore> {
    let mut config = ClientConfig::new(Urls::all_at(&server.uri()));
    config.conversation = Some(ConversationCredentials {
        project_id: "project-1".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    config.sms = Some(SmsCredentials {
        service_plan_id: "plan-1".into(),
        api_token: "tok".into(),
    });
    Services {
        privacy: Default::default(),
        store: MemoryStore::new(),
        sinch: SinchClient::new(config).unwrap(),
        hook: policy,
        app_id: Some("fallback-app".into()),
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        send_rules: pipeline::send_rules::SendRules::default(),
        ledger: pipeline::ledger::Ledger::default(),
        pacing: Default::default(),
        clock: Clock::System,
    }
}

/// An invocation's deadline, wide enough for a loaded two-core machine talking to moto
/// (tests of running out of time set their own).
fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn conversation_inbound(
    id: &str,
    channel: &str,
    identity: &str,
    text: &str,
    dispatch: bool,
) -> Vec<u8> {
    let (contact, conversation, mode, app) = if dispatch {
        ("", "", "DISPATCH", "")
    } else {
        ("contact-1", "conversation-1", "CONVERSATION", "app-1")
    };
    json!({
        "app_id": app, "project_id": "project-1", "accepted_time": testkit::now_rfc3339(),
        "message": {
            "id": id, "direction": "TO_APP",
            "contact_message": {"text_message": {"text": text}},
            "channel_identity": {"channel": channel, "identity": identity, "app_id": "app-1"},
            "contact_id": contact, "conversation_id": conversation, "processing_mode": mode
        }
    })
    .to_string()
    .into_bytes()
}

fn sms_inbound(id: &str, from: &str, to: &str, text: &str) -> Vec<u8> {
    json!({"type": "mo_text", "id": id, "from": from, "to": to, "body": text, "received_at": testkit::now_rfc3339()})
        .to_string()
        .into_bytes()
}

async fn run(services: &Services<MemoryStore>, body: &[u8]) -> Handled {
    let callback = parse(body).expect("a valid callback");
    handle(services, &callback, deadline())
        .await
        .expect("handled")
}

async fn sent_bodies(server: &MockServer, wanted: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == wanted)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn help_on_whatsapp_is_answered_on_whatsapp() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    let handled = run(
        &services,
        &conversation_inbound("01HELP", "WHATSAPP", "46701234567", " help ", false),
    )
    .await;
    let Handled::Inbound {
        reply: ReplyOutcome::Sent { id, sinch_id, .. },
        ..
    } = handled
    else {
        panic!("{handled:?}")
    };
    assert_eq!(id, "rpl_01HELP");
    assert_eq!(sinch_id, Some(SinchId::Message("01OUT".into())));
    let sent = sent_bodies(&server, SEND).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["app_id"], "app-1");
    assert_eq!(
        sent[0]["recipient"],
        json!({"identified_by": {"channel_identities": [{"channel": "WHATSAPP", "identity": "46701234567"}]}})
    );
    assert_eq!(sent[0]["channel_priority_order"], json!(["WHATSAPP"]));
    // Our reference goes along, so every report names the reply.
    assert_eq!(sent[0]["correlation_id"], "sinch-hooks:rpl_01HELP");
    assert_eq!(sent[0]["message_metadata"], "sinch-hooks:rpl_01HELP");
    assert!(
        sent[0]["message"]["text_message"]["text"]
            .as_str()
            .unwrap()
            .contains("STOP")
    );
    // The reply is remembered, so its delivery reports attach to the message it answered.
    let state = services
        .store
        .message_state(&MessageKey::Ours("rpl_01HELP".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.in_reply_to.as_deref(), Some("01HELP"));
    assert_eq!(state.status, "SENT");
    assert_eq!(state.sinch_id, Some(SinchId::Message("01OUT".into())));
    assert_eq!(services.store.inbound()[0].text.as_deref(), Some(" help "));
}

#[tokio::test]
async fn dispatch_mode_replies_by_channel_identity() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    run(
        &services,
        &conversation_inbound("01D", "RCS", "46701234567", "HELP", true),
    )
    .await;
    let sent = sent_bodies(&server, SEND).await;
    assert_eq!(sent.len(), 1);
    // The envelope's app id is empty in this sample; the channel identity names the app.
    assert_eq!(sent[0]["app_id"], "app-1");
    assert_eq!(
        sent[0]["recipient"]["identified_by"]["channel_identities"][0],
        json!({"channel": "RCS", "identity": "46701234567"})
    );
    assert!(sent[0]["recipient"].get("contact_id").is_none());
}

#[tokio::test]
async fn an_sms_is_answered_from_the_number_that_received_it() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    run(
        &services,
        &sms_inbound("01MO", "+46701234567", "46700000001", "HELP"),
    )
    .await;
    let sent = sent_bodies(&server, BATCHES).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["from"], "46700000001");
    assert_eq!(sent[0]["to"], json!(["+46701234567"]));
    assert_eq!(sent[0]["delivery_report"], "per_recipient");
    assert_eq!(sent[0]["client_reference"], "sinch-hooks:rpl_01MO");
    assert!(sent_bodies(&server, SEND).await.is_empty());
    // Its per-recipient reports carry the reference back, and land on the reply.
    let key = MessageKey::Ours("rpl_01MO".into());
    let state = services.store.message_state(&key).await.unwrap().unwrap();
    assert_eq!(state.in_reply_to.as_deref(), Some("01MO"));
    assert_eq!(state.sinch_id, Some(SinchId::Batch("01BATCH".into())));
    let report = json!({"type": "recipient_delivery_report_sms", "batch_id": "01BATCH",
        "recipient": "+46701234567", "code": 0, "status": "Delivered",
        "at": "2026-11-23T04:00:00Z", "client_reference": "sinch-hooks:rpl_01MO"});
    run(&services, report.to_string().as_bytes()).await;
    let state = services.store.message_state(&key).await.unwrap().unwrap();
    assert_eq!(state.status, "Delivered");
}

#[tokio::test]
async fn stop_then_a_normal_message_gets_no_reply() {
    let server = fake_sinch().await;
    let policy = ReplyPolicy::from_json(
        r#"{"rules":[{"keywords":["STOP"],"action":"opt_out","reply":"Unsubscribed."},{"keywords":["START"],"action":"opt_in","reply":"Welcome back."}],"default_reply":"Thanks!"}"#,
    )
    .unwrap();
    let services = services(&server, policy);
    let whatsapp =
        |id: &str, text: &str| conversation_inbound(id, "WHATSAPP", "46701234567", text, false);

    let first = run(&services, &whatsapp("01A", "hello")).await;
    assert!(
        matches!(first, Handled::Inbound { reply: ReplyOutcome::Sent { ref text, .. }, .. } if text == "Thanks!")
    );
    let stop = run(&services, &whatsapp("01B", "STOP")).await;
    assert!(
        matches!(stop, Handled::Inbound { reply: ReplyOutcome::Sent { ref text, .. }, .. } if text == "Unsubscribed.")
    );
    assert_eq!(
        services.store.opted_out(),
        [ContactKey::new("WHATSAPP", "46701234567")]
    );
    for (id, text) in [("01C", "hello again"), ("01D", "HELP"), ("01E", "STOP")] {
        let handled = run(&services, &whatsapp(id, text)).await;
        assert_eq!(
            handled,
            Handled::Inbound {
                id: id.into(),
                reply: ReplyOutcome::Suppressed
            },
            "{text}"
        );
    }
    assert_eq!(
        sent_bodies(&server, SEND).await.len(),
        2,
        "nothing sent while opted out"
    );

    // Opting out on WhatsApp does not silence the same number on SMS.
    run(
        &services,
        &sms_inbound("01SMS", "46701234567", "46700000001", "hi"),
    )
    .await;
    assert_eq!(sent_bodies(&server, BATCHES).await.len(), 1);

    let start = run(&services, &whatsapp("01F", "start")).await;
    assert!(
        matches!(start, Handled::Inbound { reply: ReplyOutcome::Sent { ref text, .. }, .. } if text == "Welcome back.")
    );
    assert!(services.store.opted_out().is_empty());
}

#[tokio::test]
async fn a_retried_stop_still_sends_its_confirmation() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    let stop = conversation_inbound("01STOP", "WHATSAPP", "46701234567", "STOP", false);
    // As if the first attempt opted out but its reply failed and the record was retried.
    run(&services, &stop).await;
    let again = run(&services, &stop).await;
    assert!(
        matches!(
            again,
            Handled::Inbound {
                reply: ReplyOutcome::Sent { .. },
                ..
            }
        ),
        "{again:?}"
    );
}

#[tokio::test]
async fn sms_stop_counts_for_conversation_sms_too() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    run(
        &services,
        &sms_inbound("01STOP", "+46701234567", "46700000001", "STOP"),
    )
    .await;
    let handled = run(
        &services,
        &conversation_inbound("01X", "SMS", "46701234567", "HELP", false),
    )
    .await;
    assert!(matches!(
        handled,
        Handled::Inbound {
            reply: ReplyOutcome::Suppressed,
            ..
        }
    ));
}

#[tokio::test]
async fn a_missing_api_leaves_the_message_stored_and_unanswered() {
    let server = fake_sinch().await;
    let mut services = services(&server, ReplyPolicy::default());
    let mut config = services.sinch.config().clone();
    config.sms = None;
    services.sinch = SinchClient::new(config).unwrap();
    let handled = run(
        &services,
        &sms_inbound("01MO", "46701234567", "46700000001", "HELP"),
    )
    .await;
    assert_eq!(
        handled,
        Handled::Inbound {
            id: "01MO".into(),
            reply: ReplyOutcome::NotConfigured { api: "SMS" }
        }
    );
    assert_eq!(services.store.inbound().len(), 1);
}

fn delivery(message_id: &str, status: &str, at: &str) -> Vec<u8> {
    json!({
        "app_id": "app-1", "accepted_time": at, "event_time": at,
        "message_delivery_report": {
            "message_id": message_id, "status": status,
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567"},
            "conversation_id": "cv", "contact_id": "c"
        }
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn delivery_reports_in_every_order_end_at_the_furthest_status() {
    let server = fake_sinch().await;
    let reports = [
        ("QUEUED_ON_CHANNEL", "2026-11-23T04:00:01Z"),
        ("DELIVERED", "2026-11-23T04:00:02Z"),
        ("READ", "2026-11-23T04:00:03Z"),
    ];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let services = services(&server, ReplyPolicy::default());
        for index in order {
            let (status, at) = reports[index];
            run(&services, &delivery("01MSG", status, at)).await;
        }
        let state = services
            .store
            .message_state(&MessageKey::Conversation("01MSG".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.status, "READ", "{order:?}");
        assert_eq!(state.history.len(), 3, "{order:?}");
        assert_eq!(state.channel.as_deref(), Some("WHATSAPP"));
    }
}

#[tokio::test]
async fn failed_is_final() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    run(
        &services,
        &delivery("01F", "FAILED", "2026-11-23T04:00:01Z"),
    )
    .await;
    let late = run(
        &services,
        &delivery("01F", "DELIVERED", "2026-11-23T04:00:02Z"),
    )
    .await;
    assert_eq!(
        late,
        Handled::Status(vec![(
            MessageKey::Conversation("01F".into()),
            StatusChange::Kept {
                status: "FAILED".into()
            }
        )])
    );
}

#[tokio::test]
async fn sms_recipient_reports_move_forward_too() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    let report = |status: &str, code: i64| {
        json!({"type": "recipient_delivery_report_sms", "batch_id": "01B", "recipient": "+46701234567", "code": code, "status": status, "at": "2026-11-23T04:00:00Z"})
            .to_string()
            .into_bytes()
    };
    run(&services, &report("Delivered", 0)).await;
    run(&services, &report("Dispatched", 401)).await;
    let key = MessageKey::Sms {
        batch_id: "01B".into(),
        recipient: "46701234567".into(),
    };
    let state = services.store.message_state(&key).await.unwrap().unwrap();
    assert_eq!(state.status, "Delivered");
    assert_eq!(state.history.len(), 2);
    assert_eq!(
        state.history[1].reason.as_ref().map(|r| r.code.as_str()),
        Some("401")
    );

    // A full batch report applies to each recipient it lists.
    let batch = json!({"type": "delivery_report_sms", "batch_id": "01C", "statuses": [
        {"code": 0, "count": 2, "recipients": ["111", "+222"], "status": "Delivered"},
        {"code": 402, "count": 1, "recipients": ["333"], "status": "Failed"}
    ]});
    let handled = run(&services, batch.to_string().as_bytes()).await;
    let Handled::Status(changes) = handled else {
        panic!()
    };
    assert_eq!(changes.len(), 3);
    let failed = MessageKey::Sms {
        batch_id: "01C".into(),
        recipient: "333".into(),
    };
    assert_eq!(
        services
            .store
            .message_state(&failed)
            .await
            .unwrap()
            .unwrap()
            .status,
        "Failed"
    );
}

#[tokio::test]
async fn other_kinds_are_acknowledged_without_effects() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    let contact = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sinch/fixtures/conversation/contact_create.json"
    ))
    .unwrap();
    assert_eq!(
        run(&services, &contact).await,
        Handled::Ignored {
            kind: "conversation.contact_create_notification".into()
        }
    );
    assert_eq!(
        run(&services, br#"{"app_id":"a","comment_event":{}}"#).await,
        Handled::Unknown {
            kind: "conversation.comment_event".into()
        }
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(services.store.messages().is_empty() && services.store.inbound().is_empty());
}

/// A hook that answers everything, whoever it is: the rules at the moment of sending still hold.
#[derive(Debug, Clone)]
struct AnswersEveryone;

impl pipeline::hook::Hook for AnswersEveryone {
    async fn on_inbound(
        &self,
        _message: pipeline::hook::Inbound<'_>,
    ) -> Result<pipeline::hook::Decision, pipeline::hook::HookError> {
        Ok(pipeline::hook::Decision {
            action: pipeline::hook::Action::None,
            reply: Some("Thanks!".into()),
        })
    }
}

#[tokio::test]
async fn a_reply_to_someone_opted_out_is_withheld_when_it_would_leave() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    run(
        &services,
        &conversation_inbound("01STOP", "WHATSAPP", "46701234567", "STOP", false),
    )
    .await;
    assert_eq!(
        sent_bodies(&server, SEND).await.len(),
        1,
        "the confirmation"
    );
    let eager = Services {
        privacy: Default::default(),
        hook: AnswersEveryone,
        store: services.store.clone(),
        sinch: services.sinch.clone(),
        app_id: services.app_id.clone(),
        idempotency_ttl: services.idempotency_ttl,
        send_rules: services.send_rules,
        ledger: services.ledger.clone(),
        pacing: Default::default(),
        clock: services.clock,
    };
    let callback = parse(&conversation_inbound(
        "01LATER",
        "WHATSAPP",
        "46701234567",
        "hello",
        false,
    ))
    .unwrap();
    let handled = handle(&eager, &callback, deadline()).await.unwrap();
    assert!(
        matches!(&handled, Handled::Inbound { reply: ReplyOutcome::Withheld { reason, .. }, .. }
            if reason.starts_with("recipient_opted_out")),
        "{handled:?}"
    );
    assert_eq!(
        sent_bodies(&server, SEND).await.len(),
        1,
        "nothing more sent"
    );
    let reply = services
        .store
        .message_state(&MessageKey::Ours("rpl_01LATER".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            reply.status.as_str(),
            reply.reason().map(|r| r.code.as_str())
        ),
        ("FAILED", Some("recipient_opted_out"))
    );
}

#[tokio::test]
async fn a_reply_handled_after_the_whatsapp_window_closed_is_withheld() {
    let server = fake_sinch().await;
    let services = services(&server, ReplyPolicy::default());
    // Delivered to us a day and more after the user wrote (a redrive, a long outage).
    let written = time::OffsetDateTime::now_utc() - time::Duration::hours(25);
    let late = json!({
        "app_id": "app-1", "project_id": "project-1",
        "accepted_time": written.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "message": {
            "id": "01LATE", "direction": "TO_APP",
            "contact_message": {"text_message": {"text": "HELP"}},
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567", "app_id": "app-1"},
            "contact_id": "c", "conversation_id": "cv", "processing_mode": "CONVERSATION"
        }
    })
    .to_string();
    let handled = run(&services, late.as_bytes()).await;
    assert!(
        matches!(&handled, Handled::Inbound { reply: ReplyOutcome::Withheld { reason, .. }, .. }
            if reason.starts_with("whatsapp_window_closed")),
        "{handled:?}"
    );
    assert!(sent_bodies(&server, SEND).await.is_empty());
    // On SMS there is no window: answered.
    run(
        &services,
        &sms_inbound("01SMSLATE", "46701234567", "46700000001", "HELP"),
    )
    .await;
    assert_eq!(sent_bodies(&server, BATCHES).await.len(), 1);
}
