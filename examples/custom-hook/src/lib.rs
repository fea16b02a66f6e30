//! A hook of your own, in the worker: what "integrate your application logic" looks like.
//!
//! | callback | this hook |
//! |---|---|
//! | an inbound `ORDER <number>` | answers with the order's status, from your system (here a fixed table) |
//! | any other inbound message | what the reply policy says (STOP, START, HELP, ...) |
//! | a delivery report that makes a message FAILED | a warning with the reason, for your alerting |
//!
//! It runs inside the worker's idempotent section: once per callback, again only if the
//! callback is retried after a failure (so anything it does elsewhere should be idempotent;
//! the ids it gets are stable).

#![warn(missing_docs)]

use pipeline::hook::{Decision, Hook, HookError, Inbound, Report};
use pipeline::reply::ReplyPolicy;
use pipeline::store::StatusChange;

/// Orders by number, as your own system would know them.
pub trait Orders: Send + Sync + 'static {
    /// The order's status, or `None` when there is no such order.
    fn status(&self, number: &str) -> Option<String>;
}

/// A fixed table of orders (the example's stand-in for your database or API).
#[derive(Debug, Clone, Default)]
pub struct FixedOrders(pub Vec<(String, String)>);

impl Orders for FixedOrders {
    fn status(&self, number: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| n == number)
            .map(|(_, status)| status.clone())
    }
}

/// The hook: order lookups first, the reply policy for everything else.
#[derive(Debug, Clone)]
pub struct OrderHook<O> {
    /// Where orders are looked up.
    pub orders: O,
    /// What answers every other message (STOP, HELP, the default reply).
    pub policy: ReplyPolicy,
}

impl<O: Orders> Hook for OrderHook<O> {
    async fn on_inbound(&self, message: Inbound<'_>) -> Result<Decision, HookError> {
        let text = message.message.text.as_deref().unwrap_or_default().trim();
        let number = text
            .split_once(char::is_whitespace)
            .filter(|(word, _)| word.eq_ignore_ascii_case("order"))
            .map(|(_, number)| number.trim());
        match number {
            // Never answer someone who opted out; the policy knows how to say nothing.
            Some(number) if !message.opted_out_before => {
                let reply = match self.orders.status(number) {
                    Some(status) => format!("Order {number}: {status}."),
                    None => format!("We could not find order {number}."),
                };
                Ok(Decision {
                    reply: Some(reply),
                    ..Decision::default()
                })
            }
            _ => self.policy.on_inbound(message).await,
        }
    }

    async fn on_status(&self, status: Report<'_>) -> Result<(), HookError> {
        let failed = match status.change {
            StatusChange::Created { status } => status.is_failure(),
            StatusChange::Advanced { to, .. } => to.is_failure(),
            StatusChange::Kept { .. } => false,
        };
        if failed {
            let reason = status.update.reason.as_ref().map(ToString::to_string);
            tracing::warn!(message = %status.key, reason, "a message FAILED");
        }
        Ok(())
    }
}
