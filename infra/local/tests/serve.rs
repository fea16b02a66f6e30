//! Black-box tests of `sinch-hooks serve` over HTTP: in memory, and with `--aws-endpoint`
//! against moto_server.

mod common;

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

    let page = reqwest::blocking::get(&serve.base).unwrap().text().unwrap();
    assert!(
        page.contains("<h1>sinch-hooks: local stack</h1>") && page.contains("stale_signature"),
        "{page}"
    );
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
