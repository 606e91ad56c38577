//! What one guest instance may use: a memory cap, a deadline per call that
//! also ends WASI sleeps, WASI without files or network, stdout/stderr
//! captured into the log at a bounded rate, and its job's quotas.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::StoreContextMut;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::budget::JobBudget;
use super::host_api::HostState;

/// Limits of a job's guest instances, and its quotas in one process; `eddy run --help` shows the flags.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SandboxConfig {
    /// Linear memory one instance may grow to. Size it to the largest state an
    /// operator keeps in its own memory; keyed state lives in the host.
    pub memory_limit_bytes: u64,
    /// Wall-clock time one guest call may take before it is interrupted, also
    /// while it waits in WASI (a sleep); a batch of records must be processed within it.
    pub call_timeout: Duration,
    /// Keyed state bytes one job may keep in this process (value, list and
    /// map state, timers, window buffers; keys and values as the host stores
    /// them plus a fixed overhead per entry), summed over its subtasks here.
    /// The host holds keyed state, so without it one job can exhaust the
    /// memory of a TaskManager shared by many. None: unbounded.
    #[serde(default)]
    pub state_bytes: Option<u64>,
    /// Timers one subtask may keep: each costs the host memory and a place
    /// in its firing order. None: unbounded.
    #[serde(default)]
    pub timers_per_subtask: Option<u64>,
    /// Distinct counter names one job may use in this process: each is kept
    /// and reported at the end. None: unbounded; the default is 10 000.
    #[serde(default)]
    pub counters: Option<u64>,
    /// Bytes of guest log lines (the `log` import, stdout and stderr) one job
    /// may write per second in this process, with a burst of one second's
    /// worth; lines past it are dropped and counted, so that one job cannot
    /// flood the host's log. None: unbounded; the default is 1 MiB/s.
    #[serde(default)]
    pub log_bytes_per_second: Option<u64>,
}

/// Counters a job may have unless told otherwise: far more than dashboards show.
pub const DEFAULT_COUNTERS: u64 = 10_000;
/// Guest log bytes per second a job may write unless told otherwise.
pub const DEFAULT_LOG_BYTES_PER_SECOND: u64 = 1 << 20;

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 512 << 20,
            call_timeout: Duration::from_secs(10),
            state_bytes: None,
            timers_per_subtask: None,
            counters: Some(DEFAULT_COUNTERS),
            log_bytes_per_second: Some(DEFAULT_LOG_BYTES_PER_SECOND),
        }
    }
}

/// The data of one wasmtime `Store`: one guest instance.
pub struct StoreState {
    /// WASI with nothing granted but clocks, randomness and the log pipes.
    wasi: WasiCtx,
    /// WASI's resources (streams) of this instance.
    table: ResourceTable,
    /// Enforces the memory cap and remembers that it was hit.
    pub(crate) limiter: MemoryLimiter,
    /// What the `host` imports act on.
    pub(crate) host: HostState,
    /// The guest's stderr, whose last lines explain a trap.
    pub(crate) stderr: LogPipe,
    /// The job's quotas and cancel flag.
    pub(crate) budget: Arc<JobBudget>,
    /// When the running call must end; its sleeps read it too.
    pub(crate) deadline: Arc<CallDeadline>,
    /// The origin of the guest's monotonic clock, to read its instants.
    clock_origin: Instant,
}

impl StoreState {
    /// A sandbox for the instance called `name` in logs and errors.
    pub fn new(name: &str, budget: Arc<JobBudget>, host: HostState) -> Self {
        let stdout = LogPipe::new(name, "stdout", budget.clone());
        let stderr = LogPipe::new(name, "stderr", budget.clone());
        let clock_origin = Instant::now();
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr.clone())
            .monotonic_clock(GuestClock(clock_origin))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let max_bytes = budget.config().memory_limit_bytes as usize;
        StoreState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max_bytes, exceeded: false, total_bytes: 0 },
            host,
            stderr,
            budget,
            deadline: Arc::new(CallDeadline::new(clock_origin)),
            clock_origin,
        }
    }

    /// Called on every epoch tick while the guest runs Wasm code: ends the
    /// call at its deadline or when the job is cancelled.
    pub(crate) fn on_epoch(&self) -> wasmtime::UpdateDeadline {
        if self.budget.cancelled() || Instant::now() >= self.deadline.get() {
            wasmtime::UpdateDeadline::Interrupt
        } else {
            wasmtime::UpdateDeadline::Continue(1)
        }
    }

    /// A pollable ready `wait` from now, or earlier at the call's deadline or a cancel.
    fn sleep(&mut self, wait: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let until = Instant::now().checked_add(wait);
        let sleep = GuestSleep { until, deadline: self.deadline.clone(), budget: self.budget.clone() };
        let r = self.table.push(sleep)?;
        wasmtime_wasi::p2::subscribe(&mut self.table, r)
    }
}

/// The deadline of an instance's running call, shared with its pollables: a
/// pollable made in one call and waited on in a later one ends with the later call.
pub(crate) struct CallDeadline {
    origin: Instant,
    /// Nanoseconds after `origin`.
    nanos: std::sync::atomic::AtomicU64,
}

impl CallDeadline {
    fn new(origin: Instant) -> Self {
        CallDeadline { origin, nanos: 0.into() }
    }

    /// The next call must end `timeout` from now.
    pub(crate) fn start(&self, timeout: Duration) {
        let nanos = self.origin.elapsed().saturating_add(timeout).as_nanos().min(u64::MAX as u128) as u64;
        self.nanos.store(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self) -> Instant {
        self.origin + Duration::from_nanos(self.nanos.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The guest's monotonic clock: nanoseconds since its instance began.
struct GuestClock(Instant);

impl wasmtime_wasi::HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// The WASI interface whose subscriptions are shadowed; wasmtime-wasi
/// defines it at this version, and guests' older 0.2 imports resolve to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's clock subscriptions by ones that end at the call's
/// deadline: epoch interruption only stops Wasm code, so a guest blocked in
/// `poll` or `pollable.block` on a long sleep would outlive its call timeout
/// and a cancel.
pub(crate) fn shadow_clock_subscriptions(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store: StoreContextMut<StoreState>, (nanos,): (u64,)| {
        Ok((store.data_mut().sleep(Duration::from_nanos(nanos))?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store: StoreContextMut<StoreState>, (when,): (u64,)| {
        let s = store.data_mut();
        let now = s.clock_origin.elapsed().as_nanos() as u64;
        Ok((s.sleep(Duration::from_nanos(when.saturating_sub(now)))?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// How often a sleeping guest looks at its job's cancel flag.
const SLEEP_POLL: Duration = Duration::from_millis(10);

/// A guest's sleep: ready at its time, at the call's deadline, or at a cancel.
struct GuestSleep {
    /// None: longer than the clock can say, which is forever.
    until: Option<Instant>,
    deadline: Arc<CallDeadline>,
    budget: Arc<JobBudget>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestSleep {
    async fn ready(&mut self) {
        loop {
            let deadline = self.deadline.get();
            let end = self.until.map_or(deadline, |u| u.min(deadline));
            let now = Instant::now();
            if now >= end || self.budget.cancelled() {
                return;
            }
            tokio::time::sleep((end - now).min(SLEEP_POLL)).await;
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory; a growth past the cap traps instead of failing
/// softly, so that a memory bomb ends in a clear error.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Set when the guest asked for more than `max_bytes`.
    pub(crate) exceeded: bool,
    /// Linear memory of all the instance's memories: what one instance costs.
    pub(crate) total_bytes: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} MiB exceeded", self.max_bytes >> 20);
        }
        self.total_bytes += desired - current;
        super::figures::FIGURES.linear_memory.fetch_add((desired - current) as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// Lines kept of a guest's stderr to explain its failure.
const KEPT_LINES: usize = 8;
/// Longest line logged; longer output is cut, so a guest cannot flood the log.
const MAX_LINE: usize = 4096;

/// A guest output stream that writes complete lines into the task's log.
#[derive(Clone)]
pub(crate) struct LogPipe {
    inner: Arc<Mutex<PipeState>>,
}

struct PipeState {
    /// The operator, for the log lines.
    operator: Arc<str>,
    /// "stdout" or "stderr".
    stream: &'static str,
    /// A line not yet ended by `\n`.
    partial: Vec<u8>,
    /// The last complete lines, newest last.
    recent: VecDeque<String>,
    /// Its job's log rate.
    budget: Arc<JobBudget>,
}

impl LogPipe {
    fn new(operator: &str, stream: &'static str, budget: Arc<JobBudget>) -> Self {
        let state = PipeState { operator: operator.into(), stream, partial: Vec::new(), recent: VecDeque::new(), budget };
        LogPipe { inner: Arc::new(Mutex::new(state)) }
    }

    /// The last lines written, including an unfinished one.
    pub(crate) fn recent(&self) -> Vec<String> {
        let s = self.inner.lock().unwrap();
        let mut lines: Vec<String> = s.recent.iter().cloned().collect();
        if !s.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&s.partial).into_owned());
        }
        lines
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut s = self.inner.lock().unwrap();
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&s.partial).into_owned();
                s.partial.clear();
                if tracing::enabled!(target: "eddy::guest", tracing::Level::INFO) && s.budget.admit_log(line.len()) {
                    tracing::info!(target: "eddy::guest", operator = %s.operator, stream = s.stream, "{line}");
                }
                if s.recent.len() == KEPT_LINES {
                    s.recent.pop_front();
                }
                s.recent.push_back(line);
            } else if s.partial.len() < MAX_LINE {
                s.partial.push(b);
            }
        }
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only the synchronous WASIp2 path is linked; async guests cannot run.
        Box::new(tokio::io::sink())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}
