#!/usr/bin/env bash
# Builds an Eddy job component from a JavaScript module:
#
#   guest-sdk/js/build.sh JOB.js OUT.wasm
#
# Installs the pinned build tools first if they are missing (install.sh), then stages the job
# with the SDK and runs componentize-js over it (build.mjs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 2 ]; then
  echo "usage: $0 JOB.js OUT.wasm" >&2
  exit 2
fi
"$here/install.sh"
repo="$(cd "$here/../.." && pwd)"
export EDDY_JS_TOOLS="${CARGO_TARGET_DIR:-$repo/target}/tools/js"
exec node "$here/build.mjs" "$1" "$2"
