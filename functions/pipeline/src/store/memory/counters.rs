//! MemoryStore's part: counters held across every caller: the guards' windows and caps, the pacing timelines' slots.

use super::*;

impl CounterStore for MemoryStore {
    async fn count_in_window(
        &self,
        key: &str,
        window_ms: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Counted, StoreError> {
        let mut state = self.lock();
        let stored = state.windows.get(key).copied();
        Ok(
            match crate::store::slide(stored, now_ms, window_ms, limit) {
                Ok(next) => {
                    state.windows.insert(key.to_owned(), next);
                    Counted::Counted
                }
                Err(retry_after_ms) => Counted::Limited { retry_after_ms },
            },
        )
    }

    async fn count_down(&self, key: &str, n: u32) -> Result<(), StoreError> {
        if let Some(count) = self.lock().counts.get_mut(key) {
            *count = count.saturating_sub(n);
        }
        Ok(())
    }

    async fn count_up_to(
        &self,
        key: &str,
        n: u32,
        cap: u32,
        expires_at_s: u64,
    ) -> Result<u32, StoreError> {
        // Keys name their period, so nothing here needs forgetting (DynamoDB's TTL only
        // keeps the table small).
        let _ = expires_at_s;
        let mut state = self.lock();
        let count = state.counts.entry(key.to_owned()).or_default();
        let added = n.min(cap.saturating_sub(*count));
        *count += added;
        Ok(added)
    }

    async fn take_slot(
        &self,
        timeline: &str,
        interval_us: u64,
        now_us: u64,
        horizon_us: Option<u64>,
    ) -> Result<Slot, StoreError> {
        let mut state = self.lock();
        let next = state.timelines.entry(timeline.to_owned()).or_insert(0);
        let slot = (*next).max(now_us);
        if horizon_us.is_some_and(|horizon| slot > now_us.saturating_add(horizon)) {
            return Ok(Slot::Busy { next_us: slot });
        }
        *next = slot.saturating_add(interval_us);
        Ok(Slot::Taken(slot))
    }
}
