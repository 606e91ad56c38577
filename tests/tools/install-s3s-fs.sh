#!/usr/bin/env bash
# Installs s3s-fs (pinned), an S3-compatible server on a directory, for the
# object-storage tests and benchmark: ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/s3s-fs.
# 0.14.1 is the newest release that builds with Rust 1.95; its Cargo.lock is used.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
root="${CARGO_TARGET_DIR:-$repo/target}/tools"
version=0.14.1
if [ -x "$root/bin/s3s-fs" ] && [ "$(cat "$root/s3s-fs.version" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
echo "==> installing s3s-fs $version into $root (once; cached there)"
cargo install --quiet --locked --root "$root" --version "$version" --features binary s3s-fs
echo "$version" > "$root/s3s-fs.version"
