//! The local stack's HTTP door, made for being exposed through a tunnel: slow or broken clients
//! are answered and let go, and never hold up anyone else.
//!
//! | situation | answer | counted in `/status` as |
//! |---|---|---|
//! | request headers not complete within the header timeout | 408, connection closed | `rejected.header_timeout` |
//! | body not complete within the body timeout | 408 `body_timeout`, connection closed | `rejected.body_timeout` |
//! | body over `MAX_BODY_BYTES` | 413 `body_too_large` | `rejected.body_too_large` |
//! | malformed body (a bad chunk) | 400 `malformed_body`, connection closed | `rejected.malformed_body` |
//! | client gone before its body was complete | nobody to answer | `rejected.client_aborted` |
//! | `Content-Length` together with `Transfer-Encoding` | 400 `ambiguous_length`, connection closed | `rejected.ambiguous_length` |
//! | other malformed framing (bad request line or headers) | 400 from hyper before any handler runs | |
//!
//! Each connection is served by hyper's HTTP/1.1 server in a task of its own, with hyper's
//! header read timeout. hyper closes a connection whose headers time out without a word; the
//! door then answers 408 itself when part of a request had arrived (an idle keep-alive
//! connection is just closed).

use std::io::Write as _;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::stats::Stats;

/// How long a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To send a request's headers (and, between requests, to start the next one).
    pub header: Duration,
    /// To send a request's body.
    pub body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(10),
        }
    }
}

/// The 408 the door writes itself when headers time out.
fn header_timeout_answer() -> Vec<u8> {
    let body = r#"{"status":"rejected","reason":"header_timeout"}"#;
    format!(
        "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, router: Router, timeouts: Timeouts, stats: Arc<Stats>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (router, stats) = (router.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(error) = connection(stream, peer, router, timeouts, &stats).await {
                debug!(%error, "connection setup failed");
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    timeouts: Timeouts,
    stats: &Arc<Stats>,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to answer 408 after hyper has let go of it.
    let std_stream = stream.into_std()?;
    let spare = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    let partial = Arc::new(AtomicBool::new(false));
    let ambiguous = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Tracked {
        inner: stream,
        partial: partial.clone(),
        head: Some(Vec::new()),
        ambiguous: ambiguous.clone(),
    });
    let counted = stats.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |mut request: axum::extract::Request, next: axum::middleware::Next| {
            let ambiguous = ambiguous.load(Ordering::Relaxed);
            let stats = counted.clone();
            // Who is on the other end: the routes only local callers may use ask.
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            async move {
                if ambiguous {
                    stats.answered(false, BodyFailure::Ambiguous.reason());
                    return BodyFailure::Ambiguous.into_response();
                }
                next.run(request).await
            }
        },
    ));
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .serve_connection(io, TowerToHyperService::new(router))
        .await;
    if let Err(error) = served
        && error.is_timeout()
        && partial.load(Ordering::Relaxed)
    {
        stats.answered(false, "header_timeout");
        let _ = (&spare).write_all(&header_timeout_answer());
    }
    let _ = spare.shutdown(Shutdown::Both);
    Ok(())
}

/// The largest request head looked at for ambiguous framing (hyper refuses larger ones).
const HEAD_LIMIT: usize = 64 * 1024;

/// The socket, noting whether part of a request has arrived since the last answer was written,
/// and whether the request head gives its body two lengths.
///
/// hyper follows RFC 9112 and reads a body with both `Content-Length` and `Transfer-Encoding`
/// by the transfer coding, dropping the other header before any handler sees it. Two lengths
/// for one body is how requests are smuggled past proxies, and no honest client sends it, so the
/// door refuses it: the head is parsed a second time here, with hyper's own parser (`httparse`).
struct Tracked {
    inner: TcpStream,
    partial: Arc<AtomicBool>,
    /// The current request's head as read so far; `None` once it is complete, until the next
    /// answer is written.
    head: Option<Vec<u8>>,
    ambiguous: Arc<AtomicBool>,
}

impl Tracked {
    fn inspect(&mut self, read: &[u8]) {
        let Some(head) = self.head.as_mut() else {
            return;
        };
        head.extend_from_slice(&read[..read.len().min(HEAD_LIMIT.saturating_sub(head.len()))]);
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Partial) if head.len() < HEAD_LIMIT => {}
            Ok(httparse::Status::Complete(_)) => {
                let has = |name: &str| {
                    request
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case(name))
                };
                let ambiguous = has("content-length") && has("transfer-encoding");
                self.ambiguous.store(ambiguous, Ordering::Relaxed);
                // What follows is a body, not a head.
                self.head = None;
            }
            // Too large or not HTTP: hyper refuses it on its own.
            _ => self.head = None,
        }
    }

    fn answered(&mut self) {
        self.partial.store(false, Ordering::Relaxed);
        self.head = Some(Vec::new());
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.partial.store(true, Ordering::Relaxed);
            let read = buf.filled()[before..].to_vec();
            self.inspect(&read);
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.answered();
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.answered();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// Not complete within the body timeout.
    Timeout,
    /// Over the size limit.
    TooLarge,
    /// The client went away before sending all of it.
    Aborted,
    /// Not valid HTTP framing (a bad chunk, say).
    Malformed,
    /// Two lengths for one body: `Content-Length` and `Transfer-Encoding`.
    Ambiguous,
}

impl BodyFailure {
    /// The stable reason, as counted and answered.
    pub fn reason(self) -> &'static str {
        match self {
            BodyFailure::Timeout => "body_timeout",
            BodyFailure::TooLarge => "body_too_large",
            BodyFailure::Aborted => "client_aborted",
            BodyFailure::Malformed => "malformed_body",
            BodyFailure::Ambiguous => "ambiguous_length",
        }
    }

    /// The answer (408 or 400), closing the connection: what follows on it cannot be trusted.
    pub fn into_response(self) -> Response {
        let status = match self {
            BodyFailure::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyFailure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyFailure::Aborted | BodyFailure::Malformed | BodyFailure::Ambiguous => {
                StatusCode::BAD_REQUEST
            }
        };
        let body = format!(r#"{{"status":"rejected","reason":"{}"}}"#, self.reason());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// Reads a whole body within `timeout` and `limit`, telling apart why it could not be.
pub async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, BodyFailure> {
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(BodyFailure::Timeout),
        Ok(Ok(bytes)) => Ok(bytes.to_vec()),
        Ok(Err(error)) => Err(classify(error)),
    }
}

fn classify(error: axum::Error) -> BodyFailure {
    use std::io::ErrorKind;
    let inner = error.into_inner();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return BodyFailure::TooLarge;
        }
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return BodyFailure::Aborted;
        }
        // hyper reports a body cut short as an I/O error under its own.
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe => BodyFailure::Aborted,
                _ => BodyFailure::Malformed,
            };
        }
        source = error.source();
    }
    BodyFailure::Malformed
}
