//! Request and response bodies of the send APIs.

use serde::{Deserialize, Serialize, Serializer};

use crate::callback::conversation::Channel;

/// `POST /v1/projects/{project}/messages:send`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessageRequest {
    pub app_id: String,
    pub recipient: Recipient,
    pub message: AppMessage,
    /// Channels to try, in order. With a channel-identity recipient, name its channel here so
    /// the reply goes back where the message came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel_priority_order: Vec<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Who a Conversation message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A contact known to the app (CONVERSATION mode).
    Contact(String),
    /// Identities on channels; works in DISPATCH mode too, where there are no contacts.
    Identities(Vec<ChannelRecipient>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelRecipient {
    pub channel: Channel,
    pub identity: String,
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ByContact<'a> {
            contact_id: &'a str,
        }
        #[derive(Serialize)]
        struct ByIdentity<'a> {
            identified_by: IdentifiedBy<'a>,
        }
        #[derive(Serialize)]
        struct IdentifiedBy<'a> {
            channel_identities: &'a [ChannelRecipient],
        }
        match self {
            Recipient::Contact(contact_id) => ByContact { contact_id }.serialize(serializer),
            Recipient::Identities(identities) => ByIdentity {
                identified_by: IdentifiedBy {
                    channel_identities: identities,
                },
            }
            .serialize(serializer),
        }
    }
}

/// The message we send. Text is what the reply policy needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppMessage {
    pub text_message: TextBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextBody {
    pub text: String,
}

impl AppMessage {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text_message: TextBody { text: text.into() },
        }
    }
}

/// `messages:send`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendMessageResponse {
    pub message_id: String,
    #[serde(default)]
    pub accepted_time: Option<String>,
}

/// `POST /xms/v1/{service_plan_id}/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsBatchRequest {
    pub from: String,
    pub to: Vec<String>,
    pub body: String,
    /// `none`, `summary`, `full` or `per_recipient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
}

/// The created batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmsBatchResponse {
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipients_serialize_as_sinch_expects() {
        let by_contact = SendMessageRequest {
            app_id: "app".into(),
            recipient: Recipient::Contact("c1".into()),
            message: AppMessage::text("hi"),
            channel_priority_order: vec![],
            message_metadata: None,
            correlation_id: None,
        };
        assert_eq!(
            serde_json::to_value(&by_contact).unwrap(),
            json!({"app_id":"app","recipient":{"contact_id":"c1"},"message":{"text_message":{"text":"hi"}}})
        );
        let by_identity = SendMessageRequest {
            recipient: Recipient::Identities(vec![ChannelRecipient {
                channel: Channel::WhatsApp,
                identity: "46701234567".into(),
            }]),
            channel_priority_order: vec![Channel::WhatsApp],
            ..by_contact
        };
        assert_eq!(
            serde_json::to_value(&by_identity).unwrap(),
            json!({
                "app_id":"app",
                "recipient":{"identified_by":{"channel_identities":[{"channel":"WHATSAPP","identity":"46701234567"}]}},
                "message":{"text_message":{"text":"hi"}},
                "channel_priority_order":["WHATSAPP"]
            })
        );
    }
}
