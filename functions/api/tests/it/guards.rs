//! The guards before any cost, on both stores: the country allow-list, the velocity limit per
//! destination prefix and the monthly cap; concurrent calls cannot overshoot either count; each
//! refusal is counted as a metric.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::Api;
use api::guards::{Guards, Velocity};
use lambda_http::Body;
use lambda_http::http::Request as HttpRequest;
use pipeline::clock::Clock;
use pipeline::metrics::Metrics;
use pipeline::queue::MemoryQueue;
use pipeline::store::Store;
use serde_json::{Value, json};

use crate::common::{api, now};

fn post(path: &str, key: &str, body: &Value) -> lambda_http::Request {
    HttpRequest::builder()
        .method("POST")
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::Text(body.to_string()))
        .unwrap()
}

/// Status, body, `Retry-After`.
async fn call<S: Store>(
    api: &Api<S, MemoryQueue>,
    request: lambda_http::Request,
) -> (u16, Value, Option<u64>) {
    let response = api::handle(api, request).await;
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (response.status().as_u16(), body, retry)
}

fn sms(to: &str) -> Value {
    json!({"to": to, "channel": "SMS_API", "text": "Your code is 1234"})
}

/// A writer the test reads back: the metric lines.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// The `Guard` dimension of each GuardRefused line.
    fn guards(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(|line| pipeline::metrics::validate(line).expect("a valid EMF line"))
            .filter(|line| line["GuardRefused"] == 1)
            .map(|line| line["Guard"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn guarded<S: Store>(store: S, guards: Guards) -> (Api<S, MemoryQueue>, Lines) {
    let mut api = api(store);
    let lines = Lines::default();
    api.config.guards = guards;
    api.config.metrics = Metrics::to_writer("api", lines.clone());
    (api, lines)
}

async fn only_allowed_countries_are_sent_to<S: Store + Clone>(store: S) {
    let guards = Guards {
        allowed_countries: pipeline::send_rules::Countries::of(["46", "47"]),
        ..Guards::default()
    };
    let (api, metrics) = guarded(store, guards);
    assert_eq!(
        call(&api, post("/messages", "se", &sms("+46701234567")))
            .await
            .0,
        202
    );
    assert_eq!(
        call(&api, post("/messages", "no", &sms("+4791234567")))
            .await
            .0,
        202
    );
    let (status, body, _) = call(&api, post("/messages", "premium", &sms("+88212345678"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("country_not_allowed")),
        "{body}"
    );
    // Remembered under the key, like any rule.
    let (status, _, _) = call(&api, post("/messages", "premium", &sms("+88212345678"))).await;
    assert_eq!(status, 422);
    // Identities that are not numbers are not judged by country.
    let messenger = json!({"to": "psid-1", "channel": "MESSENGER", "text": "hi"});
    assert_eq!(call(&api, post("/messages", "fb", &messenger)).await.0, 202);
    // A batch refuses the recipients outside, one by one.
    let batch = json!({"channel": "SMS_API", "text": "Sale", "recipients": [
        {"to": "+46701111111"}, {"to": "+3612345678"}, {"to": "+4792222222"}]});
    let (status, answer, _) = call(&api, post("/batches", "b1", &batch)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["refused"][0]["recipients"], json!([1]), "{answer}");
    assert_eq!(answer["refused"][0]["code"], "country_not_allowed");
    assert!(
        !answer.to_string().contains("3612345678"),
        "no number: {answer}"
    );
    assert_eq!(
        metrics.guards(),
        ["country_not_allowed", "country_not_allowed"]
    );
}

async fn sends_to_one_prefix_are_held_to_the_velocity_limit<S: Store + Clone>(store: S) {
    let guards = Guards {
        velocity: Some(Velocity {
            limit: 3,
            window_ms: 3_600_000,
            prefix_digits: 6,
        }),
        ..Guards::default()
    };
    let (mut api, metrics) = guarded(store, guards);
    for k in 0..3 {
        let (status, body, _) = call(
            &api,
            post(
                "/messages",
                &format!("v{k}"),
                &sms(&format!("+4670120000{k}")),
            ),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body, retry) = call(&api, post("/messages", "v3", &sms("+46701299999"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited_destination")),
        "{body}"
    );
    let retry = retry.expect("Retry-After");
    assert!((1..=3600).contains(&retry), "{retry}");
    // Another range is another count.
    assert_eq!(
        call(&api, post("/messages", "v4", &sms("+46701300000")))
            .await
            .0,
        202
    );
    // Not remembered under the key: once the window has slid, the same request goes.
    api.clock = Clock::Fixed(now() + Duration::from_secs(2 * 3600));
    let (status, body, _) = call(&api, post("/messages", "v3", &sms("+46701299999"))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(metrics.guards(), ["rate_limited_destination"]);
}

async fn concurrent_sends_cannot_overshoot_the_velocity_limit<S: Store + Clone>(store: S) {
    let guards = Guards {
        velocity: Some(Velocity {
            limit: 5,
            window_ms: 3_600_000,
            prefix_digits: 6,
        }),
        ..Guards::default()
    };
    let (api, _) = guarded(store, guards);
    let api = &api;
    let answers = futures_util::future::join_all((0..25).map(|k| async move {
        call(
            api,
            post(
                "/messages",
                &format!("burst-{k}"),
                &sms(&format!("+467015{k:05}")),
            ),
        )
        .await
        .0
    }))
    .await;
    assert_eq!(
        answers.iter().filter(|s| **s == 202).count(),
        5,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 429).count(),
        20,
        "{answers:?}"
    );
}

async fn a_monthly_cap_holds_for_messages_and_batches_until_the_month_ends<S: Store + Clone>(
    store: S,
) {
    let guards = Guards {
        monthly_caps: [("SMS_API".to_owned(), 5)].into_iter().collect(),
        ..Guards::default()
    };
    let (mut api, metrics) = guarded(store, guards);
    for k in 0..2 {
        assert_eq!(
            call(
                &api,
                post(
                    "/messages",
                    &format!("c{k}"),
                    &sms(&format!("+4670200000{k}"))
                )
            )
            .await
            .0,
            202
        );
    }
    // A batch of five when three are left: three accepted, two refused.
    let recipients: Vec<Value> = (0..5)
        .map(|k| json!({"to": format!("+4670300000{k}")}))
        .collect();
    let batch = json!({"channel": "SMS_API", "text": "Sale", "recipients": recipients});
    let (status, answer, _) = call(&api, post("/batches", "cap-batch", &batch)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 3, "{answer}");
    let codes: Vec<(&str, usize)> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["code"].as_str().unwrap(),
                r["recipients"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(codes, [("monthly_cap_reached", 2)]);
    // The same batch again (a retry) counts nothing again.
    let (status, again, _) = call(&api, post("/batches", "cap-batch", &batch)).await;
    assert_eq!((status, &again["id"]), (202, &answer["id"]));
    let (status, body, retry) = call(&api, post("/messages", "c-full", &sms("+46702999999"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("monthly_cap_reached")),
        "{body}"
    );
    // 2025-12-01T08:00:00Z: the month ends 30 days and 16 hours later.
    assert_eq!(retry, Some(30 * 86_400 + 16 * 3600));
    // Another channel is not capped.
    let whatsapp = json!({"to": "+46702999999", "channel": "WHATSAPP", "template": {"name": "code", "language": "en_US"}});
    assert_eq!(call(&api, post("/messages", "wa", &whatsapp)).await.0, 202);
    // Next month.
    api.clock = Clock::Fixed(now() + Duration::from_secs(31 * 86_400));
    assert_eq!(
        call(&api, post("/messages", "c-full", &sms("+46702999999")))
            .await
            .0,
        202
    );
    assert_eq!(
        metrics.guards(),
        ["monthly_cap_reached", "monthly_cap_reached"]
    );
}

async fn concurrent_sends_cannot_overshoot_the_monthly_cap<S: Store + Clone>(store: S) {
    let guards = Guards {
        monthly_caps: [("SMS_API".to_owned(), 10)].into_iter().collect(),
        ..Guards::default()
    };
    let (api, _) = guarded(store, guards);
    let api = &api;
    let answers = futures_util::future::join_all((0..30).map(|k| async move {
        call(
            api,
            post(
                "/messages",
                &format!("m-{k}"),
                &sms(&format!("+467040{k:05}")),
            ),
        )
        .await
        .0
    }))
    .await;
    assert_eq!(
        answers.iter().filter(|s| **s == 202).count(),
        10,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 429).count(),
        20,
        "{answers:?}"
    );
}

/// A batch with `priority: transactional` would go ahead of every one-time code: refused 403
/// `priority_not_allowed` unless its caller is in FAST_LANE_BATCH_CALLERS (here the local
/// stack's caller, `local`); a batch without it goes by the bulk lane.
async fn campaigns_stay_in_the_bulk_lane_unless_their_caller_is_allowed<S: Store + Clone>(
    store: S,
) {
    let (mut api, _) = guarded(store, Guards::default());
    let fast = json!({"channel": "SMS_API", "text": "Sale", "priority": "transactional",
        "recipients": [{"to": "+46701111111"}]});
    let (status, answer, _) = call(&api, post("/batches", "fast-1", &fast)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("priority_not_allowed")),
        "{answer}"
    );
    assert!(api.lanes.transactional.is_empty() && api.lanes.bulk.is_empty());
    let plain =
        json!({"channel": "SMS_API", "text": "Sale", "recipients": [{"to": "+46701111112"}]});
    assert_eq!(call(&api, post("/batches", "plain", &plain)).await.0, 202);
    assert_eq!(
        (api.lanes.bulk.len(), api.lanes.transactional.len()),
        (1, 0)
    );
    api.config.guards.fast_lane_batch_callers = vec!["local".into()];
    let (status, answer, _) = call(&api, post("/batches", "fast-2", &fast)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(api.lanes.transactional.len(), 1, "allowed: the fast lane");
}

/// The velocity limit counts every channel a message may take: a WhatsApp message with an SMS
/// fallback to the same number range is a second SMS to it (it was not counted at all).
async fn a_fallback_to_sms_is_counted_by_the_velocity_limit<S: Store + Clone>(store: S) {
    let guards = Guards {
        velocity: Some(Velocity {
            limit: 1,
            window_ms: 3_600_000,
            prefix_digits: 6,
        }),
        ..Guards::default()
    };
    let (api, _) = guarded(store, guards);
    assert_eq!(
        call(&api, post("/messages", "f1", &sms("+46706000001")))
            .await
            .0,
        202
    );
    let whatsapp = json!({"to": "+46706000002", "channel": "WHATSAPP", "fallback": ["SMS"],
        "text": "Your order shipped"});
    let (status, body, _) = call(&api, post("/messages", "f2", &whatsapp)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limited_destination")),
        "{body}"
    );
}

testkit::for_both_stores!(
    a_fallback_to_sms_is_counted_by_the_velocity_limit,
    campaigns_stay_in_the_bulk_lane_unless_their_caller_is_allowed,
    only_allowed_countries_are_sent_to,
    sends_to_one_prefix_are_held_to_the_velocity_limit,
    concurrent_sends_cannot_overshoot_the_velocity_limit,
    a_monthly_cap_holds_for_messages_and_batches_until_the_month_ends,
    concurrent_sends_cannot_overshoot_the_monthly_cap,
);
