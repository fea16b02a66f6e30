//! A DynamoDB stream record as a [`Change`] of the state.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use pipeline::store::Change;
use pipeline::store::dynamodb_snapshot;

/// Why a record is not a change of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// An image the change needs is missing from the record.
    #[error("the record has no images (the stream must be NEW_AND_OLD_IMAGES)")]
    NoImages,
}

/// The change a stream record stands for; `None` for items no event speaks of (idempotency
/// records) or that cannot be read as ours.
pub fn change(record: &EventRecord) -> Result<Option<Change>, StreamError> {
    let stream = &record.change;
    let old = image(&stream.old_image);
    let new = image(&stream.new_image);
    if old.is_none() && new.is_none() {
        // Every write has at least one image in a NEW_AND_OLD_IMAGES stream (a removal its old).
        return Err(StreamError::NoImages);
    }
    let old = old.as_ref().and_then(dynamodb_snapshot);
    let new = new.as_ref().and_then(dynamodb_snapshot);
    if old.is_none() && new.is_none() {
        return Ok(None);
    }
    Ok(Some(Change {
        old,
        new,
        at_ms: u64::try_from(stream.approximate_creation_date_time.timestamp_millis()).unwrap_or(0),
    }))
}

/// Whether the table stream's filter in template.yaml admits the record (its key's prefix:
/// [`pipeline::store::EVENT_ITEM_PREFIXES`]): what Lambda's event source mapping hands the
/// publisher in AWS, and what `serve` hands it locally.
pub fn admitted(record: &EventRecord) -> bool {
    let pk = record
        .change
        .keys
        .get("pk")
        .cloned()
        .map(AttributeValue::from)
        .and_then(|pk| pk.as_s().ok().cloned());
    pk.is_some_and(|pk| pipeline::store::stream_admits(&pk))
}

/// An image as the SDK's attribute values; `None` when absent.
fn image(item: &serde_dynamo::Item) -> Option<HashMap<String, AttributeValue>> {
    if item.is_empty() {
        return None;
    }
    Some(
        item.iter()
            .map(|(name, value)| (name.clone(), AttributeValue::from(value.clone())))
            .collect(),
    )
}
