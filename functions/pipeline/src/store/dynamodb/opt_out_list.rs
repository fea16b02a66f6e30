//! The list of opted-out contacts (`GET /optouts`), spread over the `optouts` index's
//! partitions.
//!
//! An index partition takes about 1,000 writes a second, like a table's: with every opt-out under
//! one index key, an import (or a wave of STOPs) would be throttled there, and the table's writes
//! with it. So each opted-out contact carries one of [`OPT_OUT_SHARDS`] index keys, picked by a
//! hash of who they are, and a page of the list is the merge of a query per key.
//!
//! | what | how |
//! |---|---|
//! | a contact's index key | `optouts` for shard 0 (where every opt-out written before the shards is), `optouts#<n>` for shard `n` of 1 to 7; `n` is the first byte of SHA-256(`<channel>/<identity>`) mod 8 |
//! | a page of up to `limit` | each shard queried for up to `limit` after the cursor, in order; the answers merged in `<channel>/<identity>` order; a shard that has more left bounds the page at its last item, so nothing is skipped |
//! | the cursor | the last contact of the page (as before the shards) |
//! | cost | a query per shard per page: 8 small queries for a page of 1,000 |

use sha2::{Digest, Sha256};

use super::{
    DynamoStore, OPT_OUT_KEY, OPT_OUT_LIST, OPT_OUT_LIST_VALUE, failed, opt_out_key, s, snapshot,
};
use crate::store::{ContactKey, ContactState, OptOutPage, Snapshot, StoreError};
use sinch::Channel;

/// How many index keys the opt-outs are spread over.
pub const OPT_OUT_SHARDS: u8 = 8;

/// The index key of shard `shard`.
fn shard_list(shard: u8) -> String {
    if shard == 0 {
        OPT_OUT_LIST_VALUE.to_owned()
    } else {
        format!("{OPT_OUT_LIST_VALUE}#{shard}")
    }
}

/// The index key an opted-out `contact` carries.
pub(super) fn opt_out_list(contact: &ContactKey) -> String {
    let digest = Sha256::digest(opt_out_key(contact).as_bytes());
    shard_list(digest[0] % OPT_OUT_SHARDS)
}

impl DynamoStore {
    /// One page of the list: see the module docs.
    pub(super) async fn list_opt_outs(
        &self,
        channel: Option<&Channel>,
        after: Option<&ContactKey>,
        limit: usize,
    ) -> Result<OptOutPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let prefix = channel.map(|channel| format!("{}/", channel.as_str()));
        let after = after.map(opt_out_key);
        if let (Some(prefix), Some(after)) = (&prefix, &after)
            && after > prefix
            && (!after.starts_with(prefix.as_str()) || *after >= format!("{prefix}\u{10FFFF}"))
        {
            // Past the channel's last key (or past the highest one it could have): nothing
            // of it is left, and DynamoDB would refuse the range.
            return Ok(OptOutPage {
                items: Vec::new(),
                next: None,
            });
        }
        let mut merged: Vec<(String, ContactKey, ContactState)> = Vec::new();
        // The last item of each shard that has more than it answered.
        let mut bound: Option<String> = None;
        for shard in 0..OPT_OUT_SHARDS {
            let (items, more) = self
                .query_shard(
                    &shard_list(shard),
                    prefix.as_deref(),
                    after.as_deref(),
                    limit,
                )
                .await?;
            if more && let Some((last, _, _)) = items.last() {
                bound = Some(match bound {
                    Some(held) if held <= *last => held,
                    _ => last.clone(),
                });
            }
            merged.extend(items);
        }
        merged.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(bound) = &bound {
            merged.retain(|(key, _, _)| key <= bound);
        }
        let whole = merged.len() > limit || bound.is_some();
        merged.truncate(limit);
        let items: Vec<(ContactKey, ContactState)> = merged
            .into_iter()
            .map(|(_, key, state)| (key, state))
            .collect();
        let next = (whole || items.len() >= limit)
            .then(|| items.last().map(|(key, _)| key.clone()))
            .flatten();
        Ok(OptOutPage { items, next })
    }

    /// Up to `limit` opt-outs of one shard after `after` (their `<channel>/<identity>`), within
    /// `prefix`; and whether the shard has more. A page of the shard that held only the cursor
    /// itself (the lower bound of `BETWEEN` is inclusive) is followed by the next one, so that a
    /// shard with more always answers an item to bound the page with.
    async fn query_shard(
        &self,
        list: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, ContactKey, ContactState)>, bool), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(super::OPT_OUT_INDEX)
            .expression_attribute_names("#list", OPT_OUT_LIST)
            .expression_attribute_values(":list", s(list))
            .limit(i32::try_from(limit).unwrap_or(1000));
        // One condition on the sort key: after the cursor, within the channel's keys.
        query = match (prefix, after) {
            (None, None) => query.key_condition_expression("#list = :list"),
            (None, Some(after)) => query
                .key_condition_expression("#list = :list AND #key > :after")
                .expression_attribute_names("#key", OPT_OUT_KEY)
                .expression_attribute_values(":after", s(after)),
            (Some(prefix), Some(after)) if after >= prefix => query
                .key_condition_expression("#list = :list AND #key BETWEEN :from AND :to")
                .expression_attribute_names("#key", OPT_OUT_KEY)
                .expression_attribute_values(":from", s(after))
                .expression_attribute_values(":to", s(format!("{prefix}\u{10FFFF}"))),
            (Some(prefix), _) => query
                .key_condition_expression("#list = :list AND begins_with(#key, :prefix)")
                .expression_attribute_names("#key", OPT_OUT_KEY)
                .expression_attribute_values(":prefix", s(prefix)),
        };
        let mut start = None;
        loop {
            let output = query
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| failed("list opt-outs", e))?;
            let next = output
                .last_evaluated_key()
                .filter(|key| !key.is_empty())
                .cloned();
            let items: Vec<_> = output
                .items()
                .iter()
                .filter_map(|item| match snapshot(item)? {
                    Snapshot::Contact { key, state } => Some((opt_out_key(&key), key, state)),
                    _ => None,
                })
                // BETWEEN holds the cursor itself; a prefix bound holds only the channel's keys.
                .filter(|(key, _, _)| after.is_none_or(|after| key.as_str() > after))
                .filter(|(key, _, _)| prefix.is_none_or(|prefix| key.starts_with(prefix)))
                .collect();
            match next {
                Some(next) if items.is_empty() => start = Some(next),
                next => return Ok((items, next.is_some())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_spread_over_every_shard_and_each_keeps_its_own() {
        let mut seen = [0u32; OPT_OUT_SHARDS as usize];
        for k in 0..800 {
            let contact = ContactKey::new("SMS", &format!("4670{k:07}"));
            let list = opt_out_list(&contact);
            assert_eq!(list, opt_out_list(&contact), "stable");
            let shard = list
                .strip_prefix("optouts#")
                .map_or(0, |n| n.parse::<usize>().unwrap());
            seen[shard] += 1;
        }
        // 100 a shard on average; none empty, none holding most of them.
        assert!(seen.iter().all(|n| (40..200).contains(n)), "{seen:?}");
    }
}
