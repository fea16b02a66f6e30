//! `coldstart`: how long each Lambda takes to start, measured the way Lambda starts it.
//!
//! Each binary is spawned cold, as the Lambda service would spawn `bootstrap`, against a Lambda
//! Runtime API served here on loopback (one per spawn). Measured, per spawn:
//!
//! | figure | from | to |
//! |---|---|---|
//! | init | the spawn | its first `GET /runtime/invocation/next` (everything before it is init) |
//! | first invoke | handing it the event | its `POST /runtime/invocation/{id}/response` |
//! | peak RSS | | `VmHWM` of the process after the first invoke |
//! | of which anonymous / file | | `RssAnon` / `RssFile` then: heap and stacks against the binary's and libraries' pages (file pages come in 64 KiB at a time, the kernel's fault-around) |
//!
//! Binaries run interleaved (a round spawns each once), so a busy moment of the machine falls on
//! all of them alike; the table gives medians and the ratio of each to the empty Lambda
//! (`empty-lambda`, a binary of this crate). The events touch no network: a forged callback (401), a callback of
//! a kind with no effects, a request the messages API refuses (400); what is measured is the
//! function's own start, not a service's latency.
//!
//! ```sh
//! infra/scripts/coldstart.sh            # release builds, 15 rounds, the table
//! coldstart --bin-dir target/debug --runs 1 --check   # the test command: it works, no timings
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Debug, Parser)]
#[command(about = "Cold starts of the Lambdas, against a Runtime API on loopback")]
struct Args {
    /// Where the binaries are (`empty-lambda`, `receiver`, `worker`, `api`, `publisher`).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Rounds; each spawns every binary once, interleaved.
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Only check that every binary starts and answers (no timings judged).
    #[arg(long)]
    check: bool,
    /// Only these binaries (the empty Lambda is always measured).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// One function to start.
struct Function {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    event: Value,
}

/// One cold start.
#[derive(Debug, Clone, Copy)]
struct Sample {
    init: Duration,
    first_invoke: Duration,
    peak_rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
}

fn functions() -> Vec<Function> {
    let forged = json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"content-type": "application/json",
            "x-sinch-webhook-signature": "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE=",
            "x-sinch-webhook-signature-nonce": "01FJA8B4A7BM43YGWSG9GBV067",
            "x-sinch-webhook-signature-timestamp": "1634579353",
            "x-sinch-webhook-signature-algorithm": "HmacSHA256"},
        "requestContext": {"http": {"method": "POST", "path": "/webhook"}, "requestId": "cold", "timeEpoch": 0},
        "body": "{\"app_id\":\"a\",\"contact_create_notification\":{}}", "isBase64Encoded": false
    });
    let no_effects = json!({"Records": [{
        "messageId": "m1", "receiptHandle": "r1",
        "body": "{\"app_id\":\"a\",\"contact_create_notification\":{\"contact\":{\"id\":\"c\"}}}",
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
    }]});
    let refused = json!({
        "version": "2.0", "routeKey": "POST /messages", "rawPath": "/messages", "rawQueryString": "",
        "headers": {"content-type": "application/json", "idempotency-key": "cold"},
        "requestContext": {"http": {"method": "POST", "path": "/messages"}, "requestId": "cold", "timeEpoch": 0},
        "body": "{\"to\":\"not a number\",\"channel\":\"SMS\",\"text\":\"hi\"}", "isBase64Encoded": false
    });
    // A stream batch whose only record is an idempotency record: no event, no network.
    let no_event = json!({"Records": [{
        "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 0, "Keys": {"pk": {"S": "idem#k"}},
            "NewImage": {"pk": {"S": "idem#k"}, "state": {"S": "INPROGRESS"}},
            "SequenceNumber": "1", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    }]});
    let nowhere = "http://127.0.0.1:9";
    // The lanes and the scheduler, as the template passes them to the worker and the API.
    let lanes = |mut env: Vec<(&'static str, String)>| {
        env.extend([
            (
                "OUTBOUND_QUEUE_URL",
                format!("{nowhere}/123456789012/outbound"),
            ),
            (
                "OUTBOUND_QUEUE_ARN",
                "arn:aws:sqs:us-east-1:123456789012:outbound".into(),
            ),
            ("BULK_QUEUE_URL", format!("{nowhere}/123456789012/bulk")),
            (
                "BULK_QUEUE_ARN",
                "arn:aws:sqs:us-east-1:123456789012:bulk".into(),
            ),
            (
                "SCHEDULER_ROLE_ARN",
                "arn:aws:iam::123456789012:role/scheduler".into(),
            ),
        ]);
        env
    };
    vec![
        Function {
            name: "empty-lambda",
            env: vec![],
            event: json!({}),
        },
        Function {
            name: "receiver",
            env: vec![
                ("SINCH_WEBHOOK_SECRET", "cold-start-secret".into()),
                ("QUEUE_URL", format!("{nowhere}/123456789012/callbacks")),
                (
                    "DEAD_LETTER_QUEUE_URL",
                    format!("{nowhere}/123456789012/dlq"),
                ),
            ],
            event: forged,
        },
        Function {
            name: "worker",
            env: lanes(vec![
                ("TABLE_NAME", "sinch-hooks".into()),
                (
                    "DEAD_LETTER_QUEUE_URL",
                    format!("{nowhere}/123456789012/dlq"),
                ),
            ]),
            event: no_effects,
        },
        Function {
            name: "api",
            env: lanes(vec![("TABLE_NAME", "sinch-hooks".into())]),
            event: refused,
        },
        Function {
            name: "publisher",
            env: vec![("EVENT_BUS_NAME", "sinch-hooks-events".into())],
            event: no_event,
        },
    ]
}

/// What the Runtime API learns from one spawn.
#[derive(Default)]
struct Seen {
    next: Option<oneshot::Sender<Instant>>,
    done: Option<oneshot::Sender<Result<Instant, String>>>,
    event: Value,
    served: bool,
}

type Shared = Arc<Mutex<Seen>>;

async fn next(State(seen): State<Shared>) -> impl IntoResponse {
    let (event, first) = {
        let mut seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = !seen.served;
        seen.served = true;
        if let Some(next) = seen.next.take() {
            let _ = next.send(Instant::now());
        }
        (seen.event.clone(), first)
    };
    if !first {
        // One event per cold start: later polls wait until the process is killed.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", "cold-1".to_owned()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:cold".into(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".into(),
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, event.to_string())
}

async fn response(State(seen): State<Shared>, Path(_id): Path<String>) -> StatusCode {
    finish(&seen, Ok(Instant::now()));
    StatusCode::ACCEPTED
}

async fn failed(State(seen): State<Shared>, body: String) -> StatusCode {
    finish(&seen, Err(body));
    StatusCode::ACCEPTED
}

fn finish(seen: &Shared, result: Result<Instant, String>) {
    let done = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .done
        .take();
    if let Some(done) = done {
        let _ = done.send(result);
    }
}

/// Starts `function` cold once.
async fn measure(args: &Args, function: &Function) -> Result<Sample, String> {
    let (next_tx, next_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let seen = Arc::new(Mutex::new(Seen {
        next: Some(next_tx),
        done: Some(done_tx),
        event: function.event.clone(),
        served: false,
    }));
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
        .route("/2018-06-01/runtime/init/error", post(failed))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let binary = args.bin_dir.join(function.name);
    let mut command = tokio::process::Command::new(&binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function.name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/cold")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold")
        .env("_HANDLER", "bootstrap")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDCOLDSTART")
        .env("AWS_SECRET_ACCESS_KEY", "cold-start")
        .env("AWS_SESSION_TOKEN", "cold-start")
        .env("HOME", "/nonexistent")
        .envs(function.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let spawned = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or_default();
    let result = async {
        let asked = tokio::time::timeout(Duration::from_secs(10), next_rx)
            .await
            .map_err(|_| "no call to /next within 10 s".to_owned())?
            .map_err(|_| "the runtime API stopped".to_owned())?;
        let answered = tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
            .map_err(|_| "the runtime API stopped".to_owned())?
            .map_err(|error| format!("it failed: {error}"))?;
        Ok(Sample {
            init: asked - spawned,
            first_invoke: answered - asked,
            peak_rss_kb: status_kb(pid, "VmHWM"),
            anon_kb: status_kb(pid, "RssAnon"),
            file_kb: status_kb(pid, "RssFile"),
        })
    }
    .await;
    let _ = child.kill().await;
    server.abort();
    result
}

/// A figure of /proc's status of the process, in kB (`VmHWM`: the most resident memory it ever
/// had; `RssAnon`, `RssFile`: what is resident now).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn median<T: Copy + Ord>(values: &mut [T]) -> T {
    values.sort();
    values[values.len() / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let functions: Vec<Function> = functions()
        .into_iter()
        .filter(|f| {
            f.name == "empty-lambda"
                || args.only.is_empty()
                || args.only.iter().any(|o| o == f.name)
        })
        .collect();
    let mut samples: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for round in 0..args.runs.max(1) {
        for function in &functions {
            match measure(&args, function).await {
                Ok(sample) => samples.entry(function.name).or_default().push(sample),
                Err(error) => {
                    eprintln!("{} (round {}): {error}", function.name, round + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let empty_init = samples
        .get("empty-lambda")
        .map(|s| median(&mut s.iter().map(|s| s.init).collect::<Vec<_>>()))
        .unwrap_or(Duration::from_nanos(1));
    println!(
        "cold starts, {} round(s), binaries from {}\n",
        args.runs.max(1),
        args.bin_dir.display()
    );
    println!(
        "| binary | init, median (min to max) | vs the empty Lambda | first invoke, median | peak RSS, median | anonymous / file |"
    );
    println!("|---|---|---|---|---|---|");
    for function in &functions {
        let Some(all) = samples.get(function.name) else {
            continue;
        };
        let mut inits: Vec<Duration> = all.iter().map(|s| s.init).collect();
        let mut invokes: Vec<Duration> = all.iter().map(|s| s.first_invoke).collect();
        let mut rss: Vec<u64> = all.iter().map(|s| s.peak_rss_kb).collect();
        let mut anon: Vec<u64> = all.iter().map(|s| s.anon_kb).collect();
        let mut file: Vec<u64> = all.iter().map(|s| s.file_kb).collect();
        let (min, max) = (
            inits.iter().min().copied().unwrap_or_default(),
            inits.iter().max().copied().unwrap_or_default(),
        );
        let init = median(&mut inits);
        println!(
            "| {} | {:.1} ms ({:.1} to {:.1}) | {:.2}x | {:.2} ms | {:.1} MB | {:.1} / {:.1} MB |",
            function.name,
            millis(init),
            millis(min),
            millis(max),
            init.as_secs_f64() / empty_init.as_secs_f64(),
            millis(median(&mut invokes)),
            median(&mut rss) as f64 / 1024.0,
            median(&mut anon) as f64 / 1024.0,
            median(&mut file) as f64 / 1024.0
        );
    }
    if args.check {
        println!("\nevery binary started and answered its first event");
    }
    ExitCode::SUCCESS
}
