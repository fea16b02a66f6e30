//! A batch's tally: where each of its messages stands, kept beside the batch in small blocks so
//! that `GET /batches/{id}` reads a bounded number of small items, not every message.
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | a block of a batch's tally | `tally#<batch id>#<k / 100>` | `st_<STATUS>`: a number set of the places (`k % 100`) of the block's messages that stood at that status when a write of theirs was tallied; `expires_at` (the message's) |
//!
//! | moment | what is written |
//! |---|---|
//! | a message made (`accept_message`), or made again by a retry | its status then, in its block |
//! | each status write of the message (`record_status`, `finish_send`), applied or found there already | the status the message holds *after* the write (the message's own rules decide it: ranks, the first terminal status wins) |
//! | a redelivered send finding its message ended or sent (`begin_send`) | the message's status, again |
//!
//! Each write only adds a place to a set, unconditionally: again is a no-op, and writes landing
//! in any order leave each place in the sets of every status the message held. A message's
//! status in the tally is the highest-ranked of those ([`Status::progress`]), which is the one
//! it holds: its statuses only move up the ranks, and a rank holds one status (the first written,
//! by the message's own `if_not_exists`; the tally adds what the message then holds). A crash
//! between the message's write and its tally's is healed by the next write of that message, or
//! by the retry of the same one (which finds the message's write there and tallies it).
//!
//! Reading: one `BatchGetItem` per hundred blocks (10,000 messages), each block at most a
//! hundred places in a few sets (under 2 KB).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoStore, Item, failed, furthest, keys, n, number, s};
use crate::status::Status;
use crate::store::{BatchRef, StoreError};

/// Messages per block of a batch's tally.
pub const BATCH_TALLY_BLOCK: u32 = 100;

/// The prefix of a tally block's status attributes.
const STATUS_PREFIX: &str = "st_";

/// The status a message item holds after a write of `written` on it (`before`: the item as it
/// was; `None`: there was none): the written status if it ranks higher, else the one held.
pub(super) fn after_write(before: Option<&Item>, written: &Status) -> Status {
    match before.and_then(furthest) {
        Some((rank, held)) if rank >= written.progress().rank => held,
        _ => written.clone(),
    }
}

impl DynamoStore {
    /// Tallies message `message` of its batch at `status` (what it holds now); `expires_at`:
    /// the message's (a block lives as long as its messages).
    pub(super) async fn tally(
        &self,
        message: &BatchRef,
        status: &Status,
        expires_at: Option<u64>,
    ) -> Result<(), StoreError> {
        let place = message.index % BATCH_TALLY_BLOCK;
        let expression = match expires_at {
            Some(_) => "ADD #status :place SET expires_at = if_not_exists(expires_at, :at)",
            None => "ADD #status :place",
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                "pk",
                s(keys::tally(&message.id, message.index / BATCH_TALLY_BLOCK)),
            )
            .update_expression(expression)
            .expression_attribute_names("#status", format!("{STATUS_PREFIX}{}", status.as_str()))
            .expression_attribute_values(":place", AttributeValue::Ns(vec![place.to_string()]));
        if let Some(at) = expires_at {
            update = update.expression_attribute_values(":at", n(at));
        }
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("batch tally", e))
    }

    /// Tallies the message `item` holds, when it is one of a batch's.
    pub(super) async fn tally_item(&self, item: &Item) -> Result<(), StoreError> {
        let (Some(batch), Some((_, status))) = (super::batch_of(item), furthest(item)) else {
            return Ok(());
        };
        self.tally(&batch, &status, number(item, "expires_at"))
            .await
    }

    /// How many of batch `id`'s `total` messages stand at each status (messages not made yet
    /// are in none); `None` for a batch stored before batches had a tally.
    pub(super) async fn tallied(
        &self,
        id: &str,
        total: u32,
    ) -> Result<Option<Vec<(Status, u32)>>, StoreError> {
        let pks: Vec<String> = (0..total.div_ceil(BATCH_TALLY_BLOCK))
            .map(|block| keys::tally(id, block))
            .collect();
        let blocks = self.get_many("batch tally", &pks, None).await?;
        if blocks.is_empty() && total > 0 {
            // Nothing made yet, or a batch older than tallies (its item says which).
            let batch = self.get("batch tally", keys::batch(id)).await?;
            if batch.is_some_and(|batch| !batch.contains_key("tallied")) {
                return Ok(None);
            }
        }
        Ok(Some(crate::status::count(
            blocks
                .values()
                .flat_map(|block| block_statuses(block).into_values()),
        )))
    }
}

/// Each place of a block, at the highest-ranked status it was tallied at.
fn block_statuses(block: &Item) -> HashMap<u32, Status> {
    let mut places: HashMap<u32, Status> = HashMap::new();
    for (name, value) in block {
        let Some(status) = name.strip_prefix(STATUS_PREFIX).map(Status::from) else {
            continue;
        };
        let Ok(set) = value.as_ns() else { continue };
        for place in set.iter().filter_map(|p| p.parse::<u32>().ok()) {
            let higher = places
                .get(&place)
                .is_none_or(|held| status.progress().rank > held.progress().rank);
            if higher {
                places.insert(place, status.clone());
            }
        }
    }
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_stands_at_its_highest_status_whatever_order_it_was_tallied_in() {
        let ns = |places: &[u32]| AttributeValue::Ns(places.iter().map(u32::to_string).collect());
        let block: Item = HashMap::from([
            ("pk".to_owned(), s("tally#bat_1#0")),
            ("expires_at".to_owned(), n(1)),
            ("st_ACCEPTED".to_owned(), ns(&[0, 1, 2, 3])),
            ("st_SENT".to_owned(), ns(&[0, 1, 2])),
            ("st_DELIVERED".to_owned(), ns(&[1, 2])),
            ("st_READ".to_owned(), ns(&[2])),
        ]);
        let places = block_statuses(&block);
        assert_eq!(places.len(), 4);
        assert_eq!(places[&0], Status::Sent);
        assert_eq!(places[&1], Status::Delivered);
        assert_eq!(places[&2], Status::Read);
        assert_eq!(places[&3], Status::Accepted);
    }

    #[test]
    fn after_a_write_the_higher_rank_holds_and_a_rank_keeps_its_first_status() {
        let item =
            |rank: u8, status: &str| -> Item { HashMap::from([(format!("s{rank}"), s(status))]) };
        assert_eq!(after_write(None, &Status::Accepted), Status::Accepted);
        assert_eq!(
            after_write(Some(&item(30, "DELIVERED")), &Status::QueuedOnChannel),
            Status::Delivered
        );
        assert_eq!(
            after_write(Some(&item(30, "DELIVERED")), &Status::Read),
            Status::Read
        );
        assert_eq!(
            after_write(Some(&item(40, "READ")), &Status::Failed),
            Status::Read
        );
    }
}
