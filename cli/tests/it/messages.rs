//! The messages API end to end: `sinch-hooks message send` and `message status --wait` against
//! `serve` (the simulator reports back), SigV4 signing for a deployed API, and 120 sends each
//! posted three times at once against `serve --aws-endpoint` on moto, counted at the simulator.

use super::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{SECRET, Serve, inbound, now, post_as_a_client, serve};
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

/// 120 distinct sends, each posted three times at once with its key, against real SQS and
/// DynamoDB APIs (moto): exactly 120 sends reach the simulator, every status ends final, and
/// every replay answers what the first answer said. Answers that say "again" (409 in flight,
/// 503 unavailable, both with `Retry-After`) are posted again with the same key, as a client
/// does; moto under this load does time out now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_posted_three_times_at_once_are_sent_once_each() {
    // Enough for every race (three posts of a key at once, 24 posts in flight), few enough
    // that one moto is not what is measured.
    const SENDS: usize = 120;
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
                // Paced (slots from the table), fast enough not to be what is measured.
                ("CONVERSATION_SEND_RATE", "200"),
                ("SMS_SEND_RATE", "200"),
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
    // As a client does: Retry-After honoured, backoff, a budget that fits a slow moto.
    let retried: Vec<_> = futures::stream::iter(again.iter().map(|key| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let n: usize = key.trim_start_matches("load-").parse().unwrap();
            let body = json!({"to": format!("+4670{n:07}"), "channel": "SMS_API", "text": format!("Code {n}")});
            let answer =
                post_as_a_client(&client, &url, key, &body, Duration::from_secs(300)).await;
            (key, answer)
        }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    for (key, answer) in retried {
        if answer.status == 202 && ids.contains_key(key) {
            assert!(answer.replayed, "{key}: a later 202 is a replay");
        }
        assert!(
            record(&mut ids, key, answer.status, &answer.body),
            "{key}: still {} after five minutes of retries: {}",
            answer.status,
            answer.body
        );
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

/// Sinch's `messages:send`, slow (half a second), remembering when each request arrived.
struct SlowSinch(std::sync::Arc<std::sync::Mutex<Vec<(Instant, Value)>>>);

impl wiremock::Respond for SlowSinch {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        self.0.lock().unwrap().push((Instant::now(), body));
        ResponseTemplate::new(200)
            .set_body_json(json!({"message_id": ulid::Ulid::generate().to_string()}))
            .set_delay(Duration::from_millis(500))
    }
}

pub(crate) fn whatsapp_from(id: &str, identity: &str, text: &str) -> Vec<u8> {
    json!({"app_id": "app", "accepted_time": testkit::now_rfc3339(), "message": {
        "id": id, "contact_message": {"text_message": {"text": text}},
        "channel_identity": {"channel": "WHATSAPP", "identity": identity, "app_id": "app"}}})
    .to_string()
    .into_bytes()
}

/// 40 template sends queued against a Sinch that takes half a second a send; then the last 10
/// recipients say STOP. Counted at the fake Sinch: nothing reaches them after their STOP was
/// answered (the confirmation reached Sinch), their messages end FAILED `recipient_opted_out`;
/// the others are sent once each and reach READ on Sinch's reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_stops_what_is_already_queued() {
    let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sinch = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/slow/messages:send"))
        .respond_with(SlowSinch(arrivals.clone()))
        .mount(&sinch)
        .await;
    let sinch_url = sinch.uri();
    let serve = tokio::task::spawn_blocking(move || {
        serve(
            &["--outbound-concurrency", "1", "--batch-size", "1"],
            &[
                ("SINCH_PROJECT_ID", "slow"),
                ("SINCH_KEY_ID", "key"),
                ("SINCH_KEY_SECRET", "secret"),
                ("SINCH_APP_ID", "app"),
                ("SINCH_AUTH_URL", &sinch_url),
                ("SINCH_CONVERSATION_URL", &sinch_url),
                ("WORKER_CONCURRENCY", "1"),
            ],
        )
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let recipients: Vec<String> = (0..40).map(|n| format!("4670123{n:04}")).collect();
    let mut ids = Vec::new();
    for (n, to) in recipients.iter().enumerate() {
        let body = json!({"to": format!("+{to}"), "channel": "WHATSAPP", "template": {
            "name": "order_shipped", "language": "en_US", "parameters": {"body[1]text": format!("A-{n}")}}});
        let answer: Value = client
            .post(format!("{}/messages", serve.base))
            .header("idempotency-key", format!("stop-test-{n}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(answer["id"].as_str().expect("accepted").to_owned());
    }
    // A few have left; the last ten say STOP.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stoppers = &recipients[30..];
    for (n, to) in stoppers.iter().enumerate() {
        let body = whatsapp_from(&format!("01STOP{n:02}"), to, "STOP");
        let (status, _) = tokio::task::block_in_place(|| serve.post_signed(SECRET, &body, now()));
        assert_eq!(status, 200);
    }
    // Everything leaves that will: the queue drains.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let status = tokio::task::block_in_place(|| serve.status());
        if status["outbound_queue"] == 0 && status["queue_visible"] == 0 {
            break;
        }
        assert!(Instant::now() < until, "the queue never drained: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let arrivals = arrivals.lock().unwrap().clone();
    let to_of = |body: &Value| {
        body["recipient"]["identified_by"]["channel_identities"][0]["identity"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let reference = |body: &Value| {
        body["correlation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for to in stoppers {
        let confirmed = arrivals
            .iter()
            .find(|(_, body)| to_of(body) == *to && reference(body).contains(":rpl_"))
            .map(|(at, _)| *at)
            .unwrap_or_else(|| panic!("{to}'s STOP was confirmed"));
        let after: Vec<&Value> = arrivals
            .iter()
            .filter(|(at, body)| *at > confirmed && to_of(body) == *to)
            .map(|(_, body)| body)
            .collect();
        assert!(after.is_empty(), "{to} got {after:?} after their STOP");
    }
    // Sinch reports what it took; each of ours once.
    let mut sent = std::collections::BTreeMap::<String, usize>::new();
    for (_, body) in &arrivals {
        let reference = reference(body);
        if let Some(id) = reference.strip_prefix("sinch-hooks:msg_") {
            *sent.entry(format!("msg_{id}")).or_default() += 1;
        }
    }
    assert!(sent.values().all(|n| *n == 1), "sent twice: {sent:?}");
    for (n, id) in sent.keys().enumerate() {
        for (second, status) in ["QUEUED_ON_CHANNEL", "DELIVERED", "READ"]
            .iter()
            .enumerate()
        {
            let report = json!({"app_id": "app", "correlation_id": format!("sinch-hooks:{id}"),
                "event_time": testkit::now_rfc3339(),
                "message_delivery_report": {"message_id": format!("S-{n}-{second}"), "status": status,
                    "channel_identity": {"channel": "WHATSAPP", "identity": "x"}}})
            .to_string();
            tokio::task::block_in_place(|| serve.post_signed(SECRET, report.as_bytes(), now()));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut withheld = 0;
    for (to, id) in recipients.iter().zip(&ids) {
        let view: Value = client
            .get(format!("{}/messages/{id}", serve.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stoppers.contains(to) && !sent.contains_key(id) {
            withheld += 1;
            assert_eq!(
                (view["status"].as_str(), view["reason"]["code"].as_str()),
                (Some("FAILED"), Some("recipient_opted_out")),
                "{view}"
            );
        } else {
            assert_eq!(view["status"], "READ", "{view}");
        }
    }
    assert_eq!(
        withheld,
        stoppers.len(),
        "every STOP came before that recipient's send"
    );
    println!(
        "stop test: {} sends reached Sinch, {withheld} withheld after a STOP",
        sent.len()
    );
}
