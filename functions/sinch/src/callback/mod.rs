//! Typed Sinch callbacks: every Conversation API trigger and every SMS API callback type.
//!
//! [`parse`] looks at the top level once: an SMS callback has a `type`, a Conversation callback
//! has exactly one trigger key beside its envelope. It dispatches on that exact key or type. A
//! key or type this version does not know is a value ([`conversation::Event::Unknown`],
//! [`sms::SmsCallback::Unknown`], [`Callback::Unknown`]), never an error: Sinch adds triggers,
//! and the worker must log and acknowledge them rather than choke. Only a body that is not a
//! JSON object, a known kind whose required fields are missing or mistyped, or a Conversation
//! callback with two trigger keys (which one would be meant?) is an error.

pub mod conversation;
pub mod sms;
mod summary;

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

pub use conversation::ConversationCallback;
pub use sms::SmsCallback;
pub use summary::Summary;

/// Any Sinch callback.
// Variants differ in size, but a callback is parsed once per record and moved once or twice:
// boxing would cost an allocation for nothing and make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    /// A Conversation API callback: an envelope and one trigger key.
    Conversation(ConversationCallback),
    /// An SMS API callback: an object with a `type`.
    Sms(SmsCallback),
    /// A JSON object that is neither: no `type`, no envelope, no trigger key. Its top-level keys.
    Unknown {
        /// The object's top-level keys, for the log.
        keys: Vec<String>,
    },
}

impl Callback {
    /// A stable name for logs and metrics: `conversation.<trigger key>`, `sms.<type>`, or
    /// `unknown` for anything this version does not know.
    pub fn kind(&self) -> Cow<'static, str> {
        match self {
            Callback::Conversation(c) => match &c.event {
                conversation::Event::Unknown { .. } => Cow::Borrowed("unknown"),
                event => Cow::Owned(format!("conversation.{}", event.key())),
            },
            Callback::Sms(SmsCallback::Unknown { .. }) | Callback::Unknown { .. } => {
                Cow::Borrowed("unknown")
            }
            Callback::Sms(sms) => Cow::Owned(format!("sms.{}", sms.kind())),
        }
    }

    /// Whether this version understood the kind.
    pub fn is_known(&self) -> bool {
        self.kind() != "unknown"
    }
}

/// Why a body is not a usable callback.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON, or not an object.
    #[error("the body is not a JSON object: {0}")]
    NotAnObject(serde_json::Error),
    /// The kind is known but its payload does not have the shape Sinch documents.
    #[error("{kind} callback is malformed: {source}")]
    Malformed {
        /// The kind (`conversation.<key>` or `sms.<type>`).
        kind: String,
        /// What serde found wrong.
        source: serde_json::Error,
    },
    /// More than one trigger key: acting on the first would silently drop the others.
    #[error("ambiguous callback: it carries several trigger keys ({})", keys.join(", "))]
    Ambiguous {
        /// The trigger keys found.
        keys: Vec<String>,
    },
}

impl ParseError {
    /// A stable snake_case name: `not_an_object`, `malformed`, `ambiguous`.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::NotAnObject(_) => "not_an_object",
            ParseError::Malformed { .. } => "malformed",
            ParseError::Ambiguous { .. } => "ambiguous",
        }
    }
}

/// Parses a callback body (the exact bytes Sinch signed).
pub fn parse(body: &[u8]) -> Result<Callback, ParseError> {
    let top: TopLevel<'_> = serde_json::from_slice(body).map_err(ParseError::NotAnObject)?;

    if let Some(kind) = top.get("type") {
        let kind: Cow<'_, str> =
            serde_json::from_str(kind.get()).map_err(|source| ParseError::Malformed {
                kind: "sms".into(),
                source,
            })?;
        return SmsCallback::parse(&kind, body)
            .map(Callback::Sms)
            .map_err(|source| ParseError::Malformed {
                kind: format!("sms.{kind}"),
                source,
            });
    }

    let mut triggers = top
        .0
        .iter()
        .filter(|(key, _)| conversation::TRIGGER_KEYS.contains(&key.as_ref()));
    let trigger = triggers.next();
    if trigger.is_some() && triggers.next().is_some() {
        return Err(ParseError::Ambiguous {
            keys: top
                .0
                .iter()
                .filter(|(key, _)| conversation::TRIGGER_KEYS.contains(&key.as_ref()))
                .map(|(key, _)| key.to_string())
                .collect(),
        });
    }
    let looks_like_conversation = trigger.is_some()
        || top
            .0
            .iter()
            .any(|(key, _)| matches!(key.as_ref(), "app_id" | "project_id"));
    if !looks_like_conversation {
        return Ok(Callback::Unknown {
            keys: top.0.iter().map(|(key, _)| key.to_string()).collect(),
        });
    }

    let envelope = conversation::Envelope {
        app_id: top.field("app_id")?.unwrap_or_default(),
        project_id: top.field("project_id")?.unwrap_or_default(),
        accepted_time: top.time("accepted_time")?,
        event_time: top.time("event_time")?,
        message_metadata: top.field("message_metadata")?.unwrap_or_default(),
        correlation_id: top.field("correlation_id")?.unwrap_or_default(),
    };
    let event = match trigger {
        Some((key, payload)) => conversation::Event::parse(key, payload.get())
            .expect("a trigger key from TRIGGER_KEYS parses")
            .map_err(|source| ParseError::Malformed {
                kind: format!("conversation.{key}"),
                source,
            })?,
        None => conversation::Event::Unknown {
            key: top
                .0
                .iter()
                .map(|(key, _)| key.as_ref())
                .find(|key| !conversation::ENVELOPE_KEYS.contains(key))
                .unwrap_or_default()
                .to_owned(),
        },
    };
    Ok(Callback::Conversation(ConversationCallback {
        envelope,
        event,
    }))
}

/// The top-level members of a JSON object, in document order, values left unparsed.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> TopLevel<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// An envelope field; `null` counts as absent. A mistyped one makes the callback malformed.
    fn field<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ParseError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<Option<T>>(raw.get()).map_err(|source| {
                ParseError::Malformed {
                    kind: format!("conversation envelope field {name}"),
                    source,
                }
            }),
        }
    }

    fn time(&self, name: &str) -> Result<Option<time::OffsetDateTime>, ParseError> {
        #[derive(serde::Deserialize)]
        struct Time(
            #[serde(with = "conversation::timestamp::optional")] Option<time::OffsetDateTime>,
        );
        Ok(self.field::<Time>(name)?.and_then(|t| t.0))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for TopLevel<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = TopLevel<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(TopLevel(members))
            }
        }

        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}
