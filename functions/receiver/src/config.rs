//! The receiver's settings, read once at cold start.

use std::time::Duration;

use envelope::SQS_MAX_MESSAGE_BYTES;
use platform::config::{ConfigError, Env};
use platform::queue::{DEAD_LETTER_QUEUE_URL, enqueue_timeout};
use sinch::signature::{Secrets, SecretsError, Tolerance};

/// Webhook secret(s), comma-separated: all are tried, any one that matches passes.
pub const SINCH_WEBHOOK_SECRET: &str = "SINCH_WEBHOOK_SECRET";
/// URL of the SQS queue the worker consumes.
pub const QUEUE_URL: &str = "QUEUE_URL";
/// How old (or how far ahead) a signature timestamp may be, seconds. Default 300.
pub const SIGNATURE_TOLERANCE_SECS: &str = "SIGNATURE_TOLERANCE_SECS";
/// The largest body accepted, bytes. Default and maximum 1 MiB, the SQS message limit.
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";

/// Everything the receiver needs to know.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// The webhook secrets (`SINCH_WEBHOOK_SECRET`, comma-separated during a rotation).
    pub secrets: Secrets,
    /// The queue authentic callbacks go to.
    pub queue_url: String,
    /// The queue authentic but stale callbacks are parked in.
    pub dead_letter_queue_url: String,
    /// How far a signature's timestamp may be from now.
    pub tolerance: Tolerance,
    /// The largest body taken (`MAX_BODY_BYTES`; SQS's message limit by default).
    pub max_body_bytes: usize,
    /// How long the queue may take to confirm.
    pub enqueue_timeout: Duration,
}

impl ReceiverConfig {
    /// Reads any settings source.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let secrets = env
            .required(SINCH_WEBHOOK_SECRET)?
            .parse()
            .map_err(|e: SecretsError| ConfigError::new(SINCH_WEBHOOK_SECRET, e.to_string()))?;
        Ok(Self {
            secrets,
            queue_url: env.url(QUEUE_URL)?,
            dead_letter_queue_url: env.url(DEAD_LETTER_QUEUE_URL)?,
            tolerance: Tolerance::symmetric(env.seconds(
                SIGNATURE_TOLERANCE_SECS,
                300,
                0..=86_400,
            )?),
            max_body_bytes: env.number(
                MAX_BODY_BYTES,
                SQS_MAX_MESSAGE_BYTES,
                1..=SQS_MAX_MESSAGE_BYTES,
            )?,
            // How long the enqueue may take before the receiver answers 503.
            enqueue_timeout: enqueue_timeout(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::queue::{DEFAULT_ENQUEUE_TIMEOUT, ENQUEUE_TIMEOUT_MS};
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<ReceiverConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ReceiverConfig::from_env(&Env::from_lookup(move |name| map.get(name).cloned()))
    }

    const MINIMAL: [(&str, &str); 3] = [
        (SINCH_WEBHOOK_SECRET, "s3cret-one,s3cret-two"),
        (QUEUE_URL, "http://localhost:4566/000000000000/callbacks"),
        (
            DEAD_LETTER_QUEUE_URL,
            "http://localhost:4566/000000000000/callbacks-dlq",
        ),
    ];

    #[test]
    fn defaults_fill_in_the_rest() {
        let config = load(&MINIMAL).expect("minimal configuration loads");
        assert_eq!(config.secrets.len(), 2);
        assert_eq!(config.tolerance, Tolerance::default());
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.enqueue_timeout, DEFAULT_ENQUEUE_TIMEOUT);
    }

    #[test]
    fn every_setting_is_read() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            (SIGNATURE_TOLERANCE_SECS, "60"),
            (MAX_BODY_BYTES, "65536"),
            (ENQUEUE_TIMEOUT_MS, "800"),
        ]);
        let config = load(&pairs).expect("loads");
        assert_eq!(
            config.tolerance,
            Tolerance::symmetric(Duration::from_secs(60))
        );
        assert_eq!(config.max_body_bytes, 65_536);
        assert_eq!(config.enqueue_timeout, Duration::from_millis(800));
    }

    #[test]
    fn each_problem_is_one_line_naming_the_variable() {
        let cases: [(&str, Option<&str>, &str); 6] = [
            (
                SINCH_WEBHOOK_SECRET,
                None,
                "SINCH_WEBHOOK_SECRET is not set",
            ),
            (
                SINCH_WEBHOOK_SECRET,
                Some("a,,b"),
                "SINCH_WEBHOOK_SECRET secret number 2 in the comma-separated list is empty",
            ),
            (
                QUEUE_URL,
                Some("callbacks"),
                "QUEUE_URL must be an http(s) URL, got \"callbacks\"",
            ),
            (
                DEAD_LETTER_QUEUE_URL,
                None,
                "DEAD_LETTER_QUEUE_URL is not set",
            ),
            (
                MAX_BODY_BYTES,
                Some("2000000"),
                "MAX_BODY_BYTES must be between 1 and 1048576, got 2000000",
            ),
            (
                ENQUEUE_TIMEOUT_MS,
                Some("soon"),
                "ENQUEUE_TIMEOUT_MS is not a whole number: \"soon\"",
            ),
        ];
        for (name, value, message) in cases {
            let mut pairs: Vec<(&str, &str)> = MINIMAL
                .iter()
                .copied()
                .filter(|(n, _)| *n != name)
                .collect();
            if let Some(value) = value {
                pairs.push((name, value));
            }
            let error = load(&pairs).expect_err("refused");
            assert_eq!(error.name, name);
            assert_eq!(error.to_string(), message);
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug_output() {
        let config = load(&MINIMAL).expect("loads");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
