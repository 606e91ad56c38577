#!/usr/bin/env bash
# Makes sure Prometheus (Debian's package) is installed, for the metrics test,
# which starts its own server on loopback to scrape a cluster.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
    exit 0
fi
echo "==> installing Prometheus (apt-get)"
if [ "$(id -u)" -ne 0 ]; then
    echo "Prometheus is missing and this is not root: install the prometheus package" >&2
    exit 1
fi
apt-get update -qq
# Only the server: the package recommends exporters the test does not use.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
