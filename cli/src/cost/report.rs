//! The bill from a cost run: line items per million messages of each kind, as Markdown and as
//! an SVG chart, and the check against the committed budget (`infra/cost-budget.json`).
//!
//! | line item | from |
//! |---|---|
//! | API Gateway | the receiver's and the API's invocations (one request each) |
//! | Lambda requests | every function's invocations |
//! | Lambda duration | each function's billed milliseconds × its memory |
//! | SQS | every SQS request a function or an event source makes, empty receives aside |
//! | DynamoDB writes, reads | the capacity units ([`super::capacity`]) |
//! | EventBridge | the events the publisher made, one entry each |
//! | other | Scheduler, Secrets Manager |
//! | CloudWatch Logs | the bytes of log lines |

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::Measured;
use super::prices::{self, per_call};

/// One kind's bill, dollars per million messages by line item.
pub fn bill(measured: &Measured) -> BTreeMap<&'static str, f64> {
    let per_million = 1e6 / measured.n.max(1) as f64;
    let mut lines = BTreeMap::new();
    let invocations = |function: &str| {
        measured
            .invocations
            .get(function)
            .map_or(0, |invocations| invocations.count) as f64
    };
    lines.insert(
        "API Gateway",
        (invocations("receiver") + invocations("api")) * prices::API_GATEWAY_REQUEST,
    );
    let all: f64 = measured
        .invocations
        .values()
        .map(|invocations| invocations.count as f64)
        .sum();
    lines.insert("Lambda requests", all * prices::LAMBDA_REQUEST);
    let gb_seconds: f64 = measured
        .invocations
        .iter()
        .map(|(function, invocations)| {
            invocations.billed_ms as f64 / 1000.0 * prices::memory_mb(function) as f64 / 1024.0
        })
        .sum();
    lines.insert("Lambda duration", gb_seconds * prices::LAMBDA_GB_SECOND);
    let mut sqs = 0.0;
    let mut other = 0.0;
    let mut writes = 0.0;
    let mut reads = 0.0;
    // The stack's publisher keeps its events; in AWS each is an entry put.
    let mut entries = measured.events as f64;
    for (operation, tally) in &measured.calls {
        let Some(price) = per_call(operation) else {
            continue;
        };
        if operation.starts_with("SQS ") {
            sqs += tally.calls as f64 * price;
        } else {
            other += tally.calls as f64 * price;
        }
        writes += tally.wcu;
        reads += tally.rcu;
        if operation.starts_with("EventBridge ") {
            entries += tally.entries as f64;
        }
    }
    lines.insert("SQS", sqs);
    lines.insert("DynamoDB writes", writes * prices::DYNAMODB_WRITE_UNIT);
    lines.insert("DynamoDB reads", reads * prices::DYNAMODB_READ_UNIT);
    lines.insert("EventBridge", entries * prices::EVENTBRIDGE_ENTRY);
    lines.insert("other", other);
    lines.insert(
        "CloudWatch Logs",
        measured.log_bytes as f64 * prices::LOG_BYTE,
    );
    lines
        .into_iter()
        .map(|(line, dollars)| (line, dollars * per_million))
        .collect()
}

/// The Markdown report: per kind, the calls per message and the bill per million.
pub fn markdown(measured: &BTreeMap<String, Measured>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Prices: {}.\n", prices::PRICES_READ);
    let _ = writeln!(
        out,
        "| kind | n | AWS calls / message | DynamoDB WCU / message | RCU / message | events / message | invocations / message | billed ms / message | log bytes / message | $ / million |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (kind, m) in measured {
        let n = m.n.max(1) as f64;
        let billed: Vec<_> = m
            .calls
            .iter()
            .filter(|(operation, _)| per_call(operation).is_some())
            .collect();
        let calls: u64 = billed.iter().map(|(_, t)| t.calls).sum();
        let wcu: f64 = billed.iter().map(|(_, t)| t.wcu).sum();
        let rcu: f64 = billed.iter().map(|(_, t)| t.rcu).sum();
        let invocations: u64 = m.invocations.values().map(|i| i.count).sum();
        let billed_ms: u64 = m.invocations.values().map(|i| i.billed_ms).sum();
        let total: f64 = bill(m).values().sum();
        let _ = writeln!(
            out,
            "| {kind} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} |",
            m.n,
            calls as f64 / n,
            wcu / n,
            rcu / n,
            m.events as f64 / n,
            invocations as f64 / n,
            billed_ms as f64 / n,
            m.log_bytes as f64 / n,
            total
        );
    }
    for (kind, m) in measured {
        let n = m.n.max(1) as f64;
        let _ = writeln!(
            out,
            "\n### {kind}\n\n| call | per message | WCU | RCU |\n|---|---|---|---|"
        );
        for (operation, tally) in &m.calls {
            let note = if per_call(operation).is_none() {
                " (not billed per message)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "| {operation}{note} | {:.2} | {:.2} | {:.2} |",
                tally.calls as f64 / n,
                tally.wcu / n,
                tally.rcu / n
            );
        }
        for (function, invocations) in &m.invocations {
            let _ = writeln!(
                out,
                "| Lambda {function} | {:.2} invocations | {:.1} billed ms | |",
                invocations.count as f64 / n,
                invocations.billed_ms as f64 / n
            );
        }
        let _ = writeln!(out, "\n| line item | $ per million |\n|---|---|");
        for (line, dollars) in bill(m) {
            let _ = writeln!(out, "| {line} | {dollars:.3} |");
        }
    }
    out
}

/// A stacked bar per kind: where each million's dollars go.
pub fn svg(measured: &BTreeMap<String, Measured>) -> String {
    const COLOURS: [&str; 9] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f",
    ];
    let bills: Vec<(&String, BTreeMap<&str, f64>)> =
        measured.iter().map(|(kind, m)| (kind, bill(m))).collect();
    let most = bills
        .iter()
        .map(|(_, bill)| bill.values().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(0.01);
    let (width, bar, gap, left) = (760.0, 28.0, 22.0, 130.0);
    let height = 60.0 + bills.len() as f64 * (bar + gap) + 120.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\">AWS dollars per million messages, by line item ({})</text>\n",
        prices::PRICES_READ
    );
    let scale = (width - left - 80.0) / most;
    let mut legend: Vec<&str> = Vec::new();
    for (row, (kind, bill)) in bills.iter().enumerate() {
        let y = 40.0 + row as f64 * (bar + gap);
        let _ = writeln!(out, "<text x=\"10\" y=\"{}\">{kind}</text>", y + bar * 0.65);
        let mut x = left;
        for (index, (line, dollars)) in bill.iter().enumerate() {
            if !legend.contains(line) {
                legend.push(line);
            }
            let w = dollars * scale;
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar}\" fill=\"{}\"><title>{line}: ${dollars:.3}</title></rect>",
                COLOURS[index % COLOURS.len()]
            );
            x += w;
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\">${:.2}</text>",
            x + 6.0,
            y + bar * 0.65,
            bill.values().sum::<f64>()
        );
    }
    let top = 50.0 + bills.len() as f64 * (bar + gap);
    for (index, line) in legend.iter().enumerate() {
        let (x, y) = (
            10.0 + (index % 3) as f64 * 240.0,
            top + (index / 3) as f64 * 22.0,
        );
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{line}</text>",
            COLOURS[index % COLOURS.len()],
            x + 20.0,
            y + 11.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The committed ceiling: calls per message of each kind, by operation, at `n`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The messages of each kind the figures were measured with.
    pub n: u64,
    /// Kind -> operation -> calls per message.
    pub kinds: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Leeway per operation per message. How records fall into invocations moves a few calls (a
/// read per invocation, not per message), and a retry on a loaded machine adds one (a claim
/// released): up to 0.5 a message at `n` = 10 in the runs the budget was written from. One
/// more call on every message (1.0) does not pass, nor does a new one.
pub const LEEWAY: f64 = 0.5;

/// The operations whose count a change to the code decides (not the timing of polls and
/// batches): every billed call but the event sources' receives and deletes.
fn budgeted(operation: &str) -> bool {
    per_call(operation).is_some()
        && !operation.starts_with("SQS ReceiveMessage")
        && !operation.starts_with("SQS DeleteMessage")
}

impl Budget {
    /// The budget a run measured.
    pub fn of(measured: &BTreeMap<String, Measured>) -> Self {
        let n = measured.values().map(|m| m.n).max().unwrap_or(0);
        let kinds = measured
            .iter()
            .map(|(kind, m)| {
                let per = m
                    .calls
                    .iter()
                    .filter(|(operation, _)| budgeted(operation))
                    .map(|(operation, tally)| {
                        let per = tally.calls as f64 / m.n.max(1) as f64;
                        (operation.clone(), (per * 100.0).round() / 100.0)
                    })
                    .collect();
                (kind.clone(), per)
            })
            .collect();
        Self { n, kinds }
    }

    /// This budget and `other` (measured at the same `n`) together: the larger figure of each
    /// operation, so that a budget written from several runs holds each run's worst.
    pub fn merged(mut self, other: &Self) -> Self {
        if self.n != other.n {
            return self;
        }
        for (kind, operations) in &other.kinds {
            let mine = self.kinds.entry(kind.clone()).or_default();
            for (operation, per) in operations {
                let ceiling = mine.entry(operation.clone()).or_insert(*per);
                *ceiling = ceiling.max(*per);
            }
        }
        self
    }

    /// Where `measured` goes over the budget: one line each.
    pub fn overruns(&self, measured: &BTreeMap<String, Measured>) -> Vec<String> {
        let mut overruns = Vec::new();
        let found = Self::of(measured);
        for (kind, operations) in &found.kinds {
            let allowed = self.kinds.get(kind);
            for (operation, per) in operations {
                // An operation the budget does not name has a ceiling of none a message.
                let ceiling = allowed.and_then(|a| a.get(operation)).copied();
                if *per > ceiling.unwrap_or(0.0) + LEEWAY {
                    overruns.push(match ceiling {
                        None => format!(
                            "{kind}: {operation} is new ({per:.2} per message; not in the budget)"
                        ),
                        Some(ceiling) => {
                            format!("{kind}: {operation} {per:.2} per message, budget {ceiling:.2}")
                        }
                    });
                }
            }
        }
        overruns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::proxy::Tally;

    fn measured(puts: u64) -> BTreeMap<String, Measured> {
        let mut calls = BTreeMap::new();
        calls.insert(
            "DynamoDB PutItem".to_owned(),
            Tally {
                calls: puts,
                wcu: puts as f64,
                ..Tally::default()
            },
        );
        calls.insert(
            "SQS ReceiveMessage (empty)".to_owned(),
            Tally {
                calls: 999,
                ..Tally::default()
            },
        );
        BTreeMap::from([(
            "inbound".to_owned(),
            Measured {
                n: 10,
                calls,
                ..Measured::default()
            },
        )])
    }

    #[test]
    fn one_more_call_per_message_is_over_budget_and_a_retry_is_not() {
        let budget = Budget::of(&measured(20));
        assert_eq!(budget.kinds["inbound"]["DynamoDB PutItem"], 2.0);
        assert!(!budget.kinds["inbound"].contains_key("SQS ReceiveMessage (empty)"));
        assert!(budget.overruns(&measured(21)).is_empty());
        let over = budget.overruns(&measured(30));
        assert_eq!(over.len(), 1, "{over:?}");
        assert!(over[0].contains("DynamoDB PutItem 3.00"), "{over:?}");
        let mut new = measured(20);
        new.get_mut("inbound").unwrap().calls.insert(
            "DynamoDB GetItem".into(),
            Tally {
                calls: 10,
                ..Tally::default()
            },
        );
        assert!(budget.overruns(&new)[0].contains("is new"));
        // A new call on a few messages (a retry) is within the leeway.
        new.get_mut("inbound").unwrap().calls.insert(
            "DynamoDB GetItem".into(),
            Tally {
                calls: 2,
                ..Tally::default()
            },
        );
        assert!(budget.overruns(&new).is_empty());
    }

    #[test]
    fn the_bill_prices_capacity_units_and_leaves_idle_polls_out() {
        let bill = bill(&measured(20)["inbound"]);
        // 20 WCU for 10 messages: 2 WCU a message, 2 million WCU a million.
        assert!((bill["DynamoDB writes"] - 2.0 * 0.625).abs() < 1e-9);
        assert_eq!(bill["SQS"], 0.0);
    }
}
