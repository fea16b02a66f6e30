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
//! | the store or the queue unavailable | 503 `unavailable`, `Retry-After`; retry with the same key: it is the same message |
//! | `GET /messages/{id}` | 200, the status ([`status`]); 404 `not_found` (no such message, another caller's, or an id no message can have) |
//! | another path / method | 404 `not_found` / 405 `method_not_allowed` |
//!
//! **One key, one message, whatever fails.** The key's claim holds the message id from its
//! start, so a retry after any failure (this Lambda dying after the enqueue, an idempotency
//! record that could not be completed, a 503) finds the same message, and never queues a second
//! one: it answers what the first would have, queueing the message again only when it cannot
//! tell whether the first enqueue landed (the send-once ledger makes that harmless). When the
//! enqueue fails, the message is marked `FAILED` (`ENQUEUE_FAILED`) only if no attempt to send it
//! has begun (a fenced write, so it can then never be sent) and the key is released, so the
//! retry starts afresh; if an attempt has begun, the enqueue did land and the answer is 202.
//!
//! **Who reads what.** `GET /messages/{id}` answers a message of the messages API only to the
//! caller who sent it (the same identity as for keys); anyone else gets 404, as for a message
//! that does not exist. Replies of the pipeline (`rpl_...`) belong to the deployment, not to a
//! caller: every caller allowed to invoke the API may read them. Error bodies carry our code and
//! message only; what went wrong underneath is logged, never answered.
//!
//! Keys are scoped to the caller: the IAM identity API Gateway authenticated (an assumed role
//! counts as the role, whatever its session), `local` in the local stack. A refusal by a rule is
//! remembered under the key like an acceptance; an answer of ours that says "try again" (503)
//! is not.
//!
//! [`handle`] is a plain async function over its dependencies; `main.rs` wires it to
//! `lambda_http`, and the local stack serves it over axum.

#![warn(missing_docs)]

pub mod batches;
pub mod config;
pub mod contacts;
pub mod error;
pub mod guards;
pub mod lambda;
pub mod optouts;
pub mod request;
pub mod routes;
pub mod status;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use pipeline::clock::{Clock, unix_millis};
use pipeline::envelope::Envelope;
use pipeline::jobs::schedule_name;
use pipeline::jobs::{OutboundJob, SEND_JOB};
use pipeline::queue::Queue;
use pipeline::schedule::{self, Due, Lane, Lanes, MemoryScheduler, Scheduler, is_later};
use pipeline::send_rules::{self, Check};
use pipeline::status::Status;
use pipeline::store::{
    Acceptance, AcceptedMessage, Claim, ClaimRequest, ContactKey, Finished, MessageKey, Reason,
    SendFinish, SendResult, SendState, Store,
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
pub struct Api<S, Q, C = MemoryScheduler> {
    /// Where messages, keys and contacts are kept.
    pub store: S,
    /// The lanes' queues the worker sends from: single sends go by the fast lane, batches by
    /// the bulk lane unless they say otherwise.
    pub lanes: Lanes<Q>,
    /// Takes work due later (`send_at`, quiet hours) to its queue at its time.
    pub scheduler: C,
    /// What the deployment allows.
    pub config: ApiConfig,
    /// What "now" is (the system clock but in tests).
    pub clock: Clock,
}

impl<S, Q, C> Api<S, Q, C> {
    /// The API `config` describes, over its adapters: the Lambda's start-up and the local
    /// stack both build it here.
    pub fn new(config: ApiConfig, store: S, lanes: Lanes<Q>, scheduler: C) -> Self {
        Self {
            store,
            lanes,
            scheduler,
            config,
            clock: Clock::System,
        }
    }
}

/// The answer, before it becomes HTTP: what a replay repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// `Location`, for 202s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `Retry-After`, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
    /// A replay of an earlier answer to the same `Idempotency-Key` (`Idempotent-Replayed: true`).
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

    /// The HTTP response, headers included.
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
pub async fn handle<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: Request,
) -> Response<Body> {
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

async fn route<S: Store, Q: Queue, C: Scheduler>(api: &Api<S, Q, C>, request: Request) -> Answer {
    let path = request.uri().path().to_owned();
    // A named stage (not `$default`) puts its name in front of the path.
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let routed = stage
        .filter(|stage| stage != "$default")
        .and_then(|stage| path.strip_prefix(&format!("/{stage}")).map(str::to_owned))
        .unwrap_or_else(|| path.clone());
    let routed = routed.strip_suffix('/').unwrap_or(&routed);
    let not_found = || ApiError::new(404, "not_found", "no such route").into();
    match (request.method(), Endpoint::of(routed)) {
        (&Method::POST, Some(Endpoint::Messages)) => post(api, request, Kind::Message).await,
        (&Method::GET, Some(Endpoint::Message(id))) => read(api, &request, id).await,
        (&Method::DELETE, Some(Endpoint::Message(id))) => cancel(api, &request, id).await,
        (&Method::POST, Some(Endpoint::Batches)) => post(api, request, Kind::Batch).await,
        (&Method::GET, Some(Endpoint::Batch(id))) => batches::read(api, &request, id).await,
        (&Method::DELETE, Some(Endpoint::Batch(id))) => batches::cancel(api, &request, id).await,
        (_, Some(Endpoint::Messages)) => {
            ApiError::new(405, "method_not_allowed", "POST /messages").into()
        }
        (_, Some(Endpoint::Message(_))) => {
            ApiError::new(405, "method_not_allowed", "GET, DELETE /messages/{id}").into()
        }
        (_, Some(Endpoint::Batches)) => {
            ApiError::new(405, "method_not_allowed", "POST /batches").into()
        }
        (_, Some(Endpoint::Batch(_))) => {
            ApiError::new(405, "method_not_allowed", "GET, DELETE /batches/{id}").into()
        }
        (method, Some(Endpoint::OptOut(channel, identity))) => {
            let contact = match optouts::contact(channel, identity) {
                Ok(contact) => contact,
                Err(error) => return error.into(),
            };
            match *method {
                Method::GET => optouts::read(api, &contact).await,
                Method::PUT => optouts::set(api, &request, &contact, true).await,
                Method::DELETE => optouts::set(api, &request, &contact, false).await,
                _ => ApiError::new(
                    405,
                    "method_not_allowed",
                    "GET, PUT, DELETE /optouts/{channel}/{identity}",
                )
                .into(),
            }
        }
        (method, Some(Endpoint::Contact(channel, identity))) => {
            let contact = match optouts::contact(channel, identity) {
                Ok(contact) => contact,
                Err(error) => return error.into(),
            };
            if *method == Method::DELETE {
                contacts::erase(api, &contact).await
            } else {
                ApiError::new(
                    405,
                    "method_not_allowed",
                    "DELETE /contacts/{channel}/{identity}",
                )
                .into()
            }
        }
        (&Method::GET, Some(Endpoint::OptOuts)) => optouts::list(api, &request).await,
        (_, Some(Endpoint::OptOuts)) => {
            ApiError::new(405, "method_not_allowed", "GET /optouts").into()
        }
        (_, None) => not_found(),
    }
}

/// The endpoints of [`routes::ROUTES`], matched exactly (an HTTP path; not a Sinch route).
enum Endpoint<'a> {
    Messages,
    Message(&'a str),
    Batches,
    Batch(&'a str),
    OptOuts,
    OptOut(&'a str, &'a str),
    Contact(&'a str, &'a str),
}

impl<'a> Endpoint<'a> {
    fn of(path: &'a str) -> Option<Self> {
        if let Some(rest) = path.strip_prefix("/contacts/") {
            let (channel, identity) = rest.split_once('/')?;
            return (!channel.is_empty() && !identity.is_empty() && !identity.contains('/'))
                .then_some(Endpoint::Contact(channel, identity));
        }
        if let Some(rest) = path.strip_prefix("/optouts") {
            if rest.is_empty() {
                return Some(Endpoint::OptOuts);
            }
            let (channel, identity) = rest.strip_prefix('/')?.split_once('/')?;
            return (!channel.is_empty() && !identity.is_empty() && !identity.contains('/'))
                .then_some(Endpoint::OptOut(channel, identity));
        }
        let (rest, many): (&str, fn() -> Endpoint<'a>) =
            if let Some(rest) = path.strip_prefix("/messages") {
                (rest, || Endpoint::Messages)
            } else {
                (path.strip_prefix("/batches")?, || Endpoint::Batches)
            };
        if rest.is_empty() {
            return Some(many());
        }
        let id = rest.strip_prefix('/')?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        Some(match many() {
            Endpoint::Messages => Endpoint::Message(id),
            _ => Endpoint::Batch(id),
        })
    }
}

/// A request's body as bytes (empty when it has none).
pub(crate) fn body_bytes(request: &Request) -> Vec<u8> {
    match request.body() {
        Body::Text(text) => text.as_bytes().to_vec(),
        Body::Binary(bytes) => bytes.clone(),
        _ => Vec::new(),
    }
}

/// The longest id a message of ours can have (`rpl_` and Sinch's id, `msg_` and a ULID).
const MAX_ID_LENGTH: usize = 160;

/// Whether `id` can be one of ours: ids are ASCII letters, digits, `_` and `-`.
pub(crate) fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LENGTH
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `GET /messages/{id}`: only to the caller who sent it (replies, to any caller).
async fn read<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
    id: &str,
) -> Answer {
    let not_found = || ApiError::new(404, "not_found", "no such message").into();
    if !plausible_id(id) {
        return not_found();
    }
    match api
        .store
        .message_state(&MessageKey::Ours(id.to_owned()))
        .await
    {
        Ok(Some(state))
            if state
                .caller
                .as_deref()
                .is_none_or(|owner| owner == caller(request)) =>
        {
            Answer::json(200, status::view(id, &state))
        }
        Ok(_) => not_found(),
        Err(error) => ApiError::unavailable_because("read message", &error).into(),
    }
}

/// What becomes of the key after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFate {
    /// Remember the answer under the key (replayed for its TTL).
    Complete,
    /// Give the key up: a retry starts afresh (with a new message id).
    Release,
    /// Leave the claim as it is until its lease runs out: a retry then takes it over, with the
    /// same message id.
    Keep,
}

/// What is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Batch,
}

/// What was posted, checked (the rules that need the store come after the key is claimed).
enum Posted {
    Message(Box<Valid>),
    Batch(batches::Prepared),
}

/// A request refused at the door: its key's answer when the key was completed for this very
/// body (a retry after its `expire_at` passed, or after a setting changed, is the same
/// request), else the refusal. The claim this takes to know is given back at once.
async fn refused_unless_answered<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    scoped: &str,
    payload_hash: &str,
    now_ms: u64,
    error: ApiError,
) -> Answer {
    let claim = ClaimRequest {
        key: scoped,
        payload_hash,
        lease_until_ms: now_ms.saturating_add(1000),
        now_ms,
        value: None,
    };
    match api.store.claim(&claim).await {
        Ok(Claim::Completed {
            same_payload: true,
            response: Some(response),
        }) => match serde_json::from_str::<Answer>(&response) {
            Ok(answer) => Answer {
                replayed: true,
                ..answer
            },
            Err(_) => error.into(),
        },
        Ok(Claim::Claimed { value: None }) => {
            if let Err(release) = api.store.release(scoped).await {
                warn!(error = %release, "could not give back a key claimed to look for its answer; it frees itself in a second");
            }
            error.into()
        }
        _ => error.into(),
    }
}

/// `POST /messages` and `POST /batches`: the key, the body, the claim, then the acceptance.
async fn post<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: Request,
    kind: Kind,
) -> Answer {
    let key = match idempotency_key(&request) {
        Ok(key) => key,
        Err(error) => return error.into(),
    };
    let caller = caller(&request);
    let body = body_bytes(&request);
    let limit = match kind {
        Kind::Message => api.config.max_body_bytes,
        Kind::Batch => api.config.max_batch_body_bytes,
    };
    if body.len() > limit {
        return ApiError::new(
            413,
            "body_too_large",
            format!("the body is {} bytes, at most {limit}", body.len()),
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
    let now_ms = unix_millis(api.clock.now());
    let posted = match kind {
        Kind::Message => parse(&body)
            .and_then(|r| r.validate(&api.config.context(now_ms, Lane::Transactional)))
            .map(|valid| Posted::Message(Box::new(valid))),
        Kind::Batch => {
            batches::prepare(&body, &api.config.context(now_ms, Lane::Bulk)).map(Posted::Batch)
        }
    };
    // A campaign in the fast lane only for a caller allowed to put it there.
    let posted = posted.and_then(|posted| match &posted {
        Posted::Batch(prepared)
            if prepared
                .valid
                .iter()
                .any(|one| one.lane == Lane::Transactional) =>
        {
            api.config
                .guards
                .fast_lane_batches(&caller)
                .map(|()| posted)
        }
        _ => Ok(posted),
    });
    // The key, scoped to the caller; the body's hash tells a replay from a reuse. The claim
    // reserves the message's id from the start.
    let scoped = format!("api/{}/{key}", digest(caller.as_bytes()));
    let payload_hash = digest(&body);
    let posted = match posted {
        Ok(posted) => posted,
        // Refused as it stands now (a time passed, a setting changed): a request this key
        // already answered is replayed all the same.
        Err(error) => {
            return refused_unless_answered(api, &scoped, &payload_hash, now_ms, error).await;
        }
    };
    let reserved = match kind {
        Kind::Message => format!("msg_{}", ulid::Ulid::generate()),
        Kind::Batch => format!("bat_{}", ulid::Ulid::generate()),
    };
    let claim = ClaimRequest {
        key: &scoped,
        payload_hash: &payload_hash,
        lease_until_ms: now_ms.saturating_add(
            u64::try_from(api.config.in_flight_lease.as_millis()).unwrap_or(u64::MAX),
        ),
        now_ms,
        value: Some(&reserved),
    };
    let (id, retried) = match api.store.claim(&claim).await {
        Ok(Claim::Claimed { value: Some(held) }) if held != reserved => (held, true),
        Ok(Claim::Claimed { .. }) => (reserved, false),
        Ok(Claim::Completed {
            same_payload: true,
            response,
        }) => {
            return match response.and_then(|r| serde_json::from_str::<Answer>(&r).ok()) {
                Some(answer) => Answer {
                    replayed: true,
                    ..answer
                },
                None => ApiError::unavailable_because(
                    "replay",
                    &"the first answer to this key cannot be read",
                )
                .into(),
            };
        }
        Ok(Claim::Completed {
            same_payload: false,
            ..
        })
        | Ok(Claim::Reused) => {
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
        Err(error) => return ApiError::unavailable_because("claim key", &error).into(),
    };

    let (answer, fate) = match posted {
        Posted::Message(valid) => accept(api, *valid, &caller, &id, retried, now_ms).await,
        Posted::Batch(prepared) => {
            batches::accept(api, prepared, &caller, &id, retried, now_ms).await
        }
    };
    match fate {
        KeyFate::Complete => {
            let expires_at_s = now_ms / 1000 + api.config.key_ttl.as_secs();
            let remembered = serde_json::to_string(&answer).unwrap_or_default();
            if let Err(error) = api
                .store
                .complete(&scoped, expires_at_s, Some(&remembered))
                .await
            {
                // The claim holds the id: a retry after the lease finds this same message.
                error!(%error, %id, "answered, but the idempotency key could not be completed");
            }
        }
        KeyFate::Release => {
            if let Err(error) = api.store.release(&scoped).await {
                warn!(%error, %id, "could not release the idempotency key; it frees itself after the lease");
            }
        }
        KeyFate::Keep => {}
    }
    answer
}

/// The answer that says where the message is, and what it is now.
fn accepted_answer(id: &str, valid: &Valid, scheduled: bool) -> Answer {
    let mut body = serde_json::json!({
        "id": id,
        "status": if scheduled { Status::Scheduled } else { Status::Accepted }.as_str(),
    });
    if scheduled {
        body["scheduled_at"] = pipeline::clock::rfc3339(valid.due_ms).into();
    }
    if let Some(sms) = valid.sms {
        body["sms"] = serde_json::json!({"encoding": sms.encoding, "parts": sms.parts});
    }
    Answer {
        location: Some(format!("/messages/{id}")),
        ..Answer::json(202, body)
    }
}

/// Puts `envelope` on its lane's queue now, or has the scheduler bring it there at `due_ms`;
/// a failure's words (logged, never answered).
pub(crate) async fn dispatch<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    name: String,
    lane: Lane,
    due_ms: u64,
    envelope: Envelope,
    now_ms: u64,
) -> Result<(), String> {
    let due = Due {
        name,
        at_ms: due_ms,
        lane,
        envelope,
    };
    schedule::dispatch(
        &api.lanes,
        &api.scheduler,
        &due,
        now_ms,
        api.config.enqueue_timeout,
    )
    .await
}

/// `DELETE /messages/{id}`: a message that has not left ends `CANCELED`; one that has is 409.
async fn cancel<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    request: &Request,
    id: &str,
) -> Answer {
    let not_found = || ApiError::new(404, "not_found", "no such message").into();
    if !plausible_id(id) {
        return not_found();
    }
    let key = MessageKey::Ours(id.to_owned());
    let state = match api.store.message_state(&key).await {
        Ok(Some(state)) if state.caller.as_deref() == Some(caller(request).as_str()) => state,
        Ok(_) => return not_found(),
        Err(error) => return ApiError::unavailable_because("read message", &error).into(),
    };
    let not_cancelable = |why: String| ApiError::new(409, "not_cancelable", why).into();
    if state.status.is_final() {
        return not_cancelable(format!("it has ended: {}", state.status));
    }
    let result = SendResult::Ended {
        status: Status::Canceled,
        reason: Reason::new(send_rules::CANCELED, Some("canceled by its sender".into())),
    };
    let at_ms = unix_millis(api.clock.now());
    match api
        .store
        .finish_send(&SendFinish {
            id,
            attempt: None,
            result: &result,
            at_ms,
        })
        .await
    {
        Ok(Finished::Recorded) => {}
        Ok(Finished::Superseded) => return not_cancelable("it has left".into()),
        Err(error) => return ApiError::unavailable_because("cancel message", &error).into(),
    }
    if let Err(error) = api.scheduler.cancel(&schedule_name(id)).await {
        // Its job, when it comes, finds the message ended and sends nothing.
        warn!(%error, %id, "canceled, but its schedule could not be removed");
    }
    match api.store.message_state(&key).await {
        Ok(Some(state)) => Answer::json(200, status::view(id, &state)),
        _ => Answer::json(200, serde_json::json!({"id": id, "status": "CANCELED"})),
    }
}

/// The rules that need the store, then `ACCEPTED` under `id`, then the queue; with what
/// becomes of the key. `retried`: the id was reserved by an earlier request with this key
/// (whose lease ran out), so the message may exist.
async fn accept<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    valid: Valid,
    caller: &str,
    id: &str,
    retried: bool,
    now_ms: u64,
) -> (Answer, KeyFate) {
    let accepted = AcceptedMessage {
        id: id.to_owned(),
        channel: valid.channel.clone(),
        to: valid.to.clone(),
        metadata: valid.metadata.clone(),
        caller: caller.to_owned(),
        at_ms: now_ms,
        status: if is_later(valid.due_ms, now_ms) {
            Status::Scheduled
        } else {
            Status::Accepted
        },
        scheduled_at_ms: is_later(valid.due_ms, now_ms).then_some(valid.due_ms),
        batch: None,
        fallback: valid
            .channels
            .iter()
            .skip(1)
            .map(|channel| pipeline::store::person(channel, &valid.to))
            .collect(),
    };
    let scheduled = accepted.status == Status::Scheduled;
    // A message already under this id is this request's, from an earlier try: where it got to
    // decides. A new one must pass the rules first.
    let existing = if retried {
        match api
            .store
            .message_state(&MessageKey::Ours(id.to_owned()))
            .await
        {
            Ok(existing) => existing,
            Err(error) => return unavailable("read message", &error, KeyFate::Keep),
        }
    } else {
        None
    };
    let existing = match existing {
        Some(state) => Some(state),
        None => {
            if let Err(error) = rules(api, &valid, now_ms).await {
                return (error.into(), KeyFate::Complete);
            }
            if let Err((error, fate)) = guard(api, &valid, now_ms).await {
                return (error.into(), fate);
            }
            match api.store.accept_message(&accepted).await {
                Ok(Acceptance::New) => None,
                Ok(Acceptance::Existing(state)) => Some(*state),
                // It may have been written: keep the id, so that the retry finds it.
                Err(error) => return unavailable("accept message", &error, KeyFate::Keep),
            }
        }
    };
    if let Some(state) = existing {
        let enqueue_failed = state.send == Some(SendState::Failed)
            && state.reason().is_some_and(|r| r.code == ENQUEUE_FAILED);
        if enqueue_failed {
            // It ended before it left: a retry starts a new message.
            return unavailable("enqueue", &"an earlier enqueue failed", KeyFate::Release);
        }
        let left =
            state.send.is_some() || !matches!(state.status, Status::Accepted | Status::Scheduled);
        if left {
            info!(%id, status = %state.status, "a retry of a message already queued: answered, nothing queued");
            return (accepted_answer(id, &valid, scheduled), KeyFate::Complete);
        }
        // ACCEPTED and nothing more: whether the first enqueue landed cannot be told. Queue it
        // (again): the ledger sends one message whatever number of jobs name it.
    }
    let job = OutboundJob {
        id: id.to_owned(),
        to: valid.to.clone(),
        route: valid.route.clone(),
        expires_at_ms: valid.expires_at_ms,
        batch: None,
        lane: valid.lane,
        quiet_hours: valid.quiet_hours.clone(),
    };
    let body = match serde_json::to_string(&job) {
        Ok(body) => body,
        Err(error) => return unavailable("serialize job", &error, KeyFate::Release),
    };
    let envelope = Envelope::job(SEND_JOB, body, SystemTime::now());
    let detail = match dispatch(
        api,
        schedule_name(id),
        valid.lane,
        valid.due_ms,
        envelope,
        now_ms,
    )
    .await
    {
        Ok(()) => {
            info!(%id, channel = %accepted.channel, scheduled, lane = valid.lane.as_str(), "message accepted and queued");
            return (accepted_answer(id, &valid, scheduled), KeyFate::Complete);
        }
        Err(detail) => detail,
    };
    // The queue may have taken it all the same (a timeout). FAILED, if no attempt began, makes
    // sure it can never be sent; the key is given back, so the retry is the only message.
    let reason = Reason::new(ENQUEUE_FAILED, Some(detail.clone()));
    let fail = SendFinish {
        id,
        attempt: None,
        result: &SendResult::Refused { reason },
        at_ms: now_ms,
    };
    match api.store.finish_send(&fail).await {
        Ok(Finished::Recorded) => unavailable("enqueue", &detail, KeyFate::Release),
        // An attempt began: the job is in the queue after all, and on its way.
        Ok(Finished::Superseded) => {
            info!(%id, %detail, "the enqueue reported a failure, but the job arrived: accepted");
            (accepted_answer(id, &valid, scheduled), KeyFate::Complete)
        }
        // Neither could be written: keep the key (and its id) until its lease ends, so the retry
        // finds this message and cannot race a job that may be in the queue.
        Err(error) => unavailable("enqueue", &format!("{detail}; {error}"), KeyFate::Keep),
    }
}

/// Reason code: the messages API could not queue the message, and it never left.
pub const ENQUEUE_FAILED: &str = "ENQUEUE_FAILED";

fn unavailable(
    during: &'static str,
    detail: &dyn std::fmt::Display,
    fate: KeyFate,
) -> (Answer, KeyFate) {
    (ApiError::unavailable_because(during, detail).into(), fate)
}

/// The rules decided from what the worker knows: opt-outs, and WhatsApp's window
/// ([`pipeline::send_rules`], which the worker checks again when the message leaves).
async fn rules<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    valid: &Valid,
    now_ms: u64,
) -> Result<(), ApiError> {
    let contacts: Vec<ContactKey> = valid
        .channels
        .iter()
        .map(|channel| {
            let channel = if channel == request::SMS_API {
                "SMS"
            } else {
                channel
            };
            ContactKey::new(channel, &valid.to)
        })
        .collect();
    let check = Check {
        contacts: &contacts,
        whatsapp_free_form: valid.needs_whatsapp_window,
        answering: None,
        expires_at_ms: None,
        accepted_at_ms: None,
        now_ms,
    };
    match api.config.send_rules.check(&api.store, &check).await {
        Ok(None) => Ok(()),
        Ok(Some(refusal)) => Err(ApiError::unprocessable(refusal.code, refusal.message)),
        Err(error) => Err(ApiError::unavailable_because("read contact", &error)),
    }
}

/// The guards ([`guards`]) for one send, last before it is accepted (so that only what would
/// be sent is counted). A country refusal is remembered under the key like any rule; a limit
/// that frees with time is not.
async fn guard<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    valid: &Valid,
    now_ms: u64,
) -> Result<(), (ApiError, KeyFate)> {
    let guards = &api.config.guards;
    let refused = |error: ApiError, fate: KeyFate| {
        guards::count_refusal(&api.config.metrics, &error);
        Err((error, fate))
    };
    if let Err(error) = guards.country(&valid.channels, &valid.to) {
        return refused(error, KeyFate::Complete);
    }
    if let Err(error) = guards
        .velocity(&api.store, &valid.channels, &valid.to, now_ms)
        .await
    {
        return refused(error, KeyFate::Release);
    }
    match guards
        .monthly_caps(&api.store, &valid.channels, 1, now_ms)
        .await
    {
        Ok((1, _)) => Ok(()),
        Ok((_, held_by)) => refused(
            guards.cap_reached(held_by.as_deref().unwrap_or(&valid.channel), now_ms),
            KeyFate::Release,
        ),
        Err(error) => Err((error, KeyFate::Release)),
    }
}

fn parse(body: &[u8]) -> Result<SendRequest, ApiError> {
    // Not JSON at all, or JSON that is not a request: two different answers.
    if let Err(inner) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Err(ApiError::bad_request(
            "malformed_json",
            format!("the body is not JSON: {inner}"),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request =
        serde_path_to_error::deserialize::<_, SendRequest>(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if path == "." || path.is_empty() {
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

/// Serves requests from the Lambda runtime until it stops.
pub async fn run<S: Store, Q: Queue, C: Scheduler>(
    api: Api<S, Q, C>,
) -> Result<(), lambda_http::Error> {
    let api = &api;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(handle(api, request).await)
    }))
    .await
}

/// How long a key stays in flight if its request dies before answering.
pub const IN_FLIGHT_LEASE: Duration = Duration::from_secs(30);
