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

/// `exchange --input FILE --output DIR [--split]`: the lines of FILE (100-byte records in
/// the benchmark) over one rebalance channel into a file sink; no user code at all, so the
/// channel and the host's connectors are what is measured. With `--split` the sink is in
/// slot-sharing group "sink", so on a cluster of one-slot TaskManagers the channel crosses
/// QUIC; without it both ends share a slot and the channel stays in memory. The exchange
/// benchmark (`benches/exchange.py`) times both.
fn exchange(env: &mut Env, args: &Args) -> Result<(), String> {
    let input = args.required("input")?;
    let output = args.required("output")?;
    let group = if args.has("split") { "sink" } else { "default" };
    env.set_parallelism(1);
    env.read_text_file(input).rebalance().write_text_file(output).slot_sharing_group(group);
    Ok(())
}

/// `kafka-map --brokers B --input T --output T [--bounded]`: the Kafka benchmark
/// (`cargo bench -p eddy --bench kafka`): text values of a topic through a Wasm map
/// (the value unchanged, so that the benchmark reads its send time back) into
/// another topic, at least once.
fn kafka_map(env: &mut Env, args: &Args) -> Result<(), String> {
    use eddy_sdk::kafka::{KafkaSink, KafkaSource};
    let brokers = args.required("brokers")?;
    let source = KafkaSource::new(brokers, [args.required("input")?]);
    let source = if args.has("bounded") { source.bounded() } else { source };
    env.read_kafka::<String>(source)
        .map(|line: String| line)
        .name("map")
        .write_kafka(KafkaSink::new(brokers, args.required("output")?).at_least_once());
    Ok(())
}

eddy_sdk::entries! {
    "map-u64" => map_u64,
    "exchange" => exchange,
    "kafka-map" => kafka_map,
}
