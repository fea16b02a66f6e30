//! `sinch-hooks fixtures` writes fixtures the Lambda runtimes accept; the committed ones parse.

use assert_cmd::Command;
use aws_lambda_events::event::sqs::SqsEvent;
use sinch::signature::{Secrets, Verifier};

#[test]
fn fresh_fixtures_are_valid_lambda_events_signed_with_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("sinch-hooks")
        .unwrap()
        .args(["fixtures", "--secret", "fixture-secret", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let secrets: Secrets = "fixture-secret".parse().unwrap();
    let verifier = Verifier::new(&secrets);
    for (name, authentic) in [
        ("receiver-inbound-whatsapp.json", true),
        ("receiver-inbound-sms.json", true),
        ("receiver-delivery-report.json", true),
        ("receiver-forged.json", false),
        ("receiver-stale.json", false),
    ] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let request = lambda_http::request::from_str(&text).expect("an API Gateway v2 request");
        let verdict = verifier.verify(
            request.body().as_ref(),
            request.headers(),
            std::time::SystemTime::now(),
        );
        assert_eq!(verdict.is_ok(), authentic, "{name}: {verdict:?}");
    }
    for name in [
        "worker-delivery-report.json",
        "worker-inbound.json",
        "worker-poison.json",
    ] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let event: SqsEvent = serde_json::from_str(&text).expect("an SQS event");
        assert!(!event.records.is_empty());
    }
    // The stale one is authentic, an hour old.
    let text = std::fs::read_to_string(dir.path().join("receiver-stale.json")).unwrap();
    let request = lambda_http::request::from_str(&text).unwrap();
    let verdict = verifier.verify(
        request.body().as_ref(),
        request.headers(),
        std::time::SystemTime::now(),
    );
    assert!(verdict.unwrap_err().is_authentic());
    // The publisher's stream batch: an inbound STOP and the opt-out it made.
    let text = std::fs::read_to_string(dir.path().join("publisher-changes.json")).unwrap();
    let batch: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(&text).expect("a DynamoDB stream event");
    let kinds: Vec<&str> = batch
        .records
        .iter()
        .flat_map(|record| publisher::Pending::from_record(record).events)
        .map(|event| event.detail_type)
        .collect();
    assert_eq!(kinds, ["Message Received", "Contact Opted Out"]);
    // The messages API's routes, as API Gateway hands them over.
    for (name, method) in [("api-send.json", "POST"), ("api-status.json", "GET")] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let request = lambda_http::request::from_str(&text).expect("an API Gateway v2 request");
        assert_eq!(request.method().as_str(), method, "{name}");
        assert!(request.uri().path().starts_with("/messages"), "{name}");
    }
}

#[test]
fn the_committed_worker_fixtures_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/fixtures");
    for name in [
        "worker-delivery-report.json",
        "worker-inbound.json",
        "worker-poison.json",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(event.records.iter().all(|r| r.message_id.is_some()));
    }
}
