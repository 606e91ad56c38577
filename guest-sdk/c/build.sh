#!/usr/bin/env bash
# Builds a C job component: guest-sdk/c/build.sh SRC.c [MORE.c ...] OUT.wasm
#
# 1. wit-bindgen's C generator writes the bindings of wit/eddy.wit (world `job`): job.h,
#    job.c and job_component_type.o, which carries the component type into the module;
# 2. zig compiles the sources with the SDK (eddy.c) to a wasm32-wasi *reactor* core module
#    (no main; the host calls the exports);
# 3. wasm-tools makes it a component, adapting the WASI preview 1 imports of wasi-libc
#    (stdout for printf, which the host logs) to the preview 2 interfaces the host links.
#
# Installs the tools first when they are missing (install.sh). Extra compiler flags can be
# given in EDDY_CFLAGS (default -O2).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tools="${CARGO_TARGET_DIR:-$repo/target}/tools/c"

if [ $# -lt 2 ]; then
  echo "usage: $0 SRC.c [MORE.c ...] OUT.wasm" >&2
  exit 2
fi
sources=("${@:1:$#-1}")
out="${!#}"

"$here/install.sh"

# zig's caches (wasi-libc is built on first use, ~15 s) stay with the tools, not in ~/.cache.
export ZIG_GLOBAL_CACHE_DIR="$tools/zig-cache" ZIG_LOCAL_CACHE_DIR="$tools/zig-cache"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# wit-bindgen names every file it writes on stderr: shown only when it fails.
if ! "$tools/bin/wit-bindgen" c "$repo/wit" --world job --out-dir "$work" >"$work/log" 2>&1; then
  cat "$work/log" >&2
  exit 1
fi
# shellcheck disable=SC2086 # EDDY_CFLAGS is a list of flags
"$tools/venv/bin/python" -m ziglang cc -target wasm32-wasi -mexec-model=reactor \
  ${EDDY_CFLAGS:--O2} -s -std=c11 -Wall -Wextra -Wno-unused-parameter \
  -I "$here" -I "$work" \
  "${sources[@]}" "$here/eddy.c" "$work/job.c" "$work/job_component_type.o" \
  -o "$work/core.wasm"
mkdir -p "$(dirname "$out")"
"$tools/venv/bin/wasm-tools" component new "$work/core.wasm" \
  --adapt "wasi_snapshot_preview1=$tools/wasi_snapshot_preview1.reactor.wasm" -o "$out"
