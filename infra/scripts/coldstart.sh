#!/usr/bin/env bash
# Cold starts of every Lambda next to an empty Rust Lambda: release builds for this machine (the
# same profile as the zips), then `coldstart` (tools/coldstart) spawns each cold, interleaved,
# against a Runtime API on loopback, and prints the table the README shows.
#
#   infra/scripts/coldstart.sh [ROUNDS=15]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
# The functions by package, as the zips are built (only their own features), then the benchmark.
cargo build --release -q -p receiver -p worker -p api -p publisher
cargo build --release -q -p coldstart
"$target/release/coldstart" --bin-dir "$target/release" --runs "${1:-15}"
