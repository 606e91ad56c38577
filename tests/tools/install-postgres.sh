#!/usr/bin/env bash
# Makes sure PostgreSQL (Debian's package) is installed, for the standby
# JobManager test and benchmark, which start their own server on loopback.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
exec "$(dirname "$0")/apt-install.sh" PostgreSQL postgresql
