#!/usr/bin/env bash
# Installs a pinned crate's binary from crates.io, once:
#   cargo-tool.sh CRATE VERSION [cargo install options...]
# into ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/CRATE, where it stays cached between runs.
# Does nothing when that binary is there with a stamp of VERSION; uses the crate's Cargo.lock.
set -euo pipefail
crate=$1 version=$2
shift 2
repo="$(cd "$(dirname "$0")/../.." && pwd)"
root="${CARGO_TARGET_DIR:-$repo/target}/tools"
if [ -x "$root/bin/$crate" ] && [ "$(cat "$root/$crate.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
echo "==> installing $crate $version into $root (once; cached there)" >&2
cargo install --quiet --locked --root "$root" --version "$version" "$@" "$crate"
echo "$version" > "$root/$crate.version"
