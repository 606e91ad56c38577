#!/usr/bin/env bash
# Makes sure Apache Flink 2.3's jars (PyPI's apache-flink-libraries wheel, ~330 MB,
# the same cache as ../shared/bench/flink/run.sh) and Java 17+ are here, for the
# test that drives Flink's own command line against an Eddy cluster.
set -euo pipefail
cache=${FLINK_CACHE:-$HOME/.cache/flink-anchor}
if ! command -v java >/dev/null 2>&1; then
    "$(dirname "$0")/apt-install.sh" Java openjdk-17-jre-headless
fi
if [ ! -f "$cache/lib/flink-dist-2.3.0.jar" ]; then
    echo "==> downloading Apache Flink 2.3's jars (PyPI apache-flink-libraries, ~330 MB)"
    rm -rf "$cache/wheel" "$cache/unpacked"
    mkdir -p "$cache/wheel"
    python3 -m pip download -q --no-deps -d "$cache/wheel" apache-flink-libraries==2.3.0
    python3 -m zipfile -e "$cache"/wheel/apache_flink_libraries-2.3.0-*.whl "$cache/unpacked"
    mv "$cache/unpacked/pyflink/lib" "$cache/lib"
    rm -rf "$cache/unpacked" "$cache/wheel"
fi
