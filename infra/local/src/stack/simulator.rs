//! A Sinch API simulator: the OAuth2 token endpoint, Conversation `messages:send` and SMS
//! batches, answering like Sinch and remembering what was sent. The local stack points the
//! worker's Sinch client at it when no Sinch credentials are configured.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use sinch::client::{ClientConfig, ConversationCredentials, SmsCredentials, Urls};

/// A message the simulator accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentMessage {
    /// `conversation` or `sms`.
    pub api: &'static str,
    /// The id the simulator gave it (a Conversation message id or an SMS batch id).
    pub id: String,
    /// Channel (Conversation) or `SMS`.
    pub channel: String,
    pub from: String,
    pub to: String,
    pub text: String,
    /// What the send carried for its delivery reports: `correlation_id` (Conversation) or
    /// `client_reference` (SMS); empty when none.
    pub reference: String,
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
}

/// What the simulator's log counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentCounts {
    pub messages: u64,
    /// References (our message ids) that arrived more than once.
    pub duplicated: u64,
}

impl Sent {
    pub fn all(&self) -> Vec<SentMessage> {
        self.lock().messages.clone()
    }

    pub fn counts(&self) -> SentCounts {
        let log = self.lock();
        SentCounts {
            messages: log.messages.len() as u64,
            duplicated: log.duplicated,
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

/// Serves the simulator on `listener` until the process ends; returns what it sends.
pub fn spawn(listener: tokio::net::TcpListener) -> Sent {
    let sent = Sent::default();
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/v1/projects/{project}/messages:send", post(send_message))
        .route("/xms/v1/{plan}/batches", post(batch))
        .route("/sent", get(list))
        .with_state(sent.clone());
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
    State(sent): State<Sent>,
    Path(_project): Path<String>,
    Json(request): Json<Value>,
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
    let Some(text) = request["message"]["text_message"]["text"].as_str() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"code": 400, "message": "message.text_message.text is required", "status": "INVALID_ARGUMENT"}}),
            ),
        );
    };
    let id = ulid::Ulid::generate().to_string();
    sent.push(SentMessage {
        api: "conversation",
        id: id.clone(),
        channel,
        from: request["app_id"].as_str().unwrap_or_default().to_owned(),
        to,
        text: text.to_owned(),
        reference: request["correlation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    });
    (
        StatusCode::OK,
        Json(json!({"message_id": id, "accepted_time": time_now()})),
    )
}

async fn batch(
    State(sent): State<Sent>,
    Path(_plan): Path<String>,
    Json(request): Json<Value>,
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
    sent.push(SentMessage {
        api: "sms",
        id: id.clone(),
        channel: "SMS".into(),
        from: from.to_owned(),
        to: to.to_owned(),
        text: body.to_owned(),
        reference: request["client_reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    });
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "from": from, "to": [to], "body": body, "type": "mt_text"})),
    )
}

async fn list(State(sent): State<Sent>) -> Json<Vec<SentMessage>> {
    Json(sent.all())
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
