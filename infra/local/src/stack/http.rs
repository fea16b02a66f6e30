//! The local stack's HTTP face: `POST /webhook` (the receiver, as API Gateway would call it),
//! `POST /messages` and `GET /messages/{id}` (the messages API; no authentication locally),
//! `GET /status` (JSON), `GET /events` (the last events, JSON, newest first) and `GET /` (a small
//! live status page).

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

use super::door::{self, BodyFailure};
use super::event_source::Source;
use super::stats::{Stats, Status};

/// What the routes share.
pub struct App<Q, S, Src> {
    pub receiver: Receiver<Q>,
    /// The messages API, queueing on the outbound queue.
    pub api: Api<S, Q>,
    pub max_body_bytes: usize,
    /// How long a client may take to send a body.
    pub body_timeout: std::time::Duration,
    pub source: Arc<Src>,
    /// The outbound queue, as its event source sees it.
    pub outbound_source: Arc<Src>,
    pub stats: Arc<Stats>,
    /// The Sinch simulator's log, when it runs: replies are counted there.
    pub sent: Option<super::simulator::Sent>,
    /// The events made so far.
    pub events: publisher::MemorySink,
}

pub fn router<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    app: Arc<App<Q, S, Src>>,
) -> Router {
    Router::new()
        .route("/webhook", any(webhook::<Q, S, Src>))
        .route("/messages", any(messages::<Q, S, Src>))
        .route("/messages/{id}", any(messages::<Q, S, Src>))
        .route("/status", get(status_json::<Q, S, Src>))
        .route("/events", get(events_json::<Q, S, Src>))
        .route("/", get(status_page::<Q, S, Src>))
        .with_state(app)
}

/// The receiver, given the request as Lambda would get it from API Gateway.
async fn webhook<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let outcome = match door::read_body(body, app.max_body_bytes, app.body_timeout).await {
        Ok(bytes) => {
            let body = match String::from_utf8(bytes) {
                Ok(text) => lambda_http::Body::Text(text),
                Err(binary) => lambda_http::Body::Binary(binary.into_bytes()),
            };
            handle_request(&app.receiver, lambda_http::Request::from_parts(parts, body)).await
        }
        Err(BodyFailure::TooLarge) => Outcome::TooLarge {
            size: app.max_body_bytes + 1,
            limit: app.max_body_bytes,
        },
        Err(failure) => {
            tracing::warn!(reason = failure.reason(), "request body not read");
            app.stats.answered(false, failure.reason());
            return failure.into_response();
        }
    };
    app.stats.answered(
        matches!(outcome, Outcome::Accepted { .. }),
        outcome.reason(),
    );
    into_axum(outcome.into_response())
}

/// The messages API, given the request as Lambda would get it from API Gateway.
async fn messages<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = app.api.config.max_body_bytes + 1;
    let body = match door::read_body(body, limit, app.body_timeout).await {
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
    let response = api::handle(&app.api, lambda_http::Request::from_parts(parts, body)).await;
    into_axum(response)
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
    if let Some(sent) = &app.sent {
        let counts = sent.counts();
        status.replies_sent = counts.messages;
        status.replies_duplicated = counts.duplicated;
    }
    status
}

async fn status_json<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    axum::Json(status(&app).await).into_response()
}

async fn events_json<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    let events: Vec<serde_json::Value> = app.events.last().iter().map(|e| e.envelope()).collect();
    axum::Json(events).into_response()
}

async fn status_page<Q: Queue + 'static, S: Store + 'static, Src: Source>(
    State(app): State<Arc<App<Q, S, Src>>>,
) -> Response {
    let status = status(&app).await;
    let rows = |map: &std::collections::BTreeMap<String, u64>| -> String {
        if map.is_empty() {
            return "<tr><td colspan=2><em>none</em></td></tr>".to_owned();
        }
        map.iter()
            .map(|(k, v)| {
                format!(
                    "<tr><td>{}</td><td>{v}</td></tr>",
                    html_escape::encode_text(k)
                )
            })
            .collect()
    };
    let events: String = app
        .events
        .last()
        .iter()
        .take(20)
        .map(|entry| {
            format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                html_escape::encode_text(&pipeline::clock::rfc3339(entry.time_ms)),
                html_escape::encode_text(&entry.detail_type),
                html_escape::encode_text(&entry.detail),
            )
        })
        .collect();
    let events = if events.is_empty() {
        "<tr><td colspan=3><em>none yet</em></td></tr>".to_owned()
    } else {
        events
    };
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>sinch-hooks: local stack</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}table{{border-collapse:collapse;margin:0 2rem 1.5rem 0;display:inline-table;vertical-align:top}}td,th{{border:1px solid #ccc;padding:.3rem .7rem;text-align:left}}th{{background:#f3f3f3}}</style>
</head><body>
<h1>sinch-hooks: local stack</h1>
<p>POST signed callbacks to <code>/webhook</code>. JSON at <a href="/status">/status</a>. This page refreshes every 2 s.</p>
<table><tr><th colspan=2>Receiver</th></tr><tr><td>accepted</td><td>{accepted}</td></tr></table>
<table><tr><th colspan=2>Rejected, by reason</th></tr>{rejected}</table>
<table><tr><th colspan=2>Queues</th></tr><tr><td>queue, waiting</td><td>{visible}</td></tr><tr><td>queue, in flight</td><td>{in_flight}</td></tr><tr><td>dead-letter queue</td><td>{dlq}</td></tr></table>
<table><tr><th colspan=2>Processed, by kind</th></tr>{processed}<tr><td>duplicates</td><td>{duplicates}</td></tr><tr><td>retried</td><td>{retried}</td></tr></table>
<table><tr><th colspan=2>Dead-lettered by the worker</th></tr>{dead_lettered}</table>
<table><tr><th colspan=2>Message statuses</th></tr>{statuses}</table>
<table><tr><th colspan=2>Replies (at Sinch)</th></tr><tr><td>sent</td><td>{replies}</td></tr><tr><td>sent twice</td><td>{duplicated}</td></tr></table>
<h2>Last events</h2><p>As EventBridge would get them (JSON at <a href="/events">/events</a>).</p>
<table><tr><th>time</th><th>detail-type</th><th>detail</th></tr>{events}</table>
</body></html>"#,
        accepted = status.accepted,
        rejected = rows(&status.rejected),
        visible = status.queue_visible,
        in_flight = status.queue_in_flight,
        dlq = status.dead_letter_queue,
        processed = rows(&status.processed),
        duplicates = status.duplicates,
        retried = status.retried,
        dead_lettered = rows(&status.dead_lettered),
        statuses = rows(&status.message_statuses),
        replies = status.replies_sent,
        duplicated = status.replies_duplicated,
    );
    let mut response = Html(page).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *response.status_mut() = StatusCode::OK;
    response
}
