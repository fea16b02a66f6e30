//! Request and response bodies of the send APIs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

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
    /// e.g. `SMS_SENDER`, `MESSENGER_MESSAGE_TAG` (an open set).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub channel_properties: BTreeMap<String, String>,
    /// How long Sinch keeps trying, as Sinch writes it: `"86400s"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
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

/// The message we send: one kind, as Sinch names it (`{"text_message": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppMessage {
    TextMessage(TextBody),
    MediaMessage(MediaBody),
    TemplateMessage(TemplateBody),
    /// A card (used for media with a caption: the caption is its description).
    CardMessage(CardBody),
    /// Any other kind (`choice_message`, `carousel_message`, `location_message`, ...), passed
    /// through as given: `{"<kind>": {...}}`.
    #[serde(untagged)]
    Other(Map<String, Value>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextBody {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaBody {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filename_override: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBody {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media_message: Option<MediaBody>,
}

/// `template_message`: an omni template, a channel template per channel, or both (a channel
/// template overrides the omni template on its channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateBody {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub omni_template: Option<OmniTemplate>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub channel_template: BTreeMap<String, ChannelTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmniTemplate {
    pub template_id: String,
    /// Required by Sinch; `"latest"` is accepted.
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language_code: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub parameters: BTreeMap<String, String>,
}

/// For WhatsApp, `template_id` is the template's name and `language_code` (`en_US`) is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTemplate {
    pub template_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language_code: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub parameters: BTreeMap<String, String>,
}

impl AppMessage {
    pub fn text(text: impl Into<String>) -> Self {
        AppMessage::TextMessage(TextBody { text: text.into() })
    }

    /// The text, when it is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AppMessage::TextMessage(body) => Some(&body.text),
            _ => None,
        }
    }

    /// Whether WhatsApp takes it outside the 24-hour window (only templates are).
    pub fn is_template(&self) -> bool {
        matches!(self, AppMessage::TemplateMessage(_))
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
    /// When Sinch stops trying (RFC 3339; at most 3 days away).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<String>,
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
            channel_properties: BTreeMap::new(),
            ttl: None,
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

    #[test]
    fn every_message_kind_serializes_under_its_key() {
        let template = AppMessage::TemplateMessage(TemplateBody {
            omni_template: None,
            channel_template: BTreeMap::from([(
                "WHATSAPP".to_owned(),
                ChannelTemplate {
                    template_id: "order_shipped".into(),
                    version: None,
                    language_code: Some("en_US".into()),
                    parameters: BTreeMap::from([("body[1]text".to_owned(), "A-1".to_owned())]),
                },
            )]),
        });
        assert_eq!(
            serde_json::to_value(&template).unwrap(),
            json!({"template_message": {"channel_template": {"WHATSAPP": {
                "template_id": "order_shipped", "language_code": "en_US",
                "parameters": {"body[1]text": "A-1"}}}}})
        );
        let other: Map<String, Value> =
            serde_json::from_value(json!({"location_message": {"title": "Here"}})).unwrap();
        assert_eq!(
            serde_json::to_value(AppMessage::Other(other)).unwrap(),
            json!({"location_message": {"title": "Here"}})
        );
        assert_eq!(
            serde_json::to_value(AppMessage::MediaMessage(MediaBody {
                url: "https://x/y.png".into(),
                filename_override: None
            }))
            .unwrap(),
            json!({"media_message": {"url": "https://x/y.png"}})
        );
    }
}
