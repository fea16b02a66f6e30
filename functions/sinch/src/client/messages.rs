//! Request and response bodies of the send APIs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::Channel;

/// `POST /v1/projects/{project}/messages:send`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessageRequest {
    /// The Conversation app to send from.
    pub app_id: String,
    /// Who to send to.
    pub recipient: Recipient,
    /// What to send.
    pub message: AppMessage,
    /// Channels to try, in order. With a channel-identity recipient, name its channel here so
    /// the reply goes back where the message came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub channel_priority_order: Vec<Channel>,
    /// Echoed in this message's delivery reports (at most 1,024 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_metadata: Option<String>,
    /// Echoed in this message's callbacks, for correlating them with our own records.
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

/// One identity in a recipient's `channel_identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelRecipient {
    /// The channel.
    pub channel: Channel,
    /// The address on it (for phone channels, E.164 with or without `+`).
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

/// The message we send, exactly as Sinch takes it: an object with one kind under its key
/// (`{"text_message": {...}}`, `{"card_message": {...}}`, ...) and, beside it, the optional
/// fields Sinch allows there (`explicit_channel_message`, `channel_specific_message`, `agent`,
/// ...).
///
/// It is kept as the JSON object itself, never as a typed body: what a caller gives reaches
/// Sinch field for field, including fields and kinds this version does not know. The typed
/// bodies below ([`TextBody`], [`MediaBody`], [`CardBody`], [`TemplateBody`]) only build one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppMessage(Map<String, Value>);

/// Keys beside the kind in a Conversation message that are not a kind themselves.
pub const MESSAGE_FIELDS_BESIDE_THE_KIND: &[&str] = &[
    "explicit_channel_message",
    "explicit_channel_omni_message",
    "channel_specific_message",
    "agent",
];

impl AppMessage {
    /// A message of `kind` (`text_message`, ...) with `body` as its content.
    pub fn of_kind(kind: &str, body: impl Serialize) -> Self {
        let body = serde_json::to_value(body).unwrap_or_else(|_| Value::Object(Map::new()));
        AppMessage(Map::from_iter([(kind.to_owned(), body)]))
    }

    /// A message given as JSON, kept as it is.
    pub fn from_json(message: Map<String, Value>) -> Self {
        AppMessage(message)
    }

    /// A `text_message`.
    pub fn text(text: impl Into<String>) -> Self {
        Self::of_kind("text_message", TextBody { text: text.into() })
    }

    /// A `media_message`.
    pub fn media(body: MediaBody) -> Self {
        Self::of_kind("media_message", body)
    }

    /// A `card_message`.
    pub fn card(body: CardBody) -> Self {
        Self::of_kind("card_message", body)
    }

    /// A `template_message`.
    pub fn template(body: TemplateBody) -> Self {
        Self::of_kind("template_message", body)
    }

    /// The message object, as it goes to Sinch.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Its kind: the one key that names a message kind (`text_message`, `card_message`, ...;
    /// any `*_message` key but those that sit beside the kind). `None` when there is not exactly
    /// one.
    pub fn kind(&self) -> Option<&str> {
        let mut kinds = self.0.keys().filter(|key| is_kind(key)).map(String::as_str);
        match (kinds.next(), kinds.next()) {
            (Some(kind), None) => Some(kind),
            _ => None,
        }
    }

    /// The text, when it is a text message.
    pub fn as_text(&self) -> Option<&str> {
        self.0.get("text_message")?.get("text")?.as_str()
    }

    /// Whether WhatsApp takes it outside the 24-hour window (only templates are).
    pub fn is_template(&self) -> bool {
        self.kind() == Some("template_message")
    }
}

/// Whether `key` of a message object names its kind.
pub fn is_kind(key: &str) -> bool {
    key.ends_with("_message") && !MESSAGE_FIELDS_BESIDE_THE_KIND.contains(&key)
}

/// `text_message`'s content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextBody {
    /// The text.
    pub text: String,
}

/// `media_message`'s content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaBody {
    /// A public URL of the image, video, audio or document.
    pub url: String,
    /// A preview image, for channels that show one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thumbnail_url: Option<String>,
    /// The file name to show instead of the URL's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filename_override: Option<String>,
}

/// `card_message`'s content (the typed part; choices are given as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardBody {
    /// The card's title.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub title: String,
    /// The card's text.
    pub description: String,
    /// The card's image or video.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media_message: Option<MediaBody>,
}

/// `template_message`: an omni template, a channel template per channel, or both (a channel
/// template overrides the omni template on its channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateBody {
    /// A template kept by Sinch's template service, for every channel.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub omni_template: Option<OmniTemplate>,
    /// A template per channel (`WHATSAPP`, ...), by channel name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub channel_template: BTreeMap<String, ChannelTemplate>,
}

/// An omni template: one template for every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmniTemplate {
    /// The template's id in Sinch's template service.
    pub template_id: String,
    /// Required by Sinch; `"latest"` is accepted.
    pub version: String,
    /// The translation to use; the template's default when absent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language_code: Option<String>,
    /// The values of the template's `${name}` parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub parameters: BTreeMap<String, String>,
}

/// For WhatsApp, `template_id` is the template's name and `language_code` (`en_US`) is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTemplate {
    /// The template's id (for WhatsApp its name).
    pub template_id: String,
    /// The template's version.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// The translation to use.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub language_code: Option<String>,
    /// The values of the template's parameters, by name or position.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub parameters: BTreeMap<String, String>,
}

/// `messages:send`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendMessageResponse {
    /// Sinch's id of the message, the key of its delivery reports.
    pub message_id: String,
    /// When Sinch accepted it (RFC 3339).
    #[serde(default)]
    pub accepted_time: Option<String>,
}

/// `POST /xms/v1/{service_plan_id}/batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsBatchRequest {
    /// The sender: a number, short code or alphanumeric sender id.
    pub from: String,
    /// The recipients (E.164).
    pub to: Vec<String>,
    /// The text.
    pub body: String,
    /// `none`, `summary`, `full` or `per_recipient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_report: Option<String>,
    /// Echoed in the batch's delivery reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
    /// When Sinch stops trying (RFC 3339; at most 3 days away).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<String>,
}

/// The created batch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SmsBatchResponse {
    /// The batch's id, the key of its delivery reports.
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
        let template = AppMessage::template(TemplateBody {
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
        assert_eq!(template.kind(), Some("template_message"));
        assert!(template.is_template());
        assert_eq!(
            serde_json::to_value(AppMessage::media(MediaBody {
                url: "https://x/y.png".into(),
                thumbnail_url: Some("https://x/t.png".into()),
                filename_override: None
            }))
            .unwrap(),
            json!({"media_message": {"url": "https://x/y.png", "thumbnail_url": "https://x/t.png"}})
        );
    }

    #[test]
    fn a_message_given_as_json_goes_back_out_field_for_field() {
        // A card with choices and a field Sinch may add one day, beside an explicit channel
        // message: read (as from the queue) and written (to Sinch), nothing dropped.
        let given = json!({
            "card_message": {"title": "T", "description": "D",
                "media_message": {"url": "https://x/y.png", "thumbnail_url": "https://x/t.png"},
                "choices": [{"text_message": {"text": "Yes"}, "postback_data": "yes"}],
                "a_field_from_the_future": {"nested": [1, 2]}},
            "explicit_channel_message": {"WHATSAPP": "{}"},
            "agent": {"display_name": "Ada"}
        });
        let message: AppMessage = serde_json::from_value(given.clone()).unwrap();
        assert_eq!(message.kind(), Some("card_message"));
        assert_eq!(serde_json::to_value(&message).unwrap(), given);
        let two: AppMessage =
            serde_json::from_value(json!({"text_message": {"text": "a"}, "card_message": {}}))
                .unwrap();
        assert_eq!(two.kind(), None, "two kinds is no kind");
        assert_eq!(AppMessage::text("hi").as_text(), Some("hi"));
    }
}
