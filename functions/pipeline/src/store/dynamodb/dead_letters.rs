//! DynamoStore's part: dead letters: a poison callback's record, written before it is parked (its event comes from the stream).

use super::*;

impl DeadLetterStore for DynamoStore {
    async fn record_dead_letter(&self, dead: &DeadLetter) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), s(keys::dead_letter(&dead.message_id))),
            ("reason".to_owned(), s(&dead.reason)),
            ("detail".to_owned(), s(&dead.detail)),
            ("at_ms".to_owned(), n(dead.at_ms)),
            // As long as the dead-letter queue keeps it (14 days).
            (
                "expires_at".to_owned(),
                n(dead.at_ms / 1000 + DEAD_LETTER_TTL_S),
            ),
        ]);
        if let Some(kind) = &dead.kind {
            item.insert("kind".to_owned(), s(kind));
        }
        // Once: a retry of the same dead-lettering (the queue send failed) changes nothing.
        self.put_new("record dead letter", item).await.map(|_| ())
    }
}
