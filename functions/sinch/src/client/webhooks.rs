//! Conversation API webhook management: list an app's webhooks, create one, update one.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Auth, Repeat, SinchClient, SinchError};

/// A webhook as Sinch returns it (the secret is never returned).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Webhook {
    /// The webhook's id.
    #[serde(default)]
    pub id: String,
    /// The app it belongs to.
    #[serde(default)]
    pub app_id: String,
    /// The URL Sinch calls.
    pub target: String,
    /// `HTTP` (or `GRPC`).
    #[serde(default)]
    pub target_type: String,
    /// The triggers it receives, e.g. `MESSAGE_INBOUND`.
    #[serde(default)]
    pub triggers: Vec<String>,
}

/// What to create or update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookRequest {
    /// The app to attach the webhook to.
    pub app_id: String,
    /// The URL Sinch should call.
    pub target: String,
    /// `HTTP`.
    pub target_type: String,
    /// The triggers to receive.
    pub triggers: Vec<String>,
    /// The HMAC secret Sinch signs each callback with.
    pub secret: String,
}

#[derive(Deserialize)]
struct WebhookList {
    #[serde(default)]
    webhooks: Vec<Webhook>,
}

impl SinchClient {
    fn webhooks_url(&self) -> Result<String, SinchError> {
        Ok(format!(
            "{}/v1/projects/{}",
            self.inner.config.urls.conversation.trim_end_matches('/'),
            self.conversation_credentials()?.project_id
        ))
    }

    /// The app's webhooks.
    pub async fn list_webhooks(
        &self,
        app_id: &str,
        deadline: Instant,
    ) -> Result<Vec<Webhook>, SinchError> {
        let url = format!("{}/apps/{app_id}/webhooks", self.webhooks_url()?);
        let list: WebhookList = self
            .execute(
                "list webhooks",
                Auth::OAuth,
                Repeat::Safe,
                deadline,
                |http| http.get(&url),
            )
            .await?;
        Ok(list.webhooks)
    }

    /// Creates a webhook.
    pub async fn create_webhook(
        &self,
        request: &WebhookRequest,
        deadline: Instant,
    ) -> Result<Webhook, SinchError> {
        let url = format!("{}/webhooks", self.webhooks_url()?);
        self.execute(
            "create webhook",
            Auth::OAuth,
            Repeat::Safe,
            deadline,
            |http| http.post(&url).json(request),
        )
        .await
    }

    /// Updates webhook `id` to `request`.
    pub async fn update_webhook(
        &self,
        id: &str,
        request: &WebhookRequest,
        deadline: Instant,
    ) -> Result<Webhook, SinchError> {
        let url = format!("{}/webhooks/{id}", self.webhooks_url()?);
        self.execute(
            "update webhook",
            Auth::OAuth,
            Repeat::Safe,
            deadline,
            |http| http.patch(&url).json(request),
        )
        .await
    }
}
