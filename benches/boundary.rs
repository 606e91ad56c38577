//! The boundary benchmark: what it costs to move a batch of records into a
//! Wasm component and back, per encoding (`cargo bench -p eddy --bench boundary`).
//!
//! Every row runs the same map, `x -> x * 3 + 1` over values that are ASCII
//! decimal `u64`s, on the same records, so the rows differ only in how the
//! records cross the boundary:
//!
//! - `typed`: one call `map-typed(list<rec>) -> list<rec>` (benches/wit);
//! - `packed`: one call `map-packed(list<u8>) -> list<u8>` over the framing of
//!   wit/README.md, which is what Eddy's `operator.process` carries;
//! - `sdk`: Eddy's real path, `eddy::runtime::Instance::process` on the
//!   `bench-ops` component (SDK decode, serde_json, the user closure, encode).
//!
//! The components come from `./dev build`; `EDDY_COMPONENTS` overrides where
//! they are looked for. MB/s always counts the packed bytes of the input, so
//! the rows are comparable whatever crosses the boundary.

use std::process::ExitCode;

use anyhow::{ensure, Context as _, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

mod common;

use common::*;

mod bindings {
    wasmtime::component::bindgen!({ path: "../benches/wit", world: "boundary" });
}
use bindings::{Boundary, Rec};


fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boundary benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let dir = components_dir();
    let boundary_wasm = dir.join("boundary_guest.wasm");
    let sdk_wasm = dir.join("bench_ops.wasm");
    let missing: Vec<_> = [&boundary_wasm, &sdk_wasm].into_iter().filter(|p| !p.exists()).collect();
    if !missing.is_empty() {
        for p in &missing {
            eprintln!("missing component {}", p.display());
        }
        eprintln!("build the components first: ./dev build (or set EDDY_COMPONENTS to where they are)");
        std::process::exit(2);
    }

    let mut bench = BoundaryBench::new(&std::fs::read(&boundary_wasm)?)?;
    let mut sdk = SdkBench::new("bench_ops.wasm", &std::fs::read(&sdk_wasm)?)?;

    println!(
        "boundary benchmark: same map (x*3+1 on decimal u64 values) per row, {RUNS} runs of >= {RUN_TIME:?}, medians"
    );
    println!("records: no key, a timestamp, a value of up to 9 digits; MB/s = packed input bytes (10^6/s)");
    println!();
    println!("{:<8} {:>6} {:>14} {:>10}", "path", "batch", "records/s", "MB/s");

    // Arguments that are not flags (cargo passes `--bench`) select rows by
    // path name, e.g. `cargo bench -p eddy --bench boundary -- typed` to profile one.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| f == name);
    let row = |name: &str,
               batch: usize,
               bench: &mut dyn FnMut(usize) -> Result<Measurement>|
     -> Result<Option<Measurement>> {
        if !wanted(name) {
            return Ok(None);
        }
        let m = bench(batch)?;
        println!("{:<8} {:>6} {:>12.2} M {:>10.1}", name, batch, m.records_per_s / 1e6, m.bytes_per_s / 1e6);
        Ok(Some(m))
    };

    let typed = row("typed", BATCH, &mut |n| bench.typed(n))?;
    let packed = row("packed", BATCH, &mut |n| bench.packed(n))?;
    let via_sdk = row("sdk", BATCH, &mut |n| sdk.measure(n))?;
    // One call per record: what a per-record boundary (no batching) would cost.
    row("typed", 1, &mut |n| bench.typed(n))?;
    for n in [64, 256, 4096] {
        row("packed", n, &mut |n| bench.packed(n))?;
    }

    println!();
    if let (Some(typed), Some(packed)) = (&typed, &packed) {
        println!("packed/typed at {BATCH}: {:.2}x", packed.records_per_s / typed.records_per_s);
    }
    if let (Some(packed), Some(via_sdk)) = (&packed, &via_sdk) {
        println!("sdk/packed at {BATCH}:   {:.2}x", via_sdk.records_per_s / packed.records_per_s);
    }
    if let Some(packed) = &packed {
        // The bar for a packed-batch Wasm map operator on one core.
        let verdict = if packed.records_per_s >= 10e6 { "met" } else { "NOT met" };
        println!("packed at {BATCH}: {:.1} M records/s, target 10 M: {verdict}", packed.records_per_s / 1e6);
    }
    Ok(())
}

/// The same `n` records, typed.
fn typed_batch(n: usize) -> Vec<Rec> {
    (0..n).map(|i| Rec { key: None, value: value(i).to_string().into_bytes(), timestamp: Some(timestamp(i)) }).collect()
}

/// The `typed` and `packed` rows: a plain engine, no sandbox limits, no epoch
/// interruption, so that only the boundary and the map are measured.
struct BoundaryBench {
    store: Store<Ctx>,
    boundary: Boundary,
}

impl BoundaryBench {
    fn new(wasm: &[u8]) -> Result<Self> {
        // wasmtime 48 has its own error type: `?` converts it into anyhow's,
        // but `context` and closures returning `Result` need `Error::from`.
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config)?;
        let component =
            Component::new(&engine, wasm).map_err(anyhow::Error::from).context("compiling boundary_guest.wasm")?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let mut store = Store::new(&engine, Ctx::default());
        let boundary = Boundary::instantiate(&mut store, &component, &linker)
            .map_err(anyhow::Error::from)
            .context("instantiating boundary_guest.wasm")?;
        Ok(Self { store, boundary })
    }

    fn typed(&mut self, n: usize) -> Result<Measurement> {
        let input = typed_batch(n);
        let out = self.boundary.call_map_typed(&mut self.store, &input)?;
        ensure!(out.len() == n, "map-typed returned {} records out of {n}", out.len());
        for (i, rec) in out.iter().enumerate() {
            ensure!(
                rec.value == expected(i) && rec.timestamp == Some(timestamp(i)) && rec.key.is_none(),
                "map-typed: record {i} is wrong"
            );
        }
        let bytes = packed_batch(n).len();
        // The output is dropped inside the loop: freeing what the host lifted
        // is part of the typed encoding's cost.
        measure(n, bytes, || {
            self.boundary.call_map_typed(&mut self.store, &input).map(drop).map_err(anyhow::Error::from)
        })
    }

    fn packed(&mut self, n: usize) -> Result<Measurement> {
        let input = packed_batch(n);
        check_packed(&self.boundary.call_map_packed(&mut self.store, &input)?, n).context("map-packed")?;
        measure(n, input.len(), || {
            self.boundary.call_map_packed(&mut self.store, &input).map(drop).map_err(anyhow::Error::from)
        })
    }
}
