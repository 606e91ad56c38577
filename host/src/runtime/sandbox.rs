//! What one guest instance may use: a memory cap, a CPU deadline per call,
//! WASI without files or network, and stdout/stderr captured into the log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::host_api::HostState;

/// Limits of every guest instance; `eddy run --help` shows the flags.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SandboxConfig {
    /// Linear memory one instance may grow to. Size it to the largest state an
    /// operator keeps in its own memory; keyed state lives in the host.
    pub memory_limit_bytes: u64,
    /// Wall-clock time one guest call may take before it is interrupted; a
    /// batch of records must be processed within it.
    pub call_timeout: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self { memory_limit_bytes: 512 << 20, call_timeout: Duration::from_secs(10) }
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
}

impl StoreState {
    /// A sandbox for the instance called `name` in logs and errors.
    pub fn new(name: &str, config: &SandboxConfig, host: HostState) -> Self {
        let stdout = LogPipe::new(name, "stdout");
        let stderr = LogPipe::new(name, "stderr");
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StoreState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max_bytes: config.memory_limit_bytes as usize, exceeded: false, total_bytes: 0 },
            host,
            stderr,
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
}

impl LogPipe {
    fn new(operator: &str, stream: &'static str) -> Self {
        let state = PipeState { operator: operator.into(), stream, partial: Vec::new(), recent: VecDeque::new() };
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
                tracing::info!(target: "eddy::guest", operator = %s.operator, stream = s.stream, "{line}");
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
