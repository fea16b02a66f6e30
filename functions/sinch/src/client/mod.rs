//! The Sinch REST client: Conversation `messages:send`, SMS batches, and webhook management.
//!
//! Built once per process and shared (it is cheap to clone). What it takes care of:
//!
//! - **OAuth2** (Conversation): a client-credentials token, cached for the process (a warm
//!   Lambda reuses it across invocations) and refreshed shortly before it expires. Sinch rate
//!   limits its token endpoint, so concurrent callers wait for one fetch instead of each making
//!   their own (single flight). A 401 refreshes the token once and retries.
//! - **SMS**: the service plan's static bearer token.
//! - **Retries**: reads and webhook writes retry 429, 500, 502, 503, 504 and network errors with
//!   exponential backoff and full jitter (`retry-policies`), honouring `Retry-After`, but only
//!   while the caller's deadline (in the worker, the Lambda's remaining time) leaves room. Sends
//!   are one request each: neither send API has an idempotency key, and a paced send takes a
//!   slot of its own for every try, so the caller retries them ([`SinchClient::retry_settings`]
//!   says how far). Other 4xx are never retried: repeating a bad request cannot fix it.
//! - **Errors** typed as transient or permanent ([`SinchError::is_transient`]), with Sinch's
//!   error body parsed.
//!
//! - **Trust**: Mozilla's roots, compiled in; no certificate file is read.
//!
//! Every base URL is configurable, so tests point the client at a local fake.

mod error;
mod messages;
mod token;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::{RequestBuilder, StatusCode, header};
use retry_policies::policies::ExponentialBackoff;
use retry_policies::{Jitter, RetryDecision, RetryPolicy};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::{debug, warn};

pub use error::{ApiErrorDetail, SinchError};
pub use messages::{
    AppMessage, CardBody, ChannelRecipient, ChannelTemplate, MESSAGE_FIELDS_BESIDE_THE_KIND,
    MediaBody, OmniTemplate, Recipient, SendMessageRequest, SendMessageResponse, SmsBatchRequest,
    SmsBatchResponse, TemplateBody, TextBody, is_kind,
};

pub use webhooks::{Webhook, WebhookRequest};

use token::TokenCache;

/// Conversation API credentials: an access key of the project.
#[derive(Clone)]
pub struct ConversationCredentials {
    /// The project the key belongs to.
    pub project_id: String,
    /// The access key's id (the OAuth client id).
    pub key_id: String,
    /// The access key's secret (the OAuth client secret). Never logged.
    pub key_secret: String,
}

impl std::fmt::Debug for ConversationCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationCredentials")
            .field("project_id", &self.project_id)
            .field("key_id", &self.key_id)
            .field("key_secret", &"[redacted]")
            .finish()
    }
}

/// SMS API credentials: a service plan and its API token.
#[derive(Clone)]
pub struct SmsCredentials {
    /// The service plan to send from.
    pub service_plan_id: String,
    /// Its API token (a bearer token). Never logged.
    pub api_token: String,
}

impl std::fmt::Debug for SmsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsCredentials")
            .field("service_plan_id", &self.service_plan_id)
            .field("api_token", &"[redacted]")
            .finish()
    }
}

/// Where the APIs live. [`Urls::for_regions`] gives Sinch's production URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// OAuth2 server, without `/oauth2/token`.
    pub auth: String,
    /// Conversation API, without `/v1/...`. Must be the app's region, else Sinch answers 404.
    pub conversation: String,
    /// SMS API, without `/xms/v1/...`.
    pub sms: String,
}

impl Urls {
    /// Every API at one base URL: a simulator, a local fake, a proxy.
    pub fn all_at(base: &str) -> Self {
        Self {
            auth: base.to_owned(),
            conversation: base.to_owned(),
            sms: base.to_owned(),
        }
    }

    /// Production URLs: Conversation in `us`, `eu` or `br`; SMS in `us`, `eu`, `br`, `ca` or `au`.
    pub fn for_regions(conversation_region: &str, sms_region: &str) -> Self {
        Self {
            auth: "https://auth.sinch.com".into(),
            conversation: format!("https://{conversation_region}.conversation.api.sinch.com"),
            sms: format!("https://{sms_region}.sms.api.sinch.com"),
        }
    }
}

/// How retries are spaced. The deadline passed to each call bounds them in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Upper bound of the first backoff (full jitter draws from zero to it).
    pub min_delay: Duration,
    /// Cap on any single backoff, including one asked for by `Retry-After`.
    pub max_delay: Duration,
    /// Retries after the first attempt, at most.
    pub max_retries: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retries: 5,
        }
    }
}

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The Conversation API's credentials; without them Conversation sends fail as not configured.
    pub conversation: Option<ConversationCredentials>,
    /// The SMS API's credentials; without them SMS sends fail as not configured.
    pub sms: Option<SmsCredentials>,
    /// Where the APIs are (region, or a local fake).
    pub urls: Urls,
    /// How transient errors are retried.
    pub retry: RetrySettings,
    /// Refresh the OAuth token this long before it expires (at most half its lifetime).
    pub token_refresh_margin: Duration,
    /// Bound on connecting to Sinch.
    pub connect_timeout: Duration,
    /// The least time a send needs left before its deadline to be started: Sinch answers sends
    /// well within it, so a send is not cut short by the caller's deadline (which would leave
    /// its outcome unknown, and the message waiting for a report). With less, the send fails
    /// as "out of time" without being made, and is retried later.
    pub send_budget: Duration,
}

impl ClientConfig {
    /// The bound on connecting to Sinch unless a config says otherwise.
    pub const fn default_connect_timeout() -> Duration {
        Duration::from_secs(3)
    }

    /// No credentials, the given URLs and the default timeouts and retries.
    pub fn new(urls: Urls) -> Self {
        Self {
            conversation: None,
            sms: None,
            urls,
            retry: RetrySettings::default(),
            token_refresh_margin: Duration::from_secs(300),
            connect_timeout: Self::default_connect_timeout(),
            send_budget: DEFAULT_SEND_BUDGET,
        }
    }
}

/// The Sinch REST client. Clones share the connection pool and the token cache.
#[derive(Debug, Clone)]
pub struct SinchClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    token: TokenCache,
}

/// How a request authenticates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    OAuth,
    SmsToken,
}

/// Default for [`ClientConfig::send_budget`].
pub const DEFAULT_SEND_BUDGET: Duration = Duration::from_secs(2);

/// Whether repeating a request whose answer was lost is harmless.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads, and writes that Sinch deduplicates: retried on any transient error.
    Safe,
    /// Sends: one request (a 401 refreshes the token once). Sinch has no idempotency key, and a
    /// paced send must take a slot of its own for every try, so whatever it met is the caller's
    /// to retry (the pipeline's send ledger, through its pacing).
    Once,
}

/// Mozilla's root certificates, compiled in (`webpki-root-certs`): the same list Debian's and
/// Amazon Linux's CA bundles hold, without reading and parsing a certificate directory at every
/// cold start (the platform verifier's way, which cost the worker several milliseconds of init).
fn compiled_in_roots() -> impl Iterator<Item = reqwest::Certificate> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok())
}

/// The HTTP client the Sinch client uses: it needs no credentials, so a cold start builds it
/// while it still waits for them (the secrets' fetch).
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, SinchError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("sinch-hooks/", env!("CARGO_PKG_VERSION")))
        .tls_certs_only(compiled_in_roots())
        .build()
        .map_err(|e| SinchError::Network {
            operation: "building the HTTP client",
            detail: e.to_string(),
            maybe_delivered: false,
        })
}

impl SinchClient {
    /// A client with its own HTTP client (see [`http_client`]).
    pub fn new(config: ClientConfig) -> Result<Self, SinchError> {
        let http = http_client(config.connect_timeout)?;
        Ok(Self::with_http(config, http))
    }

    /// A client over an HTTP client built earlier (see [`http_client`]).
    pub fn with_http(config: ClientConfig, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                token: TokenCache::new(config.token_refresh_margin),
                config,
            }),
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Whether Conversation replies can be sent.
    pub fn has_conversation(&self) -> bool {
        self.inner.config.conversation.is_some()
    }

    /// Whether SMS replies can be sent.
    pub fn has_sms(&self) -> bool {
        self.inner.config.sms.is_some()
    }

    /// How retries are spaced and how many there may be (a caller retrying sends uses the same).
    pub fn retry_settings(&self) -> RetrySettings {
        self.inner.config.retry
    }

    /// The least time a send needs left before its deadline to be started.
    pub fn send_budget(&self) -> Duration {
        self.inner.config.send_budget
    }

    fn conversation_credentials(&self) -> Result<&ConversationCredentials, SinchError> {
        self.inner
            .config
            .conversation
            .as_ref()
            .ok_or(SinchError::NotConfigured("Conversation"))
    }

    fn sms_credentials(&self) -> Result<&SmsCredentials, SinchError> {
        self.inner
            .config
            .sms
            .as_ref()
            .ok_or(SinchError::NotConfigured("SMS"))
    }

    /// Sends a Conversation message: one request (see [`SinchError::is_transient`] for what may
    /// be tried again, by the caller), started only with the send budget left before `deadline`.
    pub async fn send_message(
        &self,
        request: &SendMessageRequest,
        deadline: Instant,
    ) -> Result<SendMessageResponse, SinchError> {
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.inner.config.urls.conversation.trim_end_matches('/'),
            self.conversation_credentials()?.project_id
        );
        self.execute(
            "messages:send",
            Auth::OAuth,
            Repeat::Once,
            deadline,
            |http| http.post(&url).json(request),
        )
        .await
    }

    /// Creates an SMS batch: one request, as [`SinchClient::send_message`].
    pub async fn send_sms(
        &self,
        batch: &SmsBatchRequest,
        deadline: Instant,
    ) -> Result<SmsBatchResponse, SinchError> {
        let url = format!(
            "{}/xms/v1/{}/batches",
            self.inner.config.urls.sms.trim_end_matches('/'),
            self.sms_credentials()?.service_plan_id
        );
        self.execute("batches", Auth::SmsToken, Repeat::Once, deadline, |http| {
            http.post(&url).json(batch)
        })
        .await
    }

    /// One logical request: attempts, token handling and retries, all before `deadline`.
    async fn execute<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        auth: Auth,
        repeat: Repeat,
        deadline: Instant,
        request: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<T, SinchError> {
        let settings = self.inner.config.retry;
        let policy = ExponentialBackoff::builder()
            .retry_bounds(settings.min_delay, settings.max_delay)
            .jitter(Jitter::Full)
            .build_with_max_retries(settings.max_retries);
        let started = SystemTime::now();
        let mut retries = 0;
        let mut refreshed_after_401 = false;
        let mut last_error = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // A send that the budget could cut short would leave its outcome unknown (and the
            // message waiting for a report): one is only started with time to hear the answer.
            let needed = match repeat {
                Repeat::Once => self.inner.config.send_budget,
                Repeat::Safe => Duration::ZERO,
            };
            if remaining.is_zero() || remaining < needed {
                // Out of time: what the last attempt met says more than that, when there was one.
                return Err(last_error.unwrap_or(SinchError::OutOfTime { operation }));
            }
            let attempt = async {
                let builder = request(&self.inner.http).timeout(remaining);
                let (builder, token) = match auth {
                    Auth::OAuth => {
                        let token = self.oauth_token(deadline).await?;
                        (builder.bearer_auth(&token), Some(token))
                    }
                    Auth::SmsToken => (
                        builder.bearer_auth(&self.sms_credentials()?.api_token),
                        None,
                    ),
                };
                Ok::<_, SinchError>((send(operation, builder).await, token))
            };
            let error = match attempt.await {
                Ok((Ok(body), _)) => return decode(operation, &body),
                Ok((Err(error), token)) => {
                    if auth == Auth::OAuth
                        && error.status() == Some(StatusCode::UNAUTHORIZED.as_u16())
                        && !refreshed_after_401
                    {
                        // The token may have expired or been revoked early: refresh once.
                        refreshed_after_401 = true;
                        if let Some(token) = token {
                            self.inner.token.invalidate(&token).await;
                        }
                        debug!(operation, "401 from Sinch; refreshing the token once");
                        continue;
                    }
                    error
                }
                Err(error) => error,
            };
            if !error.is_transient() || repeat == Repeat::Once {
                return Err(error);
            }
            let RetryDecision::Retry { execute_after } = policy.should_retry(started, retries)
            else {
                return Err(error);
            };
            let backoff = execute_after
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let delay = error
                .retry_after()
                .map_or(backoff, |asked| asked.min(settings.max_delay));
            if Instant::now() + delay >= deadline {
                warn!(operation, %error, "not retrying: the time budget would run out");
                return Err(error);
            }
            debug!(operation, %error, delay_ms = delay.as_millis() as u64, retry = retries + 1, "retrying Sinch request");
            tokio::time::sleep(delay).await;
            retries += 1;
            last_error = Some(error);
        }
    }

    /// A valid OAuth token, fetched if needed (one fetch at a time for the whole process).
    async fn oauth_token(&self, deadline: Instant) -> Result<Arc<str>, SinchError> {
        let credentials = self.conversation_credentials()?;
        let url = format!(
            "{}/oauth2/token",
            self.inner.config.urls.auth.trim_end_matches('/')
        );
        self.inner
            .token
            .get_or_fetch(|| async {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let builder = self
                    .inner
                    .http
                    .post(&url)
                    .timeout(remaining)
                    .basic_auth(&credentials.key_id, Some(&credentials.key_secret))
                    .form(&[("grant_type", "client_credentials")]);
                let body = send("oauth2/token", builder).await?;
                decode::<token::TokenResponse>("oauth2/token", &body)
            })
            .await
    }
}

/// Sends one attempt; a non-2xx answer becomes [`SinchError::Api`].
async fn send(operation: &'static str, builder: RequestBuilder) -> Result<Vec<u8>, SinchError> {
    let response = builder.send().await.map_err(|e| SinchError::Network {
        operation,
        detail: error_chain(&e),
        // No connection (refused, DNS, TLS, connect timeout) means the request never left.
        maybe_delivered: !(e.is_connect() || e.is_builder()),
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(error::parse_retry_after);
    let body = match response.bytes().await {
        Ok(body) => body.to_vec(),
        // A success whose body broke off: Sinch took the request, we cannot read the answer.
        Err(e) if status.is_success() => {
            return Err(SinchError::Decode {
                operation,
                detail: error_chain(&e),
            });
        }
        // An error status whose body broke off: still Sinch's refusal.
        Err(_) => Vec::new(),
    };
    if status.is_success() {
        Ok(body)
    } else {
        Err(SinchError::Api {
            operation,
            status: status.as_u16(),
            detail: ApiErrorDetail::parse(&body),
            retry_after,
        })
    }
}

fn decode<T: DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, SinchError> {
    serde_json::from_slice(body).map_err(|e| SinchError::Decode {
        operation,
        detail: e.to_string(),
    })
}

/// reqwest's error with its sources, e.g. "error sending request: connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_trusts_every_compiled_in_root() {
        // Every one of Mozilla's roots is a valid certificate (none silently dropped).
        assert_eq!(
            compiled_in_roots().count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
        SinchClient::new(ClientConfig::new(Urls::for_regions("eu", "eu"))).expect("a client");
    }
}
