//! The same map operator written in each SDK language
//! (`cargo bench -p eddy --bench languages`).
//!
//! Every component has the entry `map-u64`, whose vertex "map-u64" maps decimal `u64`
//! values `x -> x * 3 + 1`: `bench_ops.wasm` (Rust, `benches/guest`), `bench_ops_py.wasm`
//! (Python, `benches/guest-py`) and `bench_ops_js.wasm` (JavaScript, `benches/guest-js`).
//! Per language it reports:
//!
//! - records/s through Eddy's real path (`Instance::process` on batches of 1024 records:
//!   the SDK's decoding, the user function, encoding), median of runs;
//! - the compile time of the component, and the time to load it from the compile
//!   cache in a fresh runtime (what a new TaskManager process pays);
//! - instantiation time of the cached component: a new sandboxed instance plus
//!   `operator.open` (the SDK rebuilding its registry), what every subtask pays, median;
//! - the linear memory of one such instance.
//!
//! Arguments that are not flags select languages (`-- python`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use eddy::runtime::{Runtime, SandboxConfig};

mod common;

use common::*;

/// Instantiations timed per language; the median is reported.
const INSTANTIATIONS: usize = 21;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("languages benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Row {
    language: &'static str,
    records_per_s: f64,
    instantiate: Duration,
}

fn run() -> Result<()> {
    let dir = components_dir();
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let languages = [("rust", "bench_ops.wasm"), ("python", "bench_ops_py.wasm"), ("javascript", "bench_ops_js.wasm")];
    println!("languages benchmark: map-u64 (x*3+1 on decimal u64 values), batches of {BATCH}, medians");
    println!();
    println!(
        "{:<11} {:>12} {:>10} {:>9} {:>12} {:>13} {:>11}",
        "language", "records/s", "MB/s", "compile", "cached load", "instantiate", "memory"
    );
    let mut rows = Vec::new();
    for (language, file) in languages {
        if !filters.is_empty() && !filters.iter().any(|f| language.starts_with(f.as_str())) {
            continue;
        }
        let path = dir.join(file);
        let wasm = std::fs::read(&path).with_context(|| format!("cannot read {} (build it with ./dev build)", path.display()))?;
        let cache = tempfile::tempdir()?;
        let runtime = || Runtime::new(SandboxConfig::default(), Some(cache.path().to_path_buf()));

        let started = Instant::now();
        runtime()?.load(file, &wasm)?;
        let compile = started.elapsed();
        // A fresh runtime finds the compiled code on disk, as a new process would.
        let started = Instant::now();
        let module = runtime()?.load(file, &wasm)?;
        let cached_load = started.elapsed();

        let index = SdkBench::map_index(file, &module)?;
        let mut times = Vec::with_capacity(INSTANTIATIONS);
        for _ in 0..INSTANTIATIONS {
            let started = Instant::now();
            SdkBench::open(file, &module, index)?;
            times.push(started.elapsed());
        }
        times.sort();
        let instantiate = times[INSTANTIATIONS / 2];

        let mut bench = SdkBench::open(file, &module, index)?;
        let memory = bench.instance.memory_bytes();
        let m = bench.measure(BATCH)?;
        println!(
            "{:<11} {:>10.3} M {:>10.1} {:>7.2} s {:>10.1} ms {:>10.2} ms {:>7.1} MiB",
            language,
            m.records_per_s / 1e6,
            m.bytes_per_s / 1e6,
            compile.as_secs_f64(),
            cached_load.as_secs_f64() * 1e3,
            instantiate.as_secs_f64() * 1e3,
            memory as f64 / (1 << 20) as f64
        );
        rows.push(Row { language, records_per_s: m.records_per_s, instantiate });
    }

    println!();
    let Some(rust) = rows.iter().find(|r| r.language == "rust") else { return Ok(()) };
    // The bars: Python and JavaScript within 50x of Rust; a cached Rust
    // component instantiates in under 10 ms.
    for r in rows.iter().filter(|r| r.language != "rust") {
        let slower = rust.records_per_s / r.records_per_s;
        let verdict = if slower <= 50.0 { "met" } else { "NOT met" };
        println!("{}: {slower:.1}x slower than rust (bar: 50x): {verdict}", r.language);
    }
    let ms = rust.instantiate.as_secs_f64() * 1e3;
    println!("rust instantiation of a cached component: {ms:.2} ms (bar: 10 ms): {}", if ms < 10.0 { "met" } else { "NOT met" });
    Ok(())
}
