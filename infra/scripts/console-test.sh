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
chromium=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not found at $chromium: install Debian's chromium package (or set CHROMIUM)" >&2
    exit 1
  fi
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js 18 or newer" >&2; exit 1; }
npm ci --prefix tools/console-test --no-audit --no-fund --loglevel=error >/dev/null

if [ ! -x "$target/debug/sinch-hooks" ]; then
  cargo build -q -p sinch-hooks
fi
CHROMIUM="$chromium" SINCH_HOOKS_BIN="$target/debug/sinch-hooks" SCREENSHOTS="$target/console-screenshots" \
  node tools/console-test/console.test.mjs
