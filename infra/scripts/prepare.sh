#!/usr/bin/env bash
# Makes ready, in one go, what the test command's later steps need beyond cargo: Docker and the
# Lambda base image for sam local, chromium and playwright-core for the console's browser test
# (infra/scripts/lib/prepare.sh). The test command starts it in the background; the steps that
# need its parts wait for it, and prepare again themselves whatever it could not.
#
#   infra/scripts/prepare.sh
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/prepare.sh"

started=$SECONDS
# One apt transaction for everything missing (two at once would wait on dpkg's lock).
if can_apt; then
  packages=(docker.io:dockerd chromium:"$chromium")
  docker image inspect "$lambda_base_image" >/dev/null 2>&1 \
    || packages+=(debootstrap)
  prepare_packages "${packages[@]}" || true
fi
status=0
prepare_docker && prepare_lambda_image "$lambda_base_image" || status=1
prepare_browser || status=1
echo "prepared in $((SECONDS - started)) s (status $status)"
exit $status
