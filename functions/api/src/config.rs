//! The messages API's settings, read once at cold start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TABLE_NAME` | required in Lambda | the state table (the worker's) |
//! | `OUTBOUND_QUEUE_URL` | required in Lambda | the queue the worker sends from |
//! | `SINCH_APP_ID` | none | the Conversation app to send from; without it (or without `SINCH_PROJECT_ID`) Conversation channels answer `channel_not_configured` |
//! | `SINCH_PROJECT_ID` | none | set when the worker has Conversation credentials |
//! | `SINCH_SMS_SERVICE_PLAN_ID` | none | set when the worker has SMS API credentials (channel `SMS_API`) |
//! | `SINCH_SMS_SENDER` | none | the SMS API sender when a request names none |
//! | `IDEMPOTENCY_KEY_TTL_HOURS` | 24 | how long a key's answer is replayed (1 to 168) |
//! | `ENQUEUE_TIMEOUT_MS` | 2500 | bound on the enqueue before answering 503 |
//!
//! The API never holds a Sinch secret: it only needs to know which channels the worker can
//! send on.

use std::time::Duration;

use pipeline::config::{ConfigError, Env};

use crate::request::Channels;

pub const OUTBOUND_QUEUE_URL: &str = "OUTBOUND_QUEUE_URL";
pub const SINCH_SMS_SENDER: &str = "SINCH_SMS_SENDER";
pub const IDEMPOTENCY_KEY_TTL_HOURS: &str = "IDEMPOTENCY_KEY_TTL_HOURS";

/// Everything the API needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub channels: Channels,
    /// How long a key's answer is replayed.
    pub key_ttl: Duration,
    /// How long a key stays in flight if its request dies.
    pub in_flight_lease: Duration,
    pub max_body_bytes: usize,
    /// The sending rules (WhatsApp's window), as the worker has them.
    pub rules: pipeline::rules::Rules,
    pub enqueue_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            channels: Channels::default(),
            key_ttl: Duration::from_secs(24 * 3600),
            in_flight_lease: crate::IN_FLIGHT_LEASE,
            max_body_bytes: 64 * 1024,
            rules: pipeline::rules::Rules::default(),
            enqueue_timeout: Duration::from_millis(2500),
        }
    }
}

impl ApiConfig {
    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let conversation = env.optional("SINCH_PROJECT_ID").is_some();
        Ok(Self {
            channels: Channels {
                conversation_app: env.optional("SINCH_APP_ID").filter(|_| conversation),
                sms_api: env.optional("SINCH_SMS_SERVICE_PLAN_ID").is_some(),
                default_sms_sender: env.optional(SINCH_SMS_SENDER),
            },
            key_ttl: Duration::from_secs(
                env.number(IDEMPOTENCY_KEY_TTL_HOURS, 24u64, 1..=168)? * 3600,
            ),
            enqueue_timeout: env.millis("ENQUEUE_TIMEOUT_MS", 2500, 50..=25_000)?,
            ..Self::default()
        })
    }
}
