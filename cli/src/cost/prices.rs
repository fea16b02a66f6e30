//! The prices the bill is worked out with: AWS's public on-demand list prices in us-east-1,
//! read on 2026-12-07, and the deployment's defaults from template.yaml (arm64; memory 128 MB,
//! the worker 256 MB).
//!
//! | what | price | per |
//! |---|---|---|
//! | API Gateway HTTP API | $1.00 | million requests (first 300 million a month) |
//! | Lambda requests | $0.20 | million invocations |
//! | Lambda duration, arm64 | $0.0000133334 | GB-second |
//! | SQS standard queue | $0.40 | million requests (each 64 KB chunk) |
//! | DynamoDB on-demand writes | $0.625 | million write request units |
//! | DynamoDB on-demand reads | $0.125 | million read request units |
//! | DynamoDB Streams read by a Lambda trigger | free | |
//! | EventBridge custom events | $1.00 | million entries (each 64 KB chunk) |
//! | EventBridge Scheduler | $1.00 | million invocations (14 million a month free) |
//! | CloudWatch Logs ingestion (Standard) | $0.50 | GB |
//! | SSM Parameter Store, standard throughput | free | |
//! | Secrets Manager API calls | $0.05 | 10,000 calls |
//!
//! Calls no Lambda pays for per message are listed, never priced: the local stack's own
//! (queue depths, the table's set-up) and the event sources' (a Lambda trigger's stream reads,
//! and the SQS pollers' empty receives, a fixed cost whatever the traffic: see docs/cost.md).

/// Where and when the prices were read.
pub const PRICES_READ: &str = "us-east-1, AWS list prices read on 2026-12-07";

/// API Gateway HTTP API, per request.
pub const API_GATEWAY_REQUEST: f64 = 1.00 / 1e6;
/// Lambda, per invocation.
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// Lambda duration on arm64, per GB-second.
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
/// SQS, per request.
pub const SQS_REQUEST: f64 = 0.40 / 1e6;
/// DynamoDB, per write request unit.
pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
/// DynamoDB, per read request unit.
pub const DYNAMODB_READ_UNIT: f64 = 0.125 / 1e6;
/// EventBridge, per event entry.
pub const EVENTBRIDGE_ENTRY: f64 = 1.00 / 1e6;
/// EventBridge Scheduler, per schedule invocation (a created schedule fires once).
pub const SCHEDULER_INVOCATION: f64 = 1.00 / 1e6;
/// CloudWatch Logs, per byte ingested.
pub const LOG_BYTE: f64 = 0.50 / (1024.0 * 1024.0 * 1024.0);
/// Secrets Manager, per call.
pub const SECRETS_MANAGER_CALL: f64 = 0.05 / 10_000.0;

/// Each function's memory (template.yaml's defaults), in MB.
pub fn memory_mb(function: &str) -> u64 {
    match function {
        "worker" => 256,
        _ => 128,
    }
}

/// What one call of `operation` (`"<service> <operation>"`) costs, apart from DynamoDB's
/// capacity units and EventBridge's entries (priced on their own); `None` when no Lambda
/// pays for it per message.
pub fn per_call(operation: &str) -> Option<f64> {
    // A Lambda trigger's stream reads are free.
    if operation.starts_with("DynamoDB Streams ") {
        return None;
    }
    let (service, name) = operation.split_once(' ').unwrap_or((operation, ""));
    match service {
        "SQS" if is_stack_own(name) || name == "ReceiveMessage (empty)" => None,
        "SQS" => Some(SQS_REQUEST),
        "DynamoDB" if is_stack_own(name) => None,
        // Billed by capacity units.
        "DynamoDB" => Some(0.0),
        "EventBridge" => Some(0.0),
        "Scheduler" if name == "CreateSchedule" => Some(SCHEDULER_INVOCATION),
        "Scheduler" => Some(0.0),
        "Secrets Manager" => Some(SECRETS_MANAGER_CALL),
        "SSM" => Some(0.0),
        _ => None,
    }
}

/// The local stack's own calls: set-up and queue depths, never a Lambda's.
fn is_stack_own(name: &str) -> bool {
    matches!(
        name,
        "GetQueueAttributes"
            | "GetQueueUrl"
            | "CreateQueue"
            | "SetQueueAttributes"
            | "CreateTable"
            | "DescribeTable"
            | "UpdateTimeToLive"
            | "DescribeTimeToLive"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lambdas_calls_are_priced() {
        assert_eq!(per_call("SQS SendMessage"), Some(SQS_REQUEST));
        assert_eq!(per_call("SQS ReceiveMessage (empty)"), None);
        assert_eq!(per_call("SQS GetQueueAttributes"), None);
        assert_eq!(per_call("DynamoDB PutItem"), Some(0.0));
        assert_eq!(per_call("DynamoDB CreateTable"), None);
        assert_eq!(per_call("DynamoDB Streams GetRecords"), None);
        assert_eq!(memory_mb("worker"), 256);
    }
}
