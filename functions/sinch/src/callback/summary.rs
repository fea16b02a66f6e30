//! A callback's key fields, flat, for one-line logs and `sinch-hooks inspect`.

use serde::Serialize;

use super::Callback;
use super::conversation::{ChannelIdentity, Event};
use super::sms::SmsCallback;

/// Who, what and which message, whatever the kind. Absent fields are left out when serialized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `conversation.<trigger key>`, `sms.<type>` or `unknown`.
    pub kind: String,
    /// For unknown kinds: the key or type that was not recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    /// The Conversation app, for Conversation callbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The message or event id (inbound), or the id a report is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The SMS batch, for SMS reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// The delivery status, for reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The reason code of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The channel (`WHATSAPP`, `SMS`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Who sent it (inbound) or who it was for (reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Who a message went to (SMS inbound: our number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The Conversation contact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The Conversation conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// `CONVERSATION` or `DISPATCH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_mode: Option<String>,
    /// Characters of text, never the text itself (logs must not carry message content).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_length: Option<usize>,
}

fn some(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

impl Summary {
    fn identity(&mut self, identity: Option<&ChannelIdentity>) {
        if let Some(identity) = identity {
            self.channel = Some(identity.channel.to_string());
            self.sender = some(&identity.identity);
        }
    }
}

impl Callback {
    /// The key fields of this callback.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            kind: self.kind().into_owned(),
            ..Summary::default()
        };
        match self {
            Callback::Conversation(c) => {
                s.app_id = some(&c.envelope.app_id);
                match &c.event {
                    Event::MessageInbound(m) | Event::MessageRedaction(m) => {
                        s.message_id = some(&m.id);
                        s.identity(m.channel_identity.as_ref());
                        s.contact_id = some(&m.contact_id);
                        s.conversation_id = some(&m.conversation_id);
                        s.processing_mode = m.processing_mode.as_ref().map(|p| p.to_string());
                        s.text_length = m.contact_message.text().map(|t| t.chars().count());
                    }
                    Event::MessageDelivery(r) => {
                        s.message_id = some(&r.message_id);
                        s.status = Some(r.status.to_string());
                        s.reason = r.reason.as_ref().and_then(|r| some(&r.code));
                        s.identity(r.channel_identity.as_ref());
                        s.recipient = s.sender.take();
                        s.contact_id = some(&r.contact_id);
                        s.conversation_id = some(&r.conversation_id);
                        s.processing_mode = r.processing_mode.as_ref().map(|p| p.to_string());
                    }
                    Event::EventDelivery(r) => {
                        s.message_id = some(&r.event_id);
                        s.status = Some(r.status.to_string());
                        s.reason = r.reason.as_ref().and_then(|r| some(&r.code));
                        s.identity(r.channel_identity.as_ref());
                        s.recipient = s.sender.take();
                        s.contact_id = some(&r.contact_id);
                    }
                    Event::EventInbound(e) => {
                        s.message_id = some(&e.id);
                        s.identity(e.channel_identity.as_ref());
                        s.contact_id = some(&e.contact_id);
                        s.conversation_id = some(&e.conversation_id);
                    }
                    Event::MessageSubmit(m) => {
                        s.message_id = some(&m.message_id);
                        s.identity(m.channel_identity.as_ref());
                        s.recipient = s.sender.take();
                        s.contact_id = some(&m.contact_id);
                        s.conversation_id = some(&m.conversation_id);
                    }
                    Event::ContactCreate(n) | Event::ContactDelete(n) | Event::ContactUpdate(n) => {
                        s.contact_id = some(&n.contact.id);
                    }
                    Event::ContactMerge(n) => s.contact_id = some(&n.preserved_contact.id),
                    Event::ConversationStart(n)
                    | Event::ConversationStop(n)
                    | Event::ConversationDelete(n) => {
                        s.conversation_id = some(&n.conversation.id);
                        s.contact_id = some(&n.conversation.contact_id);
                    }
                    Event::OptIn(n) | Event::OptOut(n) => {
                        s.status = some(&n.status);
                        s.contact_id = some(&n.contact_id);
                        s.channel = n.channel.as_ref().map(|c| c.to_string());
                    }
                    Event::Capability(n) => {
                        s.status = some(&n.capability_status);
                        s.contact_id = some(&n.contact_id);
                        s.channel = n.channel.as_ref().map(|c| c.to_string());
                    }
                    Event::Unsupported(n) => {
                        s.message_id = some(&n.id);
                        s.identity(n.channel_identity.as_ref());
                        s.contact_id = some(&n.contact_id);
                    }
                    Event::SmartConversations(n) => {
                        s.message_id = some(&n.message_id);
                        s.contact_id = some(&n.contact_id);
                        s.conversation_id = some(&n.conversation_id);
                    }
                    Event::RecordNotification(n) => {
                        s.message_id = some(&n.entity_id);
                        s.status = some(&n.record_status);
                        s.contact_id = some(&n.contact_id);
                    }
                    Event::ChannelEvent(n) => {
                        s.status = some(&n.channel_event.event_type);
                        s.channel = n.channel_event.channel.as_ref().map(|c| c.to_string());
                    }
                    Event::ContactIdentitiesDuplication(_) => {}
                    Event::Unknown { key } => s.unknown = Some(key.clone()),
                }
            }
            Callback::Sms(sms) => {
                s.channel = Some("SMS".to_owned());
                match sms {
                    SmsCallback::RecipientDeliveryReport { report, .. } => {
                        s.batch_id = some(&report.batch_id);
                        s.recipient = some(&report.recipient);
                        s.status = Some(report.status.to_string());
                        s.reason = (report.code != 0).then(|| report.code.to_string());
                    }
                    SmsCallback::BatchDeliveryReport { report, .. } => {
                        s.batch_id = some(&report.batch_id);
                        let statuses: Vec<String> = report
                            .statuses
                            .iter()
                            .map(|c| format!("{}x{}", c.status, c.count))
                            .collect();
                        s.status = some(&statuses.join(","));
                    }
                    SmsCallback::MoText(mo) | SmsCallback::MoBinary(mo) => {
                        s.message_id = some(&mo.id);
                        s.sender = some(&mo.from);
                        s.recipient = some(&mo.to);
                        s.text_length = Some(mo.body.chars().count());
                    }
                    SmsCallback::MoMedia(mo) => {
                        s.message_id = some(&mo.id);
                        s.sender = some(&mo.from);
                        s.recipient = some(&mo.to);
                        s.text_length = mo.body.message.as_ref().map(|t| t.chars().count());
                    }
                    SmsCallback::Unknown { kind } => {
                        s.channel = None;
                        s.unknown = Some(kind.clone());
                    }
                }
            }
            Callback::Unknown { keys } => s.unknown = Some(keys.join(",")),
        }
        s
    }
}
