//! The messages API end to end: `sinch-hooks message send` and `message status --wait` against
//! `serve` (the simulator reports back), SigV4 signing for a deployed API, and 500 sends each
//! posted three times at once against `serve --aws-endpoint` on moto, counted at the simulator.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{SECRET, Serve, inbound, now, serve};
use serde_json::{Value, json};
use testkit::Moto;
use wiremock::matchers::{header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn cli(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"))
        .args(args)
        .env_remove("SINCH_HOOKS_API_URL")
        .output()
        .expect("sinch-hooks runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn sent_at_simulator(serve: &Serve) -> Value {
    serve.status()
}

#[test]
fn message_send_and_status_wait_follow_a_send_to_read() {
    let serve = serve(&[], &[]);
    // The customer writes first: the window is open for free-form text.
    assert_eq!(
        serve
            .post_signed(SECRET, &inbound("01WROTE", "hi"), now())
            .0,
        200
    );
    let (code, out, err) = cli(&[
        "message",
        "send",
        "--url",
        &serve.base,
        "--to",
        "+46701234567",
        "--channel",
        "WHATSAPP",
        "--text",
        "Your order shipped",
        "--metadata",
        r#"{"order":"A-1"}"#,
        "--key",
        "cli-1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let answer: Value =
        serde_json::from_str(out.lines().next().unwrap().trim_start_matches("202 ")).unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    assert!(out.contains("idempotency-key: cli-1"), "{out}");

    let (code, out, err) = cli(&[
        "message",
        "status",
        &id,
        "--url",
        &serve.base,
        "--wait",
        "--timeout-secs",
        "20",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(view["status"], "READ", "{view}");
    assert_eq!(view["final"], true);
    assert_eq!(view["metadata"], json!({"order": "A-1"}));
    let statuses: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ACCEPTED", "SENT", "QUEUED_ON_CHANNEL", "DELIVERED", "READ"]
    );
    assert!(err.contains("ACCEPTED"), "a live line on stderr: {err}");

    // A WhatsApp template to someone who never wrote; SMS through the SMS API.
    let (code, out, _) = cli(&[
        "message",
        "send",
        "--url",
        &serve.base,
        "--to",
        "+46709999999",
        "--template-name",
        "order_shipped",
        "--template-language",
        "en_US",
        "--param",
        "body[1]text=A-1",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = cli(&[
        "message",
        "send",
        "--url",
        &serve.base,
        "--to",
        "+46709999999",
        "--channel",
        "SMS_API",
        "--text",
        "Code 1234",
    ]);
    assert_eq!(code, 0, "{out}");
    let id = serde_json::from_str::<Value>(out.lines().next().unwrap().trim_start_matches("202 "))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, _) = cli(&[
        "message",
        "status",
        &id,
        "--url",
        &serve.base,
        "--wait",
        "--timeout-secs",
        "20",
    ]);
    assert_eq!(code, 0, "{out}");
    let view: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (view["status"].as_str(), view["channel"].as_str()),
        (Some("DELIVERED"), Some("SMS")),
        "{view}"
    );
    assert!(view["sinch_batch_id"].is_string());

    // Refused: free-form outside the window, with the code and exit 1.
    let (code, out, _) = cli(&[
        "message",
        "send",
        "--url",
        &serve.base,
        "--to",
        "+46708888888",
        "--text",
        "hi",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("422 ") && out.contains("whatsapp_window_closed"),
        "{out}"
    );
    let status = sent_at_simulator(&serve);
    assert_eq!(status["replies_duplicated"], 0, "{status}");
}

#[tokio::test]
async fn a_deployed_api_is_called_with_sigv4() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messages"))
        .and(header_exists("authorization"))
        .and(header_exists("x-amz-date"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "msg_1"})))
        .mount(&api)
        .await;
    let url = api.uri();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"))
            .args([
                "message",
                "send",
                "--url",
                &url,
                "--auth",
                "sigv4",
                "--region",
                "eu-west-1",
                "--to",
                "+46701234567",
                "--text",
                "hi",
            ])
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let request = &api.received_requests().await.unwrap()[0];
    let authorization = request.headers["authorization"].to_str().unwrap();
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && authorization.contains("/eu-west-1/execute-api/aws4_request")
            && authorization.contains("idempotency-key"),
        "{authorization}"
    );
    assert!(
        request.headers.contains_key("x-amz-content-sha256")
            || authorization.contains("Signature=")
    );
}

/// 500 distinct sends, each posted three times at once with its key, against real SQS and
/// DynamoDB APIs (moto): exactly 500 sends reach the simulator, every status ends final, and
/// every replay answers what the first answer said. Answers that say "again" (409 in flight,
/// 503 unavailable, both with `Retry-After`) are posted again with the same key, as a client
/// does; moto under this load does time out now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sends_posted_three_times_at_once_are_sent_once_each() {
    const SENDS: usize = 500;
    let moto = Moto::start();
    let endpoint = moto.endpoint().to_owned();
    let serve = tokio::task::spawn_blocking(move || {
        serve(
            &[
                "--aws-endpoint",
                &endpoint,
                "--max-concurrency",
                "4",
                "--outbound-concurrency",
                "4",
                "--report-pace-ms",
                "5",
            ],
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_REGION", "us-east-1"),
            ],
        )
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{}/messages", serve.base);
    let started = Instant::now();
    let mut posts = Vec::new();
    for n in 0..SENDS {
        // SMS through the SMS API: no window; a recipient per send.
        let body = json!({"to": format!("+4670{n:07}"), "channel": "SMS_API", "text": format!("Code {n}")});
        let key = format!("load-{n}");
        for _ in 0..3 {
            let (client, url, body, key) = (client.clone(), url.clone(), body.clone(), key.clone());
            posts.push(async move {
                let response = client
                    .post(&url)
                    .header("idempotency-key", &key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let replayed = response.headers().contains_key("idempotency-replayed");
                let body: Value = response.json().await.unwrap_or_default();
                (key, status, replayed, body)
            });
        }
    }
    use futures::StreamExt;
    let answers: Vec<_> = futures::stream::iter(posts)
        .buffer_unordered(24)
        .collect()
        .await;
    let posted_in = started.elapsed();

    // Per key: one first answer (202 with an id); the others replay it (202, same id), or were
    // in flight at that moment (409), or met moto too slow (503): posted again, they end 202.
    let mut ids = std::collections::BTreeMap::<String, String>::new();
    let mut again = Vec::new();
    let mut unavailable = 0;
    let mut record = |ids: &mut std::collections::BTreeMap<String, String>,
                      key: &str,
                      status: u16,
                      body: &Value|
     -> bool {
        match status {
            202 => {
                let id = body["id"].as_str().unwrap().to_owned();
                let first = ids.entry(key.to_owned()).or_insert_with(|| id.clone());
                assert_eq!(first, &id, "{key}: every answer names the same message");
                true
            }
            409 => false,
            503 => {
                unavailable += 1;
                false
            }
            other => panic!("{key}: {other} {body}"),
        }
    };
    for (key, status, _, body) in &answers {
        if !record(&mut ids, key, *status, body) {
            again.push(key.clone());
        }
    }
    let in_flight = again.len();
    again.sort();
    again.dedup();
    for key in &again {
        let n: usize = key.trim_start_matches("load-").parse().unwrap();
        let body = json!({"to": format!("+4670{n:07}"), "channel": "SMS_API", "text": format!("Code {n}")});
        let mut tries = 0;
        loop {
            let response = client
                .post(&url)
                .header("idempotency-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if status != 202 {
                assert!(
                    response.headers().contains_key("retry-after"),
                    "{key}: {status}"
                );
            } else if ids.contains_key(key) {
                assert!(
                    response.headers().contains_key("idempotency-replayed"),
                    "{key}"
                );
            }
            let body: Value = response.json().await.unwrap_or_default();
            if record(&mut ids, key, status, &body) {
                break;
            }
            tries += 1;
            assert!(tries < 20, "{key}: still {status} after {tries} tries");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(ids.len(), SENDS, "every key answered 202");
    let replays = answers
        .iter()
        .filter(|(_, s, r, _)| *s == 202 && *r)
        .count();

    // Every status final, at Sinch exactly one message per send.
    let until = Instant::now() + Duration::from_secs(240);
    let mut pending: Vec<String> = ids.values().cloned().collect();
    let mut views = Vec::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        views.clear();
        for id in pending {
            let view: Value = client
                .get(format!("{url}/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or_default();
            if view["final"] != true {
                still.push(id);
                views.push(view);
            }
        }
        pending = still;
        assert!(
            Instant::now() < until,
            "{} sends not final: {views:?}",
            pending.len()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let status = tokio::task::block_in_place(|| serve.status());
    println!(
        "{SENDS} sends x 3 posts in {:.1} s: {replays} replayed, {in_flight} in flight or \
         unavailable ({unavailable} answers 503) then posted again; at the simulator: {} \
         messages, {} sent twice; all final in {:.1} s",
        posted_in.as_secs_f64(),
        status["replies_sent"],
        status["replies_duplicated"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status["replies_sent"], SENDS, "{status}");
    assert_eq!(status["replies_duplicated"], 0, "{status}");
}
