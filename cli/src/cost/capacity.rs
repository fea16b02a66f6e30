//! DynamoDB's capacity units, worked out from the items as DynamoDB documents it, because moto
//! reports a constant (`ConsumedCapacity` of 1.0 whatever the item, GSIs not counted).
//!
//! | request | units |
//! |---|---|
//! | a write (`PutItem`, `UpdateItem`, `DeleteItem`, each item of `BatchWriteItem`) | one WCU per started KB of the larger of the item before and after, at least 1; a write whose condition fails costs the same |
//! | each item of `TransactWriteItems` | twice that (transactions cost double) |
//! | each global secondary index whose key the item has, before or after | one more write of the item's size (the table's indexes project every attribute) |
//! | `GetItem`, each item of `BatchGetItem` | one RCU per started 4 KB, half when eventually consistent; a miss costs the same as a small hit |
//! | `Query`, `Scan` | the items read, summed, then per started 4 KB; half when eventually consistent |
//! | each item of `TransactGetItems` | twice a strongly consistent read |
//!
//! Sizes follow DynamoDB's rules: an attribute is its name's UTF-8 bytes plus its value's
//! (strings: UTF-8 bytes; numbers: about one byte per two digits, plus one; binary: its bytes;
//! booleans and null: one; lists and maps: three, plus one per element, plus the elements).

use serde_json::Value;

/// The size of an item (a DynamoDB JSON map of attribute name to typed value), in bytes.
pub fn item_size(item: &serde_json::Map<String, Value>) -> u64 {
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
}
