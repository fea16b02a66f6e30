//! Erasure: `DELETE /contacts/{channel}/{identity}` removes what names a person, keeping only
//! what keeps them opted out.
//!
//! | request | answer |
//! |---|---|
//! | `DELETE /contacts/{channel}/{identity}` (the identity as for `/optouts`) | 200 `{"reference", "channel", "erased": {"inbound", "messages", "canceled"}, "opt_out_kept", "complete": true}`: first the erasure's mark, so that no send accepted before it leaves (one waiting in a queue, a schedule or a batch's chunk ends `CANCELED`, `recipient_erased`, when it would leave); our messages to them that have not left `CANCELED` at once and their schedules removed; inbound messages removed, message states stripped of the recipient, texts and metadata (an SMS report keyed by the number removed), the contact removed, an opt-out kept as a keyed hash; the `Contact Erased` event (no personal data) |
//! | more than the request's time allows (thousands of items) | 202 the same, `complete: false`: what was done stays done; repeat the request until 200 |
//! | a bad channel or identity | 400 `invalid_channel` / `invalid_identity` |
//! | the store unavailable | 503 `unavailable`, `Retry-After` (repeat it: erasing twice is erasing) |
//!
//! What stays: message states keep their status and history (no identity: the team's own
//! accounting), an opt-out stays as `optout#<HMAC-SHA256(CONTACT_HASH_KEY, channel/identity)>`
//! (checked on every send, listed nowhere), the erasure's time as `erased#<the same hash>` for
//! 60 days (`pipeline::store::ERASURE_REACH`), and the idempotency records (hashes and our
//! ids; refusals never name the recipient). `docs/consent.md` lists every place personal data
//! lives and what erasure does to each. A person on several channels (SMS and WhatsApp) is erased channel by channel.

use std::time::{Duration, Instant};

use pipeline::clock::unix_millis;
use pipeline::jobs::schedule_name;
use pipeline::queue::Queue;
use pipeline::schedule::Scheduler;
use pipeline::store::{ContactKey, Erased, Store};
use serde_json::json;

use crate::{Answer, Api, ApiError};

/// Items erased a store call.
const ITEMS_A_CALL: usize = 100;
/// How long one request erases before it answers 202.
const BUDGET: Duration = Duration::from_secs(5);

/// `DELETE /contacts/{channel}/{identity}`.
pub async fn erase<S: Store, Q: Queue, C: Scheduler>(
    api: &Api<S, Q, C>,
    contact: &ContactKey,
) -> Answer {
    let started = Instant::now();
    let reference = format!("era_{}", ulid::Ulid::generate());
    let mut total = Erased::default();
    loop {
        let now_ms = unix_millis(api.clock.now());
        let erased = match api
            .store
            .erase_contact(contact, &reference, now_ms, ITEMS_A_CALL)
            .await
        {
            Ok(erased) => erased,
            Err(error) => return ApiError::unavailable_during("erase the contact", &error).into(),
        };
        for id in &erased.canceled {
            if let Err(error) = api.scheduler.cancel(&schedule_name(id)).await {
                // When it fires, its job finds the message ended and sends nothing.
                tracing::warn!(%error, %id, "canceled by an erasure, but its schedule could not be removed");
            }
        }
        total.inbound += erased.inbound;
        total.messages += erased.messages;
        total.canceled.extend(erased.canceled);
        total.opt_out_kept |= erased.opt_out_kept;
        total.complete = erased.complete;
        if erased.complete || started.elapsed() >= BUDGET {
            break;
        }
    }
    tracing::info!(
        %reference,
        channel = %contact.channel,
        inbound = total.inbound,
        messages = total.messages,
        canceled = total.canceled.len(),
        opt_out_kept = total.opt_out_kept,
        complete = total.complete,
        "contact erased"
    );
    Answer::json(
        if total.complete { 200 } else { 202 },
        json!({
            "reference": reference,
            "channel": contact.channel,
            "erased": {"inbound": total.inbound, "messages": total.messages, "canceled": total.canceled.len()},
            "opt_out_kept": total.opt_out_kept,
            "complete": total.complete,
        }),
    )
}
