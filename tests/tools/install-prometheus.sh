#!/usr/bin/env bash
# Makes sure Prometheus (Debian's package) is installed, for the metrics test,
# which starts its own server on loopback to scrape a cluster.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
# Only the server: the package recommends exporters the test does not use (no recommends).
exec "$(dirname "$0")/apt-install.sh" Prometheus prometheus
