#!/usr/bin/env bash
# Installs tansu (pinned), an Apache-Kafka-compatible broker, for the Kafka
# connector's tests, example and benchmark: ${CARGO_TARGET_DIR:-<repo>/target}/tools/bin/tansu.
# Built with `dynostore` so that it can keep its log in memory (`--storage-engine
# memory://`): each test starts its own empty broker on a free loopback port.
# The first build takes about 15 minutes on 2 cores; it is cached there.
exec "$(dirname "$0")/cargo-tool.sh" tansu 0.6.0 --features dynostore
