//! Inbound messages: the hook (the reply policy by default) decides, the message is stored with
//! the opt-out change decided, and the reply goes back where the message came from.
//!
//! A reply is one of our sends, with an id derived from the message it answers
//! (`rpl_<inbound id>`), so it goes through the send-once ledger ([`crate::ledger`]): a retry of
//! the same inbound message finds the reply already sent and only finishes the bookkeeping.

use sinch::callback::conversation::{Envelope, InboundMessage};
use sinch::callback::sms::Inbound;
use sinch::client::{AppMessage, ChannelRecipient, Recipient, SendMessageRequest, SmsBatchRequest};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Handled, HandlerError, ReplyOutcome, Services, SinchRequest, millis, send_once};
use crate::hook::Action;
use crate::hook::{self, Hook};
use crate::ledger::{SendError, reference};
use crate::send_rules::Check;
use crate::store::{ContactKey, InboundRecord, OptChange, SendIntent, SinchId, Store, TextDigest};

/// Where a reply goes.
enum ReplyRoute<'a> {
    /// Conversation `messages:send` to the channel identity, on that channel only.
    Conversation {
        app_id: Option<&'a str>,
        recipient: ChannelRecipient,
    },
    /// An SMS batch from the number that received the message.
    Sms { from: &'a str, to: &'a str },
}

/// A Conversation `message` (MESSAGE_INBOUND).
pub async fn conversation<S: Store, H: Hook>(
    services: &Services<S, H>,
    envelope: &Envelope,
    message: &InboundMessage,
    deadline: Instant,
) -> Result<Handled, HandlerError> {
    // The app that received it is the app to answer from; in DISPATCH mode the envelope may
    // leave it empty while the channel identity still names it.
    let identity = message.channel_identity.as_ref();
    let app_id = [
        envelope.app_id.as_str(),
        identity.map_or("", |i| i.app_id.as_str()),
    ]
    .into_iter()
    .find(|id| !id.is_empty())
    .or(services.app_id.as_deref());
    let record = InboundRecord {
        text_digest: None,
        id: message.id.clone(),
        from: match identity {
            Some(identity) => ContactKey::new(identity.channel.as_str(), &identity.identity),
            None => ContactKey::new("UNKNOWN", &message.contact_id),
        },
        to: app_id.unwrap_or_default().to_owned(),
        kind: message.contact_message.kind().to_owned(),
        text: message.contact_message.text().map(str::to_owned),
        media: message
            .contact_message
            .media_message
            .iter()
            .map(|media| media.url.clone())
            .collect(),
        contact_id: non_empty(&message.contact_id),
        conversation_id: non_empty(&message.conversation_id),
        received_at_ms: millis(
            message.accept_time.or(envelope.accepted_time),
            &services.clock,
        ),
    };
    let Some(identity) = identity else {
        warn!(message_id = %message.id, "inbound message without a channel identity: stored without a reply");
        services.store.record_inbound(&record, None).await?;
        return Ok(Handled::Inbound {
            id: message.id.clone(),
            reply: ReplyOutcome::None,
        });
    };
    let route = ReplyRoute::Conversation {
        app_id,
        recipient: ChannelRecipient {
            channel: identity.channel.clone(),
            identity: identity.identity.clone(),
        },
    };
    respond(services, record, route, deadline).await
}

/// An SMS `mo_text` or `mo_media` (`text` is the text, or the MMS message; `media` the URLs of
/// an MMS's parts).
pub async fn sms<S: Store, H: Hook, B>(
    services: &Services<S, H>,
    mo: &Inbound<B>,
    kind: &str,
    text: Option<&str>,
    media: Vec<String>,
    deadline: Instant,
) -> Result<Handled, HandlerError> {
    let record = InboundRecord {
        text_digest: None,
        id: mo.id.clone(),
        from: ContactKey::new("SMS", &mo.from),
        to: mo.to.clone(),
        kind: kind.to_owned(),
        text: text.map(str::to_owned),
        media,
        contact_id: None,
        conversation_id: None,
        received_at_ms: millis(mo.received_at, &services.clock),
    };
    let route = ReplyRoute::Sms {
        from: &mo.to,
        to: &mo.from,
    };
    respond(services, record, route, deadline).await
}

/// Asks the hook (the reply policy by default), stores the message (with the opt-out change the
/// hook decided), replies.
///
/// Safe to run again for the same message (a retry after a failed reply): the opt-out state is
/// judged as it was *before* this message, so a retried STOP still sends its confirmation.
/// A keyword older than the consent that stands (by the message's own time) is stored and
/// How long a contact read for a reply stands before the reply is judged on a fresh read.
const FRESH_CONTACT: std::time::Duration = std::time::Duration::from_secs(1);

/// changes nothing, with no reply.
async fn respond<S: Store, H: Hook>(
    services: &Services<S, H>,
    record: InboundRecord,
    route: ReplyRoute<'_>,
    deadline: Instant,
) -> Result<Handled, HandlerError> {
    let store = &services.store;
    let before = store.contact(&record.from).await?;
    let read_at = std::time::Instant::now();
    let opted_out_before = before
        .opted_out_by
        .as_ref()
        .is_some_and(|by| *by != record.id);
    let decision = services
        .hook
        .on_inbound(hook::Inbound {
            message: &record,
            opted_out_before,
        })
        .await?;
    let change = match decision.action {
        Action::OptOut => Some(OptChange::OptOut {
            contact: record.from.clone(),
            by: record.id.clone(),
        }),
        Action::OptIn => Some(OptChange::OptIn {
            contact: record.from.clone(),
        }),
        Action::None => None,
    };
    // Consent in the person's order: a keyword sent before the change that stands (a START
    // older than their STOP, arriving after it) changes nothing, and gets no confirmation: it
    // would confirm what is not so.
    let late = change.as_ref().is_some_and(|change| {
        !before.applies(
            matches!(change, OptChange::OptOut { .. }),
            record.received_at_ms,
        )
    });
    let change = if late {
        info!(message_id = %record.id, channel = %record.from.channel, action = ?decision.action, "a keyword older than the opt-out or opt-in that stands: no change, no reply");
        None
    } else {
        change
    };
    let stored = if services.privacy.redact {
        InboundRecord {
            text_digest: record.text.as_deref().map(TextDigest::of),
            text: None,
            ..record.clone()
        }
    } else {
        record.clone()
    };
    store.record_inbound(&stored, change.as_ref()).await?;
    let id = record.id.clone();
    let reply = if late { None } else { decision.reply };
    let Some(text) = reply else {
        let reply = if late || opted_out_before || decision.action == Action::OptOut {
            ReplyOutcome::Suppressed
        } else {
            ReplyOutcome::None
        };
        info!(message_id = %id, channel = %record.from.channel, action = ?decision.action, ?reply, "inbound message stored");
        return Ok(Handled::Inbound { id, reply });
    };

    let reply_id = reference::reply_id(&id);
    let sinch_reference = reference::to_sinch(&reply_id);
    let intent = SendIntent {
        to: record.from.clone(),
        in_reply_to: Some(id.clone()),
        text: (!services.privacy.redact).then(|| text.clone()),
    };
    let sinch = &services.sinch;
    // The rules again, as they stand when the reply is about to leave (a retry may come long
    // after the message: a STOP from another message, WhatsApp's window closed), on the
    // contact as read above with this message's own effect applied.
    let mut after = before;
    after.last_inbound_at_ms = Some(record.received_at_ms);
    match &change {
        Some(OptChange::OptOut { by, .. }) => after.opted_out_by = Some(by.clone()),
        Some(OptChange::OptIn { .. }) => after.opted_out_by = None,
        None => {}
    }
    let rules = || async {
        // A reply that waited (for its pacing slot, or a retry) is judged on the contact read
        // again: an opt-out or an erasure made meanwhile applies. Within a second of the read
        // above, that read stands (this message's own effect applied): no extra read.
        let state = if read_at.elapsed() > FRESH_CONTACT {
            store.contact(&record.from).await?
        } else {
            after.clone()
        };
        let check = Check {
            contacts: std::slice::from_ref(&record.from),
            whatsapp_free_form: record.from.channel == sinch::Channel::WhatsApp,
            answering: Some(&id),
            expires_at_ms: None,
            // Erased after the message it answers arrived: it does not leave.
            accepted_at_ms: Some(record.received_at_ms),
            now_ms: crate::clock::unix_millis(services.clock.now()),
        };
        Ok(services
            .send_rules
            .judge(&record.from, &state, &check)
            .into())
    };
    let request = match route {
        ReplyRoute::Conversation { app_id, recipient } => {
            let Some(app_id) = app_id else {
                warn!(message_id = %id, "no app id to reply from (set SINCH_APP_ID)");
                return Ok(not_configured(id, "Conversation"));
            };
            if !sinch.has_conversation() {
                warn!(message_id = %id, "reply not sent: the Conversation API has no credentials");
                return Ok(not_configured(id, "Conversation"));
            }
            SinchRequest::Conversation(SendMessageRequest {
                app_id: app_id.to_owned(),
                channel_priority_order: vec![recipient.channel.clone()],
                recipient: Recipient::Identities(vec![recipient]),
                message: AppMessage::text(&text),
                message_metadata: Some(sinch_reference.clone()),
                correlation_id: Some(sinch_reference),
                channel_properties: Default::default(),
                ttl: None,
            })
        }
        ReplyRoute::Sms { from, to } => {
            if !sinch.has_sms() {
                warn!(message_id = %id, "reply not sent: the SMS API has no credentials");
                return Ok(not_configured(id, "SMS"));
            }
            SinchRequest::Sms(SmsBatchRequest {
                from: from.to_owned(),
                to: vec![to.to_owned()],
                body: text.clone(),
                delivery_report: Some("per_recipient".to_owned()),
                client_reference: Some(sinch_reference),
                expire_at: None,
            })
        }
    };
    let sent = send_once(
        services,
        &reply_id,
        &intent,
        rules,
        (&request, crate::schedule::Lane::Transactional),
        deadline,
    )
    .await;
    let sent = match sent {
        Ok(sent) => sent,
        Err(SendError::NotConfigured(api)) => return Ok(not_configured(id, api)),
        Err(SendError::Withheld { reason, .. }) => {
            info!(message_id = %id, channel = %record.from.channel, reply_id = %reply_id, %reason, "reply withheld at the moment of sending");
            return Ok(Handled::Inbound {
                id,
                reply: ReplyOutcome::Withheld {
                    id: reply_id,
                    reason: reason.to_string(),
                },
            });
        }
        Err(error) => return Err(error.into()),
    };
    info!(
        message_id = %id,
        channel = %record.from.channel,
        reply_id = %reply_id,
        sinch_id = sent.sinch_id.as_ref().map(SinchId::as_str),
        resumed = sent.resumed(),
        "reply sent"
    );
    Ok(Handled::Inbound {
        id,
        reply: ReplyOutcome::Sent {
            id: reply_id,
            sinch_id: sent.sinch_id,
            text,
            left_at_ms: sent.left_at_ms,
        },
    })
}

fn not_configured(id: String, api: &'static str) -> Handled {
    Handled::Inbound {
        id,
        reply: ReplyOutcome::NotConfigured { api },
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}
