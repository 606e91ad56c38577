// The JavaScript side of the language benchmark: the same map operator as the Rust
// benches/guest (entry `map-u64`) and the Python one, so the host can compare them.
//
// Entry `map-u64 [--n N]` builds, like the Rust component:
//
//   vertex 0  Sequence Source  sequence-source(n)
//   vertex 1  Map              wasm(0): i => i
//   vertex 2  map-u64          wasm(1): x => x * 3 + 1      <- registry index 1, benchmarked
//   vertex 3  Print Sink
//
// Values are JSON numbers, which JS holds as doubles: exact up to 2^53, which the benchmark's
// values (a few million) are far below. Past that Rust wraps at 2^64 while JS loses precision;
// a job needing exact 64-bit integers keeps them as strings or BigInts.

import { entry } from "eddy";

entry("map-u64", (env, args) => {
  const n = args.parseOr("n", 1000000);
  env
    .generate(n, (i) => i)
    .map((x) => x * 3 + 1)
    .name("map-u64")
    .print();
});
