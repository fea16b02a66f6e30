# What the test command needs beyond cargo and its virtualenv, made ready: Docker with the Lambda
# base image (infra/scripts/sam-local.sh) and a browser (infra/scripts/console-test.sh). Sourced
# by those scripts, which call the functions they need; infra/scripts/test.sh runs
# `infra/scripts/prepare.sh` in the background at its start instead, so that the downloads
# (apt, debootstrap, npm) overlap the compile rather than follow it. Every function does nothing
# when its part is ready, so calling it twice costs nothing.
#
# | function | makes ready | how, when missing |
# |---|---|---|
# | prepare_packages PKG... | Debian packages | one `apt-get install` of those missing (root on Debian only) |
# | prepare_docker | a Docker engine answering | docker.io; dockerd started in its own session |
# | prepare_lambda_image IMAGE | the Lambda base image | pulled; where no registry answers, a stand-in under the same tag from a Debian root filesystem (debootstrap, docker import) |
# | prepare_browser | chromium and playwright-core | Debian's chromium; `npm ci` in tools/console-test |
#
# Each returns 3, with a line on stderr, when it cannot here (not root on Debian, no npm), and 1
# when it tried and failed.

prepare_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}
# The image `sam local` runs the functions in (provided.al2023, x86_64 as the local binaries).
lambda_base_image=public.ecr.aws/lambda/provided:al2023-x86_64

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

# Installs the Debian packages given whose command is missing: each argument is PACKAGE or
# PACKAGE:COMMAND (the command that tells it is there; the package's name by default).
prepare_packages() {
  local missing=() spec
  for spec in "$@"; do
    command -v "${spec##*:}" >/dev/null || missing+=("${spec%%:*}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  can_apt || { echo "missing ${missing[*]}: install them (not root on Debian here)" >&2; return 3; }
  echo "installing ${missing[*]} (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

prepare_docker() {
  docker info >/dev/null 2>&1 && return 0
  prepare_packages docker.io:dockerd || return
  echo "starting dockerd"
  # A system service: it stays up after the test command, as on a developer's machine. In its
  # own session and not a job of the caller, so nothing waits for it.
  setsid nohup dockerd >/var/log/sinch-hooks-dockerd.log 2>&1 </dev/null &
  disown
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "dockerd did not start: /var/log/sinch-hooks-dockerd.log" >&2
  return 1
}

prepare_lambda_image() {
  local image=$1 rootfs
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  timeout 60 docker pull -q "$image" >/dev/null 2>&1 && return 0
  can_apt || { echo "$image cannot be pulled, and a stand-in needs root on Debian" >&2; return 3; }
  echo "building a stand-in for $image (debootstrap bookworm; no registry reachable)"
  prepare_packages debootstrap || return
  rootfs=$(mktemp -d)
  # As the real image, with the CA certificates a TLS client looks for.
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" >/dev/null || return 1
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null || return 1
  rm -rf "$rootfs"
}

prepare_browser() {
  if [ ! -x "$chromium" ]; then
    can_apt || { echo "chromium not found at $chromium: install Debian's chromium package (or set CHROMIUM)" >&2; return 3; }
    prepare_packages chromium || return
  fi
  command -v npm >/dev/null || { echo "npm not found: install Node.js 18 or newer" >&2; return 3; }
  npm ci --prefix "$prepare_root/tools/console-test" --no-audit --no-fund --loglevel=error >/dev/null
}
