#!/usr/bin/env bash
# Makes sure PostgreSQL (Debian's package) is installed, for the standby
# JobManager test and benchmark, which start their own server on loopback.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
echo "==> installing PostgreSQL (apt-get)"
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is missing and this is not root: install the postgresql package" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
