//! DynamoStore's part: contacts: inbound messages and what they change (the WhatsApp window, keywords' consent), opt-outs from every source, erasure.

use super::*;

impl ContactStore for DynamoStore {
    async fn record_inbound(
        &self,
        inbound: &InboundRecord,
        change: Option<&OptChange>,
    ) -> Result<(), StoreError> {
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), s(keys::inbound(&inbound.id))),
            ("from_channel".to_owned(), s(inbound.from.channel.as_str())),
            ("from_identity".to_owned(), s(&inbound.from.identity)),
            ("to".to_owned(), s(&inbound.to)),
            ("kind".to_owned(), s(&inbound.kind)),
            ("received_at_ms".to_owned(), n(inbound.received_at_ms)),
        ]);
        for (name, value) in [
            ("text", &inbound.text),
            ("contact_id", &inbound.contact_id),
            ("conversation_id", &inbound.conversation_id),
        ] {
            if let Some(value) = value {
                item.insert(name.to_owned(), s(value));
            }
        }
        item.insert(
            "expires_at".to_owned(),
            n(inbound.received_at_ms / 1000 + self.retention.inbound.as_secs()),
        );
        item.insert(PERSON.to_owned(), s(inbound.from.to_string()));
        if let Some(digest) = &inbound.text_digest {
            item.insert("text_length".to_owned(), n(digest.length as u64));
            item.insert("text_sha256".to_owned(), s(&digest.sha256));
        }
        if !inbound.media.is_empty() {
            item.insert(
                "media".to_owned(),
                AttributeValue::L(inbound.media.iter().map(s).collect()),
            );
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError {
            operation: "record inbound",
            detail: e.to_string(),
        };
        // The contact: when they last wrote, and the opt-out this message changes.
        let (contact_expression, by) = match change {
            Some(OptChange::OptOut { by, .. }) => (
                format!("SET last_inbound_at_ms = :at, {OPT_OUT_SET}"),
                Some(by),
            ),
            Some(OptChange::OptIn { .. }) => (
                format!("SET last_inbound_at_ms = :at, {OPT_IN_SET} {OPT_IN_REMOVE}"),
                None,
            ),
            // Kept for the retention from this message, unless opted out (then kept).
            None => (
                "SET last_inbound_at_ms = :at, expires_at = if_not_exists(keep_until, :retain)"
                    .to_owned(),
                None,
            ),
        };
        let mut contact = aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.table)
            .key("pk", s(keys::contact(&inbound.from)))
            .update_expression(contact_expression)
            .expression_attribute_values(":at", n(inbound.received_at_ms))
            .expression_attribute_values(
                ":retain",
                n(inbound.received_at_ms / 1000 + self.retention.contacts.as_secs()),
            );
        if change.is_some() {
            contact = contact.expression_attribute_values(":src", s(OptSource::Keyword.as_str()));
        }
        // A change older than the consent that stands fails the transaction: the handler
        // judged it on a read that a newer change overtook, and judges it again on the retry.
        contact = match change {
            Some(OptChange::OptOut { .. }) => contact.condition_expression(OPT_OUT_IS_NEWER),
            Some(OptChange::OptIn { .. }) => contact
                .condition_expression(OPT_IN_IS_NEWER)
                .expression_attribute_values(":at_in", n(inbound.received_at_ms)),
            None => contact,
        };
        if let Some(by) = by {
            contact = contact
                .expression_attribute_values(":never", n(KEPT))
                .expression_attribute_values(":by", s(by))
                .expression_attribute_values(":at_out", n(inbound.received_at_ms))
                .expression_attribute_values(":list", s(opt_out_list::opt_out_list(&inbound.from)))
                .expression_attribute_values(":okey", s(opt_out_key(&inbound.from)));
        }
        let contact_write = TransactWriteItem::builder()
            .update(contact.build().map_err(build)?)
            .build();
        let inbound_write = TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(build)?,
            )
            .build();
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(inbound_write)
            .transact_items(contact_write);
        if matches!(change, Some(OptChange::OptIn { .. })) {
            // Opting back in lifts an erased contact's opt-out too.
            transaction = transaction.transact_items(
                TransactWriteItem::builder()
                    .delete(
                        aws_sdk_dynamodb::types::Delete::builder()
                            .table_name(&self.table)
                            .key("pk", s(self.hashed_pk(&inbound.from)))
                            .condition_expression(
                                "attribute_not_exists(opted_out_at_ms) OR opted_out_at_ms <= :at_in",
                            )
                            .expression_attribute_values(":at_in", n(inbound.received_at_ms))
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
            );
        }
        transaction
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed("record inbound", e))
    }

    async fn contact(&self, contact: &ContactKey) -> Result<ContactState, StoreError> {
        Ok(self
            .contacts(std::slice::from_ref(contact))
            .await?
            .pop()
            .unwrap_or_default())
    }

    async fn contacts(&self, contacts: &[ContactKey]) -> Result<Vec<ContactState>, StoreError> {
        // Each contact's item, where their opt-out is kept if they were erased, and when they
        // were: one read.
        let pks: Vec<(String, String, String)> = contacts
            .iter()
            .map(|contact| {
                (
                    keys::contact(contact),
                    self.hashed_pk(contact),
                    self.erased_pk(contact),
                )
            })
            .collect();
        let wanted: Vec<String> = pks
            .iter()
            .flat_map(|(plain, hashed, erased)| [plain.clone(), hashed.clone(), erased.clone()])
            .collect();
        let found = self.get_many("contacts", &wanted, None).await?;
        Ok(pks
            .iter()
            .map(|(plain, hashed, erased)| {
                let mut state = found.get(plain).map(contact_state).unwrap_or_default();
                state.erased_at_ms = found
                    .get(erased)
                    .and_then(|item| number(item, "erased_at_ms"));
                if state.opted_out_by.is_none()
                    && let Some(kept) = found.get(hashed).map(contact_state)
                {
                    state.opted_out_by = kept.opted_out_by;
                    state.opted_out_at_ms = kept.opted_out_at_ms;
                    state.opt_source = kept.opt_source;
                }
                state
            })
            .collect())
    }

    async fn set_opt_out(&self, write: &OptWrite<'_>) -> Result<bool, StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact(write.contact)))
            .expression_attribute_values(":src", s(write.source.as_str()));
        let update = if write.opted_out {
            update
                .update_expression(format!("SET {OPT_OUT_SET}"))
                .expression_attribute_values(":never", n(KEPT))
                .condition_expression(format!(
                    "attribute_not_exists(opted_out_by) AND {OPT_OUT_IS_NEWER}"
                ))
                .expression_attribute_values(":by", s(write.reference))
                .expression_attribute_values(":at_out", n(write.at_ms))
                .expression_attribute_values(":list", s(opt_out_list::opt_out_list(write.contact)))
                .expression_attribute_values(":okey", s(opt_out_key(write.contact)))
        } else {
            // Written whether or not they are opted out: the opt-in's time is the person's
            // latest word, which a late opt-out must not override.
            update
                .update_expression(format!("SET {OPT_IN_SET} {OPT_IN_REMOVE}"))
                .expression_attribute_values(":retain", n(Self::expiry(self.retention.contacts)))
                .expression_attribute_values(":at_in", n(write.at_ms))
                .condition_expression(OPT_IN_IS_NEWER)
                .return_values(ReturnValue::AllOld)
        };
        if write.opted_out {
            let written = conditional("set opt-out", update.send().await)?;
            return Ok(written.is_some());
        }
        // Opting back in lifts an erased contact's opt-out too; first, so that a newer one
        // (they were erased since) stands and nothing is written under their number.
        let lifted = match self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(self.hashed_pk(write.contact)))
            .condition_expression(
                "attribute_not_exists(opted_out_at_ms) OR opted_out_at_ms <= :at_in",
            )
            .expression_attribute_values(":at_in", n(write.at_ms))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
        {
            Ok(deleted) => deleted.attributes.is_some_and(|old| !old.is_empty()),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                return Ok(false);
            }
            Err(error) => return Err(failed("set opt-out", error)),
        };
        let Some(old) = conditional("set opt-out", update.send().await)? else {
            // Older than the consent that stands: nothing more changes.
            return Ok(lifted);
        };
        let changed = old
            .attributes
            .is_some_and(|old| old.contains_key("opted_out_by"));
        Ok(changed || lifted)
    }

    async fn opt_outs(
        &self,
        channel: Option<&Channel>,
        after: Option<&ContactKey>,
        limit: usize,
    ) -> Result<OptOutPage, StoreError> {
        self.list_opt_outs(channel, after, limit).await
    }

    async fn erase_contact(
        &self,
        contact: &ContactKey,
        reference: &str,
        at_ms: u64,
        max_items: usize,
    ) -> Result<Erased, StoreError> {
        let mut erased = Erased::default();
        // First, so that nothing accepted before it leaves from here on, wherever it waits.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(self.erased_pk(contact)))
            .item("erased_at_ms", n(at_ms))
            .item("expires_at", n(Self::expiry(ERASURE_REACH)))
            .send()
            .await
            .map_err(|e| failed("erase contact", e))?;
        let limit = i32::try_from(max_items.clamp(1, 1000)).unwrap_or(1000);
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(PEOPLE_INDEX)
            .key_condition_expression("#person = :person")
            .expression_attribute_names("#person", PERSON)
            .expression_attribute_values(":person", s(contact.to_string()))
            .limit(limit)
            .send()
            .await
            .map_err(|e| failed("erase contact", e))?;
        let found = page.items().len();
        for item in page.items() {
            let Some(pk) = text(item, "pk") else { continue };
            if pk.starts_with(keys::INBOUND) || pk.starts_with(keys::SMS_REPORT) {
                // Named in the item, or in its key: the item goes.
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .send()
                    .await
                    .map_err(|e| failed("erase contact", e))?;
                if pk.starts_with(keys::INBOUND) {
                    erased.inbound += 1;
                } else {
                    erased.messages += 1;
                }
            } else if let Some(message) = pk
                .strip_prefix(keys::MESSAGE)
                .map(str::to_owned)
                .or_else(|| fallback::aliased_message(pk).map(|id| format!("ours/{id}")))
            {
                // A message to them, or one that may fall back to them (its alias).
                let alias = pk;
                let pk = format!("{}{message}", keys::MESSAGE);
                let pk = pk.as_str();
                self.strip(pk, at_ms).await?;
                if alias != pk {
                    // Its own key too: its message may be gone (expired) with nothing to list it.
                    self.client
                        .delete_item()
                        .table_name(&self.table)
                        .key("pk", s(alias))
                        .send()
                        .await
                        .map_err(|e| failed("erase contact", e))?;
                }
                // Stripped first (its end's event names no one); then, one of ours that has not
                // left ends here (a send already on its way is fenced by the erasure's mark).
                if let Some(id) = pk.strip_prefix(keys::OUR_MESSAGE) {
                    let canceled = SendResult::Ended {
                        status: Status::Canceled,
                        reason: crate::store::erased_reason(),
                    };
                    let finish = SendFinish {
                        id,
                        attempt: None,
                        result: &canceled,
                        at_ms,
                    };
                    if self.finish_send(&finish).await? == Finished::Recorded {
                        erased.canceled.push(id.to_owned());
                    }
                }
                erased.messages += 1;
            }
        }
        if found >= usize::try_from(limit).unwrap_or(usize::MAX)
            || page.last_evaluated_key().is_some_and(|key| !key.is_empty())
        {
            return Ok(erased);
        }
        // Nothing else names them: the contact goes, an opt-out kept under its keyed hash.
        let state = self.contact(contact).await?;
        erased.opt_out_kept = state.opted_out_by.is_some();
        if erased.opt_out_kept {
            let mut kept: Item = HashMap::from([
                ("pk".to_owned(), s(self.hashed_pk(contact))),
                ("opted_out_by".to_owned(), s(reference)),
            ]);
            if let Some(at) = state.opted_out_at_ms {
                kept.insert("opted_out_at_ms".to_owned(), n(at));
            }
            if let Some(source) = &state.opt_source {
                kept.insert("opt_source".to_owned(), s(source.as_str()));
            }
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(kept))
                .send()
                .await
                .map_err(|e| failed("erase contact", e))?;
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact(contact)))
            .send()
            .await
            .map_err(|e| failed("erase contact", e))?;
        erased.complete = true;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::erasure(reference)))
            .item("channel", s(contact.channel.as_str()))
            .item("inbound", n(u64::from(erased.inbound)))
            .item("messages", n(u64::from(erased.messages)))
            .item("opt_out_kept", AttributeValue::Bool(erased.opt_out_kept))
            .item("at_ms", n(at_ms))
            .item("expires_at", n(Self::expiry(self.retention.messages)))
            .send()
            .await
            .map_err(|e| failed("erase contact", e))?;
        Ok(erased)
    }
}
