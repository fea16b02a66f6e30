//! Least privilege, proven: each function's own flows run against moto with its IAM
//! enforcement on, as an identity holding exactly the policy template.yaml gives that
//! function's role (read from the template by `tools/testkit/iam_identity.py`, not copied), so
//! a permission the template lacks fails here, and one it should not have is refused here.
//! moto judges resources and `dynamodb:LeadingKeys` as AWS does (`tools/testkit/moto_iam.py`).
//!
//! Not covered, because no function's code makes the call (AWS does, under the role): the SQS
//! event source's ReceiveMessage / DeleteMessage / GetQueueAttributes are made here by the test
//! as the worker, as the event source would; the publisher's stream reads (its event source
//! mapping's DescribeStream, GetShardIterator, GetRecords, ListStreams) are not, and the
//! `kms:Decrypt` grant (moto's secrets are not under a customer key) is checked by
//! `check-template.py` only.

use super::common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use lambda_http::{Body, Request};
use pipeline::clock::Clock;
use pipeline::config::Env;
use pipeline::queue::{SqsQueue, enqueue_client};
use pipeline::store::{DynamoStore, MessageKey, MessageStore, dynamodb_client};
use receiver::{Outcome, Receiver, handle_request};
use serde_json::{Value, json};
use sinch::signature::sign_headers;
use sinch_hooks::stack::event_source::{EventSourceConfig, Source, SqsSource};
use testkit::Moto;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const SECRET: &str = "least-privilege-secret";

/// An identity on moto with exactly the template's policy for `role`.
struct Identity {
    sdk: SdkConfig,
    policy: Value,
}

fn identity_args(resources: &[(&str, String)]) -> Vec<String> {
    resources
        .iter()
        .flat_map(|(name, value)| ["--set".to_owned(), format!("{name}={value}")])
        .collect()
}

async fn identity(moto: &Moto, role: &str, resources: &[(&str, String)]) -> Identity {
    let script = testkit::workspace_root().join("tools/testkit/iam_identity.py");
    let template = testkit::workspace_root().join("template.yaml");
    let output = Command::new(Moto::python())
        .arg(&script)
        .args(["--endpoint", moto.endpoint(), "--role", role])
        .arg("--template")
        .arg(&template)
        .args(identity_args(resources))
        .output()
        .expect("iam_identity.py runs");
    assert!(
        output.status.success(),
        "iam_identity.py {role}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).expect("its JSON");
    let sdk = testkit::sdk_config_as(
        moto.endpoint(),
        created["access_key_id"].as_str().unwrap(),
        created["secret_access_key"].as_str().unwrap(),
    )
    .await;
    Identity {
        sdk,
        policy: created["policy"].clone(),
    }
}

fn denied<E: std::fmt::Debug>(result: Result<impl std::fmt::Debug, E>, what: &str) {
    let error = format!("{:?}", result.expect_err(what));
    assert!(
        error.contains("AccessDenied"),
        "{what}: refused, but not for access: {error}"
    );
}

fn signed(body: &[u8], timestamp: u64) -> Request {
    let signed = sign_headers(SECRET, body, &ulid::Ulid::generate().to_string(), timestamp);
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/webhook");
    for (name, value) in signed.pairs() {
        builder = builder.header(name, value.to_string());
    }
    builder
        .body(Body::Text(String::from_utf8_lossy(body).into_owned()))
        .unwrap()
}

async fn secret(sdk: &SdkConfig, name: &str, value: &str) -> String {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("moto stores the secret")
        .arn
        .expect("its ARN")
}

async fn queue_arn(sdk: &SdkConfig, url: &str) -> String {
    aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_works_with_exactly_its_templates_policy_and_no_more() {
    let moto = Moto::start();
    let admin = moto.sdk_config().await;

    // What the stack would create, as an administrator, before enforcement is on.
    let mut urls = std::collections::HashMap::new();
    let mut resources: Vec<(&str, String)> = Vec::new();
    for (logical, name) in [
        ("CallbackQueue", "callbacks"),
        ("DeadLetterQueue", "callbacks-dlq"),
        ("OutboundQueue", "outbound"),
        ("OutboundDeadLetterQueue", "outbound-dlq"),
        ("BulkQueue", "bulk"),
        ("BulkDeadLetterQueue", "bulk-dlq"),
        ("EventsFailureQueue", "events-failures"),
    ] {
        let url = moto.create_queue(name).await;
        let arn: &'static str = Box::leak(format!("{logical}.Arn").into_boxed_str());
        resources.push((arn, queue_arn(&admin, &url).await));
        urls.insert(logical, url);
    }
    let arns: std::collections::HashMap<&str, String> = resources.iter().cloned().collect();
    // The scheduler's group and role, as the stack makes them.
    aws_sdk_scheduler::Client::new(&admin)
        .create_schedule_group()
        .name("sends")
        .send()
        .await
        .expect("moto makes the schedule group");
    resources.push(("ScheduleGroup", "sends".into()));
    resources.push((
        "SchedulerRole.Arn",
        "arn:aws:iam::123456789012:role/scheduler".into(),
    ));
    let table = DynamoStore::with_new_table(&admin, "state").await.unwrap();
    let described = aws_sdk_dynamodb::Client::new(&admin)
        .describe_table()
        .table_name("state")
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    resources.push(("StateTable.Arn", described.table_arn.unwrap()));
    resources.push(("StateTable.StreamArn", described.latest_stream_arn.unwrap()));
    drop(table);
    let bus = aws_sdk_eventbridge::Client::new(&admin)
        .create_event_bus()
        .name("sinch-hooks")
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    resources.push(("EventBus.Arn", bus));
    let webhook_secret = secret(&admin, "webhook", SECRET).await;
    let key_secret = secret(&admin, "key", "key-secret").await;
    let sms_token = secret(&admin, "sms", "sms-token").await;
    resources.push(("WebhookSecretArn", webhook_secret.clone()));
    resources.push(("SinchKeySecretArn", key_secret.clone()));
    resources.push(("SinchSmsApiTokenArn", sms_token.clone()));
    let hash_key = secret(&admin, "contact-hash", "a contact hash key for the test").await;
    resources.push(("ContactHashKey", hash_key.clone()));
    for group in ["Receiver", "Worker", "Api", "Publisher"] {
        let name: &'static str = Box::leak(format!("{group}LogGroup.Arn").into_boxed_str());
        resources.push((
            name,
            format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{group}:*"),
        ));
    }
    let receiver_id = identity(&moto, "ReceiverRole", &resources).await;
    let worker_id = identity(&moto, "WorkerRole", &resources).await;
    let api_id = identity(&moto, "ApiRole", &resources).await;
    let publisher_id = identity(&moto, "PublisherRole", &resources).await;
    let actions = |policy: &Value| policy["Statement"].to_string();
    assert!(
        !actions(&worker_id.policy).contains("ChangeMessageVisibility")
            && !actions(&worker_id.policy).contains("ConditionCheckItem"),
        "no action the worker never uses"
    );

    moto.enforce_iam().await;
    let refused = aws_sdk_sqs::Client::new(&admin).list_queues().send().await;
    assert!(
        format!("{refused:?}").contains("InvalidClientTokenId"),
        "the dummy administrator is refused once IAM is enforced: {refused:?}"
    );

    // The receiver: its secret, then callbacks onto the queue (and a stale one onto the DLQ).
    let env = Env::from_lookup({
        let arn = webhook_secret.clone();
        move |name| (name == "SINCH_WEBHOOK_SECRET_ARN").then(|| arn.clone())
    });
    let fetched =
        pipeline::secrets::fetch(&env, &aws_sdk_secretsmanager::Client::new(&receiver_id.sdk))
            .await
            .expect("the receiver reads its secret");
    assert_eq!(fetched["SINCH_WEBHOOK_SECRET"], SECRET);
    let env = Env::from_lookup({
        let (callbacks, dlq) = (
            urls["CallbackQueue"].clone(),
            urls["DeadLetterQueue"].clone(),
        );
        move |name| match name {
            "SINCH_WEBHOOK_SECRET" => Some(SECRET.to_owned()),
            "QUEUE_URL" => Some(callbacks.clone()),
            "DEAD_LETTER_QUEUE_URL" => Some(dlq.clone()),
            _ => None,
        }
    });
    let config = receiver::config::ReceiverConfig::from_env(&env).expect("a receiver config");
    let queue = |url: &str| {
        SqsQueue::new(
            enqueue_client(&receiver_id.sdk, Duration::from_secs(5)),
            url,
        )
    };
    let receiver = Receiver::new(
        &config,
        queue(&urls["CallbackQueue"]),
        queue(&urls["DeadLetterQueue"]),
    );
    let now = common::now();
    for body in [
        common::inbound("01LEASTHELP", "HELP"),
        b"{not json".to_vec(),
    ] {
        let outcome = handle_request(&receiver, signed(&body, now)).await;
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    }
    let stale = handle_request(
        &receiver,
        signed(&common::inbound("01OLD", "hi"), now - 3600),
    )
    .await;
    assert!(matches!(stale, Outcome::DeadLettered { .. }), "{stale:?}");
    denied(
        aws_sdk_dynamodb::Client::new(&receiver_id.sdk)
            .get_item()
            .table_name("state")
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("contact#SMS/1".into()),
            )
            .send()
            .await,
        "the receiver has no table",
    );
    denied(
        aws_sdk_sqs::Client::new(&receiver_id.sdk)
            .send_message()
            .queue_url(&urls["OutboundQueue"])
            .message_body("x")
            .send()
            .await,
        "the receiver cannot send",
    );

    // The messages API: a send, its status; nothing of the worker's.
    let api = api::Api {
        store: DynamoStore::new(dynamodb_client(&api_id.sdk), "state"),
        lanes: pipeline::schedule::Lanes {
            transactional: SqsQueue::new(
                enqueue_client(&api_id.sdk, Duration::from_secs(5)),
                &urls["OutboundQueue"],
            ),
            bulk: SqsQueue::new(
                enqueue_client(&api_id.sdk, Duration::from_secs(5)),
                &urls["BulkQueue"],
            ),
        },
        scheduler: pipeline::schedule::EventBridgeScheduler::new(
            &api_id.sdk,
            enqueue_client(&api_id.sdk, Duration::from_secs(5)),
            pipeline::schedule::Dispatch {
                scheduler_role_arn: "arn:aws:iam::123456789012:role/scheduler".into(),
                schedule_group: "sends".into(),
                lanes: pipeline::schedule::Lanes {
                    transactional: pipeline::schedule::LaneQueue {
                        url: urls["OutboundQueue"].clone(),
                        arn: arns["OutboundQueue.Arn"].clone(),
                    },
                    bulk: pipeline::schedule::LaneQueue {
                        url: urls["BulkQueue"].clone(),
                        arn: arns["BulkQueue.Arn"].clone(),
                    },
                },
            },
        ),
        config: api::ApiConfig {
            channels: api::request::Channels {
                conversation_app: Some("app".into()),
                sms_api: true,
                default_sms_sender: Some("46700000001".into()),
            },
            // Every guard on, so that each send reads and writes their counters.
            guards: api::guards::Guards {
                allowed_countries: pipeline::send_rules::Countries::of(["46"]),
                velocity: Some(api::guards::Velocity {
                    limit: 100,
                    window_ms: 3_600_000,
                    prefix_digits: 6,
                }),
                monthly_caps: [("SMS_API".to_owned(), 1000), ("WHATSAPP".to_owned(), 1000)]
                    .into_iter()
                    .collect(),
                fast_lane_batch_callers: Vec::new(),
            },
            ..api::ApiConfig::default()
        },
        clock: Clock::System,
    };
    let post = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/messages")
        .header("content-type", "application/json")
        .header("idempotency-key", "least-1")
        .body(Body::Text(
            json!({"to": "+46701234567", "channel": "SMS_API", "text": "Your code is 1234"})
                .to_string(),
        ))
        .unwrap();
    let response = api::handle(&api, post).await;
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        _ => String::new(),
    };
    assert_eq!(response.status(), 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("https://api.example.com/messages/{id}"))
        .body(Body::Empty)
        .unwrap();
    assert_eq!(api::handle(&api, get).await.status(), 200);
    // A batch of two (its record, chunk, fan-out on the bulk lane), read back; a send an hour
    // ahead (an EventBridge schedule), then canceled (the schedule removed).
    let call = |method: &str, uri: &str, key: Option<&str>, body: Option<Value>| {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("https://api.example.com{uri}"))
            .header("content-type", "application/json");
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        builder
            .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
            .unwrap()
    };
    let answer = |response: lambda_http::Response<Body>| {
        let status = response.status().as_u16();
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str::<Value>(text).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        (status, body)
    };
    let (status, batch) = answer(
        api::handle(
            &api,
            call(
                "POST",
                "/batches",
                Some("least-batch"),
                Some(json!({"channel": "SMS_API", "text": "Hi ${name}",
                    "recipients": [{"to": "+46701111111", "parameters": {"name": "Ada"}},
                                   {"to": "+46702222222", "parameters": {"name": "Bo"}}]})),
            ),
        )
        .await,
    );
    assert_eq!(
        (status, batch["accepted"].as_u64()),
        (202, Some(2)),
        "{batch}"
    );
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    let (status, view) = answer(
        api::handle(
            &api,
            call("GET", &format!("/batches/{batch_id}"), None, None),
        )
        .await,
    );
    assert_eq!((status, view["total"].as_u64()), (200, Some(2)), "{view}");
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, scheduled) = answer(
        api::handle(
            &api,
            call(
                "POST",
                "/messages",
                Some("least-later"),
                Some(json!({"to": "+46703333333", "channel": "SMS_API", "text": "later", "send_at": later})),
            ),
        )
        .await,
    );
    assert_eq!(
        (status, scheduled["status"].as_str()),
        (202, Some("SCHEDULED")),
        "{scheduled}"
    );
    let scheduled_id = scheduled["id"].as_str().unwrap().to_owned();
    // moto's own view of what it made (the admin's credentials no longer pass).
    let schedules = || async {
        let state = reqwest::get(format!("{}/moto-api/data.json", moto.endpoint()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        state.matches(&format!("\"msg-{scheduled_id}\"")).count()
    };
    assert!(schedules().await > 0, "the API made its schedule");
    let (status, canceled) = answer(
        api::handle(
            &api,
            call("DELETE", &format!("/messages/{scheduled_id}"), None, None),
        )
        .await,
    );
    assert_eq!(
        (status, canceled["status"].as_str()),
        (200, Some("CANCELED")),
        "{canceled}"
    );
    // moto's dump keeps what was ever made: ask for the schedule's removal again instead.
    let again = aws_sdk_scheduler::Client::new(&api_id.sdk)
        .delete_schedule()
        .name(format!("msg-{scheduled_id}"))
        .group_name("sends")
        .send()
        .await;
    assert!(
        again
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "the cancel removed the schedule: {again:?}"
    );
    // The opt-out API: set one (UpdateItem on the contact), read it, page the list (a Query
    // on the index), lift it.
    let (status, set) =
        answer(api::handle(&api, call("PUT", "/optouts/SMS/46704444444", None, None)).await);
    assert_eq!(
        (status, set["changed"].as_bool()),
        (200, Some(true)),
        "{set}"
    );
    let (status, list) = answer(api::handle(&api, call("GET", "/optouts", None, None)).await);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["identity"], "46704444444", "{list}");
    let (status, lifted) =
        answer(api::handle(&api, call("DELETE", "/optouts/SMS/46704444444", None, None)).await);
    assert_eq!(
        (status, lifted["changed"].as_bool()),
        (200, Some(true)),
        "{lifted}"
    );
    let api_dynamo = aws_sdk_dynamodb::Client::new(&api_id.sdk);
    denied(
        api_dynamo
            .query()
            .table_name("state")
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S("in#01LEASTHELP".into()),
            )
            .send()
            .await,
        "the API cannot query the table itself",
    );
    denied(
        api_dynamo
            .put_item()
            .table_name("state")
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("idem#conversation/message/x".into()),
            )
            .send()
            .await,
        "the API cannot write the worker's keys",
    );
    denied(
        api_dynamo
            .get_item()
            .table_name("state")
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("in#01LEASTHELP".into()),
            )
            .send()
            .await,
        "the API cannot read inbound messages",
    );

    // The worker: the event source's receives (as the worker), each callback and the send.
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/p/messages:send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "01OUT"})))
        .mount(&sinch)
        .await;
    Mock::given(method("POST"))
        .and(path("/xms/v1/plan/batches"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "01BATCH"})))
        .mount(&sinch)
        .await;
    let mut sinch_config =
        sinch::client::ClientConfig::new(sinch::client::Urls::all_at(&sinch.uri()));
    sinch_config.conversation = Some(sinch::client::ConversationCredentials {
        project_id: "p".into(),
        key_id: "k".into(),
        key_secret: "s".into(),
    });
    sinch_config.sms = Some(sinch::client::SmsCredentials {
        service_plan_id: "plan".into(),
        api_token: "t".into(),
    });
    let store = DynamoStore::new(dynamodb_client(&worker_id.sdk), "state");
    let worker = Arc::new(worker::Worker {
        services: pipeline::handlers::Services {
            privacy: Default::default(),
            store: store.clone(),
            sinch: sinch::client::SinchClient::new(sinch_config).unwrap(),
            hook: pipeline::reply::ReplyPolicy::default(),
            app_id: Some("app".into()),
            idempotency_ttl: pipeline::handlers::DEFAULT_IDEMPOTENCY_TTL,
            send_rules: pipeline::send_rules::SendRules::default(),
            ledger: pipeline::ledger::Ledger::default(),
            // Paced: every send takes its slot from the store.
            pacing: pipeline::pacing::Pacing::new(Some(50.0), Some(50.0)),
            clock: Clock::System,
        },
        dead_letters: SqsQueue::new(
            enqueue_client(&worker_id.sdk, Duration::from_secs(5)),
            &urls["DeadLetterQueue"],
        ),
        lanes: pipeline::schedule::Lanes {
            transactional: SqsQueue::new(
                enqueue_client(&worker_id.sdk, Duration::from_secs(5)),
                &urls["OutboundQueue"],
            ),
            bulk: SqsQueue::new(
                enqueue_client(&worker_id.sdk, Duration::from_secs(5)),
                &urls["BulkQueue"],
            ),
        },
        scheduler: pipeline::schedule::MemoryScheduler::new(),
        concurrency: 4,
        metrics: pipeline::metrics::Metrics::off(),
        outbound_max_receives: 5,
        store_health: Default::default(),
    });
    let fetched = pipeline::secrets::fetch(
        &Env::from_lookup({
            let (key, sms) = (key_secret.clone(), sms_token.clone());
            move |name| match name {
                "SINCH_KEY_SECRET_ARN" => Some(key.clone()),
                "SINCH_SMS_API_TOKEN_ARN" => Some(sms.clone()),
                _ => None,
            }
        }),
        &aws_sdk_secretsmanager::Client::new(&worker_id.sdk),
    )
    .await
    .expect("the worker reads its secrets");
    assert_eq!(fetched.len(), 2);
    let mut handled = 0;
    // The bulk lane twice: the batch's fan-out, then the two sends it queued there.
    for queue in ["CallbackQueue", "OutboundQueue", "BulkQueue", "BulkQueue"] {
        let source = SqsSource {
            client: aws_sdk_sqs::Client::new(&worker_id.sdk),
            queue_url: urls[queue].clone(),
            dead_letter_queue_url: String::new(),
            config: EventSourceConfig::default(),
        };
        let records = source.receive(10).await;
        assert!(!records.is_empty(), "the worker receives from {queue}");
        let receipts: Vec<String> = records
            .iter()
            .map(|r| r["receiptHandle"].as_str().unwrap_or_default().to_owned())
            .collect();
        let event = serde_json::from_value(json!({"Records": records})).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for (_, outcome) in worker::process_batch(worker.clone(), event, deadline).await {
            assert!(
                !matches!(outcome, worker::RecordOutcome::Retry { .. }),
                "{queue}: {outcome:?}"
            );
            handled += 1;
        }
        source.delete(receipts).await;
    }
    assert_eq!(
        handled, 6,
        "HELP, the poison, the send, the fan-out, the batch's two sends"
    );
    let (_, view) = answer(
        api::handle(
            &api,
            call("GET", &format!("/batches/{batch_id}"), None, None),
        )
        .await,
    );
    assert_eq!(view["counts"]["SENT"].as_u64(), Some(2), "{view}");
    // A delivery report for the reply.
    let report = json!({"app_id": "app", "correlation_id": "sinch-hooks:rpl_01LEASTHELP",
        "event_time": testkit::now_rfc3339(),
        "message_delivery_report": {"message_id": "01OUT", "status": "DELIVERED",
            "channel_identity": {"channel": "WHATSAPP", "identity": "46701234567"}}})
    .to_string();
    let envelope = testkit::envelope(report.into_bytes());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    pipeline::process::process(&worker.services, &envelope, deadline)
        .await
        .expect("the report is applied");
    let reply = store
        .message_state(&MessageKey::Ours("rpl_01LEASTHELP".into()))
        .await
        .unwrap()
        .expect("the reply's state");
    assert_eq!(reply.status, "DELIVERED");
    let sent = store
        .message_state(&MessageKey::Ours(id.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, "SENT");
    denied(
        aws_sdk_dynamodb::Client::new(&worker_id.sdk)
            .put_item()
            .table_name("state")
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("idem#api/x/{id}")),
            )
            .send()
            .await,
        "the worker cannot touch the API's keys",
    );
    denied(
        aws_sdk_sqs::Client::new(&worker_id.sdk)
            .change_message_visibility()
            .queue_url(&urls["CallbackQueue"])
            .receipt_handle("r")
            .visibility_timeout(1)
            .send()
            .await,
        "the worker has no ChangeMessageVisibility",
    );

    // The key of erased contacts' opt-outs: the worker's and the API's to read.
    for (who, name) in [(&worker_id, "worker"), (&api_id, "api")] {
        let env = Env::from_lookup({
            let arn = hash_key.clone();
            move |setting| (setting == "CONTACT_HASH_KEY_ARN").then(|| arn.clone())
        });
        let fetched =
            pipeline::secrets::fetch(&env, &aws_sdk_secretsmanager::Client::new(&who.sdk))
                .await
                .unwrap_or_else(|e| panic!("the {name} reads the contact hash key: {e}"));
        assert_eq!(
            fetched["CONTACT_HASH_KEY"],
            "a contact hash key for the test"
        );
    }
    // Erasure through the API of the person the worker handled (their inbound message, the
    // reply to it), opted out first so that the keyed opt-out is written too.
    let (status, _) = answer(
        api::handle(
            &api,
            call("PUT", "/optouts/WHATSAPP/46701234567", None, None),
        )
        .await,
    );
    assert_eq!(status, 200);
    let (status, erased) = answer(
        api::handle(
            &api,
            call("DELETE", "/contacts/WHATSAPP/46701234567", None, None),
        )
        .await,
    );
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["opt_out_kept"], true, "{erased}");
    assert!(erased["erased"]["inbound"].as_u64() >= Some(1), "{erased}");
    assert!(erased["erased"]["messages"].as_u64() >= Some(1), "{erased}");

    // The publisher: events onto its bus, failures onto its queue.
    let sink = publisher::EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&publisher_id.sdk),
        "sinch-hooks",
    );
    let entry = publisher::Entry {
        event_id: "e1".into(),
        source: "sinch-hooks".into(),
        detail_type: "Message Status Changed".into(),
        detail: json!({"event_id": "e1"}).to_string(),
        time_ms: 1_764_576_000_000,
        item: "msg#ours/x".into(),
    };
    let results = publisher::EventSink::put(&sink, &[&entry])
        .await
        .expect("the publisher puts events on its bus");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let other_bus = publisher::EventBridgeSink::new(
        aws_sdk_eventbridge::Client::new(&publisher_id.sdk),
        "default",
    );
    let refused = publisher::EventSink::put(&other_bus, &[&entry]).await;
    assert!(
        format!("{refused:?}").contains("AccessDenied"),
        "not on another bus: {refused:?}"
    );
    aws_sdk_sqs::Client::new(&publisher_id.sdk)
        .send_message()
        .queue_url(&urls["EventsFailureQueue"])
        .message_body("a failed batch")
        .send()
        .await
        .expect("its on-failure destination");
}
