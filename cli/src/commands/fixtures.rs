//! `sinch-hooks fixtures`: Lambda event fixtures for `cargo lambda invoke --data-file` and
//! `sam local invoke -e`: API Gateway HTTP API (payload 2.0) requests for the receiver, freshly
//! signed (signatures age: the receiver refuses them five minutes later), and SQS events for the
//! worker, with the attributes the receiver writes; the messages API's two routes; and a
//! DynamoDB stream batch for the publisher (an inbound message stored, its sender opted out).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use pipeline::envelope::{Envelope, SignatureHeaders};
use serde_json::{Map, Value, json};
use sinch::signature::{sign_headers, unix_seconds};

use crate::CliError;
use crate::cli::FixturesArgs;
use crate::samples;

/// Runs `fixtures`: writes the Lambda event files.
pub fn run(args: &FixturesArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let secret = args.secret.first()?;
    std::fs::create_dir_all(&args.out).map_err(|source| CliError::ReadFile {
        path: args.out.display().to_string(),
        source,
    })?;
    let now = unix_seconds(SystemTime::now());
    let inbound = samples::inbound(&samples::id(), "WHATSAPP", "46701234567", "HELP");
    let sms = samples::sms_inbound(&samples::id(), "46709876543", "46700000001", "HELP");
    let delivery = samples::delivery(&samples::id(), "DELIVERED", "WHATSAPP", "46701234567", "");
    let files: Vec<(&str, Value)> = vec![
        (
            "receiver-inbound-whatsapp.json",
            api_gateway(&inbound, secret, now, false),
        ),
        (
            "receiver-inbound-sms.json",
            api_gateway(&sms, secret, now, false),
        ),
        (
            "receiver-delivery-report.json",
            api_gateway(&delivery, secret, now, true),
        ),
        (
            "receiver-forged.json",
            api_gateway(&inbound, "not-the-secret", now, false),
        ),
        (
            "receiver-stale.json",
            api_gateway(&delivery, secret, now - 3600, false),
        ),
        ("api-send.json", api_send(now)),
        ("api-status.json", api_status(now)),
        (
            "worker-delivery-report.json",
            sqs_event(&[("m-delivery", &delivery)], now),
        ),
        (
            "worker-inbound.json",
            sqs_event(&[("m-inbound", &inbound), ("m-sms", &sms)], now),
        ),
        (
            "worker-poison.json",
            sqs_event(&[("m-poison", b"{not json")], now),
        ),
        ("publisher-changes.json", stream_event(now)),
    ];
    for (name, event) in files {
        let path = args.out.join(name);
        write(&path, &event)?;
        writeln!(stdout, "{}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, event: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(event).unwrap_or_default() + "\n";
    std::fs::write(path, text).map_err(|source| CliError::ReadFile {
        path: path.display().to_string(),
        source,
    })
}

/// A `POST /webhook` as API Gateway's HTTP API hands it to Lambda (payload format 2.0).
fn api_gateway(body: &[u8], secret: &str, timestamp: u64, base64: bool) -> Value {
    let signed = sign_headers(secret, body, &samples::id(), timestamp);
    let mut headers = Map::new();
    headers.insert("content-type".into(), "application/json".into());
    headers.insert("user-agent".into(), "Sinch-Webhook".into());
    for (name, value) in signed.pairs() {
        headers.insert(name.into(), value.into());
    }
    let (body, encoded) = if base64 {
        (BASE64.encode(body), true)
    } else {
        (String::from_utf8_lossy(body).into_owned(), false)
    };
    json!({
        "version": "2.0",
        "routeKey": "POST /webhook",
        "rawPath": "/webhook",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "local.execute-api.localhost",
            "domainPrefix": "local",
            "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "Sinch-Webhook"},
            "requestId": samples::id(),
            "routeKey": "POST /webhook",
            "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000",
            "timeEpoch": timestamp * 1000
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

/// `POST /messages` as API Gateway hands it over after IAM authorization: an SMS through the
/// SMS API (no WhatsApp window to open first).
fn api_send(timestamp: u64) -> Value {
    let body = json!({"to": "+46701234567", "channel": "SMS_API", "text": "Your code is 1234",
        "sms_sender": "+46700000001", "metadata": {"order": "A-1042"}});
    http_api_request(
        "POST",
        "/messages",
        json!({"content-type": "application/json", "idempotency-key": samples::id()}),
        Some(body.to_string()),
        timestamp,
    )
}

/// `GET /messages/{id}` for a message that does not exist: 404.
fn api_status(timestamp: u64) -> Value {
    http_api_request("GET", "/messages/msg_unknown", json!({}), None, timestamp)
}

fn http_api_request(
    method: &str,
    path: &str,
    headers: Value,
    body: Option<String>,
    timestamp: u64,
) -> Value {
    let route = if path == "/messages" {
        format!("{method} /messages")
    } else {
        format!("{method} /messages/{{id}}")
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "authorizer": {"iam": {"accessKey": "AKIAEXAMPLE", "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE", "userArn": "arn:aws:iam::123456789012:user/orders",
                "userId": "AIDAEXAMPLE"}},
            "domainName": "local.execute-api.localhost",
            "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "sinch-hooks"},
            "requestId": samples::id(),
            "routeKey": route,
            "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000",
            "timeEpoch": timestamp * 1000
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// An SQS event for the worker: records as the receiver queues them.
fn sqs_event(records: &[(&str, &[u8])], timestamp: u64) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(message_id, body)| {
            let mut envelope = Envelope::new(
                body.to_vec(),
                SignatureHeaders {
                    signature: sign_headers("local", body, "01FJA8B4A7BM43YGWSG9GBV067", timestamp)
                        .signature,
                    nonce: "01FJA8B4A7BM43YGWSG9GBV067".into(),
                    timestamp: timestamp.to_string(),
                    algorithm: Some("HmacSHA256".into()),
                },
                SystemTime::now(),
            );
            envelope.request_id = Some(samples::id());
            envelope.content_type = Some("application/json".into());
            let attributes: Map<String, Value> = envelope
                .attributes()
                .map(|(name, value)| {
                    (name.to_owned(), json!({"stringValue": value, "stringListValues": [], "binaryListValues": [], "dataType": "String"}))
                })
                .collect();
            json!({
                "messageId": message_id,
                "receiptHandle": format!("receipt-{message_id}"),
                "body": envelope.queued_body(),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": (timestamp * 1000).to_string(),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": (timestamp * 1000).to_string()
                },
                "messageAttributes": attributes,
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sinch-hooks-callbacks",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// A DynamoDB stream batch as Lambda delivers it to the publisher: an inbound STOP stored, and
/// its sender's contact item opted out by it (two events: Message Received, Contact Opted Out).
fn stream_event(timestamp: u64) -> Value {
    let s = |text: &str| json!({ "S": text });
    let n = |number: u64| json!({ "N": number.to_string() });
    let at = timestamp * 1000;
    let record = |sequence: &str, name: &str, keys: Value, old: Option<Value>, new: Value| {
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": timestamp,
            "Keys": keys,
            "NewImage": new,
            "SequenceNumber": sequence,
            "SizeBytes": 256,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        });
        if let Some(old) = old {
            dynamodb["OldImage"] = old;
        }
        json!({
            "eventID": format!("event-{sequence}"),
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/sinch-hooks/stream/2026-01-01T00:00:00.000",
            "dynamodb": dynamodb
        })
    };
    let inbound_pk = "in#01STOP0000000000000000000";
    let contact_pk = "contact#WHATSAPP/46701234567";
    json!({ "Records": [
        record("100", "INSERT", json!({"pk": s(inbound_pk)}), None, json!({
            "pk": s(inbound_pk), "from_channel": s("WHATSAPP"), "from_identity": s("46701234567"),
            "to": s("01EB37HMH1M6SV18BSNS3G135H"), "kind": s("text_message"), "text": s("STOP"),
            "received_at_ms": n(at)
        })),
        record("101", "MODIFY", json!({"pk": s(contact_pk)}),
            Some(json!({"pk": s(contact_pk), "last_inbound_at_ms": n(at - 60_000)})),
            json!({"pk": s(contact_pk), "last_inbound_at_ms": n(at),
                "opted_out_by": s("01STOP0000000000000000000"), "opted_out_at_ms": n(at)})),
    ]})
}
