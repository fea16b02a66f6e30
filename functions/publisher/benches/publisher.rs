//! The publisher's own cost per 10 events (no network): a stream batch of 10 records read into
//! changes and events (images to state, the derivation), then put as entries into an in-memory
//! sink (JSON details, the size check, the batching).
//!
//! ```sh
//! cargo bench -p publisher --bench publisher
//! ```

use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use criterion::{Criterion, criterion_group, criterion_main};
use publisher::{MemorySink, Pending, Publisher};
use serde_json::json;

/// Ten stream records as Lambda delivers them: each a reply's status moving from SENT to
/// DELIVERED (one event each), with the history DynamoDB keeps.
fn batch() -> Event {
    let records: Vec<_> = (0..10)
        .map(|i| {
            let pk = format!("msg#ours/rpl_01IN{i:022}");
            let history = |statuses: &[(&str, u64)]| {
                json!({"L": statuses.iter().map(|(status, at)| json!({"M": {
                    "status": {"S": status}, "at_ms": {"N": at.to_string()},
                    "channel": {"S": "WHATSAPP"}}})).collect::<Vec<_>>()})
            };
            let common = json!({
                "pk": {"S": pk}, "channel": {"S": "WHATSAPP"}, "to_identity": {"S": "46701234567"},
                "in_reply_to": {"S": format!("01IN{i:022}")}, "send_state": {"S": "SENT"},
                "sinch_message_id": {"S": "01REPLY"}, "text": {"S": "Reply STOP to unsubscribe."},
                "s5": {"S": "SENT"}
            });
            let mut old = common.clone();
            old["history"] = history(&[("SENT", 1_763_870_400_000)]);
            let mut new = common;
            new["s30"] = json!({"S": "DELIVERED"});
            new["history"] = history(&[("SENT", 1_763_870_400_000), ("DELIVERED", 1_763_870_405_000)]);
            json!({
                "eventID": format!("e{i}"), "eventName": "MODIFY", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "eu-west-1",
                "dynamodb": {"ApproximateCreationDateTime": 1_763_870_405, "Keys": {"pk": {"S": pk}},
                    "OldImage": old, "NewImage": new, "SequenceNumber": format!("{i:021}"),
                    "SizeBytes": 512, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a stream event")
}

fn per_ten_events(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let event = batch();
    let pending: Vec<Pending> = event.records.iter().map(Pending::from_record).collect();
    assert_eq!(pending.iter().map(|p| p.events.len()).sum::<usize>(), 10);
    let publisher = Publisher::new(MemorySink::new(100), "sinch-hooks");
    let mut group = c.benchmark_group("publisher/10 events");
    group.bench_function("stream records to events", |b| {
        b.iter(|| {
            event
                .records
                .iter()
                .map(Pending::from_record)
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("events to entries, put (in-memory sink)", |b| {
        b.to_async(&runtime).iter(|| {
            publisher::publish(
                &publisher,
                &pending,
                tokio::time::Instant::now() + Duration::from_secs(5),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, per_ten_events);
criterion_main!(benches);
