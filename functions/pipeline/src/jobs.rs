//! The jobs the messages API queues and the worker runs: the contract between the two.
//!
//! A job is an [`Envelope`](crate::envelope::Envelope) whose [`JOB`](crate::envelope::JOB)
//! attribute names its kind, with its body as JSON:
//!
//! | kind | body | queued by | when | the worker |
//! |---|---|---|---|---|
//! | [`SEND_JOB`] | [`OutboundJob`] | `POST /messages`; a batch's fan-out | now on its lane's queue, or scheduled ([`schedule_name`]) for `send_at` / quiet hours | [`crate::handlers::outbound`] |
//! | [`FAN_OUT_JOB`] | [`FanOut`] | `POST /batches`, one per chunk of at most [`CHUNK_RECIPIENTS`] [`ChunkEntry`]s | now, or scheduled for the batch's `send_at` | [`crate::handlers::fan_out`] |
//! | [`CANCEL_BATCH_JOB`] | [`FanOut`] | `DELETE /batches/{id}`, one per chunk | now | [`crate::handlers::fan_out`] |
//!
//! A body the worker cannot read ([`BadJob`]) is not retried: it is not a job of this version.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use sinch::client::AppMessage;

use crate::quiet_hours::QuietHours;
use crate::schedule::Lane;
use crate::store::ContactKey;

/// The [`JOB`](envelope::JOB) attribute's value for a send.
pub const SEND_JOB: &str = "send";

/// One send, as queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundJob {
    /// Our message id.
    pub id: String,
    /// The recipient as asked (an E.164 number, or another channel's identity).
    pub to: String,
    /// Which API sends it, with what.
    pub route: Route,
    /// When it may no longer leave (`ttl` after acceptance, or `expire_at`): past it, the
    /// message ends `EXPIRED`, unsent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// The batch it belongs to: a canceled batch's messages never leave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// The lane it goes by ([`crate::pacing`]).
    #[serde(default)]
    pub lane: Lane,
    /// Its quiet hours (the request's, or the deployment's), judged again when it is about to
    /// leave: a send that waited into them (for its slot, a retry) waits until they end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
}

/// Which API sends it, with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "api", rename_all = "snake_case")]
pub enum Route {
    /// Conversation `messages:send`, to the channel identity on `channel`, then `fallback`.
    Conversation {
        /// The Conversation app to send from.
        app_id: String,
        /// The channel asked for (`WHATSAPP`, `SMS`, ...).
        channel: String,
        /// Channels to fall back to, in order.
        #[serde(default)]
        fallback: Vec<String>,
        /// The message, as the caller gave it.
        message: AppMessage,
        /// Channel properties, e.g. `SMS_SENDER`.
        #[serde(default)]
        channel_properties: BTreeMap<String, String>,
        /// How long Sinch keeps trying, in seconds.
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
    /// An SMS API batch to one recipient, with per-recipient delivery reports.
    Sms {
        /// The sender number or id.
        from: String,
        /// The text.
        body: String,
        /// How long Sinch keeps trying, in seconds (sent as `expire_at`).
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
}

impl OutboundJob {
    /// When it was accepted: the time in its id's ULID (`msg_<ULID>`, or a batch's
    /// `msg_<batch ULID>_<k>`); `None` for an id of another form.
    pub fn accepted_at_ms(&self) -> Option<u64> {
        let ulid = self.id.strip_prefix("msg_")?.split('_').next()?;
        ulid::Ulid::from_string(ulid)
            .ok()
            .map(|ulid| ulid.timestamp_ms())
    }

    /// The contact it goes to, as the store keys contacts (the SMS API shares `SMS`).
    pub fn contact(&self) -> ContactKey {
        match &self.route {
            Route::Conversation { channel, .. } => ContactKey::new(channel, &self.to),
            Route::Sms { .. } => ContactKey::new("SMS", &self.to),
        }
    }

    /// The recipient on every channel it may go on (the opt-out rule reads each).
    pub fn contacts(&self) -> Vec<ContactKey> {
        match &self.route {
            Route::Conversation {
                channel, fallback, ..
            } => std::iter::once(channel)
                .chain(fallback)
                .map(|channel| ContactKey::new(channel, &self.to))
                .collect(),
            Route::Sms { .. } => vec![self.contact()],
        }
    }

    /// Whether WhatsApp's window applies: free-form content on WhatsApp with no fallback.
    pub fn whatsapp_free_form(&self) -> bool {
        matches!(&self.route, Route::Conversation { channel, fallback, message, .. }
            if channel == "WHATSAPP" && fallback.is_empty() && !message.is_template())
    }
}

/// The [`JOB`](envelope::JOB) attribute's value for a chunk's fan-out.
pub const FAN_OUT_JOB: &str = "fan_out";
/// The [`JOB`](envelope::JOB) attribute's value for a chunk's cancel.
pub const CANCEL_BATCH_JOB: &str = "cancel_batch";

/// The most recipients a chunk holds.
pub const CHUNK_RECIPIENTS: usize = 500;

/// One chunk of a batch, as a job (`fan_out` or `cancel_batch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOut {
    /// The batch's id.
    pub batch: String,
    /// Which chunk of its recipients (from 0).
    pub chunk: u32,
}

/// One recipient of a batch, as its chunk stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Its place among the batch's accepted recipients (its message id's suffix).
    pub index: u32,
    /// The channel asked for.
    pub channel: String,
    /// Its metadata (the batch's, merged with its own), JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// When it is due to leave (Unix ms): the batch's `send_at`, or later in quiet hours.
    pub due_ms: u64,
    /// Its send, ready to queue.
    pub job: OutboundJob,
}

/// The name of a message's schedule (what a cancel removes).
pub fn schedule_name(id: &str) -> String {
    format!("msg-{id}")
}

/// Why a queued job could not even be read.
#[derive(Debug, thiserror::Error)]
#[error("the queued send is not a job of this version: {0}")]
pub struct BadJob(#[from] serde_json::Error);

/// Reads a job from its queued body.
pub fn parse(body: &[u8]) -> Result<OutboundJob, BadJob> {
    Ok(serde_json::from_slice(body)?)
}
