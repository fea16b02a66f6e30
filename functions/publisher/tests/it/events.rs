//! Events from committed state, end to end: one story (an inbound WhatsApp HELP and its reply,
//! three delivery reports for the reply in a scrambled order, a STOP) told to the worker's
//! handlers against DynamoDB with a stream on moto; the stream read as Lambda's event source
//! reads it; the publisher putting the events to EventBridge on moto, whose rule sends them to
//! an SQS queue. What reaches the queue is compared with what the story must make, and with
//! what the in-memory store's change feed makes of the same story (the local stack's way).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use pipeline::clock::Clock;
use pipeline::events::DETAIL_TYPES;
use pipeline::handlers::Services;
use pipeline::reply::ReplyPolicy;
use pipeline::store::{
    BatchStore, ContactStore, DeadLetterStore, DynamoStore, MemoryStore, MessageStore, Store,
};
use publisher::poll::StreamPoller;
use publisher::{EventBridgeSink, MemorySink, Pending, Publisher};
use serde_json::{Value, json};
use sinch::client::{ClientConfig, ConversationCredentials, SinchClient, Urls};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PHONE: &str = "46701234567";
const SOURCE: &str = "sinch-hooks";

async fn fake_sinch() -> MockServer {
    let server = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/p/messages:send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01REPLY"})))
        .mount(&server)
        .await;
    server
}

fn services<S: Store>(store: S, sinch: &MockServer) -> Services<S> {
    let mut config = ClientConfig::new(Urls::all_at(&sinch.uri()));
    config.conversation = Some(ConversationCredentials {
        project_id: "p".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    Services {
        privacy: Default::default(),
        store,
        sinch: SinchClient::new(config).expect("a Sinch client"),
        hook: ReplyPolicy::default(),
        app_id: None,
        idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
        send_rules: pipeline::send_rules::SendRules::default(),
        ledger: pipeline::ledger::Ledger::default(),
        pacing: Default::default(),
        clock: Clock::System,
    }
}

fn inbound(id: &str, text: &str) -> String {
    json!({
        "app_id": "app-1", "project_id": "p", "accepted_time": testkit::now_rfc3339(),
        "message": {
            "id": id, "direction": "TO_APP",
            "contact_message": {"text_message": {"text": text}},
            "channel_identity": {"channel": "WHATSAPP", "identity": PHONE, "app_id": "app-1"},
            "contact_id": "c", "conversation_id": "cv"
        }
    })
    .to_string()
}

/// Sinch's `opt_out_notification` (or `opt_in_...`) for `identity` on SMS.
fn opt_notification(key: &str, status: &str, identity: &str) -> String {
    json!({
        "app_id": "app-1", "project_id": "p", "accepted_time": testkit::now_rfc3339(),
        "event_time": "2026-11-23T04:00:00Z",
        key: {
            "request_id": format!("req-{key}"), "channel": "SMS", "identity": identity,
            "status": status, "processing_mode": "DISPATCH"
        }
    })
    .to_string()
}

/// A delivery report for our reply to 01IN1 (its reference comes back in `correlation_id`).
fn report(status: &str, at: &str) -> String {
    json!({
        "app_id": "app-1", "project_id": "p", "accepted_time": at, "event_time": at,
        "correlation_id": "sinch-hooks:rpl_01IN1",
        "message_delivery_report": {
            "message_id": "01REPLY", "conversation_id": "cv", "status": status,
            "channel_identity": {"channel": "WHATSAPP", "identity": PHONE, "app_id": "app-1"},
            "contact_id": "c", "metadata": ""
        }
    })
    .to_string()
}

/// The story: HELP (replied to), the reply's reports DELIVERED, QUEUED_ON_CHANNEL (late), READ,
/// then STOP (opted out, confirmed).
fn story() -> Vec<String> {
    vec![
        inbound("01IN1", "HELP"),
        report("DELIVERED", "2026-11-23T04:00:05Z"),
        report("QUEUED_ON_CHANNEL", "2026-11-23T04:00:02Z"),
        report("READ", "2026-11-23T04:00:09Z"),
        inbound("01IN2", "STOP"),
    ]
}

async fn tell<S: Store>(services: &Services<S>, bodies: &[String]) {
    for body in bodies {
        let envelope = testkit::envelope(body.as_bytes().to_vec());
        let deadline = Instant::now() + Duration::from_secs(5);
        pipeline::process::process(services, &envelope, deadline)
            .await
            .expect("the story is handled");
    }
}

/// What the story must make: detail-type and what tells the event apart, each exactly once.
fn expected() -> Vec<String> {
    let mut expected = vec![
        "Message Received 01IN1 HELP",
        "Message Status Changed rpl_01IN1 null -> SENT (5)",
        "Reply Sent rpl_01IN1 to 01IN1",
        "Message Status Changed rpl_01IN1 SENT -> DELIVERED (30)",
        "Message Status Changed rpl_01IN1 DELIVERED -> READ (40)",
        "Message Received 01IN2 STOP",
        "Contact Opted Out 46701234567 by 01IN2",
        "Message Status Changed rpl_01IN2 null -> SENT (5)",
        "Reply Sent rpl_01IN2 to 01IN2",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    expected.sort();
    expected
}

/// An event (as EventBridge delivers it) in the words of [`expected`].
fn describe(event: &Value) -> String {
    let detail = &event["detail"];
    let text = |v: &Value| v.as_str().unwrap_or("null").to_owned();
    match event["detail-type"].as_str().unwrap_or_default() {
        "Message Received" => format!(
            "Message Received {} {}",
            text(&detail["message_id"]),
            text(&detail["text"])
        ),
        "Message Status Changed" => format!(
            "Message Status Changed {} {} -> {} ({})",
            text(&detail["message_id"]),
            text(&detail["previous_status"]),
            text(&detail["status"]),
            detail["rank"]
        ),
        "Reply Sent" => format!(
            "Reply Sent {} to {}",
            text(&detail["message_id"]),
            text(&detail["in_reply_to"])
        ),
        "Contact Opted Out" => format!(
            "Contact Opted Out {} by {}",
            text(&detail["identity"]),
            text(&detail["by_message_id"])
        ),
        other => format!("{other} {detail}"),
    }
}

/// The events of the story through the in-memory store's change feed (the local stack).
async fn through_memory() -> Vec<Value> {
    let sinch = fake_sinch().await;
    let (store, mut changes) = MemoryStore::with_change_feed();
    tell(&services(store, &sinch), &story()).await;
    let mut pending = Vec::new();
    while let Ok(change) = changes.try_recv() {
        pending.push(Pending::from_change(pending.len().to_string(), &change));
    }
    let sink = MemorySink::new(100);
    let published = publisher::publish(
        &Publisher::new(sink.clone(), SOURCE),
        &pending,
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    assert_eq!(published.failed_from, None);
    let mut events: Vec<Value> = sink.last().iter().map(|entry| entry.envelope()).collect();
    events.reverse();
    events
}

#[tokio::test]
async fn the_story_makes_each_expected_event_once_through_dynamodb_streams_and_eventbridge() {
    let moto = testkit::Moto::start();
    let sdk = moto.sdk_config().await;
    let store = DynamoStore::with_new_table(&sdk, "state")
        .await
        .expect("a table with a stream");
    let sinch = fake_sinch().await;
    tell(&services(store, &sinch), &story()).await;

    // EventBridge on moto: a bus, a rule for everything of ours, an SQS queue as its target.
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events.create_event_bus().name("bus").send().await.unwrap();
    let queue = moto.create_queue("events").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("the queue's ARN");
    events
        .put_rule()
        .name("all")
        .event_bus_name("bus")
        .event_pattern(json!({"source": [SOURCE]}).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("all")
        .event_bus_name("bus")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The stream, read as the event source mapping reads it, published in one batch.
    let mut poller = StreamPoller::for_table(&sdk, "state").await.unwrap();
    let records = poller.poll().await.unwrap();
    assert!(records.len() >= 9, "{} stream records", records.len());
    let pending: Vec<Pending> = records.iter().map(Pending::from_record).collect();
    let publisher = Publisher::new(EventBridgeSink::new(events.clone(), "bus"), SOURCE);
    let deadline = Instant::now() + Duration::from_secs(10);
    let published = publisher::publish(&publisher, &pending, deadline).await;
    assert_eq!(published.failed_from, None);
    assert_eq!(published.records, records.len());
    assert!(published.response().batch_item_failures.is_empty());

    let received = drain(&sqs, &queue, expected().len()).await;
    let mut described: Vec<String> = received.iter().map(describe).collect();
    described.sort();
    assert_eq!(described, expected(), "what reached the queue");

    // Each once, each with its own id; the reply's statuses arrive in rank order.
    let mut ids: Vec<&str> = received.iter().filter_map(|e| event_id(e)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), received.len(), "ids are distinct");
    let ranks: Vec<u64> = received
        .iter()
        .filter(|e| e["detail"]["message_id"] == "rpl_01IN1" && e["detail"]["rank"].is_u64())
        .map(|e| e["detail"]["rank"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(ranks, [5, 30, 40]);

    // The same story through the in-memory store's change feed makes the same events, ids
    // included: one derivation, two sources.
    let local: BTreeMap<String, String> = through_memory()
        .await
        .iter()
        .map(|e| (event_id(e).unwrap_or_default().to_owned(), describe(e)))
        .collect();
    let aws: BTreeMap<String, String> = received
        .iter()
        .map(|e| (event_id(e).unwrap_or_default().to_owned(), describe(e)))
        .collect();
    assert_eq!(local, aws);

    // The stream delivering the batch again (a publisher that crashed before answering):
    // the same events again, with the same ids and details.
    let again = publisher::publish(&publisher, &pending, deadline).await;
    assert_eq!(again.failed_from, None);
    let repeated = drain(&sqs, &queue, expected().len()).await;
    let by_id = |events: &[Value]| -> HashMap<String, Value> {
        events
            .iter()
            .map(|e| {
                (
                    event_id(e).unwrap_or_default().to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(by_id(&repeated), by_id(&received), "duplicates only by id");
}

/// The key prefixes the publisher's stream filter admits, read from template.yaml (each
/// `Pattern` of its `FilterCriteria`, JSON).
fn template_stream_prefixes() -> Vec<String> {
    let template = std::fs::read_to_string(testkit::workspace_root().join("template.yaml"))
        .expect("template.yaml");
    let criteria = template
        .split_once("FilterCriteria:")
        .expect("the publisher's event source mapping has a FilterCriteria")
        .1;
    let prefixes: Vec<String> = criteria
        .lines()
        .skip(1)
        .take_while(|line| line.trim_start().starts_with("- Pattern:") || line.trim() == "Filters:")
        .filter_map(|line| line.trim_start().strip_prefix("- Pattern:"))
        .map(|pattern| {
            let pattern: Value = serde_json::from_str(pattern.trim().trim_matches('\''))
                .expect("each Pattern is JSON");
            pattern["dynamodb"]["Keys"]["pk"]["S"][0]["prefix"]
                .as_str()
                .expect("a key prefix pattern")
                .to_owned()
        })
        .collect();
    // What `serve` applies (and the publisher's own check) is the same list.
    let mut sorted = prefixes.clone();
    sorted.sort();
    let mut ours: Vec<&str> = pipeline::store::EVENT_ITEM_PREFIXES.to_vec();
    ours.sort_unstable();
    assert_eq!(
        sorted, ours,
        "template.yaml's stream filter and EVENT_ITEM_PREFIXES"
    );
    prefixes
}

#[tokio::test]
async fn every_event_validates_against_its_schema_file() {
    let mut events = through_memory().await;
    // A dead-lettered callback and an opt-in too, so that every detail-type is seen.
    let sinch = fake_sinch().await;
    let (store, mut changes) = MemoryStore::with_change_feed();
    let services = services(store, &sinch);
    tell(
        &services,
        &[
            inbound("01OUT", "STOP"),
            inbound("01BACK", "START"),
            // Sinch's own: a failed one changes nothing, a succeeded one opts out, then in.
            opt_notification("opt_out_notification", "OPT_OUT_FAILED", "46709990001"),
            opt_notification("opt_out_notification", "OPT_OUT_SUCCEEDED", "46709990001"),
            opt_notification("opt_out_notification", "OPT_OUT_SUCCEEDED", "46709990001"),
            opt_notification("opt_in_notification", "OPT_IN_SUCCEEDED", "46709990001"),
        ],
    )
    .await;
    // And the API's.
    let contact = pipeline::store::ContactKey::new("WHATSAPP", "46709990002");
    services
        .store
        .set_opt_out(&pipeline::store::OptWrite {
            contact: &contact,
            opted_out: true,
            source: &pipeline::store::OptSource::Api,
            reference: "api_01SCHEMA",
            at_ms: 1_763_870_400_000,
        })
        .await
        .unwrap();
    // And erased (their opt-out kept by its hash).
    let erased = services
        .store
        .erase_contact(&contact, "era_01SCHEMA", 1_763_870_400_000, 100)
        .await
        .unwrap();
    assert!(erased.complete && erased.opt_out_kept);
    services
        .store
        .record_dead_letter(&pipeline::store::DeadLetter {
            message_id: "sqs-1".into(),
            reason: pipeline::process::UNPARSEABLE.into(),
            detail: "not a Sinch callback".into(),
            kind: None,
            at_ms: 1_763_870_400_000,
        })
        .await
        .unwrap();
    // A batch of one, whose message ends: the batch completes.
    let batch = pipeline::store::BatchRecord {
        id: "bat_01SCHEMA".into(),
        caller: "local".into(),
        channel: "SMS_API".into(),
        total: 1,
        refused: 0,
        chunks: 1,
        created_at_ms: 1_763_870_400_000,
        send_at_ms: None,
        canceled: false,
        finals: 0,
        completed_at_ms: None,
    };
    services
        .store
        .create_batch(&batch, &["[]".to_owned()], "{}")
        .await
        .unwrap();
    services
        .store
        .accept_message(&pipeline::store::AcceptedMessage {
            id: "msg_01SCHEMA_0".into(),
            channel: "SMS_API".into(),
            to: "+46701234567".into(),
            metadata: None,
            caller: "local".into(),
            at_ms: 1_763_870_400_000,
            status: pipeline::status::Status::Accepted,
            scheduled_at_ms: None,
            batch: Some(pipeline::store::BatchRef {
                id: "bat_01SCHEMA".into(),
                index: 0,
            }),
            fallback: Vec::new(),
        })
        .await
        .unwrap();
    services
        .store
        .finish_send(&pipeline::store::SendFinish {
            id: "msg_01SCHEMA_0",
            attempt: None,
            result: &pipeline::store::SendResult::Refused {
                reason: pipeline::store::Reason::new("recipient_opted_out", None),
            },
            at_ms: 1_763_870_400_100,
        })
        .await
        .unwrap();
    let admitted = template_stream_prefixes();
    while let Ok(change) = changes.try_recv() {
        let sink = MemorySink::new(10);
        let pending = [Pending::from_change("0", &change)];
        publisher::publish(
            &Publisher::new(sink.clone(), SOURCE),
            &pending,
            Instant::now() + Duration::from_secs(5),
        )
        .await;
        let made = sink.last();
        // In AWS the publisher sees only what the template's filter admits: every item an
        // event comes from must pass it.
        if let Some(snapshot) = change.new.as_ref().or(change.old.as_ref())
            && !made.is_empty()
        {
            assert!(
                admitted.iter().any(|p| p == snapshot.key_prefix()),
                "{} events come from {} items, which template.yaml's stream filter drops",
                made.len(),
                snapshot.key_prefix()
            );
        }
        events.extend(made.iter().map(|entry| entry.envelope()));
    }

    let root = testkit::workspace_root().join("schemas/events");
    let mut seen = BTreeMap::new();
    for (detail_type, file) in DETAIL_TYPES {
        let text = std::fs::read_to_string(root.join(file)).expect("a schema file per type");
        let schema: Value = serde_json::from_str(&text).expect("schemas are JSON");
        let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
        for event in events.iter().filter(|e| e["detail-type"] == detail_type) {
            let errors: Vec<String> = validator
                .iter_errors(&event["detail"])
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(
                errors.is_empty(),
                "{detail_type}: {errors:?} in {}",
                event["detail"]
            );
            *seen.entry(detail_type).or_insert(0) += 1;
        }
    }
    assert_eq!(
        seen.len(),
        DETAIL_TYPES.len(),
        "every detail-type seen: {seen:?}"
    );
    // Each opt-out and opt-in once, saying where it came from.
    let mut opts: Vec<String> = events
        .iter()
        .filter(|e| {
            e["detail-type"] == "Contact Opted Out" || e["detail-type"] == "Contact Opted In"
        })
        .map(|e| {
            let d = &e["detail"];
            format!(
                "{} {}/{} by {} ({})",
                e["detail-type"].as_str().unwrap_or_default(),
                d["channel"].as_str().unwrap_or_default(),
                d["identity"].as_str().unwrap_or_default(),
                d["by"].as_str().unwrap_or_default(),
                d["by_message_id"]
                    .as_str()
                    .or(d["opt_out_message_id"].as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    opts.sort();
    // The story's STOP; STOP and START in the second store; Sinch's (the failed one and the
    // second success change nothing), and the API's. An opt-in names the opt-out it ends.
    let mut expected = vec![
        "Contact Opted In SMS/46709990001 by sinch (sinch_req-opt_out_notification)".to_owned(),
        format!("Contact Opted In WHATSAPP/{PHONE} by keyword (01OUT)"),
        "Contact Opted Out SMS/46709990001 by sinch (sinch_req-opt_out_notification)".to_owned(),
        format!("Contact Opted Out WHATSAPP/{PHONE} by keyword (01IN2)"),
        format!("Contact Opted Out WHATSAPP/{PHONE} by keyword (01OUT)"),
        "Contact Opted Out WHATSAPP/46709990002 by api (api_01SCHEMA)".to_owned(),
    ];
    expected.sort();
    assert_eq!(opts, expected);
}

/// Our id of an event: EventBridge gives each delivery an `id` of its own, ours is in the
/// detail.
fn event_id(event: &Value) -> Option<&str> {
    event["detail"]["event_id"].as_str()
}

/// Reads `count` messages from the queue (bodies as JSON), deleting them.
async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str, count: usize) -> Vec<Value> {
    let mut received = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while received.len() < count && Instant::now() < until {
        let output = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        for message in output.messages() {
            received.push(serde_json::from_str(message.body().unwrap_or_default()).unwrap());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
    // Nothing more than expected.
    let extra = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(extra.messages().is_empty(), "more events than expected");
    received
}
