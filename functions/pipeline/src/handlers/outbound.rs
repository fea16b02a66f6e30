//! Sends of the messages API, as queued and as the worker runs them.
//!
//! The messages API validates a request, stores it as `ACCEPTED` under our id, and queues an
//! [`OutboundJob`] (an envelope with the [`JOB`](envelope::JOB) attribute `send`) on the outbound
//! queue. The worker runs it through the send-once ledger ([`crate::ledger`]), checking the
//! sending rules ([`crate::send_rules`]) again just before the request leaves. Every job ends:
//!
//! | what happened | the message |
//! |---|---|
//! | Sinch took it | `SENT` with Sinch's id, then Sinch's reports |
//! | Sinch refused it (4xx) | `FAILED` with Sinch's reason |
//! | the recipient opted out, or WhatsApp's window closed, before it left | `FAILED` with `recipient_opted_out` / `whatsapp_window_closed`; never sent |
//! | its `ttl` / `expire_at` passed, or it (or its batch) was canceled, before it left | `EXPIRED` (`expired`) / `CANCELED` (`canceled`); never sent |
//! | no send slot in this invocation, or it waited (for its slot, a retry) into its quiet hours | back to its lane's queue, due when a slot may come or the quiet hours end (`SCHEDULED` until then); judged again |
//! | transient failures | back to the queue; on the last receive: |
//! | - Sinch certainly never took it (429, 5xx, no connection) | `FAILED` (`RETRIES_EXHAUSTED`) |
//! | - it may have reached Sinch (an answer lost, an attempt unsettled) | `UNKNOWN` (`SEND_OUTCOME_UNKNOWN`), not final: a late report moves it |
//! | - the store failed, no attempt on record | `FAILED` (`RETRIES_EXHAUSTED`) if the store takes that write; else it stays as it was while the job waits in the dead-letter queue (its alarm fires) |
//!
//! and the queue then parks the job in its dead-letter queue, from where a redrive runs it
//! again through the same ledger and rules.
//!
//! Our id travels as `correlation_id` and `message_metadata` (Conversation) or `client_reference`
//! (SMS), so every delivery report finds the message, even before the send is recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use sinch::Channel;
use sinch::client::{AppMessage, ChannelRecipient, Recipient, SendMessageRequest, SmsBatchRequest};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::clock::unix_millis;
use crate::handlers::{Services, SinchRequest};
use crate::hook::Hook;
use crate::jobs::{OutboundJob, Route};
use crate::ledger::{SendError, Sent, reference};
use crate::send_rules::{self, Check, Refusal, Verdict};
use crate::status::Status;
use crate::store::{
    Finished, MessageKey, Reason, SendFinish, SendIntent, SendResult, StatusUpdate, Store,
    StoreError,
};

/// How the worker turns a job into what it records and sends.
impl OutboundJob {
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

/// Sends a job at most once (see [`crate::ledger`]), if the sending rules allow it when it is
/// about to leave (and its batch is not canceled), in its lane's slot ([`crate::pacing`]).
/// Sinch calls finish before `deadline`.
pub async fn send<S: Store, H: Hook>(
    services: &Services<S, H>,
    job: &OutboundJob,
    deadline: Instant,
) -> Result<Sent, SendError> {
    let intent = job.intent();
    let contacts = job.contacts();
    let rules = || async {
        // A canceled batch's messages never leave, whenever the cancel came.
        if let Some(batch) = &job.batch
            && services.store.batch_canceled(batch).await?
        {
            return Ok(Verdict::Refuse(Refusal {
                code: send_rules::CANCELED,
                message: format!("its batch {batch} was canceled"),
                status: Status::Canceled,
            }));
        }
        let now_ms = unix_millis(services.clock.now());
        let check = Check {
            contacts: &contacts,
            whatsapp_free_form: job.whatsapp_free_form(),
            answering: None,
            expires_at_ms: job.expires_at_ms,
            accepted_at_ms: job.accepted_at_ms(),
            now_ms,
        };
        if let Some(refusal) = services.send_rules.check(&services.store, &check).await? {
            return Ok(Verdict::Refuse(refusal));
        }
        Ok(quiet(job, now_ms))
    };
    let now = OffsetDateTime::from(services.clock.now());
    super::send_once(
        services,
        &job.id,
        &intent,
        rules,
        (&job.request(now), job.lane),
        deadline,
    )
    .await
}

/// Quiet hours at the moment of leaving: inside them, it waits until they end (or until its
/// expiry, when that comes first: it is judged then, and ends `EXPIRED`).
fn quiet(job: &OutboundJob, now_ms: u64) -> Verdict {
    let Some(quiet) = &job.quiet_hours else {
        return Verdict::Go;
    };
    match quiet.release(&job.to, now_ms) {
        Ok(release) if release > now_ms => {
            let until_ms = job
                .expires_at_ms
                .map_or(release, |expiry| expiry.min(release));
            Verdict::Hold {
                until_ms,
                why: format!(
                    "quiet hours ({} to {}) in the recipient's zone, until {}",
                    quiet.start,
                    quiet.end,
                    crate::clock::rfc3339(release)
                ),
            }
        }
        Ok(_) => Verdict::Go,
        // Checked at the door; one that cannot be judged now does not hold it.
        Err(error) => {
            tracing::warn!(message = %job.id, %error, "quiet hours cannot be judged at the send; it goes");
            Verdict::Go
        }
    }
}

/// Reason code: every receive of a job failed and Sinch certainly never took it.
pub const RETRIES_EXHAUSTED: &str = "RETRIES_EXHAUSTED";
/// Reason code of [`Status::Unknown`]: the send may have reached Sinch; no answer or report
/// said so before the retries ran out.
pub const SEND_OUTCOME_UNKNOWN: &str = "SEND_OUTCOME_UNKNOWN";

/// What [`give_up`] made of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// `FAILED` (`RETRIES_EXHAUSTED`): it never left.
    Failed,
    /// `UNKNOWN` (`SEND_OUTCOME_UNKNOWN`): it may have left.
    Parked,
    /// Nothing to do: it had ended, or another attempt holds it.
    Nothing,
}

/// On the last receive of a job that failed with `error`, before the queue parks it: the
/// message ends `FAILED` when it certainly never left, or is parked `UNKNOWN` when it may have
/// (see the module docs). Writes are fenced, so an attempt that did reach Sinch is never
/// marked failed.
pub async fn give_up<S: Store, H: Hook>(
    services: &Services<S, H>,
    job: &OutboundJob,
    error: &SendError,
) -> Result<GaveUp, StoreError> {
    let now_ms = unix_millis(services.clock.now());
    let result = SendResult::Refused {
        reason: Reason::new(RETRIES_EXHAUSTED, Some(error.to_string())),
    };
    let fail = |attempt| SendFinish {
        id: &job.id,
        attempt,
        result: &result,
        at_ms: now_ms,
    };
    match error {
        // The ledger withdrew the attempt (so a cancel could reach it): fenced on no attempt
        // holding it, as a new one would.
        SendError::NotSent { .. } => Ok(match services.store.finish_send(&fail(None)).await? {
            Finished::Recorded => GaveUp::Failed,
            Finished::Superseded => GaveUp::Nothing,
        }),
        SendError::Store(_) => match services.store.finish_send(&fail(None)).await? {
            Finished::Recorded => Ok(GaveUp::Failed),
            // An attempt is on record: it may have left.
            Finished::Superseded => park(services, job, error, now_ms).await,
        },
        SendError::Unknown { .. } | SendError::Unsettled { .. } => {
            park(services, job, error, now_ms).await
        }
        SendError::Refused { .. }
        | SendError::Withheld { .. }
        | SendError::NotConfigured(_)
        | SendError::Held { .. } => Ok(GaveUp::Nothing),
    }
}

/// Parks a message `UNKNOWN`; a status that only moves forward, so one that got further meanwhile
/// stays where it is.
async fn park<S: Store, H: Hook>(
    services: &Services<S, H>,
    job: &OutboundJob,
    error: &SendError,
    now_ms: u64,
) -> Result<GaveUp, StoreError> {
    let update = StatusUpdate {
        key: MessageKey::Ours(job.id.clone()),
        status: Status::Unknown,
        at_ms: now_ms,
        reason: Some(Reason::new(SEND_OUTCOME_UNKNOWN, Some(error.to_string()))),
        channel: None,
        sinch_id: None,
    };
    services.store.record_status(&update).await?;
    Ok(GaveUp::Parked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::parse;
    use crate::schedule::Lane;
    use crate::store::ContactKey;
    use serde_json::json;

    fn job(route: Route) -> OutboundJob {
        OutboundJob {
            id: "msg_01".into(),
            to: "+46701234567".into(),
            route,
            expires_at_ms: None,
            batch: None,
            lane: Lane::Transactional,
            quiet_hours: None,
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
