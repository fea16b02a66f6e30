//! Sinch's own opt-outs and opt-ins: `opt_out_notification` and `opt_in_notification` (the
//! OPT_OUT and OPT_IN triggers) feed the same state as keywords and the opt-out API.
//!
//! | callback | effect |
//! |---|---|
//! | `opt_out_notification`, `status` `OPT_OUT_SUCCEEDED`, a channel and an identity | the contact is opted out (`by` `sinch`, reference `sinch_<request_id>`), unless they already are |
//! | `opt_in_notification`, `status` `OPT_IN_SUCCEEDED`, a channel and an identity | the contact is opted back in, if they were out |
//! | any other status (`..._FAILED`, `..._STATUS_UNSPECIFIED`), or no channel or identity | nothing: [`Handled::Ignored`] |
//!
//! A notification delivered twice changes nothing the second time (the write is conditional on
//! the state it changes).

use sinch::callback::conversation::{Envelope, OptNotification};

use super::{Handled, HandlerError, Services};
use crate::clock::unix_millis;
use crate::hook::Hook;
use crate::store::{ContactKey, OptSource, OptWrite, Store};

/// Applies one notification: `opted_out` for `opt_out_notification`, else `opt_in_...`.
pub async fn apply<S: Store, H: Hook>(
    services: &Services<S, H>,
    envelope: &Envelope,
    notification: &OptNotification,
    opted_out: bool,
) -> Result<Handled, HandlerError> {
    let (kind, succeeded) = if opted_out {
        ("conversation.opt_out_notification", "OPT_OUT_SUCCEEDED")
    } else {
        ("conversation.opt_in_notification", "OPT_IN_SUCCEEDED")
    };
    let identity = notification.identity.trim();
    let (Some(channel), false) = (&notification.channel, identity.is_empty()) else {
        return Ok(Handled::Ignored { kind: kind.into() });
    };
    if notification.status != succeeded {
        return Ok(Handled::Ignored { kind: kind.into() });
    }
    let contact = ContactKey::new(channel.as_str(), identity);
    let at_ms = envelope
        .event_time
        .or(envelope.accepted_time)
        .map(|time| unix_millis(time.into()))
        .unwrap_or_else(|| unix_millis(services.clock.now()));
    let reference = if notification.request_id.is_empty() {
        format!("sinch_{at_ms}")
    } else {
        format!("sinch_{}", notification.request_id)
    };
    let changed = services
        .store
        .set_opt_out(&OptWrite {
            contact: &contact,
            opted_out,
            source: &OptSource::Sinch,
            reference: &reference,
            at_ms,
        })
        .await?;
    tracing::info!(channel = %contact.channel, opted_out, changed, "opt-out from Sinch");
    Ok(Handled::Opt {
        contact: contact.to_string(),
        opted_out,
        changed,
    })
}
