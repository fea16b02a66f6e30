//! The hook: the team's own logic, inside the worker.
//!
//! The worker calls a [`Hook`] inside the idempotent section of each callback:
//!
//! | callback | called | the hook answers |
//! |---|---|---|
//! | an inbound message (any channel) | [`Hook::on_inbound`], before the message is stored (it is stored with the opt-out change the hook decides, in one write), and before any reply | a [`Decision`]: a reply and an opt-out change (the default: none) |
//! | a delivery report | [`Hook::on_status`], once per message it names, after the status is written; the report is claimed (so the hook sees it once) unless [`Hook::wants_status`] says no and the report is idempotent by itself | nothing |
//! | any other callback (contact events, opt-in results, unknown kinds, ...) | [`Hook::on_other`], only when [`Hook::wants_other`] says so (they are then claimed like the others) | nothing |
//!
//! Every method has a default that does nothing, so a hook implements only what it needs. The
//! reply policy ([`crate::reply::ReplyPolicy`]: keywords, opt-outs, a default reply) is the
//! default hook; a hook of your own can keep it by holding one and asking it first.
//!
//! **Exactly once, in effect.** A callback's hook runs once per idempotency key in the normal
//! case. If the hook (or anything after it) fails transiently, the claim is released and the
//! callback runs again, hook included: make its effects idempotent (the ids passed in are
//! stable: Sinch's message id, our message id). A [`HookError::Permanent`] parks the callback
//! in the dead-letter queue with reason `hook_failed`; a [`HookError::Transient`] retries it.
//!
//! `examples/custom-hook` builds a worker Lambda with a hook of its own.

use std::future::Future;

use sinch::callback::Callback;

use crate::store::{InboundRecord, MessageKey, StatusChange, StatusUpdate};
use serde::Deserialize;

/// What a keyword does besides replying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing besides the reply.
    #[default]
    None,
    /// Opt the contact out: nothing more is sent to them but this reply.
    OptOut,
    /// Opt the contact back in.
    OptIn,
}

/// What to do with one inbound message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// What to do to the contact's opt-out.
    pub action: Action,
    /// The text to reply with, if any.
    pub reply: Option<String>,
}

/// An inbound message, as the hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The message as stored (sender, channel, text, media URLs, ...).
    pub message: &'a InboundRecord,
    /// Whether the sender had opted out before this message.
    pub opted_out_before: bool,
}

/// A delivery report applied to a message.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    /// Which message.
    pub key: &'a MessageKey,
    /// The report.
    pub update: &'a StatusUpdate,
    /// What it did to the message's status (moved, or kept because it came late).
    pub change: &'a StatusChange,
}

/// Why the hook failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// It may work later (a dependency is down): the callback is retried.
    #[error("hook failed, to be retried: {0}")]
    Transient(String),
    /// It never will: the callback is dead-lettered (reason `hook_failed`).
    #[error("hook failed for good: {0}")]
    Permanent(String),
}

/// The team's logic inside the worker. See the module documentation for when each is called.
pub trait Hook: Send + Sync + 'static {
    /// An inbound message: what to answer, and whether it opts the sender out or back in.
    /// Defaults to nothing.
    fn on_inbound(
        &self,
        message: Inbound<'_>,
    ) -> impl Future<Output = Result<Decision, HookError>> + Send {
        let _ = message;
        async { Ok(Decision::default()) }
    }

    /// A delivery report was applied.
    fn on_status(&self, status: Report<'_>) -> impl Future<Output = Result<(), HookError>> + Send {
        let _ = status;
        async { Ok(()) }
    }

    /// Any other callback (only if [`Hook::wants_other`]).
    fn on_other(&self, callback: &Callback) -> impl Future<Output = Result<(), HookError>> + Send {
        let _ = callback;
        async { Ok(()) }
    }

    /// Whether [`Hook::on_other`] wants the callbacks the pipeline itself has no use for. Only
    /// then are they claimed (a DynamoDB write each), so that the hook sees each once.
    fn wants_other(&self) -> bool {
        false
    }

    /// Whether [`Hook::on_status`] does anything. While it does (the default: a hook cannot
    /// tell the worker it left `on_status` alone), each delivery report is claimed, two
    /// DynamoDB writes, so that the hook sees a report once. A hook that leaves `on_status`
    /// alone says `false`, and the Conversation reports whose status write is idempotent by
    /// itself (our message's, with their event's time:
    /// [`crate::handlers::delivery::idempotent_alone`]) go unclaimed: the history keeps one
    /// entry per report, the status moves forward only, the batch's tallies and finals are
    /// sets, so a repeat writes nothing new (a failed conditional write, and for a batch's
    /// message the tally and finals again). Other reports are claimed whatever the hook says.
    fn wants_status(&self) -> bool {
        true
    }
}
