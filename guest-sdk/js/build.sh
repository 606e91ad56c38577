#!/usr/bin/env bash
# Builds an Eddy job component from a JavaScript module:
#
#   guest-sdk/js/build.sh JOB.js OUT.wasm
#
# Installs the pinned build tools first if they are missing (install.sh), then stages the job
# with the SDK and runs componentize-js over it (build.mjs).
#
# EDDY_JS_AOT=1 compiles the JavaScript ahead of time with weval (installed from crates.io on
# first use by install-weval.sh): about a fifth less CPU for Nexmark q0/q1, at the cost of
# ~20 s builds instead of ~4 s and components of ~21 MB instead of ~13 MB. ./dev sets it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 2 ]; then
  echo "usage: $0 JOB.js OUT.wasm" >&2
  exit 2
fi
"$here/install.sh"
repo="$(cd "$here/../.." && pwd)"
export EDDY_JS_TOOLS="${CARGO_TARGET_DIR:-$repo/target}/tools/js"
case "${EDDY_JS_AOT:-0}" in
  0) unset EDDY_JS_WEVAL ;;
  1) "$here/install-weval.sh"
     export EDDY_JS_WEVAL="${CARGO_TARGET_DIR:-$repo/target}/tools/bin/weval" ;;
  *) echo "EDDY_JS_AOT must be 0 or 1, not '$EDDY_JS_AOT'" >&2; exit 2 ;;
esac
exec node "$here/build.mjs" "$1" "$2"
