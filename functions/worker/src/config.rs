//! The worker's settings, read once at cold start.

use std::time::Duration;

use pipeline::config::{ConfigError, Env};
use pipeline::queue::DEAD_LETTER_QUEUE_URL;
use pipeline::reply::ReplyPolicy;
use pipeline::schedule::Dispatch;
use pipeline::sinch_config::{SINCH_APP_ID, sinch_client_config};
use pipeline::store::TABLE_NAME;
use sinch::client::ClientConfig;

/// Reply rules, JSON (see `pipeline::reply`).
pub const REPLY_RULES: &str = "REPLY_RULES";
/// Records of a batch processed at once. Default 10.
pub const WORKER_CONCURRENCY: &str = "WORKER_CONCURRENCY";
/// How long a handled callback is remembered, hours. Default 48.
pub const IDEMPOTENCY_TTL_HOURS: &str = "IDEMPOTENCY_TTL_HOURS";
/// How long a send whose outcome is unknown waits for a delivery report before it is sent
/// again, seconds (see `pipeline::ledger`). 0 or unset: twice the worker's timeout, at least 60;
/// otherwise it must be longer than the timeout ([`send_settle`]).
pub const SEND_SETTLE_SECS: &str = "SEND_SETTLE_SECS";
/// The worker's own timeout, seconds (the template passes `WorkerTimeout`). Default 30.
pub const WORKER_TIMEOUT_SECS: &str = "WORKER_TIMEOUT_SECS";

/// The settle time for a worker whose invocations last at most `timeout`: an attempt is on
/// record from just before its request leaves until its answer is recorded, which can take the
/// whole invocation; a settle time no longer than that would let a redelivered job take over an
/// attempt still in flight and send it a second time. So `SEND_SETTLE_SECS` must be longer than
/// the timeout (refused otherwise, naming it); unset or 0, it is twice the timeout, at least
/// 60 s.
pub fn send_settle<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    timeout: Duration,
) -> Result<Duration, ConfigError> {
    let secs: u64 = env.number(SEND_SETTLE_SECS, 0, 0..=3600)?;
    if secs == 0 {
        return Ok((timeout * 2).max(pipeline::ledger::DEFAULT_SETTLE_AFTER));
    }
    let settle = Duration::from_secs(secs);
    if settle <= timeout {
        return Err(ConfigError::new(
            SEND_SETTLE_SECS,
            format!(
                "is {secs} s, not longer than the worker's timeout of {} s: an attempt still in flight would be taken over and sent again (leave it unset for twice the timeout)",
                timeout.as_secs()
            ),
        ));
    }
    Ok(settle)
}
/// The outbound queue's `maxReceiveCount` (the template passes it). Default 5.
pub const OUTBOUND_MAX_RECEIVE_COUNT: &str = "OUTBOUND_MAX_RECEIVE_COUNT";

/// Everything the worker needs to know.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The send rates ([`pipeline::pacing`]).
    pub pacing: pipeline::pacing::Pacing,
    /// The lanes and the scheduler, when all of their settings are given.
    pub dispatch: Option<Dispatch>,
    /// Credentials and URLs of the Sinch APIs.
    pub sinch: ClientConfig,
    /// See [`SINCH_APP_ID`].
    pub app_id: Option<String>,
    /// See [`DEAD_LETTER_QUEUE_URL`].
    pub dead_letter_queue_url: String,
    /// The sending rules' settings (the country allow-list, `ALLOWED_COUNTRIES`).
    pub send_rules: pipeline::send_rules::SendRules,
    /// The reply rules (`REPLY_RULES`, or the built-in ones).
    pub policy: ReplyPolicy,
    /// Where newer rules are read from at run time ([`pipeline::reply_rules`]).
    pub reply_rules: pipeline::reply_rules::ReplyRulesSettings,
    /// How many records of a batch are handled at once.
    pub concurrency: usize,
    /// Required in Lambda; the local stack may run without it (in-memory state).
    pub table_name: Option<String>,
    /// How long a handled callback is remembered.
    pub idempotency_ttl: Duration,
    /// See [`SEND_SETTLE_SECS`].
    pub send_settle: Duration,
    /// See [`OUTBOUND_MAX_RECEIVE_COUNT`].
    pub outbound_max_receives: u32,
    /// How long each kind of item is kept ([`pipeline::store::Retention`]).
    pub retention: pipeline::store::Retention,
    /// What is kept of texts ([`pipeline::handlers::Privacy`]).
    pub privacy: pipeline::handlers::Privacy,
    /// Keys erased contacts' opt-outs ([`pipeline::store::ContactHasher`]).
    pub hasher: pipeline::store::ContactHasher,
}

impl WorkerConfig {
    /// The configuration from `env`; the first wrong variable is the error.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let policy = match env.optional(REPLY_RULES) {
            None => ReplyPolicy::default(),
            Some(json) => ReplyPolicy::from_json(&json)
                .map_err(|e| ConfigError::new(REPLY_RULES, e.to_string()))?,
        };
        Ok(Self {
            pacing: pipeline::pacing::Pacing::from_env(env)?,
            dispatch: Dispatch::from_env(env)?,
            sinch: sinch_client_config(env)?,
            app_id: env.optional(SINCH_APP_ID),
            dead_letter_queue_url: env.url(DEAD_LETTER_QUEUE_URL)?,
            policy,
            send_rules: pipeline::send_rules::SendRules::from_env(env)?,
            reply_rules: pipeline::reply_rules::ReplyRulesSettings::from_env(env)?,
            concurrency: env.number(WORKER_CONCURRENCY, 10, 1..=100)?,
            table_name: env.optional(TABLE_NAME),
            // At least a day: Sinch retries for about 23 hours.
            idempotency_ttl: Duration::from_secs(
                env.number(IDEMPOTENCY_TTL_HOURS, 48u64, 24..=24 * 30)? * 3600,
            ),
            send_settle: send_settle(env, env.seconds(WORKER_TIMEOUT_SECS, 30, 1..=900)?)?,
            outbound_max_receives: env.number(OUTBOUND_MAX_RECEIVE_COUNT, 5, 1..=1000)?,
            retention: pipeline::store::Retention::from_env(env)?,
            privacy: pipeline::handlers::Privacy::from_env(env)?,
            hasher: pipeline::store::ContactHasher::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::sinch_config::*;
    use sinch::client::Urls;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WorkerConfig::from_env(&Env::from_lookup(move |name| map.get(name).cloned()))
    }

    const DLQ: (&str, &str) = (
        DEAD_LETTER_QUEUE_URL,
        "http://localhost:4566/000000000000/dlq",
    );

    #[test]
    fn the_minimum_is_a_dead_letter_queue() {
        let config = load(&[DLQ]).unwrap();
        assert!(config.sinch.conversation.is_none() && config.sinch.sms.is_none());
        assert_eq!(config.sinch.urls, Urls::for_regions("us", "us"));
        assert_eq!(config.concurrency, 10);
        assert_eq!(config.policy, ReplyPolicy::default());
        assert_eq!(config.table_name, None);
        assert_eq!(config.idempotency_ttl, Duration::from_secs(48 * 3600));
        assert_eq!(
            load(&[]).unwrap_err().to_string(),
            "DEAD_LETTER_QUEUE_URL is not set"
        );
    }

    #[test]
    fn every_setting_is_read() {
        let config = load(&[
            DLQ,
            (SINCH_PROJECT_ID, "p"),
            (SINCH_KEY_ID, "k"),
            (SINCH_KEY_SECRET, "s3cret"),
            (SINCH_APP_ID, "app"),
            (SINCH_REGION, "EU"),
            (SINCH_SMS_SERVICE_PLAN_ID, "plan"),
            (SINCH_SMS_API_TOKEN, "tok3n"),
            (SINCH_SMS_REGION, "au"),
            (SINCH_CONVERSATION_URL, "http://127.0.0.1:9999"),
            (
                REPLY_RULES,
                r#"{"rules":[{"keywords":["STOP"],"action":"opt_out"}],"default_reply":"hi"}"#,
            ),
            (WORKER_CONCURRENCY, "4"),
            (TABLE_NAME, "sinch-hooks"),
            (IDEMPOTENCY_TTL_HOURS, "72"),
        ])
        .unwrap();
        assert_eq!(config.sinch.urls.conversation, "http://127.0.0.1:9999");
        assert_eq!(config.sinch.urls.sms, "https://au.sms.api.sinch.com");
        assert_eq!(config.sinch.urls.auth, "https://auth.sinch.com");
        assert_eq!(config.sinch.conversation.as_ref().unwrap().project_id, "p");
        assert_eq!(config.sinch.sms.as_ref().unwrap().service_plan_id, "plan");
        assert_eq!(config.app_id.as_deref(), Some("app"));
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.table_name.as_deref(), Some("sinch-hooks"));
        assert_eq!(config.idempotency_ttl, Duration::from_secs(72 * 3600));
        assert_eq!(
            config.policy.decide(Some("x"), false).reply.as_deref(),
            Some("hi")
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("tok3n"),
            "{debug}"
        );
    }

    #[test]
    fn each_problem_is_one_line_naming_the_variable() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[(IDEMPOTENCY_TTL_HOURS, "1")],
                "IDEMPOTENCY_TTL_HOURS must be between 24 and 720, got 1",
            ),
            (
                &[(SINCH_PROJECT_ID, "p"), (SINCH_KEY_ID, "k")],
                "SINCH_KEY_SECRET is not set, but SINCH_PROJECT_ID, SINCH_KEY_ID is: set all of them or none",
            ),
            (
                &[(SINCH_SMS_API_TOKEN, "t")],
                "SINCH_SMS_SERVICE_PLAN_ID is not set, but SINCH_SMS_API_TOKEN is: set all of them or none",
            ),
            (
                &[(SINCH_REGION, "mars")],
                "SINCH_REGION must be one of us, eu, br, got \"mars\"",
            ),
            (
                &[(REPLY_RULES, "{")],
                "REPLY_RULES is not valid reply rules JSON",
            ),
            (
                &[(WORKER_CONCURRENCY, "0")],
                "WORKER_CONCURRENCY must be between 1 and 100, got 0",
            ),
        ];
        for (pairs, message) in cases {
            let mut pairs = pairs.to_vec();
            pairs.push(DLQ);
            let error = load(&pairs).unwrap_err().to_string();
            assert!(error.starts_with(message), "{error}");
            assert!(!error.contains('\n'));
        }
    }
}
