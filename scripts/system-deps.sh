#!/usr/bin/env bash
# Install the Debian packages the tests need when they are missing (as root),
# otherwise say which to install. Chromium drives the console's browser tests.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "Please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
  exit 1
fi
