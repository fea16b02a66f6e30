//! `sinch-hooks inspect`, run as a process.

use assert_cmd::Command;
use serde_json::{Value, json};

fn fixture(path: &str) -> String {
    format!(
        "{}/../functions/sinch/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn inspect(args: &[&str], stdin: &[u8]) -> (i32, Vec<Value>, String) {
    let output = Command::cargo_bin("sinch-hooks")
        .unwrap()
        .arg("inspect")
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        lines,
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_body_file_is_one_line_with_kind_and_key_fields() {
    let (code, lines, _) = inspect(&[&fixture("conversation/message_inbound_text.json")], b"");
    assert_eq!(code, 0);
    assert_eq!(
        lines,
        [json!({
            "kind": "conversation.message",
            "app_id": "01EB37HMH1M6SV18ABNS3G135H",
            "message_id": "01EQ8235TD19N21XQTH12B145D",
            "channel": "MESSENGER",
            "sender": "2742085512340733",
            "contact_id": "01EQ4174TGGY5B1VPTPGHW19R0",
            "conversation_id": "01EQ8172WMDB8008EFT4M30481",
            "text_length": 3
        })]
    );
    let (_, lines, _) = inspect(
        &[&fixture("conversation/message_delivery_failed.json")],
        b"",
    );
    assert_eq!(lines[0]["kind"], "conversation.message_delivery_report");
    assert_eq!(lines[0]["status"], "FAILED");
    assert_eq!(lines[0]["reason"], "OUTSIDE_ALLOWED_SENDING_WINDOW");
}

#[test]
fn stdin_works_and_sms_kinds_are_named() {
    let body = std::fs::read(fixture("sms/mo_text.json")).unwrap();
    let (code, lines, _) = inspect(&[], &body);
    assert_eq!(code, 0);
    assert_eq!(lines[0]["kind"], "sms.mo_text");
    assert_eq!(lines[0]["sender"], "46701234567");
    assert_eq!(lines[0]["recipient"], "46700000001");
    assert_eq!(lines[0]["text_length"], 4);
    assert!(lines[0].get("body").is_none(), "never the text itself");
}

#[test]
fn unknown_kinds_are_named_unknown() {
    let (code, lines, _) = inspect(&[], br#"{"app_id":"a","comment_event":{}}"#);
    assert_eq!(code, 0);
    assert_eq!(
        lines[0],
        json!({"kind": "unknown", "unknown": "comment_event", "app_id": "a"})
    );
    let (_, lines, _) = inspect(&[], br#"{"type":"mo_hologram"}"#);
    assert_eq!(
        lines[0],
        json!({"kind": "unknown", "unknown": "mo_hologram"})
    );
}

#[test]
fn a_dead_letter_queue_dump_is_unwrapped() {
    let inbound =
        std::fs::read_to_string(fixture("conversation/message_inbound_text.json")).unwrap();
    // `aws sqs receive-message --message-attribute-names All` output: one plain body, one
    // base64-encoded (not UTF-8), both dead-lettered.
    let dump = json!({"Messages": [
        {
            "MessageId": "m-1", "ReceiptHandle": "h", "Body": inbound,
            "MessageAttributes": {
                "dead-letter-reason": {"StringValue": "sinch_rejected", "DataType": "String"},
                "dead-letter-detail": {"StringValue": "Sinch answered 400", "DataType": "String"}
            }
        },
        {
            "MessageId": "m-2", "ReceiptHandle": "h", "Body": "eyJ0eXBlIjoibW9fdGV4dCJ9/w==",
            "MessageAttributes": {
                "body-encoding": {"StringValue": "base64", "DataType": "String"},
                "dead-letter-reason": {"StringValue": "unparseable_payload", "DataType": "String"}
            }
        }
    ]});
    let output = Command::cargo_bin("sinch-hooks")
        .unwrap()
        .arg("inspect")
        .write_stdin(dump.to_string())
        .output()
        .unwrap();
    // The second body is not JSON (a stray 0xff), which stops the command.
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "conversation.message");
    assert_eq!(first["sqs_message_id"], "m-1");
    assert_eq!(first["dead_letter_reason"], "sinch_rejected");
    assert_eq!(first["dead_letter_detail"], "Sinch answered 400");

    // A Lambda SQS record.
    let record = json!({"messageId": "r-1", "body": inbound, "messageAttributes": {}});
    let (code, lines, _) = inspect(&[], record.to_string().as_bytes());
    assert_eq!(code, 0);
    assert_eq!(lines[0]["kind"], "conversation.message");
    assert_eq!(lines[0]["sqs_message_id"], "r-1");
}

#[test]
fn not_json_exits_2_and_malformed_callbacks_exit_1() {
    let (code, lines, stderr) = inspect(&[], b"<xml/>");
    assert_eq!(code, 2);
    assert!(lines.is_empty());
    assert!(stderr.contains("not JSON"), "{stderr}");

    let (code, lines, _) = inspect(
        &[],
        br#"{"app_id":"a","message_delivery_report":{"status":"READ"}}"#,
    );
    assert_eq!(code, 1);
    assert_eq!(lines[0]["kind"], "conversation.message_delivery_report");
    assert!(lines[0]["error"].as_str().unwrap().contains("message_id"));

    let (code, _, stderr) = inspect(&["/no/such/dump.json"], b"");
    assert_eq!(code, 2);
    assert!(stderr.contains("/no/such/dump.json"));

    // Valid JSON, but deeper than can be read: said so, not "not JSON".
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let (code, _, stderr) = inspect(&[], deep.as_bytes());
    assert_eq!(code, 2);
    assert!(stderr.contains("nested too deeply"), "{stderr}");
    assert!(!stderr.contains("not JSON"), "{stderr}");

    // Two trigger keys: which one is meant cannot be told.
    let (code, lines, _) = inspect(
        &[],
        br#"{"app_id":"a","message":{"id":"m"},"message_delivery_report":{"message_id":"m","status":"READ"}}"#,
    );
    assert_eq!(code, 1);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("ambiguous"),
        "{lines:?}"
    );
}
