#!/usr/bin/env bash
# Debian's PostgreSQL server for the tests on a shared database (they start throw-away
# servers with initdb and pg_ctl in temporary folders; nothing is left running).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" install-postgres "tests on PostgreSQL will be skipped" postgresql
# The package's own cluster is not needed: tests make their own.
if command -v pg_lsclusters >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  pg_lsclusters -h 2>/dev/null | while read -r version cluster _; do
    $SUDO pg_ctlcluster "$version" "$cluster" stop 2>/dev/null || true
  done
fi
