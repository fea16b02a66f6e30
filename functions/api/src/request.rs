//! `POST /messages`: the request as clients write it, and every rule it must pass before
//! anything is stored or queued. Each refusal has a stable snake_case code and a message that
//! names the field (see [`ApiError`]).
//!
//! | field | what | rules (refusal code) |
//! |---|---|---|
//! | `to` | the recipient | E.164 (`+` and 7 to 15 digits) on phone channels, any identity of 1 to 256 characters elsewhere (`invalid_recipient`) |
//! | `channel` | a Conversation channel (`WHATSAPP`, `SMS`, `RCS`, `MESSENGER`, `VIBERBM`, `INSTAGRAM`, `TELEGRAM`, ...) or `SMS_API` (SMS API batches, per-recipient reports) | known (`unknown_channel`), with credentials in this deployment (`channel_not_configured`) |
//! | `text` | a text message | not empty (`text_empty`); at most 4096 characters on WhatsApp and 2000 on SMS, the smallest limit of the channels it may go on (`text_too_long`) |
//! | `media` | `{"url", "thumbnail_url"?, "caption"?, "filename"?}` | http(s) URLs (`invalid_media_url`); a caption makes it a card (media with a description); not on `SMS_API` |
//! | `template` | a WhatsApp template `{"name", "language", "parameters"}` and/or an omni template `{"id", "version"}` (with `omni_language`, `omni_parameters` when both are given: the WhatsApp template on WhatsApp, the omni one elsewhere) | `language` like `en_US`, `version` given (`invalid_template`); WhatsApp parameter keys of Sinch's form, `body[1]text`, `header[1]image.link`, `button[0]url[1]text`, ... (`invalid_template_parameter`); a template by name only where WhatsApp is a channel (`template_channel_unsupported`) |
//! | `message` | any Sinch message as Sinch writes it, `{"card_message": {...}}` (`choice_message`, `carousel_message`, `location_message`, `contact_info_message`, `list_message`, a kind Sinch adds later, ...) with Sinch's fields beside the kind (`explicit_channel_message`, `channel_specific_message`, `agent`, ...): **sent to Sinch exactly as given, field for field** | exactly one kind, any `*_message` key (`unknown_message_kind`); at most 10 choices, 10 cards, 3 outer choices of a carousel (`too_many_choices`) |
//! | `fallback` | channels to try next, in order | Conversation channels, distinct, not on `SMS_API`, at most 5 (`invalid_fallback`) |
//! | `metadata` | a JSON object, echoed in the status | an object (`invalid_metadata`) of at most 1024 bytes (`metadata_too_large`) |
//! | `ttl` | seconds Sinch keeps trying | 3 to 2,592,000; `SMS_API` 3 to 259,200 (`ttl_out_of_range`) |
//! | `sms_sender` (or `from`) | the SMS sender | a number or up to 11 alphanumerics (`invalid_sender`); required on `SMS_API` unless `SinchSmsSender` is set (`sender_missing`) |
//!
//! | `send_at` | when to send it (RFC 3339) | at most 35 days ahead (`invalid_send_at`, `send_at_out_of_range`); earlier than now is now; until then it is `SCHEDULED` |
//! | `expire_at` | when it may no longer leave (RFC 3339) | after it is due (`invalid_expire_at`, `expire_at_out_of_range`); by default `ttl` after it is due; past it, unsent, it ends `EXPIRED` |
//! | `quiet_hours` | `{"start": "21:00", "end": "08:00", "time_zone"?}`: it waits until they end | `HH:MM` and an IANA zone (`invalid_quiet_hours`); without `time_zone`, the number's country must have one zone (`time_zone_required`); `QUIET_HOURS` is the deployment's default |
//! | `priority` | `transactional` (single sends' default) or `bulk` (batches'): the fast lane goes ahead of every bulk send waiting | one of the two (`invalid_request`); on a batch, `transactional` only for a caller in `FAST_LANE_BATCH_CALLERS` (403 `priority_not_allowed`) |
//! | `max_parts` | the most SMS parts the text may take | on SMS channels, the text's parts (GSM-7: 160, then 153 a part; UCS-2: 70, then 67) at most this (`too_many_parts`) |
//!
//! Exactly one of `text`, `media`, `template`, `message`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use pipeline::jobs::Route;
use pipeline::quiet_hours::QuietHours;
use pipeline::schedule::Lane;
use pipeline::sms_parts::{self, Parts};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sinch::Channel;
use sinch::client::{
    AppMessage, CardBody, ChannelTemplate, MediaBody, OmniTemplate, TemplateBody, is_kind,
};

use crate::error::ApiError;

/// The SMS API as a channel of requests.
pub use pipeline::store::SMS_API;

const MAX_METADATA_BYTES: usize = 1024;
const MAX_FALLBACK: usize = 5;
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
const MAX_SMS_TTL_SECS: u64 = 3 * 24 * 3600;
const MAX_CHOICES: usize = 10;
const MAX_CARDS: usize = 10;
const MAX_CAROUSEL_CHOICES: usize = 3;

/// The body of `POST /messages`, as clients write it (and the CLI writes it: what is absent is
/// not written).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The recipient: an E.164 number for phone channels, the channel's identity otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// The channel: `WHATSAPP`, `SMS`, `RCS`, ... (Conversation) or `SMS_API`.
    pub channel: String,
    /// A text message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A media message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// A template message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// Any Conversation message, as Sinch takes it (sent field for field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Map<String, Value>>,
    /// Channels to fall back to, in order (Conversation only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// Echoed back in the message's status and events (any JSON, at most 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// How long Sinch keeps trying, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// The SMS API sender (`from` is accepted too).
    #[serde(default, alias = "from", skip_serializing_if = "Option::is_none")]
    pub sms_sender: Option<String>,
    /// When to send it (RFC 3339, at most 35 days ahead); at once by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<String>,
    /// When it may no longer leave (RFC 3339); `ttl` after it is due by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<String>,
    /// Hours in which it must not leave, in the recipient's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// `transactional` (single sends' default) or `bulk` (batches').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Lane>,
    /// The most SMS parts a text may take (SMS channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parts: Option<u32>,
}

/// `media`: an image, video, audio or document by URL.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// A public URL.
    pub url: String,
    /// A preview image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// A caption, sent as a card's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The file name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// `template`: a WhatsApp template by name, an omni template by id, or both.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// A WhatsApp template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its language, `en_US` form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The WhatsApp template's parameters (or the omni template's, when no name is given).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// An omni template's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// An omni template's version (`latest` accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The omni template's language and parameters, when a WhatsApp template is given too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omni_language: Option<String>,
    /// The omni template's parameters, when a WhatsApp template is given too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omni_parameters: Option<BTreeMap<String, String>>,
}

/// What the deployment can send through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channels {
    /// The Conversation app to send from, when the Conversation API is configured.
    pub conversation_app: Option<String>,
    /// Whether the SMS API is configured.
    pub sms_api: bool,
    /// The SMS API sender when a request names none.
    pub default_sms_sender: Option<String>,
}

/// A request that passed every rule: what is stored and queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// The recipient, normalised.
    pub to: String,
    /// The channel asked for.
    pub channel: String,
    /// Every channel it may go on (the channel, then the fallback).
    pub channels: Vec<String>,
    /// Which API sends it, with what.
    pub route: Route,
    /// Whether it is free-form on WhatsApp with nowhere else to go: the 24-hour window applies.
    pub needs_whatsapp_window: bool,
    /// JSON text.
    pub metadata: Option<String>,
    /// When it is due to leave (Unix ms): now, `send_at`, or the end of quiet hours.
    pub due_ms: u64,
    /// When it may no longer leave, if ever.
    pub expires_at_ms: Option<u64>,
    /// The lane it goes by.
    pub lane: Lane,
    /// A text on an SMS channel: its encoding and parts.
    pub sms: Option<Parts>,
    /// The quiet hours it keeps (the request's, or the deployment's), judged again when it is
    /// about to leave.
    pub quiet_hours: Option<QuietHours>,
}

/// What validation needs besides the request.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// What the deployment can send through.
    pub channels: &'a Channels,
    /// Now, Unix ms.
    pub now_ms: u64,
    /// The deployment's quiet hours (`QUIET_HOURS`), when the request gives none.
    pub quiet_hours: Option<&'a QuietHours>,
    /// The lane when the request names none.
    pub lane: Lane,
}

/// How far ahead `send_at` may be.
pub const MAX_SCHEDULE_AHEAD_MS: u64 = 35 * 24 * 3600 * 1000;

/// Unix ms of an RFC 3339 time in `field`.
pub(crate) fn instant(text: &str, field: &str) -> Result<u64, ApiError> {
    let at =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                ApiError::bad_request(
                    if field == "send_at" {
                        "invalid_send_at"
                    } else {
                        "invalid_expire_at"
                    },
                    format!("{field}: {text:?} is not an RFC 3339 time (2026-12-24T09:00:00Z)"),
                )
            })?;
    Ok(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

impl SendRequest {
    /// Applies every rule; the first one broken is the answer.
    pub fn validate(self, context: &Context<'_>) -> Result<Valid, ApiError> {
        let channels = context.channels;
        let channel = self.channel.trim().to_uppercase();
        let is_sms_api = channel == SMS_API;
        if !is_sms_api && !Channel::from(channel.as_str()).is_known() {
            return Err(ApiError::bad_request(
                "unknown_channel",
                format!(
                    "channel: {:?} is not a channel this API knows ({SMS_API}, {})",
                    self.channel,
                    Channel::KNOWN.join(", ")
                ),
            ));
        }
        let to = self.to.trim().to_owned();
        check_recipient(&channel, &to)?;

        let mut fallback = Vec::new();
        for (index, name) in self.fallback.iter().enumerate() {
            let name = name.trim().to_uppercase();
            let field = format!("fallback[{index}]");
            if is_sms_api {
                return Err(ApiError::bad_request(
                    "invalid_fallback",
                    "fallback: the SMS API has no fallback; use an SMS channel of the Conversation API",
                ));
            }
            if !Channel::from(name.as_str()).is_known() {
                return Err(ApiError::bad_request(
                    "invalid_fallback",
                    format!("{field}: {name:?} is not a Conversation channel"),
                ));
            }
            if name == channel || fallback.contains(&name) {
                return Err(ApiError::bad_request(
                    "invalid_fallback",
                    format!("{field}: {name} appears twice in the channel order"),
                ));
            }
            check_recipient(&name, &to).map_err(|_| {
                ApiError::bad_request(
                    "invalid_fallback",
                    format!("{field}: {to:?} is not an identity on {name}"),
                )
            })?;
            fallback.push(name);
        }
        if fallback.len() > MAX_FALLBACK {
            return Err(ApiError::bad_request(
                "invalid_fallback",
                format!("fallback: at most {MAX_FALLBACK} channels"),
            ));
        }
        let all: Vec<String> = std::iter::once(channel.clone())
            .chain(fallback.iter().cloned())
            .collect();

        let metadata = match self.metadata {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => {
                let text = Value::Object(map).to_string();
                if text.len() > MAX_METADATA_BYTES {
                    return Err(ApiError::unprocessable(
                        "metadata_too_large",
                        format!(
                            "metadata: {} bytes of JSON, at most {MAX_METADATA_BYTES}",
                            text.len()
                        ),
                    ));
                }
                Some(text)
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_metadata",
                    "metadata: must be a JSON object",
                ));
            }
        };
        let max_ttl = if is_sms_api {
            MAX_SMS_TTL_SECS
        } else {
            MAX_TTL_SECS
        };
        if let Some(ttl) = self.ttl
            && !(3..=max_ttl).contains(&ttl)
        {
            return Err(ApiError::unprocessable(
                "ttl_out_of_range",
                format!("ttl: {ttl} s is outside 3 to {max_ttl} s for {channel}"),
            ));
        }
        let sender = match self.sms_sender.as_deref().map(str::trim) {
            Some(sender) => Some(check_sender(sender)?),
            None => None,
        };

        let now_ms = context.now_ms;
        let send_at = match self.send_at.as_deref() {
            None => None,
            Some(text) => {
                let at = instant(text, "send_at")?;
                if at > now_ms.saturating_add(MAX_SCHEDULE_AHEAD_MS) {
                    return Err(ApiError::unprocessable(
                        "send_at_out_of_range",
                        format!("send_at: {text} is more than 35 days ahead"),
                    ));
                }
                Some(at)
            }
        };
        let mut due_ms = send_at.unwrap_or(now_ms).max(now_ms);
        let quiet_hours = self.quiet_hours.as_ref().or(context.quiet_hours).cloned();
        if let Some(quiet) = &quiet_hours {
            quiet
                .check()
                .and_then(|()| quiet.release(&to, due_ms))
                .map(|release| due_ms = release)
                .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
        }
        let expires_at_ms = match self.expire_at.as_deref() {
            Some(text) => {
                let at = instant(text, "expire_at")?;
                if at <= due_ms {
                    return Err(ApiError::unprocessable(
                        "expire_at_out_of_range",
                        format!("expire_at: {text} is not after the time it is due to leave"),
                    ));
                }
                Some(at)
            }
            None => self
                .ttl
                .map(|ttl| due_ms.saturating_add(ttl.saturating_mul(1000))),
        };
        let lane = self.priority.unwrap_or(context.lane);

        let content = Content::from_request(self.text, self.media, self.template, self.message)?;
        let needs_whatsapp_window =
            channel == "WHATSAPP" && fallback.is_empty() && !content.is_template();
        let on_sms = is_sms_api || all.iter().any(|c| c == "SMS");
        let sms = match &content {
            Content::Text(text) if on_sms => Some(sms_parts::count(text)),
            _ => None,
        };
        if let (Some(parts), Some(max)) = (sms, self.max_parts)
            && parts.parts > max
        {
            return Err(ApiError::unprocessable(
                "too_many_parts",
                format!(
                    "text: {} parts ({:?}, {} units), at most {max} (max_parts)",
                    parts.parts, parts.encoding, parts.units
                ),
            ));
        }

        let route = if is_sms_api {
            if !channels.sms_api {
                return Err(not_configured(&channel));
            }
            let Content::Text(text) = content else {
                return Err(ApiError::unprocessable(
                    "content_unsupported_on_channel",
                    "text: the SMS API sends text only (use channel SMS for the rest)",
                ));
            };
            check_text(&text, &all)?;
            let from = sender
                .or_else(|| channels.default_sms_sender.clone())
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "sender_missing",
                        "sms_sender: required for SMS_API (no default sender is configured)",
                    )
                })?;
            Route::Sms {
                from,
                body: text,
                ttl_secs: self.ttl,
            }
        } else {
            let Some(app_id) = channels.conversation_app.clone() else {
                return Err(not_configured(&channel));
            };
            let message = content.into_message(&all)?;
            let mut channel_properties = BTreeMap::new();
            if let Some(sender) = sender {
                channel_properties.insert("SMS_SENDER".to_owned(), sender);
            }
            Route::Conversation {
                app_id,
                channel: channel.clone(),
                fallback,
                message,
                channel_properties,
                ttl_secs: self.ttl,
            }
        };
        Ok(Valid {
            to,
            channel,
            channels: all,
            route,
            needs_whatsapp_window,
            metadata,
            due_ms,
            expires_at_ms,
            lane,
            sms,
            quiet_hours,
        })
    }
}

fn not_configured(channel: &str) -> ApiError {
    ApiError::unprocessable(
        "channel_not_configured",
        format!("channel: {channel} has no credentials configured in this deployment"),
    )
}

fn e164() -> &'static Regex {
    static E164: OnceLock<Regex> = OnceLock::new();
    E164.get_or_init(|| Regex::new(r"^\+[1-9][0-9]{6,14}$").expect("a valid pattern"))
}

/// Whether `number` is E.164: a `+` and 7 to 15 digits, the first not 0.
pub(crate) fn is_e164(number: &str) -> bool {
    e164().is_match(number)
}

/// Whether `channel` (as requests name it) addresses phone numbers.
pub(crate) fn is_phone(channel: &str) -> bool {
    channel == SMS_API || Channel::from(channel).is_phone()
}

fn check_recipient(channel: &str, to: &str) -> Result<(), ApiError> {
    if is_phone(channel) {
        if !is_e164(to) {
            return Err(ApiError::bad_request(
                "invalid_recipient",
                format!(
                    "to: {to:?} is not an E.164 number (a + and 7 to 15 digits, e.g. +46701234567)"
                ),
            ));
        }
    } else if to.is_empty() || to.chars().count() > 256 {
        return Err(ApiError::bad_request(
            "invalid_recipient",
            format!("to: a {channel} identity of 1 to 256 characters"),
        ));
    }
    Ok(())
}

fn check_sender(sender: &str) -> Result<String, ApiError> {
    static SENDER: OnceLock<Regex> = OnceLock::new();
    let pattern = SENDER.get_or_init(|| {
        Regex::new(r"^(\+?[0-9]{3,15}|[A-Za-z0-9 ]{1,11})$").expect("a valid pattern")
    });
    if pattern.is_match(sender) && !sender.trim().is_empty() {
        Ok(sender.to_owned())
    } else {
        Err(ApiError::bad_request(
            "invalid_sender",
            format!(
                "sms_sender: {sender:?} is neither a number nor an alphanumeric sender of up to 11 characters"
            ),
        ))
    }
}

/// The most characters a text may have on `channel`.
pub fn text_limit(channel: &str) -> usize {
    match channel {
        "SMS" | SMS_API => 2000,
        _ => 4096,
    }
}

fn check_text(text: &str, channels: &[String]) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("text_empty", "text: empty"));
    }
    let length = text.chars().count();
    if let Some(tight) = channels
        .iter()
        .min_by_key(|channel| text_limit(channel))
        .filter(|channel| length > text_limit(channel))
    {
        return Err(ApiError::unprocessable(
            "text_too_long",
            format!(
                "text: {length} characters, at most {} on {tight}",
                text_limit(tight)
            ),
        ));
    }
    Ok(())
}

/// What is sent.
enum Content {
    Text(String),
    Media(Media),
    Template(Template),
    Other(Map<String, Value>),
}

impl Content {
    fn from_request(
        text: Option<String>,
        media: Option<Media>,
        template: Option<Template>,
        message: Option<Map<String, Value>>,
    ) -> Result<Self, ApiError> {
        let given = [
            text.is_some(),
            media.is_some(),
            template.is_some(),
            message.is_some(),
        ]
        .into_iter()
        .filter(|g| *g)
        .count();
        if given > 1 {
            return Err(ApiError::bad_request(
                "content_ambiguous",
                "text, media, template, message: give exactly one",
            ));
        }
        Ok(match (text, media, template, message) {
            (Some(text), ..) => Content::Text(text),
            (_, Some(media), ..) => Content::Media(media),
            (_, _, Some(template), _) => Content::Template(template),
            (.., Some(message)) => Content::Other(message),
            _ => {
                return Err(ApiError::bad_request(
                    "content_missing",
                    "text, media, template, message: give one",
                ));
            }
        })
    }

    fn is_template(&self) -> bool {
        match self {
            Content::Template(_) => true,
            Content::Other(message) => {
                message.contains_key("template_message")
                    && message.keys().filter(|key| is_kind(key)).count() == 1
            }
            _ => false,
        }
    }

    fn into_message(self, channels: &[String]) -> Result<AppMessage, ApiError> {
        match self {
            Content::Text(text) => {
                check_text(&text, channels)?;
                Ok(AppMessage::text(text))
            }
            Content::Media(media) => media_message(media, channels),
            Content::Template(template) => template_message(template, channels),
            Content::Other(message) => other_message(message, channels),
        }
    }
}

fn media_message(media: Media, channels: &[String]) -> Result<AppMessage, ApiError> {
    let url = media.url.trim();
    if !is_http_url(url) {
        return Err(ApiError::bad_request(
            "invalid_media_url",
            format!("media.url: {url:?} is not an http(s) URL"),
        ));
    }
    let thumbnail_url = match media.thumbnail_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(thumbnail) if is_http_url(thumbnail) => Some(thumbnail.to_owned()),
        Some(thumbnail) => {
            return Err(ApiError::bad_request(
                "invalid_media_url",
                format!("media.thumbnail_url: {thumbnail:?} is not an http(s) URL"),
            ));
        }
    };
    let body = MediaBody {
        url: url.to_owned(),
        thumbnail_url,
        filename_override: media.filename.filter(|f| !f.trim().is_empty()),
    };
    match media.caption.filter(|c| !c.trim().is_empty()) {
        None => Ok(AppMessage::media(body)),
        Some(caption) => {
            check_text(&caption, channels).map_err(|e| e.for_field("text", "media.caption"))?;
            Ok(AppMessage::card(CardBody {
                title: String::new(),
                description: caption,
                media_message: Some(body),
            }))
        }
    }
}

fn is_http_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace))
}

/// WhatsApp template parameter keys: `body[1]text`, `header[1]image.link`,
/// `button[0]url[1]text`, `carousel[0]body[1]text`, ...
fn whatsapp_parameter() -> &'static Regex {
    static KEY: OnceLock<Regex> = OnceLock::new();
    KEY.get_or_init(|| {
        Regex::new(
            r"^(?:carousel\[[0-9]+\])?(?:(?:body|header)\[[1-9][0-9]*\]|button\[[0-9]+\][a-z_]+\[[1-9][0-9]*\])[a-z_]+(?:\.[a-z_]+)*$",
        )
        .expect("a valid pattern")
    })
}

fn language_pattern() -> &'static Regex {
    static LANGUAGE: OnceLock<Regex> = OnceLock::new();
    LANGUAGE.get_or_init(|| Regex::new(r"^[a-z]{2,3}(?:_[A-Z]{2})?$").expect("a valid pattern"))
}

fn template_message(template: Template, channels: &[String]) -> Result<AppMessage, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_template", message);
    let non_empty = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let name = non_empty(&template.name);
    let id = non_empty(&template.id);
    if name.is_none() && id.is_none() {
        return Err(invalid(
            "template: give name and language (a WhatsApp template) or id and version (an omni template)".into(),
        ));
    }
    let mut body = TemplateBody {
        omni_template: None,
        channel_template: BTreeMap::new(),
    };
    let both = name.is_some() && id.is_some();
    if let Some(name) = name {
        if !channels.iter().any(|c| c == "WHATSAPP") {
            return Err(ApiError::unprocessable(
                "template_channel_unsupported",
                "template.name: a template by name is a WhatsApp template; send it on WHATSAPP, or use an omni template (id, version)",
            ));
        }
        let language = non_empty(&template.language).ok_or_else(|| {
            invalid("template.language: required for a WhatsApp template (e.g. en_US)".into())
        })?;
        if !language_ok(&language) {
            return Err(invalid(format!(
                "template.language: {language:?} is not of the form en or en_US"
            )));
        }
        for key in template.parameters.keys() {
            if !whatsapp_parameter().is_match(key) {
                return Err(ApiError::bad_request(
                    "invalid_template_parameter",
                    format!(
                        "template.parameters: {key:?} is not a WhatsApp parameter key (body[1]text, header[1]image.link, button[0]url[1]text, ...)"
                    ),
                ));
            }
        }
        body.channel_template.insert(
            "WHATSAPP".to_owned(),
            ChannelTemplate {
                template_id: name,
                version: None,
                language_code: Some(language),
                parameters: template.parameters.clone(),
            },
        );
    }
    if let Some(id) = id {
        let version = non_empty(&template.version).ok_or_else(|| {
            invalid("template.version: required for an omni template (\"latest\" works)".into())
        })?;
        let (language, parameters) = if both {
            (
                non_empty(&template.omni_language),
                template.omni_parameters.clone().unwrap_or_default(),
            )
        } else {
            (non_empty(&template.language), template.parameters.clone())
        };
        body.omni_template = Some(OmniTemplate {
            template_id: id,
            version,
            language_code: language,
            parameters,
        });
    }
    Ok(AppMessage::template(body))
}

fn language_ok(language: &str) -> bool {
    language_pattern().is_match(language)
}

/// Message kinds this version knows (any other `*_message` kind is passed through too: Sinch
/// adds kinds over time).
const KNOWN_KINDS: &[&str] = &[
    "text_message",
    "media_message",
    "template_message",
    "choice_message",
    "card_message",
    "carousel_message",
    "location_message",
    "contact_info_message",
    "list_message",
];

/// A message given as Sinch writes it: exactly one kind (`{"<kind>_message": {...}}`), beside
/// it any of Sinch's other message fields (`explicit_channel_message`, `agent`, ...). Checked
/// lightly, and passed on exactly as given: nothing added, nothing dropped.
fn other_message(message: Map<String, Value>, channels: &[String]) -> Result<AppMessage, ApiError> {
    let kinds: Vec<&String> = message.keys().filter(|key| is_kind(key)).collect();
    let [kind] = kinds.as_slice() else {
        return Err(ApiError::bad_request(
            "unknown_message_kind",
            format!(
                "message: exactly one kind ({}, ...), not {}",
                KNOWN_KINDS.join(", "),
                kinds.len()
            ),
        ));
    };
    let kind = kind.as_str();
    let Some(body) = message.get(kind).and_then(Value::as_object) else {
        return Err(ApiError::bad_request(
            "invalid_message",
            format!("message.{kind}: must be an object"),
        ));
    };
    let count = |name: &str| body.get(name).and_then(Value::as_array).map_or(0, Vec::len);
    let too_many = |field: String, count: usize, max: usize| {
        ApiError::unprocessable(
            "too_many_choices",
            format!("{field}: {count}, at most {max}"),
        )
    };
    match kind {
        "choice_message" | "card_message" if count("choices") > MAX_CHOICES => {
            return Err(too_many(
                format!("message.{kind}.choices"),
                count("choices"),
                MAX_CHOICES,
            ));
        }
        "carousel_message" => {
            if count("cards") > MAX_CARDS {
                return Err(too_many(
                    "message.carousel_message.cards".into(),
                    count("cards"),
                    MAX_CARDS,
                ));
            }
            if count("choices") > MAX_CAROUSEL_CHOICES {
                return Err(too_many(
                    "message.carousel_message.choices".into(),
                    count("choices"),
                    MAX_CAROUSEL_CHOICES,
                ));
            }
        }
        "text_message" => {
            let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
            check_text(text, channels)
                .map_err(|e| e.for_field("text", "message.text_message.text"))?;
        }
        _ => {}
    }
    Ok(AppMessage::from_json(message))
}
