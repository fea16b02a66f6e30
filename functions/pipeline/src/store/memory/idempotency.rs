//! MemoryStore's part: idempotency keys: a callback or a request is handled once (claim, complete, release).

use super::*;

impl IdempotencyStore for MemoryStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let mut state = self.lock();
        let mut value = request.value.map(str::to_owned);
        match state.idempotency.get(request.key) {
            Some(Idempotency::Completed {
                expires_at_s,
                payload_hash,
                response,
            }) if expires_at_s.saturating_mul(1000) > request.now_ms => {
                return Ok(Claim::Completed {
                    same_payload: payload_hash == request.payload_hash,
                    response: response.clone(),
                });
            }
            Some(Idempotency::InProgress { lease_until_ms, .. })
                if *lease_until_ms > request.now_ms =>
            {
                return Ok(Claim::InProgress {
                    lease_until_ms: *lease_until_ms,
                });
            }
            // A lease that ran out: its value stays with its payload.
            Some(Idempotency::InProgress {
                payload_hash,
                value: Some(held),
                ..
            }) if request.value.is_some() => {
                if payload_hash != request.payload_hash {
                    return Ok(Claim::Reused);
                }
                value = Some(held.clone());
            }
            _ => {}
        }
        state.idempotency.insert(
            request.key.to_owned(),
            Idempotency::InProgress {
                lease_until_ms: request.lease_until_ms,
                payload_hash: request.payload_hash.to_owned(),
                value: value.clone(),
            },
        );
        Ok(Claim::Claimed { value })
    }

    async fn complete(
        &self,
        key: &str,
        expires_at_s: u64,
        response: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let payload_hash = match state.idempotency.get(key) {
            Some(Idempotency::InProgress { payload_hash, .. })
            | Some(Idempotency::Completed { payload_hash, .. }) => payload_hash.clone(),
            None => String::new(),
        };
        state.idempotency.insert(
            key.to_owned(),
            Idempotency::Completed {
                expires_at_s,
                payload_hash,
                response: response.map(str::to_owned),
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.lock().idempotency.remove(key);
        Ok(())
    }
}
