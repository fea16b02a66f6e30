//! What a tunnel may reach: `/webhook`, and nothing else.
//!
//! `serve` is made to sit behind a tunnel (cloudflared, ngrok, ...) so that real Sinch callbacks
//! reach it; the messages API (it sends on the user's Sinch account), the console, `/events` and
//! `/status` (every inbound text and number) must not. Every route but `/webhook` goes through
//! [`guard`]:
//!
//! | request | answer |
//! |---|---|
//! | from a loopback peer, for a loopback `Host` (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`, any port), no forwarding headers, and an `Origin` (if any) that is the page's own | served |
//! | `Host` another name (a tunnel's, or a DNS-rebinding page's) | 403 `host_not_local` |
//! | a forwarding header (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`, `CF-Connecting-IP`, `True-Client-IP`): a proxy or tunnel relayed it, even one that rewrote `Host` | 403 `forwarded` |
//! | a peer that is not this machine (`--host` opened the port to a network) | 403 `peer_not_local` |
//! | `Origin` of another site (a page in the user's browser) | 403 `cross_origin` |
//!
//! There is no flag to open them wider: run the stack where you use it, and tunnel only the
//! webhook.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Headers a proxy or tunnel adds to what it relays.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
];

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A stable code: `host_not_local` or `peer_not_local`.
    pub code: &'static str,
    /// Why, in words.
    pub message: String,
}

/// The middleware: serves local requests, refuses the rest with a line saying why.
pub async fn guard(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    match judge(request.headers(), peer) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(code = refusal.code, path = %request.uri().path(), "refused: not a local request");
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": {"code": refusal.code, "message": refusal.message}})),
            )
                .into_response()
        }
    }
}

/// Whether a request with these headers, from `peer`, is a local one.
pub fn judge(headers: &HeaderMap, peer: Option<IpAddr>) -> Result<(), Refusal> {
    let refuse = |code, message: String| Err(Refusal { code, message });
    let only = "only /webhook answers beyond this machine; the API, the console, /events and /status answer requests to localhost";
    if let Some(peer) = peer
        && !peer.is_loopback()
    {
        return refuse(
            "peer_not_local",
            format!("this request came from {peer}: {only}"),
        );
    }
    if let Some(name) = FORWARDING.iter().find(|name| headers.contains_key(**name)) {
        return refuse(
            "forwarded",
            format!("this request was relayed by a proxy or tunnel ({name}): {only}"),
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !is_loopback_host(host) {
        return refuse(
            "host_not_local",
            format!("this request is for Host {host:?}: {only}"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("http://{host}");
        if origin.to_str().ok() != Some(own.as_str()) {
            return refuse(
                "cross_origin",
                format!(
                    "this request came from a page of another origin ({origin:?}); the console's own page may call it, and {only}"
                ),
            );
        }
    }
    Ok(())
}

/// `localhost`, `*.localhost`, a loopback IPv4 address or `[::1]`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if after.is_empty() || valid_port(after) => v6,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost") && !name.starts_with('.')
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn valid_port(colon_port: &str) -> bool {
    colon_port
        .strip_prefix(':')
        .is_some_and(|port| !port.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn loopback_names_and_addresses_with_any_port() {
        for host in [
            "localhost",
            "localhost:3000",
            "LOCALHOST:3000",
            "console.localhost:3000",
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:3000",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.trycloudflare.com",
            "abc.ngrok-free.app:443",
            "localhost.evil.com",
            "127.0.0.1.nip.io",
            "10.0.0.5:3000",
            "[::2]:3000",
            "[::1]x",
            "localhost:99999",
            "localhost:",
            ".localhost",
            "0.0.0.0:3000",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn tunnels_rebinding_and_other_sites_are_refused_with_a_reason() {
        let local = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            judge(&headers(&[("host", "127.0.0.1:3000")]), local),
            Ok(())
        );
        assert_eq!(
            judge(
                &headers(&[
                    ("host", "127.0.0.1:3000"),
                    ("origin", "http://127.0.0.1:3000")
                ]),
                local
            ),
            Ok(())
        );
        let code =
            |pairs: &[(&'static str, &str)], peer| judge(&headers(pairs), peer).unwrap_err().code;
        assert_eq!(
            code(&[("host", "x.trycloudflare.com")], local),
            "host_not_local"
        );
        assert_eq!(code(&[], local), "host_not_local");
        assert_eq!(
            code(
                &[
                    ("host", "localhost:3000"),
                    ("x-forwarded-for", "203.0.113.9")
                ],
                local
            ),
            "forwarded",
            "a tunnel that rewrites Host still says it forwarded"
        );
        assert_eq!(
            code(
                &[
                    ("host", "localhost:3000"),
                    ("cf-connecting-ip", "203.0.113.9")
                ],
                local
            ),
            "forwarded"
        );
        assert_eq!(
            code(
                &[
                    ("host", "localhost:3000"),
                    ("origin", "https://evil.example")
                ],
                local
            ),
            "cross_origin"
        );
        assert_eq!(
            code(&[("host", "localhost:3000"), ("origin", "null")], local),
            "cross_origin"
        );
        assert_eq!(
            code(
                &[("host", "localhost:3000")],
                Some(IpAddr::from([192, 168, 1, 20]))
            ),
            "peer_not_local"
        );
        assert!(
            judge(&headers(&[("host", "evil.example")]), local)
                .unwrap_err()
                .message
                .contains("only /webhook")
        );
    }
}
