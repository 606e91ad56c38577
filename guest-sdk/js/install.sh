#!/usr/bin/env bash
# Installs the JavaScript SDK's build tools, @bytecodealliance/componentize-js and
# es-module-lexer (pinned by package.json and package-lock.json beside this script), into a
# private npm prefix under ${CARGO_TARGET_DIR:-<repo>/target}/tools/js. Idempotent: does
# nothing when the pinned lock is already installed there. Needs only Node 20 + npm and
# access to the npm registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tools="${CARGO_TARGET_DIR:-$repo/target}/tools/js"
stamp="$tools/.installed-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$here/package-lock.json" \
    && [ -f "$tools/node_modules/@bytecodealliance/componentize-js/package.json" ]; then
  exit 0
fi
echo "==> installing componentize-js (guest-sdk/js/package-lock.json) into $tools" >&2
mkdir -p "$tools"
cp "$here/package.json" "$here/package-lock.json" "$tools/"
(cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
cp "$here/package-lock.json" "$stamp"
