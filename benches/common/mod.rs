//! What the benchmarks share: the records every row maps, the timing loop, and Eddy's
//! real path into an SDK's operator.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use eddy::runtime::{Module, Runtime, SandboxConfig, SubtaskInfo, VertexKind};

/// The store data of a benchmark's own component. Rust's std in a wasm32-wasip2 component
/// imports a little WASI (stderr for panics, the environment) even when its world imports
/// nothing, so it is linked, with nothing granted.
pub struct Ctx {
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx { wasi: wasmtime_wasi::WasiCtx::builder().build(), table: wasmtime::component::ResourceTable::new() }
    }
}

impl wasmtime_wasi::WasiView for Ctx {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Measured runs per row; the median is reported.
pub const RUNS: usize = 7;
/// Minimum length of one run: long enough that timer and scheduler noise vanish.
pub const RUN_TIME: Duration = Duration::from_millis(300);
/// Warm-up before the runs: caches, branch predictors, the guest allocator's free lists.
pub const WARM_UP: Duration = Duration::from_millis(200);
/// The batch size of the headline rows.
pub const BATCH: usize = 1024;

/// `EDDY_COMPONENTS`, else the component profile's output of this workspace.
pub fn components_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDDY_COMPONENTS") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip2/component")
}

/// The value of record `i`: spread over 1 to 9 digits, as real data would be,
/// so that parsing and formatting do not see one fixed length.
pub fn value(i: usize) -> u64 {
    (i as u64).wrapping_mul(2_654_435_761) % 1_000_000_000
}

pub fn timestamp(i: usize) -> i64 {
    1_700_000_000_000 + i as i64
}

/// `n` records in the packed framing of wit/README.md.
pub fn packed_batch(n: usize) -> Vec<u8> {
    let mut batch = Vec::new();
    for i in 0..n {
        eddy::framing::push(&mut batch, None, value(i).to_string().as_bytes(), Some(timestamp(i)));
    }
    batch
}

pub fn expected(i: usize) -> Vec<u8> {
    value(i).wrapping_mul(3).wrapping_add(1).to_string().into_bytes()
}

/// Checks a packed output of the map over `packed_batch(n)`, so that no row
/// is fast because it is wrong.
pub fn check_packed(out: &[u8], n: usize) -> Result<()> {
    let mut count = 0;
    // A Rust component writes MessagePack: compared as the JSON it means.
    let out = eddy::msgpack::batch_to_json(out.to_vec()).map_err(|e| anyhow::anyhow!("output batch: {e}"))?;
    for (i, rec) in eddy::framing::records(&out).enumerate() {
        let rec = rec.map_err(|e| anyhow::anyhow!("malformed output batch: {e}"))?;
        ensure!(rec.value == expected(i), "record {i}: got {:?}", String::from_utf8_lossy(rec.value));
        ensure!(rec.timestamp == Some(timestamp(i)), "record {i}: timestamp {:?}", rec.timestamp);
        count += 1;
    }
    ensure!(count == n, "{count} records out of {n}");
    Ok(())
}

pub struct Measurement {
    /// Records per second.
    pub records_per_s: f64,
    /// Packed input bytes per second.
    pub bytes_per_s: f64,
}

/// Calls `call` (one batch of `records` records, `bytes` packed bytes) in a
/// loop: a warm-up, then `RUNS` timed runs; returns the medians.
pub fn measure(records: usize, bytes: usize, mut call: impl FnMut() -> Result<()>) -> Result<Measurement> {
    let mut loop_for = |time: Duration| -> Result<f64> {
        let started = Instant::now();
        let mut calls = 0u64;
        // Check the clock every few calls only, so small batches do not time the clock.
        while started.elapsed() < time {
            for _ in 0..16 {
                call()?;
            }
            calls += 16;
        }
        Ok(calls as f64 / started.elapsed().as_secs_f64())
    };
    loop_for(WARM_UP)?;
    let mut rates = (0..RUNS).map(|_| loop_for(RUN_TIME)).collect::<Result<Vec<f64>>>()?;
    rates.sort_by(f64::total_cmp);
    let calls_per_s = rates[RUNS / 2];
    Ok(Measurement { records_per_s: calls_per_s * records as f64, bytes_per_s: calls_per_s * bytes as f64 })
}

/// The entry whose map every SDK bench component offers.
const MAP_ENTRY: &str = "map-u64";

/// The `sdk` row: Eddy's runtime (sandbox, epoch deadline, host imports) and
/// the SDK's operator, exactly as a task runs a `wasm` vertex.
pub struct SdkBench {
    /// Which component (for messages).
    name: String,
    /// The instance, opened on the map.
    pub instance: eddy::runtime::Instance,
}

impl SdkBench {
    /// Loads `name` (with its own runtime, no compile cache) and opens its map.
    pub fn new(name: &str, wasm: &[u8]) -> Result<Self> {
        let runtime = Runtime::new(SandboxConfig::default(), None)?;
        let module = runtime.load(name, wasm)?;
        Self::open(name, &module, Self::map_index(name, &module)?)
    }

    /// The registry index of the map of entry `map-u64`, asked of the planner rather than
    /// hard-coded: the job function may gain vertices.
    pub fn map_index(name: &str, module: &Module) -> Result<u32> {
        module
            .plan(MAP_ENTRY, &[])?
            .vertices
            .iter()
            .find_map(|v| match v.kind {
                VertexKind::Wasm(n) if v.name == MAP_ENTRY => Some(n),
                _ => None,
            })
            .with_context(|| format!("{name}: no wasm vertex named {MAP_ENTRY:?} in the plan of {MAP_ENTRY:?}"))
    }

    /// Opens the map (registry `index`, from [`SdkBench::map_index`]) in a new instance of
    /// `module`: what a task does per Wasm chain, and all that instantiation costs.
    pub fn open(name: &str, module: &Module, index: u32) -> Result<Self> {
        let budget = eddy::runtime::JobBudget::new(SandboxConfig::default(), "bench", None);
        let mut instance = module.instantiate("map", None, &budget)?;
        // A Python component's batches cross as marshal: the instance converts, as in a task.
        instance.set_codec(module.plan(MAP_ENTRY, &[])?.codec);
        instance.open(MAP_ENTRY, &[], &[index], SubtaskInfo { index: 0, parallelism: 1, max_parallelism: 128 })?;
        Ok(Self { name: name.into(), instance })
    }

    /// Records/s of the map over batches of `n` records.
    pub fn measure(&mut self, n: usize) -> Result<Measurement> {
        // JSON numbers are their decimal text, so the packed input is the same bytes.
        let input = packed_batch(n);
        let out = self.instance.process(&input)?;
        if let Err(e) = check_packed(&out, n) {
            bail!("{} map-u64: {e:#}", self.name);
        }
        measure(n, input.len(), || self.instance.process(&input).map(drop).map_err(Into::into))
    }
}
