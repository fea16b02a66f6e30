//! The local stack's HTTP face: `POST /webhook` (the receiver, as API Gateway would call it),
//! the messages API (`POST /messages`, `GET`/`DELETE /messages/{id}`, `POST /batches`,
//! `GET`/`DELETE /batches/{id}`, `GET /optouts`, `GET`/`PUT`/`DELETE /optouts/{channel}/{identity}`,
//! `DELETE /contacts/{channel}/{identity}`;
//! no authentication locally), `GET /status` (JSON),
//! `GET /events` (the last events, JSON, newest first), `GET /simulator/sent` (what the Sinch
//! simulator received, with when), and the console:
//! `GET /` (the page, [`super::console`]), `GET /console/state`, `GET /console/messages?page=N`,
//! `GET /console/stream` (Server-Sent Events), `GET /console/dead-letters` and
//! `POST /console/dead-letters/redrive`.
//!
//! Only `/webhook` is for the world (a tunnel points at it). Every other route answers local
//! requests only ([`super::local_only`]: a loopback peer and `Host`, nothing forwarded, the
//! page's own `Origin`), so neither a tunnel nor a page of another site (DNS rebinding
//! included) reaches the API, the console or the feeds. The console's one write (a redrive)
//! also needs the header `X-Console: 1`, which a page of another site cannot send without a
//! CORS preflight that is never granted. The stack listens on loopback unless `--host` says
//! otherwise.

use std::sync::Arc;

use api::Api;
use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use pipeline::queue::Queue;
use pipeline::store::Store;
use receiver::{Outcome, Receiver, handle_request};

use super::event_source::Source;
use super::server::{self, BodyFailure};
use super::stats::{Stats, Status};
use super::{console, local_only};

/// What the routes share.
pub struct App<Q, S, Src> {
    /// The receiver behind `POST /webhook`.
    pub receiver: Receiver<Q>,
    /// The messages API, queueing on the outbound queue.
    pub api: Api<S, Q>,
    /// The largest body any route reads.
    pub max_body_bytes: usize,
    /// How long a client may take to send a body.
    pub body_timeout: std::time::Duration,
    /// The callbacks' queue, as its event source sees it.
    pub source: Arc<Src>,
    /// The outbound queue (the fast lane), as its event source sees it.
    pub outbound_source: Arc<Src>,
    /// The bulk lane's queue, as its event source sees it.
    pub bulk_source: Arc<Src>,
    /// What is scheduled for later (the stand-in for EventBridge Scheduler).
    pub scheduler: pipeline::schedule::MemoryScheduler,
    /// The send rates the worker holds to.
    pub pacing: pipeline::pacing::Pacing,
    /// What `/status` reports.
    pub stats: Arc<Stats>,
    /// The Sinch simulator's log, when it runs: replies are counted there.
    pub sent: Option<super::simulator::Sent>,
    /// The events made so far.
    pub events: publisher::MemorySink,
    /// What the console shows.
    pub console: Arc<console::Console>,
}

/// Every route of `serve`, over `app`.
pub fn router<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    app: Arc<App<Q, S, Src>>,
) -> Router {
    // The messages API's paths, from its own list; its router answers each method.
    let api = api::routes::paths()
        .into_iter()
        .fold(Router::new(), |router, path| {
            router.route(path, any(messages::<Q, S, Src>))
        });
    let local = api
        .route("/status", get(status_json::<Q, S, Src>))
        .route("/events", get(events_json::<Q, S, Src>))
        .route("/simulator/sent", get(simulator_sent::<Q, S, Src>))
        .route("/", get(console_page))
        .route("/console/state", get(console_state::<Q, S, Src>))
        .route("/console/messages", get(console_messages::<Q, S, Src>))
        .route("/console/stream", get(console_stream::<Q, S, Src>))
        .route("/console/sending", get(console_sending::<Q, S, Src>))
        .route(
            "/console/dead-letters",
            get(console_dead_letters::<Q, S, Src>),
        )
        .route(
            "/console/dead-letters/redrive",
            axum::routing::post(console_redrive::<Q, S, Src>),
        )
        .route_layer(axum::middleware::from_fn(local_only::guard));
    Router::new()
        .route("/webhook", any(webhook::<Q, S, Src>))
        .merge(local)
        .fallback(not_found)
        .with_state(app)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({"error": {"code": "not_found", "message": "no such route"}})),
    )
        .into_response()
}

/// The receiver, given the request as Lambda would get it from API Gateway.
async fn webhook<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let mut excerpt = Vec::new();
    let mut size = 0;
    let outcome = match server::read_body(body, app.max_body_bytes, app.body_timeout).await {
        Ok(bytes) => {
            size = bytes.len();
            excerpt.extend_from_slice(&bytes[..size.min(console::BODY_KEEP)]);
            let body = match String::from_utf8(bytes) {
                Ok(text) => lambda_http::Body::Text(text),
                Err(binary) => lambda_http::Body::Binary(binary.into_bytes()),
            };
            let started = std::time::Instant::now();
            let outcome =
                handle_request(&app.receiver, lambda_http::Request::from_parts(parts, body)).await;
            app.stats.invoked("receiver", started.elapsed());
            outcome
        }
        Err(BodyFailure::TooLarge) => Outcome::TooLarge {
            size: app.max_body_bytes + 1,
            limit: app.max_body_bytes,
        },
        Err(failure) => {
            tracing::warn!(reason = failure.reason(), "request body not read");
            app.stats.answered(false, failure.reason());
            let response = failure.into_response();
            app.console.door(
                (false, failure.reason(), response.status().as_u16()),
                &[],
                0,
                &headers,
            );
            return response;
        }
    };
    let accepted = matches!(outcome, Outcome::Accepted { .. });
    let reason = outcome.reason();
    app.stats.answered(accepted, reason);
    let response = into_axum(outcome.into_response());
    app.console.door(
        (accepted, reason, response.status().as_u16()),
        &excerpt,
        size,
        &headers,
    );
    response
}

/// The messages API, given the request as Lambda would get it from API Gateway.
async fn messages<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = if parts.uri.path().starts_with("/batches") {
        app.api.config.max_batch_body_bytes
    } else {
        app.api.config.max_body_bytes
    } + 1;
    let body = match server::read_body(body, limit, app.body_timeout).await {
        Ok(bytes) if bytes.is_empty() => lambda_http::Body::Empty,
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(binary) => lambda_http::Body::Binary(binary.into_bytes()),
        },
        // Over the limit: the API says so itself.
        Err(BodyFailure::TooLarge) => lambda_http::Body::Binary(vec![b' '; limit]),
        Err(failure) => {
            app.stats.answered(false, failure.reason());
            return failure.into_response();
        }
    };
    let posted_batch = parts.method == axum::http::Method::POST && parts.uri.path() == "/batches";
    let started = std::time::Instant::now();
    let response = api::handle(&app.api, lambda_http::Request::from_parts(parts, body)).await;
    app.stats.invoked("api", started.elapsed());
    if posted_batch
        && response.status() == 202
        && let lambda_http::Body::Text(text) = response.body()
        && let Some(id) = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|answer| answer["id"].as_str().map(str::to_owned))
    {
        app.console.batch_posted(&id);
    }
    into_axum(response)
}

/// The sending panel: the lanes' depths, sends a second over the last minute, the batches
/// posted here (as `GET /batches/{id}` answers), what is scheduled.
async fn console_sending<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    let fast = app.outbound_source.depths().await;
    let bulk = app.bulk_source.depths().await;
    let pending = app.scheduler.pending();
    let mut batches = Vec::new();
    for id in app.console.batches() {
        let request = lambda_http::http::Request::builder()
            .method("GET")
            .uri(format!("/batches/{id}"))
            .body(lambda_http::Body::Empty)
            .unwrap_or_default();
        let response = api::handle(&app.api, request).await;
        if let lambda_http::Body::Text(text) = response.body()
            && let Ok(view) = serde_json::from_str::<serde_json::Value>(text)
            && response.status() == 200
        {
            batches.push(view);
        }
    }
    let scheduled: Vec<serde_json::Value> = pending
        .iter()
        .take(50)
        .map(|(name, at_ms, lane)| {
            // msg-<id>: a message's send; defer-<id>: one waiting for a slot; <bat_...>-<n>: a
            // batch's fan-out.
            let (what, id) = if let Some(id) = name.strip_prefix("msg-") {
                ("message", id.to_owned())
            } else if let Some(id) = name.strip_prefix("defer-") {
                ("waiting for a slot", id.to_owned())
            } else {
                (
                    "batch",
                    name.rsplit_once('-')
                        .map_or(name.clone(), |(batch, _)| batch.to_owned()),
                )
            };
            serde_json::json!({"name": name, "what": what, "id": id,
                "at": pipeline::clock::rfc3339(*at_ms), "lane": lane.as_str()})
        })
        .collect();
    axum::Json(serde_json::json!({
        "lanes": {
            "transactional": fast.visible + fast.in_flight,
            "bulk": bulk.visible + bulk.in_flight,
            "scheduled": pending.len(),
        },
        "rate": app.stats.send_rate(),
        "limits": {
            "conversation": app.pacing.conversation_rate,
            "sms": app.pacing.sms_rate,
        },
        "batches": batches,
        "scheduled": scheduled,
    }))
    .into_response()
}

fn into_axum(response: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = response.into_parts();
    let body = match body {
        lambda_http::Body::Text(text) => AxumBody::from(text),
        lambda_http::Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    Response::from_parts(parts, body)
}

/// The whole status, queue depths included.
pub async fn status<Q, S, Src: Source>(app: &App<Q, S, Src>) -> Status {
    let mut status = app.stats.snapshot();
    let depths = app.source.depths().await;
    status.queue_visible = depths.visible;
    status.queue_in_flight = depths.in_flight;
    status.dead_letter_queue = depths.dead_letters;
    let outbound = app.outbound_source.depths().await;
    status.outbound_queue = outbound.visible + outbound.in_flight;
    status.outbound_dead_letter_queue = outbound.dead_letters;
    let bulk = app.bulk_source.depths().await;
    status.bulk_queue = bulk.visible + bulk.in_flight;
    status.bulk_dead_letter_queue = bulk.dead_letters;
    status.scheduled = app.scheduler.pending().len() as u64;
    if let Some(sent) = &app.sent {
        let counts = sent.counts();
        status.replies_sent = counts.messages;
        status.replies_duplicated = counts.duplicated;
        status.sinch_throttled = counts.throttled;
    }
    status
}

async fn status_json<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    axum::Json(status(&app).await).into_response()
}

/// What the Sinch simulator received, in order, with when (404 when real Sinch is used).
async fn simulator_sent<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    match &app.sent {
        Some(sent) => axum::Json(sent.all()).into_response(),
        None => not_found().await,
    }
}

async fn events_json<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    let events: Vec<serde_json::Value> = app.events.last().iter().map(|e| e.envelope()).collect();
    axum::Json(events).into_response()
}

/// The console page: one self-contained file, no external fonts or scripts.
async fn console_page() -> Response {
    let mut response = Html(include_str!("console.html")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Nothing from elsewhere, ever: the page works offline and cannot be made to load more.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    page: usize,
}

/// Everything the page starts from.
async fn console_state<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Response {
    let mut state = app.console.state(query.page);
    state["stats"] = serde_json::to_value(status(&app).await).unwrap_or_default();
    state["dead_letters"] =
        serde_json::to_value(app.source.dead_letters().await).unwrap_or_default();
    state["events"] = app
        .events
        .last()
        .iter()
        .take(20)
        .map(|e| e.envelope())
        .collect();
    axum::Json(state).into_response()
}

async fn console_messages<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    axum::extract::Query(query): axum::extract::Query<PageQuery>,
) -> Response {
    axum::Json(app.console.state(query.page)["messages"].take()).into_response()
}

async fn console_dead_letters<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    axum::Json(app.source.dead_letters().await).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
struct RedriveRequest {
    /// One dead letter; all of them when absent.
    id: Option<String>,
}

async fn console_redrive<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if headers.get("x-console").and_then(|v| v.to_str().ok()) != Some("1") {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": {"code": "console_header_missing", "message": "send X-Console: 1 (the console's own requests do)"}})),
        )
            .into_response();
    }
    let request: RedriveRequest = if body.is_empty() {
        RedriveRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"error": {"code": "malformed_json", "message": error.to_string()}})),
                )
                    .into_response();
            }
        }
    };
    let moved = app.source.redrive(request.id.as_deref()).await;
    app.console.dead_letters_changed();
    match moved {
        Ok(0) if request.id.is_some() => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": {"code": "not_found", "message": "no such message in the dead-letter queue"}})),
        )
            .into_response(),
        Ok(moved) => {
            tracing::info!(moved, "redriven from the console");
            axum::Json(serde_json::json!({"moved": moved})).into_response()
        }
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "unavailable", "message": error}})),
        )
            .into_response(),
    }
}

/// Live updates: at most four a second, each with what changed since the last one sent, and
/// the counters; a comment every 15 s keeps idle connections open.
async fn console_stream<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    axum::extract::Query(cursor): axum::extract::Query<console::CursorQuery>,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let start = console::Cursor {
        version: cursor.version,
        door_seq: cursor.door_seq,
        dead_letters_version: cursor.dead_letters_version,
    };
    let stream = futures::stream::unfold((app, start), |(app, mut cursor)| async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let Some((mut update, next)) = app.console.changes(&cursor) else {
                continue;
            };
            let dead_letters_changed = next.dead_letters_version != cursor.dead_letters_version;
            cursor = next;
            update["stats"] = serde_json::to_value(status(&app).await).unwrap_or_default();
            if dead_letters_changed {
                update["dead_letters"] =
                    serde_json::to_value(app.source.dead_letters().await).unwrap_or_default();
            }
            let event = Event::default().event("update").data(update.to_string());
            return Some((Ok::<_, std::convert::Infallible>(event), (app, cursor)));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}
