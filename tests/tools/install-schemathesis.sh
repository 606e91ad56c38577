#!/usr/bin/env bash
# Installs schemathesis (pinned) for the API contract test into a private venv under
# ${CARGO_TARGET_DIR:-<repo>/target}/tools/schemathesis. Idempotent; needs python3 and PyPI.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION=4.32.5
venv="${CARGO_TARGET_DIR:-$repo/target}/tools/schemathesis"
stamp="$venv/.schemathesis-$VERSION"
if [ -f "$stamp" ] && [ -x "$venv/bin/schemathesis" ]; then
  exit 0
fi
echo "==> installing schemathesis $VERSION into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
touch "$stamp"
