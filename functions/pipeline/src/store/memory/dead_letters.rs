//! MemoryStore's part: dead letters: a poison callback's record, written before it is parked (its event comes from the stream).

use super::*;

impl DeadLetterStore for MemoryStore {
    async fn record_dead_letter(&self, dead: &DeadLetter) -> Result<(), StoreError> {
        let mut state = self.lock();
        if !state.dead_letters.contains_key(&dead.message_id) {
            state
                .dead_letters
                .insert(dead.message_id.clone(), dead.clone());
            self.emit(None, Some(Snapshot::DeadLetter(dead.clone())));
        }
        Ok(())
    }
}
