//! Metrics as CloudWatch Embedded Metric Format (EMF): one JSON line per event on stdout, which
//! CloudWatch Logs turns into metrics with no API call and no extra latency.
//!
//! Namespace `SinchHooks`, dimension `Function` (plus `Reason` or `Kind` where they apply):
//! `Accepted`, `Rejected` (by reason), `EnqueueFailed`, `Processed` (by kind), `Duplicate`,
//! `ReplySent`, `ReplyFailed`, `DeadLettered` (by reason). The local stack and tests keep
//! metrics off, or capture them.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::clock::unix_millis;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "SinchHooks";

/// A metric the pipeline emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `Accepted`: a callback the receiver queued.
    Accepted,
    /// `Rejected`: a request the receiver refused (forged, malformed, too large).
    Rejected,
    /// `EnqueueFailed`: an authentic callback the receiver could not queue (answered 503).
    EnqueueFailed,
    /// `Processed`: a callback the worker handled.
    Processed,
    /// `Duplicate`: a callback handled before.
    Duplicate,
    /// `ReplySent`: a reply reached Sinch.
    ReplySent,
    /// `ReplyFailed`: a reply Sinch refused for good.
    ReplyFailed,
    /// `DeadLettered`: a callback parked in the dead-letter queue.
    DeadLettered,
    /// A send of the messages API reached Sinch.
    MessageSent,
    /// A send of the messages API that Sinch refused for good.
    MessageFailed,
    /// `GuardRefused`: a send the messages API's guards refused (dimension `Guard`: the code).
    GuardRefused,
}

impl Metric {
    /// The metric's CloudWatch name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accepted => "Accepted",
            Metric::Rejected => "Rejected",
            Metric::EnqueueFailed => "EnqueueFailed",
            Metric::Processed => "Processed",
            Metric::Duplicate => "Duplicate",
            Metric::ReplySent => "ReplySent",
            Metric::ReplyFailed => "ReplyFailed",
            Metric::DeadLettered => "DeadLettered",
            Metric::MessageSent => "MessageSent",
            Metric::MessageFailed => "MessageFailed",
            Metric::GuardRefused => "GuardRefused",
        }
    }
}

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// Where metrics go: nowhere, stdout (Lambda), or any writer (tests).
#[derive(Clone, Default)]
pub struct Metrics {
    function: &'static str,
    sink: Option<Sink>,
}

/// Two are the same configuration when they write for the same function, both or neither.
impl PartialEq for Metrics {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function && self.sink.is_some() == other.sink.is_some()
    }
}

impl Eq for Metrics {}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("function", &self.function)
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl Metrics {
    /// No metrics (local stack, benchmarks).
    pub fn off() -> Self {
        Self::default()
    }

    /// EMF lines on stdout, as Lambda wants them.
    pub fn stdout(function: &'static str) -> Self {
        Self::to_writer(function, std::io::stdout())
    }

    /// EMF lines into any writer.
    pub fn to_writer(function: &'static str, writer: impl Write + Send + 'static) -> Self {
        Self {
            function,
            sink: Some(Arc::new(Mutex::new(Box::new(writer)))),
        }
    }

    /// Counts one `metric`, with an extra dimension when given (`("Reason", "too_old")`).
    pub fn count(&self, metric: Metric, dimension: Option<(&str, &str)>) {
        let Some(sink) = &self.sink else {
            return;
        };
        let mut dimensions = vec!["Function"];
        let mut line = Map::new();
        line.insert("Function".into(), Value::String(self.function.into()));
        if let Some((name, value)) = dimension {
            dimensions.push(name);
            line.insert(name.into(), Value::String(value.into()));
        }
        line.insert(metric.name().into(), json!(1));
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": unix_millis(SystemTime::now()),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": metric.name(), "Unit": "Count"}]
                }]
            }),
        );
        let text = Value::Object(line).to_string();
        let mut writer = sink.lock().unwrap_or_else(PoisonError::into_inner);
        // A lost metric line must never fail a callback.
        let _ = writeln!(writer, "{text}");
    }
}

/// Checks one line against the EMF specification's rules (a JSON object; `_aws.Timestamp` in
/// ms; one directive in our namespace; every dimension a top-level string; every metric a
/// top-level number), for tests of anything that emits metrics.
pub fn validate(line: &str) -> Result<Value, String> {
    let json: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let aws = &json["_aws"];
    if aws["Timestamp"]
        .as_u64()
        .is_none_or(|t| t <= 1_600_000_000_000)
    {
        return Err("_aws.Timestamp is not Unix milliseconds".into());
    }
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .ok_or("no _aws.CloudWatchMetrics")?;
    for directive in directives {
        if directive["Namespace"] != NAMESPACE {
            return Err("wrong namespace".into());
        }
        for set in directive["Dimensions"].as_array().ok_or("no Dimensions")? {
            let set = set.as_array().ok_or("a dimension set is not a list")?;
            if set.is_empty() || set.len() > 30 {
                return Err("a dimension set has 0 or more than 30 names".into());
            }
            for dimension in set {
                let name = dimension.as_str().ok_or("a dimension name is not text")?;
                if !json[name].is_string() {
                    return Err(format!("dimension {name} is not a top-level string"));
                }
            }
        }
        for metric in directive["Metrics"].as_array().ok_or("no Metrics")? {
            let name = metric["Name"].as_str().ok_or("a metric without a name")?;
            if !json[name].is_number() {
                return Err(format!("metric {name} has no numeric value"));
            }
        }
    }
    Ok(json)
}

static COLD: AtomicBool = AtomicBool::new(true);

/// True the first time it is called in this process: the cold start, for the logs.
pub fn cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn assert_valid_emf(line: &str) -> Value {
        validate(line).unwrap_or_else(|problem| panic!("{problem}: {line}"))
    }

    #[test]
    fn lines_are_valid_embedded_metric_format() {
        let buffer = Buffer::default();
        let metrics = Metrics::to_writer("receiver", buffer.clone());
        metrics.count(Metric::Accepted, None);
        metrics.count(Metric::Rejected, Some(("Reason", "signature_mismatch")));
        metrics.count(Metric::Processed, Some(("Kind", "sms.mo_text")));
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(assert_valid_emf).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["Accepted"], 1);
        assert_eq!(lines[0]["Function"], "receiver");
        assert_eq!(lines[1]["Reason"], "signature_mismatch");
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason"]])
        );
        assert_eq!(lines[2]["Kind"], "sms.mo_text");
    }

    #[test]
    fn off_writes_nothing() {
        Metrics::off().count(Metric::Accepted, None);
    }

    #[test]
    fn every_metric_has_its_name() {
        let all = [
            Metric::Accepted,
            Metric::Rejected,
            Metric::EnqueueFailed,
            Metric::Processed,
            Metric::Duplicate,
            Metric::ReplySent,
            Metric::ReplyFailed,
            Metric::DeadLettered,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), all.len());
    }
}
