#!/usr/bin/env bash
# Installs a pinned PyPI package into its own venv, once:
#   pip-tool.sh VENV PACKAGE VERSION BIN
# Does nothing when VENV already has PACKAGE==VERSION (a stamp) and its BIN; needs python3 and PyPI.
set -euo pipefail
venv=$1 package=$2 version=$3 bin=$4
stamp="$venv/.$package-$version"
if [ -f "$stamp" ] && [ -x "$venv/bin/$bin" ]; then
  exit 0
fi
echo "==> installing $package $version into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
touch "$stamp"
