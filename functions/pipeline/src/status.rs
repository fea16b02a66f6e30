//! Delivery status that only moves forward.
//!
//! Delivery reports arrive late, twice, and out of order: a `QUEUED_ON_CHANNEL` can come after
//! `DELIVERED`. A message's status must end at its furthest state, so every status has a rank,
//! and a report only moves the status if it ranks higher. `READ` and `FAILED` (and the SMS
//! failures and `Delivered`) are terminal: once there, the status stays, whatever follows.
//! Every report still lands in the history.
//!
//! | rank | Conversation | SMS | ours |
//! |---|---|---|---|
//! | 1 | | | `ACCEPTED` (the messages API took it) |
//! | 3 | | | `UNKNOWN` (parked: the send may have reached Sinch, its answer was lost and no report came before the retries ran out; a later report still moves it) |
//! | 5 | | | `SENT` (Sinch accepted the send) |
//! | 10 | `QUEUED_ON_CHANNEL` | `Queued` | |
//! | 20 | `SWITCHING_CHANNEL` | `Dispatched` | |
//! | 25 | | `Unknown` | |
//! | 30 | `DELIVERED` | | |
//! | 40, final | `READ`, `FAILED` | `Delivered`, `Failed`, `Expired`, `Rejected`, `Aborted`, `Cancelled`, `Deleted` | `FAILED` (Sinch refused the send) |
//! | 0, never moves | anything else | anything else | |

use serde::{Deserialize, Serialize};
use sinch::callback::conversation::DeliveryStatus;
use sinch::callback::sms::SmsStatus;

/// How far along a status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Higher is further. 0 for statuses we do not know: they never move a status.
    pub rank: u8,
    /// Nothing moves a terminal status.
    pub terminal: bool,
}

/// The rank of every terminal status, and the highest there is: once a status is terminal,
/// nothing ranks above it. Stores that keep one status per rank rely on this.
pub const TERMINAL_RANK: u8 = 40;

/// Our own statuses, below every status Sinch reports: a send we took (`ACCEPTED`, the
/// messages API) and a send Sinch took (`SENT`). Sinch sends no report for its implicit first
/// state, so these are how a message starts its history.
pub const ACCEPTED: &str = "ACCEPTED";
pub const SENT: &str = "SENT";
/// Where a send is parked when whether Sinch took it cannot be told: its answer was lost and no
/// delivery report named it before its retries ran out. Not final: a late report moves it.
pub const UNKNOWN: &str = "UNKNOWN";
/// What a send Sinch refused for good ends as.
pub const FAILED: &str = "FAILED";

impl Progress {
    const fn new(rank: u8, terminal: bool) -> Self {
        Self { rank, terminal }
    }

    /// The progress of a status stored by rank alone.
    pub const fn from_rank(rank: u8) -> Self {
        Self {
            rank,
            terminal: rank >= TERMINAL_RANK,
        }
    }

    /// [`ACCEPTED`]: taken by us, not yet handed to Sinch.
    pub const ACCEPTED: Progress = Progress::new(1, false);
    /// [`UNKNOWN`]: parked, outcome not known.
    pub const UNKNOWN: Progress = Progress::new(3, false);
    /// [`SENT`]: Sinch accepted the send.
    pub const SENT: Progress = Progress::new(5, false);
    /// [`FAILED`], final.
    pub const FAILED: Progress = Progress::new(TERMINAL_RANK, true);

    /// Whether a status at `self` moves to `next`.
    pub fn advances_to(self, next: Progress) -> bool {
        !self.terminal && next.rank > self.rank
    }
}

/// Conversation API message status.
pub fn conversation(status: &DeliveryStatus) -> Progress {
    match status {
        DeliveryStatus::QueuedOnChannel => Progress::new(10, false),
        DeliveryStatus::SwitchingChannel => Progress::new(20, false),
        DeliveryStatus::Delivered => Progress::new(30, false),
        DeliveryStatus::Read | DeliveryStatus::Failed => Progress::new(TERMINAL_RANK, true),
        DeliveryStatus::Other(_) => Progress::new(0, false),
    }
}

/// SMS API recipient status.
pub fn sms(status: &SmsStatus) -> Progress {
    match status {
        SmsStatus::Queued => Progress::new(10, false),
        SmsStatus::Dispatched => Progress::new(20, false),
        // The operator could not say; it may still report a final status.
        SmsStatus::Unknown => Progress::new(25, false),
        SmsStatus::Delivered
        | SmsStatus::Failed
        | SmsStatus::Aborted
        | SmsStatus::Cancelled
        | SmsStatus::Rejected
        | SmsStatus::Deleted
        | SmsStatus::Expired => Progress::new(TERMINAL_RANK, true),
        SmsStatus::Other(_) => Progress::new(0, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_statuses_only_move_forward() {
        let queued = conversation(&DeliveryStatus::QueuedOnChannel);
        let delivered = conversation(&DeliveryStatus::Delivered);
        let read = conversation(&DeliveryStatus::Read);
        let failed = conversation(&DeliveryStatus::Failed);
        assert!(Progress::ACCEPTED.advances_to(Progress::SENT));
        assert!(
            Progress::SENT.advances_to(queued),
            "every report moves a sent message"
        );
        assert!(
            !queued.advances_to(Progress::SENT),
            "a late SENT never wins"
        );
        assert!(queued.advances_to(delivered));
        assert!(delivered.advances_to(read));
        assert!(queued.advances_to(read), "DELIVERED may be skipped");
        assert!(
            !delivered.advances_to(queued),
            "a late QUEUED_ON_CHANNEL never wins"
        );
        assert!(
            !read.advances_to(failed) && !failed.advances_to(read),
            "both final"
        );
        assert!(!read.advances_to(delivered));
        let other = conversation(&DeliveryStatus::Other("NEW".into()));
        assert!(
            !queued.advances_to(other),
            "unknown statuses never move a status"
        );
    }

    #[test]
    fn terminal_is_exactly_the_top_rank() {
        let all = [
            Progress::ACCEPTED,
            Progress::UNKNOWN,
            Progress::SENT,
            Progress::FAILED,
            conversation(&DeliveryStatus::QueuedOnChannel),
            conversation(&DeliveryStatus::SwitchingChannel),
            conversation(&DeliveryStatus::Delivered),
            conversation(&DeliveryStatus::Read),
            conversation(&DeliveryStatus::Failed),
            sms(&SmsStatus::Queued),
            sms(&SmsStatus::Dispatched),
            sms(&SmsStatus::Unknown),
            sms(&SmsStatus::Delivered),
            sms(&SmsStatus::Expired),
        ];
        for progress in all {
            assert_eq!(Progress::from_rank(progress.rank), progress);
        }
    }

    #[test]
    fn sms_final_statuses_are_terminal() {
        for status in [
            SmsStatus::Delivered,
            SmsStatus::Failed,
            SmsStatus::Aborted,
            SmsStatus::Cancelled,
            SmsStatus::Rejected,
            SmsStatus::Deleted,
            SmsStatus::Expired,
        ] {
            assert!(sms(&status).terminal, "{status}");
            assert!(sms(&SmsStatus::Dispatched).advances_to(sms(&status)));
        }
        assert!(!sms(&SmsStatus::Delivered).advances_to(sms(&SmsStatus::Dispatched)));
        assert!(sms(&SmsStatus::Queued).advances_to(sms(&SmsStatus::Unknown)));
    }
}
