#!/usr/bin/env bash
# Both functions under `cargo lambda watch` (the Lambda Runtime API emulator), invoked with the
# fixtures in infra/fixtures, against SQS and DynamoDB served by moto_server. CI runs it through
# infra/scripts/test.sh, which installs moto and cargo-lambda into the virtualenv first.
#
#   infra/scripts/lambda-watch.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
venv=${SINCH_HOOKS_VENV:-$root/.venv}
if [ ! -x "$venv/bin/cargo-lambda" ] || [ ! -x "$venv/bin/moto_server" ]; then
  echo "cargo-lambda or moto missing in $venv: run infra/scripts/test.sh first" >&2
  exit 1
fi
export PATH="$venv/bin:$PATH"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listened on port $1" >&2
  return 1
}

moto_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for_port "$moto_port"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
aws() { "$venv/bin/python" - "$@"; }
read -r QUEUE_URL DEAD_LETTER_QUEUE_URL < <(aws <<'PY'
import boto3, json
sqs = boto3.client("sqs")
dlq = sqs.create_queue(QueueName="sinch-hooks-callbacks-dlq")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue = sqs.create_queue(QueueName="sinch-hooks-callbacks", Attributes={
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})})["QueueUrl"]
boto3.client("dynamodb").create_table(
    TableName="sinch-hooks", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
print(queue, dlq)
PY
)
if [ -z "${DEAD_LETTER_QUEUE_URL:-}" ]; then
  echo "could not create the queues and table on moto" >&2
  exit 1
fi
export QUEUE_URL DEAD_LETTER_QUEUE_URL TABLE_NAME=sinch-hooks SINCH_WEBHOOK_SECRET=local-secret

echo "==> fresh receiver fixtures (signatures age), signed with SINCH_WEBHOOK_SECRET"
cargo run -q -p sinch-hooks -- fixtures --secret "$SINCH_WEBHOOK_SECRET" --out "$work/events" >/dev/null

invoke_port=$(free_port)
echo "==> cargo lambda watch on port $invoke_port"
cargo lambda watch --invoke-port "$invoke_port" >"$work/watch.log" 2>&1 &
pids+=($!)
wait_for_port "$invoke_port"

invoke() { cargo lambda invoke --invoke-port "$invoke_port" --output-format json "$1" --data-file "$2"; }
expect() {
  if ! grep -Eq "$2" <<<"$1"; then
    echo "expected $2 in: $1" >&2
    tail -30 "$work/watch.log" >&2
    exit 1
  fi
}
count() {
  aws "$1" <<'PY'
import boto3, sys
attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=sys.argv[1], AttributeNames=["ApproximateNumberOfMessages"])
print(attributes["Attributes"]["ApproximateNumberOfMessages"])
PY
}

echo "==> receiver: a signed inbound message is accepted and queued"
out=$(invoke receiver "$work/events/receiver-inbound-whatsapp.json")
expect "$out" '"statusCode": ?200'
expect "$out" 'accepted'
[ "$(count "$QUEUE_URL")" = 1 ] || { echo "the queue should hold one message" >&2; exit 1; }

echo "==> receiver: a base64-encoded delivery report is accepted"
expect "$(invoke receiver "$work/events/receiver-delivery-report.json")" '"statusCode": ?200'

echo "==> receiver: a forged one is refused"
expect "$(invoke receiver "$work/events/receiver-forged.json")" '"statusCode": ?401'

echo "==> worker: a delivery report batch succeeds (fixture from infra/fixtures)"
expect "$(invoke worker infra/fixtures/worker-delivery-report.json)" '"batchItemFailures": ?\[\]'

echo "==> worker: poison is dead-lettered and acked"
expect "$(invoke worker infra/fixtures/worker-poison.json)" '"batchItemFailures": ?\[\]'
[ "$(count "$DEAD_LETTER_QUEUE_URL")" = 1 ] || { echo "the dead-letter queue should hold the poison" >&2; exit 1; }

echo "==> cargo lambda watch: receiver and worker behave as in AWS"
