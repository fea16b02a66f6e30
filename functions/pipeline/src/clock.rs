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
    pub fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Fixed(at) => *at,
        }
    }
}

/// Unix milliseconds; times before the epoch count as 0.
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
