#!/usr/bin/env bash
# Installs schemathesis (pinned) for the API contract test into a private venv under
# ${CARGO_TARGET_DIR:-<repo>/target}/tools/schemathesis.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$repo/tests/tools/pip-tool.sh" "${CARGO_TARGET_DIR:-$repo/target}/tools/schemathesis" schemathesis 4.32.5 schemathesis
