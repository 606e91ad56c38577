#!/usr/bin/env bash
# Installs weval (pinned), the WebAssembly partial evaluator that componentize-js uses to
# compile a job's JavaScript ahead of time (build.sh with EDDY_JS_AOT=1), into
# ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/weval. From crates.io: componentize-js's own
# installer downloads it from GitHub, which CI cannot reach. Idempotent; the first build
# takes about 6 minutes on 2 cores.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
root="${CARGO_TARGET_DIR:-$repo/target}/tools"
version=0.5.1
if [ -x "$root/bin/weval" ] && [ "$(cat "$root/weval.version" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
echo "==> installing weval $version into $root (once; cached there)" >&2
cargo install --quiet --locked --root "$root" --version "$version" weval
echo "$version" > "$root/weval.version"
