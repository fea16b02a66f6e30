//! DynamoDB's capacity units, worked out from the items as DynamoDB documents it, because moto
//! reports a constant (`ConsumedCapacity` of 1.0 whatever the item, GSIs not counted).
//!
//! | request | units |
//! |---|---|
//! | a write (`PutItem`, `UpdateItem`, `DeleteItem`, each item of `BatchWriteItem`) | one WCU per started KB of the larger of the item before and after, at least 1; a write whose condition fails costs the same |
//! | each item of `TransactWriteItems` | twice that (transactions cost double) |
//! | each global secondary index, by [`index_write_units`] | nothing when the item is in the index neither before nor after, or its index entry (the keys and the projected attributes) is unchanged; one write of the entry when it enters, leaves or changes; two when its index key changes |
//! | `GetItem`, each item of `BatchGetItem` | one RCU per started 4 KB, half when eventually consistent; a miss costs the same as a small hit |
//! | `Query`, `Scan` | the items read, summed, then per started 4 KB; half when eventually consistent |
//! | each item of `TransactGetItems` | twice a strongly consistent read |
//!
//! Sizes follow DynamoDB's rules: an attribute is its name's UTF-8 bytes plus its value's
//! (strings: UTF-8 bytes; numbers: about one byte per two digits, plus one; binary: its bytes;
//! booleans and null: one; lists and maps: three, plus one per element, plus the elements).

use serde_json::{Map, Value};

/// An item: a DynamoDB JSON map of attribute name to typed value.
pub type Item = Map<String, Value>;

/// DynamoDB's overhead on each index entry, in bytes.
const INDEX_ENTRY_OVERHEAD: u64 = 100;

/// Which attributes a global secondary index copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// Every attribute.
    All,
    /// The table's and the index's keys.
    KeysOnly,
    /// The keys and these attributes.
    Include(Vec<String>),
}

/// A global secondary index, as `DescribeTable` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its key attributes.
    pub keys: Vec<String>,
    /// What it copies.
    pub projection: Projection,
}

impl Index {
    /// The entry `item` makes in the index: `None` when it lacks one of the index's keys.
    fn entry(&self, table_keys: &[String], item: Option<&Item>) -> Option<Item> {
        let item = item?;
        if !self.keys.iter().all(|key| item.contains_key(key)) {
            return None;
        }
        let projected = |name: &String| {
            table_keys.contains(name)
                || self.keys.contains(name)
                || match &self.projection {
                    Projection::All => true,
                    Projection::KeysOnly => false,
                    Projection::Include(names) => names.contains(name),
                }
        };
        Some(
            item.iter()
                .filter(|(name, _)| projected(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        )
    }
}

/// The write units a write costs in `index`, from the item before and after it, as DynamoDB
/// documents it for global secondary indexes.
pub fn index_write_units(
    index: &Index,
    table_keys: &[String],
    before: Option<&Item>,
    after: Option<&Item>,
) -> f64 {
    let units = |entry: &Item| write_units(item_size(entry) + INDEX_ENTRY_OVERHEAD);
    match (
        index.entry(table_keys, before),
        index.entry(table_keys, after),
    ) {
        (None, None) => 0.0,
        (Some(entry), None) | (None, Some(entry)) => units(&entry),
        (Some(old), Some(new)) => {
            let moved = index.keys.iter().any(|key| old.get(key) != new.get(key));
            if moved {
                units(&old) + units(&new)
            } else if old != new {
                units(&new)
            } else {
                0.0
            }
        }
    }
}

/// The size of an item (a DynamoDB JSON map of attribute name to typed value), in bytes.
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| name.len() as u64 + value_size(value))
        .sum()
}

fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|typed| typed.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(text)) => text.len() as u64,
        ("N", Value::String(number)) => number_size(number),
        ("B", Value::String(base64)) => (base64.len() as u64 * 3) / 4,
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.len() as u64)
            .sum(),
        ("NS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(number_size)
            .sum(),
        ("BS", Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|b| (b.len() as u64 * 3) / 4)
            .sum(),
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        ("M", Value::Object(map)) => {
            3 + map
                .iter()
                .map(|(name, v)| 1 + name.len() as u64 + value_size(v))
                .sum::<u64>()
        }
        _ => 0,
    }
}

fn number_size(number: &str) -> u64 {
    let digits = number.chars().filter(char::is_ascii_digit).count() as u64;
    digits.div_ceil(2) + 1
}

/// Write units for one item of `size` bytes.
pub fn write_units(size: u64) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

/// Read units for `size` bytes read at once.
pub fn read_units(size: u64, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent { units } else { units / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_and_units_follow_dynamodbs_rules() {
        let item = json!({
            "pk": {"S": "msg#01"},
            "n": {"N": "1234"},
            "ok": {"BOOL": true},
            "l": {"L": [{"S": "ab"}]},
            "m": {"M": {"k": {"S": "v"}}}
        });
        let size = item_size(item.as_object().unwrap());
        // pk 2+6, n 1+3, ok 2+1, l 1+(3+1+2), m 1+(3+1+1+1)
        assert_eq!(size, 8 + 4 + 3 + 7 + 7);
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(read_units(100, false), 0.5);
        assert_eq!(read_units(4097, true), 2.0);
    }

    fn item(value: Value) -> Item {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn an_index_costs_a_write_only_when_its_entry_changes() {
        let table_keys = ["pk".to_owned()];
        let people = Index {
            keys: vec!["person".into()],
            projection: Projection::KeysOnly,
        };
        let all = Index {
            projection: Projection::All,
            ..people.clone()
        };
        let some = Index {
            projection: Projection::Include(vec!["status".into()]),
            ..people.clone()
        };
        let outside = item(json!({"pk": {"S": "msg#1"}, "status": {"S": "QUEUED"}}));
        let first = item(
            json!({"pk": {"S": "msg#1"}, "person": {"S": "SMS#1"}, "status": {"S": "QUEUED"}}),
        );
        let moved_on = item(
            json!({"pk": {"S": "msg#1"}, "person": {"S": "SMS#1"}, "status": {"S": "DELIVERED"}}),
        );
        let other_person = item(
            json!({"pk": {"S": "msg#1"}, "person": {"S": "SMS#2"}, "status": {"S": "DELIVERED"}}),
        );
        let cost = |index: &Index, before: Option<&Item>, after: Option<&Item>| {
            index_write_units(index, &table_keys, before, after)
        };
        // Never in the index.
        assert_eq!(cost(&all, None, Some(&outside)), 0.0);
        assert_eq!(cost(&all, Some(&outside), Some(&outside)), 0.0);
        // In, out.
        assert_eq!(cost(&people, None, Some(&first)), 1.0);
        assert_eq!(cost(&people, Some(&outside), Some(&first)), 1.0);
        assert_eq!(cost(&people, Some(&first), None), 1.0);
        // An attribute the index does not hold changes: nothing; one it holds: a write.
        assert_eq!(cost(&people, Some(&first), Some(&moved_on)), 0.0);
        assert_eq!(cost(&all, Some(&first), Some(&moved_on)), 1.0);
        assert_eq!(cost(&some, Some(&first), Some(&moved_on)), 1.0);
        assert_eq!(cost(&some, Some(&first), Some(&first)), 0.0);
        // Its key changes: a delete and a put.
        assert_eq!(cost(&people, Some(&moved_on), Some(&other_person)), 2.0);
        // A large entry is counted by its size, overhead included.
        let large = item(
            json!({"pk": {"S": "msg#1"}, "person": {"S": "p"}, "body": {"S": "x".repeat(1000)}}),
        );
        assert_eq!(cost(&all, None, Some(&large)), 2.0);
        assert_eq!(cost(&people, None, Some(&large)), 1.0);
    }
}
