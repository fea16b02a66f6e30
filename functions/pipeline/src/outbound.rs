//! Sends of the messages API, as queued and as the worker runs them.
//!
//! The messages API validates a request, stores it as `ACCEPTED` under our id, and queues an
//! [`OutboundJob`] (an envelope with the [`JOB`](envelope::JOB) attribute `send`) on the outbound
//! queue. The worker runs it through the send-once ledger ([`crate::send`]): Sinch's answer moves
//! it to `SENT` with Sinch's id, a refusal to `FAILED` with Sinch's reason; transient failures go
//! back to the queue, and on the last receive a send Sinch certainly never took is marked
//! `FAILED` (`RETRIES_EXHAUSTED`) before the queue parks it in its dead-letter queue.
//!
//! Our id travels as `correlation_id` and `message_metadata` (Conversation) or `client_reference`
//! (SMS), so every delivery report finds the message, even before the send is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sinch::callback::conversation::Channel;
use sinch::client::{AppMessage, ChannelRecipient, Recipient, SendMessageRequest, SmsBatchRequest};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::handlers::Services;
use crate::hook::Hook;
use crate::send::{SendError, Sent, reference};
use crate::store::{ContactKey, Reason, SendIntent, SendResult, SinchId, Store};

/// The [`JOB`](envelope::JOB) attribute's value for a send.
pub const SEND_JOB: &str = "send";

/// One send, as queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundJob {
    /// Our message id.
    pub id: String,
    /// The recipient as asked (an E.164 number, or another channel's identity).
    pub to: String,
    pub route: Route,
}

/// Which API sends it, with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "api", rename_all = "snake_case")]
pub enum Route {
    /// Conversation `messages:send`, to the channel identity on `channel`, then `fallback`.
    Conversation {
        app_id: String,
        channel: String,
        #[serde(default)]
        fallback: Vec<String>,
        message: AppMessage,
        #[serde(default)]
        channel_properties: BTreeMap<String, String>,
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
    /// An SMS API batch to one recipient, with per-recipient delivery reports.
    Sms {
        from: String,
        body: String,
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
}

impl OutboundJob {
    /// The contact it goes to, as the store keys contacts (the SMS API shares `SMS`).
    pub fn contact(&self) -> ContactKey {
        match &self.route {
            Route::Conversation { channel, .. } => ContactKey::new(channel, &self.to),
            Route::Sms { .. } => ContactKey::new("SMS", &self.to),
        }
    }

    fn intent(&self) -> SendIntent {
        let text = match &self.route {
            Route::Conversation { message, .. } => message.as_text().map(str::to_owned),
            Route::Sms { body, .. } => Some(body.clone()),
        };
        SendIntent {
            to: self.contact(),
            in_reply_to: None,
            text,
        }
    }

    /// What goes to Sinch; an SMS batch expires `ttl_secs` after `now`.
    pub fn request(&self, now: OffsetDateTime) -> SinchRequest {
        match &self.route {
            Route::Conversation {
                app_id,
                channel,
                fallback,
                message,
                channel_properties,
                ttl_secs,
            } => SinchRequest::Conversation(self.conversation_request(
                app_id,
                std::iter::once(channel).chain(fallback),
                message,
                channel_properties,
                *ttl_secs,
            )),
            Route::Sms {
                from,
                body,
                ttl_secs,
            } => SinchRequest::Sms(self.sms_request(from, body, *ttl_secs, now)),
        }
    }

    fn conversation_request<'a>(
        &self,
        app_id: &str,
        channels: impl Iterator<Item = &'a String>,
        message: &AppMessage,
        channel_properties: &BTreeMap<String, String>,
        ttl_secs: Option<u64>,
    ) -> SendMessageRequest {
        let sinch_reference = reference::to_sinch(&self.id);
        let channels: Vec<Channel> = channels.map(|c| Channel::from(c.as_str())).collect();
        // Phone numbers go to Sinch without the `+`.
        let identity = self.to.trim_start_matches('+').to_owned();
        SendMessageRequest {
            app_id: app_id.to_owned(),
            recipient: Recipient::Identities(
                channels
                    .iter()
                    .map(|channel| ChannelRecipient {
                        channel: channel.clone(),
                        identity: identity.clone(),
                    })
                    .collect(),
            ),
            channel_priority_order: channels,
            message: message.clone(),
            message_metadata: Some(sinch_reference.clone()),
            correlation_id: Some(sinch_reference),
            channel_properties: channel_properties.clone(),
            ttl: ttl_secs.map(|secs| format!("{secs}s")),
        }
    }

    fn sms_request(
        &self,
        from: &str,
        body: &str,
        ttl_secs: Option<u64>,
        now: OffsetDateTime,
    ) -> SmsBatchRequest {
        SmsBatchRequest {
            from: from.to_owned(),
            to: vec![self.to.clone()],
            body: body.to_owned(),
            delivery_report: Some("per_recipient".to_owned()),
            client_reference: Some(reference::to_sinch(&self.id)),
            expire_at: ttl_secs.and_then(|secs| {
                (now + Duration::from_secs(secs))
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }),
        }
    }
}

/// A job's request to Sinch.
#[derive(Debug, Clone, PartialEq)]
pub enum SinchRequest {
    Conversation(SendMessageRequest),
    Sms(SmsBatchRequest),
}

/// Why a queued job could not even be read.
#[derive(Debug, thiserror::Error)]
#[error("the queued send is not a job of this version: {0}")]
pub struct BadJob(#[from] serde_json::Error);

/// Reads a job from its queued body.
pub fn parse(body: &[u8]) -> Result<OutboundJob, BadJob> {
    Ok(serde_json::from_slice(body)?)
}

/// Sends a job at most once (see [`crate::send`]). Sinch calls finish before `deadline`.
pub async fn send<S: Store, H: Hook>(
    services: &Services<S, H>,
    job: &OutboundJob,
    deadline: Instant,
) -> Result<Sent, SendError> {
    let sinch = &services.sinch;
    let intent = job.intent();
    let now = OffsetDateTime::from(services.clock.now());
    match job.request(now) {
        SinchRequest::Conversation(request) => {
            services
                .sender
                .send(
                    &services.store,
                    &services.clock,
                    &job.id,
                    &intent,
                    || async {
                        sinch
                            .send_message(&request, deadline)
                            .await
                            .map(|answer| SinchId::Message(answer.message_id))
                    },
                )
                .await
        }
        SinchRequest::Sms(batch) => {
            services
                .sender
                .send(
                    &services.store,
                    &services.clock,
                    &job.id,
                    &intent,
                    || async {
                        sinch
                            .send_sms(&batch, deadline)
                            .await
                            .map(|answer| SinchId::Batch(answer.id))
                    },
                )
                .await
        }
    }
}

/// On the last receive of a job whose send Sinch certainly never took (every attempt answered
/// 429 or 5xx, or found no connection): the message is `FAILED` before the queue parks it.
pub async fn give_up<S: Store, H: Hook>(
    services: &Services<S, H>,
    job: &OutboundJob,
    error: &SendError,
) -> Result<bool, crate::store::StoreError> {
    if !matches!(error, SendError::NotSent { .. }) {
        return Ok(false);
    }
    let reason = Reason::new("RETRIES_EXHAUSTED", Some(error.to_string()));
    services
        .store
        .finish_send(
            &job.id,
            &SendResult::Refused { reason },
            crate::clock::unix_millis(services.clock.now()),
        )
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(route: Route) -> OutboundJob {
        OutboundJob {
            id: "msg_01".into(),
            to: "+46701234567".into(),
            route,
        }
    }

    #[test]
    fn conversation_sends_carry_our_reference_and_the_channel_order() {
        let job = job(Route::Conversation {
            app_id: "app".into(),
            channel: "WHATSAPP".into(),
            fallback: vec!["SMS".into()],
            message: AppMessage::text("Hi"),
            channel_properties: BTreeMap::from([("SMS_SENDER".into(), "Acme".into())]),
            ttl_secs: Some(3600),
        });
        let now = time::macros::datetime!(2026-12-01 08:00:00 UTC);
        let SinchRequest::Conversation(request) = job.request(now) else {
            panic!("a Conversation request")
        };
        let request = serde_json::to_value(request).unwrap();
        assert_eq!(
            request,
            json!({
                "app_id": "app",
                "recipient": {"identified_by": {"channel_identities": [
                    {"channel": "WHATSAPP", "identity": "46701234567"},
                    {"channel": "SMS", "identity": "46701234567"}]}},
                "message": {"text_message": {"text": "Hi"}},
                "channel_priority_order": ["WHATSAPP", "SMS"],
                "message_metadata": "sinch-hooks:msg_01",
                "correlation_id": "sinch-hooks:msg_01",
                "channel_properties": {"SMS_SENDER": "Acme"},
                "ttl": "3600s"
            })
        );
        assert_eq!(job.contact(), ContactKey::new("WHATSAPP", "46701234567"));
        // Round trip through the queue.
        let queued = serde_json::to_vec(&job).unwrap();
        assert_eq!(parse(&queued).unwrap(), job);
    }

    #[test]
    fn sms_sends_are_batches_with_per_recipient_reports() {
        let job = job(Route::Sms {
            from: "46700000001".into(),
            body: "Hi".into(),
            ttl_secs: Some(60),
        });
        let now = time::macros::datetime!(2026-12-01 08:00:00 UTC);
        let SinchRequest::Sms(batch) = job.request(now) else {
            panic!("an SMS batch")
        };
        let batch = serde_json::to_value(batch).unwrap();
        assert_eq!(
            batch,
            json!({"from": "46700000001", "to": ["+46701234567"], "body": "Hi",
                "delivery_report": "per_recipient", "client_reference": "sinch-hooks:msg_01",
                "expire_at": "2026-12-01T08:01:00Z"})
        );
        assert_eq!(job.contact(), ContactKey::new("SMS", "46701234567"));
        assert!(parse(b"{\"id\":1}").is_err());
    }
}
