//! Keywords and replies changed at run time, without a deploy: the reply rules (the JSON of
//! [`crate::reply`]) read from an SSM parameter, cached for a short time.
//!
//! | `REPLY_RULES_PARAMETER` | the rules the worker answers with |
//! |---|---|
//! | not set | `REPLY_RULES` (or the built-in STOP/START/HELP), as before |
//! | a parameter holding valid rules (String or SecureString) | its rules; a change is picked up at the first inbound message after `REPLY_RULES_CACHE_SECS` (30) have passed since the last read, so within a minute |
//! | a parameter holding invalid rules (bad JSON, or no rule that opts out: a STOP must always stop) | the last good rules (the parameter's previous value, or `REPLY_RULES`); the error logged at each read |
//! | unreadable for now (throttled, denied, the network) | the last good rules; tried again after the cache time |
//! | missing, or empty | `REPLY_RULES` |
//!
//! One read per worker instance per cache time (a warm Lambda keeps its cache), so the cost
//! is one `GetParameter` a half minute per instance, whatever the traffic. The read is an SSM
//! JSON call signed with SigV4 (`aws-sigv4`) over the pipeline's HTTPS client, not the SSM
//! SDK: one call does not justify a crate of hundreds.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::hook::{Decision, Hook, HookError, Inbound};
use crate::reply::ReplyPolicy;

/// `REPLY_RULES_PARAMETER`: the SSM parameter holding the rules.
pub const REPLY_RULES_PARAMETER: &str = "REPLY_RULES_PARAMETER";
/// `REPLY_RULES_CACHE_SECS`: how long rules read are used before reading again.
pub const REPLY_RULES_CACHE_SECS: &str = "REPLY_RULES_CACHE_SECS";
/// The default cache time: a change takes effect within a minute.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(30);

/// Where the rules' text is read from.
pub trait RulesSource: Send + Sync + 'static {
    /// The rules' JSON, `None` when there is none (then the fallback holds); `Err` when it
    /// could not be read this time.
    fn fetch(&self) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

/// No source: the fallback rules, always (no read is ever made).
impl RulesSource for () {
    async fn fetch(&self) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// A source that may not be configured: none, the fallback rules.
impl<R: RulesSource> RulesSource for Option<R> {
    async fn fetch(&self) -> Result<Option<String>, String> {
        match self {
            Some(source) => source.fetch().await,
            None => Ok(None),
        }
    }
}

/// Where the rules live and how long a read holds, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRulesSettings {
    /// See [`REPLY_RULES_PARAMETER`]; `None`: the rules of `REPLY_RULES` only.
    pub parameter: Option<String>,
    /// See [`REPLY_RULES_CACHE_SECS`].
    pub cache_for: Duration,
}

impl ReplyRulesSettings {
    /// The settings from `env`: the parameter's name or ARN, a cache time of 1 to 600 s.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &crate::config::Env<F>,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            parameter: env.optional(REPLY_RULES_PARAMETER),
            cache_for: env.seconds(REPLY_RULES_CACHE_SECS, DEFAULT_CACHE.as_secs(), 1..=600)?,
        })
    }
}

/// Rules held in memory, changed by the test or the local stack that holds a clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryRules(Arc<Mutex<Option<String>>>);

impl MemoryRules {
    /// Replaces the rules' text (`None`: none).
    pub fn set(&self, json: Option<&str>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = json.map(str::to_owned);
    }
}

impl RulesSource for MemoryRules {
    async fn fetch(&self) -> Result<Option<String>, String> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }
}

/// An SSM parameter, read with `GetParameter` (decrypted).
#[derive(Debug, Clone)]
pub struct SsmParameter {
    name: String,
    endpoint: String,
    region: String,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    http: reqwest::Client,
}

impl SsmParameter {
    /// The parameter `name`, through the SDK configuration's region, credentials and endpoint
    /// (`SINCH_HOOKS_AWS_ENDPOINT` when set).
    pub fn new(sdk: &aws_config::SdkConfig, name: impl Into<String>) -> Option<Self> {
        let region = sdk.region()?.to_string();
        Some(Self {
            name: name.into(),
            endpoint: sdk.endpoint_url().map_or_else(
                || format!("https://ssm.{region}.amazonaws.com"),
                str::to_owned,
            ),
            region,
            credentials: sdk.credentials_provider()?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .ok()?,
        })
    }
}

impl RulesSource for SsmParameter {
    async fn fetch(&self) -> Result<Option<String>, String> {
        use aws_credential_types::provider::ProvideCredentials;
        let body = serde_json::json!({"Name": self.name, "WithDecryption": true}).to_string();
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?;
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            (
                "x-amz-target".to_owned(),
                "AmazonSSM.GetParameter".to_owned(),
            ),
        ];
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let signed = crate::aws::sigv4_headers(
            &credentials.into(),
            &self.region,
            "ssm",
            "POST",
            &url,
            &headers,
            body.as_bytes(),
        )
        .map_err(|e| format!("could not sign: {e}"))?;
        headers.extend(signed);
        let mut request = self.http.post(&url).body(body);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            let answer: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("unreadable answer: {e}"))?;
            let value = answer["Parameter"]["Value"]
                .as_str()
                .unwrap_or_default()
                .trim();
            return Ok((!value.is_empty()).then(|| value.to_owned()));
        }
        if text.contains("ParameterNotFound") {
            return Ok(None);
        }
        Err(format!("GetParameter answered {status}: {text}"))
    }
}

/// The reply rules as a hook that reads them from `source` at most once per cache time.
#[derive(Debug)]
pub struct ReplyRules<R> {
    source: R,
    fallback: ReplyPolicy,
    cache_for: Duration,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Debug)]
struct Cache {
    /// The rules in use.
    policy: Arc<ReplyPolicy>,
    /// When to read again; `None`: never read yet.
    read_again_at: Option<SystemTime>,
    /// The text the rules in use came from (a read of the same text parses nothing).
    text: Option<String>,
}

impl<R: RulesSource> ReplyRules<R> {
    /// Rules from `source`, `fallback` while it has none, each read kept `cache_for`.
    pub fn new(source: R, fallback: ReplyPolicy, cache_for: Duration) -> Self {
        Self {
            source,
            cache: tokio::sync::Mutex::new(Cache {
                policy: Arc::new(fallback.clone()),
                read_again_at: None,
                text: None,
            }),
            fallback,
            cache_for,
        }
    }

    /// The rules in force at `now`, read from the source first when the cache time has passed.
    pub async fn policy_at(&self, now: SystemTime) -> Arc<ReplyPolicy> {
        let mut cache = self.cache.lock().await;
        if cache.read_again_at.is_some_and(|at| now < at) {
            return cache.policy.clone();
        }
        cache.read_again_at = Some(now + self.cache_for);
        match self.source.fetch().await {
            Ok(None) => {
                cache.policy = Arc::new(self.fallback.clone());
                cache.text = None;
            }
            Ok(Some(text)) if cache.text.as_deref() == Some(text.as_str()) => {}
            Ok(Some(text)) => match ReplyPolicy::from_json(&text) {
                Ok(policy) => {
                    tracing::info!("reply rules changed");
                    cache.policy = Arc::new(policy);
                    cache.text = Some(text);
                }
                Err(error) => {
                    tracing::error!(%error, "the reply rules parameter is invalid: the last good rules stay");
                }
            },
            Err(error) => {
                tracing::warn!(%error, "the reply rules could not be read: the last ones stay");
            }
        }
        cache.policy.clone()
    }
}

impl<R: RulesSource> Hook for ReplyRules<R> {
    async fn on_inbound(&self, message: Inbound<'_>) -> Result<Decision, HookError> {
        let policy = self.policy_at(SystemTime::now()).await;
        Ok(policy.decide(message.message.text.as_deref(), message.opted_out_before))
    }

    fn wants_status(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::Action;

    const SPANISH: &str =
        r#"{"rules":[{"keywords":["BAJA","ALTO"],"action":"opt_out","reply":"Dado de baja."}]}"#;
    const GREETING: &str =
        r#"{"rules":[{"keywords":["BAJA"],"action":"opt_out"}],"default_reply":"Hola."}"#;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    async fn action(rules: &ReplyRules<impl RulesSource>, now: SystemTime, text: &str) -> Action {
        rules.policy_at(now).await.decide(Some(text), false).action
    }

    #[tokio::test]
    async fn a_change_takes_effect_once_the_cache_time_has_passed() {
        let source = MemoryRules::default();
        source.set(Some(SPANISH));
        let rules = ReplyRules::new(source.clone(), ReplyPolicy::default(), DEFAULT_CACHE);
        assert_eq!(action(&rules, at(0), "alto").await, Action::OptOut);
        assert_eq!(
            action(&rules, at(0), "stop").await,
            Action::None,
            "the parameter's rules replace the fallback"
        );

        source.set(Some(GREETING));
        // Within the cache time the rules read stay.
        assert_eq!(action(&rules, at(29), "alto").await, Action::OptOut);
        // Once it has passed, the next message reads the new ones.
        assert_eq!(action(&rules, at(30), "alto").await, Action::None);
        let policy = rules.policy_at(at(31)).await;
        assert_eq!(
            policy.decide(Some("hi"), false).reply.as_deref(),
            Some("Hola.")
        );
    }

    #[tokio::test]
    async fn invalid_rules_keep_the_last_good_ones_and_no_rules_mean_the_fallback() {
        let source = MemoryRules::default();
        source.set(Some(SPANISH));
        let rules = ReplyRules::new(source.clone(), ReplyPolicy::default(), DEFAULT_CACHE);
        assert_eq!(action(&rules, at(0), "baja").await, Action::OptOut);

        // Not JSON, a rule without keywords, a typo, rules that leave no opt-out keyword.
        for invalid in [
            "{",
            r#"{"rules":[{"keywords":[]}]}"#,
            r#"{"rulez":[]}"#,
            r#"{"rules":[]}"#,
        ] {
            source.set(Some(invalid));
            assert_eq!(
                action(&rules, at(100), "baja").await,
                Action::OptOut,
                "{invalid}"
            );
        }
        // The parameter removed: the fallback (REPLY_RULES, here the built-in rules).
        source.set(None);
        assert_eq!(action(&rules, at(200), "baja").await, Action::None);
        assert_eq!(action(&rules, at(200), "STOP").await, Action::OptOut);
    }

    struct Failing;
    impl RulesSource for Failing {
        async fn fetch(&self) -> Result<Option<String>, String> {
            Err("throttled".into())
        }
    }

    #[tokio::test]
    async fn an_unreadable_source_keeps_the_rules_in_use() {
        let rules = ReplyRules::new(Failing, ReplyPolicy::default(), DEFAULT_CACHE);
        assert_eq!(action(&rules, at(0), "stop").await, Action::OptOut);
        let none = ReplyRules::new(None::<Failing>, ReplyPolicy::default(), DEFAULT_CACHE);
        assert_eq!(action(&none, at(0), "unsubscribe").await, Action::OptOut);
    }

    #[test]
    fn settings_come_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            crate::config::Env::from_lookup(move |name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let none = ReplyRulesSettings::from_env(&env(&[])).unwrap();
        assert_eq!(
            none,
            ReplyRulesSettings {
                parameter: None,
                cache_for: DEFAULT_CACHE
            }
        );
        let set = ReplyRulesSettings::from_env(&env(&[
            (REPLY_RULES_PARAMETER, "/sinch-hooks/reply-rules"),
            (REPLY_RULES_CACHE_SECS, "5"),
        ]))
        .unwrap();
        assert_eq!(set.parameter.as_deref(), Some("/sinch-hooks/reply-rules"));
        assert_eq!(set.cache_for, Duration::from_secs(5));
        let error =
            ReplyRulesSettings::from_env(&env(&[(REPLY_RULES_CACHE_SECS, "0")])).unwrap_err();
        assert_eq!(error.name, REPLY_RULES_CACHE_SECS);
    }
}
