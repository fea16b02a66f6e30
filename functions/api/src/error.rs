//! Refusals, as the API answers them: an HTTP status and `{"error": {"code", "message"}}`, the
//! code stable snake_case, the message naming the field.

use serde_json::json;

/// One refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// A stable snake_case code, e.g. `recipient_opted_out` (the README's table).
    pub code: &'static str,
    /// What is wrong, in words (never a secret, an ARN or an SDK's text).
    pub message: String,
    /// `Retry-After`, seconds, for 409 and 503.
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A refusal without `Retry-After`.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 422: well-formed, and refused by a rule.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(422, code, message)
    }

    /// 503: our side is unavailable; try again. What went wrong `during` what is logged, never
    /// answered (it names tables, roles and SDK internals).
    pub fn unavailable_because(during: &'static str, detail: &dyn std::fmt::Display) -> Self {
        tracing::warn!(during, %detail, "unavailable");
        Self {
            retry_after: Some(1),
            ..Self::new(
                503,
                "unavailable",
                format!(
                    "the service could not {during} just now; try again (with the same Idempotency-Key: it is the same message)"
                ),
            )
        }
    }

    /// 503 for a request that is safe to repeat as it is (no key involved).
    pub fn unavailable_during(during: &'static str, detail: &dyn std::fmt::Display) -> Self {
        Self {
            message: format!("the service could not {during} just now; try again"),
            ..Self::unavailable_because(during, detail)
        }
    }

    /// The same refusal, its message naming `field` instead of `was`.
    pub fn for_field(mut self, was: &str, field: &str) -> Self {
        if let Some(rest) = self.message.strip_prefix(was) {
            self.message = format!("{field}{rest}");
        }
        self
    }

    /// The answer's body.
    pub fn body(&self) -> String {
        json!({"error": {"code": self.code, "message": self.message}}).to_string()
    }
}
