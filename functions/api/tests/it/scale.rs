//! Sending at scale through the API: schedules (`send_at`, `expire_at`, cancel), quiet hours on
//! a clock the test holds, SMS parts, and batches (every rejection path, the answer, the
//! counts, the cancel), on both stores.

use std::time::{Duration, SystemTime};

use api::Api;
use lambda_http::Body;
use lambda_http::http::Request as HttpRequest;
use pipeline::clock::{Clock, rfc3339};
use pipeline::queue::MemoryQueue;
use pipeline::schedule::{Lane, Lanes, MemoryScheduler};
use pipeline::store::prelude::*;
use pipeline::store::{ContactKey, InboundRecord, MemoryStore, OptChange};
use serde_json::{Value, json};

use crate::common::{NOW_MS, call, config};

/// An API over `store` at `now_ms`, with a queue per lane and the in-memory scheduler.
fn api_at<S: Store>(store: S, now_ms: u64) -> Api<S, MemoryQueue> {
    Api {
        store,
        lanes: Lanes {
            transactional: MemoryQueue::new("outbound"),
            bulk: MemoryQueue::new("bulk"),
        },
        scheduler: MemoryScheduler::new(),
        config: config(),
        clock: Clock::Fixed(SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms)),
    }
}

fn request(
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> lambda_http::Request {
    let mut builder = HttpRequest::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(body.map_or(Body::Empty, |b| Body::Text(b.to_string())))
        .unwrap()
}

async fn send<S: Store>(api: &Api<S, MemoryQueue>, key: &str, body: Value) -> (u16, Value) {
    let (status, answer, _) = call(api, request("POST", "/messages", Some(key), Some(body))).await;
    (status, answer)
}

fn sms(to: &str, text: &str) -> Value {
    json!({"to": to, "channel": "SMS_API", "text": text})
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

async fn a_send_at_is_scheduled_and_every_bad_one_refused<S: Store + Clone + 'static>(store: S) {
    let api = api_at(store, NOW_MS);
    let base = sms("+46701234567", "Your table is ready");
    for (what, send_at, code) in [
        ("not a time", json!("tomorrow"), "invalid_send_at"),
        ("not text", json!(17), "invalid_request"),
        (
            "36 days ahead",
            json!(rfc3339(NOW_MS + 36 * 24 * 3600 * 1000)),
            "send_at_out_of_range",
        ),
    ] {
        let (status, answer) = send(&api, what, with(base.clone(), "send_at", send_at)).await;
        assert_eq!(answer["error"]["code"], code, "{what}: {status} {answer}");
    }
    for (what, expire_at, code) in [
        ("not a time", json!("soon"), "invalid_expire_at"),
        (
            "before it is due",
            json!(rfc3339(NOW_MS + 30_000)),
            "expire_at_out_of_range",
        ),
    ] {
        let body = with(
            with(base.clone(), "send_at", json!(rfc3339(NOW_MS + 60_000))),
            "expire_at",
            expire_at,
        );
        let (status, answer) = send(&api, what, body).await;
        assert_eq!(answer["error"]["code"], code, "{what}: {status} {answer}");
    }
    assert!(api.scheduler.pending().is_empty(), "nothing scheduled");

    // In the past: now.
    let (status, now) = send(
        &api,
        "past",
        with(base.clone(), "send_at", json!(rfc3339(NOW_MS - 60_000))),
    )
    .await;
    assert_eq!(
        (status, now["status"].as_str()),
        (202, Some("ACCEPTED")),
        "{now}"
    );
    assert_eq!(api.lanes.transactional.len(), 1);
    // An hour ahead: SCHEDULED, held by the scheduler, nothing queued.
    let due = NOW_MS + 3600 * 1000;
    let (status, later) = send(
        &api,
        "later",
        with(base.clone(), "send_at", json!(rfc3339(due))),
    )
    .await;
    assert_eq!(
        (status, later["status"].as_str()),
        (202, Some("SCHEDULED")),
        "{later}"
    );
    assert_eq!(later["scheduled_at"], rfc3339(due));
    assert_eq!(api.lanes.transactional.len(), 1, "nothing more queued");
    let id = later["id"].as_str().unwrap().to_owned();
    let (_, view, _) = call(&api, request("GET", &format!("/messages/{id}"), None, None)).await;
    assert_eq!(view["status"], "SCHEDULED", "{view}");
    assert!(
        api.scheduler.take_due(due - 1).is_empty(),
        "not before its time"
    );
    let pending = api.scheduler.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].1, pending[0].2), (due, Lane::Transactional));

    // Canceled: CANCELED, the schedule gone; again, or once sent, 409.
    let (status, view, _) = call(
        &api,
        request("DELETE", &format!("/messages/{id}"), None, None),
    )
    .await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("CANCELED")),
        "{view}"
    );
    assert_eq!(view["reason"]["code"], "canceled");
    assert!(
        api.scheduler.pending().is_empty(),
        "its schedule is removed"
    );
    let (status, again, _) = call(
        &api,
        request("DELETE", &format!("/messages/{id}"), None, None),
    )
    .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("not_cancelable")),
        "{again}"
    );
    for path in ["/messages/msg_none", "/messages/not%20an%20id"] {
        let (status, _, _) = call(&api, request("DELETE", path, None, None)).await;
        assert_eq!(status, 404, "{path}");
    }
}

async fn quiet_hours_hold_a_send_until_they_end_in_the_recipients_zone<
    S: Store + Clone + 'static,
>(
    store: S,
) {
    // 2025-12-01 22:00 UTC: 23:00 in Stockholm, 17:00 in New York.
    let night = 1_764_626_400_000;
    let api = api_at(store, night);
    let quiet = json!({"start": "21:00", "end": "08:00"});
    // Sweden has one zone: taken from the number. Held until 08:00 there (07:00 UTC).
    let (status, held) = send(
        &api,
        "q1",
        with(
            sms("+46701234567", "Reminder"),
            "quiet_hours",
            quiet.clone(),
        ),
    )
    .await;
    assert_eq!(
        (status, held["status"].as_str()),
        (202, Some("SCHEDULED")),
        "{held}"
    );
    let morning = night + 9 * 3600 * 1000;
    assert_eq!(held["scheduled_at"], rfc3339(morning), "{held}");
    // The United States has several: the zone must be given.
    let (status, refused) = send(
        &api,
        "q2",
        with(
            sms("+12125550100", "Reminder"),
            "quiet_hours",
            quiet.clone(),
        ),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("time_zone_required")),
        "{refused}"
    );
    // Given: 17:00 in New York is outside them, so it goes now.
    let zoned = json!({"start": "21:00", "end": "08:00", "time_zone": "America/New_York"});
    let (status, now) = send(
        &api,
        "q3",
        with(sms("+12125550100", "Reminder"), "quiet_hours", zoned),
    )
    .await;
    assert_eq!(
        (status, now["status"].as_str()),
        (202, Some("ACCEPTED")),
        "{now}"
    );
    for (what, bad) in [
        (
            "a time of day",
            json!({"start": "9pm", "end": "08:00", "time_zone": "Europe/Stockholm"}),
        ),
        (
            "a zone",
            json!({"start": "21:00", "end": "08:00", "time_zone": "Mars/Olympus"}),
        ),
    ] {
        let (_, answer) = send(
            &api,
            what,
            with(sms("+46701234567", "x"), "quiet_hours", bad),
        )
        .await;
        assert_eq!(
            answer["error"]["code"], "invalid_quiet_hours",
            "{what}: {answer}"
        );
    }
    // The scheduler brings it at 08:00, not a minute before (the test holds the clock).
    assert!(api.scheduler.take_due(morning - 60_000).is_empty());
    let due = api.scheduler.take_due(morning);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].envelope.job.as_deref(), Some("send"));

    // The deployment's default applies when a request gives none.
    let mut defaulted = api_at(MemoryStore::new(), night);
    defaulted.config.quiet_hours = Some(serde_json::from_value(quiet).unwrap());
    let (_, held) = send(&defaulted, "q4", sms("+46701234567", "Reminder")).await;
    assert_eq!(held["status"], "SCHEDULED", "{held}");
}

async fn sms_texts_say_their_parts_and_max_parts_holds<S: Store + Clone + 'static>(store: S) {
    let api = api_at(store, NOW_MS);
    let (_, one) = send(&api, "p1", sms("+46701234567", "Your code is 123456")).await;
    assert_eq!(
        one["sms"],
        json!({"encoding": "GSM-7", "parts": 1}),
        "{one}"
    );
    let long = "x".repeat(161);
    let (_, two) = send(&api, "p2", sms("+46701234567", &long)).await;
    assert_eq!(
        two["sms"],
        json!({"encoding": "GSM-7", "parts": 2}),
        "{two}"
    );
    let (_, emoji) = send(
        &api,
        "p3",
        sms("+46701234567", &format!("{} 🎉", "y".repeat(68))),
    )
    .await;
    assert_eq!(
        emoji["sms"],
        json!({"encoding": "UCS-2", "parts": 2}),
        "{emoji}"
    );
    let (status, refused) = send(
        &api,
        "p4",
        with(sms("+46701234567", &long), "max_parts", json!(1)),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("too_many_parts")),
        "{refused}"
    );
    // Conversation's SMS channel too; WhatsApp has no parts.
    let on_sms = json!({"to": "+46701234567", "channel": "SMS", "text": long, "max_parts": 1});
    assert_eq!(
        send(&api, "p5", on_sms).await.1["error"]["code"],
        "too_many_parts"
    );
    let (_, wa) = send(
        &api,
        "p6",
        json!({"to": "+46701234567", "channel": "WHATSAPP",
        "template": {"name": "t", "language": "en_US"}}),
    )
    .await;
    assert!(wa.get("sms").is_none(), "{wa}");
}

fn recipients(n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| json!({"to": format!("+4670{k:07}"), "parameters": {"name": format!("N{k}")}}))
        .collect()
}

async fn post_batch<S: Store>(api: &Api<S, MemoryQueue>, key: &str, body: Value) -> (u16, Value) {
    let (status, answer, _) = call(api, request("POST", "/batches", Some(key), Some(body))).await;
    (status, answer)
}

async fn every_bad_batch_is_refused_with_its_code<S: Store + Clone + 'static>(store: S) {
    let api = api_at(store, NOW_MS);
    let shared = json!({"channel": "SMS_API", "text": "Hi ${name}"});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("no recipients", shared.clone(), 400, "recipients_missing"),
        (
            "an empty list",
            with(shared.clone(), "recipients", json!([])),
            400,
            "recipients_missing",
        ),
        (
            "not a list",
            with(shared.clone(), "recipients", json!("+46701234567")),
            400,
            "recipients_missing",
        ),
        (
            "10,001",
            with(shared.clone(), "recipients", json!(recipients(10_001))),
            422,
            "too_many_recipients",
        ),
        (
            "a 100 KB parameter shared by 10,000 (a gigabyte once copied)",
            with(
                with(shared.clone(), "recipients", json!(recipients(10_000))),
                "metadata",
                json!({"blob": "x".repeat(100_000)}),
            ),
            422,
            "batch_too_large",
        ),
        (
            "a shared to",
            with(
                with(shared.clone(), "recipients", json!(recipients(1))),
                "to",
                json!("+46701234567"),
            ),
            400,
            "invalid_request",
        ),
        (
            "an unknown channel",
            json!({"channel": "PIGEON", "text": "x", "recipients": recipients(2)}),
            400,
            "unknown_channel",
        ),
        (
            "no content",
            json!({"channel": "SMS_API", "recipients": recipients(2)}),
            400,
            "content_missing",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, answer) = post_batch(&api, what, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
    }
    let (status, answer, _) = call(&api, {
        let mut r = request("POST", "/batches", Some("junk"), None);
        *r.body_mut() = Body::Text("{not json".into());
        r
    })
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, answer, _) = call(&api, {
        let mut r = request("POST", "/batches", Some("huge"), None);
        *r.body_mut() = Body::Text(format!("{{\"pad\": \"{}\"}}", "x".repeat(5 * 1024 * 1024)));
        r
    })
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let (status, _, _) = call(
        &api,
        request(
            "POST",
            "/batches",
            None,
            Some(with(shared, "recipients", json!(recipients(1)))),
        ),
    )
    .await;
    assert_eq!(status, 400, "a key is required");
    assert!(
        api.lanes.bulk.is_empty() && api.lanes.transactional.is_empty(),
        "nothing queued"
    );
    for path in ["/batches/bat_none", "/batches/msg_1", "/batches/a%2Fb"] {
        let (status, _, _) = call(&api, request("GET", path, None, None)).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = call(&api, request("PUT", "/batches", None, None)).await;
    assert_eq!(status, 405);
}

async fn a_batch_refuses_recipients_one_by_one_and_counts_the_rest<S: Store + Clone + 'static>(
    store: S,
) {
    let api = api_at(store.clone(), NOW_MS);
    // One recipient opted out of SMS.
    let opted = ContactKey::new("SMS", "+46700000003");
    store
        .record_inbound(
            &InboundRecord {
                text_digest: None,
                id: "01STOPBATCH".into(),
                from: opted.clone(),
                to: "46700000000".into(),
                kind: "mo_text".into(),
                text: Some("STOP".into()),
                media: Vec::new(),
                contact_id: None,
                conversation_id: None,
                received_at_ms: NOW_MS - 1000,
            },
            Some(&OptChange::OptOut {
                contact: opted,
                by: "01STOPBATCH".into(),
            }),
        )
        .await
        .unwrap();
    let mut list = recipients(6);
    list[1] = json!({"to": "not a number", "parameters": {"name": "X"}});
    list[2] = json!({"to": "+46700000002", "parameters": {}});
    list[4] = json!({"to": "+46700000004", "parameters": {"name": "Ada"}, "metadata": {"row": 4}});
    list[5] = json!({"to": "+46700000005", "colour": "red"});
    // Listed twice (the second with spaces around it): one message.
    list.push(json!({"to": " +46700000004 ", "parameters": {"name": "Ada again"}}));
    let body = json!({"channel": "SMS_API", "text": "Hi ${name}", "metadata": {"campaign": "winter"},
        "recipients": list});
    let (status, answer) = post_batch(&api, "b1", body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    // By code, in the order of their first recipient; positions in `recipients`, no number.
    let codes: Vec<(&str, Value)> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["code"].as_str().unwrap(), r["recipients"].clone()))
        .collect();
    assert_eq!(
        codes,
        [
            ("invalid_recipient", json!([1, 5])),
            ("parameter_missing", json!([2])),
            ("recipient_opted_out", json!([3])),
            ("duplicate_recipient", json!([6])),
        ]
    );
    assert!(!answer.to_string().contains("4670000000"), "{answer}");
    assert_eq!(answer["status"], "ACCEPTED");
    assert_eq!(
        answer["sms"],
        json!({"messages": 2, "parts": 2, "max_parts": 1, "encodings": {"GSM-7": 2}}),
        "{answer}"
    );
    let id = answer["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("bat_"));
    // The same key and body: the same batch, replayed; nothing queued twice.
    let (_, again, replayed) =
        call(&api, request("POST", "/batches", Some("b1"), Some(body))).await;
    assert!(replayed);
    assert_eq!(again["id"], id.as_str());
    assert_eq!(
        api.lanes.bulk.len(),
        1,
        "one chunk, one fan-out, on the bulk lane"
    );
    let (status, view, _) = call(&api, request("GET", &format!("/batches/{id}"), None, None)).await;
    assert_eq!(status, 200);
    assert_eq!(view["total"], 2);
    assert_eq!(view["refused"], 5);
    assert_eq!(
        view["counts"],
        json!({"ACCEPTED": 2}),
        "not fanned out yet: {view}"
    );
    assert_eq!(view["final"], false);
    // Another caller sees no such batch.
    for method in ["GET", "DELETE"] {
        let other = crate::common::signed_by(
            request(method, &format!("/batches/{id}"), None, None),
            "arn:aws:iam::1:user/other",
            "$default",
        );
        let (status, _, _) = call(&api, other).await;
        assert_eq!(status, 404, "{method} by another caller");
    }
    // Canceled before it fanned out: every message will be CANCELED; the read says so now.
    let (status, canceled, _) = call(
        &api,
        request("DELETE", &format!("/batches/{id}"), None, None),
    )
    .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["canceled"], true);
    assert_eq!(canceled["counts"], json!({"CANCELED": 2}), "{canceled}");
}

async fn a_scheduled_batch_fans_out_at_its_time<S: Store + Clone + 'static>(store: S) {
    let api = api_at(store, NOW_MS);
    let due = NOW_MS + 20 * 60 * 1000;
    let (status, answer) = post_batch(
        &api,
        "b2",
        json!({"channel": "SMS_API", "text": "Hi ${name}", "send_at": rfc3339(due),
            "recipients": recipients(1200)}),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "SCHEDULED");
    assert_eq!(answer["scheduled_at"], rfc3339(due));
    assert!(api.lanes.bulk.is_empty(), "nothing queued before its time");
    let pending = api.scheduler.pending();
    assert_eq!(
        pending.len(),
        3,
        "1,200 recipients: three chunks of at most 500"
    );
    assert!(
        pending
            .iter()
            .all(|(_, at, lane)| *at == due && *lane == Lane::Bulk)
    );
    let id = answer["id"].as_str().unwrap();
    let (_, view, _) = call(&api, request("GET", &format!("/batches/{id}"), None, None)).await;
    assert_eq!(view["counts"], json!({"SCHEDULED": 1200}), "{view}");
    let (_, canceled, _) = call(
        &api,
        request("DELETE", &format!("/batches/{id}"), None, None),
    )
    .await;
    assert_eq!(canceled["canceled"], true);
    assert!(
        api.scheduler.pending().is_empty(),
        "its fan-outs are unscheduled"
    );
    assert_eq!(
        api.lanes.transactional.len(),
        3,
        "a cancel job per chunk, on the fast lane"
    );
}

testkit::for_both_stores!(
    a_send_at_is_scheduled_and_every_bad_one_refused,
    quiet_hours_hold_a_send_until_they_end_in_the_recipients_zone,
    sms_texts_say_their_parts_and_max_parts_holds,
    every_bad_batch_is_refused_with_its_code,
    a_batch_refuses_recipients_one_by_one_and_counts_the_rest,
    a_scheduled_batch_fans_out_at_its_time,
);

/// Ten thousand recipients on DynamoDB (moto), the monthly cap letting 9,000 through: the
/// answer is bounded (no number; refusals by code and position), so it is stored with the key.
/// The Lambda then dies before completing the key; after the lease the same request replays the
/// batch as itself (the same answer), judging, counting and writing nothing again, though a
/// recipient opted out meanwhile; the cap holds for the next batch.
#[tokio::test]
async fn a_batch_of_ten_thousand_replays_as_itself_after_its_lease() {
    let moto = testkit::Moto::start();
    let sdk = moto.sdk_config().await;
    let table = pipeline::store::DynamoStore::with_new_table(&sdk, "state")
        .await
        .unwrap();
    let store = testkit::faulty::FaultyStore::new(table);
    let mut first = api_at(store.clone(), NOW_MS);
    first.config.guards.monthly_caps = [("SMS_API".to_owned(), 9_000)].into_iter().collect();
    let body = json!({"channel": "SMS_API", "text": "Hi ${name}, our winter sale starts now",
        "recipients": recipients(10_000)});
    // The key is never completed: the function died after storing the batch.
    store.fail_times("complete", testkit::faulty::Fault::Before, 1);
    let (status, answer) = post_batch(&first, "big", body.clone()).await;
    assert_eq!(status, 202);
    assert_eq!(answer["accepted"], 9_000);
    assert_eq!(answer["refused"][0]["code"], "monthly_cap_reached");
    assert_eq!(
        answer["refused"][0]["recipients"].as_array().map(Vec::len),
        Some(1_000)
    );
    let size = answer.to_string().len();
    assert!(size < 40_000, "bounded: {size} bytes");
    let id = answer["id"].as_str().unwrap().to_owned();
    let batch = store.batch(&id).await.unwrap().unwrap();
    let mut chunks = Vec::new();
    for k in 0..batch.chunks {
        chunks.push(store.batch_chunk(&id, k).await.unwrap());
    }
    // Meanwhile the first recipient opts out.
    store
        .set_opt_out(&pipeline::store::OptWrite {
            contact: &ContactKey::new("SMS", "46700000000"),
            opted_out: true,
            source: &pipeline::store::OptSource::Api,
            reference: "api_meanwhile",
            at_ms: NOW_MS + 1,
        })
        .await
        .unwrap();

    let lease = u64::try_from(first.config.in_flight_lease.as_millis()).unwrap();
    let mut later = api_at(store.clone(), NOW_MS + lease + 1_000);
    later.config.guards = first.config.guards.clone();
    let (status, again) = post_batch(&later, "big", body).await;
    assert_eq!((status, &again), (202, &answer), "the same answer");
    assert_eq!(store.batch(&id).await.unwrap(), Some(batch.clone()));
    for k in 0..batch.chunks {
        assert_eq!(
            store.batch_chunk(&id, k).await.unwrap(),
            chunks[k as usize],
            "chunk {k} as it was"
        );
    }
    assert_eq!(
        later.lanes.bulk.len(),
        batch.chunks as usize,
        "its fan-outs queued again"
    );
    // The cap counted 9,000 once: the next batch finds it full.
    let (status, next) = post_batch(
        &later,
        "next",
        json!({"channel": "SMS_API", "text": "Hi", "recipients": [{"to": "+46711111111"}]}),
    )
    .await;
    assert_eq!(status, 202, "{next}");
    assert_eq!(next["accepted"], 0, "{next}");
}

/// The peak resident memory of this process (Linux's `VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The largest batch the API accepts (10,000 recipients, each message just under the bound
/// once the shared body is copied in) and the largest it refuses (a 100 KB shared parameter):
/// the process's peak memory stays far below the API's 128 MB. Nextest runs each test in a
/// process of its own, so the peak is this request's (the figure is printed for docs/sending.md).
#[tokio::test]
async fn the_largest_batch_accepted_fits_in_the_apis_memory() {
    let api = api_at(MemoryStore::new(), NOW_MS);
    let before = peak_rss();
    // Each recipient's own parts, the shared body padded so that the batch expands to just
    // under MAX_EXPANDED_BYTES.
    let list = recipients(10_000);
    let own: usize = list.iter().map(|r| r.to_string().len()).sum();
    // Some metadata, the text taking the rest (an SMS of a few parts).
    let metadata = json!({"pad": "m".repeat(300)});
    let base =
        json!({"channel": "SMS_API", "text": "Hi ${name} ", "max_parts": 10, "metadata": metadata});
    let room = (api::batches::MAX_EXPANDED_BYTES - own) / 10_000 - base.to_string().len() - 2;
    let body = json!({"channel": "SMS_API", "text": format!("Hi ${{name}} {}", "t".repeat(room)),
        "max_parts": 10, "metadata": metadata, "recipients": list});
    let (status, answer) = post_batch(&api, "largest", body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 10_000, "{}", answer["refused"][0]);
    let accepted_peak = peak_rss();
    let refused = json!({"channel": "SMS_API", "text": "Hi ${name}",
        "metadata": {"blob": "x".repeat(100_000)}, "recipients": recipients(10_000)});
    let (status, answer) = post_batch(&api, "too-large", refused).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("batch_too_large"))
    );
    // Placeholders repeated with a long parameter (4,000 × 50 KB once filled): stopped at the
    // filled text's bound, refused text_too_long.
    let amplified = json!({"channel": "SMS_API", "text": "${a}".repeat(4000),
        "recipients": [{"to": "+46701234567", "parameters": {"a": "x".repeat(50_000)}}]});
    let (status, answer) = post_batch(&api, "amplified", amplified).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["refused"][0]["code"], "text_too_long", "{answer}");
    let after = peak_rss();
    let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
    println!(
        "peak RSS: {:.1} MiB before, {:.1} MiB after the largest accepted batch, {:.1} MiB after the refused one",
        mib(before),
        mib(accepted_peak),
        mib(after)
    );
    assert!(
        after < 100 * 1_048_576,
        "the API's Lambda has 128 MB: peak {:.1} MiB",
        mib(after)
    );
}

/// A `send_at` with spaces around it: validation trims it, and so does the fan-out's time (it
/// fanned out at once).
#[tokio::test]
async fn a_batch_send_at_with_spaces_is_scheduled_at_that_time() {
    let api = api_at(MemoryStore::new(), NOW_MS);
    let at = NOW_MS + 3_600_000;
    let body = json!({"channel": "SMS_API", "text": "Hi ${name}",
        "send_at": format!("  {}  ", rfc3339(at)), "recipients": recipients(2)});
    let (status, answer) = post_batch(&api, "spaced", body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (202, Some("SCHEDULED")),
        "{answer}"
    );
    assert!(api.lanes.bulk.is_empty(), "nothing fans out now");
    let pending = api.scheduler.pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].1, at);
}

/// A batch whose every message has left (handed to Sinch, not yet delivered): `DELETE` has
/// nothing to stop, so 409 `not_cancelable` (it answered 200); while one waits, 200.
#[tokio::test]
async fn a_batch_whose_messages_have_all_left_cannot_be_canceled() {
    use pipeline::store::{AcceptedMessage, BatchRef, SendFinish, SendResult};
    let api = api_at(MemoryStore::new(), NOW_MS);
    let body = json!({"channel": "SMS_API", "text": "Hi ${name}", "recipients": recipients(2)});
    let (status, answer) = post_batch(&api, "left", body).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    // Its fan-out made both messages; the first has left.
    for k in 0..2u32 {
        api.store
            .accept_message(&AcceptedMessage {
                id: api::batches::message_id(&id, k),
                channel: "SMS_API".into(),
                to: format!("+4670{k:07}"),
                metadata: None,
                caller: "local".into(),
                at_ms: NOW_MS,
                status: pipeline::status::Status::Accepted,
                scheduled_at_ms: None,
                batch: Some(BatchRef {
                    id: id.clone(),
                    index: k,
                }),
                fallback: Vec::new(),
            })
            .await
            .unwrap();
    }
    let sent = |k: u32| {
        let api = &api;
        let id = id.clone();
        async move {
            let result = SendResult::Accepted { sinch_id: None };
            api.store
                .finish_send(&SendFinish {
                    id: &api::batches::message_id(&id, k),
                    attempt: None,
                    result: &result,
                    at_ms: NOW_MS + 1,
                })
                .await
                .unwrap();
        }
    };
    sent(0).await;
    let delete = || request("DELETE", &format!("/batches/{id}"), None, None);
    // The second has left too: nothing to cancel.
    sent(1).await;
    let (status, refused, _) = call(&api, delete()).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (409, Some("not_cancelable")),
        "{refused}"
    );
    // Another batch, one of whose messages has not been made yet: 200.
    let body = json!({"channel": "SMS_API", "text": "Hi ${name}", "recipients": recipients(1)});
    let (_, waiting) = post_batch(&api, "waiting", body).await;
    let other = waiting["id"].as_str().unwrap();
    let (status, view, _) = call(
        &api,
        request("DELETE", &format!("/batches/{other}"), None, None),
    )
    .await;
    assert_eq!((status, &view["canceled"]), (200, &json!(true)), "{view}");
}

/// A batch answered 202, posted again with its key after its `expire_at` passed: the same
/// answer (it was validated again first and refused 422; found by review); a new key with that
/// body is refused, and leaves no key behind.
#[tokio::test]
async fn a_retry_after_the_requests_own_time_passed_is_replayed() {
    let store = MemoryStore::new();
    let first = api_at(store.clone(), NOW_MS);
    let body = json!({"channel": "SMS_API", "text": "Hi", "expire_at": rfc3339(NOW_MS + 60_000),
        "recipients": [{"to": "+46701234567"}]});
    let (status, answer) = post_batch(&first, "exp", body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    let later = api_at(store.clone(), NOW_MS + 120_000);
    let (status, replay) = post_batch(&later, "exp", body.clone()).await;
    assert_eq!((status, &replay), (202, &answer), "the same answer");
    let (status, refused) = post_batch(&later, "exp-new", body.clone()).await;
    assert_eq!(status, 422, "{refused}");
    // The key looked at was given back: the same key with a valid body later is a new batch.
    let fresh = json!({"channel": "SMS_API", "text": "Hi", "recipients": [{"to": "+46701234567"}]});
    let (status, accepted) = post_batch(&later, "exp-new", fresh).await;
    assert_eq!(status, 202, "{accepted}");
}

/// The monthly cap counted, then the batch could not be stored: its count is given back, so
/// the retry after the lease counts once (it refused a recipient of a batch that fits; found
/// by review). A store that lost only the answer keeps the count: the retry replays.
#[tokio::test]
async fn a_batch_that_could_not_be_stored_gives_its_cap_count_back() {
    use testkit::faulty::{Fault, FaultyStore};
    for (fault, key) in [(Fault::Before, "cap-before"), (Fault::After, "cap-after")] {
        let store = FaultyStore::new(MemoryStore::new());
        let mut first = api_at(store.clone(), NOW_MS);
        first.config.guards.monthly_caps = [("SMS_API".to_owned(), 3)].into_iter().collect();
        let body = json!({"channel": "SMS_API", "text": "Hi",
            "recipients": [{"to": "+46701234567"}, {"to": "+46701234568"}]});
        store.fail_times("create_batch", fault, 1);
        let (status, _) = post_batch(&first, key, body.clone()).await;
        assert_eq!(status, 503, "{fault:?}");
        let lease = u64::try_from(first.config.in_flight_lease.as_millis()).unwrap();
        let mut later = api_at(store.clone(), NOW_MS + lease + 1_000);
        later.config.guards = first.config.guards.clone();
        let (status, again) = post_batch(&later, key, body).await;
        assert_eq!(status, 202, "{fault:?}: {again}");
        assert_eq!(again["accepted"], 2, "{fault:?}: {again}");
        // One left under the cap of 3: the next batch of two gets one.
        let next = json!({"channel": "SMS_API", "text": "Hi",
            "recipients": [{"to": "+46701234569"}, {"to": "+46701234570"}]});
        let (_, next) = post_batch(&later, &format!("{key}-next"), next).await;
        assert_eq!(next["accepted"], 1, "{fault:?}: {next}");
    }
}
