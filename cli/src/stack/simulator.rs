//! A Sinch API simulator: the OAuth2 token endpoint, Conversation `messages:send` and SMS
//! batches, answering like Sinch and remembering what was sent. The local stack points the
//! worker's Sinch client at it when no Sinch credentials are configured.
//!
//! Like Sinch, it then calls the webhook back with signed delivery reports, echoing the send's
//! `correlation_id` / `message_metadata` (Conversation) or `client_reference` (SMS):
//!
//! | sent | reports, a few ms apart |
//! |---|---|
//! | Conversation, WhatsApp | `QUEUED_ON_CHANNEL`, `DELIVERED`, `READ` |
//! | Conversation, WhatsApp free-form to someone outside the 24-hour window | `FAILED`, `OUTSIDE_ALLOWED_SENDING_WINDOW` |
//! | Conversation, any other channel | `QUEUED_ON_CHANNEL`, `DELIVERED` |
//! | SMS batch with `per_recipient` reports | `Dispatched`, `Delivered` |
//!
//! The window is judged as WhatsApp would, from when the contact last wrote (the stack's own
//! state, which the receiver and worker keep).
//!
//! With a rate (`serve --simulator-rate`), it holds each API to it as Sinch does: a send that
//! would make any one-second window hold more than the rate is answered 429 with
//! `Retry-After: 1`, and counted ([`SentCounts::throttled`]); nothing of it is kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use sinch::client::{ClientConfig, ConversationCredentials, SmsCredentials, Urls};
use sinch::signature::{sign_headers, unix_seconds};

/// A message the simulator accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentMessage {
    /// `conversation` or `sms`.
    pub api: &'static str,
    /// The id the simulator gave it (a Conversation message id or an SMS batch id).
    pub id: String,
    /// Channel (Conversation) or `SMS`.
    pub channel: String,
    /// The sender asked for.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text, or `[kind]` for a message that is not one.
    pub text: String,
    /// What the send carried for its delivery reports: `correlation_id` (Conversation) or
    /// `client_reference` (SMS); empty when none.
    pub reference: String,
    /// When it arrived (Unix ms).
    pub at_ms: u64,
}

/// The simulator's memory: what reached it, the one place where sends are counted for sure.
/// Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Sent(Arc<Mutex<Log>>);

#[derive(Debug, Default)]
struct Log {
    messages: Vec<SentMessage>,
    /// Sends per reference (`correlation_id` / `client_reference`).
    per_reference: HashMap<String, u64>,
    /// References sent more than once.
    duplicated: u64,
    /// Sends answered 429 for the rate.
    throttled: u64,
}

/// What the simulator's log counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentCounts {
    /// Sends taken.
    pub messages: u64,
    /// References (our message ids) that arrived more than once.
    pub duplicated: u64,
    /// Sends answered 429 because they came faster than the rate.
    pub throttled: u64,
}

impl Sent {
    /// Every send taken, in order.
    pub fn all(&self) -> Vec<SentMessage> {
        self.lock().messages.clone()
    }

    /// The log's counts.
    pub fn counts(&self) -> SentCounts {
        let log = self.lock();
        SentCounts {
            messages: log.messages.len() as u64,
            duplicated: log.duplicated,
            throttled: log.throttled,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, message: SentMessage) {
        let mut log = self.lock();
        if !message.reference.is_empty() {
            let count = log
                .per_reference
                .entry(message.reference.clone())
                .or_default();
            *count += 1;
            if *count == 2 {
                log.duplicated += 1;
                tracing::error!(reference = %message.reference, "the simulator received the same message twice");
            }
        }
        log.messages.push(message);
    }
}

/// Whether WhatsApp's 24-hour window is open for an identity (a number without `+`).
pub type WindowOracle = Arc<dyn Fn(String) -> BoxFuture<'static, bool> + Send + Sync>;

/// Where and how the simulator reports back.
#[derive(Clone)]
pub struct Reports {
    /// The webhook to post delivery reports to.
    pub webhook: String,
    /// The secret to sign them with.
    pub secret: String,
    /// Whether WhatsApp's window is open for a recipient: a free-form send outside it gets a FAILED report, as from Sinch.
    pub window: WindowOracle,
    /// The pause before each report.
    pub pace: Duration,
}

#[derive(Clone)]
struct Simulator {
    sent: Sent,
    reports: Option<Reports>,
    http: reqwest::Client,
    /// Per API, the arrivals of the last second, when a rate is enforced.
    limit: Option<Arc<RateLimit>>,
}

/// A rate per API over a sliding one-second window.
#[derive(Debug)]
struct RateLimit {
    rate: usize,
    arrivals: Mutex<HashMap<&'static str, std::collections::VecDeque<std::time::Instant>>>,
}

impl RateLimit {
    /// Whether a send on `api` now stays within the rate (and if so, it is counted).
    fn admit(&self, api: &'static str) -> bool {
        let now = std::time::Instant::now();
        let mut arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        let window = arrivals.entry(api).or_default();
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= self.rate {
            return false;
        }
        window.push_back(now);
        true
    }
}

impl Simulator {
    /// `None` when `api` may take this send; else Sinch's 429.
    fn throttle(&self, api: &'static str) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        let limit = self.limit.as_ref()?;
        if limit.admit(api) {
            return None;
        }
        self.sent.lock().throttled += 1;
        tracing::warn!(
            api,
            rate = limit.rate,
            "the simulator throttled a send (429)"
        );
        Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(axum::http::header::RETRY_AFTER, "1")],
                Json(json!({"error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}})),
            )
                .into_response(),
        )
    }
}

/// Serves the simulator on `listener` until the process ends; returns what it sends. With
/// `reports`, it calls the webhook back as Sinch does; with `rate`, it answers 429 beyond it.
pub fn spawn(
    listener: tokio::net::TcpListener,
    reports: Option<Reports>,
    rate: Option<f64>,
) -> Sent {
    let sent = Sent::default();
    let simulator = Simulator {
        sent: sent.clone(),
        reports,
        http: reqwest::Client::new(),
        limit: rate.map(|rate| {
            Arc::new(RateLimit {
                rate: (rate.floor() as usize).max(1),
                arrivals: Mutex::default(),
            })
        }),
    };
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send_message))
        .route("/xms/v1/{plan}/batches", post(batch))
        .route("/sent", get(list))
        .with_state(simulator);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the Sinch simulator stopped");
        }
    });
    sent
}

/// A Sinch client configuration pointing at a simulator on `address`.
pub fn client_config(address: SocketAddr) -> ClientConfig {
    let url = format!("http://{address}");
    let mut config = ClientConfig::new(Urls::all_at(&url));
    config.conversation = Some(ConversationCredentials {
        project_id: "local-project".into(),
        key_id: "local-key".into(),
        key_secret: "local-secret".into(),
    });
    config.sms = Some(SmsCredentials {
        service_plan_id: "local-plan".into(),
        api_token: "local-token".into(),
    });
    config
}

async fn token() -> Json<Value> {
    Json(json!({
        "access_token": format!("simulated-{}", ulid::Ulid::generate()),
        "expires_in": 3600,
        "scope": "",
        "token_type": "bearer"
    }))
}

async fn send_message(
    State(simulator): State<Simulator>,
    Path(project): Path<String>,
    Json(request): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(throttled) = simulator.throttle("conversation") {
        return throttled;
    }
    send_conversation(simulator, project, request)
        .await
        .into_response()
}

async fn send_conversation(
    simulator: Simulator,
    _project: String,
    request: Value,
) -> (StatusCode, Json<Value>) {
    let identity = &request["recipient"]["identified_by"]["channel_identities"][0];
    let (channel, to) = match identity.as_object() {
        Some(_) => (
            identity["channel"].as_str().unwrap_or_default().to_owned(),
            identity["identity"].as_str().unwrap_or_default().to_owned(),
        ),
        None => (
            "CONTACT".to_owned(),
            request["recipient"]["contact_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
    };
    let message = request["message"].as_object();
    let Some(kind) = message.and_then(|m| m.keys().next()).cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"code": 400, "message": "message is required", "status": "INVALID_ARGUMENT"}}),
            ),
        );
    };
    let text = request["message"]["text_message"]["text"]
        .as_str()
        .map_or_else(|| format!("[{kind}]"), str::to_owned);
    let id = ulid::Ulid::generate().to_string();
    let correlation = request["correlation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    simulator.sent.push(SentMessage {
        api: "conversation",
        id: id.clone(),
        channel: channel.clone(),
        from: request["app_id"].as_str().unwrap_or_default().to_owned(),
        to: to.clone(),
        text,
        reference: correlation.clone(),
        at_ms: pipeline::clock::unix_millis(std::time::SystemTime::now()),
    });
    if let Some(reports) = simulator.reports.clone() {
        let report = ConversationReport {
            message_id: id.clone(),
            app_id: request["app_id"].as_str().unwrap_or_default().to_owned(),
            channel,
            identity: to,
            correlation,
            metadata: request["message_metadata"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            template: kind == "template_message",
        };
        tokio::spawn(report_conversation(simulator.http.clone(), reports, report));
    }
    (
        StatusCode::OK,
        Json(json!({"message_id": id, "accepted_time": time_now()})),
    )
}

/// What a Conversation report needs to know about its send.
struct ConversationReport {
    message_id: String,
    app_id: String,
    channel: String,
    identity: String,
    correlation: String,
    metadata: String,
    template: bool,
}

async fn report_conversation(http: reqwest::Client, reports: Reports, send: ConversationReport) {
    use sinch::callback::conversation::DeliveryStatus;
    let whatsapp = send.channel == "WHATSAPP";
    let statuses: &[DeliveryStatus] =
        if whatsapp && !send.template && !(reports.window)(send.identity.clone()).await {
            &[DeliveryStatus::Failed]
        } else if whatsapp {
            &[
                DeliveryStatus::QueuedOnChannel,
                DeliveryStatus::Delivered,
                DeliveryStatus::Read,
            ]
        } else {
            &[DeliveryStatus::QueuedOnChannel, DeliveryStatus::Delivered]
        };
    for status in statuses {
        tokio::time::sleep(reports.pace).await;
        let mut report = json!({
            "message_id": send.message_id, "status": status.as_str(),
            "channel_identity": {"channel": send.channel, "identity": send.identity, "app_id": send.app_id},
            "metadata": send.metadata, "processing_mode": "DISPATCH"
        });
        if *status == DeliveryStatus::Failed {
            report["reason"] = json!({
                "code": "OUTSIDE_ALLOWED_SENDING_WINDOW",
                "description": "The 24-hour customer service window is closed: only templates may be sent",
                "sub_code": "UNSPECIFIED_SUB_CODE"
            });
        }
        let body = json!({
            "app_id": send.app_id, "accepted_time": time_now(), "event_time": time_now(),
            "project_id": "local-project", "message_delivery_report": report,
            "message_metadata": send.metadata, "correlation_id": send.correlation
        });
        post_signed(&http, &reports, body).await;
    }
}

async fn report_sms(
    http: reqwest::Client,
    reports: Reports,
    batch_id: String,
    to: String,
    reference: String,
) {
    for (status, code) in [("Dispatched", 401), ("Delivered", 0)] {
        tokio::time::sleep(reports.pace).await;
        let mut body = json!({
            "type": "recipient_delivery_report_sms", "batch_id": batch_id, "recipient": to,
            "code": code, "status": status, "at": time_now(), "operator_status_at": time_now()
        });
        if !reference.is_empty() {
            body["client_reference"] = json!(reference);
        }
        post_signed(&http, &reports, body).await;
    }
}

/// Posts a report to the webhook, signed as Sinch signs (freshly for each attempt); a refusal is
/// retried with exponential backoff (`retry-policies`) for two minutes, as Sinch retries (for
/// about a day: `shared/reference/sinch.md`), so that a pipeline slow to answer loses nothing.
async fn post_signed(http: &reqwest::Client, reports: &Reports, body: Value) {
    use retry_policies::{Jitter, RetryDecision, RetryPolicy, policies::ExponentialBackoff};
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(100), Duration::from_secs(5))
        .jitter(Jitter::Full)
        .build_with_total_retry_duration(Duration::from_secs(120));
    let started = std::time::SystemTime::now();
    let body = body.to_string().into_bytes();
    let mut retries = 0;
    loop {
        let signed = sign_headers(
            &reports.secret,
            &body,
            &ulid::Ulid::generate().to_string(),
            unix_seconds(std::time::SystemTime::now()),
        );
        let mut request = http.post(&reports.webhook).body(body.clone());
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::warn!(status = %response.status(), retries, "the webhook refused a simulated report")
            }
            Err(error) => {
                tracing::warn!(%error, retries, "the webhook did not take a simulated report")
            }
        }
        let RetryDecision::Retry { execute_after } = policy.should_retry(started, retries) else {
            return;
        };
        let delay = execute_after
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(delay).await;
        retries += 1;
    }
}

async fn batch(
    State(simulator): State<Simulator>,
    Path(plan): Path<String>,
    Json(request): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(throttled) = simulator.throttle("sms") {
        return throttled;
    }
    sms_batch(simulator, plan, request).await.into_response()
}

async fn sms_batch(
    simulator: Simulator,
    _plan: String,
    request: Value,
) -> (StatusCode, Json<Value>) {
    let (Some(from), Some(to), Some(body)) = (
        request["from"].as_str(),
        request["to"][0].as_str(),
        request["body"].as_str(),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": "syntax_constraint_violation", "text": "from, to and body are required"}),
            ),
        );
    };
    let id = ulid::Ulid::generate().to_string();
    let reference = request["client_reference"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(reports) = simulator.reports.clone()
        && request["delivery_report"].as_str() == Some("per_recipient")
    {
        tokio::spawn(report_sms(
            simulator.http.clone(),
            reports,
            id.clone(),
            to.to_owned(),
            reference.clone(),
        ));
    }
    simulator.sent.push(SentMessage {
        api: "sms",
        id: id.clone(),
        channel: "SMS".into(),
        from: from.to_owned(),
        to: to.to_owned(),
        text: body.to_owned(),
        reference,
        at_ms: pipeline::clock::unix_millis(std::time::SystemTime::now()),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "from": from, "to": [to], "body": body, "type": "mt_text"})),
    )
}

async fn list(State(simulator): State<Simulator>) -> Json<Vec<SentMessage>> {
    Json(simulator.sent.all())
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
