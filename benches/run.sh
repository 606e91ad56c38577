#!/usr/bin/env bash
# Benchmarks. Called by `./dev bench [--flink] [MB]` after the build.
#  1. word count over ../shared/bench/gen_text.py text (default 100 MB) at
#     parallelism 2 on the embedded cluster: median of 3 runs, words/s;
#     with --flink, Apache Flink's word count on the same file in the same run;
#  2. the exchange benchmark: 100-byte records over QUIC between two TaskManager
#     processes vs in memory (benches/exchange.py);
#  3. checkpoints (benches/checkpoint.py): word count with and without 1 s
#     checkpoints, the time to checkpoint ~1 GiB of keyed state, recovery time;
#  4. the Wasm boundary benchmark (packed vs typed batches, the SDK map operator);
#  5. the languages benchmark: the same map in Rust, Python and JavaScript, with
#     instantiation time and memory per instance;
#  6. tenancy (benches/tenancy.py): word count as a tenant (quotas, confinement,
#     metering) against the admin, and what an authorised request costs;
#  7. statistics (benches/metrics.py): word count against EDDY_BASELINE (an eddy
#     built before the statistics, when given), and the JobManager's CPU with
#     1000 subtasks reporting and a /metrics scrape every second;
#  8. Kafka (benches/kafka.rs): Kafka -> map -> Kafka at p=2 against librdkafka's
#     own produce, consume and consume+produce throughput on the same broker, and
#     end-to-end latency at 100 000 records/s;
#  9. Nexmark (benches/nexmark.py): the queries of examples/nexmark over 10 M events
#     of the host's generator and of a JSON-lines file at p=1 and p=2; with --flink,
#     Flink SQL over the same file. `./dev bench nexmark [ARGS]` runs only this part.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
if [ "${1:-}" = nexmark ]; then
  shift
  exec python3 benches/nexmark.py "$target/release/eddy" "$target/wasm32-wasip2/component/nexmark_queries.wasm" "$@"
fi
flink=no
mb=100
for a in "$@"; do
  case "$a" in
    --flink) flink=yes ;;
    *) mb=$a ;;
  esac
done
eddy=$target/release/eddy
wasm=$target/wasm32-wasip2/component/wordcount.wasm
shared=../shared/bench
mkdir -p "$target/bench"
text=$target/bench/text-$mb.txt
if [ ! -f "$text" ]; then
  echo "==> generating $mb MB of text"
  python3 "$shared/gen_text.py" "$mb" "$text"
fi
words=$(wc -w < "$text")
now() { python3 -c 'import time; print(time.time())'; }

echo "==> Eddy word count, $mb MB ($words words), parallelism 2, 3 runs"
times=()
for i in 1 2 3; do
  out=$(mktemp -d)
  start=$(now)
  "$eddy" run -p 2 -c word-count "$wasm" --input "$text" --output "$out/counts" 2>/dev/null
  end=$(now)
  rm -rf "$out"
  times+=("$(python3 -c "print($end - $start)")")
  printf '   run %d: %.3f s\n' "$i" "${times[-1]}"
done
python3 - "$words" "${times[@]}" <<'PY'
import statistics, sys
words, times = int(sys.argv[1]), [float(t) for t in sys.argv[2:]]
m = statistics.median(times)
print(f"eddy: median {m:.3f} s, {words / m / 1e6:.2f} M words/s")
PY

if [ "$flink" = yes ]; then
  echo "==> Apache Flink word count, same file, parallelism 2 (see $shared/README.md)"
  "$shared/flink/run.sh" "$text" 2 streaming
fi

echo "==> exchange benchmark (QUIC vs in-memory channel)"
python3 benches/exchange.py "$eddy" "$target/wasm32-wasip2/component/bench_ops.wasm" 5000000 --wordcount "$text" "$wasm"

tests/tools/install-s3s-fs.sh
tests/tools/install-postgres.sh
python3 benches/checkpoint.py "$eddy" "$wasm" "$target/wasm32-wasip2/component/stateful.wasm" "$text"

python3 benches/tenancy.py "$eddy" "$wasm" "$text" 7

python3 benches/metrics.py "$eddy" "$wasm" "$target/wasm32-wasip2/component/features.wasm" "$text" ${EDDY_BASELINE:+--baseline "$EDDY_BASELINE"}

echo "==> boundary benchmark"
cargo bench --quiet -p eddy --bench boundary

echo "==> languages benchmark (the same map in Rust, Python, JavaScript)"
cargo bench --quiet -p eddy --bench languages

tests/tools/install-tansu.sh
echo "==> Kafka benchmark (tansu on 127.0.0.1)"
cargo bench --quiet -p eddy --bench kafka

echo "==> Nexmark (benches/nexmark.py)"
python3 benches/nexmark.py "$eddy" "$target/wasm32-wasip2/component/nexmark_queries.wasm" $([ "$flink" = yes ] && echo --flink)
