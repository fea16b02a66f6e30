//! Errors from the Sinch REST API, classified the way callers must act on them.

use std::time::Duration;

use serde::Deserialize;

/// What went wrong talking to Sinch. [`SinchError::is_transient`] says whether trying again
/// later can help; the client has already retried transient errors within its time budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinchError {
    /// Sinch answered with an error status.
    #[error("Sinch answered {status} to {operation}: {detail}")]
    Api {
        /// What was being done, e.g. `messages:send`.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// What Sinch said.
        detail: ApiErrorDetail,
        /// The `Retry-After` Sinch asked for, if any.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, DNS, TLS, or the attempt timed out.
    #[error("no answer from Sinch to {operation}: {detail}")]
    Network {
        /// What was being done.
        operation: &'static str,
        /// The transport's error.
        detail: String,
        /// True when the request may have reached Sinch (the connection broke or timed out
        /// after it was written): a send must not be repeated blindly. False when no
        /// connection was made.
        maybe_delivered: bool,
    },
    /// A success status with a body we cannot read. The request may have taken effect, so it is
    /// never retried.
    #[error("Sinch answered {operation} with an unreadable body: {detail}")]
    Decode {
        /// What was being done.
        operation: &'static str,
        /// What could not be read.
        detail: String,
    },
    /// The API needed is not configured (no credentials given).
    #[error("the {0} API is not configured")]
    NotConfigured(&'static str),
    /// The caller's time budget ran out before an attempt could be made.
    #[error("no time left in the budget for {operation}")]
    OutOfTime {
        /// What was to be done.
        operation: &'static str,
    },
}

impl SinchError {
    /// True for 429, 500, 502, 503, 504, network errors and an exhausted time budget: the same
    /// request may succeed later. Other 4xx, unreadable successes and missing configuration are
    /// permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            SinchError::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            SinchError::Network { .. } | SinchError::OutOfTime { .. } => true,
            SinchError::Decode { .. } | SinchError::NotConfigured(_) => false,
        }
    }

    /// The HTTP status, when Sinch answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            SinchError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long Sinch asked to wait before trying again (`Retry-After` on a 429 or 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinchError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Sinch's error body, from either API's shape: Conversation
/// `{"error":{"code","message","status"}}`, SMS `{"code","text"}`; anything else is kept as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrorDetail {
    /// Sinch's code: a number for Conversation, a name such as `syntax_invalid_json` for SMS.
    pub code: Option<String>,
    /// The HTTP-ish status name Conversation adds, e.g. `INVALID_ARGUMENT`.
    pub status: Option<String>,
    /// Sinch's message.
    pub message: String,
}

impl std::fmt::Display for ApiErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.status) {
            (Some(code), Some(status)) => write!(f, "{status} ({code}): {}", self.message),
            (Some(code), None) => write!(f, "{code}: {}", self.message),
            (None, Some(status)) => write!(f, "{status}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

impl ApiErrorDetail {
    /// Reads an error body; never fails.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Conversation {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            code: Option<serde_json::Value>,
            #[serde(default)]
            message: String,
            #[serde(default)]
            status: Option<String>,
        }
        #[derive(Deserialize)]
        struct Sms {
            code: serde_json::Value,
            #[serde(default)]
            text: String,
        }
        fn code(value: serde_json::Value) -> Option<String> {
            match value {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        }
        if let Ok(Conversation { error }) = serde_json::from_slice(body) {
            return Self {
                code: error.code.and_then(code),
                status: error.status,
                message: error.message,
            };
        }
        if let Ok(sms) = serde_json::from_slice::<Sms>(body) {
            return Self {
                code: code(sms.code),
                status: None,
                message: sms.text,
            };
        }
        Self {
            code: None,
            status: None,
            message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_are_read() {
        let conversation = ApiErrorDetail::parse(
            br#"{"error":{"code":400,"message":"Invalid argument","status":"INVALID_ARGUMENT","details":[]}}"#,
        );
        assert_eq!(conversation.code.as_deref(), Some("400"));
        assert_eq!(conversation.status.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(
            conversation.to_string(),
            "INVALID_ARGUMENT (400): Invalid argument"
        );

        let sms = ApiErrorDetail::parse(br#"{"code":"syntax_invalid_json","text":"bad"}"#);
        assert_eq!(sms.to_string(), "syntax_invalid_json: bad");

        let other = ApiErrorDetail::parse(b"<html>Bad Gateway</html>");
        assert_eq!(other.to_string(), "<html>Bad Gateway</html>");
    }

    #[test]
    fn transient_and_permanent_are_told_apart() {
        let api = |status| SinchError::Api {
            operation: "send",
            status,
            detail: ApiErrorDetail::default(),
            retry_after: None,
        };
        for status in [429, 500, 502, 503, 504] {
            assert!(api(status).is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 501] {
            assert!(!api(status).is_transient(), "{status}");
        }
        assert!(
            SinchError::Network {
                operation: "send",
                detail: String::new(),
                maybe_delivered: true,
            }
            .is_transient()
        );
        assert!(
            !SinchError::Decode {
                operation: "send",
                detail: String::new()
            }
            .is_transient()
        );
        assert!(!SinchError::NotConfigured("SMS").is_transient());
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(90));
        let parsed = parse_retry_after(&later).unwrap();
        assert!(parsed > Duration::from_secs(80) && parsed <= Duration::from_secs(90));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
