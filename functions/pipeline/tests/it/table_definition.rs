//! The table the stack creates (`serve --aws-endpoint`, the tests: [`DynamoStore::create_table`])
//! is template.yaml's: the same keys, attributes, indexes, billing, stream view and TTL
//! attribute, read back from DynamoDB (moto) and from the template (with cfn-lint's loader), so
//! that a change to one that the other lacks fails here.

use std::process::Command;

use pipeline::store::dynamodb_client;
use serde_json::{Value, json};
use testkit::Moto;

/// The template's table, as `tools/testkit/template_table.py` describes it.
fn template_table() -> Value {
    let root = testkit::workspace_root();
    let output = Command::new(Moto::python())
        .arg(root.join("tools/testkit/template_table.py"))
        .arg(root.join("template.yaml"))
        .output()
        .expect("template_table.py runs");
    assert!(
        output.status.success(),
        "template_table.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("its JSON")
}

#[tokio::test]
async fn the_table_the_stack_creates_is_the_templates() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let store = testkit::dynamo_store(&moto).await;
    let client = dynamodb_client(&sdk);
    let described = client
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let table = described.table().expect("a table");
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<Value> {
        schema
            .iter()
            .map(|key| json!([key.attribute_name(), key.key_type().as_str()]))
            .collect()
    };
    let mut attributes: Vec<Value> = table
        .attribute_definitions()
        .iter()
        .map(|a| json!([a.attribute_name(), a.attribute_type().as_str()]))
        .collect();
    attributes.sort_by_key(Value::to_string);
    let mut indexes: Vec<Value> = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            json!([
                index.index_name(),
                keys(index.key_schema()),
                index
                    .projection()
                    .and_then(|p| p.projection_type())
                    .map(|t| t.as_str())
            ])
        })
        .collect();
    indexes.sort_by_key(Value::to_string);
    let ttl = client
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let ttl = ttl
        .time_to_live_description()
        .filter(|d| {
            d.time_to_live_status()
                .is_some_and(|s| s.as_str() == "ENABLED")
        })
        .and_then(|d| d.attribute_name());
    let created = json!({
        "key_schema": keys(table.key_schema()),
        "attributes": attributes,
        "indexes": indexes,
        "billing_mode": table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str()),
        "stream_view": table
            .stream_specification()
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str()),
        "ttl_attribute": ttl,
    });
    let mut template = template_table();
    // The same sort as above (the script sorts Python's way).
    for list in ["attributes", "indexes"] {
        if let Some(items) = template[list].as_array_mut() {
            items.sort_by_key(Value::to_string);
        }
    }
    assert_eq!(created, template);
}
