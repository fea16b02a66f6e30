#!/usr/bin/env bash
# The release profile's per-package opt-levels against opt-level 3 everywhere, on the hot paths:
# builds the receiver's and the worker's criterion benchmarks both ways (3 in a target directory
# of its own), then ROUNDS times runs each benchmark at 3 and right after with the chosen
# profile. This machine's speed drifts by 20 % and more over minutes, so what is compared is
# the pair: the chosen profile's median over opt-level 3's of the same round, and the median of
# those ratios (the fastest round of each is printed too: interference only adds time).
#
# Then, where valgrind is installed, the instructions each path executes (cachegrind's count of
# a run of N iterations, less that of a run building the same inputs only, over N): a count
# does not drift with the machine, so a change of a few per cent shows.
#
#   infra/scripts/profile-compare.sh [ROUNDS=8]
#
# OPT3_TARGET_DIR (default: $CARGO_TARGET_DIR-opt3) keeps the opt-level 3 build between runs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
rounds=${1:-8}
target=${CARGO_TARGET_DIR:-$root/target}
opt3_target=${OPT3_TARGET_DIR:-$target-opt3}

# Every package the profile builds for size, back at 3.
opt3=()
while read -r package; do
  opt3+=(--config "profile.release.package.$package.opt-level=3")
done < <(grep -oP '^\[profile\.release\.package\.\K[^\]]+' Cargo.toml)

# Builds the benchmarks and prints the path of each (receiver, worker).
benches() {
  cargo bench --no-run "$@" -p receiver -p worker 2>&1 \
    | sed -nE 's|^ *Executable benches/(receiver\|worker)\.rs \((.*)\)$|\1 \2|p'
}
declare -A chosen three
while read -r name path; do chosen[$name]=$path; done < <(benches)
while read -r name path; do three[$name]=$path; done < <(CARGO_TARGET_DIR=$opt3_target benches "${opt3[@]}")
for name in receiver worker; do
  [ -n "${chosen[$name]:-}" ] && [ -n "${three[$name]:-}" ] \
    || { echo "the $name benchmark did not build" >&2; exit 1; }
done

# The hot paths: the receiver's handler and the worker's record (not the network-bound batch).
filter() { case $1 in receiver) echo "receiver/handle" ;; worker) echo "worker/record" ;; esac; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
  for name in receiver worker; do
    for profile in three chosen; do
      if [ "$profile" = three ]; then binary=${three[$name]}; else binary=${chosen[$name]}; fi
      # criterion prints "<name>\n  time: [low median high]"; the name may wrap onto its own line.
      "$binary" --bench --noplot --warm-up-time 1 --measurement-time 3 "$(filter "$name")" 2>/dev/null \
        | awk -v p="$profile" -v r="$round" '
            /time:/ {
              name = $0; sub(/ *time:.*/, "", name)
              if (name != "") bench = name
              sub(/.*time: *\[/, ""); split($0, t, " ")
              v = t[3]; u = t[4]
              if (u == "ns") v /= 1000; else if (u == "ms") v *= 1000; else if (u == "s") v *= 1e6
              printf "%s\t%s\t%s\t%.4f\n", bench, p, r, v; next }
            NF && !/^(Benchmarking|Found|  [0-9]+ \(|Gnuplot|change:|Performance|No change|Change within)/ {
              bench = $0; sub(/ +$/, "", bench) }' >>"$results"
    done
  done
  echo "round $round of $rounds done" >&2
done

echo
echo "| benchmark | opt-level 3, per round (us) | chosen, per round (us) | fastest round, 3 / chosen | chosen / 3, median of the rounds' ratios |"
echo "|---|---|---|---|---|"
python3 - "$results" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(lambda: defaultdict(list))
order = []
for line in open(sys.argv[1]):
    bench, profile, _round, us = line.rstrip("\n").split("\t")
    if bench not in order:
        order.append(bench)
    runs[bench][profile].append(float(us))
for bench in order:
    three, chosen = runs[bench]["three"], runs[bench]["chosen"]
    if not three or not chosen:
        continue
    ratio = statistics.median(c / t for t, c in zip(three, chosen))
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    print(f"| {bench} | {fmt(three)} | {fmt(chosen)} | {min(three):.2f} / {min(chosen):.2f} us "
          f"| {100 * (ratio - 1):+.1f} % |")
EOF

command -v valgrind >/dev/null || { echo "(valgrind not installed: no instruction counts)"; exit 0; }
# Instructions a run executes, as cachegrind counts them.
instructions() {
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 \
    | awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
}
n=2000
echo
echo "| path ($n iterations) | instructions per iteration, opt-level 3 | chosen | change |"
echo "|---|---|---|---|"
for name in receiver worker; do
  declare -A per
  for profile in three chosen; do
    if [ "$profile" = three ]; then binary=${three[$name]}; else binary=${chosen[$name]}; fi
    full=$(BENCH_ITERATIONS=$n instructions "$binary")
    setup=$(BENCH_ITERATIONS=$n BENCH_SETUP_ONLY=1 instructions "$binary")
    per[$profile]=$(( (full - setup) / n ))
  done
  awk -v p="$(filter "$name")" -v a="${per[three]}" -v b="${per[chosen]}" \
    'BEGIN { printf "| %s | %d | %d | %+.1f %% |\n", p, a, b, 100 * (b - a) / a }'
done
