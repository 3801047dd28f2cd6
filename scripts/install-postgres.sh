#!/usr/bin/env bash
# Debian's PostgreSQL server for the tests on a shared database (they start throw-away
# servers with initdb and pg_ctl in temporary folders; nothing is left running).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-postgres: no apt-get here; tests on PostgreSQL will be skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "install-postgres: installing Debian's postgresql (one time)" >&2
$SUDO apt-get update -qq
# The package's own cluster is not needed: tests make their own.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r version cluster _; do
    $SUDO pg_ctlcluster "$version" "$cluster" stop 2>/dev/null || true
  done
fi
