//! The sending rules: whether a message may go to its recipient now. Checked twice, with the
//! same code: by the messages API at the door (a refusal costs nothing and is answered at once)
//! and by the worker just before the request leaves (an outbound send, a redrive days later, a
//! retry of either, and the pipeline's own replies), because a message may wait between the two.
//!
//! | rule | refused with | applies to |
//! |---|---|---|
//! | the recipient opted out (STOP, on any channel the message may go on) | `recipient_opted_out` | every send; a reply to the very message that opted out (its confirmation) excepted |
//! | WhatsApp's customer service window: no message from the recipient in the last 24 hours | `whatsapp_window_closed` | free-form WhatsApp messages (not templates) with no other channel to fall back on; replies on WhatsApp |
//! | its `ttl` or `expire_at` passed while it waited (a schedule, quiet hours, pacing, retries) | `expired`; it ends `EXPIRED` | sends of the messages API with a `ttl` or `expire_at` (checked when it leaves only) |
//!
//! At the door a refusal is a 422 with that code; at the moment of sending, the message ends
//! `FAILED` with the code as its reason, and nothing is sent. Sends of the messages API read
//! the contact again for it (one read per channel it may go on); a reply is judged on the
//! contact as the same invocation read it, with the answered message's own effect applied,
//! milliseconds before it leaves (a retry reads it again), so a reply costs no extra read.

use std::time::Duration;

use crate::status::Status;
use crate::store::{ContactKey, ContactState, Reason, Store, StoreError};

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
/// Refusal code: a free-form WhatsApp message outside the 24-hour window.
pub const WHATSAPP_WINDOW_CLOSED: &str = "whatsapp_window_closed";

/// Refusal code: the message's `ttl` or `expire_at` passed before it could leave (it ends
/// `EXPIRED`).
pub const EXPIRED: &str = "expired";
/// Reason code: canceled before it left (it ends `CANCELED`).
pub const CANCELED: &str = "canceled";

/// WhatsApp's customer service window.
pub const WHATSAPP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The rules' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// WhatsApp's customer service window.
    pub whatsapp_window: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            whatsapp_window: WHATSAPP_WINDOW,
        }
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
        WHATSAPP_WINDOW_CLOSED,
        EXPIRED,
        CANCELED,
    ]
    .contains(&reason.code.as_str())
}

impl Rules {
    /// The first rule `check` breaks, read from the store now; `None` when it may go.
    pub async fn check<S: Store>(
        &self,
        store: &S,
        check: &Check<'_>,
    ) -> Result<Option<Refusal>, StoreError> {
        if let Some(refusal) = expired(check) {
            return Ok(Some(refusal));
        }
        for contact in check.contacts {
            let state = store.contact(contact).await?;
            if let Some(refusal) = self.judge(contact, &state, check) {
                return Ok(Some(refusal));
            }
        }
        Ok(None)
    }

    /// The first rule broken for one contact whose state is known (read in this invocation).
    pub fn judge(
        &self,
        contact: &ContactKey,
        state: &ContactState,
        check: &Check<'_>,
    ) -> Option<Refusal> {
        if let Some(refusal) = expired(check) {
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
                message: format!(
                    "to: {} opted out (STOP) on {}",
                    contact.identity, contact.channel
                ),
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
                    message: format!(
                        "to: +{} has not written in the last 24 hours; outside that window WhatsApp takes only approved templates (send a template: name, language, parameters)",
                        contact.identity
                    ),
                });
            }
        }
        None
    }
}
