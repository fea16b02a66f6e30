#!/usr/bin/env bash
# Builds the four functions as Lambda zips for arm64 (provided.al2023) with cargo-lambda, and prints
# their sizes. `sam build` does the same through the template's rust-cargolambda build method.
#
#   infra/scripts/build-lambdas.sh [--x86-64]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
venv=${SINCH_HOOKS_VENV:-$root/.venv}
if ! command -v cargo-lambda >/dev/null; then
  if [ -x "$venv/bin/cargo-lambda" ]; then
    export PATH="$venv/bin:$PATH"
  else
    echo "cargo-lambda not found: pip install cargo-lambda (or run infra/scripts/test.sh)" >&2
    exit 1
  fi
fi
arch=--arm64
[ "${1:-}" = "--x86-64" ] && arch=--x86-64

# The cross target, when rustup lacks it (cargo-lambda links with zig, no other toolchain needed).
if [ "$arch" = --arm64 ] && command -v rustup >/dev/null \
  && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

# By package, so that only their features count (not the CLI's: SSO credentials and the like).
cargo lambda build --release "$arch" --output-format zip -p receiver -p worker -p api -p publisher

target="${CARGO_TARGET_DIR:-$root/target}/lambda"
limit=$((6 * 1024 * 1024))
status=0
for function in receiver worker api publisher; do
  zip="$target/$function/bootstrap.zip"
  size=$(stat -c %s "$zip")
  awk -v f="$function" -v z="$zip" -v s="$size" 'BEGIN { printf "%-8s %s  %d bytes (%.2f MiB)\n", f, z, s, s / 1048576 }'
  if [ "$size" -ge "$limit" ]; then
    echo "  over the 6 MiB target" >&2
    status=1
  fi
done
exit $status
