//! The receiver Lambda: the door Sinch knocks on.
//!
//! It does as little as possible, in this order: refuse anything but `POST`, refuse bodies over
//! the limit, verify the Sinch signature on the exact bytes received, put the callback on the
//! queue, and answer. No JSON is parsed here; everything slow or fallible beyond the enqueue
//! belongs to the worker.
//!
//! | situation | answer | side effect |
//! |---|---|---|
//! | valid signature, enqueued | 200 `{"status":"accepted"}` | one SQS message |
//! | a signature header missing (or not text) | 401 `missing_header` / `malformed_header` | nothing enqueued, warning logged (never a secret) |
//! | signature mismatch (every configured secret tried) or not base64 of 32 bytes | 401 `signature_mismatch` / `malformed_signature` | nothing enqueued |
//! | algorithm header present and not `HmacSHA256` | 401 `unsupported_algorithm` | nothing enqueued |
//! | timestamp not a number | 401 `malformed_timestamp` | nothing enqueued |
//! | authentic but older than the tolerance, or too far in the future | 401 `stale_signature` | sent to the DLQ with attribute `dead-letter-reason: stale_signature` |
//! | authentic but empty body (no SQS message can be empty) | 400 `empty_body` | nothing enqueued |
//! | body over the limit (`MAX_BODY_BYTES`, default 1 MiB), or too large for one SQS message once its attributes are added (the largest that fits is 1,048,236 bytes for a UTF-8 body, 786,156 for a body queued as base64) | 413 `body_too_large` | nothing enqueued |
//! | method other than POST | 405 `method_not_allowed`, `Allow: POST` | none |
//! | enqueue (or dead-lettering) failed or timed out | 503 `enqueue_failed` | none: Sinch retries; never a 2xx without a stored message |
//!
//! [`handle`] is a plain async function over its dependencies, so tests and benchmarks call it
//! without the Lambda runtime; [`run`] wires it to `lambda_http`.

#![warn(missing_docs)]

pub mod config;
pub mod lambda;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use envelope::{Envelope, STALE_SIGNATURE, SignatureHeaders};
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use platform::clock::Clock;
use platform::metrics::{Metric, Metrics, cold_start};
use platform::queue::{MessageId, Queue, QueueError};
use sinch::signature::{Rejection, SignatureParts, Verifier};
use tracing::{info, warn};

pub use config::ReceiverConfig;

/// The receiver's dependencies, built once per cold start and shared by every request.
#[derive(Debug)]
pub struct Receiver<Q> {
    verifier: Verifier,
    queue: Q,
    dead_letters: Q,
    max_body_bytes: usize,
    enqueue_timeout: Duration,
    clock: Clock,
    metrics: Metrics,
}

impl<Q: Queue> Receiver<Q> {
    /// A receiver with `config`'s secrets, tolerance and limits over the two queues.
    pub fn new(config: &ReceiverConfig, queue: Q, dead_letters: Q) -> Self {
        Self {
            verifier: Verifier::new(&config.secrets).with_tolerance(config.tolerance),
            queue,
            dead_letters,
            max_body_bytes: config.max_body_bytes,
            enqueue_timeout: config.enqueue_timeout,
            clock: Clock::System,
            metrics: Metrics::off(),
        }
    }

    /// The same receiver emitting EMF metrics there.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same receiver reading time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// What became of one request. Each outcome maps to exactly one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified and stored on the queue.
    Accepted {
        /// The queue's id of the stored message.
        message_id: MessageId,
        /// Which configured secret matched (0 = the first): during a rotation, the old secret
        /// can go once no callback matches it any more.
        secret_index: usize,
    },
    /// Not a verifiable Sinch callback; nothing stored.
    Rejected(Rejection),
    /// Authentic but out of the time tolerance: parked in the dead-letter queue.
    DeadLettered {
        /// Why it was out of tolerance.
        rejection: Rejection,
        /// The dead-letter queue's id of it.
        message_id: MessageId,
    },
    /// Authentic, but with an empty body, which no queue message can carry.
    EmptyBody,
    /// Over the body limit (or, once wrapped, over the queue's message limit).
    TooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// Not a POST.
    MethodNotAllowed,
    /// The queue did not confirm in time; the caller should retry.
    Unavailable {
        /// What the queue said (logged, never answered).
        detail: String,
    },
}

impl Outcome {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Accepted { .. } => StatusCode::OK,
            Outcome::Rejected(_) | Outcome::DeadLettered { .. } => StatusCode::UNAUTHORIZED,
            Outcome::EmptyBody => StatusCode::BAD_REQUEST,
            Outcome::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Outcome::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable snake_case code, used in the answer, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Rejected(rejection) => rejection.reason(),
            Outcome::DeadLettered { .. } => STALE_SIGNATURE,
            Outcome::EmptyBody => "empty_body",
            Outcome::TooLarge { .. } => "body_too_large",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::Unavailable { .. } => "enqueue_failed",
        }
    }

    /// The HTTP answer. Bodies are small JSON objects naming the reason, never a secret or a
    /// detail an attacker could learn from beyond which check failed.
    pub fn into_response(self) -> Response<Body> {
        let body = match &self {
            Outcome::Accepted { .. } => r#"{"status":"accepted"}"#.to_owned(),
            Outcome::Unavailable { .. } => {
                format!(r#"{{"status":"unavailable","reason":"{}"}}"#, self.reason())
            }
            _ => format!(r#"{{"status":"rejected","reason":"{}"}}"#, self.reason()),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self == Outcome::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// Handles one HTTP request: decides, logs, answers. Never fails: every outcome is an answer.
pub async fn handle<Q: Queue>(receiver: &Receiver<Q>, request: Request) -> Response<Body> {
    handle_request(receiver, request).await.into_response()
}

/// Decides and logs; the caller turns the outcome into the answer (and may count it).
pub async fn handle_request<Q: Queue>(receiver: &Receiver<Q>, request: Request) -> Outcome {
    let started = Instant::now();
    let request_id = request_id(&request);
    let outcome = decide(receiver, request, request_id.clone()).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    let request_id = request_id.as_deref().unwrap_or("");
    let cold_start = cold_start();
    count(&receiver.metrics, &outcome);
    match &outcome {
        Outcome::Accepted {
            message_id,
            secret_index,
        } => {
            info!(outcome = "accepted", request_id, %message_id, secret_index, elapsed_us, cold_start, "callback queued")
        }
        Outcome::DeadLettered {
            rejection,
            message_id,
        } => warn!(
            outcome = "dead_lettered",
            reason = STALE_SIGNATURE,
            detail = %rejection,
            request_id,
            %message_id,
            elapsed_us,
            cold_start,
            "authentic callback out of the time tolerance parked in the dead-letter queue"
        ),
        Outcome::Unavailable { detail } => warn!(
            outcome = "unavailable",
            reason = outcome.reason(),
            detail,
            request_id,
            elapsed_us,
            cold_start,
            "callback not stored; answering 503 so Sinch retries"
        ),
        Outcome::Rejected(rejection) => warn!(
            outcome = "rejected",
            reason = outcome.reason(),
            detail = %rejection,
            request_id,
            elapsed_us,
            cold_start,
            "request refused"
        ),
        other => warn!(
            outcome = "rejected",
            reason = other.reason(),
            detail = ?other,
            request_id,
            elapsed_us,
            cold_start,
            "request refused"
        ),
    }
    outcome
}

/// The metric for one outcome.
fn count(metrics: &Metrics, outcome: &Outcome) {
    match outcome {
        Outcome::Accepted { .. } => metrics.count(Metric::Accepted, None),
        Outcome::Unavailable { .. } => metrics.count(Metric::EnqueueFailed, None),
        Outcome::DeadLettered { .. } => {
            metrics.count(Metric::Rejected, Some(("Reason", outcome.reason())));
            metrics.count(Metric::DeadLettered, Some(("Reason", STALE_SIGNATURE)));
        }
        _ => metrics.count(Metric::Rejected, Some(("Reason", outcome.reason()))),
    }
}

/// The decision for one request, without logging (benchmarks and tests look at this directly).
pub async fn decide<Q: Queue>(
    receiver: &Receiver<Q>,
    request: Request,
    request_id: Option<String>,
) -> Outcome {
    if request.method() != Method::POST {
        return Outcome::MethodNotAllowed;
    }
    let (parts, body) = request.into_parts();
    let body = into_bytes(body);
    if body.len() > receiver.max_body_bytes {
        return Outcome::TooLarge {
            size: body.len(),
            limit: receiver.max_body_bytes,
        };
    }
    let signature = match SignatureParts::from_headers(&parts.headers) {
        Ok(signature) => signature,
        Err(rejection) => return Outcome::Rejected(rejection),
    };
    let now = receiver.clock.now();
    let verdict = receiver.verifier.verify_parts(&body, &signature, now);
    let (stale, secret_index) = match verdict {
        Ok(_) if body.is_empty() => return Outcome::EmptyBody,
        Ok(verified) => (None, verified.secret_index),
        Err(rejection) if rejection.is_authentic() && !body.is_empty() => (Some(rejection), 0),
        Err(rejection) => return Outcome::Rejected(rejection),
    };

    let mut envelope = Envelope::new(body, SignatureHeaders::from(&signature), now);
    envelope.request_id = request_id;
    envelope.content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);

    match stale {
        None => match enqueue(&receiver.queue, &envelope, receiver.enqueue_timeout).await {
            Ok(message_id) => Outcome::Accepted {
                message_id,
                secret_index,
            },
            Err(outcome) => outcome,
        },
        Some(rejection) => {
            envelope.dead_letter(STALE_SIGNATURE, &rejection.to_string());
            match enqueue(&receiver.dead_letters, &envelope, receiver.enqueue_timeout).await {
                Ok(message_id) => Outcome::DeadLettered {
                    rejection,
                    message_id,
                },
                Err(outcome) => outcome,
            }
        }
    }
}

/// Sends within the time bound; a timeout is as much a failure as a refusal.
async fn enqueue<Q: Queue>(
    queue: &Q,
    envelope: &Envelope,
    timeout: Duration,
) -> Result<MessageId, Outcome> {
    match tokio::time::timeout(timeout, queue.send(envelope)).await {
        Ok(Ok(message_id)) => Ok(message_id),
        Ok(Err(QueueError::TooLarge { size, limit })) => Err(Outcome::TooLarge { size, limit }),
        Ok(Err(error)) => Err(Outcome::Unavailable {
            detail: error.to_string(),
        }),
        Err(_) => Err(Outcome::Unavailable {
            detail: format!(
                "queue {} did not confirm within {} ms",
                queue.name(),
                timeout.as_millis()
            ),
        }),
    }
}

/// The body as bytes, without copying: `lambda_http` has already base64-decoded it when API
/// Gateway set `isBase64Encoded`.
fn into_bytes(body: Body) -> Vec<u8> {
    match body {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    }
}

/// API Gateway's request id (it appears in API Gateway's access logs), else the Lambda one.
fn request_id(request: &Request) -> Option<String> {
    if let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref()
        && let Some(id) = &context.request_id
    {
        return Some(id.clone());
    }
    request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .filter(|id| !id.is_empty())
}

/// Serves requests from the Lambda runtime until it stops.
pub async fn run<Q: Queue>(receiver: Receiver<Q>) -> Result<(), lambda_http::Error> {
    let receiver = &receiver;
    lambda_http::run(service_fn(move |request| async move {
        Ok::<_, Infallible>(handle(receiver, request).await)
    }))
    .await
}
