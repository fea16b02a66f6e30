//! `sinch-hooks post-callbacks`: signed callbacks, freshly signed per request, to any endpoint (the local
//! stack, a tunnel, a deployed API Gateway URL); reports answers and latency percentiles.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::CliError;
use crate::answer::Answer;
use crate::cli::{Kind, PostCallbacksArgs};
use crate::samples;
use crate::webhook_client::{http_client, post_signed};

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Requests made.
    pub sent: u64,
    /// Count per HTTP status, or `error` for no answer.
    pub answers: BTreeMap<String, u64>,
    /// How long the run took.
    pub elapsed: Duration,
    /// Latency percentiles, microseconds: p50, p90, p99, max.
    pub p50_us: u64,
    /// The 90th percentile.
    pub p90_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
    /// The slowest.
    pub max_us: u64,
}

impl Report {
    /// How many answers had this status (`"200"`, `"202"`, `"error"`).
    pub fn count(&self, status: &str) -> u64 {
        self.answers.get(status).copied().unwrap_or(0)
    }

    /// Requests a second over the run.
    pub fn per_second(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `post-callbacks`.
pub fn run(args: &PostCallbacksArgs, stdout: &mut dyn Write) -> Result<ExitCode, CliError> {
    let secret = args.secret.first()?.to_owned();
    if args.count == 0 || args.concurrency == 0 {
        return Err(CliError::Usage(
            "--count and --concurrency must be at least 1".into(),
        ));
    }
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Write)?;
    let client = http_client(args.concurrency);
    let report = runtime.block_on(load(args.count, args.concurrency, args.quiet, |n| {
        let (client, secret) = (&client, &secret);
        let body = body(args.kind, n);
        async move { post_signed(client, &args.url, secret, body, None).await }
    }));
    writeln!(
        stdout,
        "sent {} {} callback(s) to {} in {:.2} s: {:.0}/s",
        report.sent,
        args.kind.name(),
        args.url,
        report.elapsed.as_secs_f64(),
        report.per_second()
    )?;
    report.print(stdout)?;
    // Any answer other than 200 is worth a non-zero exit for scripts.
    Ok(if report.count("200") == report.sent {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

impl Report {
    /// The answers and the latency percentiles, two lines.
    pub fn print(&self, out: &mut dyn Write) -> Result<(), CliError> {
        let answers: Vec<String> = self
            .answers
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect();
        writeln!(out, "answers: {}", answers.join(", "))?;
        writeln!(
            out,
            "latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.p50_us as f64 / 1000.0,
            self.p90_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            self.max_us as f64 / 1000.0
        )?;
        Ok(())
    }
}

/// Runs `one(n)` for n in 0..count, `concurrency` at a time, and measures the answers.
pub async fn load<F, Fut>(count: u64, concurrency: usize, quiet: bool, one: F) -> Report
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let progress = if count >= 1000 && !quiet {
        let bar = ProgressBar::new(count);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut latencies =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let mut answers: BTreeMap<String, u64> = BTreeMap::new();
    let mut results = futures::stream::iter(0..count)
        .map(&one)
        .buffer_unordered(concurrency.max(1));
    while let Some(answer) = results.next().await {
        let micros = u64::try_from(answer.latency.as_micros()).unwrap_or(u64::MAX);
        let _ = latencies.record(micros.clamp(1, 60_000_000));
        let key = answer
            .status
            .map_or_else(|| "error".to_owned(), |s| s.to_string());
        *answers.entry(key).or_default() += 1;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Report {
        sent: count,
        answers,
        elapsed: started.elapsed(),
        p50_us: latencies.value_at_quantile(0.50),
        p90_us: latencies.value_at_quantile(0.90),
        p99_us: latencies.value_at_quantile(0.99),
        max_us: latencies.max(),
    }
}

/// A fresh callback of `kind`: unique ids, so every one is new work for the worker.
fn body(kind: Kind, n: u64) -> Vec<u8> {
    let id = samples::id();
    let number = format!("467{:08}", n % 100_000_000);
    match kind {
        Kind::InboundText => samples::inbound(&id, "WHATSAPP", &number, "HELP"),
        Kind::InboundSms => samples::sms_inbound(&id, &number, "46700000001", "HELP"),
        Kind::Delivery => samples::delivery(&id, "DELIVERED", "WHATSAPP", &number, ""),
        Kind::SmsDelivery => samples::sms_delivery(&id, &number, "Delivered", 0),
    }
}
