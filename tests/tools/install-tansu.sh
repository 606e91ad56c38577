#!/usr/bin/env bash
# Installs tansu (pinned), an Apache-Kafka-compatible broker, for the Kafka
# connector's tests, example and benchmark: ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/tansu.
# Built with `dynostore` so that it can keep its log in memory (`--storage-engine
# memory://`): each test starts its own empty broker on a free loopback port.
# The first build takes about 15 minutes on 2 cores; it is cached there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
root="${CARGO_TARGET_DIR:-$repo/target}/tools"
version=0.6.0
if [ -x "$root/bin/tansu" ] && [ "$(cat "$root/tansu.version" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
echo "==> installing tansu $version into $root (once; cached there; ~15 min)"
cargo install --quiet --locked --root "$root" --version "$version" --features dynostore tansu
echo "$version" > "$root/tansu.version"
