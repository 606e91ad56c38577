"""The Python side of the languages benchmark: entry ``map-u64`` builds the same graph as
the Rust one (benches/guest/src/lib.rs)::

    [0] Sequence Source   sequence-source(n)
    [1] Map               wasm(0): i -> i
    [2] map-u64           wasm(1): x -> x * 3 + 1
    [3] Print Sink

so operator 1 is the benchmarked map. Python ints do not overflow, so the map needs no
wrapping for the benchmark's inputs (sequence numbers); above 2**64 / 3 it would return the
exact value where Rust wraps."""

import eddy


@eddy.entry("map-u64")
def map_u64(env, args):
    n = args.parse_or("n", 1_000_000)
    (env.generate(n, lambda i: i)
        .map(lambda x: x * 3 + 1).name("map-u64")
        .print())
