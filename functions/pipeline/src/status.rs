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
//! | 2 | | | `SCHEDULED` (waiting for `send_at`, or the end of quiet hours) |
//! | 3 | | | `UNKNOWN` (parked: the send may have reached Sinch, its answer was lost and no report came before the retries ran out; a later report still moves it) |
//! | 5 | | | `SENT` (Sinch accepted the send) |
//! | 10 | `QUEUED_ON_CHANNEL` | `Queued` | |
//! | 20 | `SWITCHING_CHANNEL` | `Dispatched` | |
//! | 25 | | `Unknown` | |
//! | 30 | `DELIVERED` (where a message on SMS or MMS ends: [`Status::settles_on`]) | | |
//! | 40, final | `READ`, `FAILED` | `Delivered`, `Failed`, `Expired`, `Rejected`, `Aborted`, `Cancelled`, `Deleted` | `FAILED` (Sinch refused the send, a rule forbade it, retries spent), `CANCELED` (canceled before it left), `EXPIRED` (its `ttl` / `expire_at` passed while it waited) |
//! | 0, never moves | anything else | anything else | |

use serde::{Deserialize, Serialize};
use sinch::callback::conversation::DeliveryStatus;
use sinch::callback::sms::SmsStatus;

sinch::open_enum! {
    /// A message's status, whoever reports it: ours, the Conversation API's, the SMS API's
    /// (which writes its statuses capitalized), on one scale ([`Status::progress`]).
    pub enum Status {
        /// The messages API took it.
        Accepted = "ACCEPTED",
        /// Waiting for its time (`send_at`, or the end of quiet hours).
        Scheduled = "SCHEDULED",
        /// Parked: its retries ran out and whether Sinch took it cannot be told; a late report
        /// still moves it.
        Unknown = "UNKNOWN",
        /// Sinch accepted the send.
        Sent = "SENT",
        QueuedOnChannel = "QUEUED_ON_CHANNEL",
        SwitchingChannel = "SWITCHING_CHANNEL",
        Delivered = "DELIVERED",
        Read = "READ",
        /// Final: Sinch (or a rule, or our retries) failed it.
        Failed = "FAILED",
        /// Final: canceled before it left.
        Canceled = "CANCELED",
        /// Final: its `ttl` or `expire_at` passed before it could leave.
        Expired = "EXPIRED",
        SmsQueued = "Queued",
        SmsDispatched = "Dispatched",
        /// The operator could not say; it may still report a final status.
        SmsUnknown = "Unknown",
        SmsDelivered = "Delivered",
        SmsFailed = "Failed",
        SmsExpired = "Expired",
        SmsRejected = "Rejected",
        SmsAborted = "Aborted",
        SmsCancelled = "Cancelled",
        SmsDeleted = "Deleted",
    }
}

impl Status {
    /// How far along it is (the table at the top of this module).
    pub fn progress(&self) -> Progress {
        match self {
            Status::Accepted => Progress::ACCEPTED,
            Status::Scheduled => Progress::SCHEDULED,
            Status::Unknown => Progress::UNKNOWN,
            Status::Sent => Progress::SENT,
            Status::QueuedOnChannel | Status::SmsQueued => Progress::new(10, false),
            Status::SwitchingChannel | Status::SmsDispatched => Progress::new(20, false),
            Status::SmsUnknown => Progress::new(25, false),
            Status::Delivered => Progress::new(30, false),
            Status::Read
            | Status::Failed
            | Status::Canceled
            | Status::Expired
            | Status::SmsDelivered
            | Status::SmsFailed
            | Status::SmsExpired
            | Status::SmsRejected
            | Status::SmsAborted
            | Status::SmsCancelled
            | Status::SmsDeleted => Progress::FAILED,
            Status::Other(_) => Progress::new(0, false),
        }
    }

    /// Whether nothing moves it any more.
    pub fn is_final(&self) -> bool {
        self.progress().terminal
    }

    /// Whether it is where the message ends on `channel` (the one it was reported from, else
    /// the one asked for): final, or Conversation `DELIVERED` on a channel that reports no
    /// `READ` (SMS, MMS). A `READ` that still came would only move the status further.
    pub fn settles_on(&self, channel: Option<&str>) -> bool {
        self.is_final()
            || (*self == Status::Delivered
                && channel.is_some_and(|channel| !sinch::Channel::from(channel).reports_read()))
    }

    /// Whether it ended without reaching the recipient (`FAILED`, SMS `Failed`, `Expired`,
    /// `Rejected`, ...): final, and neither `READ` nor SMS `Delivered`.
    pub fn is_failure(&self) -> bool {
        self.is_final() && !matches!(self, Status::Read | Status::SmsDelivered)
    }
}

impl From<&DeliveryStatus> for Status {
    fn from(status: &DeliveryStatus) -> Self {
        Status::from(status.as_str())
    }
}

impl From<&SmsStatus> for Status {
    fn from(status: &SmsStatus) -> Self {
        Status::from(status.as_str())
    }
}

/// How many of `statuses` stand at each status, in the order each was first seen (a batch's
/// counts, from either store).
pub fn count(statuses: impl IntoIterator<Item = Status>) -> Vec<(Status, u32)> {
    let mut counts: Vec<(Status, u32)> = Vec::new();
    for status in statuses {
        match counts.iter_mut().find(|(held, _)| *held == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    counts
}

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

    /// [`Status::Accepted`]: taken by us, not yet handed to Sinch.
    pub const ACCEPTED: Progress = Progress::new(1, false);
    /// [`Status::Scheduled`]: waiting for its time.
    pub const SCHEDULED: Progress = Progress::new(2, false);
    /// [`Status::Unknown`]: parked, outcome not known.
    pub const UNKNOWN: Progress = Progress::new(3, false);
    /// [`Status::Sent`]: Sinch accepted the send.
    pub const SENT: Progress = Progress::new(5, false);
    /// Every final status.
    pub const FAILED: Progress = Progress::new(TERMINAL_RANK, true);

    /// Whether a status at `self` moves to `next`.
    pub fn advances_to(self, next: Progress) -> bool {
        !self.terminal && next.rank > self.rank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_statuses_only_move_forward() {
        let conversation = |s: &DeliveryStatus| Status::from(s).progress();
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
        let conversation = |s: &DeliveryStatus| Status::from(s).progress();
        let sms = |s: &SmsStatus| Status::from(s).progress();
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
    fn every_status_known_has_its_rank_and_reads_back() {
        for wire in Status::KNOWN {
            let status = Status::from(*wire);
            assert_eq!(status.as_str(), *wire);
            assert!(status.progress().rank > 0, "{wire}");
            assert_eq!(
                Progress::from_rank(status.progress().rank),
                status.progress()
            );
        }
        assert_eq!(Status::from("NEW_ONE").progress().rank, 0);
    }

    #[test]
    fn sms_final_statuses_are_terminal() {
        let sms = |s: &SmsStatus| Status::from(s).progress();
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
