//! Black-box tests of `sinch-hooks serve` over HTTP: in memory, and with `--aws-endpoint`
//! against moto_server.

use super::common;

use common::{SECRET, inbound, now, serve};
use sinch::signature::sign_headers;
use testkit::Moto;

#[test]
fn every_receiver_row_over_http_and_status_reflects_it() {
    let serve = serve(&[], &[]);
    let body = inbound("01ROWS", "hello");
    let signed = sign_headers(SECRET, &body, "01FJA8B4A7BM43YGWSG9GBV067", now());
    let header = |name: &'static str, value: &str| (name, value.to_owned());
    let all = |replace: Option<(&'static str, &str)>,
               drop: Option<&str>|
     -> Vec<(&'static str, String)> {
        signed
            .pairs()
            .iter()
            .filter(|(n, _)| Some(*n) != drop)
            .map(|(n, v)| match replace {
                Some((name, value)) if name == *n => header(n, value),
                _ => header(n, v),
            })
            .collect()
    };

    assert_eq!(serve.post(&all(None, None), &body).0, 200);
    assert_eq!(
        serve.post(&all(None, Some("x-sinch-webhook-signature")), &body),
        (
            401,
            serde_json::json!({"status":"rejected","reason":"missing_header"})
        )
    );
    assert_eq!(
        serve.post(&all(None, None), b"{\"tampered\":true}").1["reason"],
        "signature_mismatch"
    );
    assert_eq!(
        serve
            .post(
                &all(
                    Some(("x-sinch-webhook-signature-algorithm", "HmacSHA1")),
                    None
                ),
                &body
            )
            .1["reason"],
        "unsupported_algorithm"
    );
    assert_eq!(
        serve
            .post(
                &all(Some(("x-sinch-webhook-signature-timestamp", "soon")), None),
                &body
            )
            .1["reason"],
        "malformed_timestamp"
    );
    let (status, answer) = serve.post_signed(SECRET, &inbound("01STALE", "hello"), now() - 3600);
    assert_eq!(
        (status, answer["reason"].as_str()),
        (401, Some("stale_signature"))
    );
    let (status, answer) = serve.post_signed(SECRET, &vec![b' '; 70_000], now());
    assert_eq!(
        (status, answer["reason"].as_str()),
        (413, Some("body_too_large"))
    );
    let get = reqwest::blocking::get(format!("{}/webhook", serve.base)).unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    let status = serve.wait_for(|s| s["processed"]["conversation.message"] == 1);
    assert_eq!(status["accepted"], 1);
    for reason in [
        "missing_header",
        "signature_mismatch",
        "unsupported_algorithm",
        "malformed_timestamp",
        "stale_signature",
        "body_too_large",
        "method_not_allowed",
    ] {
        assert_eq!(status["rejected"][reason], 1, "{reason}: {status}");
    }
    assert_eq!(
        status["dead_letter_queue"], 1,
        "the stale one is kept: {status}"
    );

    // The console: a page of its own (no external resources), and what it loads.
    let page = reqwest::blocking::get(&serve.base).unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(
        page.text()
            .unwrap()
            .contains("<h1>sinch-hooks: local stack</h1>")
    );
    let state: serde_json::Value = reqwest::blocking::get(format!("{}/console/state", serve.base))
        .unwrap()
        .json()
        .unwrap();
    let reasons: Vec<&str> = state["door"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["reason"].as_str())
        .collect();
    for reason in [
        "signature_mismatch",
        "stale_signature",
        "body_too_large",
        "accepted",
    ] {
        assert!(
            reasons.contains(&reason),
            "{reason} at the door: {reasons:?}"
        );
    }
    assert_eq!(
        state["dead_letters"][0]["reason"], "stale_signature",
        "{state}"
    );
    // Its one write needs the console's header (no cross-site redrive).
    let client = reqwest::blocking::Client::new();
    let refused = client
        .post(format!("{}/console/dead-letters/redrive", serve.base))
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let moved: serde_json::Value = client
        .post(format!("{}/console/dead-letters/redrive", serve.base))
        .header("x-console", "1")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(moved["moved"], 1);
}

#[test]
fn a_duplicate_gets_one_reply_and_poison_is_dead_lettered() {
    let serve = serve(&[], &[]);
    let help = inbound("01DUP", "HELP");
    assert_eq!(serve.post_signed(SECRET, &help, now()).0, 200);
    serve.wait_for(|s| s["replies_sent"] == 1);
    assert_eq!(serve.post_signed(SECRET, &help, now()).0, 200);
    assert_eq!(serve.post_signed(SECRET, b"not json at all", now()).0, 200);
    // Three posted, and the simulator's three reports on the reply (QUEUED_ON_CHANNEL,
    // DELIVERED, READ).
    let status = serve
        .wait_for(|s| s["duplicates"] == 1 && s["dead_letter_queue"] == 1 && s["accepted"] == 6);
    assert_eq!(status["message_statuses"]["READ"], 1, "{status}");
    assert_eq!(status["replies_sent"], 1, "{status}");
    assert_eq!(status["replies_duplicated"], 0, "{status}");
    assert_eq!(
        status["dead_lettered"]["unparseable_payload"], 1,
        "{status}"
    );
}

#[test]
fn with_an_aws_endpoint_the_queues_and_table_are_real() {
    let moto = Moto::start();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let serve = serve(&["--aws-endpoint", moto.endpoint()], &env);
    let help = inbound("01AWS", "HELP");
    assert_eq!(serve.post_signed(SECRET, &help, now()).0, 200);
    assert_eq!(serve.post_signed(SECRET, &help, now()).0, 200);
    let poison = b"{\"broken\":";
    assert_eq!(serve.post_signed(SECRET, poison, now()).0, 200);
    let status = serve.wait_for(|s| {
        s["processed"]["conversation.message"] == 1
            && s["duplicates"] == 1
            && s["dead_letter_queue"] == 1
    });
    assert_eq!(status["replies_sent"], 1, "{status}");
    assert_eq!(status["replies_duplicated"], 0, "{status}");

    // Events come from the table's stream on moto, as the publisher reads it in AWS.
    let status = serve.wait_for(|s| {
        s["events"]["Message Received"] == 1
            && s["events"]["Reply Sent"] == 1
            && s["events"]["Callback Dead-Lettered"] == 1
    });
    assert_eq!(status["events_not_forwarded"], 0, "{status}");

    // The poison message is in the real dead-letter queue, body intact, with its reason.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sdk = moto.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let url = sqs
            .get_queue_url()
            .queue_name("sinch-hooks-callbacks-dlq")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let messages = sqs
            .receive_message()
            .queue_url(url)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].body.as_deref(), Some("{\"broken\":"));
        let reason = messages[0].message_attributes.as_ref().unwrap()["dead-letter-reason"]
            .string_value
            .clone();
        assert_eq!(reason.as_deref(), Some("unparseable_payload"));
        let tables = aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .unwrap()
            .table_names
            .unwrap_or_default();
        assert!(tables.contains(&"sinch-hooks".to_owned()), "{tables:?}");
    });
}

#[test]
fn events_are_posted_to_a_consumer_and_written_to_a_file() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let consumer = runtime.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(204))
            .mount(&server)
            .await;
        server
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let serve = serve(
        &[
            "--events-to",
            &format!("{}/events", consumer.uri()),
            "--events-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        serve.post_signed(SECRET, &inbound("01EV", "STOP"), now()).0,
        200
    );
    serve.wait_for(|s| s["events"]["Contact Opted Out"] == 1 && s["events"]["Reply Sent"] == 1);

    // The page's list, the file and the consumer saw the same events, as EventBridge delivers
    // them.
    let listed: Vec<serde_json::Value> = reqwest::blocking::get(format!("{}/events", serve.base))
        .unwrap()
        .json()
        .unwrap();
    let kinds = |events: &[serde_json::Value]| -> std::collections::BTreeSet<String> {
        events
            .iter()
            .filter_map(|e| e["detail-type"].as_str().map(str::to_owned))
            .collect()
    };
    for kind in [
        "Message Received",
        "Contact Opted Out",
        "Message Status Changed",
        "Reply Sent",
    ] {
        assert!(
            kinds(&listed).contains(kind),
            "{kind} in /events: {listed:?}"
        );
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (written, posted) = loop {
        let written: Vec<serde_json::Value> = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON event per line"))
            .collect();
        let posted: Vec<serde_json::Value> = runtime
            .block_on(consumer.received_requests())
            .unwrap_or_default()
            .iter()
            .map(|request| serde_json::from_slice(&request.body).unwrap())
            .collect();
        if (written.len() >= listed.len() && posted.len() >= listed.len())
            || std::time::Instant::now() > until
        {
            break (written, posted);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(kinds(&written), kinds(&listed));
    assert_eq!(kinds(&posted), kinds(&listed));
    assert!(
        posted
            .iter()
            .all(|e| e["source"] == "sinch-hooks" && e["detail"]["event_id"] == e["id"])
    );
    assert_eq!(serve.status()["events_not_forwarded"], 0);
}

/// Through a tunnel (its Host, or a Host rewritten with a forwarding header), from another
/// site's page, or by DNS rebinding: only `/webhook` answers; the API, the console and the feeds
/// say why they do not.
#[test]
fn a_tunnel_reaches_the_webhook_only() {
    let serve = serve(&[], &[]);
    let client = reqwest::blocking::Client::new();
    let send = r#"{"to":"+46701234567","channel":"SMS_API","text":"hi"}"#;
    let local = format!("127.0.0.1:{}", serve.base.rsplit(':').next().unwrap());
    let tunnel = [("host", "abc.trycloudflare.com".to_owned())];
    let rewritten = [
        ("host", local.clone()),
        ("x-forwarded-for", "203.0.113.9".to_owned()),
    ];
    let rebinding = [("host", "attacker.example:3000".to_owned())];
    let other_site = [
        ("host", local.clone()),
        ("origin", "https://attacker.example".to_owned()),
    ];
    for (headers, code) in [
        (&tunnel[..], "host_not_local"),
        (&rewritten[..], "forwarded"),
        (&rebinding[..], "host_not_local"),
        (&other_site[..], "cross_origin"),
    ] {
        for (method, path) in [
            ("POST", "/messages"),
            ("GET", "/messages/msg_01"),
            ("GET", "/"),
            ("GET", "/console/state"),
            ("GET", "/console/stream"),
            ("GET", "/events"),
            ("GET", "/status"),
            ("POST", "/console/dead-letters/redrive"),
        ] {
            let mut request = client
                .request(method.parse().unwrap(), format!("{}{path}", serve.base))
                .header("idempotency-key", "k")
                .header("content-type", "application/json")
                .header("x-console", "1")
                .body(send);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().unwrap();
            assert_eq!(
                response.status().as_u16(),
                403,
                "{method} {path} {headers:?}"
            );
            let body: serde_json::Value = response.json().unwrap();
            assert_eq!(body["error"]["code"], code, "{method} {path}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("only /webhook"),
                "{body}"
            );
        }
        // The webhook takes any Host: it is what the tunnel is for (unsigned: 401, not 403).
        let mut request = client.post(format!("{}/webhook", serve.base)).body("{}");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        assert_eq!(request.send().unwrap().status().as_u16(), 401);
    }
    // Locally, with the page's own Origin: served.
    let response = client
        .post(format!("{}/messages", serve.base))
        .header("idempotency-key", "k")
        .header("content-type", "application/json")
        .header("origin", format!("http://{local}"))
        .body(send)
        .send()
        .unwrap();
    assert_ne!(response.status().as_u16(), 403);
    // Query values at their extremes: answered, never a panic.
    for path in [
        "/console/state?page=18446744073709551615",
        "/console/messages?page=18446744073709551615",
        "/console/stream?version=18446744073709551615&door_seq=18446744073709551615&dead_letters_version=18446744073709551615",
        "/console/state?page=-1",
        "/console/state?page=x",
    ] {
        let response = client
            .get(format!("{}{path}", serve.base))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .unwrap();
        assert!(
            response.status().as_u16() < 500,
            "{path}: {}",
            response.status()
        );
    }
    assert!(serve.status().is_object(), "still serving");
    assert_eq!(
        client
            .get(format!("{}/nowhere", serve.base))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

#[test]
fn a_visibility_timeout_below_the_function_timeout_is_refused() {
    let output = std::process::Command::new(assert_cmd::cargo::cargo_bin("sinch-hooks"))
        .args([
            "serve",
            "--port",
            "0",
            "--visibility-timeout-secs",
            "10",
            "--function-timeout-secs",
            "20",
        ])
        .env("SINCH_WEBHOOK_SECRET", "s")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--visibility-timeout-secs") && stderr.contains("function timeout"),
        "{stderr}"
    );
}
