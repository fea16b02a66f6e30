//! DynamoStore's part: idempotency keys: a callback or a request is handled once (claim, complete, release).

use super::*;

impl IdempotencyStore for DynamoStore {
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Claim, StoreError> {
        let pk = keys::idempotency(request.key);
        // A lease that ran out is taken over here only when it holds no value to keep.
        let condition = if request.value.is_some() {
            "attribute_not_exists(pk) \
             OR (#state = :in_progress AND lease_until_ms <= :now_ms AND attribute_not_exists(#value)) \
             OR (#state = :completed AND expires_at <= :now_s)"
        } else {
            "attribute_not_exists(pk) \
             OR (#state = :in_progress AND lease_until_ms <= :now_ms) \
             OR (#state = :completed AND expires_at <= :now_s)"
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("state", s(IN_PROGRESS))
            .item("lease_until_ms", n(request.lease_until_ms))
            .item("payload_hash", s(request.payload_hash))
            .item(
                "expires_at",
                n(request.lease_until_ms / 1000 + ABANDONED_CLAIM_TTL_S),
            )
            .condition_expression(condition)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":now_ms", n(request.now_ms))
            .expression_attribute_values(":now_s", n(request.now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(value) = request.value {
            put = put
                .item("value", s(value))
                .expression_attribute_names("#value", "value");
        }
        let old = match put.send().await {
            Ok(_) => {
                return Ok(Claim::Claimed {
                    value: request.value.map(str::to_owned),
                });
            }
            Err(SdkError::ServiceError(service)) => match service.into_err() {
                PutItemError::ConditionalCheckFailedException(failed_check) => {
                    match failed_check.item {
                        Some(item) => Some(item),
                        // Not every DynamoDB implementation returns the old item; read it.
                        None => self.get("claim", pk.clone()).await?,
                    }
                }
                other => {
                    return Err(StoreError {
                        operation: "claim",
                        detail: DisplayErrorContext(&other).to_string(),
                    });
                }
            },
            Err(error) => return Err(failed("claim", error)),
        };
        let Some(old) = old else {
            // Deleted between the two calls: someone released it. Let the retry claim it.
            return Ok(Claim::InProgress { lease_until_ms: 0 });
        };
        let old_lease = number(&old, "lease_until_ms").unwrap_or_default();
        if text(&old, "state") == Some(COMPLETED) {
            return Ok(Claim::Completed {
                same_payload: text(&old, "payload_hash") == Some(request.payload_hash),
                response: text(&old, "response").map(str::to_owned),
            });
        }
        let held = text(&old, "value");
        if old_lease > request.now_ms || held.is_none() || request.value.is_none() {
            return Ok(Claim::InProgress {
                lease_until_ms: old_lease,
            });
        }
        // A lease that ran out, holding a value: the same payload takes it over, keeping it.
        if text(&old, "payload_hash") != Some(request.payload_hash) {
            return Ok(Claim::Reused);
        }
        let takeover = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .update_expression("SET lease_until_ms = :lease, expires_at = :expires_at")
            .condition_expression("#state = :in_progress AND lease_until_ms = :old_lease")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":old_lease", n(old_lease))
            .expression_attribute_values(":lease", n(request.lease_until_ms))
            .expression_attribute_values(
                ":expires_at",
                n(request.lease_until_ms / 1000 + ABANDONED_CLAIM_TTL_S),
            )
            .send()
            .await;
        Ok(match conditional("claim", takeover)? {
            Some(_) => Claim::Claimed {
                value: held.map(str::to_owned),
            },
            // Someone else took it over first (or completed it): their turn.
            None => Claim::InProgress {
                lease_until_ms: request.lease_until_ms,
            },
        })
    }

    async fn complete(
        &self,
        key: &str,
        expires_at_s: u64,
        response: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::idempotency(key)))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expires_at", n(expires_at_s));
        update = match response {
            Some(response) => update
                .update_expression(
                    "SET #state = :completed, expires_at = :expires_at, #response = :response",
                )
                .expression_attribute_names("#response", "response")
                .expression_attribute_values(":response", s(response)),
            None => update.update_expression("SET #state = :completed, expires_at = :expires_at"),
        };
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("complete", e))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::idempotency(key)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("release", e))
    }
}
