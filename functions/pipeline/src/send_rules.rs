//! The sending rules: whether a message may go to its recipient now. Checked twice, with the
//! same code: by the messages API at the door (a refusal costs nothing and is answered at once)
//! and by the worker just before the request leaves (an outbound send, a redrive days later, a
//! retry of either, and the pipeline's own replies), because a message may wait between the two.
//!
//! | rule | refused with | applies to |
//! |---|---|---|
//! | the recipient opted out (STOP, on any channel the message may go on) | `recipient_opted_out` | every send; a reply to the very message that opted out (its confirmation) excepted |
//! | WhatsApp's customer service window: no message from the recipient in the last 24 hours | `whatsapp_window_closed` | free-form WhatsApp messages (not templates) with no other channel to fall back on; replies on WhatsApp |
//! | the recipient's number is outside the country allow-list (`ALLOWED_COUNTRIES`: E.164 prefixes; unset: any) | `country_not_allowed` | sends on phone channels (not the pipeline's replies to someone who wrote); at the door it is the messages API's guard, here it catches what was accepted before the list was narrowed (a schedule, a batch, a retry) |
//! | the recipient was erased after the message was accepted | `recipient_erased`; it ends `CANCELED` | sends of the messages API that waited (checked when it leaves only) |
//! | its `ttl` or `expire_at` passed while it waited (a schedule, quiet hours, pacing, retries) | `expired`; it ends `EXPIRED` | sends of the messages API with a `ttl` or `expire_at` (checked when it leaves only) |
//!
//! At the door a refusal is a 422 with that code; at the moment of sending, the message ends
//! `FAILED` with the code as its reason, and nothing is sent. A refusal's description never
//! names the recipient: it is stored (in the message's history, in an idempotency key's answer)
//! where an erasure does not reach. Sends of the messages API read
//! the contact again for it (one read per channel it may go on); a reply is judged on the
//! contact as the same invocation read it, with the answered message's own effect applied,
//! milliseconds before it leaves (a retry reads it again), so a reply costs no extra read.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, Env};
use crate::status::Status;
use crate::store::{ContactKey, ContactState, ContactStore, Reason, StoreError};

/// The expiry rule: past `expires_at_ms`, it ends `EXPIRED`.
fn expired(check: &Check<'_>) -> Option<Refusal> {
    let expires_at_ms = check.expires_at_ms?;
    (check.now_ms >= expires_at_ms).then(|| Refusal {
        status: Status::Expired,
        code: EXPIRED,
        message: format!(
            "its ttl or expire_at passed {} ms before it could leave",
            check.now_ms - expires_at_ms
        ),
    })
}

/// Refusal code: the recipient opted out.
pub const RECIPIENT_OPTED_OUT: &str = "recipient_opted_out";
pub use crate::store::RECIPIENT_ERASED;
/// Refusal code: a free-form WhatsApp message outside the 24-hour window.
pub const WHATSAPP_WINDOW_CLOSED: &str = "whatsapp_window_closed";

/// Refusal code: the recipient's number is outside the country allow-list.
pub const COUNTRY_NOT_ALLOWED: &str = "country_not_allowed";

/// `ALLOWED_COUNTRIES`: the E.164 prefixes phone recipients must start with (`46,47,+358`).
pub const ALLOWED_COUNTRIES: &str = "ALLOWED_COUNTRIES";

/// The country allow-list: the E.164 prefixes (digits, no `+`) a phone number must start with;
/// empty, any number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Countries(Arc<[String]>);

impl Countries {
    /// The list `ALLOWED_COUNTRIES` sets (each prefix 1 to 6 digits, `+` optional).
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let mut prefixes = Vec::new();
        for prefix in env
            .optional(ALLOWED_COUNTRIES)
            .unwrap_or_default()
            .split(',')
        {
            let digits = prefix.trim().trim_start_matches('+');
            if digits.is_empty() {
                continue;
            }
            if digits.len() > 6
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || digits.starts_with('0')
            {
                return Err(ConfigError::new(
                    ALLOWED_COUNTRIES,
                    format!("{prefix:?} is not an E.164 prefix (1 to 6 digits, e.g. 46 or +1)"),
                ));
            }
            prefixes.push(digits.to_owned());
        }
        Ok(Self(prefixes.into()))
    }

    /// A list of these prefixes (digits).
    pub fn of<P: Into<String>>(prefixes: impl IntoIterator<Item = P>) -> Self {
        Self(prefixes.into_iter().map(Into::into).collect())
    }

    /// The prefixes.
    pub fn prefixes(&self) -> &[String] {
        &self.0
    }

    /// Whether the number `to` (`+` optional) is in an allowed country.
    pub fn allows(&self, to: &str) -> bool {
        let digits = to.trim_start_matches('+');
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|prefix| digits.starts_with(prefix.as_str()))
    }

    /// The list for people: `+46, +47`.
    pub fn describe(&self) -> String {
        format!("+{}", self.0.join(", +"))
    }
}

/// What the rules say of a send at its moment of leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may go now.
    Go,
    /// It may not, ever: it ends with the refusal's status and code, unsent.
    Refuse(Refusal),
    /// Not now: it waits until `until_ms` (quiet hours in the recipient's zone) and is judged
    /// again then.
    Hold {
        /// When it may be tried again (Unix ms).
        until_ms: u64,
        /// Why, in words.
        why: String,
    },
}

impl From<Option<Refusal>> for Verdict {
    fn from(refusal: Option<Refusal>) -> Self {
        refusal.map_or(Verdict::Go, Verdict::Refuse)
    }
}

/// Refusal code: the message's `ttl` or `expire_at` passed before it could leave (it ends
/// `EXPIRED`).
pub const EXPIRED: &str = "expired";
/// Reason code of a `SCHEDULED` status set when a send was held at its moment of leaving
/// (quiet hours).
pub const HELD: &str = "held";
/// Reason code: canceled before it left (it ends `CANCELED`).
pub const CANCELED: &str = "canceled";

/// WhatsApp's customer service window.
pub const WHATSAPP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The rules' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRules {
    /// WhatsApp's customer service window.
    pub whatsapp_window: Duration,
    /// The country allow-list for sends (not replies) on phone channels.
    pub countries: Countries,
}

impl Default for SendRules {
    fn default() -> Self {
        Self {
            whatsapp_window: WHATSAPP_WINDOW,
            countries: Countries::default(),
        }
    }
}

impl SendRules {
    /// The rules with the allow-list `ALLOWED_COUNTRIES` sets.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            countries: Countries::from_env(env)?,
            ..Self::default()
        })
    }
}

/// What one send needs checked.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    /// The recipient on every channel the message may go on (the channel asked for, then its
    /// fallback), as the store keys contacts.
    pub contacts: &'a [ContactKey],
    /// Whether WhatsApp's window applies (free-form content with nowhere else to go).
    pub whatsapp_free_form: bool,
    /// For a reply: the inbound message it answers (an opt-out by that very message does not
    /// stop its confirmation).
    pub answering: Option<&'a str>,
    /// When it may no longer leave (its `ttl` or `expire_at`), if ever.
    pub expires_at_ms: Option<u64>,
    /// When the message was accepted (Unix ms), for a send that waited since: an erasure of
    /// the recipient after it stops it. `None` at the door and for replies.
    pub accepted_at_ms: Option<u64>,
    /// Now, Unix ms.
    pub now_ms: u64,
}

/// Why a send may not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// [`RECIPIENT_OPTED_OUT`], [`WHATSAPP_WINDOW_CLOSED`] or [`EXPIRED`].
    pub code: &'static str,
    /// For people: which recipient, which channel.
    pub message: String,
    /// What the message ends as: `FAILED`, or `EXPIRED`.
    pub status: Status,
}

impl Refusal {
    /// As a failed message's reason.
    pub fn reason(&self) -> Reason {
        Reason::new(self.code, Some(self.message.clone()))
    }
}

/// Whether an ended message's reason says it was withheld (by a rule, its expiry, a cancel),
/// never sent.
pub fn is_withheld(reason: &Reason) -> bool {
    [
        RECIPIENT_OPTED_OUT,
        RECIPIENT_ERASED,
        WHATSAPP_WINDOW_CLOSED,
        COUNTRY_NOT_ALLOWED,
        EXPIRED,
        CANCELED,
    ]
    .contains(&reason.code.as_str())
}

/// The recipient erased after the message was accepted: it ends `CANCELED`, stripped of them.
fn erased(state: &ContactState, check: &Check<'_>) -> Option<Refusal> {
    let accepted = check.accepted_at_ms?;
    state
        .erased_at_ms
        .is_some_and(|erased| accepted <= erased)
        .then(|| Refusal {
            status: Status::Canceled,
            code: RECIPIENT_ERASED,
            message: "the recipient's data was erased after it was accepted".to_owned(),
        })
}

impl SendRules {
    /// The first rule `check` breaks, read from the store now; `None` when it may go. An
    /// erasure of the recipient on any channel it may take comes first, whatever else it
    /// breaks: its refusal is what strips the message of them.
    pub async fn check<S: ContactStore>(
        &self,
        store: &S,
        check: &Check<'_>,
    ) -> Result<Option<Refusal>, StoreError> {
        let mut states = Vec::with_capacity(check.contacts.len());
        for contact in check.contacts {
            states.push(store.contact(contact).await?);
        }
        if let Some(refusal) = states.iter().find_map(|state| erased(state, check)) {
            return Ok(Some(refusal));
        }
        if let Some(refusal) = expired(check) {
            return Ok(Some(refusal));
        }
        if let Some(refusal) = check.contacts.iter().find_map(|c| self.country(c, check)) {
            return Ok(Some(refusal));
        }
        Ok(check
            .contacts
            .iter()
            .zip(&states)
            .find_map(|(contact, state)| self.judge(contact, state, check)))
    }

    /// The allow-list, for a send (a reply answers someone who wrote: it is never refused here).
    fn country(&self, contact: &ContactKey, check: &Check<'_>) -> Option<Refusal> {
        if check.answering.is_some()
            || !contact.channel.is_phone()
            || self.countries.allows(&contact.identity)
        {
            return None;
        }
        Some(Refusal {
            status: Status::Failed,
            code: COUNTRY_NOT_ALLOWED,
            message: format!(
                "the recipient's number is not in a country this deployment sends to ({})",
                self.countries.describe()
            ),
        })
    }

    /// The first rule broken for one contact whose state is known (read in this invocation).
    pub fn judge(
        &self,
        contact: &ContactKey,
        state: &ContactState,
        check: &Check<'_>,
    ) -> Option<Refusal> {
        if let Some(refusal) = erased(state, check)
            .or_else(|| expired(check))
            .or_else(|| self.country(contact, check))
        {
            return Some(refusal);
        }
        let opted_out = state
            .opted_out_by
            .as_deref()
            .is_some_and(|by| Some(by) != check.answering);
        if opted_out {
            return Some(Refusal {
                status: Status::Failed,
                code: RECIPIENT_OPTED_OUT,
                message: format!("the recipient opted out (STOP) on {}", contact.channel),
            });
        }
        if check.whatsapp_free_form && contact.channel == sinch::Channel::WhatsApp {
            let window_ms = u64::try_from(self.whatsapp_window.as_millis()).unwrap_or(u64::MAX);
            let open = state
                .last_inbound_at_ms
                .is_some_and(|at| check.now_ms.saturating_sub(at) < window_ms);
            if !open {
                return Some(Refusal {
                    status: Status::Failed,
                    code: WHATSAPP_WINDOW_CLOSED,
                    message: "the recipient has not written in the last 24 hours; outside that window WhatsApp takes only approved templates (send a template: name, language, parameters)".to_owned(),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<'a>(contacts: &'a [ContactKey], answering: Option<&'a str>) -> Check<'a> {
        Check {
            contacts,
            whatsapp_free_form: false,
            answering,
            expires_at_ms: None,
            accepted_at_ms: None,
            now_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn the_allow_list_refuses_sends_outside_it_on_phone_channels_only() {
        let rules = SendRules {
            countries: Countries::of(["46", "358"]),
            ..SendRules::default()
        };
        let state = ContactState::default();
        let judge = |channel: &str, identity: &str, answering: Option<&str>| {
            let contact = [ContactKey::new(channel, identity)];
            rules
                .judge(&contact[0], &state, &check(&contact, answering))
                .map(|refusal| refusal.code)
        };
        assert_eq!(judge("SMS", "46701234567", None), None);
        assert_eq!(judge("WHATSAPP", "358401234567", None), None);
        assert_eq!(judge("SMS", "4791234567", None), Some(COUNTRY_NOT_ALLOWED));
        assert_eq!(judge("RCS", "+4791234567", None), Some(COUNTRY_NOT_ALLOWED));
        // Not a phone number: the list does not apply.
        assert_eq!(judge("MESSENGER", "4791234567", None), None);
        // A reply answers someone who wrote (a STOP's confirmation among them).
        assert_eq!(judge("SMS", "4791234567", Some("01IN")), None);
        // No list: any number.
        let open = SendRules::default();
        let contact = [ContactKey::new("SMS", "4791234567")];
        assert_eq!(
            open.judge(&contact[0], &state, &check(&contact, None)),
            None
        );
    }

    #[test]
    fn the_allow_list_comes_from_the_environment() {
        let env = |value: &'static str| {
            Env::from_lookup(move |name| (name == ALLOWED_COUNTRIES).then(|| value.to_owned()))
        };
        let countries = Countries::from_env(&env("46, +47,358,")).unwrap();
        assert_eq!(countries.prefixes(), ["46", "47", "358"]);
        assert_eq!(countries.describe(), "+46, +47, +358");
        assert!(countries.allows("+4791234567") && !countries.allows("4412345678"));
        for bad in ["46,sweden", "+046", "1234567"] {
            let error = Countries::from_env(&env(bad)).unwrap_err();
            assert_eq!(error.name, ALLOWED_COUNTRIES, "{bad}");
        }
    }
}
