//! The example's hook runs inside the worker: its answers are what reach Sinch.

use std::time::Duration;

use custom_hook::{FixedOrders, OrderHook};
use pipeline::clock::Clock;
use pipeline::envelope::Envelope;
use pipeline::handlers::Services;
use pipeline::reply::ReplyPolicy;
use pipeline::store::MemoryStore;
use serde_json::{Value, json};
use sinch::client::{ClientConfig, ConversationCredentials, SinchClient, Urls};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn inbound(id: &str, text: &str) -> Envelope {
    let body = json!({
        "app_id": "app-1", "project_id": "p", "accepted_time": testkit::now_rfc3339(),
        "message": {
            "id": id, "direction": "TO_APP",
            "contact_message": {"text_message": {"text": text}},
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567", "app_id": "app-1"},
            "contact_id": "c", "conversation_id": "cv"
        }
    });
    testkit::envelope(body.to_string().into_bytes())
}

/// The texts Sinch was asked to send, in order.
async fn sent_texts(sinch: &MockServer) -> Vec<String> {
    sinch
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("messages:send"))
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|body| {
            body["message"]["text_message"]["text"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn orders_are_answered_by_the_hook_and_everything_else_by_the_reply_policy() {
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/p/messages:send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01R"})))
        .mount(&sinch)
        .await;
    let mut config = ClientConfig::new(Urls::all_at(&sinch.uri()));
    config.conversation = Some(ConversationCredentials {
        project_id: "p".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    let services = Services {
        privacy: Default::default(),
        store: MemoryStore::new(),
        sinch: SinchClient::new(config).unwrap(),
        hook: OrderHook {
            orders: FixedOrders(vec![("1042".into(), "shipped".into())]),
            policy: ReplyPolicy::default(),
        },
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        send_rules: pipeline::send_rules::SendRules::default(),
        ledger: pipeline::ledger::Ledger::default(),
        pacing: Default::default(),
        clock: Clock::System,
    };
    let deadline = || Instant::now() + Duration::from_secs(5);
    for (id, text) in [
        ("01A", "ORDER 1042"),
        ("01B", "order 7"),
        ("01C", "HELP"),
        ("01D", "STOP"),
        ("01E", "ORDER 1042"),
    ] {
        pipeline::process::process(&services, &inbound(id, text), deadline())
            .await
            .expect("handled");
    }
    let help = ReplyPolicy::default()
        .decide(Some("HELP"), false)
        .reply
        .unwrap();
    let stop = ReplyPolicy::default()
        .decide(Some("STOP"), false)
        .reply
        .unwrap();
    assert_eq!(
        sent_texts(&sinch).await,
        [
            "Order 1042: shipped.".to_owned(),
            "We could not find order 7.".to_owned(),
            help,
            stop,
        ],
        "the last ORDER came from someone who had opted out: no answer"
    );
}
