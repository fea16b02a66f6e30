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
//! | `BULK_QUEUE_URL` | required in Lambda | the bulk lane's queue (batches) |
//! | `QUIET_HOURS` | none | the deployment's quiet hours, `{"start": "21:00", "end": "08:00", "time_zone"?}` |
//! | `SCHEDULER_ROLE_ARN`, `OUTBOUND_QUEUE_ARN`, `BULK_QUEUE_ARN` | required in Lambda | what EventBridge Scheduler needs for sends due more than 15 minutes ahead |
//! | `SCHEDULE_GROUP` | `default` | the schedule group its schedules go in |
//!
//! The API never holds a Sinch secret: it only needs to know which channels the worker can
//! send on.

use std::time::Duration;

use pipeline::config::{ConfigError, Env};

use crate::request::Channels;

/// The SMS API sender when a request names none.
pub const SINCH_SMS_SENDER: &str = "SINCH_SMS_SENDER";
/// How long an `Idempotency-Key`'s answer is replayed, in hours (24 by default).
pub const IDEMPOTENCY_KEY_TTL_HOURS: &str = "IDEMPOTENCY_KEY_TTL_HOURS";
/// The deployment's quiet hours (`22:00-08:00`), for requests that give none.
pub const QUIET_HOURS: &str = "QUIET_HOURS";

/// Everything the API needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// What the deployment can send through.
    pub channels: Channels,
    /// How long a key's answer is replayed.
    pub key_ttl: Duration,
    /// How long a key stays in flight if its request dies.
    pub in_flight_lease: Duration,
    /// The largest `POST /messages` body.
    pub max_body_bytes: usize,
    /// The largest `POST /batches` body.
    pub max_batch_body_bytes: usize,
    /// The deployment's quiet hours (`QUIET_HOURS`), for requests that give none.
    pub quiet_hours: Option<pipeline::quiet_hours::QuietHours>,
    /// The sending rules judged at the door (opt-out, WhatsApp's window). The country
    /// allow-list is judged at the door by the guards (`guards.allowed_countries`), so this
    /// one's is empty; the worker's holds it for what waited.
    pub send_rules: pipeline::send_rules::SendRules,
    /// How long the queue (or the scheduler) may take to confirm a job.
    pub enqueue_timeout: Duration,
    /// The guards before any cost ([`crate::guards`]).
    pub guards: crate::guards::Guards,
    /// Where refusals by the guards are counted (off but in Lambda).
    pub metrics: pipeline::metrics::Metrics,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            channels: Channels::default(),
            key_ttl: Duration::from_secs(24 * 3600),
            in_flight_lease: crate::IN_FLIGHT_LEASE,
            max_body_bytes: 64 * 1024,
            max_batch_body_bytes: 5 * 1024 * 1024,
            quiet_hours: None,
            send_rules: pipeline::send_rules::SendRules::default(),
            enqueue_timeout: Duration::from_millis(2500),
            guards: crate::guards::Guards::default(),
            metrics: pipeline::metrics::Metrics::off(),
        }
    }
}

impl ApiConfig {
    /// The configuration from the environment `env`; the first wrong variable is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let conversation = env
            .optional(pipeline::sinch_config::SINCH_PROJECT_ID)
            .is_some();
        Ok(Self {
            channels: Channels {
                conversation_app: env
                    .optional(pipeline::sinch_config::SINCH_APP_ID)
                    .filter(|_| conversation),
                sms_api: env
                    .optional(pipeline::sinch_config::SINCH_SMS_SERVICE_PLAN_ID)
                    .is_some(),
                default_sms_sender: env.optional(SINCH_SMS_SENDER),
            },
            key_ttl: Duration::from_secs(
                env.number(IDEMPOTENCY_KEY_TTL_HOURS, 24u64, 1..=168)? * 3600,
            ),
            enqueue_timeout: pipeline::queue::enqueue_timeout(env)?,
            quiet_hours: quiet_hours(env)?,
            guards: crate::guards::Guards::from_env(env)?,
            ..Self::default()
        })
    }

    /// What validating a request needs besides the request.
    pub fn context(
        &self,
        now_ms: u64,
        lane: pipeline::schedule::Lane,
    ) -> crate::request::Context<'_> {
        crate::request::Context {
            channels: &self.channels,
            now_ms,
            quiet_hours: self.quiet_hours.as_ref(),
            lane,
        }
    }
}

/// `QUIET_HOURS`: the deployment's quiet hours, as a request gives them.
pub fn quiet_hours<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<pipeline::quiet_hours::QuietHours>, ConfigError> {
    let Some(json) = env.optional(QUIET_HOURS) else {
        return Ok(None);
    };
    let quiet: pipeline::quiet_hours::QuietHours = serde_json::from_str(&json).map_err(|e| {
        ConfigError::new(
            QUIET_HOURS,
            format!("is not {{\"start\": \"21:00\", \"end\": \"08:00\", \"time_zone\"?}}: {e}"),
        )
    })?;
    quiet
        .check()
        .map_err(|e| ConfigError::new(QUIET_HOURS, e.to_string()))?;
    Ok(Some(quiet))
}
