//! DynamoStore's part: messages and their send ledger: statuses that only move forward, our sends recorded before they leave, stripped by an erasure.

use super::*;

impl MessageStore for DynamoStore {
    async fn record_status(&self, update: &StatusUpdate) -> Result<StatusChange, StoreError> {
        let progress = update.status.progress();
        let rank_attribute = format!("s{}", progress.rank);
        let entry = HistoryEntry {
            status: update.status.clone(),
            at_ms: update.at_ms,
            reason: update.reason.clone(),
            channel: update.channel.clone(),
        };
        let mut set = String::from("#rank = if_not_exists(#rank, :status), updated_at_ms = :now");
        let mut values = vec![
            (":status", s(update.status.as_str())),
            (":now", n(update.at_ms)),
        ];
        if let Some(channel) = &update.channel {
            set.push_str(", channel = if_not_exists(channel, :channel)");
            values.push((":channel", s(channel)));
        }
        let mut names = vec![("#rank", rank_attribute)];
        if let MessageKey::Sms { recipient, .. } = &update.key {
            // The recipient is in the key: an erasure finds the item by them.
            set.push_str(", #person = if_not_exists(#person, :person)");
            names.push(("#person", PERSON.to_owned()));
            values.push((":person", s(ContactKey::new("SMS", recipient).to_string())));
        }
        if let Some(id) = &update.sinch_id {
            let attribute = sinch_id_attribute(id);
            set.push_str(&format!(
                ", {attribute} = if_not_exists({attribute}, :sinch_id)"
            ));
            values.push((":sinch_id", s(id.as_str())));
        }
        let written = self
            .write_with_history(
                "record status",
                HistoryWrite {
                    pk: keys::message(&update.key),
                    set,
                    add: "",
                    fence: None,
                    names,
                    values,
                    entry: history_entry(&entry),
                    entry_id: entry_id(&entry, None),
                },
            )
            .await?;
        let item = match &written {
            Written::Applied(old) => old.as_ref(),
            Written::AlreadyThere(item) | Written::Fenced(item) => Some(item),
        };
        let was_final = item
            .and_then(furthest)
            .is_some_and(|(rank, _)| Progress::from_rank(rank).terminal);
        let channel = update
            .channel
            .as_deref()
            .or_else(|| item.and_then(|item| text(item, "channel")));
        if (was_final || update.status.settles_on(channel))
            && let Some(batch) = item.and_then(batch_of)
        {
            self.batch_final(&batch).await?;
        }
        // What the message holds now, in its batch's tally (again, when this report was in).
        if let Some(batch) = item.and_then(batch_of) {
            let now = tally::after_write(item, &update.status);
            self.tally(
                &batch,
                &now,
                item.and_then(|item| number(item, "expires_at")),
            )
            .await?;
        }
        let previous = match written {
            Written::Applied(old) => old.as_ref().and_then(furthest),
            // This very report is in already: it moved nothing more.
            Written::AlreadyThere(item) | Written::Fenced(item) => {
                let status = furthest(&item).map(|(_, status)| status);
                return Ok(StatusChange::Kept {
                    status: status.unwrap_or_else(|| update.status.clone()),
                });
            }
        };
        Ok(match previous {
            None => StatusChange::Created {
                status: update.status.clone(),
            },
            Some((rank, status)) if Progress::from_rank(rank).advances_to(progress) => {
                StatusChange::Advanced {
                    from: status,
                    to: update.status.clone(),
                }
            }
            Some((_, status)) => StatusChange::Kept { status },
        })
    }

    async fn message_state(&self, key: &MessageKey) -> Result<Option<MessageState>, StoreError> {
        Ok(self
            .get("message state", keys::message(key))
            .await?
            .and_then(|item| message_state(key, &item)))
    }

    async fn accept_message(&self, message: &AcceptedMessage) -> Result<Acceptance, StoreError> {
        let key = MessageKey::Ours(message.id.clone());
        let entry = HistoryEntry {
            status: message.status.clone(),
            at_ms: message.at_ms,
            reason: None,
            channel: None,
        };
        let expires_at = Self::expiry_from(message.scheduled_at_ms, self.retention.messages);
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), s(keys::message(&key))),
            (
                format!("s{}", message.status.progress().rank),
                s(message.status.as_str()),
            ),
            ("history".to_owned(), history_entry(&entry)),
            ("history_count".to_owned(), n(1)),
            (
                "history_ids".to_owned(),
                AttributeValue::Ss(vec![entry_id(&entry, None)]),
            ),
            ("channel".to_owned(), s(&message.channel)),
            ("to_identity".to_owned(), s(&message.to)),
            (
                PERSON.to_owned(),
                s(crate::store::person(&message.channel, &message.to).to_string()),
            ),
            ("caller".to_owned(), s(&message.caller)),
            ("updated_at_ms".to_owned(), n(message.at_ms)),
            ("expires_at".to_owned(), n(expires_at)),
        ]);
        if let Some(metadata) = &message.metadata {
            item.insert("metadata".to_owned(), s(metadata));
        }
        if let Some(at) = message.scheduled_at_ms {
            item.insert("scheduled_at_ms".to_owned(), n(at));
        }
        if let Some(batch) = &message.batch {
            item.insert("batch_id".to_owned(), s(&batch.id));
            item.insert("batch_index".to_owned(), n(u64::from(batch.index)));
        }
        if let Some(channels) = fallback::fallback_attribute(&message.fallback) {
            item.insert("fallback".to_owned(), channels);
        }
        // There already: this very message (a retry of the request that reserved the id, or
        // the SDK's retry of a put that landed) is that message; anything else is a conflict.
        let Some(old) = self.put_new("accept message", item).await? else {
            self.put_aliases(&message.id, &message.fallback, expires_at)
                .await?;
            if let Some(batch) = &message.batch {
                self.tally(batch, &message.status, Some(expires_at)).await?;
            }
            return Ok(Acceptance::New);
        };
        self.tally_item(&old).await?;
        let same = text(&old, "caller") == Some(message.caller.as_str())
            && text(&old, "to_identity") == Some(message.to.as_str())
            && text(&old, "channel") == Some(message.channel.as_str());
        match message_state(&key, &old) {
            Some(state) if same => {
                // Its aliases, in case the try that put the message could not (not stripped:
                // a stripped message names no one, so it is not `same`).
                let expires_at = number(&old, "expires_at").unwrap_or(expires_at);
                self.put_aliases(&message.id, &message.fallback, expires_at)
                    .await?;
                Ok(Acceptance::Existing(Box::new(state)))
            }
            _ => Err(StoreError {
                operation: "accept message",
                detail: format!("message {} exists", message.id),
            }),
        }
    }

    async fn begin_send(&self, request: &SendAttempt<'_>) -> Result<SendStart, StoreError> {
        let key = MessageKey::Ours(request.id.to_owned());
        let intent = request.intent;
        let mut set = String::from(
            "SET send_state = :sending, attempt = :attempt, attempt_at_ms = :now, \
             channel = if_not_exists(channel, :channel), \
             to_identity = if_not_exists(to_identity, :to)",
        );
        set.push_str(", expires_at = :retain, #person = if_not_exists(#person, :person)");
        let mut values = vec![
            (":person", s(intent.to.to_string())),
            (":retain", n(Self::expiry(self.retention.messages))),
            (":sending", s(SendState::Sending.as_str())),
            (":attempt", s(request.attempt)),
            (":now", n(request.now_ms)),
            (":channel", s(intent.to.channel.as_str())),
            (":to", s(&intent.to.identity)),
            (":one", n(1)),
            (":settle", n(request.settle_before_ms)),
            // Attempt tokens are never empty: "" takes nothing over.
            (":takeover", s(request.takeover.unwrap_or_default())),
        ];
        if let Some(in_reply_to) = &intent.in_reply_to {
            set.push_str(", in_reply_to = if_not_exists(in_reply_to, :in_reply_to)");
            values.push((":in_reply_to", s(in_reply_to)));
        }
        if let Some(text) = &intent.text {
            set.push_str(", #text = if_not_exists(#text, :text)");
            values.push((":text", s(text)));
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::message(&key)))
            .update_expression(format!("{set} ADD attempts :one"))
            .condition_expression(
                "attribute_not_exists(sinch_message_id) AND attribute_not_exists(sinch_batch_id) \
                 AND attribute_not_exists(erased_at_ms) \
                 AND (attribute_not_exists(send_state) \
                      OR (send_state = :sending AND (attempt_at_ms <= :settle OR attempt = :takeover)))",
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .expression_attribute_names("#person", PERSON);
        if intent.text.is_some() {
            update = update.expression_attribute_names("#text", "text");
        }
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        let old = match update.send().await {
            Ok(_) => return Ok(SendStart::Go),
            Err(SdkError::ServiceError(service)) => match service.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed_check) => {
                    match failed_check.item {
                        Some(item) => item,
                        // Not every DynamoDB implementation returns the old item; read it.
                        None => self
                            .get("begin send", keys::message(&key))
                            .await?
                            .unwrap_or_default(),
                    }
                }
                other => {
                    return Err(StoreError {
                        operation: "begin send",
                        detail: DisplayErrorContext(&other).to_string(),
                    });
                }
            },
            Err(error) => return Err(failed("begin send", error)),
        };
        // Judged in the same order as the in-memory store.
        let state = text(&old, "send_state").and_then(SendState::parse);
        let on_record = text(&old, "attempt").map(str::to_owned);
        Ok(match state {
            Some(SendState::Sent) => {
                // Recorded: tallied again, in case the write that recorded it could not be.
                self.tally_item(&old).await?;
                SendStart::Accepted {
                    sinch_id: sinch_id(&old),
                    recorded: true,
                    attempt: on_record,
                }
            }
            Some(SendState::Failed) => {
                self.tally_item(&old).await?;
                // Ended: counted among its batch's finals again (a set: again is a no-op), in
                // case the write that ended it could not count it (another instance's retry
                // lands here, not in `finish_send`).
                if let Some(batch) = batch_of(&old) {
                    self.batch_final(&batch).await?;
                }
                SendStart::Refused {
                    reason: message_state(&key, &old)
                        .and_then(|state| state.reason().cloned())
                        .unwrap_or_else(|| Reason::new("UNKNOWN", None)),
                }
            }
            _ if sinch_id(&old).is_some() => SendStart::Accepted {
                sinch_id: sinch_id(&old),
                recorded: false,
                attempt: on_record,
            },
            // Stripped by an erasure while an attempt stood: no attempt begins (it would write
            // the recipient back).
            _ if old.contains_key("erased_at_ms") => SendStart::Refused {
                reason: crate::store::erased_reason(),
            },
            // Our own attempt: the SDK retried the update after its first try landed.
            Some(SendState::Sending) if on_record.as_deref() == Some(request.attempt) => {
                SendStart::Go
            }
            // Still sending (or gone between the two reads): someone else's attempt stands.
            _ => SendStart::Unsettled {
                attempt: on_record.unwrap_or_default(),
                attempt_at_ms: number(&old, "attempt_at_ms").unwrap_or_default(),
            },
        })
    }

    async fn finish_send(&self, finish: &SendFinish<'_>) -> Result<Finished, StoreError> {
        let key = MessageKey::Ours(finish.id.to_owned());
        let (target, status, reason) = match finish.result {
            SendResult::Accepted { .. } => (SendState::Sent, Status::Sent, None),
            SendResult::Refused { reason } => {
                (SendState::Failed, Status::Failed, Some(reason.clone()))
            }
            SendResult::Ended { status, reason } => {
                (SendState::Failed, status.clone(), Some(reason.clone()))
            }
        };
        let entry = HistoryEntry {
            status: status.clone(),
            at_ms: finish.at_ms,
            reason,
            channel: None,
        };
        let mut set = format!(
            "send_state = :state, s{rank} = if_not_exists(s{rank}, :status), updated_at_ms = :now",
            rank = status.progress().rank
        );
        let mut values = vec![
            (":state", s(target.as_str())),
            (":status", s(status.as_str())),
            (":now", n(finish.at_ms)),
        ];
        if let SendResult::Accepted { sinch_id: Some(id) } = finish.result {
            let attribute = sinch_id_attribute(id);
            set.push_str(&format!(
                ", {attribute} = if_not_exists({attribute}, :sinch_id)"
            ));
            values.push((":sinch_id", s(id.as_str())));
        }
        let fence = match finish.attempt {
            Some(attempt) => {
                values.push((":sending", s(SendState::Sending.as_str())));
                values.push((":attempt", s(attempt)));
                "send_state = :sending AND attempt = :attempt"
            }
            None => "attribute_exists(pk) AND attribute_not_exists(send_state)",
        };
        let holds = |item: &Item| {
            let state = text(item, "send_state");
            match finish.attempt {
                Some(attempt) => {
                    state == Some(SendState::Sending.as_str())
                        && text(item, "attempt") == Some(attempt)
                }
                None => !item.is_empty() && state.is_none(),
            }
        };
        let written = self
            .write_with_history(
                "finish send",
                HistoryWrite {
                    pk: keys::message(&key),
                    set,
                    add: "",
                    fence: Some((fence, &holds)),
                    names: Vec::new(),
                    values,
                    entry: history_entry(&entry),
                    entry_id: entry_id(&entry, finish.attempt),
                },
            )
            .await?;
        let finished = match &written {
            Written::Applied(_) | Written::AlreadyThere(_) => Finished::Recorded,
            Written::Fenced(item)
                if text(item, "send_state") == Some(target.as_str())
                    && text(item, "attempt") == finish.attempt =>
            {
                Finished::Recorded
            }
            Written::Fenced(_) => Finished::Superseded,
        };
        let item = match &written {
            Written::Applied(old) => old.as_ref(),
            Written::AlreadyThere(item) | Written::Fenced(item) => Some(item),
        };
        if let Some(batch) = item.and_then(batch_of) {
            // What the message holds now: this write's status where it applied, else the item's.
            let now = match &written {
                Written::Applied(old) => tally::after_write(old.as_ref(), &status),
                Written::AlreadyThere(item) | Written::Fenced(item) => {
                    furthest(item).map_or_else(|| status.clone(), |(_, held)| held)
                }
            };
            self.tally(
                &batch,
                &now,
                item.and_then(|item| number(item, "expires_at")),
            )
            .await?;
            if finished == Finished::Recorded && status.is_final() {
                self.batch_final(&batch).await?;
            }
        }
        Ok(match written {
            Written::Applied(_) | Written::AlreadyThere(_) => Finished::Recorded,
            // This very write landed before (the SDK retried it): recorded.
            Written::Fenced(item)
                if text(&item, "send_state") == Some(target.as_str())
                    && text(&item, "attempt") == finish.attempt =>
            {
                Finished::Recorded
            }
            Written::Fenced(_) => Finished::Superseded,
        })
    }

    async fn abandon_send(&self, id: &str, attempt: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::message(&MessageKey::Ours(id.to_owned()))))
            .update_expression("REMOVE send_state, attempt, attempt_at_ms")
            .condition_expression("send_state = :sending AND attempt = :attempt")
            .expression_attribute_values(":sending", s(SendState::Sending.as_str()))
            .expression_attribute_values(":attempt", s(attempt))
            .send()
            .await;
        conditional("abandon send", result).map(|_| ())
    }

    async fn statuses(&self, ids: &[String]) -> Result<Vec<Option<Status>>, StoreError> {
        let pks: Vec<String> = ids
            .iter()
            .map(|id| keys::message(&MessageKey::Ours(id.clone())))
            .collect();
        let projection: Vec<String> = std::iter::once("pk".to_owned())
            .chain(RANKS.iter().map(|rank| format!("s{rank}")))
            .collect();
        let found = self
            .get_many("statuses", &pks, Some(&projection.join(", ")))
            .await?;
        Ok(pks
            .iter()
            .map(|pk| found.get(pk).and_then(furthest).map(|(_, status)| status))
            .collect())
    }

    async fn strip_recipient(&self, id: &str, at_ms: u64) -> Result<(), StoreError> {
        self.strip(&keys::message(&MessageKey::Ours(id.to_owned())), at_ms)
            .await
    }
}
