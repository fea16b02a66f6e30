//! The guards' sliding-window counter: what [`super::CounterStore::count_in_window`] stores
//! and decides, the same in both stores.

/// A sliding-window counter as stored: the current fixed window (its index, `now / window`)
/// and its count, and the count of the window before it. The estimate over the sliding window
/// ending now weighs the previous window by the part of it still inside (Cloudflare's sliding
/// window counter): `previous * (window - elapsed) / window + count`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowState {
    /// The current window's index (`now_ms / window_ms`).
    pub window: u64,
    /// What it counted.
    pub count: u32,
    /// What the window before it counted.
    pub previous: u32,
}

/// What [`super::CounterStore::count_in_window`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted: under the limit.
    Counted,
    /// Not counted: one more would be over the limit.
    Limited {
        /// When the estimate will have room again, from now.
        retry_after_ms: u64,
    },
}

/// One more in a sliding window of `window_ms` holding at most `limit`: the state to store,
/// or how long until there is room. `stored` is the state read (its window may be old).
pub fn slide(
    stored: Option<WindowState>,
    now_ms: u64,
    window_ms: u64,
    limit: u32,
) -> Result<WindowState, u64> {
    let window_ms = window_ms.max(1);
    let index = now_ms / window_ms;
    let elapsed = now_ms % window_ms;
    let (count, previous) = match stored {
        Some(state) if state.window == index => (state.count, state.previous),
        Some(state) if state.window + 1 == index => (0, state.count),
        _ => (0, 0),
    };
    // previous * (window - elapsed) / window + count + 1 <= limit, in integers.
    let weighted = u128::from(previous) * u128::from(window_ms - elapsed);
    let room = (u128::from(limit)).saturating_sub(u128::from(count) + 1) * u128::from(window_ms);
    if u64::from(count) < u64::from(limit) && weighted <= room {
        return Ok(WindowState {
            window: index,
            count: count + 1,
            previous,
        });
    }
    if u64::from(count) + 1 > u64::from(limit) || previous == 0 {
        // Not before the next window.
        return Err(window_ms - elapsed);
    }
    // The previous window's weight falls as time passes: room once
    // previous * (window - e) <= room, that is e >= window - room / previous.
    let needed = u128::from(window_ms) - room / u128::from(previous);
    Err(u64::try_from(needed.saturating_sub(u128::from(elapsed)))
        .unwrap_or(window_ms)
        .max(1))
}
