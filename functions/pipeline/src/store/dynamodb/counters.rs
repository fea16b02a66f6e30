//! DynamoStore's part: counters held across every caller: the guards' windows and caps, the pacing timelines' slots.

use super::*;

impl CounterStore for DynamoStore {
    async fn count_in_window(
        &self,
        key: &str,
        window_ms: u64,
        limit: u32,
        now_ms: u64,
    ) -> Result<Counted, StoreError> {
        let pk = keys::guard(key);
        // Read, decide, write on the condition that nothing moved since the read; a lost race
        // reads again. Past a few, the key is as busy as a limit exists to stop.
        for _ in 0..GUARD_ATTEMPTS {
            let item = self.get("count in window", pk.clone()).await?;
            let stored = item.as_ref().and_then(|item| {
                Some(WindowState {
                    window: number(item, "window")?,
                    count: u32::try_from(number(item, "count")?).ok()?,
                    previous: u32::try_from(number(item, "previous").unwrap_or(0)).ok()?,
                })
            });
            let next = match crate::store::slide(stored, now_ms, window_ms, limit) {
                Ok(next) => next,
                Err(retry_after_ms) => return Ok(Counted::Limited { retry_after_ms }),
            };
            let expires_at = (next.window + 2).saturating_mul(window_ms) / 1000 + 1;
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .update_expression(
                    "SET #window = :window, #count = :count, previous = :previous, \
                     expires_at = :expires",
                )
                .expression_attribute_names("#window", "window")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":window", n(next.window))
                .expression_attribute_values(":count", n(u64::from(next.count)))
                .expression_attribute_values(":previous", n(u64::from(next.previous)))
                .expression_attribute_values(":expires", n(expires_at));
            let update = match stored {
                Some(old) => update
                    .condition_expression("#window = :old_window AND #count = :old_count")
                    .expression_attribute_values(":old_window", n(old.window))
                    .expression_attribute_values(":old_count", n(u64::from(old.count))),
                None => update.condition_expression("attribute_not_exists(pk)"),
            };
            if conditional("count in window", update.send().await)?.is_some() {
                return Ok(Counted::Counted);
            }
        }
        Ok(Counted::Limited {
            retry_after_ms: 1000,
        })
    }

    async fn count_down(&self, key: &str, n_back: u32) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::guard(key)))
            .update_expression("ADD #count :minus")
            .condition_expression("#count >= :n")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":minus", AttributeValue::N(format!("-{n_back}")))
            .expression_attribute_values(":n", n(u64::from(n_back)))
            .send()
            .await;
        conditional("count down", update).map(|_| ())
    }

    async fn count_up_to(
        &self,
        key: &str,
        n_wanted: u32,
        cap: u32,
        expires_at_s: u64,
    ) -> Result<u32, StoreError> {
        let pk = keys::guard(key);
        let mut wanted = n_wanted.min(cap);
        for _ in 0..GUARD_ATTEMPTS {
            if wanted == 0 {
                return Ok(0);
            }
            // All of them if they fit (one write, the usual case)...
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .update_expression("ADD #count :n SET expires_at = :expires")
                .condition_expression("attribute_not_exists(#count) OR #count <= :most")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":n", n(u64::from(wanted)))
                .expression_attribute_values(":most", n(u64::from(cap - wanted)))
                .expression_attribute_values(":expires", n(expires_at_s))
                .send()
                .await;
            if conditional("count up to", update)?.is_some() {
                return Ok(wanted);
            }
            // ... else as many as are left.
            let count = self
                .get("count up to", pk.clone())
                .await?
                .and_then(|item| number(&item, "count"))
                .unwrap_or(0);
            wanted = wanted.min(u32::try_from(u64::from(cap).saturating_sub(count)).unwrap_or(0));
        }
        Ok(0)
    }

    async fn take_slot(
        &self,
        timeline: &str,
        interval_us: u64,
        now_us: u64,
        horizon_us: Option<u64>,
    ) -> Result<Slot, StoreError> {
        let pk = keys::pace(timeline);
        let limit = horizon_us.map_or(u64::MAX, |h| now_us.saturating_add(h));
        // Two conditional moves, each one call: the timeline is ahead of now (take its next
        // slot), or idle (the slot is now). A lost race on either tries again. The one that
        // worked last on this timeline goes first: at a steady rate or a trickle, one call.
        for _ in 0..8 {
            if self.seen_idle(&pk, now_us) {
                if self.idle_move(&pk, interval_us, now_us).await? {
                    self.seen(&pk, now_us.saturating_add(interval_us));
                    return Ok(Slot::Taken(now_us));
                }
                // Busy after all: the ahead move is next.
                self.seen(&pk, u64::MAX);
            }
            let ahead = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .update_expression("SET next_us = next_us + :interval")
                .condition_expression("next_us >= :now AND next_us <= :limit")
                .expression_attribute_values(":interval", n(interval_us))
                .expression_attribute_values(":now", n(now_us))
                .expression_attribute_values(":limit", n(limit))
                .return_values(ReturnValue::UpdatedOld)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let old = match ahead {
                Ok(output) => {
                    let taken = output
                        .attributes
                        .as_ref()
                        .and_then(|item| number(item, "next_us"))
                        .ok_or_else(|| StoreError {
                            operation: "take slot",
                            detail: "the timeline's old value did not come back".into(),
                        })?;
                    self.seen(&pk, taken.saturating_add(interval_us));
                    return Ok(Slot::Taken(taken));
                }
                Err(error) => self.condition_failed("take slot", &pk, error).await?,
            };
            if let Some(next) = number(&old, "next_us") {
                self.seen(&pk, next);
            }
            match number(&old, "next_us") {
                Some(next) if next > limit => return Ok(Slot::Busy { next_us: next }),
                Some(next) if next >= now_us => continue,
                _ => {}
            }
            if self.idle_move(&pk, interval_us, now_us).await? {
                self.seen(&pk, now_us.saturating_add(interval_us));
                return Ok(Slot::Taken(now_us));
            }
        }
        Err(StoreError {
            operation: "take slot",
            detail: "the timeline kept moving under 8 tries".into(),
        })
    }
}

impl DynamoStore {
    /// The idle move: the timeline is behind now (or new), so the slot is now. False when it was
    /// not idle.
    async fn idle_move(&self, pk: &str, interval_us: u64, now_us: u64) -> Result<bool, StoreError> {
        let idle = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .update_expression("SET next_us = :next")
            .condition_expression("attribute_not_exists(next_us) OR next_us < :now")
            .expression_attribute_values(":next", n(now_us.saturating_add(interval_us)))
            .expression_attribute_values(":now", n(now_us))
            .send()
            .await;
        Ok(conditional("take slot", idle)?.is_some())
    }

    /// Whether the timeline was idle by now, as this process last saw it.
    fn seen_idle(&self, pk: &str, now_us: u64) -> bool {
        self.timelines_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(pk)
            .is_some_and(|next_us| *next_us < now_us)
    }

    fn seen(&self, pk: &str, next_us: u64) {
        self.timelines_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(pk.to_owned(), next_us);
    }
}
