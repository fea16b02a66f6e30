//! `sinch-hooks optouts import` and `export` against `serve`: imported opt-outs refuse sends,
//! come out of the export as they went in, each once, with their events; every bad line is
//! reported with its line number.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::serve;

fn cli(args: &[&str], stdin: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"))
        .args(args)
        .env_remove("SINCH_HOOKS_API_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sinch-hooks runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn an_import_opts_out_each_line_once_and_the_export_gives_them_back() {
    let serve = serve(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("optouts.jsonl");
    std::fs::write(
        &file,
        [
            r#"{"channel": "SMS", "identity": "+46701234567"}"#,
            r#"{"channel": "SMS_API", "identity": "46701234567"}"#,
            "",
            r#"{"channel": "WHATSAPP", "identity": "+46709990000"}"#,
            r#"{"channel": "FAX", "identity": "+46709990001"}"#,
            r#"{"channel": "SMS"}"#,
            "not json",
            r#"{"channel": "SMS", "identity": "12"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    let (code, out) = cli(&["optouts", "import", &path, "--url", &serve.base], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("7 lines: 2 opted out, 1 already opted out, 4 refused, 0 failed"),
        "{out}"
    );
    for expected in [
        "line 5: refused: invalid_channel",
        "line 6: refused: not a {\"channel\", \"identity\"} object",
        "line 7: refused: not a",
        "line 8: refused: invalid_identity",
    ] {
        assert!(out.contains(expected), "{expected} in {out}");
    }
    // An imported opt-out refuses a send, as a STOP does.
    let answer = reqwest::blocking::Client::new()
        .post(format!("{}/messages", serve.base))
        .header("idempotency-key", "after-import")
        .json(&json!({"to": "+46701234567", "channel": "SMS_API", "text": "Sale!"}))
        .send()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 422);
    let body: Value = answer.json().unwrap();
    assert_eq!(body["error"]["code"], "recipient_opted_out");

    let (code, exported) = cli(&["optouts", "export", "--url", &serve.base], "");
    assert_eq!(code, 0, "{exported}");
    let lines: Vec<Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let keys: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{}/{} by {}",
                l["channel"].as_str().unwrap(),
                l["identity"].as_str().unwrap(),
                l["by"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            "SMS/46701234567 by import",
            "WHATSAPP/46709990000 by import"
        ]
    );
    // Only SMS's.
    let (_, sms) = cli(
        &[
            "optouts",
            "export",
            "--url",
            &serve.base,
            "--channel",
            "SMS",
        ],
        "",
    );
    assert_eq!(sms.lines().count(), 1, "{sms}");
    // The export imports as it is (from standard input), and changes nothing.
    let (code, again) = cli(&["optouts", "import", "-", "--url", &serve.base], &exported);
    assert_eq!(code, 0, "{again}");
    assert!(
        again.contains("2 lines: 0 opted out, 2 already opted out, 0 refused, 0 failed"),
        "{again}"
    );
    // One event per opt-out, saying it was an import.
    let status = serve.wait_for(|s| s["events"]["Contact Opted Out"] == 2);
    assert_eq!(status["events"]["Contact Opted Out"], 2, "{status}");
    let events: Vec<Value> = reqwest::blocking::get(format!("{}/events", serve.base))
        .unwrap()
        .json()
        .unwrap();
    let by: Vec<&str> = events
        .iter()
        .filter(|e| e["detail-type"] == "Contact Opted Out")
        .map(|e| e["detail"]["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["import", "import"]);
}

#[test]
fn an_unreachable_api_fails_each_line_and_says_so() {
    let (code, out) = cli(
        &[
            "optouts",
            "import",
            "-",
            "--url",
            "http://127.0.0.1:9",
            "--auth",
            "none",
        ],
        "{\"channel\": \"SMS\", \"identity\": \"+46701234567\"}\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 1: failed: no answer"), "{out}");
    assert!(
        out.contains("0 opted out, 0 already opted out, 0 refused, 1 failed"),
        "{out}"
    );
    let (code, out) = cli(&["optouts", "export", "--url", "http://127.0.0.1:9"], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("GET /optouts: no answer"), "{out}");
}
