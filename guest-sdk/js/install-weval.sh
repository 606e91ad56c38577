#!/usr/bin/env bash
# Installs weval (pinned), the WebAssembly partial evaluator that componentize-js uses to
# compile a job's JavaScript ahead of time (build.sh with EDDY_JS_AOT=1), into
# ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/weval. From crates.io: componentize-js's own
# installer downloads it from GitHub, which CI cannot reach. The first build takes about
# 6 minutes on 2 cores; it is cached there.
exec "$(dirname "$0")/../../tests/tools/cargo-tool.sh" weval 0.5.1
