#!/usr/bin/env bash
# The local console in a real browser: Debian's chromium driven by playwright-core (from npm),
# against `sinch-hooks serve` (the test build's binary). Installs what it needs: chromium with
# apt when root on Debian, playwright-core with npm (tools/console-test/package-lock.json).
# Screenshots of every step go to $CARGO_TARGET_DIR/console-screenshots.
#
#   infra/scripts/console-test.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
source infra/scripts/lib/prepare.sh
prepare_browser

if [ ! -x "$target/debug/sinch-hooks" ]; then
  cargo build -q -p sinch-hooks
fi
CHROMIUM="$chromium" SINCH_HOOKS_BIN="$target/debug/sinch-hooks" SCREENSHOTS="$target/console-screenshots" \
  node tools/console-test/console.test.mjs
