#!/usr/bin/env bash
# Makes sure the dashboard tests have a browser and a driver for it: Debian's
# Chromium (apt-get) and playwright-core (pinned, from npm) under
# ${CARGO_TARGET_DIR:-<repo>/target}/tools/playwright. playwright-core never
# downloads a browser of its own; the tests launch /usr/bin/chromium.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${CARGO_TARGET_DIR:-$repo/target}/tools/playwright"
version=1.65.1
if ! command -v chromium >/dev/null 2>&1; then
    "$repo/tests/tools/apt-install.sh" Chromium chromium
fi
if [ "$(cat "$dir/version" 2>/dev/null)" != "$version" ]; then
    echo "==> installing playwright-core $version (npm)"
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund "playwright-core@$version" >/dev/null)
    echo "$version" > "$dir/version"
fi
