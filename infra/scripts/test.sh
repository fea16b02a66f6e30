#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs everything.
#
#   infra/scripts/test.sh
#
# - moto (AWS APIs on loopback) and cargo-lambda go into a virtualenv, .venv by default
#   (SINCH_HOOKS_VENV moves it); reinstalled only when infra/scripts/requirements-test.txt
#   changes.
# - in the background from the start: Docker, the Lambda base image, chromium and
#   playwright-core (infra/scripts/prepare.sh), and the release builds (zips, fuzz targets).
# - then: formatting, clippy with warnings as errors, every test with cargo-nextest (unit,
#   integration against moto_server, property tests, CLI processes, the demo), doc tests, each
#   benchmark once in
#   test mode so they keep compiling and working, the functions under `sam local` with Docker
#   (infra/scripts/sam-local.sh; where Docker is impossible, under cargo lambda watch), and the
#   console in a real browser (infra/scripts/console-test.sh: chromium and playwright-core,
#   installed when missing), and the arm64 zips (template.yaml is checked first: cfn-lint and
#   its invariants).
# - and the fuzz targets, each for FUZZ_SECONDS (30 by default).
set -euo pipefail

started=$SECONDS
last=never
# Prints a step's title, and how long the step before it took.
step() {
  [ "$last" = never ] || echo "    (took $((SECONDS - last)) s; $((SECONDS - started)) s in all)"
  last=$SECONDS
  echo "==> $*"
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

venv=${SINCH_HOOKS_VENV:-$root/.venv}
requirements=infra/scripts/requirements-test.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  step "installing test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
export MOTO_SERVER="$venv/bin/moto_server"

# Two jobs start now in the background, each in its own session (so it can be stopped as one):
# - What later steps need beyond cargo (infra/scripts/prepare.sh: Docker and the Lambda base
#   image, chromium and playwright-core): downloads and unpacking, which overlap the compile.
# - The release builds (the arm64 zips, then the fuzz targets), at the lowest CPU priority and
#   in their own build directories: they take what the steps below leave idle (serial compile
#   phases, tests waiting on moto, Docker, a browser) and barely slow them. On a cold 2-core
#   machine they were a third of the run when they came last. With the kernel's autogroups a
#   session gets an equal share of the CPU whatever its nice value, so the session's own share
#   is lowered too.
logs="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$logs"
prepare_log="$logs/prepare.log"
background_log="$logs/release-builds.log"
setsid infra/scripts/prepare.sh >"$prepare_log" 2>&1 &
prepare=$!
setsid nice -n 19 env PATH="$venv/bin:$PATH" FUZZ_BUILD_ONLY=1 \
  bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null || true
    infra/scripts/build-lambdas.sh && infra/scripts/fuzz.sh' >"$background_log" 2>&1 &
background=$!
# On the way out: the release builds stopped; the preparation let finish (apt stopped halfway
# leaves dpkg to be mended by hand).
trap 'kill -- -$background 2>/dev/null || true; [ -z "$prepare" ] || wait "$prepare" || true' EXIT
# Waits for the preparation (once), and shows what it did; what it could not do, the step that
# needs it tries again and reports.
prepared() {
  [ -n "$prepare" ] || return 0
  wait "$prepare" || true
  prepare=
  sed 's/^/    prepare: /' "$prepare_log"
}

step "template.yaml: cfn-lint and the pipeline's invariants"
"$venv/bin/cfn-lint" template.yaml
"$venv/bin/python" infra/scripts/check-template.py template.yaml >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "rustdoc: every public item documented (missing_docs), no broken links"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
step "no two modules of a crate import each other"
for src in functions/*/src cli/src; do python3 tools/module-imports.py "$src" >/dev/null; done
step "every test (unit, integration, property, CLI; benchmarks once in test mode), with cargo-nextest"
# Nextest runs the tests of every binary in one pool (.config/nextest.toml), each in its own
# process: the tests that wait in real time overlap the ones that compute.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found: installing it (cargo install, a few minutes once)"
  cargo install --locked --quiet cargo-nextest
fi
cargo nextest run --workspace --all-targets --locked
step "the hot paths' fixed-iteration mode, as profile-compare.sh counts instructions with it"
for bench in receiver worker; do
  BENCH_ITERATIONS=3 cargo test -q --locked --workspace --bench "$bench"
  BENCH_ITERATIONS=3 BENCH_SETUP_ONLY=1 cargo test -q --locked --workspace --bench "$bench"
done
step "doc tests"
cargo test --workspace --doc --locked
step "the functions the SAM way (sam local invoke, sam local start-api; Docker), with the fixtures in infra/fixtures"
prepared
status=0
infra/scripts/sam-local.sh || status=$?
if [ "$status" = 77 ]; then
  step "no Docker here: the functions under cargo lambda watch instead, with the same fixtures"
  infra/scripts/lambda-watch.sh
elif [ "$status" != 0 ]; then
  exit "$status"
fi
step "the console in a real browser (chromium and playwright-core; screenshots in the target directory)"
prepared
infra/scripts/console-test.sh
step "arm64 Lambda zips (cargo lambda build, started in the background at the start), each under 6 MiB"
status=0
wait "$background" || status=$?
grep -v '^ *Compiling ' "$background_log" || true
[ "$status" = 0 ] || { echo "the release builds failed (exit $status): $background_log" >&2; exit "$status"; }
step "fuzz targets, ${FUZZ_SECONDS:-30} s each (libFuzzer on stable, seeded from the fixtures)"
infra/scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
step "all tests passed"
