//! Reading the table's DynamoDB stream the way Lambda's event source does: for the local stack
//! against moto or LocalStack, and for tests. (In AWS the event source mapping does this.)
//!
//! Records come back as Lambda delivers them ([`EventRecord`]), so [`crate::publish`] sees the
//! same input here as in AWS. Every shard is read from its start (`TRIM_HORIZON`, as the
//! template's event source does) and in order.

use std::collections::BTreeMap;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::{Value, json};

/// The stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the table's stream could not be read: {0}")]
pub struct PollError(pub String);

fn failed(error: impl std::fmt::Display) -> PollError {
    PollError(error.to_string())
}

/// A reader of one table's stream.
#[derive(Debug)]
pub struct StreamPoller {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// Per shard, where to read next (`None`: the shard is closed and read to its end).
    shards: BTreeMap<String, Option<String>>,
    /// When the shards were last listed: they are listed again every [`DISCOVERY_INTERVAL`], or
    /// at once when a shard closes (its children are new shards), not at every poll.
    discovered_at: Option<std::time::Instant>,
    /// How many shards were closed when they were last listed.
    closed_when_discovered: usize,
}

/// How often the stream's shards are listed again (a stream splits shards every few hours).
pub const DISCOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl StreamPoller {
    /// A reader of `table`'s stream, from the start of every shard.
    pub async fn for_table(sdk: &aws_config::SdkConfig, table: &str) -> Result<Self, PollError> {
        let description = aws_sdk_dynamodb::Client::new(sdk)
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| failed(DisplayErrorContext(&e)))?;
        let stream_arn = description
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| PollError(format!("table {table} has no stream")))?
            .to_owned();
        Ok(Self {
            client: aws_sdk_dynamodbstreams::Client::new(sdk),
            stream_arn,
            shards: BTreeMap::new(),
            discovered_at: None,
            closed_when_discovered: 0,
        })
    }

    /// The records committed since the last call, shard by shard, in order.
    pub async fn poll(&mut self) -> Result<Vec<EventRecord>, PollError> {
        let due = self
            .discovered_at
            .is_none_or(|at| at.elapsed() >= DISCOVERY_INTERVAL);
        let closed = self.closed();
        if due || closed > self.closed_when_discovered {
            self.discover().await?;
        }
        let mut records = Vec::new();
        for (shard, iterator) in self.shards.iter_mut() {
            let Some(current) = iterator.clone() else {
                continue;
            };
            let output = self
                .client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .map_err(|e| failed(format!("{shard}: {}", DisplayErrorContext(&e))))?;
            for record in output.records() {
                records.push(lambda_record(record, &self.stream_arn)?);
            }
            *iterator = output.next_shard_iterator().map(str::to_owned);
        }
        Ok(records)
    }

    /// Shards not seen before get an iterator at their start.
    async fn discover(&mut self) -> Result<(), PollError> {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| failed(DisplayErrorContext(&e)))?;
        let shards = description
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.shards.contains_key(id) {
                continue;
            }
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| failed(DisplayErrorContext(&e)))?;
            self.shards
                .insert(id.to_owned(), iterator.shard_iterator().map(str::to_owned));
        }
        self.discovered_at = Some(std::time::Instant::now());
        self.closed_when_discovered = self.closed();
        Ok(())
    }

    fn closed(&self) -> usize {
        self.shards.values().filter(|next| next.is_none()).count()
    }
}

/// A Streams API record as Lambda delivers it to a function.
fn lambda_record(record: &Record, stream_arn: &str) -> Result<EventRecord, PollError> {
    let change = record.dynamodb();
    let image = |image: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >|
     -> Value {
        let item: serde_dynamo::Item = image
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name, serde_dynamo::AttributeValue::from(value)))
            .collect::<std::collections::HashMap<_, _>>()
            .into();
        serde_json::to_value(item).unwrap_or(Value::Null)
    };
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": change
            .and_then(|c| c.approximate_creation_date_time())
            .map_or(0.0, |t| t.as_secs_f64()),
        "Keys": image(change.and_then(|c| c.keys.as_ref())),
        "SequenceNumber": change.and_then(|c| c.sequence_number()),
        "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or_default(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = change.and_then(|c| c.new_image.as_ref()) {
        dynamodb["NewImage"] = image(Some(new));
    }
    if let Some(old) = change.and_then(|c| c.old_image.as_ref()) {
        dynamodb["OldImage"] = image(Some(old));
    }
    serde_json::from_value(json!({
        "awsRegion": record.aws_region(),
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|name| name.as_str()),
        "eventSource": "aws:dynamodb",
        "eventVersion": record.event_version(),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    }))
    .map_err(failed)
}
