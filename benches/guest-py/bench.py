"""The Python side of the languages benchmark: entry ``map-u64`` builds the same graph as
the Rust one (benches/guest/src/lib.rs)::

    [0] Sequence Source   sequence-source(n)
    [1] Map               wasm(0): i -> i
    [2] map-u64           wasm(1): x -> x * 3 + 1  (wrapping, as u64)
    [3] Print Sink

so operator 1 is the benchmarked map."""

import eddy

MASK = (1 << 64) - 1


@eddy.entry("map-u64")
def map_u64(env, args):
    n = args.parse_or("n", 1_000_000)
    (env.generate(n, lambda i: i)
        .map(lambda x: (x * 3 + 1) & MASK).name("map-u64")
        .print())
