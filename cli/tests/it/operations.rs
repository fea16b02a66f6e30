//! `register-webhook` against a fake Sinch, and `redrive` against SQS on moto_server, run as
//! processes.

use assert_cmd::Command;
use serde_json::json;
use testkit::Moto;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PROJECT: &str = "/v1/projects/p-1";

async fn fake_sinch(existing: serde_json::Value) -> MockServer {
    let server = testkit::fake_sinch().await;
    Mock::given(method("GET"))
        .and(path(format!("{PROJECT}/apps/app-1/webhooks")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "webhooks": existing })))
        .mount(&server)
        .await;
    server
}

fn cli(server: &MockServer) -> Command {
    let mut command = Command::cargo_bin("sinch-hooks").unwrap();
    command
        .env("SINCH_PROJECT_ID", "p-1")
        .env("SINCH_KEY_ID", "key")
        .env("SINCH_KEY_SECRET", "key-secret")
        .env("SINCH_APP_ID", "app-1")
        .env("SINCH_AUTH_URL", server.uri())
        .env("SINCH_CONVERSATION_URL", server.uri())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("SINCH_KEY_SECRET_ARN")
        .env_remove("SINCH_WEBHOOK_SECRET_ARN");
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_target_is_created_with_the_default_triggers() {
    let server = fake_sinch(json!([{"id": "w-0", "app_id": "app-1", "target": "https://old.example.com/webhook", "target_type": "HTTP", "triggers": ["MESSAGE_INBOUND"]}])).await;
    Mock::given(method("POST"))
        .and(path(format!("{PROJECT}/webhooks")))
        .and(body_partial_json(json!({
            "app_id": "app-1", "target": "https://new.example.com/webhook", "target_type": "HTTP",
            "triggers": ["MESSAGE_INBOUND", "MESSAGE_DELIVERY", "EVENT_DELIVERY", "CONTACT_CREATE"],
            "secret": "new-secret"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "w-1", "app_id": "app-1", "target": "https://new.example.com/webhook", "target_type": "HTTP",
            "triggers": ["MESSAGE_INBOUND", "MESSAGE_DELIVERY", "EVENT_DELIVERY", "CONTACT_CREATE"]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let (code, out, err) = run(cli(&server).args([
        "register-webhook",
        "--url",
        "https://new.example.com/webhook",
        "--secret",
        "new-secret,old-secret",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("created webhook w-1 -> https://new.example.com/webhook"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_target_is_updated_not_duplicated() {
    let server = fake_sinch(json!([{"id": "w-7", "app_id": "app-1", "target": "https://api.example.com/webhook", "target_type": "HTTP", "triggers": ["MESSAGE_INBOUND"]}])).await;
    Mock::given(method("PATCH"))
        .and(path(format!("{PROJECT}/webhooks/w-7")))
        .and(body_partial_json(json!({"triggers": ["MESSAGE_INBOUND", "MESSAGE_DELIVERY"], "secret": "s3"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "w-7", "target": "https://api.example.com/webhook", "triggers": ["MESSAGE_INBOUND", "MESSAGE_DELIVERY"]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{PROJECT}/webhooks")))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let (code, out, err) = run(cli(&server).args([
        "register-webhook",
        "--url",
        "https://api.example.com/webhook",
        "--triggers",
        "message_inbound,MESSAGE_DELIVERY",
        "--secret",
        "s3",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("updated webhook w-7"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_the_apps_webhooks_and_errors_are_clear() {
    let server = fake_sinch(json!([{"id": "w-1", "target": "https://a.example.com/webhook", "triggers": ["MESSAGE_INBOUND", "MESSAGE_DELIVERY"]}])).await;
    let (code, out, _) = run(cli(&server).args(["register-webhook", "--list"]));
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "w-1  https://a.example.com/webhook  MESSAGE_INBOUND,MESSAGE_DELIVERY\n"
    );

    let (code, _, err) =
        run(cli(&server).args(["register-webhook", "--url", "https://x.example.com/webhook"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("exactly one of --secret and --secret-arn"),
        "{err}"
    );

    let (code, _, err) = run(cli(&server)
        .env_remove("SINCH_KEY_ID")
        .args(["register-webhook", "--list"]));
    assert_eq!(code, 2);
    assert!(err.contains("SINCH_KEY_ID"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_can_come_from_secrets_manager() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name("webhook")
        .secret_string("from-secrets-manager")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let server = fake_sinch(json!([])).await;
    Mock::given(method("POST"))
        .and(path(format!("{PROJECT}/webhooks")))
        .and(body_partial_json(json!({"secret": "from-secrets-manager"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "w-2", "target": "https://s.example.com/webhook", "triggers": []}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let (code, out, err) = run(cli(&server).env("AWS_ENDPOINT_URL", moto.endpoint()).args([
        "register-webhook",
        "--url",
        "https://s.example.com/webhook",
        "--secret-arn",
        &arn,
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("created webhook w-2"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_moves_dead_letters_back_with_their_attributes() {
    let moto = Moto::start();
    let queue = moto.create_queue("callbacks").await;
    let dlq = moto.create_queue("callbacks-dlq").await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let attribute = |v: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    for (n, body) in [
        r#"{"type":"mo_text","id":"1","from":"1","to":"2","body":"x"}"#,
        "{not json",
        r#"{"app_id":"a","message":{"id":"m"}}"#,
    ]
    .iter()
    .enumerate()
    {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(*body)
            .message_attributes(
                "dead-letter-reason",
                attribute(if n == 1 {
                    "unparseable_payload"
                } else {
                    "sinch_rejected"
                }),
            )
            .message_attributes("dead-letter-detail", attribute("Sinch answered 400"))
            .message_attributes("request-id", attribute(&format!("req-{n}")))
            .send()
            .await
            .unwrap();
    }
    let redrive = |extra: &[&str]| {
        let mut command = Command::cargo_bin("sinch-hooks").unwrap();
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .args([
                "redrive",
                "--queue-url",
                &queue,
                "--dlq-url",
                &dlq,
                "--aws-endpoint",
                moto.endpoint(),
            ])
            .args(extra);
        run(&mut command)
    };
    let count = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
                .parse::<u32>()
                .unwrap()
        }
    };

    let (code, out, err) = redrive(&["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("would move 3 message(s) (sinch_rejected: 2, unparseable_payload: 1)\n"),
        "{out}"
    );
    assert!(
        out.contains("sms.mo_text") && out.contains("not a callback"),
        "{out}"
    );
    assert_eq!(
        (count(queue.clone()).await, count(dlq.clone()).await),
        (0, 3)
    );

    let (code, out, _) = redrive(&["--max", "2"]);
    assert_eq!(code, 0);
    assert!(out.contains("moved 2 message(s)"), "{out}");
    assert_eq!(
        (count(queue.clone()).await, count(dlq.clone()).await),
        (2, 1)
    );

    let moved = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    for message in moved {
        let attributes = message.message_attributes.unwrap();
        assert!(attributes.contains_key("request-id"), "attributes kept");
        assert!(
            !attributes.contains_key("dead-letter-reason")
                && !attributes.contains_key("dead-letter-detail")
        );
    }
}
