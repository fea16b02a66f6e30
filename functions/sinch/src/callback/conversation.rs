//! Conversation API callbacks: an envelope (`app_id`, `project_id`, times, metadata) plus
//! exactly one trigger key naming the event.
//!
//! Only the fields the pipeline (or an operator reading a log) needs are typed; deeply nested,
//! channel-specific parts stay `serde_json::Value`. Unknown fields are ignored everywhere and
//! every string-valued enum is open, so a new Sinch field or status never makes a callback
//! unreadable.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::Channel;
use crate::open_enum::open_enum;

open_enum! {
    /// Status in a message or event delivery report. `READ` and `FAILED` are final;
    /// `DELIVERED` may be skipped.
    pub enum DeliveryStatus {
        QueuedOnChannel = "QUEUED_ON_CHANNEL",
        Delivered = "DELIVERED",
        Read = "READ",
        Failed = "FAILED",
        SwitchingChannel = "SWITCHING_CHANNEL",
    }
}

open_enum! {
    /// `CONVERSATION` keeps contacts and conversations; in `DISPATCH` mode `contact_id` and
    /// `conversation_id` are empty, so replies must address the channel identity.
    pub enum ProcessingMode {
        Conversation = "CONVERSATION",
        Dispatch = "DISPATCH",
    }
}

open_enum! {
    pub enum Direction {
        ToApp = "TO_APP",
        ToContact = "TO_CONTACT",
    }
}

/// Serde support for optional RFC 3339 timestamps (Sinch sends up to nanoseconds).
pub(crate) mod timestamp {
    pub use time::serde::rfc3339::option as optional;
}

/// The envelope every Conversation callback carries.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Envelope {
    pub app_id: String,
    pub project_id: String,
    #[serde(with = "timestamp::optional")]
    pub accepted_time: Option<OffsetDateTime>,
    #[serde(with = "timestamp::optional")]
    pub event_time: Option<OffsetDateTime>,
    pub message_metadata: String,
    pub correlation_id: String,
}

/// A contact on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChannelIdentity {
    pub channel: Channel,
    pub identity: String,
    #[serde(default)]
    pub app_id: String,
}

/// Why a message failed or switched channel. `code` is an open set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Reason {
    pub code: String,
    pub description: String,
    pub sub_code: String,
    pub channel_code: Option<String>,
}

/// `message` (MESSAGE_INBOUND) and `message_redaction`: what a contact sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InboundMessage {
    pub id: String,
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default)]
    pub contact_message: ContactMessage,
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    #[serde(default)]
    pub conversation_id: String,
    #[serde(default)]
    pub contact_id: String,
    #[serde(default)]
    pub metadata: String,
    #[serde(default, with = "timestamp::optional")]
    pub accept_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub processing_mode: Option<ProcessingMode>,
    #[serde(default)]
    pub injected: Option<bool>,
}

/// The content of an inbound message: one of the message kinds, optionally replying to an
/// earlier message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactMessage {
    pub text_message: Option<TextMessage>,
    pub media_message: Option<MediaMessage>,
    pub location_message: Option<Value>,
    pub choice_response_message: Option<Value>,
    pub media_card_message: Option<Value>,
    pub fallback_message: Option<Value>,
    pub reply_to: Option<ReplyTo>,
}

impl ContactMessage {
    /// The text, for text messages.
    pub fn text(&self) -> Option<&str> {
        self.text_message.as_ref().map(|t| t.text.as_str())
    }

    /// Which kind of message this is, e.g. `text_message`.
    pub fn kind(&self) -> &'static str {
        if self.text_message.is_some() {
            "text_message"
        } else if self.media_message.is_some() {
            "media_message"
        } else if self.location_message.is_some() {
            "location_message"
        } else if self.choice_response_message.is_some() {
            "choice_response_message"
        } else if self.media_card_message.is_some() {
            "media_card_message"
        } else if self.fallback_message.is_some() {
            "fallback_message"
        } else {
            "unknown"
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TextMessage {
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MediaMessage {
    pub url: String,
    pub thumbnail_url: Option<String>,
    pub filename_override: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ReplyTo {
    pub message_id: String,
}

/// `message_delivery_report` (MESSAGE_DELIVERY).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct MessageDeliveryReport {
    pub message_id: String,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub conversation_id: String,
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    #[serde(default)]
    pub contact_id: String,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub metadata: String,
    #[serde(default)]
    pub processing_mode: Option<ProcessingMode>,
}

/// `message_submit_notification` (MESSAGE_SUBMIT): a message of ours handed to a channel.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct MessageSubmitNotification {
    pub message_id: String,
    pub conversation_id: String,
    pub channel_identity: Option<ChannelIdentity>,
    pub contact_id: String,
    pub submitted_message: Value,
    pub metadata: String,
    pub processing_mode: Option<ProcessingMode>,
}

/// `event` (EVENT_INBOUND): typing indicators, reactions and other contact events.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct InboundEvent {
    pub id: String,
    pub direction: Option<Direction>,
    pub channel_identity: Option<ChannelIdentity>,
    pub contact_id: String,
    pub conversation_id: String,
    #[serde(with = "timestamp::optional")]
    pub accept_time: Option<OffsetDateTime>,
    pub processing_mode: Option<ProcessingMode>,
    pub contact_event: Option<Value>,
    pub contact_message_event: Option<Value>,
}

/// `event_delivery_report` (EVENT_DELIVERY).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct EventDeliveryReport {
    pub event_id: String,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    #[serde(default)]
    pub contact_id: String,
    #[serde(default)]
    pub reason: Option<Reason>,
    #[serde(default)]
    pub metadata: String,
    #[serde(default)]
    pub processing_mode: Option<ProcessingMode>,
}

/// A conversation, as in CONVERSATION_START / STOP / DELETE.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Conversation {
    pub id: String,
    pub app_id: String,
    pub contact_id: String,
    pub active: Option<bool>,
    pub active_channel: Option<Channel>,
    #[serde(with = "timestamp::optional")]
    pub last_received: Option<OffsetDateTime>,
    pub metadata: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ConversationNotification {
    pub conversation: Conversation,
}

/// A contact, as in CONTACT_CREATE / DELETE / UPDATE / MERGE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Contact {
    pub id: String,
    pub channel_identities: Vec<ChannelIdentity>,
    pub channel_priority: Vec<Channel>,
    pub display_name: String,
    pub email: String,
    pub external_id: String,
    pub metadata: String,
    pub language: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactNotification {
    pub contact: Contact,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactMergeNotification {
    pub deleted_contact: Contact,
    pub preserved_contact: Contact,
}

/// `duplicated_contact_identities_notification` (CONTACT_IDENTITIES_DUPLICATION).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct DuplicatedIdentitiesNotification {
    pub duplicated_identities: Vec<DuplicatedIdentity>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct DuplicatedIdentity {
    pub channel: String,
    pub contact_ids: Vec<String>,
}

/// `capability_notification` (CAPABILITY): what a contact's channel can receive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct CapabilityNotification {
    pub contact_id: String,
    pub identity: String,
    pub channel: Option<Channel>,
    pub capability_status: String,
    pub request_id: String,
    pub channel_capabilities: Vec<String>,
    pub reason: Option<Reason>,
}

/// `opt_in_notification` / `opt_out_notification` (OPT_IN / OPT_OUT): the outcome of an
/// opt-in or opt-out request made through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct OptNotification {
    pub request_id: String,
    pub contact_id: String,
    pub channel: Option<Channel>,
    pub identity: String,
    pub status: String,
    pub error_details: Option<ErrorDetails>,
    pub processing_mode: Option<ProcessingMode>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ErrorDetails {
    pub description: String,
}

/// `channel_event_notification` (CHANNEL_EVENT), e.g. a WhatsApp quality rating change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelEventNotification {
    pub channel_event: ChannelEvent,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelEvent {
    pub channel: Option<Channel>,
    pub event_type: String,
    pub additional_data: Value,
}

/// `unsupported_callback` (UNSUPPORTED): something a channel sent that Sinch cannot map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct UnsupportedCallback {
    pub id: String,
    pub channel: Option<Channel>,
    pub payload: String,
    pub processing_mode: Option<ProcessingMode>,
    pub contact_id: String,
    pub conversation_id: String,
    pub channel_identity: Option<ChannelIdentity>,
}

/// `smart_conversation_notification` (SMART_CONVERSATIONS): analysis results, kept raw.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SmartConversationNotification {
    pub contact_id: String,
    /// The identity on the channel (a plain string here, unlike elsewhere).
    pub channel_identity: String,
    pub channel: Option<Channel>,
    pub message_id: String,
    pub conversation_id: String,
    pub analysis_results: Value,
}

/// `record_notification` (RECORD_NOTIFICATION).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RecordNotification {
    pub entity_id: String,
    pub record_status: String,
    pub channel_identity: Option<ChannelIdentity>,
    pub contact_id: String,
    pub conversation_id: String,
    pub reason: Option<Reason>,
    pub processing_mode: Option<ProcessingMode>,
}

/// Declares [`Event`], [`TRIGGER_KEYS`], and the parsing and naming by key, from one table, so
/// the three cannot drift apart.
macro_rules! events {
    ($( $variant:ident($payload:ty) = $key:literal, )*) => {
        /// The event a Conversation callback carries, by its trigger key.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( $variant($payload), )*
            /// A trigger key this version does not know (e.g. `comment_event`), with the key.
            Unknown { key: String },
        }

        /// The trigger keys, in the order of Sinch's trigger table.
        pub const TRIGGER_KEYS: &[&str] = &[$( $key, )*];

        impl Event {
            /// Parses the payload under a known trigger key; `None` for an unknown key.
            pub(crate) fn parse(key: &str, payload: &str) -> Option<serde_json::Result<Event>> {
                match key {
                    $( $key => Some(serde_json::from_str(payload).map(Event::$variant)), )*
                    _ => None,
                }
            }

            /// The trigger key this event came under.
            pub fn key(&self) -> &str {
                match self {
                    $( Event::$variant(_) => $key, )*
                    Event::Unknown { key } => key,
                }
            }
        }
    };
}

events! {
    MessageInbound(InboundMessage) = "message",
    MessageDelivery(MessageDeliveryReport) = "message_delivery_report",
    MessageSubmit(MessageSubmitNotification) = "message_submit_notification",
    EventInbound(InboundEvent) = "event",
    EventDelivery(EventDeliveryReport) = "event_delivery_report",
    ConversationStart(ConversationNotification) = "conversation_start_notification",
    ConversationStop(ConversationNotification) = "conversation_stop_notification",
    ConversationDelete(ConversationNotification) = "conversation_delete_notification",
    ContactCreate(ContactNotification) = "contact_create_notification",
    ContactDelete(ContactNotification) = "contact_delete_notification",
    ContactMerge(ContactMergeNotification) = "contact_merge_notification",
    ContactUpdate(ContactNotification) = "contact_update_notification",
    ContactIdentitiesDuplication(DuplicatedIdentitiesNotification) = "duplicated_contact_identities_notification",
    Capability(CapabilityNotification) = "capability_notification",
    OptIn(OptNotification) = "opt_in_notification",
    OptOut(OptNotification) = "opt_out_notification",
    ChannelEvent(ChannelEventNotification) = "channel_event_notification",
    Unsupported(UnsupportedCallback) = "unsupported_callback",
    SmartConversations(SmartConversationNotification) = "smart_conversation_notification",
    MessageRedaction(InboundMessage) = "message_redaction",
    RecordNotification(RecordNotification) = "record_notification",
}

/// The envelope's own keys; any other top-level key names the event.
pub const ENVELOPE_KEYS: [&str; 6] = [
    "app_id",
    "project_id",
    "accepted_time",
    "event_time",
    "message_metadata",
    "correlation_id",
];

/// A Conversation API callback.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationCallback {
    pub envelope: Envelope,
    pub event: Event,
}
