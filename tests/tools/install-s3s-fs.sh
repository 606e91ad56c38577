#!/usr/bin/env bash
# Installs s3s-fs (pinned), an S3-compatible server on a directory, for the
# object-storage tests and benchmark: ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/s3s-fs.
# 0.14.1 is the newest release that builds with Rust 1.95; its Cargo.lock is used.
exec "$(dirname "$0")/cargo-tool.sh" s3s-fs 0.14.1 --features binary
