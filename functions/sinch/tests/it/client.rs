//! The REST client against a local fake Sinch (wiremock): tokens, retries, errors, budgets.

use std::time::Duration;

use sinch::Channel;
use sinch::client::{
    AppMessage, ChannelRecipient, ClientConfig, ConversationCredentials, Recipient, RetrySettings,
    SendMessageRequest, SinchClient, SinchError, SmsBatchRequest, SmsCredentials, Urls,
};
use tokio::time::Instant;
use wiremock::matchers::{basic_auth, body_json, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SEND_PATH: &str = "/v1/projects/project-1/messages:send";

fn client(server: &MockServer, tweak: impl FnOnce(&mut ClientConfig)) -> SinchClient {
    let mut config = ClientConfig::new(Urls::all_at(&server.uri()));
    config.conversation = Some(ConversationCredentials {
        project_id: "project-1".into(),
        key_id: "key-id".into(),
        key_secret: "key-secret".into(),
    });
    config.sms = Some(SmsCredentials {
        service_plan_id: "plan-1".into(),
        api_token: "sms-token".into(),
    });
    config.retry = RetrySettings {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
        max_retries: 5,
    };
    // The tests' budgets are sub-second.
    config.send_budget = Duration::from_millis(100);
    tweak(&mut config);
    SinchClient::new(config).expect("client builds")
}

fn token(value: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": value, "expires_in": expires_in, "scope": "", "token_type": "bearer"
    }))
}

async fn mount_token(server: &MockServer, value: &str, expires_in: u64) {
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(basic_auth("key-id", "key-secret"))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(token(value, expires_in))
        .mount(server)
        .await;
}

fn sent() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        serde_json::json!({"message_id": "01SENT", "accepted_time": "2026-11-23T04:00:00Z"}),
    )
}

fn message() -> SendMessageRequest {
    SendMessageRequest {
        app_id: "app-1".into(),
        recipient: Recipient::Identities(vec![ChannelRecipient {
            channel: Channel::WhatsApp,
            identity: "46701234567".into(),
        }]),
        message: AppMessage::text("Hello"),
        channel_priority_order: vec![Channel::WhatsApp],
        message_metadata: None,
        correlation_id: None,
        channel_properties: Default::default(),
        ttl: None,
    }
}

fn in_secs(secs: f64) -> Instant {
    Instant::now() + Duration::from_secs_f64(secs)
}

async fn requests_to(server: &MockServer, wanted: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == wanted)
        .count()
}

#[tokio::test]
async fn one_token_serves_many_concurrent_sends() {
    let server = MockServer::start().await;
    mount_token(&server, "token-a", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer token-a"))
        .and(body_json(serde_json::to_value(message()).unwrap()))
        .respond_with(sent())
        .expect(20)
        .mount(&server)
        .await;
    let client = client(&server, |_| {});
    let sends = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.send_message(&message(), in_secs(5.0)).await })
    });
    for send in sends {
        assert_eq!(send.await.unwrap().unwrap().message_id, "01SENT");
    }
    assert_eq!(requests_to(&server, "/oauth2/token").await, 1);
}

#[tokio::test]
async fn the_token_is_refreshed_near_expiry() {
    let server = MockServer::start().await;
    mount_token(&server, "short-lived", 2).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(sent())
        .mount(&server)
        .await;
    // A 300 s margin on a 2 s token is capped at half its life: refreshed after 1 s.
    let client = client(&server, |_| {});
    client.send_message(&message(), in_secs(5.0)).await.unwrap();
    client.send_message(&message(), in_secs(5.0)).await.unwrap();
    assert_eq!(requests_to(&server, "/oauth2/token").await, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.send_message(&message(), in_secs(5.0)).await.unwrap();
    assert_eq!(requests_to(&server, "/oauth2/token").await, 2);
}

const WEBHOOKS_PATH: &str = "/v1/projects/project-1/apps/app-1/webhooks";

fn webhooks() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({"webhooks": []}))
}

#[tokio::test]
async fn a_send_is_one_request_and_a_429_says_when_to_come_back() {
    // A paced send takes a slot of its own for every try, so the caller retries (the
    // pipeline's ledger); the client makes the one request and says what Sinch asked.
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(serde_json::json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})),
        )
        .mount(&server)
        .await;
    let client = client(&server, |_| {});
    let error = client
        .send_message(&message(), in_secs(5.0))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(requests_to(&server, SEND_PATH).await, 1);
    // 5xx the same.
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let error = self::client(&server, |_| {})
        .send_message(&message(), in_secs(5.0))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(requests_to(&server, SEND_PATH).await, 1);
}

#[tokio::test]
async fn a_read_waits_out_a_429s_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("GET"))
        .and(path(WEBHOOKS_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(WEBHOOKS_PATH))
        .respond_with(webhooks())
        .with_priority(2)
        .mount(&server)
        .await;
    let client = client(&server, |_| {});
    let started = Instant::now();
    let list = client.list_webhooks("app-1", in_secs(5.0)).await.unwrap();
    assert!(list.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {:?}",
        started.elapsed()
    );
    assert_eq!(requests_to(&server, WEBHOOKS_PATH).await, 2);
}

#[tokio::test]
async fn a_read_is_retried_through_two_503s() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("GET"))
        .and(path(WEBHOOKS_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(WEBHOOKS_PATH))
        .respond_with(webhooks())
        .with_priority(2)
        .mount(&server)
        .await;
    let client = client(&server, |_| {});
    assert!(client.list_webhooks("app-1", in_secs(5.0)).await.is_ok());
    assert_eq!(requests_to(&server, WEBHOOKS_PATH).await, 3);
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_error_body_is_read() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {"code": 400, "message": "Invalid recipient", "status": "INVALID_ARGUMENT", "details": []}
        })))
        .mount(&server)
        .await;
    let client = client(&server, |_| {});
    let error = client
        .send_message(&message(), in_secs(5.0))
        .await
        .unwrap_err();
    assert!(!error.is_transient());
    let SinchError::Api { status, detail, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*status, 400);
    assert_eq!(detail.message, "Invalid recipient");
    assert_eq!(detail.status.as_deref(), Some("INVALID_ARGUMENT"));
    assert_eq!(requests_to(&server, SEND_PATH).await, 1);
}

#[tokio::test]
async fn other_4xx_are_never_retried() {
    for status in [403u16, 404, 409, 422] {
        let server = MockServer::start().await;
        mount_token(&server, "t", 3600).await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        let error = client(&server, |_| {})
            .send_message(&message(), in_secs(5.0))
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(status));
        assert!(!error.is_transient());
        assert_eq!(requests_to(&server, SEND_PATH).await, 1, "{status}");
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(token("expired-token", 3600))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_token(&server, "fresh-token", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer expired-token"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            r#"Bearer error="invalid_token", error_description="The access token expired""#,
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", "Bearer fresh-token"))
        .respond_with(sent())
        .mount(&server)
        .await;
    let client = client(&server, |_| {});
    assert!(client.send_message(&message(), in_secs(5.0)).await.is_ok());
    assert_eq!(requests_to(&server, "/oauth2/token").await, 2);
    assert_eq!(requests_to(&server, SEND_PATH).await, 2);
    // The fresh token is cached from then on.
    assert!(client.send_message(&message(), in_secs(5.0)).await.is_ok());
    assert_eq!(requests_to(&server, "/oauth2/token").await, 2);
}

#[tokio::test]
async fn a_persistent_401_refreshes_only_once_and_fails() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let error = client(&server, |_| {})
        .send_message(&message(), in_secs(5.0))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(!error.is_transient());
    assert_eq!(requests_to(&server, "/oauth2/token").await, 2);
    assert_eq!(requests_to(&server, SEND_PATH).await, 2);
}

#[tokio::test]
async fn bad_credentials_at_the_token_endpoint_are_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_string("invalid_client"))
        .mount(&server)
        .await;
    let error = client(&server, |_| {})
        .send_message(&message(), in_secs(5.0))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert_eq!(requests_to(&server, SEND_PATH).await, 0);
}

#[tokio::test]
async fn the_time_budget_is_respected() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("GET"))
        .and(path(WEBHOOKS_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let client = client(&server, |c| {
        c.retry = RetrySettings {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            max_retries: 100,
        }
    });
    let started = Instant::now();
    let error = client
        .list_webhooks("app-1", in_secs(1.0))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.is_transient());
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
    assert!(requests_to(&server, WEBHOOKS_PATH).await >= 2);

    // A Retry-After beyond the deadline is not waited for.
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("GET"))
        .and(path(WEBHOOKS_PATH))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .mount(&server)
        .await;
    let client = self::client(&server, |c| c.retry.max_delay = Duration::from_secs(60));
    let started = Instant::now();
    let error = client
        .list_webhooks("app-1", in_secs(2.0))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_slow_sinch_is_cut_at_the_deadline() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(sent().set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let started = Instant::now();
    let error = client(&server, |_| {})
        .send_message(&message(), in_secs(0.5))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn network_errors_are_transient() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", refused.local_addr().unwrap());
    drop(refused);
    let mut config = ClientConfig::new(Urls::all_at(&url));
    config.sms = Some(SmsCredentials {
        service_plan_id: "p".into(),
        api_token: "t".into(),
    });
    config.retry.min_delay = Duration::from_millis(10);
    config.send_budget = Duration::from_millis(100);
    let error = SinchClient::new(config)
        .unwrap()
        .send_sms(&batch(), in_secs(0.3))
        .await
        .unwrap_err();
    assert!(matches!(error, SinchError::Network { .. }), "{error:?}");
    assert!(error.is_transient());
}

fn batch() -> SmsBatchRequest {
    SmsBatchRequest {
        from: "46700000001".into(),
        to: vec!["46701234567".into()],
        body: "Hello".into(),
        delivery_report: Some("per_recipient".into()),
        client_reference: None,
        expire_at: None,
    }
}

#[tokio::test]
async fn sms_batches_use_the_service_plan_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/xms/v1/plan-1/batches"))
        .and(header("authorization", "Bearer sms-token"))
        .and(body_json(serde_json::json!({
            "from": "46700000001", "to": ["46701234567"], "body": "Hello", "delivery_report": "per_recipient"
        })))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": "01BATCH", "to": ["46701234567"]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let response = client(&server, |_| {})
        .send_sms(&batch(), in_secs(5.0))
        .await
        .unwrap();
    assert_eq!(response.id, "01BATCH");
    assert_eq!(requests_to(&server, "/oauth2/token").await, 0);
}

#[tokio::test]
async fn sms_errors_are_read_and_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/xms/v1/plan-1/batches"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            serde_json::json!({"code": "syntax_constraint_violation", "text": "to: must not be empty"}),
        ))
        .mount(&server)
        .await;
    let error = client(&server, |_| {})
        .send_sms(&batch(), in_secs(5.0))
        .await
        .unwrap_err();
    assert!(!error.is_transient());
    assert!(
        error
            .to_string()
            .contains("syntax_constraint_violation: to: must not be empty"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unconfigured_api_is_a_permanent_error() {
    let server = MockServer::start().await;
    let client = client(&server, |c| {
        c.conversation = None;
        c.sms = None;
    });
    let error = client
        .send_message(&message(), in_secs(1.0))
        .await
        .unwrap_err();
    assert_eq!(error, SinchError::NotConfigured("Conversation"));
    assert!(!error.is_transient());
    let error = client.send_sms(&batch(), in_secs(1.0)).await.unwrap_err();
    assert_eq!(error, SinchError::NotConfigured("SMS"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_unreadable_success_is_not_retried() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .mount(&server)
        .await;
    let error = client(&server, |_| {})
        .send_message(&message(), in_secs(5.0))
        .await
        .unwrap_err();
    assert!(matches!(error, SinchError::Decode { .. }));
    assert!(!error.is_transient());
    assert_eq!(requests_to(&server, SEND_PATH).await, 1);
}

#[tokio::test]
async fn a_send_is_not_started_without_its_budget_left() {
    let server = MockServer::start().await;
    mount_token(&server, "t", 3600).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"message_id": "m"})),
        )
        .mount(&server)
        .await;
    let client = client(&server, |c| c.send_budget = Duration::from_secs(2));
    // One second left, two needed: not made, so its outcome is known (never sent), and retried.
    let error = client
        .send_message(&message(), in_secs(1.0))
        .await
        .unwrap_err();
    assert!(matches!(error, SinchError::OutOfTime { .. }), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(requests_to(&server, SEND_PATH).await, 0);
    // With the budget left, it goes.
    client.send_message(&message(), in_secs(3.0)).await.unwrap();
    assert_eq!(requests_to(&server, SEND_PATH).await, 1);
}
