#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ with libFuzzer on the stable toolchain (cargo-fuzz's coverage
# flags, no nightly needed) and runs each for a while, seeded from the callback fixtures.
#
#   infra/scripts/fuzz.sh [SECONDS=30] [TARGET...]
#
# Targets: callback_parse, signature_verify, envelope_decode (all by default). The corpus each
# run finds is kept under $CARGO_TARGET_DIR/fuzz/corpus/<target>, so runs build on each other;
# a crash is written to $CARGO_TARGET_DIR/fuzz/artifacts/<target>/ and fails the script.
# A long campaign: infra/scripts/fuzz.sh 3600 callback_parse   (or -jobs: see FUZZ_ARGS)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(callback_parse signature_verify envelope_decode)

out="${CARGO_TARGET_DIR:-$root/target}/fuzz"
# The flags cargo-fuzz passes (sanitizer "none"): coverage-guided, on stable.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the flags off build scripts, which run on the host uninstrumented.
host=$(rustc -vV | sed -n 's/^host: //p')
CARGO_TARGET_DIR="$out/build" cargo build --quiet --release --locked --target "$host" \
  --manifest-path fuzz/Cargo.toml --bins
# FUZZ_BUILD_ONLY: built, not run (the test command builds them early, in the background).
[ -z "${FUZZ_BUILD_ONLY:-}" ] || exit 0

# Seeds: every callback fixture, as it is.
seeds="$out/seeds"
rm -rf "$seeds" && mkdir -p "$seeds"
find functions/sinch/fixtures -name '*.json' -exec cp {} "$seeds/" \;

# The targets run at once (libFuzzer is single-threaded), each for SECONDS.
pids=()
for target in "${targets[@]}"; do
  mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
  "$out/build/$host/release/$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$target/" ${FUZZ_ARGS:-} "$out/corpus/$target" "$seeds" \
    >"$out/$target.log" 2>&1 &
  pids+=($!)
done

status=0
for i in "${!targets[@]}"; do
  target=${targets[$i]}
  log="$out/$target.log"
  if wait "${pids[$i]}"; then
    runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log")
    per_second=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log")
    printf '%-18s %12s executions in %s s (%s/s), corpus %s inputs, no crash\n' \
      "$target" "$runs" "$seconds" "$per_second" "$(ls "$out/corpus/$target" | wc -l)"
  else
    echo "$target: CRASH or error; the input is in $out/artifacts/$target, the log in $log:" >&2
    tail -40 "$log" >&2
    status=1
  fi
done
exit $status
