//! Operators for the host's boundary benchmark (`cargo bench -p eddy --bench boundary`).
//!
//! Entry `map-u64` builds, with no arguments:
//!
//! | vertex | name            | kind                 | registry index |
//! |--------|-----------------|----------------------|----------------|
//! | 0      | Sequence Source | `sequence-source(n)` | -              |
//! | 1      | Map             | `wasm(0)`: `\|i\| i` | 0              |
//! | 2      | map-u64         | `wasm(1)`: the map   | **1**          |
//! | 3      | Print Sink      | `print-sink`         | -              |
//!
//! The benchmark opens `operator.open("map-u64", [], [1], …)` and feeds packed batches of
//! JSON `u64` values; each comes back as `x * 3 + 1` (wrapping).

use eddy_sdk::prelude::*;

/// Registry index of the benchmarked map (vertex 2); see the table above.
pub const MAP_U64_OPERATOR: u32 = 1;

fn map_u64(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1_000_000)?;
    env.generate(n, |i| i)
        .map(|x: u64| x.wrapping_mul(3).wrapping_add(1))
        .name("map-u64")
        .print();
    Ok(())
}

eddy_sdk::entries! {
    "map-u64" => map_u64,
}
