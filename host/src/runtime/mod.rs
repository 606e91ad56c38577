//! The Wasm runtime: one wasmtime `Engine` per process, components compiled
//! once per digest (and cached on disk), one sandboxed `Store` per instance.

mod budget;
mod figures;
mod component_file;
mod host_api;
mod sandbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use crate::marshal;

pub use component_file::{read_component, ReadError, MAX_COMPONENT_FILE};
pub use host_api::{HostState, KeyScope};
pub use figures::{sandbox_figures, SandboxFigures};
pub use budget::{cut_at_char, Charge, GuestLine, GuestLogs, JobBudget, QuotaError, KEPT_LOG_LINES, KEPT_LOG_MESSAGE, MAX_COUNTER_NAME};
pub use sandbox::{SandboxConfig, StoreState, DEFAULT_COUNTERS, DEFAULT_LOG_BYTES_PER_SECOND};

/// Host bindings generated from `wit/eddy.wit`; the WIT documents them.
#[allow(missing_docs)]
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "job",
        imports: { default: trappable },
        // The JobManager ships job graphs to TaskManagers.
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

pub use bindings::eddy::stream::types::{
    Aggregate, AggregateKind, DeliveryGuarantee, Edge, FieldRef, JobGraph, KafkaFormat, KafkaSink, KafkaSource, KafkaStart, NexmarkSource,
    Partitioning, Sequence, SlidingWindow, SocketSource, SubtaskInfo, TimeDomain, TimestampSpec, ValueCodec, Vertex, VertexKind, WindowAssigner,
    WindowFunction, WindowSpec,
};

impl ValueCodec {
    /// What the values of a component of this codec are: a `python-marshal` one's are JSON
    /// (only its batches cross the boundary as marshal, converted by its [`Instance`]).
    pub fn of_values(self) -> ValueCodec {
        match self {
            ValueCodec::PythonMarshal => ValueCodec::Json,
            codec => codec,
        }
    }
}

/// The world every job component must implement.
pub const WORLD: &str = "eddy:stream/job@0.1.0";

/// How often the epoch clock ticks: a guest call ends at most this long after
/// its deadline or a cancel.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a component could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Not even Wasm.
    #[error("{0} is not a WebAssembly component (no \\0asm header)")]
    NotWasm(String),
    /// A core module, as `wasm32-unknown-unknown` or `wasm32-wasip1` produce.
    #[error("{0} is a core WebAssembly module, not a component; build it for wasm32-wasip2")]
    CoreModule(String),
    /// Malformed bytes, such as a truncated file.
    #[error("{name} is not a valid component: {cause}")]
    Invalid {
        /// The module's name.
        name: String,
        /// What wasmtime found wrong.
        cause: String,
    },
    /// A component for some other world.
    #[error("{name} does not implement the {WORLD} world: {cause}")]
    WrongWorld {
        /// The module's name.
        name: String,
        /// The import or export that does not fit.
        cause: String,
    },
}

/// Refuses bytes whose first 8 do not start a component (Wasm, not a core module).
fn check_header(name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm(name.into()));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule(name.into()));
    }
    Ok(())
}

/// Why a call into a guest failed.
#[derive(Debug, Error)]
pub enum GuestError {
    /// The guest returned an error.
    #[error("{0}")]
    Returned(String),
    /// A CPython component returned a batch that is not one of JSON values.
    #[error("{0}")]
    Output(#[from] marshal::FromMarshalError),
    /// A batch could not be made into marshal for a CPython component.
    #[error("could not be given its input: {0}")]
    Input(#[from] marshal::ToMarshalError),
    /// A growth of linear memory past the sandbox's cap.
    #[error("exceeded its memory limit of {0} MiB")]
    MemoryLimit(u64),
    /// The call ran past its deadline.
    #[error("did not return within the call timeout of {0:?} (an endless loop?)")]
    Deadline(Duration),
    /// The guest asked for more than one of its job's quotas allows.
    #[error("{0}")]
    Quota(QuotaError),
    /// The job was cancelled while the guest ran.
    #[error("was interrupted: its job was cancelled")]
    Cancelled,
    /// A trap: a panic, an `unreachable`, an out-of-bounds access.
    #[error("trapped: {trap}{}", stderr_suffix(.stderr))]
    Trap {
        /// The trap's message.
        trap: String,
        /// The guest's last stderr lines, where a panic message lands.
        stderr: Vec<String>,
    },
}

fn stderr_suffix(lines: &[String]) -> String {
    let useful: Vec<&str> = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    if useful.is_empty() {
        String::new()
    } else {
        format!(" (guest stderr: {})", useful.join(" | "))
    }
}

/// The sha256 of a module's bytes: its identity everywhere in Eddy.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The process-wide Wasm runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    /// WASI (no files, no network) and the `host` imports.
    linker: Linker<StoreState>,
    /// Where compiled code is kept across runs; `None` disables the disk cache.
    cache_dir: Option<PathBuf>,
    /// Modules compiled in this process, by digest: compile once, never per subtask.
    modules: Mutex<HashMap<String, Module>>,
    /// Limits of planner instances, and of jobs that bring none of their own.
    sandbox: SandboxConfig,
}

impl Runtime {
    /// A runtime whose compiled code is cached under `cache_dir`.
    pub fn new(sandbox: SandboxConfig, cache_dir: Option<PathBuf>) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `perf record` names guest functions from /tmp/perf-PID.map (benchmark profiles).
        if std::env::var_os("EDDY_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        sandbox::shadow_clock_subscriptions(&mut linker)?;
        bindings::Job::add_to_linker::<StoreState, HasSelf<HostState>>(&mut linker, |s| &mut s.host)?;
        spawn_epoch_ticker(&engine);
        let inner = RuntimeInner { engine, linker, cache_dir, modules: Mutex::new(HashMap::new()), sandbox };
        Ok(Runtime { inner: Arc::new(inner) })
    }

    /// The sandbox limits of this runtime.
    pub fn sandbox(&self) -> &SandboxConfig {
        &self.inner.sandbox
    }

    /// The module of `digest` if this process loaded it before (a compile-cache hit).
    pub fn loaded(&self, digest: &str) -> Option<Module> {
        let m = self.inner.modules.lock().unwrap().get(digest).cloned();
        if m.is_some() {
            figures::bump(&figures::FIGURES.memory_hits);
        }
        m
    }

    /// Loads a component: validated against the world, compiled at most once.
    #[tracing::instrument(skip(self, bytes), fields(bytes = bytes.len()))]
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Module, LoadError> {
        let digest = digest(bytes);
        if let Some(m) = self.loaded(&digest) {
            return Ok(m);
        }
        check_header(name, bytes)?;
        let component = self.compile(name, &digest, bytes)?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld { name: name.into(), cause: one_line(&e) };
        let pre = self.inner.linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = bindings::JobPre::new(pre).map_err(wrong_world)?;
        let module = Module { inner: Arc::new(ModuleInner { name: name.into(), digest: digest.clone(), pre }), runtime: self.clone() };
        self.inner.modules.lock().unwrap().insert(digest, module.clone());
        Ok(module)
    }

    fn compile(&self, name: &str, digest: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        let invalid = |e: wasmtime::Error| LoadError::Invalid { name: name.into(), cause: one_line(&e) };
        let Some(dir) = &self.inner.cache_dir else {
            figures::bump(&figures::FIGURES.compiled);
            return Component::new(&self.inner.engine, bytes).map_err(invalid);
        };
        let path = dir.join(format!("{digest}-{}.cwasm", self.engine_fingerprint()));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this
            // engine configuration (its fingerprint is in the name) into the
            // user's own cache directory.
            match unsafe { Component::deserialize_file(&self.inner.engine, &path) } {
                Ok(c) => {
                    figures::bump(&figures::FIGURES.disk_hits);
                    return Ok(c);
                }
                Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable compiled cache entry: {e}"),
            }
        }
        let started = std::time::Instant::now();
        let component = Component::new(&self.inner.engine, bytes).map_err(invalid)?;
        figures::bump(&figures::FIGURES.compiled);
        tracing::debug!(module = name, elapsed = ?started.elapsed(), "compiled");
        if let Err(e) = write_cache(&path, &component) {
            tracing::warn!(path = %path.display(), "cannot cache compiled code: {e}");
        }
        Ok(component)
    }

    fn engine_fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

fn write_cache(path: &Path, component: &Component) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("eddy-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch thread");
}

/// An error on one line, its causes joined.
pub(crate) fn one_line(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string().replace('\n', " ")).collect();
    let mut out: Vec<String> = Vec::new();
    for c in chain {
        if !out.iter().any(|o| o.contains(&c)) {
            out.push(c);
        }
    }
    out.join(": ")
}

/// A loaded, validated, compiled component.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
    runtime: Runtime,
}

struct ModuleInner {
    name: String,
    digest: String,
    /// Imports resolved once; each instance only allocates its store.
    pre: bindings::JobPre<StoreState>,
}

impl Module {
    /// The name the module was loaded under (its file name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// The limits of the runtime this module was loaded by.
    pub fn runtime_sandbox(&self) -> &SandboxConfig {
        &self.runtime.inner.sandbox
    }

    /// A new sandboxed instance of the job whose limits and quotas `budget`
    /// holds; `scope` allows keyed state.
    pub fn instantiate(&self, operator: &str, scope: Option<KeyScope>, budget: &Arc<JobBudget>) -> Result<Instance, GuestError> {
        let config = budget.config();
        let (call_timeout, memory_limit) = (config.call_timeout, config.memory_limit_bytes);
        let state = StoreState::new(operator, budget.clone(), HostState::new(operator, scope, budget.clone()));
        let mut store = Store::new(&self.runtime.inner.engine, state);
        // Counted from here: dropping the store (as `Instance`) uncounts it.
        figures::bump(&figures::FIGURES.instances);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| Ok(ctx.data().on_epoch()));
        let mut instance = Instance { store, job: None, call_timeout, memory_limit, marshal: false };
        let job = instance.guard(|store, pre: &bindings::JobPre<StoreState>| pre.instantiate(store).map(Ok), &self.inner.pre)?;
        instance.job = Some(job);
        Ok(instance)
    }

    /// A planner's instance, under the runtime's own limits.
    fn planner(&self) -> Result<Instance, GuestError> {
        self.instantiate("planner", None, &JobBudget::new(self.runtime.inner.sandbox.clone(), "planner", None))
    }

    /// The entry names the component offers.
    pub fn entries(&self) -> Result<Vec<String>, GuestError> {
        let mut i = self.planner()?;
        i.call(|job, store| job.eddy_stream_planner().call_entries(store).map(Ok))
    }

    /// Runs the planner of `entry`.
    pub fn plan(&self, entry: &str, args: &[String]) -> Result<JobGraph, GuestError> {
        let mut i = self.planner()?;
        i.call(|job, store| job.eddy_stream_planner().call_plan(store, entry, args))
    }
}

/// One guest instance with its own store.
pub struct Instance {
    store: Store<StoreState>,
    job: Option<bindings::Job>,
    call_timeout: Duration,
    memory_limit: u64,
    /// Whether batches cross as marshal (a `python-marshal` component), converted here both
    /// ways so that everything outside sees framed JSON.
    marshal: bool,
}

impl Drop for Instance {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        figures::FIGURES.instances.fetch_sub(1, Relaxed);
        figures::FIGURES.linear_memory.fetch_sub(self.store.data().limiter.total_bytes as u64, Relaxed);
    }
}

impl Instance {
    /// Runs `f` under the call's deadline and turns traps into `GuestError`s.
    fn guard<A, R>(
        &mut self,
        f: impl FnOnce(&mut Store<StoreState>, A) -> wasmtime::Result<Result<R, String>>,
        arg: A,
    ) -> Result<R, GuestError> {
        // Every tick asks `on_epoch`, which ends the call at its deadline or at a cancel.
        self.store.data().deadline.start(self.call_timeout);
        self.store.set_epoch_deadline(1);
        figures::bump(&figures::FIGURES.calls);
        match f(&mut self.store, arg) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(GuestError::Returned(msg)),
            Err(e) => {
                let e = self.classify(e);
                // A cancel interrupts the call, but the guest did nothing wrong.
                if !matches!(e, GuestError::Cancelled) {
                    figures::bump(&figures::FIGURES.traps);
                }
                Err(e)
            }
        }
    }

    fn classify(&mut self, e: wasmtime::Error) -> GuestError {
        if self.store.data().limiter.exceeded {
            return GuestError::MemoryLimit(self.memory_limit >> 20);
        }
        if let Some(q) = e.downcast_ref::<QuotaError>() {
            return GuestError::Quota(q.clone());
        }
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            if self.store.data().budget.cancelled() {
                return GuestError::Cancelled;
            }
            return GuestError::Deadline(self.call_timeout);
        }
        tracing::debug!("guest trap: {e:?}");
        // The trap itself, without the wasm backtrace that wasmtime attaches.
        let trap = match e.downcast_ref::<Trap>() {
            Some(t) => t.to_string(),
            None => e.root_cause().to_string(),
        };
        GuestError::Trap { trap, stderr: self.store.data().stderr.recent() }
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(&bindings::Job, &mut Store<StoreState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, GuestError> {
        let job = self.job.take().expect("instance used after a failed instantiation");
        let result = self.guard(|store, job: &bindings::Job| f(job, store), &job);
        self.job = Some(job);
        result
    }

    /// `operator.open`: selects the fused chain `operators` of `entry`.
    pub fn open(&mut self, entry: &str, args: &[String], operators: &[u32], subtask: SubtaskInfo) -> Result<(), GuestError> {
        self.call(|job, s| job.eddy_stream_operator().call_open(s, entry, args, operators, subtask))
    }

    /// Batches of the operator calls cross as the component's graph says (`codec`): as
    /// marshal for a `python-marshal` one. Framed JSON both ways for every caller.
    pub fn set_codec(&mut self, codec: ValueCodec) {
        self.marshal = codec == ValueCodec::PythonMarshal;
    }

    /// `operator.process`: one batch in, the emitted batch out.
    #[allow(clippy::ptr_arg)] // the bindings take the list as `&Vec<u8>`
    pub fn process(&mut self, batch: &Vec<u8>) -> Result<Vec<u8>, GuestError> {
        if !self.marshal {
            return self.call(|job, s| job.eddy_stream_operator().call_process(s, batch));
        }
        let mut input = Vec::with_capacity(batch.len());
        marshal::batch_to_marshal(batch, &mut input)?;
        let output = self.call(|job, s| job.eddy_stream_operator().call_process(s, &input));
        self.output(output)
    }

    /// What a call returned, as framed JSON.
    fn output(&self, returned: Result<Vec<u8>, GuestError>) -> Result<Vec<u8>, GuestError> {
        match self.marshal {
            true => Ok(marshal::batch_from_marshal(&returned?)?),
            false => returned,
        }
    }

    /// `operator.on-watermark`.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<Vec<u8>, GuestError> {
        let output = self.call(|job, s| job.eddy_stream_operator().call_on_watermark(s, watermark));
        self.output(output)
    }

    /// `operator.on-timer`, with `key` as the current key of state calls.
    pub fn on_timer(&mut self, key: Vec<u8>, timestamp: i64, domain: crate::state::Domain) -> Result<Vec<u8>, GuestError> {
        self.store.data_mut().host.set_key(key.clone());
        let output = self.call(|job, s| job.eddy_stream_operator().call_on_timer(s, &key, timestamp, domain.into()));
        self.output(output)
    }

    /// The host side of the instance: keyed state, timers, clock.
    pub fn host(&mut self) -> &mut HostState {
        &mut self.store.data_mut().host
    }

    /// The same, to read.
    pub fn host_ref(&self) -> &HostState {
        &self.store.data().host
    }

    /// Bytes of linear memory the instance has (all its memories).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limiter.total_bytes
    }

    /// `operator.close`.
    pub fn close(&mut self) -> Result<Vec<u8>, GuestError> {
        let output = self.call(|job, s| job.eddy_stream_operator().call_close(s));
        self.output(output)
    }

    /// The counters the guest added to.
    pub fn counters(&self) -> &std::collections::BTreeMap<String, u64> {
        &self.store.data().host.counters
    }


}
