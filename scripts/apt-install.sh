#!/usr/bin/env bash
# Install Debian packages for the tests, once: apt-install.sh WHO WITHOUT PACKAGE...
# WHO names the caller in messages; WITHOUT says what is skipped where there is no apt-get.
set -euo pipefail
who=$1 without=$2
shift 2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: no apt-get here; $without" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "$who: installing Debian's $* (one time)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
