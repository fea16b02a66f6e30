#!/usr/bin/env bash
# Load test of the local stack: `sinch-hooks post-callbacks` against `sinch-hooks serve` (release builds),
# then /status must prove that nothing was lost: every accepted callback processed exactly once,
# and, for inbound kinds, one reply per message counted where it landed (the Sinch simulator's
# log), none twice.
#
#   infra/scripts/load-test.sh [COUNT=20000] [CONCURRENCY=64] [KIND=delivery]
#
# KIND is a callback kind of `sinch-hooks post-callbacks` (delivery, sms-delivery, inbound-text,
# inbound-sms), or `messages`: COUNT sends through the messages API (SMS API, a recipient each),
# which must each reach the Sinch simulator exactly once.
set -euo pipefail

count=${1:-20000}
concurrency=${2:-64}
kind=${3:-delivery}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

cargo build --release -q -p sinch-hooks
bin="${CARGO_TARGET_DIR:-$root/target}/release/sinch-hooks"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

SINCH_WEBHOOK_SECRET=load-test-secret RUST_LOG=warn "$bin" serve --port "$port" >/dev/null 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf "$url/status" >/dev/null && break; sleep 0.1; done

if [ "$kind" = messages ]; then
  "$bin" message send --url "$url" --channel SMS_API --to +46700000000 --text "Your code is 1234" \
    --vary-recipient --count "$count" --concurrency "$concurrency" --quiet
else
  "$bin" post-callbacks --url "$url/webhook" --secret load-test-secret --kind "$kind" \
    --count "$count" --concurrency "$concurrency" --quiet
fi

for _ in $(seq 1 1200); do
  status=$(curl -sf "$url/status")
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); k=sys.argv[2]; n=int(sys.argv[3]); r={"inbound-text":3,"inbound-sms":2,"messages":2}.get(k,0); done=s["queue_visible"]==0 and s["queue_in_flight"]==0 and s["outbound_queue"]==0; sys.exit(0 if done and s["accepted"]>=n*r+(0 if k=="messages" else n) else 1)' "$status" "$kind" "$count" && break
  sleep 0.1
done
python3 - "$status" "$count" "$kind" <<'PY'
import json, sys
status, count, kind = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
processed = sum(status["processed"].values())
print(f"status: accepted {status['accepted']}, processed {processed}, duplicates {status['duplicates']}, "
      f"retried {status['retried']}, dead-letter queue {status['dead_letter_queue']}, statuses {status['message_statuses']}")
print(f"at the Sinch simulator: {status['replies_sent']} replies, {status['replies_duplicated']} message(s) sent twice")
if kind == "messages":
    # The sends, and the simulator's two reports on each (Dispatched, Delivered).
    ok = status["processed"].get("outbound.send", 0) == count and status["accepted"] == 2 * count \
        and status["duplicates"] == 0 and status["dead_letter_queue"] == 0 and status["outbound_dead_letter_queue"] == 0
    replies_ok = status["replies_duplicated"] == 0 and status["replies_sent"] == count
else:
    # Each reply brings the simulator's reports back: WhatsApp 3, SMS 2.
    reports = {"inbound-text": 3, "inbound-sms": 2}.get(kind, 0)
    total = count * (1 + reports)
    ok = status["accepted"] == total and processed == total and status["duplicates"] == 0 and status["dead_letter_queue"] == 0
    replies_ok = status["replies_duplicated"] == 0 and (
        status["replies_sent"] == count if kind.startswith("inbound") else status["replies_sent"] == 0)
print("nothing lost: every accepted callback processed exactly once" if ok else "LOST OR DUPLICATED WORK")
print("one reply per message at Sinch" if replies_ok else "WRONG NUMBER OF REPLIES AT SINCH (or one sent twice)")
sys.exit(0 if ok and replies_ok else 1)
PY
