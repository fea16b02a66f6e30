//! The messages API Lambda: the team's own services send through the pipeline and read back
//! what became of each message.
//!
//! | request | answer |
//! |---|---|
//! | `POST /messages` with an `Idempotency-Key`, valid | 202 `{"id"}`, `Location: /messages/{id}`; stored `ACCEPTED` and queued for the worker |
//! | the same key and body again (within 24 h) | the first answer again, with `Idempotency-Replayed: true` |
//! | the same key, another body | 422 `idempotency_key_reused` |
//! | the same key while the first is still being handled | 409 `idempotency_key_in_flight`, `Retry-After` |
//! | no key, or one over 255 characters | 400 `idempotency_key_missing` / `idempotency_key_invalid` |
//! | a body that breaks a rule ([`request`]) | 400 or 422 with the rule's code; nothing stored or queued |
//! | WhatsApp free-form outside the 24-hour window | 422 `whatsapp_window_closed` |
//! | a recipient who opted out on a channel it may go on | 422 `recipient_opted_out` |
//! | body over 64 KiB | 413 `body_too_large` |
//! | the store or the queue unavailable | 503 `unavailable`, `Retry-After`; nothing queued |
//! | `GET /messages/{id}` | 200, the status ([`status`]); 404 `not_found` |
//! | another path / method | 404 `not_found` / 405 `method_not_allowed` |
//!
//! Keys are scoped to the caller: the IAM identity API Gateway authenticated (an assumed role
//! counts as the role, whatever its session), `local` in the local stack. A refusal by a rule is
//! remembered under the key like an acceptance; an answer of ours that says "try again" (503)
//! is not.
//!
//! [`handle`] is a plain async function over its dependencies; `main.rs` wires it to
//! `lambda_http`, and the local stack serves it over axum.

pub mod config;
pub mod error;
pub mod request;
pub mod status;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use pipeline::clock::{Clock, unix_millis};
use pipeline::envelope::Envelope;
use pipeline::outbound::{OutboundJob, SEND_JOB};
use pipeline::queue::Queue;
use pipeline::store::{
    AcceptedMessage, Claim, ClaimRequest, ContactKey, MessageKey, Reason, SendResult, Store,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};

pub use config::ApiConfig;
pub use error::ApiError;
use request::{SendRequest, Valid};

/// Header: the client's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header: present on a replayed answer.
pub const IDEMPOTENCY_REPLAYED: &str = "idempotency-replayed";

/// The API's dependencies, built once per cold start.
#[derive(Debug)]
pub struct Api<S, Q> {
    pub store: S,
    /// The outbound queue the worker sends from.
    pub queue: Q,
    pub config: ApiConfig,
    pub clock: Clock,
}

/// The answer, before it becomes HTTP: what a replay repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        Answer {
            status: error.status,
            body: error.body(),
            location: None,
            retry_after: error.retry_after,
            replayed: false,
        }
    }
}

impl Answer {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Answer {
            status,
            body: body.to_string(),
            location: None,
            retry_after: None,
            replayed: false,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.replayed {
            headers.insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
        }
        if self.status == 405 {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        response
    }
}

/// Handles one request; every outcome is an answer.
pub async fn handle<S: Store, Q: Queue>(api: &Api<S, Q>, request: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let answer = route(api, request).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    if answer.status >= 500 {
        warn!(%method, %path, status = answer.status, elapsed_us, body = %answer.body, "request failed");
    } else {
        info!(%method, %path, status = answer.status, replayed = answer.replayed, elapsed_us, "request answered");
    }
    answer.into_response()
}

async fn route<S: Store, Q: Queue>(api: &Api<S, Q>, request: Request) -> Answer {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    // API Gateway may put a stage in front: route on what follows `/messages`.
    let Some(rest) = path
        .find("/messages")
        .map(|at| &path[at + "/messages".len()..])
    else {
        return ApiError::new(404, "not_found", format!("no route {path}")).into();
    };
    match (request.method(), rest) {
        (&Method::POST, "") => send(api, request).await,
        (&Method::GET, id) if id.len() > 1 && !id[1..].contains('/') => read(api, &id[1..]).await,
        (_, "") => ApiError::new(405, "method_not_allowed", "POST /messages").into(),
        (_, id) if id.len() > 1 && !id[1..].contains('/') => {
            ApiError::new(405, "method_not_allowed", "GET /messages/{id}").into()
        }
        _ => ApiError::new(404, "not_found", format!("no route {path}")).into(),
    }
}

/// `GET /messages/{id}`.
async fn read<S: Store, Q: Queue>(api: &Api<S, Q>, id: &str) -> Answer {
    match api
        .store
        .message_state(&MessageKey::Ours(id.to_owned()))
        .await
    {
        Ok(Some(state)) => Answer::json(200, status::view(id, &state)),
        Ok(None) => ApiError::new(404, "not_found", format!("no message {id:?}")).into(),
        Err(error) => ApiError::unavailable(error.to_string()).into(),
    }
}

/// `POST /messages`.
async fn send<S: Store, Q: Queue>(api: &Api<S, Q>, request: Request) -> Answer {
    let key = match idempotency_key(&request) {
        Ok(key) => key,
        Err(error) => return error.into(),
    };
    let caller = caller(&request);
    let body = match request.body() {
        Body::Text(text) => text.as_bytes().to_vec(),
        Body::Binary(bytes) => bytes.clone(),
        _ => Vec::new(),
    };
    if body.len() > api.config.max_body_bytes {
        return ApiError::new(
            413,
            "body_too_large",
            format!(
                "the body is {} bytes, at most {}",
                body.len(),
                api.config.max_body_bytes
            ),
        )
        .into();
    }
    if let Some(kind) = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !kind.to_ascii_lowercase().starts_with("application/json")
    {
        return ApiError::new(
            415,
            "unsupported_media_type",
            format!("Content-Type: {kind:?}; send application/json"),
        )
        .into();
    }
    let valid = match parse(&body).and_then(|r| r.validate(&api.config.channels)) {
        Ok(valid) => valid,
        Err(error) => return error.into(),
    };

    // The key, scoped to the caller; the body's hash tells a replay from a reuse.
    let scoped = format!("api/{}/{key}", digest(caller.as_bytes()));
    let payload_hash = digest(&body);
    let now_ms = unix_millis(api.clock.now());
    let claim = ClaimRequest {
        key: &scoped,
        payload_hash: &payload_hash,
        lease_until_ms: now_ms + api.config.in_flight_lease.as_millis() as u64,
        now_ms,
    };
    match api.store.claim(&claim).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Completed {
            same_payload: true,
            response,
        }) => {
            return match response.and_then(|r| serde_json::from_str::<Answer>(&r).ok()) {
                Some(answer) => Answer {
                    replayed: true,
                    ..answer
                },
                None => ApiError::unavailable("the first answer to this key cannot be read").into(),
            };
        }
        Ok(Claim::Completed {
            same_payload: false,
            ..
        }) => {
            return ApiError::unprocessable(
                "idempotency_key_reused",
                "Idempotency-Key: already used with another body",
            )
            .into();
        }
        Ok(Claim::InProgress { .. }) => {
            return ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    409,
                    "idempotency_key_in_flight",
                    "Idempotency-Key: a request with this key is still being handled",
                )
            }
            .into();
        }
        Err(error) => return ApiError::unavailable(error.to_string()).into(),
    }

    let answer = accept(api, valid, &caller, now_ms).await;
    if answer.status >= 500 {
        // Ours to retry: the key is given back (unless the outcome is uncertain, see `accept`).
        if answer.retry_after.is_some()
            && let Err(error) = api.store.release(&scoped).await
        {
            warn!(%error, "could not release the idempotency key; it frees itself after the lease");
        }
        return answer;
    }
    let expires_at_s = now_ms / 1000 + api.config.key_ttl.as_secs();
    let remembered = serde_json::to_string(&answer).unwrap_or_default();
    if let Err(error) = api
        .store
        .complete(&scoped, expires_at_s, Some(&remembered))
        .await
    {
        // The send is queued: answer it. A retry of this key gets 409 until the lease ends.
        error!(%error, "accepted, but the idempotency key could not be completed");
    }
    answer
}

/// The rules that need the store, then `ACCEPTED`, then the queue.
async fn accept<S: Store, Q: Queue>(
    api: &Api<S, Q>,
    valid: Valid,
    caller: &str,
    now_ms: u64,
) -> Answer {
    if let Err(error) = rules(api, &valid, now_ms).await {
        return error.into();
    }
    let id = format!("msg_{}", ulid::Ulid::generate());
    let accepted = AcceptedMessage {
        id: id.clone(),
        channel: valid.channel.clone(),
        to: valid.to.clone(),
        metadata: valid.metadata.clone(),
        caller: caller.to_owned(),
        at_ms: now_ms,
    };
    if let Err(error) = api.store.accept_message(&accepted).await {
        return ApiError::unavailable(error.to_string()).into();
    }
    let job = OutboundJob {
        id: id.clone(),
        to: valid.to,
        route: valid.route,
    };
    let body = match serde_json::to_string(&job) {
        Ok(body) => body,
        Err(error) => return ApiError::unavailable(error.to_string()).into(),
    };
    let envelope = Envelope::job(SEND_JOB, body, SystemTime::now());
    let queued = tokio::time::timeout(api.config.enqueue_timeout, api.queue.send(&envelope)).await;
    if let Err(detail) = match queued {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "the queue did not confirm within {} ms",
            api.config.enqueue_timeout.as_millis()
        )),
    } {
        // The queue may have taken it all the same (a timeout): FAILED makes sure the worker
        // never sends it, so the client's retry (a new id) is the only send.
        let reason = Reason::new("ENQUEUE_FAILED", Some(detail.clone()));
        return match api
            .store
            .finish_send(&id, &SendResult::Refused { reason }, now_ms)
            .await
        {
            Ok(()) => ApiError::unavailable(format!("not queued: {detail}")).into(),
            // Neither could be written: keep the key until its lease ends, so a retry cannot
            // race a job that may be in the queue.
            Err(error) => Answer {
                retry_after: None,
                ..ApiError::unavailable(format!("not queued: {detail}; {error}")).into()
            },
        };
    }
    info!(%id, channel = %accepted.channel, "message accepted and queued");
    Answer {
        location: Some(format!("/messages/{id}")),
        ..Answer::json(202, serde_json::json!({"id": id}))
    }
}

/// The rules decided from what the worker knows: opt-outs, and WhatsApp's window.
async fn rules<S: Store, Q: Queue>(
    api: &Api<S, Q>,
    valid: &Valid,
    now_ms: u64,
) -> Result<(), ApiError> {
    for channel in &valid.channels {
        let contact_channel = if channel == request::SMS_API {
            "SMS"
        } else {
            channel
        };
        let contact = ContactKey::new(contact_channel, &valid.to);
        let state = api
            .store
            .contact(&contact)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        if state.opted_out_by.is_some() {
            return Err(ApiError::unprocessable(
                "recipient_opted_out",
                format!("to: {} opted out (STOP) on {channel}", valid.to),
            ));
        }
        if valid.needs_whatsapp_window && channel == "WHATSAPP" {
            let window_ms = api.config.whatsapp_window.as_millis() as u64;
            let open = state
                .last_inbound_at_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < window_ms);
            if !open {
                return Err(ApiError::unprocessable(
                    "whatsapp_window_closed",
                    format!(
                        "to: {} has not written in the last 24 hours; outside that window WhatsApp takes only approved templates (send a template: name, language, parameters)",
                        valid.to
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn parse(body: &[u8]) -> Result<SendRequest, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request =
        serde_path_to_error::deserialize::<_, SendRequest>(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::bad_request("malformed_json", format!("the body is not JSON: {inner}"))
            } else if path == "." || path.is_empty() {
                ApiError::bad_request("invalid_request", inner.to_string())
            } else {
                ApiError::bad_request("invalid_request", format!("{path}: {inner}"))
            }
        })?;
    deserializer.end().map_err(|inner| {
        ApiError::bad_request("malformed_json", format!("the body is not JSON: {inner}"))
    })?;
    Ok(request)
}

fn idempotency_key(request: &Request) -> Result<String, ApiError> {
    let Some(value) = request.headers().get(IDEMPOTENCY_KEY) else {
        return Err(ApiError::bad_request(
            "idempotency_key_missing",
            "Idempotency-Key: required (any unique string of up to 255 characters, e.g. a UUID)",
        ));
    };
    match value.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= 255 => Ok(key.trim().to_owned()),
        _ => Err(ApiError::bad_request(
            "idempotency_key_invalid",
            "Idempotency-Key: 1 to 255 visible ASCII characters",
        )),
    }
}

/// Who is calling: the IAM identity API Gateway verified (an assumed role as the role, whatever
/// its session); `local` when there is none (the local stack).
pub fn caller(request: &Request) -> String {
    let iam = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.iam.as_ref()),
        _ => None,
    };
    let Some(iam) = iam else {
        return "local".to_owned();
    };
    match iam.user_arn.as_deref() {
        Some(arn) if arn.contains(":assumed-role/") => {
            // arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION -> .../ROLE
            arn.rsplit_once('/')
                .map_or(arn, |(role, _)| role)
                .to_owned()
        }
        Some(arn) => arn.to_owned(),
        None => iam
            .caller_id
            .clone()
            .or_else(|| iam.account_id.clone())
            .unwrap_or_else(|| "unknown".to_owned()),
    }
}

fn digest(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

/// How long a key stays in flight if its request dies before answering.
pub const IN_FLIGHT_LEASE: Duration = Duration::from_secs(30);
