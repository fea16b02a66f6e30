#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs everything.
#
#   infra/scripts/test.sh
#
# - In the background from the start: Docker, the Lambda base image, chromium and
#   playwright-core (infra/scripts/prepare.sh); moto, cargo-lambda, cfn-lint and the SAM CLI into
#   a virtualenv (.venv by default, SINCH_HOOKS_VENV moves it; reinstalled only when
#   infra/scripts/requirements-test.txt changes); then the release builds (the fuzz targets and
#   the arm64 zips).
# - Then: formatting; one debug build of every target with clippy's lints as errors; template.yaml
#   (cfn-lint, its invariants, checkov); rustdoc; the modules' import graph; every test with
#   cargo-nextest (unit, integration against moto_server, property tests, CLI processes, the
#   demo, each benchmark once in test mode); doc tests; the functions under `sam local` with
#   Docker (infra/scripts/sam-local.sh; where Docker is impossible, under cargo lambda watch),
#   with the fuzz targets running beside it (FUZZ_SECONDS each, 30 by default); the console in a
#   real browser (infra/scripts/console-test.sh); the arm64 zips' sizes.
#
# It prints how long each step took; docs/testing.md says what to expect and how to run one
# step alone.
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
export MOTO_SERVER="$venv/bin/moto_server"
logs="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$logs"

# No incremental state: this command builds each commit once, and writing the state costs CPU
# (measured: 35 CPU-s of a cold test build). Always off, not only on a cold target directory: a
# change of the setting rebuilds every crate of the workspace (measured: 85 s of the first warm
# run after a cold one).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# --- In the background, each in its own session (so that it can be stopped as one) ---------
# - What later steps need beyond cargo: downloads and unpacking, which overlap the compile.
prepare_log="$logs/prepare.log"
setsid infra/scripts/prepare.sh >"$prepare_log" 2>&1 &
prepare=$!
# - The Python tools; formatting and the build need none of them and run meanwhile.
venv_log="$logs/venv.log"
requirements=infra/scripts/requirements-test.txt
checkov_requirements=infra/scripts/requirements-checkov.txt
stamp="$venv/.requirements.sha256"
want=$(cat "$requirements" "$checkov_requirements" | sha256sum | cut -d' ' -f1)
tools=
if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing test tools into $venv (in the background; $venv_log)"
  rm -f "$stamp"
  # uv resolves and installs the set in a sixth of pip's CPU (measured: 10 s and 10 CPU-s
  # against 59 s and 48 CPU-s, cold caches); pip only installs uv itself.
  setsid bash -c 'python3 -m venv "$1" && "$1/bin/pip" install --quiet --disable-pip-version-check "uv==0.13.10" \
      && "$1/bin/uv" pip install --quiet --python "$1/bin/python" -r "$2" \
      && python3 -m venv "$1/checkov" && "$1/bin/uv" pip install --quiet --python "$1/checkov/bin/python" -r "$5" \
      && echo "$3" >"$4"' \
    _ "$venv" "$requirements" "$want" "$stamp" "$checkov_requirements" >"$venv_log" 2>&1 &
  tools=$!
fi
# - The release builds once the virtualenv is there (cargo-lambda is in it): the fuzz targets,
#   then the arm64 zips, in their own build directories, at the lowest CPU priority, so that
#   they take what the steps below leave idle (serial compile phases, tests waiting on moto,
#   Docker, a browser) and barely slow them. With the kernel's autogroups a session gets an
#   equal share of the CPU whatever its nice value, so the session's own share is lowered too.
#   (They build without clippy: what ships is built as `sam build` builds it.)
background_log="$logs/release-builds.log"
fuzz_built="$logs/fuzz-built"
rm -f "$fuzz_built"
setsid nice -n 19 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS PATH="$venv/bin:$PATH" \
  bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null || true
    while [ -n "$1" ] && kill -0 "$1" 2>/dev/null; do sleep 1; done
    [ "$(cat "$2" 2>/dev/null)" = "$3" ] || { echo "no virtualenv: no release builds" >&2; exit 1; }
    FUZZ_BUILD_ONLY=1 infra/scripts/fuzz.sh && touch "$4" && infra/scripts/build-lambdas.sh' \
  _ "$tools" "$stamp" "$want" "$fuzz_built" >"$background_log" 2>&1 &
background=$!
fuzzing=
# On the way out: the builds and the fuzzers stopped; the preparation and the virtualenv let
# finish (apt or pip stopped halfway leaves them to be mended by hand).
trap 'kill -- -$background 2>/dev/null || true
  [ -z "$fuzzing" ] || kill -- -$fuzzing 2>/dev/null || true
  [ -z "$tools" ] || wait "$tools" || true
  [ -z "$prepare" ] || wait "$prepare" || true' EXIT
# Waits for the preparation (once), and shows what it did; what it could not do, the step that
# needs it tries again and reports.
prepared() {
  [ -n "$prepare" ] || return 0
  wait "$prepare" || true
  prepare=
  sed 's/^/    prepare: /' "$prepare_log"
}

# --- In the foreground ------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

# One debug build serves clippy and the tests: clippy-driver (what `cargo clippy` runs) compiles
# the workspace's crates, every target of them, with its lints as errors, and the tests run what
# it built. `cargo clippy` would check the whole dependency tree a second time. Every cargo
# command below runs with the same wrapper, so none rebuilds what another built.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found: installing it (cargo install, a few minutes once)"
  cargo install --locked --quiet cargo-nextest
fi
step "the build of every target, with clippy's lints (warnings as errors)"
cargo nextest run --no-run --workspace --all-targets --locked

if [ -n "$tools" ]; then
  step "the test tools' virtualenv (installed in the background)"
  status=0
  wait "$tools" || status=$?
  tools=
  [ "$status" = 0 ] || { cat "$venv_log" >&2; echo "installing the test tools failed" >&2; exit 1; }
fi
step "template.yaml: cfn-lint, the pipeline's invariants, and checkov (each finding fixed, or skipped with its reason in the resource's Metadata)"
"$venv/bin/cfn-lint" template.yaml
"$venv/bin/python" infra/scripts/check-template.py template.yaml >/dev/null
# BC_SKIP_MAPPING: no call to the vendor's guidelines API (it fails offline, with a long traceback).
BC_SKIP_MAPPING=TRUE "$venv/checkov/bin/checkov" --file template.yaml --framework cloudformation --quiet --compact
step "rustdoc: every public item documented (missing_docs), no broken links"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
step "no two modules of a crate import each other"
for src in functions/*/src cli/src; do python3 tools/module-imports.py "$src" >/dev/null; done
step "every test (unit, integration, property, CLI; benchmarks once in test mode), with cargo-nextest"
# Nextest runs the tests of every binary in one pool (.config/nextest.toml), each in its own
# process: the tests that wait in real time overlap the ones that compute.
cargo nextest run --workspace --all-targets --locked
step "the hot paths' fixed-iteration mode, as profile-compare.sh counts instructions with it"
for bench in receiver worker; do
  BENCH_ITERATIONS=3 cargo test -q --locked --workspace --bench "$bench"
  BENCH_ITERATIONS=3 BENCH_SETUP_ONLY=1 cargo test -q --locked --workspace --bench "$bench"
done
step "doc tests"
cargo test --workspace --doc --locked

# The fuzz targets run beside sam local and the browser, which mostly wait on Docker and
# chromium (a little below them in CPU priority).
fuzz_log="$logs/fuzz-run.log"
if [ ! -e "$fuzz_built" ]; then
  step "waiting for the fuzz targets' build (in the background)"
  while [ ! -e "$fuzz_built" ] && kill -0 "$background" 2>/dev/null; do sleep 1; done
  [ -e "$fuzz_built" ] || { grep -v '^ *Compiling ' "$background_log" >&2; echo "the fuzz build failed" >&2; exit 1; }
fi
setsid nice -n 10 env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS \
  infra/scripts/fuzz.sh "${FUZZ_SECONDS:-30}" >"$fuzz_log" 2>&1 &
fuzzing=$!

step "the functions the SAM way (sam local start-lambda, sam local start-api; Docker), with the fixtures in infra/fixtures"
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
step "fuzz targets, ${FUZZ_SECONDS:-30} s each (libFuzzer on stable, seeded from the fixtures; run beside sam local)"
status=0
wait "$fuzzing" || status=$?
fuzzing=
cat "$fuzz_log"
[ "$status" = 0 ] || { echo "fuzzing failed (exit $status)" >&2; exit "$status"; }
step "arm64 Lambda zips (cargo lambda build, started in the background at the start), each under 6 MiB"
status=0
wait "$background" || status=$?
grep -v '^ *Compiling ' "$background_log" || true
[ "$status" = 0 ] || { echo "the release builds failed (exit $status): $background_log" >&2; exit "$status"; }
step "all tests passed"
