//! MemoryStore's part: batches of the messages API: the record, its recipients' chunks, its answer, cancel, completion and counts.

use super::*;

impl BatchStore for MemoryStore {
    async fn create_batch(
        &self,
        batch: &BatchRecord,
        chunks: &[String],
        answer: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.batches.contains_key(&batch.id) {
            return Ok(());
        }
        state.batches.insert(
            batch.id.clone(),
            Batch {
                record: batch.clone(),
                finals: BTreeSet::new(),
                chunks: chunks.to_vec(),
                answer: answer.to_owned(),
            },
        );
        self.emit(None, Some(Snapshot::Batch(batch.clone())));
        Ok(())
    }

    async fn batch_counts(
        &self,
        id: &str,
        _total: u32,
    ) -> Result<Option<Vec<(Status, u32)>>, StoreError> {
        let state = self.lock();
        let of_batch = state.messages.values().filter(|item| {
            item.state
                .batch
                .as_ref()
                .is_some_and(|batch| batch.id == id)
                && !is_unset(&item.state.status)
        });
        Ok(Some(crate::status::count(
            of_batch.map(|item| item.state.status.clone()),
        )))
    }

    async fn batch_canceled(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .is_some_and(|batch| batch.record.canceled))
    }

    async fn batch_answer(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .map(|batch| batch.answer.clone()))
    }

    async fn batch(&self, id: &str) -> Result<Option<BatchRecord>, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .map(|batch| batch.record.clone()))
    }

    async fn batch_chunk(&self, id: &str, chunk: u32) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .batches
            .get(id)
            .and_then(|batch| batch.chunks.get(chunk as usize).cloned()))
    }

    async fn cancel_batch(&self, id: &str) -> Result<BatchCancel, StoreError> {
        let mut state = self.lock();
        let Some(batch) = state.batches.get_mut(id) else {
            return Ok(BatchCancel::Missing);
        };
        if batch.record.completed_at_ms.is_some() {
            return Ok(BatchCancel::Completed);
        }
        if !batch.record.canceled {
            let before = batch.record.clone();
            batch.record.canceled = true;
            let after = batch.record.clone();
            self.emit(Some(Snapshot::Batch(before)), Some(Snapshot::Batch(after)));
        }
        Ok(BatchCancel::Canceled)
    }
}
