//! An outage of SQS and DynamoDB in the middle of a load, judged where the effects land.
//!
//! `sinch-hooks serve --aws-endpoint` talks to moto_server through a [`FaultProxy`]; a fake Sinch
//! (wiremock) takes the replies and is where they are counted. A few hundred signed inbound
//! messages go in while the proxy refuses every connection for a few seconds, then swallows
//! them (blackhole) for a few more. A callback answered 503 is posted again later, as Sinch
//! does. Then, counted at the fake Sinch: every message answered 200 got exactly one reply,
//! none was lost, and no answer took longer than the enqueue bound.

use super::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{SECRET, inbound, now, serve};
use serde_json::{Value, json};
use sinch::signature::sign_headers;
use testkit::Moto;
use testkit::proxy::FaultProxy;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const MESSAGES: usize = 160;
const ENQUEUE_TIMEOUT_MS: u64 = 1000;
/// What a client may see beyond the bound on a busy 2-core machine (its own scheduling, the
/// answer's way back): far under the 30 s an unbounded enqueue would hold it.
const CLIENT_SLACK_MS: u64 = 2000;

/// Sinch's `messages:send`, giving every message its own id. It takes 250 ms, as a real API
/// does, so that when the outage starts many replies are on their way: sent, and not yet
/// recorded.
struct Accept;

impl Respond for Accept {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({"message_id": ulid::Ulid::generate().to_string()}))
            .set_delay(Duration::from_millis(250))
    }
}

async fn fake_sinch() -> MockServer {
    let server = testkit::fake_sinch().await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/outage/messages:send"))
        .respond_with(Accept)
        .mount(&server)
        .await;
    server
}

/// Replies received by the fake Sinch, per inbound message (by the reference they carry).
async fn replies(sinch: &MockServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in sinch.received_requests().await.unwrap_or_default() {
        if !request.url.path().ends_with("messages:send") {
            continue;
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let reference = body["correlation_id"].as_str().unwrap_or_default();
        let inbound = reference
            .strip_prefix("sinch-hooks:rpl_")
            .unwrap_or(reference);
        *counts.entry(inbound.to_owned()).or_default() += 1;
    }
    counts
}

/// One signed post; the status (0: no answer) and how long it took.
async fn post(client: &reqwest::Client, url: &str, body: &[u8]) -> (u16, Duration) {
    let signed = sign_headers(SECRET, body, &ulid::Ulid::generate().to_string(), now());
    let mut request = client.post(url).body(body.to_vec());
    for (name, value) in signed.pairs() {
        request = request.header(name, value.to_string());
    }
    let started = Instant::now();
    let status = match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    };
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_and_dynamodb_outage_mid_load_loses_nothing_and_replies_once() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(
        moto.endpoint()
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
    );
    let sinch = fake_sinch().await;
    let sinch_url = sinch.uri();
    let endpoint = proxy.endpoint();
    let serve = tokio::task::spawn_blocking(move || {
        serve(
            &[
                "--aws-endpoint",
                &endpoint,
                "--function-timeout-secs",
                "6",
                // As in AWS, the receives allowed outlast an outage many times over.
                "--max-receive-count",
                "50",
            ],
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_REGION", "us-east-1"),
                ("SINCH_PROJECT_ID", "outage"),
                ("SINCH_KEY_ID", "key"),
                ("SINCH_KEY_SECRET", "secret"),
                ("SINCH_AUTH_URL", &sinch_url),
                ("SINCH_CONVERSATION_URL", &sinch_url),
                ("ENQUEUE_TIMEOUT_MS", &ENQUEUE_TIMEOUT_MS.to_string()),
            ],
        )
    })
    .await
    .unwrap();
    let url = format!("{}/webhook", serve.base);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The load: MESSAGES inbound "HELP"s, 8 at a time, paced over about 10 s (the outage, 8 s
    // from a third of the way in, outlasts it).
    let ids: Vec<String> = (0..MESSAGES)
        .map(|_| ulid::Ulid::generate().to_string())
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (client, url, ids, next) = (client.clone(), url.clone(), ids.clone(), next.clone());
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(id) = ids.get(n) else {
                    return answers;
                };
                let (status, took) = post(&client, &url, &inbound(id, "HELP")).await;
                answers.push((id.clone(), status, took));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    // The outage, a third of the way in: refused for 4 s, then a blackhole for 4 s.
    while next.load(Ordering::SeqCst) < MESSAGES / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut_at = next.load(Ordering::SeqCst);
    proxy.refuse();
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.blackhole();
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore();
    let restored_at = next.load(Ordering::SeqCst);

    let mut answers = Vec::new();
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    let slowest = answers.iter().map(|(_, _, took)| *took).max().unwrap();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, status, _) in &answers {
        *by_status.entry(*status).or_default() += 1;
    }
    // Sinch posts again what was not answered 200.
    let mut retried = 0;
    for (id, status, _) in &answers {
        if *status == 200 {
            continue;
        }
        retried += 1;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) = post(&client, &url, &inbound(id, "HELP")).await;
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < until,
                "{id} never accepted after the outage"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Every message replied to, at the fake Sinch.
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let replies = replies(&sinch).await;
        if ids.iter().all(|id| replies.contains_key(id)) {
            break;
        }
        let missing = ids.iter().filter(|id| !replies.contains_key(*id)).count();
        assert!(
            Instant::now() < until,
            "{missing} of {MESSAGES} messages never got a reply"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Let every retry that could still come run its course (a lease of 6 s, a visibility of 2 s).
    let quiet = Instant::now();
    loop {
        let status = tokio::task::block_in_place(|| serve.status());
        if status["queue_visible"] == 0 && status["queue_in_flight"] == 0 {
            break;
        }
        assert!(quiet.elapsed() < Duration::from_secs(60), "{status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(8)).await;

    let replies = replies(&sinch).await;
    let twice: Vec<(&String, &usize)> = replies.iter().filter(|(_, n)| **n > 1).collect();
    let total: usize = replies.values().sum();
    println!(
        "outage test: {MESSAGES} callbacks (proxy cut after {cut_at}, restored after {restored_at}); \
         answers {by_status:?}; {retried} posted again after a non-200; \
         at the fake Sinch: {total} replies for {} messages, {} replied to twice; \
         slowest answer {:.0} ms (enqueue bound {ENQUEUE_TIMEOUT_MS} ms)",
        replies.len(),
        twice.len(),
        slowest.as_secs_f64() * 1000.0
    );
    assert!(
        by_status.keys().all(|status| [200, 503].contains(status)),
        "only 200 and 503: {by_status:?}"
    );
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "the outage was felt: {by_status:?}"
    );
    assert!(twice.is_empty(), "replied to twice: {twice:?}");
    assert_eq!(total, MESSAGES, "one reply per message");
    assert!(
        slowest < Duration::from_millis(ENQUEUE_TIMEOUT_MS + CLIENT_SLACK_MS),
        "an answer took {slowest:?}, over the enqueue bound"
    );
}

/// moto's requests and seconds by operation so far (`moto_atomic.py`).
async fn moto_load(moto: &Moto) -> BTreeMap<String, (u64, f64)> {
    let load: Value = reqwest::get(format!("{}/_testkit/load", moto.endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    load.as_object()
        .unwrap()
        .iter()
        .map(|(op, v)| {
            (
                op.clone(),
                (
                    v["requests"].as_u64().unwrap_or(0),
                    v["seconds"].as_f64().unwrap_or(0.0),
                ),
            )
        })
        .collect()
}

/// What moto did between two readings, busiest first, as a line.
fn load_between(
    before: &BTreeMap<String, (u64, f64)>,
    after: &BTreeMap<String, (u64, f64)>,
) -> String {
    let mut rows: Vec<(String, u64, f64)> = after
        .iter()
        .map(|(op, (n, t))| {
            let (n0, t0) = before.get(op).copied().unwrap_or((0, 0.0));
            (
                op.rsplit('.').next().unwrap_or(op).to_owned(),
                n - n0,
                t - t0,
            )
        })
        .filter(|(_, n, _)| *n > 0)
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let total: f64 = rows.iter().map(|r| r.2).sum();
    let top: Vec<String> = rows
        .iter()
        .take(8)
        .map(|(op, n, t)| format!("{op} {n} ({t:.1} s)"))
        .collect();
    format!("{total:.1} s of moto: {}", top.join(", "))
}

/// The state store alone cut (a blackhole: every call times out) for 8 s while signed inbound
/// messages arrive at a steady rate through `serve --aws-endpoint` on moto, with the Lambda
/// timeouts of a deployment (visibility 25 s, function timeout 20 s). Counted at the fake
/// Sinch: every callback answered 200 is replied to, within 120 s of the restore, none twice,
/// and every answer within the enqueue bound. It prints where moto's time went before, during
/// and after the outage. `OUTAGE_MESSAGES` (120) and `OUTAGE_RATE` (10/s) scale it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_under_steady_load_recovers_within_two_minutes() {
    let messages: usize = std::env::var("OUTAGE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let rate: u64 = std::env::var("OUTAGE_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let moto = Moto::start();
    let proxy = FaultProxy::start(
        moto.endpoint()
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
    );
    let sinch = fake_sinch().await;
    let sinch_url = sinch.uri();
    // OUTAGE_CUT=all cuts SQS with it.
    let everything = std::env::var("OUTAGE_CUT").is_ok_and(|v| v == "all");
    let aws = if everything {
        proxy.endpoint()
    } else {
        moto.endpoint().to_owned()
    };
    let dynamodb = proxy.endpoint();
    let serve = tokio::task::spawn_blocking(move || {
        serve(
            &[
                "--aws-endpoint",
                &aws,
                "--dynamodb-endpoint",
                &dynamodb,
                "--visibility-timeout-secs",
                "25",
                "--function-timeout-secs",
                "20",
            ],
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_REGION", "us-east-1"),
                ("SINCH_PROJECT_ID", "outage"),
                ("SINCH_KEY_ID", "key"),
                ("SINCH_KEY_SECRET", "secret"),
                ("SINCH_AUTH_URL", &sinch_url),
                ("SINCH_CONVERSATION_URL", &sinch_url),
                ("ENQUEUE_TIMEOUT_MS", &ENQUEUE_TIMEOUT_MS.to_string()),
            ],
        )
    })
    .await
    .unwrap();
    let url = format!("{}/webhook", serve.base);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let ids: Vec<String> = (0..messages)
        .map(|_| ulid::Ulid::generate().to_string())
        .collect();

    // The load, at a steady rate; the cut a third of the way in, for 8 s.
    let started = Instant::now();
    let at_start = moto_load(&moto).await;
    let mut posts = Vec::new();
    let (mut cut_at, mut restored_at) = (None, None);
    let (mut before_cut, mut at_restore) = (BTreeMap::new(), BTreeMap::new());
    let gap = Duration::from_millis(1000 / rate.max(1));
    for (n, id) in ids.iter().enumerate() {
        let due = started + gap * n as u32;
        tokio::time::sleep_until(due.into()).await;
        if n == messages / 3 && cut_at.is_none() {
            before_cut = moto_load(&moto).await;
            proxy.blackhole();
            cut_at = Some(Instant::now());
        }
        if let Some(cut) = cut_at
            && restored_at.is_none()
            && cut.elapsed() >= Duration::from_secs(8)
        {
            proxy.restore();
            restored_at = Some(Instant::now());
            at_restore = moto_load(&moto).await;
        }
        let (client, url, id) = (client.clone(), url.clone(), id.clone());
        posts.push(tokio::spawn(async move {
            let (status, took) = post(&client, &url, &inbound(&id, "HELP")).await;
            (id, status, took)
        }));
    }
    let cut = cut_at.expect("the cut happened");
    if restored_at.is_none() {
        tokio::time::sleep_until((cut + Duration::from_secs(8)).into()).await;
        proxy.restore();
        restored_at = Some(Instant::now());
        at_restore = moto_load(&moto).await;
    }
    let restored = restored_at.unwrap();
    let mut answers = Vec::new();
    for post in posts {
        answers.push(post.await.unwrap());
    }
    let answered: Vec<&String> = answers
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .map(|(id, _, _)| id)
        .collect();
    let slowest = answers.iter().map(|(_, _, took)| *took).max().unwrap();

    // Every callback answered 200 gets its reply, within two minutes of the restore.
    let mut recovered = None;
    while restored.elapsed() < Duration::from_secs(120) {
        let replies = replies(&sinch).await;
        if answered.iter().all(|id| replies.contains_key(*id)) {
            recovered = Some(restored.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = moto_load(&moto).await;
    // Quiet for a while: nothing sent twice late.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let replies = replies(&sinch).await;
    let missing = answered
        .iter()
        .filter(|id| !replies.contains_key(**id))
        .count();
    let twice: Vec<_> = replies.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "store outage: {messages} callbacks at {rate}/s, the store cut for 8 s after {}; \
         {} answered 200 (others retried by Sinch in reality), {missing} of them without a reply \
         {:.0} s after the restore, {} replied to twice, slowest answer {:.0} ms (bound {ENQUEUE_TIMEOUT_MS} ms), \
         every reply in {}",
        messages / 3,
        answered.len(),
        restored.elapsed().as_secs_f64(),
        twice.len(),
        slowest.as_secs_f64() * 1000.0,
        recovered.map_or("never".to_owned(), |d| format!(
            "{:.1} s after the restore",
            d.as_secs_f64()
        ))
    );
    println!(
        "  moto before the cut: {}",
        load_between(&at_start, &before_cut)
    );
    println!(
        "  moto during the cut: {}",
        load_between(&before_cut, &at_restore)
    );
    println!(
        "  moto after the restore: {}",
        load_between(&at_restore, &after)
    );
    assert!(twice.is_empty(), "replied to twice: {twice:?}");
    assert_eq!(missing, 0, "answered 200 and never replied to");
    assert!(recovered.is_some());
    assert!(
        slowest < Duration::from_millis(ENQUEUE_TIMEOUT_MS + CLIENT_SLACK_MS),
        "an answer took {slowest:?}"
    );
}
