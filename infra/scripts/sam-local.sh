#!/usr/bin/env bash
# The four functions run the SAM way, locally, and checked: `sam local start-lambda` invoked for each with the
# fixtures of infra/fixtures (freshly signed), and `sam local start-api` with signed callbacks
# posted to /webhook through it; against moto_server (queues, table, an EventBridge bus whose
# rule feeds a queue) and the Sinch simulator, both listening where containers reach the host
# (the docker0 address).
#
#   infra/scripts/sam-local.sh
#
# Docker: as root on Debian it installs docker.io when missing and starts dockerd. Where the
# Lambda base image cannot be pulled (no route to public.ecr.aws), it builds a local stand-in
# under the same tag from a Debian root filesystem (debootstrap, docker import); with internet
# access SAM uses the real image. Without Docker, and no way to get it, it says so and exits 77
# (skipped), which the test command answers with infra/scripts/lambda-watch.sh instead.
#
# The functions are not built again: the x86_64 binaries the test build left in the target
# directory are the bootstrap of each function (`cargo build --bins` otherwise). It cleans up
# what it started: processes, containers, and the emulation images SAM made (the stand-in base
# image stays, as a pulled image would).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
venv=${SINCH_HOOKS_VENV:-$root/.venv}
target=${CARGO_TARGET_DIR:-$root/target}
source infra/scripts/lib/prepare.sh
base_image=$lambda_base_image
export SAM_CLI_TELEMETRY=0 SAM_CLI_CONTAINER_CONNECTION_TIMEOUT=60
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

if [ ! -x "$venv/bin/sam" ] || [ ! -x "$venv/bin/moto_server" ]; then
  echo "sam or moto missing in $venv: run infra/scripts/test.sh first" >&2
  exit 1
fi
started=$SECONDS
step() { echo "==> [$((SECONDS - started)) s] $*"; }
skip() {
  echo "SKIPPED sam local: $* (on a machine with Docker, or as root on Debian, it runs)"
  exit 77
}

# --- Docker, and the Lambda base image -----------------------------------------------------
# (infra/scripts/lib/prepare.sh; the test command has prepared them in the background already)
status=0
prepare_docker || status=$?
[ "$status" = 3 ] && skip "no Docker engine, and not root on Debian to install one"
[ "$status" = 0 ] || exit 1
prepare_lambda_image "$base_image" || status=$?
[ "$status" = 3 ] && skip "$base_image cannot be pulled, and a stand-in needs root on Debian"
[ "$status" = 0 ] || exit 1
host=$(ip -4 -o addr show docker0 | awk '{ split($4, a, "/"); print a[1] }')
[ -n "$host" ] || { echo "no docker0 address" >&2; exit 1; }

# --- What the containers talk to --------------------------------------------------------------
work=$(mktemp -d)
pids=()
images_before=$(docker images -q | sort -u)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Only what this script started and killed: never a bare `wait`, which would also wait for
  # any other child (dockerd, when this script started it) and hang.
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null || true
  docker ps -aq --filter "ancestor=$base_image" | xargs -r docker rm -f >/dev/null 2>&1 || true
  # The emulation images SAM built on top of the base image in this run.
  comm -13 <(echo "$images_before") <(docker images -q | sort -u) | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listened on $1:$2" >&2
  return 1
}

for binary in receiver worker api publisher sinch-hooks; do
  if [ ! -x "$target/debug/$binary" ]; then
    step "building the x86_64 binaries (the test build had not)"
    cargo build -q --workspace --bins
    break
  fi
done
cli="$target/debug/sinch-hooks"

secret=sam-local-secret
moto_port=$(free_port)
"$venv/bin/moto_server" -H "$host" -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
sinch_port=$(free_port)
"$cli" sinch-simulator --host "$host" --port "$sinch_port" >"$work/sinch.log" 2>&1 &
pids+=($!)
wait_for "$host" "$moto_port"
wait_for "$host" "$sinch_port"
endpoint="http://$host:$moto_port"
sinch="http://$host:$sinch_port"

py() { AWS_ENDPOINT_URL="$endpoint" "$venv/bin/python" - "$@"; }
read -r queue dlq outbound bulk events_queue < <(py <<'PY'
import boto3, json
sqs = boto3.client("sqs")
def with_dlq(name):
    dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(QueueName=name, Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})})["QueueUrl"], dlq
queue, dlq = with_dlq("sinch-hooks-callbacks")
outbound, _ = with_dlq("sinch-hooks-outbound")
bulk, _ = with_dlq("sinch-hooks-bulk")
boto3.client("dynamodb").create_table(
    TableName="sinch-hooks", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
# The publisher's bus, with a rule sending everything of ours to a queue we can count.
events = boto3.client("events")
events.create_event_bus(Name="sinch-hooks-events")
target = sqs.create_queue(QueueName="sinch-hooks-events-target")["QueueUrl"]
target_arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events.put_rule(Name="all", EventBusName="sinch-hooks-events", EventPattern=json.dumps({"source": ["sinch-hooks"]}))
events.put_targets(Rule="all", EventBusName="sinch-hooks-events", Targets=[{"Id": "queue", "Arn": target_arn}])
print(queue, dlq, outbound, bulk, target)
PY
)
count() {
  py "$1" <<'PY'
import boto3, sys
a = boto3.client("sqs").get_queue_attributes(QueueUrl=sys.argv[1], AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))
PY
}
sent_to_sinch() { curl -sf "$sinch/sent" | "$venv/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# --- The template, pointed at the binaries; the variables a local run needs -----------------
step "template: each function's code is its binary from $target/debug (no third build)"
for pair in ReceiverFunction:receiver WorkerFunction:worker MessagesApiFunction:api PublisherFunction:publisher; do
  mkdir -p "$work/code/${pair%%:*}"
  cp "$target/debug/${pair##*:}" "$work/code/${pair%%:*}/bootstrap"
done
"$venv/bin/python" - "$work" <<'PY'
import json, sys
from cfnlint.decode import cfn_yaml
work = sys.argv[1]
template = cfn_yaml.load("template.yaml")
template["Globals"]["Function"]["Architectures"] = ["x86_64"]
for name, resource in template["Resources"].items():
    if resource["Type"] == "AWS::Serverless::Function":
        resource.pop("Metadata", None)
        resource["Properties"]["CodeUri"] = f"{work}/code/{name}"
json.dump(template, open(f"{work}/template.json", "w"), indent=1)
PY
# The lanes and the scheduler's settings, for the worker and the API alike.
lanes="\"OUTBOUND_QUEUE_URL\": \"$outbound\", \"OUTBOUND_QUEUE_ARN\": \"arn:aws:sqs:us-east-1:123456789012:sinch-hooks-outbound\",
    \"BULK_QUEUE_URL\": \"$bulk\", \"BULK_QUEUE_ARN\": \"arn:aws:sqs:us-east-1:123456789012:sinch-hooks-bulk\",
    \"SCHEDULER_ROLE_ARN\": \"arn:aws:iam::123456789012:role/scheduler\", \"SCHEDULE_GROUP\": \"default\""
cat >"$work/env.json" <<EOF
{
  "ReceiverFunction": {"SINCH_WEBHOOK_SECRET": "$secret", "SINCH_WEBHOOK_SECRET_ARN": "",
    "SINCH_HOOKS_AWS_ENDPOINT": "$endpoint", "QUEUE_URL": "$queue", "DEAD_LETTER_QUEUE_URL": "$dlq"},
  "WorkerFunction": {"SINCH_HOOKS_AWS_ENDPOINT": "$endpoint", "TABLE_NAME": "sinch-hooks",
    "DEAD_LETTER_QUEUE_URL": "$dlq", "SINCH_PROJECT_ID": "local-project", "SINCH_KEY_ID": "local-key",
    "SINCH_KEY_SECRET": "local-secret", "SINCH_KEY_SECRET_ARN": "", "SINCH_APP_ID": "local-app",
    "SINCH_SMS_SERVICE_PLAN_ID": "local-plan", "SINCH_SMS_API_TOKEN": "local-token", "SINCH_SMS_API_TOKEN_ARN": "",
    "SINCH_AUTH_URL": "$sinch", "SINCH_CONVERSATION_URL": "$sinch", "SINCH_SMS_URL": "$sinch",
    "CONTACT_HASH_KEY": "sam-local-contact-hash-key", "CONTACT_HASH_KEY_ARN": "",
    $lanes},
  "MessagesApiFunction": {"SINCH_HOOKS_AWS_ENDPOINT": "$endpoint", "TABLE_NAME": "sinch-hooks",
    "SINCH_PROJECT_ID": "local-project", "SINCH_APP_ID": "local-app",
    "SINCH_SMS_SERVICE_PLAN_ID": "local-plan", "SINCH_SMS_SENDER": "+46700000001",
    "CONTACT_HASH_KEY": "sam-local-contact-hash-key", "CONTACT_HASH_KEY_ARN": "",
    $lanes},
  "PublisherFunction": {"SINCH_HOOKS_AWS_ENDPOINT": "$endpoint", "EVENT_BUS_NAME": "sinch-hooks-events",
    "EVENT_SOURCE": "sinch-hooks"}
}
EOF
"$cli" fixtures --secret "$secret" --out "$work/events" >/dev/null
sam_args=(--template "$work/template.json" --env-vars "$work/env.json" --skip-pull-image
  --parameter-overrides "WebhookSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:local-AbCdEf")

# The functions through the Lambda Invoke API of `sam local start-lambda`, which keeps one warm
# container per function (started at once, beside start-api's): `sam local invoke` would start
# the SAM CLI and a container for each event, 12 to 16 s apiece here.
lambda_port=$(free_port)
api_port=$(free_port)
"$venv/bin/sam" local start-lambda --host 127.0.0.1 --port "$lambda_port" --warm-containers EAGER \
  "${sam_args[@]}" >"$work/invoke.log" 2>&1 &
pids+=($!)
"$venv/bin/sam" local start-api --host 127.0.0.1 --port "$api_port" --warm-containers LAZY \
  "${sam_args[@]}" >"$work/start-api.log" 2>&1 &
pids+=($!)
step "sam local start-lambda on 127.0.0.1:$lambda_port and start-api on 127.0.0.1:$api_port (warm containers)"
wait_for 127.0.0.1 "$lambda_port"
wait_for 127.0.0.1 "$api_port"
invoke() {
  local function=$1 event=$2 began=$SECONDS out
  out=$(curl -sS --max-time 120 --data-binary "@$event" \
    "http://127.0.0.1:$lambda_port/2015-03-31/functions/$function/invocations" 2>&1) || true
  echo "    $function answered in $((SECONDS - began)) s: $out" >&2
  echo "$out"
}
expect() {
  if ! grep -Eq "$2" <<<"$1"; then
    echo "expected $2 in: $1" >&2
    tail -30 "$work/invoke.log" >&2
    exit 1
  fi
}
equal() { [ "$1" = "$2" ] || { echo "expected $3 to be $2, got $1" >&2; exit 1; }; }

step "start-lambda: ReceiverFunction: a signed inbound message is accepted and queued"
expect "$(invoke ReceiverFunction "$work/events/receiver-inbound-whatsapp.json")" '"statusCode": ?200'
equal "$(count "$queue")" 1 "the queue's depth"
step "start-lambda: ReceiverFunction: a forged one is refused"
expect "$(invoke ReceiverFunction "$work/events/receiver-forged.json")" '"statusCode": ?401'
step "start-lambda: ReceiverFunction: a stale one is refused and kept in the dead-letter queue"
expect "$(invoke ReceiverFunction "$work/events/receiver-stale.json")" '"statusCode": ?401'
equal "$(count "$dlq")" 1 "the dead-letter queue's depth"

step "start-lambda: WorkerFunction: inbound WhatsApp and SMS are replied to"
expect "$(invoke WorkerFunction "$work/events/worker-inbound.json")" '"batchItemFailures": ?\[\]'
equal "$(sent_to_sinch)" 2 "the replies at the fake Sinch"
step "start-lambda: WorkerFunction: poison is dead-lettered and acked"
expect "$(invoke WorkerFunction "$work/events/worker-poison.json")" '"batchItemFailures": ?\[\]'
equal "$(count "$dlq")" 2 "the dead-letter queue's depth"

step "start-lambda: MessagesApiFunction: a send is accepted and queued"
out=$(invoke MessagesApiFunction "$work/events/api-send.json")
expect "$out" '"statusCode": ?202'
expect "$out" 'msg_'
equal "$(count "$outbound")" 1 "the outbound queue's depth"
step "start-lambda: MessagesApiFunction: an unknown message is 404"
expect "$(invoke MessagesApiFunction "$work/events/api-status.json")" '"statusCode": ?404'

step "start-lambda: PublisherFunction: a stream batch becomes events on the bus"
expect "$(invoke PublisherFunction "$work/events/publisher-changes.json")" '"batchItemFailures": ?\[\]'
equal "$(count "$events_queue")" 2 "the events the bus's rule delivered"

webhook="http://127.0.0.1:$api_port/webhook"
post() {
  local began=$SECONDS status
  status=$(eval "$("$cli" sign --secret "$1" ${2:+--timestamp "$2"} --url "$webhook" \
    functions/sinch/fixtures/conversation/message_delivery_failed.json) -s -o /dev/null -w '%{http_code}'")
  echo "    POST /webhook ($3): $status in $((SECONDS - began)) s" >&2
  echo "$status"
}
step "start-api: a signed callback through POST /webhook is accepted"
equal "$(post "$secret" "" signed)" 200 "the answer"
equal "$(count "$queue")" 2 "the queue's depth"
step "start-api: a forged one is refused"
equal "$(post not-the-secret "" forged)" 401 "the answer"
step "start-api: a stale one is refused and kept"
equal "$(post "$secret" "$(( $(date +%s) - 3600 ))" stale)" 401 "the answer"
equal "$(count "$dlq")" 3 "the dead-letter queue's depth"
step "sam local: every function behaved as in AWS"
