//! What the pipeline costs to run on AWS, per message, counted where the calls land.
//!
//! `sinch-hooks cost --aws-endpoint URL` (`infra/scripts/cost.sh` starts moto and runs it)
//! runs the whole stack in this process against the endpoint, through a counting proxy
//! ([`proxy`]), and drives a fixed mix, one kind at a time, each until the stack is quiet:
//!
//! | kind | traffic | what it includes |
//! |---|---|---|
//! | `inbound` | N signed inbound messages (`HELP`) | the receiver, the worker, the reply through the Sinch simulator, the reply's three delivery reports, the events |
//! | `single_send` | N `POST /messages` (SMS) | the API, the send, its delivery reports, the events |
//! | `batch_recipient` | one `POST /batches` of N recipients (SMS) | the fan-out, each send and its reports, the events |
//! | `opt_out` | N `PUT /optouts/SMS/{number}` | the API's write, the events |
//!
//! Per message of each kind it counts every AWS call by service and operation, DynamoDB's
//! capacity units ([`capacity`]), EventBridge entries, each function's invocations and their
//! billed duration (as the stack times them), and the bytes of the log lines the functions
//! write at the deployed level (INFO, JSON). [`prices`] turns them into dollars.

pub mod capacity;
pub mod prices;
pub mod proxy;
pub mod report;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::messages_client::{Auth, MessagesClient};
use crate::stack::event_source::EventSourceConfig;
use crate::stack::stats::{Invocations, Status};
use crate::stack::{self, Options};
use crate::webhook_client::{http_client, post_signed};
use proxy::{Tallies, difference};

/// The kinds of message, in the order they run.
pub const KINDS: [&str; 4] = ["inbound", "single_send", "batch_recipient", "opt_out"];

const SECRET: &str = "cost-run-secret";

/// What one kind of message cost, for `n` of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    /// How many messages.
    pub n: u64,
    /// Every AWS call, by `"<service> <operation>"`.
    pub calls: Tallies,
    /// Each function's invocations.
    pub invocations: BTreeMap<String, Invocations>,
    /// The bytes of log lines written.
    pub log_bytes: u64,
    /// The events the publisher made (EventBridge entries in AWS; the stack keeps them).
    pub events: u64,
    /// How long it took, start to quiet.
    pub seconds: f64,
}

/// Why a cost run stopped.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The proxy or the stack did not start.
    #[error("could not start: {0}")]
    Start(String),
    /// A kind's traffic was refused or never finished.
    #[error("{kind}: {why}")]
    Traffic {
        /// The kind.
        kind: &'static str,
        /// What went wrong.
        why: String,
    },
}

/// Bytes of log lines written, counted by [`LogCounter`].
pub static LOG_BYTES: AtomicU64 = AtomicU64::new(0);

/// A log writer that counts what the functions write and keeps none of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogCounter;

impl Write for LogCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG_BYTES.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs as the Lambdas do in AWS (JSON, INFO), into [`LogCounter`]; the stack's own lines (this
/// crate's) are not a Lambda's and are left out.
pub fn count_logs() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,sinch_hooks=off"))
        .with_writer(|| LogCounter)
        .try_init();
}

/// Runs the mix with `n` messages of each kind against the AWS endpoint `aws_endpoint`.
pub async fn run(aws_endpoint: &str, n: u64) -> Result<BTreeMap<String, Measured>, CostError> {
    let counting = proxy::start(aws_endpoint)
        .await
        .map_err(|e| CostError::Start(e.to_string()))?;
    let env = pipeline::config::Env::from_lookup(|name: &str| {
        (name == receiver::config::SINCH_WEBHOOK_SECRET).then(|| SECRET.to_owned())
    });
    let mut options = Options::from_env(&env, EventSourceConfig::default())
        .map_err(|e| CostError::Start(e.to_string()))?;
    options.aws_endpoint = Some(format!("http://{}", counting.address));
    let running = stack::start(options)
        .await
        .map_err(|e| CostError::Start(e.to_string()))?;
    let base = format!("http://{}", running.address);
    let api = MessagesClient::new(&base, Auth::None, None, 8)
        .await
        .map_err(|e| CostError::Start(e.to_string()))?;
    let client = http_client(8);
    let mut measured = BTreeMap::new();
    for kind in KINDS {
        let before = (
            counting.tallies(),
            running.status().await,
            LOG_BYTES.load(Ordering::Relaxed),
        );
        let started = Instant::now();
        drive(kind, n, &base, &client, &api).await?;
        quiet(kind, n, &running, &counting, &before.1).await?;
        let after = (
            counting.tallies(),
            running.status().await,
            LOG_BYTES.load(Ordering::Relaxed),
        );
        measured.insert(
            kind.to_owned(),
            Measured {
                n,
                calls: difference(&after.0, &before.0),
                invocations: invocations(&after.1, &before.1),
                log_bytes: after.2 - before.2,
                events: after.1.events.values().sum::<u64>()
                    - before.1.events.values().sum::<u64>(),
                seconds: started.elapsed().as_secs_f64(),
            },
        );
    }
    running.stop();
    Ok(measured)
}

fn number(kind: usize, k: u64) -> String {
    format!("+1555{kind}{k:06}")
}

async fn drive(
    kind: &'static str,
    n: u64,
    base: &str,
    client: &reqwest::Client,
    api: &MessagesClient,
) -> Result<(), CostError> {
    let refused = |why: String| CostError::Traffic { kind, why };
    let run = ulid::Ulid::generate().to_string();
    match kind {
        "inbound" => {
            let url = format!("{base}/webhook");
            for k in 0..n {
                let body = crate::samples::inbound(
                    &format!("{run}{k}"),
                    "SMS",
                    number(1, k).trim_start_matches('+'),
                    "HELP",
                );
                // A 503 (the queue slow to confirm: moto is one Python process) is what Sinch
                // retries; so does the run, a few times, and the retry is counted as it costs.
                let mut answer = post_signed(client, &url, SECRET, body.clone(), None).await;
                for _ in 0..5 {
                    if answer.status != Some(503) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    answer = post_signed(client, &url, SECRET, body.clone(), None).await;
                }
                if answer.status != Some(200) {
                    return Err(refused(answer.line()));
                }
            }
        }
        "single_send" => {
            for k in 0..n {
                let body = api::request::SendRequest {
                    to: number(2, k),
                    channel: "SMS".into(),
                    text: Some("Your code is 1234".into()),
                    ..Default::default()
                };
                let body = serde_json::to_value(body).map_err(|e| refused(e.to_string()))?;
                let answer = api.send(&format!("{run}-{k}"), &body).await;
                if answer.status != Some(202) {
                    return Err(refused(answer.line()));
                }
            }
        }
        "batch_recipient" => {
            let shared = api::request::SendRequest {
                channel: "SMS".into(),
                text: Some("Hello ${name}, your order has shipped".into()),
                ..Default::default()
            };
            let Ok(serde_json::Value::Object(shared)) = serde_json::to_value(shared) else {
                return Err(refused("the shared fields are not an object".into()));
            };
            let body = api::batches::BatchRequest {
                shared,
                recipients: (0..n)
                    .map(|k| api::batches::Recipient {
                        to: number(3, k),
                        parameters: BTreeMap::from([("name".to_owned(), format!("Ada {k}"))]),
                        metadata: None,
                    })
                    .collect(),
            };
            let answer = api.send_batch(&run, &body).await;
            if answer.status != Some(202) {
                return Err(refused(answer.line()));
            }
        }
        _ => {
            for k in 0..n {
                let answer = api.opt_out("SMS", &number(4, k), "api", None).await;
                if !matches!(answer.status, Some(200 | 201 | 204)) {
                    return Err(refused(answer.line()));
                }
            }
        }
    }
    Ok(())
}

/// Waits until the kind's messages have all ended (their reports in) and no billed call has
/// come for a while.
async fn quiet(
    kind: &'static str,
    n: u64,
    running: &stack::Running,
    counting: &proxy::Counting,
    before: &Status,
) -> Result<(), CostError> {
    let until = Instant::now() + Duration::from_secs(120 + n / 5);
    let settled = |status: &Status| -> bool {
        let reports = |of: &Status| {
            of.processed
                .get("conversation.message_delivery_report")
                .copied()
                .unwrap_or(0)
        };
        match kind {
            // Each reply, each send, reported twice (QUEUED_ON_CHANNEL, DELIVERED: SMS).
            "inbound" | "single_send" | "batch_recipient" => {
                reports(status).saturating_sub(reports(before)) >= 2 * n
            }
            _ => true,
        }
    };
    let billed = |tallies: &Tallies| -> u64 {
        tallies
            .iter()
            .filter(|(operation, _)| prices::per_call(operation).is_some())
            .map(|(_, tally)| tally.calls)
            .sum()
    };
    // Activity: billed calls, and the events the publisher made (it reads the stream after
    // the writes, with calls that are not billed).
    let activity =
        |status: &Status| billed(&counting.tallies()) + status.events.values().sum::<u64>();
    let mut last = (activity(&running.status().await), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let status = running.status().await;
        let now = activity(&status);
        if now != last.0 {
            last = (now, Instant::now());
        }
        let drained = status.queue_visible == 0
            && status.queue_in_flight == 0
            && status.outbound_queue == 0
            && status.bulk_queue == 0;
        if settled(&status) && drained && last.1.elapsed() > Duration::from_secs(3) {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(CostError::Traffic {
                kind,
                why: format!("not done in time: {}", serde_json::json!(status)),
            });
        }
    }
}

fn invocations(after: &Status, before: &Status) -> BTreeMap<String, Invocations> {
    after
        .invocations
        .iter()
        .map(|(function, now)| {
            let then = before
                .invocations
                .get(function)
                .copied()
                .unwrap_or_default();
            (
                function.clone(),
                Invocations {
                    count: now.count - then.count,
                    billed_ms: now.billed_ms - then.billed_ms,
                },
            )
        })
        .filter(|(_, invocations)| invocations.count > 0)
        .collect()
}
