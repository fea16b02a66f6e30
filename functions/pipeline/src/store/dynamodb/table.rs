//! The table: created as template.yaml defines it (checked by `tests/it/table_definition.rs`),
//! for the local stack and the tests.

use super::*;

impl DynamoStore {
    /// Creates the table as the SAM template does with events on (on-demand, `pk`, TTL on
    /// `expires_at`, a stream of new and old images), for the local stack and tests. A table of that
    /// name already there (the SDK retrying a create that was answered late) is taken as it is.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
            TimeToLiveSpecification,
        };
        let error = |e: String| StoreError {
            operation: "create table",
            detail: e,
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| error(e.to_string()))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| error(e.to_string()))
        };
        // The opted-out contacts, in order: only they carry the index's keys (a sparse index).
        let opt_outs = GlobalSecondaryIndex::builder()
            .index_name(OPT_OUT_INDEX)
            .key_schema(key(OPT_OUT_LIST, KeyType::Hash)?)
            .key_schema(key(OPT_OUT_KEY, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| error(e.to_string()))?;
        // Who each item names (inbound messages, message states): what an erasure finds.
        let people = GlobalSecondaryIndex::builder()
            .index_name(PEOPLE_INDEX)
            .key_schema(key(PERSON, KeyType::Hash)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(|e| error(e.to_string()))?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attribute("pk")?)
            .attribute_definitions(attribute(PERSON)?)
            .global_secondary_indexes(people)
            .attribute_definitions(attribute(OPT_OUT_LIST)?)
            .attribute_definitions(attribute(OPT_OUT_KEY)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .global_secondary_indexes(opt_outs)
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(|e| error(e.to_string()))?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Our own first attempt, answered too late for the SDK, which tried again (seen on
            // a loaded machine): the table is there.
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    aws_sdk_dynamodb::operation::create_table::CreateTableError::ResourceInUseException(_)
                ) => {}
            Err(e) => return Err(error(DisplayErrorContext(&e).to_string())),
        }
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name("expires_at")
            .enabled(true)
            .build()
            .map_err(|e| error(e.to_string()))?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| error(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    /// A store on a table created for it (tests, and a stack starting from nothing).
    pub async fn with_new_table(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
    ) -> Result<Self, StoreError> {
        let store = Self::new(dynamodb_client(sdk), table);
        store.create_table().await?;
        Ok(store)
    }

    /// Creates the table unless it exists (the local stack against moto, LocalStack or AWS).
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        if self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        self.create_table().await
    }
}
