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

outbound = resources["OutboundQueue"]["Properties"]
check(outbound["VisibilityTimeout"] == queue["VisibilityTimeout"], "the outbound queue's visibility timeout is looked up from WorkerTimeout")
check(outbound.get("RedrivePolicy", {}).get("deadLetterTargetArn") == {"Fn::GetAtt": ["OutboundDeadLetterQueue", "Arn"]},
      "the outbound queue redrives to its dead-letter queue")
check(resources["OutboundDeadLetterQueue"]["Properties"].get("MessageRetentionPeriod") == 1209600,
      "the outbound dead-letter queue keeps messages 14 days")
bulk = resources["BulkQueue"]["Properties"]
check(bulk["VisibilityTimeout"] == queue["VisibilityTimeout"], "the bulk queue's visibility timeout is looked up from WorkerTimeout")
check(bulk.get("RedrivePolicy", {}).get("deadLetterTargetArn") == {"Fn::GetAtt": ["BulkDeadLetterQueue", "Arn"]},
      "the bulk queue redrives to its dead-letter queue")

# Pacing and schedules: the rates are parameters the worker reads; the scheduler's role may only
# put jobs on the two lanes, and only the functions may pass it.
worker_env_vars = worker["Environment"]["Variables"]
for variable, parameter in [("CONVERSATION_SEND_RATE", "ConversationSendRate"), ("SMS_SEND_RATE", "SmsSendRate")]:
    check(worker_env_vars.get(variable) == {"Ref": parameter}, f"the worker's {variable} is the {parameter} parameter")
scheduler_role = resources["SchedulerRole"]["Properties"]
check(scheduler_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "scheduler.amazonaws.com"},
      "only EventBridge Scheduler assumes the scheduler role")
scheduler_actions = [a for p in scheduler_role["Policies"] for s in p["PolicyDocument"]["Statement"]
                     for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
check(scheduler_actions == ["sqs:SendMessage"], "the scheduler role only sends to the lanes")

# Redrive to a dead-letter queue with 14 days' retention.
redrive = queue.get("RedrivePolicy", {})
check(redrive.get("deadLetterTargetArn") == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "the queue redrives to the dead-letter queue")
check(redrive.get("maxReceiveCount") == {"Ref": "MaxReceiveCount"} and parameters["MaxReceiveCount"]["Default"] == 5,
      "maxReceiveCount is a parameter, default 5")
check(dlq.get("MessageRetentionPeriod") == 1209600, "the dead-letter queue keeps messages 14 days")
for name, q in queues.items():
    check(q["Properties"].get("SqsManagedSseEnabled") is True, f"{name} is encrypted")

# The SQS event source reports partial batch failures.
events = {name: e for name, e in worker["Events"].items() if e["Type"] == "SQS"}
check(set(events) == {"Callbacks", "Sends", "BulkSends"}, "the worker has three SQS event sources: callbacks, sends, bulk sends")
concurrency = {"Callbacks": "MaximumConcurrency", "Sends": "OutboundMaximumConcurrency", "BulkSends": "OutboundMaximumConcurrency"}
for name, event in events.items():
    p = event["Properties"]
    check("ReportBatchItemFailures" in p.get("FunctionResponseTypes", []), f"{name}: ReportBatchItemFailures is set")
    check(p.get("ScalingConfig", {}).get("MaximumConcurrency") == {"Ref": concurrency.get(name)},
          f"{name}: its own MaximumConcurrency parameter")
    check(p.get("BatchSize") == {"Ref": "BatchSize"}, f"{name}: BatchSize is a parameter")

# The messages API: IAM-authorized by default, on the same HTTP API, no Sinch secret.
api = functions["MessagesApiFunction"]["Properties"]
check(resources["HttpApi"]["Properties"].get("Auth", {}).get("EnableIamAuthorizer") is True, "the HTTP API enables IAM authorization")
routes = {(e["Properties"]["Method"], e["Properties"]["Path"]): e["Properties"] for e in api["Events"].values()}
# Which routes: the API's own list (functions/api/src/routes.rs), held to these events by
# functions/api/tests/it/routes.rs.
check(len(routes) > 0, "the messages API has its routes")
for route, p in routes.items():
    check(p.get("ApiId") == {"Ref": "HttpApi"}, f"{route} is on the same HTTP API")
    check(p.get("Auth", {}).get("Authorizer") == "AWS_IAM", f"{route} is authorized with AWS_IAM")
api_env = api["Environment"]["Variables"]
check(not any("SECRET" in k or "TOKEN" in k for k in api_env), "the messages API holds no Sinch secret")

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
            check(not {"sqs:ChangeMessageVisibility", "dynamodb:ConditionCheckItem"} & set(actions),
                  f"{name}: no action the functions never use in {actions}")
            if any(a.startswith("dynamodb:") and a.endswith("Item") for a in actions):
                keys = s.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
                check(bool(keys) and all(k != "*" for k in keys),
                      f"{name}: {actions} only on the partition keys it uses ({keys})")
            if "kms:Decrypt" in actions:
                check("kms:ViaService" in s.get("Condition", {}).get("StringEquals", {}),
                      f"{name}: kms:Decrypt only through Secrets Manager")
    check("ManagedPolicyArns" not in role["Properties"], f"{name}: no managed policies (they grant '*')")

# Secret parameters take full ARNs only: a partial one would never match the roles' policies.
import re
full = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sinch-hooks/webhook-AbC123"
partial = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sinch-hooks/webhook"
for name in ["WebhookSecretArn", "SinchKeySecretArn", "SinchSmsApiTokenArn"]:
    pattern = parameters[name].get("AllowedPattern", "")
    check(re.fullmatch(pattern, full) is not None and re.fullmatch(pattern, partial) is None,
          f"{name} takes a full ARN and refuses a partial one")
    if name != "WebhookSecretArn":
        check(re.fullmatch(pattern, "") is not None, f"{name} may be empty")
check(parameters["SecretsKmsKeyArn"].get("Default") == "", "the KMS key for secrets is optional")

# Secrets only by ARN.
receiver_env = functions["ReceiverFunction"]["Properties"]["Environment"]["Variables"]
worker_env = worker["Environment"]["Variables"]
check(receiver_env.get("SINCH_WEBHOOK_SECRET", "") == "" and "SINCH_WEBHOOK_SECRET_ARN" in receiver_env,
      "the webhook secret is passed by ARN (the plain variable only declared, empty, for sam local)")
check(worker_env.get("SINCH_KEY_SECRET", "") == "" and worker_env.get("SINCH_SMS_API_TOKEN", "") == "",
      "Sinch credentials are passed by ARN (the plain variables only declared, empty)")
for name, f in functions.items():
    env = f["Properties"]["Environment"]["Variables"]
    check(env.get("SINCH_HOOKS_AWS_ENDPOINT") == "", f"{name}: the local AWS endpoint is declared, empty")

# The table: on demand, TTL, point-in-time recovery.
table = resources["StateTable"]["Properties"]
check(table["BillingMode"] == "PAY_PER_REQUEST", "the table is on demand")
check(table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}, "TTL on expires_at")
check(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, "point-in-time recovery")

# Events: from the table's stream only, partial failures reported, nothing dropped silently;
# with Events=off nothing of it is deployed.
table_stream = table.get("StreamSpecification", {})
check(table_stream.get("Fn::If", [None])[0] == "EventsOn"
      and table_stream["Fn::If"][1] == {"StreamViewType": "NEW_AND_OLD_IMAGES"},
      "the table's stream (new and old images) exists only with events on")
publisher = functions["PublisherFunction"]
changes = publisher["Properties"]["Events"]["Changes"]
check(changes["Type"] == "DynamoDB" and changes["Properties"]["Stream"] == {"Fn::GetAtt": ["StateTable", "StreamArn"]},
      "the publisher reads the state table's stream")
cp = changes["Properties"]
check("ReportBatchItemFailures" in cp.get("FunctionResponseTypes", []), "the publisher reports partial batch failures")
check(cp.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == {"Fn::GetAtt": ["EventsFailureQueue", "Arn"]},
      "the stream's event source has an on-failure destination")
check(cp.get("ParallelizationFactor") == 1, "one batch per shard at a time (order per item)")
for name in ["PublisherFunction", "PublisherRole", "PublisherLogGroup", "EventsFailureQueue",
             "EventsFailureQueueAlarm", "PublisherIteratorAgeAlarm"]:
    check(resources[name].get("Condition") == "EventsOn", f"{name} exists only with events on")
check(resources["EventBus"].get("Condition") == "NewEventBus", "the bus is created only when asked for")
check(parameters["Events"]["Default"] == "new", "events on by default, to a new bus")

# Every alarm has a threshold and an action hook.
alarms = of_type("AWS::CloudWatch::Alarm")
check(len(alarms) >= 10, f"{len(alarms)} alarms (both DLQs' depth, both queues' oldest message, 5xx, worker and API errors, throttles, events failures and lag)")
for name, alarm in alarms.items():
    p = alarm["Properties"]
    check("Threshold" in p and "ComparisonOperator" in p, f"{name} has a threshold")
    check("AlarmActions" in p, f"{name} has an action hook")

check({"WebhookUrl", "QueueUrl", "DeadLetterQueueUrl", "TableName", "ApiUrl", "OutboundQueueUrl",
       "OutboundDeadLetterQueueUrl", "BulkQueueUrl", "BulkDeadLetterQueueUrl"} <= set(template["Outputs"]), "outputs: webhook URL, API URL, queues, DLQs, table")

# Every checkov finding skipped says why, in one line.
for name, resource in resources.items():
    for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
        comment = str(skip.get("comment", "")).strip()
        check(comment != "" and "\n" not in comment, f"{name} skips {skip.get('id')} with its reason")

# Authorization by purpose: sending, reading and consent administration are granted apart, and
# together they cover every IAM route of the API (and nothing else).
def invoked(policy):
    arns = resources[policy]["Properties"]["PolicyDocument"]["Statement"][0]["Resource"]
    return {arn["Fn::Sub"].split("}/*/", 1)[1] for arn in arns}
send, read, consent = (invoked(p) for p in ["SendMessagesPolicy", "ReadMessagesPolicy", "ConsentAdminPolicy"])
check(read <= send and not (send & consent), "reading is part of sending; consent is granted apart")
check(all(r.split("/")[1] in ("optouts", "contacts") for r in consent), "the consent policy is about /optouts and /contacts only")
routes = set()
for event in resources["MessagesApiFunction"]["Properties"]["Events"].values():
    props = event["Properties"]
    path = props["Path"]
    route = props["Method"] + path.split("/{", 1)[0] + ("/*" if "{" in path else "")
    routes.add(route)
check(routes == send | consent, f"the policies cover every API route: {sorted(routes ^ (send | consent))} differ")

# The HTTP API logs each request (which route, who, the answer), to a log group with retention.
access = resources["HttpApi"]["Properties"].get("AccessLogSettings", {})
check(access.get("DestinationArn") == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]},
      "the HTTP API has an access log")

if problems:
    print(f"\n{len(problems)} invariant(s) broken", file=sys.stderr)
    sys.exit(1)
print("\ntemplate invariants hold")
