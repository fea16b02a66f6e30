#!/usr/bin/env python3
"""Checks the invariants of template.yaml that keep callbacks safe; cfn-lint checks the rest.

Run with the virtualenv's Python (it uses cfn-lint's YAML loader for the !Ref/!GetAtt tags):
    .venv/bin/python infra/scripts/check-template.py [template.yaml]
"""
import sys

from cfnlint.decode import cfn_yaml

path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
template = cfn_yaml.load(path)
resources = template["Resources"]
parameters = template["Parameters"]
problems = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        problems.append(what)


def of_type(kind):
    return {name: r for name, r in resources.items() if r["Type"] == kind}


functions = of_type("AWS::Serverless::Function")
queues = of_type("AWS::SQS::Queue")
worker = functions["WorkerFunction"]["Properties"]
queue = resources["CallbackQueue"]["Properties"]
dlq = resources["DeadLetterQueue"]["Properties"]

# Visibility timeout >= 6 x worker timeout, for every timeout the template allows.
check(worker["Timeout"] == {"Ref": "WorkerTimeout"}, "the worker's timeout is the WorkerTimeout parameter")
check(queue["VisibilityTimeout"] == {"Fn::FindInMap": ["VisibilityTimeout", {"Ref": "WorkerTimeout"}, "Seconds"]},
      "the queue's visibility timeout is looked up from WorkerTimeout")
mapping = template["Mappings"]["VisibilityTimeout"]
for timeout in parameters["WorkerTimeout"]["AllowedValues"]:
    seconds = mapping.get(str(timeout), {}).get("Seconds", 0)
    check(seconds >= 6 * int(timeout), f"visibility timeout {seconds} s >= 6 x worker timeout {timeout} s")

# Redrive to a dead-letter queue with 14 days' retention.
redrive = queue.get("RedrivePolicy", {})
check(redrive.get("deadLetterTargetArn") == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "the queue redrives to the dead-letter queue")
check(redrive.get("maxReceiveCount") == {"Ref": "MaxReceiveCount"} and parameters["MaxReceiveCount"]["Default"] == 5,
      "maxReceiveCount is a parameter, default 5")
check(dlq.get("MessageRetentionPeriod") == 1209600, "the dead-letter queue keeps messages 14 days")
for name, q in queues.items():
    check(q["Properties"].get("SqsManagedSseEnabled") is True, f"{name} is encrypted")

# The SQS event source reports partial batch failures.
events = [e for e in worker["Events"].values() if e["Type"] == "SQS"]
check(len(events) == 1, "the worker has one SQS event source")
for event in events:
    p = event["Properties"]
    check("ReportBatchItemFailures" in p.get("FunctionResponseTypes", []), "ReportBatchItemFailures is set")
    check(p.get("ScalingConfig", {}).get("MaximumConcurrency") == {"Ref": "MaximumConcurrency"}, "MaximumConcurrency is a parameter")
    check(p.get("BatchSize") == {"Ref": "BatchSize"}, "BatchSize is a parameter")

# Functions: provided.al2023, bootstrap, cargo-lambda builds, arm64 by default.
glob = template["Globals"]["Function"]
check(glob["Runtime"] == "provided.al2023" and glob["Handler"] == "bootstrap", "provided.al2023 with bootstrap")
check(parameters["Architecture"]["Default"] == "arm64", "arm64 by default")
for name, f in functions.items():
    check(f.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda", f"{name} is built by cargo-lambda")
    check("Role" in f["Properties"], f"{name} has its own least-privilege role")
check(glob.get("LoggingConfig", {}).get("LogFormat") == "JSON", "JSON logs")

# Least privilege: no wildcard actions or resources.
for name, role in of_type("AWS::IAM::Role").items():
    for policy in role["Properties"].get("Policies", []):
        statements = policy["PolicyDocument"]["Statement"]
        flat = []
        for s in statements:
            if isinstance(s, dict) and "Fn::If" in s:
                flat += [b for b in s["Fn::If"][1:] if isinstance(b, dict) and "Effect" in b]
            else:
                flat.append(s)
        for s in flat:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            check(all("*" not in a for a in actions), f"{name}: no wildcard in {actions}")
            res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            check(all(r != "*" for r in res), f"{name}: resources named for {actions}")
    check("ManagedPolicyArns" not in role["Properties"], f"{name}: no managed policies (they grant '*')")

# Secrets only by ARN.
receiver_env = functions["ReceiverFunction"]["Properties"]["Environment"]["Variables"]
worker_env = worker["Environment"]["Variables"]
check("SINCH_WEBHOOK_SECRET" not in receiver_env and "SINCH_WEBHOOK_SECRET_ARN" in receiver_env, "the webhook secret is passed by ARN")
check("SINCH_KEY_SECRET" not in worker_env and "SINCH_SMS_API_TOKEN" not in worker_env, "Sinch credentials are passed by ARN")

# The table: on demand, TTL, point-in-time recovery.
table = resources["StateTable"]["Properties"]
check(table["BillingMode"] == "PAY_PER_REQUEST", "the table is on demand")
check(table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}, "TTL on expires_at")
check(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, "point-in-time recovery")

# Every alarm has a threshold and an action hook.
alarms = of_type("AWS::CloudWatch::Alarm")
check(len(alarms) >= 5, f"{len(alarms)} alarms (DLQ depth, oldest message, receiver 5xx, worker errors, throttles)")
for name, alarm in alarms.items():
    p = alarm["Properties"]
    check("Threshold" in p and "ComparisonOperator" in p, f"{name} has a threshold")
    check("AlarmActions" in p, f"{name} has an action hook")

check({"WebhookUrl", "QueueUrl", "DeadLetterQueueUrl", "TableName"} <= set(template["Outputs"]), "outputs: webhook URL, queue, DLQ, table")

if problems:
    print(f"\n{len(problems)} invariant(s) broken", file=sys.stderr)
    sys.exit(1)
print("\ntemplate invariants hold")
