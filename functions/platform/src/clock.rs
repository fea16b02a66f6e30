//! The time as the pipeline sees it. Signature freshness and receive stamps depend on it, so it
//! is a value handed to whoever needs it, never a hidden `SystemTime::now()`.

use std::time::SystemTime;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    /// The operating system's wall clock.
    #[default]
    System,
    /// A fixed instant, for tests and for replaying old callbacks.
    Fixed(SystemTime),
}

impl Clock {
    /// The current time, as this clock tells it.
    pub fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Fixed(at) => *at,
        }
    }
}

/// The `Instant` by which work must be done when the Lambda invocation ends at
/// `lambda_deadline_ms` (Unix ms, as the runtime gives it), keeping `margin` back for what must
/// still happen after (answering, dead-lettering).
pub fn deadline_from(lambda_deadline_ms: u64, margin: std::time::Duration) -> tokio::time::Instant {
    let now_ms = unix_millis(SystemTime::now());
    let remaining = std::time::Duration::from_millis(lambda_deadline_ms.saturating_sub(now_ms));
    tokio::time::Instant::now() + remaining.saturating_sub(margin)
}

/// Unix milliseconds; times before the epoch count as 0.
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds as RFC 3339 (UTC, e.g. `2026-12-01T20:01:56.123Z`); empty if out of range.
pub fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
