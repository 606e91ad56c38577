#!/usr/bin/env bash
# Installs the Python SDK's build tool, componentize-py (pinned), into a private venv under
# ${CARGO_TARGET_DIR:-<repo>/target}/tools/python. Idempotent: does nothing when the pinned
# version is already there. Needs only python3 (3.11+) and access to PyPI.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
VERSION=0.25.1
venv="${CARGO_TARGET_DIR:-$repo/target}/tools/python"
exec "$repo/tests/tools/pip-tool.sh" "$venv" componentize-py "$VERSION" componentize-py
