//! The OAuth2 access token, cached for the process.
//!
//! A `tokio::sync::Mutex` held across the fetch makes it single flight: when the token is
//! missing or due for refresh, the first caller fetches and everyone else waits for that result
//! instead of hitting Sinch's rate-limited token endpoint themselves.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::debug;

use super::SinchError;

/// `POST /oauth2/token`'s answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    /// Seconds; Sinch gives 3600.
    expires_in: u64,
}

#[derive(Debug)]
struct Cached {
    token: Arc<str>,
    refresh_at: Instant,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    margin: Duration,
    state: Mutex<Option<Cached>>,
}

impl TokenCache {
    pub(crate) fn new(margin: Duration) -> Self {
        Self {
            margin,
            state: Mutex::new(None),
        }
    }

    /// The cached token while it is fresh; otherwise the result of `fetch`, cached.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<Arc<str>, SinchError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TokenResponse, SinchError>>,
    {
        let mut state = self.state.lock().await;
        if let Some(cached) = state.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let response = fetch().await?;
        let lifetime = Duration::from_secs(response.expires_in);
        // Refresh ahead of expiry, but never so early that a short-lived token is never used.
        let margin = self.margin.min(lifetime / 2);
        let token: Arc<str> = response.access_token.into();
        debug!(
            expires_in = response.expires_in,
            "fetched a Sinch access token"
        );
        *state = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }

    /// Drops the cached token if it is still `used` (a 401 said it is no good). If another
    /// caller already replaced it, the newer token stays.
    pub(crate) async fn invalidate(&self, used: &str) {
        let mut state = self.state.lock().await;
        if state.as_ref().is_some_and(|cached| &*cached.token == used) {
            *state = None;
        }
    }
}
