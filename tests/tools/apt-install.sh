#!/usr/bin/env bash
# apt-install.sh WHAT PACKAGE...: installs Debian packages a test needs (as root),
# or says which to install; WHAT names them in the messages. The callers check
# first whether the tool is there, so a machine that has it runs no apt-get.
set -euo pipefail
what=$1
shift
echo "==> installing $what (apt-get)"
if [ "$(id -u)" -ne 0 ]; then
    echo "$what is missing and this is not root: install $*" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
