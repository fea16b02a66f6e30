#!/usr/bin/env bash
# What the pipeline costs on AWS, per million messages of each kind (docs/cost.md): a release
# build of the CLI runs the whole stack against moto through a counting proxy (`sinch-hooks
# cost`), writes the report, the chart and the figures to docs/cost/, and checks the calls per
# message against infra/cost-budget.json.
#
#   infra/scripts/cost.sh [N=500]            measure, report, check the budget
#   infra/scripts/cost.sh N --write-budget   measure at N and commit the figures as the budget
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
n=${1:-500}
shift || true
target=${CARGO_TARGET_DIR:-$root/target}
# moto: MOTO_SERVER, or the test command's virtualenv (infra/scripts/test.sh installs it).
moto_server=${MOTO_SERVER:-${SINCH_HOOKS_VENV:-$root/.venv}/bin/moto_server}
[ -x "$moto_server" ] || { echo "no moto_server at $moto_server: run infra/scripts/test.sh once, or set MOTO_SERVER" >&2; exit 2; }
cargo build --release -q -p sinch-hooks
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" && break
  sleep 0.1
done
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
  "$target/release/sinch-hooks" cost --aws-endpoint "http://127.0.0.1:$port" --n "$n" \
  --out docs/cost --budget infra/cost-budget.json "$@"
