//! Sending at scale, black box through `serve`: a batch paced at the rate Sinch takes with a
//! one-time code overtaking it, schedules that leave on time, cancels and STOPs that hold.
//! Everything is counted where it lands: the Sinch simulator's log of what it received and
//! when (`GET /simulator/sent`), and the messages' statuses.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::common::{SECRET, Serve, now, serve};
use crate::messages::whatsapp_from;

/// The rate the simulator holds Sinch to.
const SINCH_RATE: u64 = 50;
/// The rate the pipeline is configured with: a tenth under Sinch's, as a deployment should
/// (docs/sending.md): a send leaves at its slot, but reaches Sinch after a network's (here a
/// busy machine's) jitter, and two sends that left 22 ms apart can arrive 1 ms apart.
const RATE: u64 = 45;

fn unix_ms() -> u64 {
    pipeline::clock::unix_millis(SystemTime::now())
}

fn rfc3339(ms: u64) -> String {
    pipeline::clock::rfc3339(ms)
}

async fn paced_serve() -> Serve {
    let rate = RATE.to_string();
    let sinch_rate = SINCH_RATE.to_string();
    tokio::task::spawn_blocking(move || {
        serve(
            &[
                "--simulator-rate",
                &sinch_rate,
                "--outbound-concurrency",
                "2",
                "--report-pace-ms",
                "5",
            ],
            &[("CONVERSATION_SEND_RATE", &rate), ("SMS_SEND_RATE", &rate)],
        )
    })
    .await
    .unwrap()
}

async fn post(client: &reqwest::Client, url: String, key: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// What reached the simulator: (our message id, arrival in Unix ms).
async fn sent(client: &reqwest::Client, serve: &Serve) -> Vec<(String, u64)> {
    let log = get(client, format!("{}/simulator/sent", serve.base)).await;
    log.as_array()
        .map(|log| {
            log.iter()
                .map(|m| {
                    let reference = m["reference"].as_str().unwrap_or_default();
                    let id = pipeline::ledger::reference::ours(Some(reference))
                        .unwrap_or(reference)
                        .to_owned();
                    (id, m["at_ms"].as_u64().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The most arrivals in any one-second window.
fn busiest_second(mut arrivals: Vec<u64>) -> usize {
    arrivals.sort_unstable();
    let mut most = 0;
    let mut start = 0;
    for end in 0..arrivals.len() {
        while arrivals[end] - arrivals[start] >= 1000 {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

/// A 1,000-recipient batch at 45/s against a simulator that answers 429 beyond 50/s, and a
/// one-time code posted 5 s into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_paced_to_the_rate_and_a_one_time_code_overtakes_it() {
    const RECIPIENTS: usize = 1000;
    let serve = paced_serve().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let recipients: Vec<Value> = (0..RECIPIENTS)
        .map(|k| json!({"to": format!("+4673{k:07}"), "parameters": {"name": format!("N{k}")}}))
        .collect();
    let started = Instant::now();
    let (status, batch) = post(
        &client,
        format!("{}/batches", serve.base),
        "campaign-1",
        json!({"channel": "SMS_API", "text": "Hello ${name}, our winter sale starts today",
            "recipients": recipients}),
    )
    .await;
    let accepted_in = started.elapsed();
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["accepted"], RECIPIENTS, "{batch}");
    assert_eq!(batch["status"], "ACCEPTED");
    let batch_id = batch["id"].as_str().unwrap().to_owned();

    // Five seconds in, a one-time code, on the fast lane by default.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    let code_posted = unix_ms();
    let (status, code) = post(
        &client,
        format!("{}/messages", serve.base),
        "otp-1",
        json!({"to": "+46709999999", "channel": "SMS_API", "text": "Your code is 123456"}),
    )
    .await;
    assert_eq!(status, 202, "{code}");
    let code_id = code["id"].as_str().unwrap().to_owned();
    let code_left = loop {
        if let Some((_, at)) = sent(&client, &serve)
            .await
            .into_iter()
            .find(|(id, _)| *id == code_id)
        {
            break at;
        }
        assert!(
            unix_ms() < code_posted + 10_000,
            "the code never reached Sinch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Every message of the batch final.
    let until = Instant::now() + Duration::from_secs(150);
    let view = loop {
        let view = get(&client, format!("{}/batches/{batch_id}", serve.base)).await;
        if view["final"] == true {
            break view;
        }
        assert!(Instant::now() < until, "the batch is not final: {view}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let all = sent(&client, &serve).await;
    let of_batch: Vec<&(String, u64)> = all
        .iter()
        .filter(|(id, _)| id.starts_with(&format!("msg_{}_", batch_id.trim_start_matches("bat_"))))
        .collect();
    let mut distinct: Vec<&String> = of_batch.iter().map(|(id, _)| id).collect();
    distinct.sort();
    distinct.dedup();
    let first = of_batch.iter().map(|(_, at)| *at).min().unwrap_or_default();
    let last = of_batch.iter().map(|(_, at)| *at).max().unwrap_or_default();
    let throughput = (of_batch.len() - 1) as f64 / ((last - first) as f64 / 1000.0);
    let busiest = busiest_second(all.iter().map(|(_, at)| *at).collect());
    let status = tokio::task::block_in_place(|| serve.status());
    println!(
        "{RECIPIENTS} recipients accepted in {} ms; at Sinch: {} of the batch ({} distinct) in \
         {:.1} s, {throughput:.1}/s ({:.0} % of {RATE}/s); busiest second {busiest}; the code \
         {} ms after it was posted; 429s {}; counts {}",
        accepted_in.as_millis(),
        of_batch.len(),
        distinct.len(),
        (last - first) as f64 / 1000.0,
        throughput / RATE as f64 * 100.0,
        code_left.saturating_sub(code_posted),
        status["sinch_throttled"],
        view["counts"],
    );
    assert!(
        code_left.saturating_sub(code_posted) <= 2000,
        "the code reached Sinch {} ms after it was posted",
        code_left - code_posted
    );
    assert_eq!(
        of_batch.len(),
        RECIPIENTS,
        "each batch message reached Sinch"
    );
    assert_eq!(distinct.len(), RECIPIENTS, "each exactly once");
    assert_eq!(status["replies_duplicated"], 0, "{status}");
    assert!(busiest <= SINCH_RATE as usize, "{busiest} in one second");
    assert!(
        throughput >= 0.9 * RATE as f64,
        "{throughput:.1}/s is under 90 % of {RATE}/s"
    );
    assert_eq!(status["sinch_throttled"], 0, "no 429: {status}");
    assert_eq!(view["total"], RECIPIENTS);
    assert_eq!(view["counts"]["DELIVERED"], RECIPIENTS, "{view}");
}

/// A send 10 s ahead leaves within a second of its time; one canceled before never leaves; one
/// whose recipient says STOP before it is due ends FAILED `recipient_opted_out`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_leave_on_time_and_cancels_and_stops_hold() {
    let serve = paced_serve().await;
    let client = reqwest::Client::new();
    let messages = format!("{}/messages", serve.base);
    let template = |to: &str| {
        json!({"to": to, "channel": "WHATSAPP", "template": {"name": "reminder",
            "language": "en_US", "parameters": {"body[1]text": "Tuesday"}}})
    };
    let at = |ms: u64, mut body: Value| {
        body["send_at"] = rfc3339(ms).into();
        body
    };
    let due = (unix_ms() / 1000 + 10) * 1000;
    let (status, on_time) = post(
        &client,
        messages.clone(),
        "later-1",
        at(due, template("+46705550001")),
    )
    .await;
    assert_eq!(
        (status, on_time["status"].as_str()),
        (202, Some("SCHEDULED")),
        "{on_time}"
    );
    assert_eq!(on_time["scheduled_at"], rfc3339(due));
    let (_, canceled) = post(
        &client,
        messages.clone(),
        "later-2",
        at(due, template("+46705550002")),
    )
    .await;
    let (_, stopped) = post(
        &client,
        messages.clone(),
        "later-3",
        at(due, template("+46705550003")),
    )
    .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let (on_time, canceled, stopped) = (id(&on_time), id(&canceled), id(&stopped));
    assert_eq!(
        get(&client, format!("{messages}/{on_time}")).await["status"],
        "SCHEDULED"
    );

    // Canceled: 200, CANCELED; again: 409.
    let cancel = |id: String| {
        let client = client.clone();
        let url = format!("{messages}/{id}");
        async move {
            let response = client.delete(url).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, view) = cancel(canceled.clone()).await;
    assert_eq!(
        (status, view["status"].as_str()),
        (200, Some("CANCELED")),
        "{view}"
    );
    assert_eq!(cancel(canceled.clone()).await.0, 409, "canceled is the end");

    // The third recipient says STOP before it is due.
    let stop = whatsapp_from("01SCHEDSTOP", "46705550003", "STOP");
    let (status, _) = tokio::task::block_in_place(|| serve.post_signed(SECRET, &stop, now()));
    assert_eq!(status, 200);

    let until = Instant::now() + Duration::from_secs(30);
    let left = loop {
        if let Some((_, at)) = sent(&client, &serve)
            .await
            .into_iter()
            .find(|(id, _)| *id == on_time)
        {
            break at;
        }
        assert!(Instant::now() < until, "the scheduled send never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "due at {due}, reached Sinch at {left}: {} ms late",
        left as i64 - due as i64
    );
    assert!(left >= due, "it left {} ms early", due - left);
    assert!(left <= due + 1000, "it left {} ms late", left - due);
    // Past its time, the others have had theirs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = sent(&client, &serve).await;
    assert!(
        !all.iter().any(|(id, _)| *id == canceled),
        "the canceled one reached Sinch"
    );
    assert!(
        !all.iter().any(|(id, _)| *id == stopped),
        "the stopped one reached Sinch"
    );
    let view = get(&client, format!("{messages}/{canceled}")).await;
    assert_eq!(view["status"], "CANCELED", "{view}");
    let view = get(&client, format!("{messages}/{stopped}")).await;
    assert_eq!(view["status"], "FAILED", "{view}");
    assert_eq!(view["reason"]["code"], "recipient_opted_out", "{view}");
    // The one that left cannot be canceled any more.
    assert_eq!(cancel(on_time).await.0, 409);
}

/// `sinch-hooks batch send --csv` posts the rows as a batch and follows it to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_a_batch_from_a_csv_file_and_follows_it() {
    let serve = paced_serve().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recipients.csv");
    let mut csv = String::from("to,name,metadata\n");
    for k in 0..30 {
        csv.push_str(&format!(
            "+4674{k:07},Customer {k},\"{{\"\"row\"\": {k}}}\"\n"
        ));
    }
    csv.push_str("not-a-number,Nobody,\n");
    std::fs::write(&file, csv).unwrap();
    let base = serve.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::cargo_bin("sinch-hooks")
            .unwrap()
            .args([
                "batch",
                "send",
                "--url",
                &base,
                "--channel",
                "SMS_API",
                "--quiet",
                "--wait",
            ])
            .args([
                "--text",
                "Hi ${name}, your order shipped",
                "--key",
                "csv-1",
                "--csv",
            ])
            .arg(&file)
            .env("SINCH_HOOKS_API_URL", "")
            .timeout(Duration::from_secs(120))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("30 accepted, 1 refused"), "{stdout}");
    assert!(
        stderr.contains("refused not-a-number: invalid_recipient"),
        "{stderr}"
    );
    assert!(stdout.contains(r#""final":true"#), "{stdout}");
    let client = reqwest::Client::new();
    let texts: Vec<String> = get(&client, format!("{}/simulator/sent", serve.base))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(texts.len(), 30);
    assert!(
        texts.contains(&"Hi Customer 7, your order shipped".to_owned()),
        "{texts:?}"
    );
}
