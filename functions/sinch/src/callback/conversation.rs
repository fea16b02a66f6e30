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
    /// Which way a message or event travels.
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
    /// The Conversation API app the callback is for.
    pub app_id: String,
    /// The Sinch project the app belongs to.
    pub project_id: String,
    /// When Sinch accepted the event.
    #[serde(with = "timestamp::optional")]
    pub accepted_time: Option<OffsetDateTime>,
    /// When the event happened on the channel.
    #[serde(with = "timestamp::optional")]
    pub event_time: Option<OffsetDateTime>,
    /// The `message_metadata` we gave when sending, echoed back.
    pub message_metadata: String,
    /// The `correlation_id` we gave when sending, echoed back.
    pub correlation_id: String,
}

/// A contact on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChannelIdentity {
    /// The channel the identity is on.
    pub channel: Channel,
    /// The contact's address on that channel: a phone number for SMS and WhatsApp, a page-scoped id for Messenger.
    pub identity: String,
    /// Set for channels whose identities are per app (Messenger, Viber Bot).
    #[serde(default)]
    pub app_id: String,
}

/// Why a message failed or switched channel. `code` is an open set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Reason {
    /// Sinch's reason code, e.g. `RECIPIENT_NOT_REACHABLE` (an open set).
    pub code: String,
    /// A human-readable explanation.
    pub description: String,
    /// A finer code under `code`, e.g. `UNSPECIFIED_SUB_CODE`.
    pub sub_code: String,
    /// The channel's own error code, when the channel gave one.
    pub channel_code: Option<String>,
}

/// `message` (MESSAGE_INBOUND) and `message_redaction`: what a contact sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InboundMessage {
    /// Sinch's id of the message.
    pub id: String,
    /// `TO_APP` for what a contact sent.
    #[serde(default)]
    pub direction: Option<Direction>,
    /// What the contact sent.
    #[serde(default)]
    pub contact_message: ContactMessage,
    /// Who sent it, on which channel.
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    /// The conversation it belongs to (empty in DISPATCH mode).
    #[serde(default)]
    pub conversation_id: String,
    /// The contact who sent it (empty in DISPATCH mode).
    #[serde(default)]
    pub contact_id: String,
    /// Metadata attached to the message, if any.
    #[serde(default)]
    pub metadata: String,
    /// When Sinch accepted the message from the channel.
    #[serde(default, with = "timestamp::optional")]
    pub accept_time: Option<OffsetDateTime>,
    /// The sender id the contact wrote to (e.g. our SMS number), when the channel tells.
    #[serde(default)]
    pub sender_id: Option<String>,
    /// The app's processing mode.
    #[serde(default)]
    pub processing_mode: Option<ProcessingMode>,
    /// True for a message injected through the API rather than received from a channel.
    #[serde(default)]
    pub injected: Option<bool>,
}

/// The content of an inbound message: one of the message kinds, optionally replying to an
/// earlier message.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactMessage {
    /// A text message.
    pub text_message: Option<TextMessage>,
    /// An image, video, document or other file, by URL.
    pub media_message: Option<MediaMessage>,
    /// A location (kept raw).
    pub location_message: Option<Value>,
    /// The contact's answer to choices we offered (kept raw).
    pub choice_response_message: Option<Value>,
    /// A media card (kept raw).
    pub media_card_message: Option<Value>,
    /// What Sinch could not map to a kind (kept raw).
    pub fallback_message: Option<Value>,
    /// The earlier message this one replies to.
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

/// `text_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TextMessage {
    /// The text as the contact wrote it.
    pub text: String,
}

/// `media_message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MediaMessage {
    /// Where the media can be fetched.
    pub url: String,
    /// A preview image, when the channel gives one.
    pub thumbnail_url: Option<String>,
    /// The file name to show instead of the URL's.
    pub filename_override: Option<String>,
}

/// `reply_to`: the message a contact message answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ReplyTo {
    /// The id of the message replied to.
    pub message_id: String,
}

/// `message_delivery_report` (MESSAGE_DELIVERY).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct MessageDeliveryReport {
    /// The id of the message reported on (the id `messages:send` answered).
    pub message_id: String,
    /// Where the message is now.
    pub status: DeliveryStatus,
    /// The conversation it belongs to (empty in DISPATCH mode).
    #[serde(default)]
    pub conversation_id: String,
    /// The recipient, on the channel the status is from.
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    /// The recipient contact (empty in DISPATCH mode).
    #[serde(default)]
    pub contact_id: String,
    /// Why, for `FAILED` and `SWITCHING_CHANNEL`.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// The `message_metadata` given when sending.
    #[serde(default)]
    pub metadata: String,
    /// The app's processing mode.
    #[serde(default)]
    pub processing_mode: Option<ProcessingMode>,
}

/// `message_submit_notification` (MESSAGE_SUBMIT): a message of ours handed to a channel.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct MessageSubmitNotification {
    /// The id of the message submitted.
    pub message_id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The recipient on the channel it was submitted to.
    pub channel_identity: Option<ChannelIdentity>,
    /// The recipient contact.
    pub contact_id: String,
    /// The message as Sinch transcoded it for the channel (kept raw).
    pub submitted_message: Value,
    /// The `message_metadata` given when sending.
    pub metadata: String,
    /// The app's processing mode.
    pub processing_mode: Option<ProcessingMode>,
}

/// `event` (EVENT_INBOUND): typing indicators, reactions and other contact events.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct InboundEvent {
    /// Sinch's id of the event.
    pub id: String,
    /// `TO_APP` for what a contact did.
    pub direction: Option<Direction>,
    /// Who, on which channel.
    pub channel_identity: Option<ChannelIdentity>,
    /// The contact (empty in DISPATCH mode).
    pub contact_id: String,
    /// The conversation (empty in DISPATCH mode).
    pub conversation_id: String,
    /// When Sinch accepted the event.
    #[serde(with = "timestamp::optional")]
    pub accept_time: Option<OffsetDateTime>,
    /// The app's processing mode.
    pub processing_mode: Option<ProcessingMode>,
    /// A contact event such as `composing_event` (kept raw).
    pub contact_event: Option<Value>,
    /// An event about a message, such as a reaction (kept raw).
    pub contact_message_event: Option<Value>,
}

/// `event_delivery_report` (EVENT_DELIVERY).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct EventDeliveryReport {
    /// The id of the event reported on.
    pub event_id: String,
    /// Where the event is now.
    pub status: DeliveryStatus,
    /// The recipient, on the channel the status is from.
    #[serde(default)]
    pub channel_identity: Option<ChannelIdentity>,
    /// The recipient contact.
    #[serde(default)]
    pub contact_id: String,
    /// Why, for `FAILED`.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// The metadata given when sending the event.
    #[serde(default)]
    pub metadata: String,
    /// The app's processing mode.
    #[serde(default)]
    pub processing_mode: Option<ProcessingMode>,
}

/// A conversation, as in CONVERSATION_START / STOP / DELETE.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Conversation {
    /// The conversation's id.
    pub id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// The contact it is with.
    pub contact_id: String,
    /// Whether it is still active.
    pub active: Option<bool>,
    /// The channel last used.
    pub active_channel: Option<Channel>,
    /// When the last message was received.
    #[serde(with = "timestamp::optional")]
    pub last_received: Option<OffsetDateTime>,
    /// Metadata attached to the conversation.
    pub metadata: String,
    /// The `correlation_id` attached to the conversation.
    pub correlation_id: String,
}

/// `conversation_start_notification`, `..._stop_...`, `..._delete_...`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ConversationNotification {
    /// The conversation concerned.
    pub conversation: Conversation,
}

/// A contact, as in CONTACT_CREATE / DELETE / UPDATE / MERGE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Contact {
    /// The contact's id.
    pub id: String,
    /// The contact's identities, one per channel.
    pub channel_identities: Vec<ChannelIdentity>,
    /// The channels to try, in order, when sending to the contact.
    pub channel_priority: Vec<Channel>,
    /// The name shown for the contact.
    pub display_name: String,
    /// The contact's email address, if known.
    pub email: String,
    /// The id the app's owner gave the contact.
    pub external_id: String,
    /// Metadata attached to the contact.
    pub metadata: String,
    /// The contact's language (a BCP 47 tag).
    pub language: String,
}

/// `contact_create_notification`, `..._delete_...`, `..._update_...`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactNotification {
    /// The contact concerned.
    pub contact: Contact,
}

/// `contact_merge_notification`: two contacts became one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ContactMergeNotification {
    /// The contact merged away.
    pub deleted_contact: Contact,
    /// The contact that remains.
    pub preserved_contact: Contact,
}

/// `duplicated_contact_identities_notification` (CONTACT_IDENTITIES_DUPLICATION).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct DuplicatedIdentitiesNotification {
    /// Each identity found on more than one contact.
    pub duplicated_identities: Vec<DuplicatedIdentity>,
}

/// One identity on several contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct DuplicatedIdentity {
    /// The channel of the identity.
    pub channel: String,
    /// The contacts that carry it.
    pub contact_ids: Vec<String>,
}

/// `capability_notification` (CAPABILITY): what a contact's channel can receive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct CapabilityNotification {
    /// The contact whose capability was checked.
    pub contact_id: String,
    /// The identity checked.
    pub identity: String,
    /// The channel checked.
    pub channel: Option<Channel>,
    /// `CAPABILITY_FULL`, `CAPABILITY_PARTIAL`, `NO_CAPABILITY` (an open set).
    pub capability_status: String,
    /// The id of the capability request this answers.
    pub request_id: String,
    /// What the channel supports, e.g. rich cards (channel-specific names).
    pub channel_capabilities: Vec<String>,
    /// Why the check failed, if it did.
    pub reason: Option<Reason>,
}

/// `opt_in_notification` / `opt_out_notification` (OPT_IN / OPT_OUT): the outcome of an
/// opt-in or opt-out request made through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct OptNotification {
    /// The id of the opt-in or opt-out request this answers.
    pub request_id: String,
    /// The contact concerned.
    pub contact_id: String,
    /// The channel of the request.
    pub channel: Option<Channel>,
    /// The identity concerned.
    pub identity: String,
    /// `OPT_IN_SUCCEEDED`, `OPT_IN_FAILED`, `OPT_OUT_SUCCEEDED`, ... (an open set).
    pub status: String,
    /// Why it failed, if it did.
    pub error_details: Option<ErrorDetails>,
    /// The app's processing mode.
    pub processing_mode: Option<ProcessingMode>,
}

/// Why an opt-in or opt-out request failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ErrorDetails {
    /// Sinch's explanation.
    pub description: String,
}

/// `channel_event_notification` (CHANNEL_EVENT), e.g. a WhatsApp quality rating change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelEventNotification {
    /// The event.
    pub channel_event: ChannelEvent,
}

/// Something the channel reported about the app's account or sender.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelEvent {
    /// The channel that reported it.
    pub channel: Option<Channel>,
    /// The channel's event name, e.g. `WHATSAPP_QUALITY_RATING_CHANGED`.
    pub event_type: String,
    /// The event's details (channel-specific, kept raw).
    pub additional_data: Value,
}

/// `unsupported_callback` (UNSUPPORTED): something a channel sent that Sinch cannot map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct UnsupportedCallback {
    /// Sinch's id of the callback.
    pub id: String,
    /// The channel it came from.
    pub channel: Option<Channel>,
    /// The channel's payload, as a string.
    pub payload: String,
    /// The app's processing mode.
    pub processing_mode: Option<ProcessingMode>,
    /// The contact, if known.
    pub contact_id: String,
    /// The conversation, if known.
    pub conversation_id: String,
    /// The sender, if known.
    pub channel_identity: Option<ChannelIdentity>,
}

/// `smart_conversation_notification` (SMART_CONVERSATIONS): analysis results, kept raw.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SmartConversationNotification {
    /// The contact analysed.
    pub contact_id: String,
    /// The identity on the channel (a plain string here, unlike elsewhere).
    pub channel_identity: String,
    /// The channel of the message analysed.
    pub channel: Option<Channel>,
    /// The message analysed.
    pub message_id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// What the analysis found (kept raw).
    pub analysis_results: Value,
}

/// `record_notification` (RECORD_NOTIFICATION).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RecordNotification {
    /// The id of the entity the record is about.
    pub entity_id: String,
    /// The record's status (an open set).
    pub record_status: String,
    /// The identity concerned.
    pub channel_identity: Option<ChannelIdentity>,
    /// The contact concerned.
    pub contact_id: String,
    /// The conversation concerned.
    pub conversation_id: String,
    /// Why, when it failed.
    pub reason: Option<Reason>,
    /// The app's processing mode.
    pub processing_mode: Option<ProcessingMode>,
}

/// Declares [`Event`], [`TRIGGER_KEYS`], and the parsing and naming by key, from one table, so
/// the three cannot drift apart.
macro_rules! events {
    ($( $variant:ident($payload:ty) = $key:literal, )*) => {
        /// The event a Conversation callback carries, by its trigger key.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( #[doc = concat!("`", $key, "`.")] $variant($payload), )*
            /// A trigger key this version does not know (e.g. `comment_event`), with the key.
            Unknown {
                /// The key as received.
                key: String,
            },
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
    /// The keys every callback carries.
    pub envelope: Envelope,
    /// The event, by its trigger key.
    pub event: Event,
}
