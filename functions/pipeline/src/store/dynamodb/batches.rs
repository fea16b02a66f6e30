//! DynamoStore's part: batches of the messages API: the record, its recipients' chunks, its answer, cancel, completion and counts.

use super::*;

impl BatchStore for DynamoStore {
    async fn create_batch(
        &self,
        batch: &BatchRecord,
        chunks: &[String],
        answer: &str,
    ) -> Result<(), StoreError> {
        // The chunks first, so that a batch on record always has its recipients; a chunk left
        // by a request that died expires with the TTL. Both are kept for the message retention
        // from when the batch is due (its recipients' numbers and texts are personal data: no
        // longer than its messages' states; never gone before it is due).
        // A batch on record stands as it was stored: its chunks and answer are not written
        // again (a retry after the request's lease ran out must not change what fans out).
        if self
            .get("create batch", keys::batch(&batch.id))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let due_ms = batch.send_at_ms.unwrap_or(0).max(batch.created_at_ms);
        let expires_at = due_ms / 1000 + self.retention.messages.as_secs();
        for (index, chunk) in chunks.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(keys::chunk(&batch.id, index)))
                .item("recipients", s(chunk))
                .item("expires_at", n(expires_at))
                .send()
                .await
                .map_err(|e| failed("create batch", e))?;
        }
        // The request's answer, for a replay: its own item, read only then (the batch item is
        // read by every send of the batch and stays small).
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::answer(&batch.id)))
            .item("answer", s(answer))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map_err(|e| failed("create batch", e))?;
        // The finals' shards, each knowing how many messages it waits for.
        let shards = batch.total.min(BATCH_FINAL_SHARDS);
        for shard in 0..shards {
            let expected = batch.total / BATCH_FINAL_SHARDS
                + u32::from(shard < batch.total % BATCH_FINAL_SHARDS);
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(keys::finals(&batch.id, shard)))
                .item("expected", n(u64::from(expected)))
                .item("expires_at", n(expires_at))
                .send()
                .await
                .map_err(|e| failed("create batch", e))?;
        }
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), s(keys::batch(&batch.id))),
            ("shards".to_owned(), n(u64::from(shards))),
            ("caller".to_owned(), s(&batch.caller)),
            ("channel".to_owned(), s(&batch.channel)),
            ("total".to_owned(), n(u64::from(batch.total))),
            ("refused".to_owned(), n(u64::from(batch.refused))),
            ("chunks".to_owned(), n(u64::from(batch.chunks))),
            ("created_at_ms".to_owned(), n(batch.created_at_ms)),
            ("canceled".to_owned(), AttributeValue::Bool(batch.canceled)),
            ("expires_at".to_owned(), n(expires_at)),
            // Its messages are counted in its tally (a batch without it is older).
            ("tallied".to_owned(), AttributeValue::Bool(true)),
        ]);
        if let Some(at) = batch.send_at_ms {
            item.insert("send_at_ms".to_owned(), n(at));
        }
        self.put_new("create batch", item).await.map(|_| ())
    }

    async fn batch_counts(
        &self,
        id: &str,
        total: u32,
    ) -> Result<Option<Vec<(Status, u32)>>, StoreError> {
        self.tallied(id, total).await
    }

    async fn batch_canceled(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .get("batch", keys::batch(id))
            .await?
            .is_some_and(|item| {
                item.get("canceled")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false)
            }))
    }

    async fn batch_answer(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get("batch answer", keys::answer(id))
            .await?
            .as_ref()
            .and_then(|item| text(item, "answer").map(str::to_owned)))
    }

    async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        let Some(item) = self.get("batch", keys::batch(id)).await? else {
            return Ok(None);
        };
        let Some(mut batch) = batch_record(&item) else {
            return Ok(None);
        };
        // Its finals, from its shards (at most 16 small items, one read).
        if let Some(shards) = number(&item, "shards").filter(|shards| *shards > 0) {
            let pks: Vec<String> = (0..u32::try_from(shards).unwrap_or(BATCH_FINAL_SHARDS))
                .map(|shard| keys::finals(id, shard))
                .collect();
            let found = self.get_many("batch", &pks, Some("pk, finals")).await?;
            let finals: usize = found
                .values()
                .filter_map(|shard| shard.get("finals").and_then(|v| v.as_ns().ok()))
                .map(Vec::len)
                .sum();
            batch.finals = u32::try_from(finals).unwrap_or(u32::MAX);
        }
        Ok(Some(batch))
    }

    async fn batch_chunk(&self, id: &str, chunk: u32) -> Result<Option<String>, StoreError> {
        let item = match self.get("batch chunk", keys::chunk(id, chunk)).await? {
            Some(item) => Some(item),
            None => {
                self.get("batch chunk", keys::legacy_chunk(id, chunk))
                    .await?
            }
        };
        Ok(item
            .as_ref()
            .and_then(|item| text(item, "recipients").map(str::to_owned)))
    }

    async fn cancel_batch(&self, id: &str) -> Result<BatchCancel, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::batch(id)))
            .update_expression("SET canceled = :yes")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(completed_at_ms)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        if conditional("cancel batch", result)?.is_some() {
            return Ok(BatchCancel::Canceled);
        }
        Ok(match self.batch(id).await? {
            None => BatchCancel::Missing,
            Some(_) => BatchCancel::Completed,
        })
    }
}
