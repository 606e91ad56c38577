//! Tasks: one OS thread per subtask of an operator chain, reading its input
//! gate (or running its source), pushing batches through the chain, and
//! writing the results to its output channels.

mod channel;
mod checkpointing;
mod operators;
mod output;
mod timestamps;
mod window;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

pub use channel::{channel, send_local, Event, CANCEL_POLL, GateEvent, GateQueue, InputGate, RemoteSend, Sender};
pub use checkpointing::{AckSink, Checkpointing, TaskAck, TaskCheckpoints};
pub use operators::{build_chain, state_uids, Chain, ChainContext, Operator, Progress};
pub use output::{BlockClock, Output, OutputEdge};

use crate::checkpoint::Barrier;
use crate::connectors::Source;
use crate::framing::FramingError;
use crate::runtime::GuestError;

/// Why a task stopped before its input ended.
#[derive(Debug, Error)]
pub enum TaskError {
    /// User code failed.
    #[error("operator '{operator}' (subtask {subtask}/{parallelism}) {source}")]
    Operator {
        /// The operator (or fused operators) that failed.
        operator: String,
        /// 1-based subtask index.
        subtask: u32,
        /// Parallelism of the operator.
        parallelism: u32,
        /// What went wrong in the guest.
        source: GuestError,
    },
    /// A malformed batch from user code.
    #[error("operator '{operator}' emitted a malformed batch: {source}")]
    Framing {
        /// The operator whose output was malformed.
        operator: String,
        /// The framing error.
        source: FramingError,
    },
    /// A built-in operator could not read a record.
    #[error("operator '{operator}': {message}")]
    Record {
        /// The built-in operator.
        operator: String,
        /// What was wrong with the record.
        message: String,
    },
    /// A Kafka source or sink cannot reach its brokers, or met a record the
    /// job's format refuses (the message names the topic, partition and offset).
    #[error("{0}")]
    Kafka(String),
    /// A source or sink failed on I/O.
    #[error("{what}: {source}")]
    Io {
        /// What the connector was doing.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A connector reached past what the job's tenant was granted.
    #[error(transparent)]
    Confined(#[from] crate::connectors::ConfineError),
    /// Another task failed or the job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The host's own code panicked in the task's thread (a bug, reported as a failure).
    #[error("the task panicked: {0}")]
    Panicked(String),
}

/// Flags shared by every task of one job.
#[derive(Debug, Default)]
pub struct JobSignals {
    /// Abort now: another task failed or the job was cancelled.
    pub cancel: AtomicBool,
    /// Sources end their input gracefully (Ctrl-C on an unbounded job).
    pub stop: AtomicBool,
    /// The latest checkpoint sources are asked to inject (0: none yet).
    pub checkpoint_trigger: AtomicU64,
    /// The id of a stop-with-savepoint checkpoint, once one is triggered.
    pub stop_checkpoint: AtomicU64,
    /// The latest checkpoint that completed on every task.
    pub checkpoint_committed: AtomicU64,
}

impl JobSignals {
    /// Whether the job is being torn down.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Whether sources should end their input.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.cancelled()
    }

    /// Asks the sources to inject `barrier`.
    pub fn trigger_checkpoint(&self, barrier: Barrier) {
        if barrier.stop {
            self.stop_checkpoint.store(barrier.id, Ordering::Release);
        }
        self.checkpoint_trigger.fetch_max(barrier.id, Ordering::AcqRel);
    }

    /// Checkpoint `id` completed: sinks may commit what it covers.
    pub fn checkpoint_completed(&self, id: u64) {
        self.checkpoint_committed.fetch_max(id, Ordering::AcqRel);
    }
}

/// Where a task's records come from.
pub enum Head {
    /// A source connector, run in the task thread.
    Source(Box<dyn Source>),
    /// Channels from upstream tasks.
    Input(Box<InputGate>),
}

/// Counts a task reports when it ends.
#[derive(Debug, Default, Clone)]
pub struct TaskMetrics {
    /// Records its source emitted.
    pub records_in: u64,
    /// Records its sink wrote.
    pub records_out: u64,
    /// Counters added to by user code.
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// What a running task has read, written and used so far, for heartbeats,
/// progress and usage metering; written by the task's thread, read by others.
#[derive(Debug, Default)]
pub struct LiveCounts {
    /// Records its source emitted.
    pub records_in: AtomicU64,
    /// Records its sinks wrote.
    pub records_out: AtomicU64,
    /// Bytes of the records its source emitted (framed, as they enter the job).
    pub bytes_in: AtomicU64,
    /// Bytes its sinks wrote.
    pub bytes_out: AtomicU64,
    /// CPU time its thread has used, in nanoseconds (the thread's own clock).
    pub cpu_ns: AtomicU64,
    /// How the task's time went and what passed through it, for monitoring.
    pub stats: LiveStats,
}

/// What a task's statistics count (`GET /jobs/{id}`, `/metrics`). Busy,
/// back-pressured and idle time are measured as Flink measures them: blocked
/// on a full output, waiting on an empty input, and the rest.
#[derive(Debug)]
pub struct LiveStats {
    /// When the task was made: its wall time so far is measured from here.
    pub since: std::time::Instant,
    /// Records taken from its input gate (a source's are `LiveCounts::records_in`).
    pub records_in: AtomicU64,
    /// Records it sent downstream or its sinks wrote.
    pub records_out: AtomicU64,
    /// Bytes of the batches taken from its input gate (a source's are `LiveCounts::bytes_in`).
    pub bytes_in: AtomicU64,
    /// Bytes of the batches it sent downstream or its sinks wrote.
    pub bytes_out: AtomicU64,
    /// Time blocked on a full downstream channel (its output's clock).
    pub blocked: Arc<output::BlockClock>,
    /// Time waiting for input on an empty gate, in nanoseconds.
    pub idle_ns: AtomicU64,
    /// The last watermark it sent downstream (`i64::MIN`: none yet).
    pub watermark: std::sync::atomic::AtomicI64,
    /// Events waiting in its input gate when it last took one.
    pub queued: AtomicU64,
    /// Room of its input gate, in events (0 for a source).
    pub capacity: AtomicU64,
    /// Bytes its source read of its input, and the input's size + 1 (0:
    /// unknown, as for a socket), for `eddy run`'s progress bar: see `input()`.
    input: (AtomicU64, AtomicU64),
    /// A bounded copy of its operators' own counters ([`LIVE_COUNTERS`] at most),
    /// refreshed at most every [`COUNTERS_EVERY`] by the task's thread.
    counters: std::sync::Mutex<Vec<(String, u64)>>,
    /// When `counters` was last refreshed, in ns after `since` (`u64::MAX`: never).
    counters_at: AtomicU64,
}

/// Counters of one subtask shown while it runs (the first by name); all of them are in its end's metrics.
pub const LIVE_COUNTERS: usize = 16;
/// Longest counter name shown while a subtask runs, in bytes.
pub const LIVE_COUNTER_NAME: usize = 64;
/// How often a task copies its operators' counters for the statistics.
const COUNTERS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The counters shown of `all`: the first [`LIVE_COUNTERS`] by name, names cut to
/// [`LIVE_COUNTER_NAME`] bytes. The JobManager applies it again to what it is sent.
pub fn live_counters(all: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut shown: Vec<(String, u64)> = all.into_iter().take(LIVE_COUNTERS).collect();
    for (name, _) in &mut shown {
        crate::runtime::cut_at_char(name, LIVE_COUNTER_NAME);
    }
    shown
}

impl LiveCounts {
    /// The counts of a task writing to `output`.
    pub fn of(output: &Output) -> Self {
        LiveCounts { stats: LiveStats { blocked: output.blocked(), ..LiveStats::default() }, ..LiveCounts::default() }
    }
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            since: std::time::Instant::now(),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            blocked: Arc::default(),
            idle_ns: AtomicU64::new(0),
            watermark: std::sync::atomic::AtomicI64::new(i64::MIN),
            queued: AtomicU64::new(0),
            capacity: AtomicU64::new(0),
            input: (AtomicU64::new(0), AtomicU64::new(0)),
            counters: std::sync::Mutex::new(Vec::new()),
            counters_at: AtomicU64::new(u64::MAX),
        }
    }
}

impl LiveStats {
    /// Bytes its source read, and the size of its input if known.
    pub fn input(&self) -> (u64, Option<u64>) {
        let size = self.input.1.load(Ordering::Relaxed);
        (self.input.0.load(Ordering::Relaxed), size.checked_sub(1))
    }

    /// The operators' counters as last copied.
    pub fn counters(&self) -> Vec<(String, u64)> {
        self.counters.lock().unwrap().clone()
    }

    /// Copies the chain's counters if a second passed since the last copy, or `now`.
    fn refresh_counters(&self, chain: &Chain, now: bool) {
        let elapsed = self.since.elapsed().as_nanos().min(u64::MAX as u128 - 1) as u64;
        let at = self.counters_at.load(Ordering::Relaxed);
        if now || at == u64::MAX || elapsed.saturating_sub(at) >= COUNTERS_EVERY.as_nanos() as u64 {
            self.counters_at.store(elapsed, Ordering::Relaxed);
            *self.counters.lock().unwrap() = live_counters(chain.counters());
        }
    }

}

impl LiveCounts {
    /// The task's statistics, as heartbeats and task ends carry them: what entered
    /// it is what its source read or what it took from its gate (one is zero).
    pub fn statistics(&self) -> crate::protocol::SubtaskStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stats;
        let wm = s.watermark.load(Ordering::Relaxed);
        let (input_read, input_size) = s.input();
        crate::protocol::SubtaskStats {
            records_in: load(&self.records_in).saturating_add(load(&s.records_in)),
            records_out: load(&s.records_out),
            bytes_in: load(&self.bytes_in).saturating_add(load(&s.bytes_in)),
            bytes_out: load(&s.bytes_out),
            wall_ns: s.since.elapsed().as_nanos().min(u64::MAX as u128) as u64,
            backpressured_ns: s.blocked.blocked_ns(),
            idle_ns: load(&s.idle_ns),
            watermark: (wm != i64::MIN).then_some(wm),
            queued: load(&s.queued),
            capacity: load(&s.capacity),
            input_read,
            input_size,
        }
    }
}

impl LiveCounts {
    /// `(records in, records out)` now.
    pub fn get(&self) -> (u64, u64) {
        (self.records_in.load(Ordering::Relaxed), self.records_out.load(Ordering::Relaxed))
    }

    /// Everything, as heartbeats report it.
    pub fn usage(&self) -> crate::protocol::TaskUsage {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::protocol::TaskUsage {
            records_in: load(&self.records_in),
            records_out: load(&self.records_out),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            cpu_ns: load(&self.cpu_ns),
        }
    }

    /// Reads the calling thread's CPU clock: call it from the task's own thread.
    fn sample_cpu(&self) {
        self.cpu_ns.store(thread_cpu_ns(), Ordering::Relaxed);
    }

    /// Shows what the task's output sent and its sinks wrote so far, and now and
    /// then its operators' counters (at its end, `last`, always).
    fn publish(&self, chain: &Chain, output: &Output, last: bool) {
        let sent = output.sent();
        let store = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        store(&self.stats.records_out, sent.records.saturating_add(chain.records_written()));
        store(&self.stats.bytes_out, sent.bytes.saturating_add(chain.bytes_written()));
        self.stats.refresh_counters(chain, last);
    }
}

/// CPU time the calling thread has used. Measured by the kernel per thread, so a
/// task's figure is its own work, not an estimate from wall time.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One subtask of a chain, ready to run.
pub struct Task {
    /// "chain name (i/p)", for logs.
    pub name: String,
    /// Its records' origin.
    pub head: Head,
    /// Its operators.
    pub chain: Chain,
    /// Its downstream channels.
    pub output: Output,
    /// Cancellation and stop flags of the job.
    pub signals: Arc<JobSignals>,
    /// Its progress, readable while it runs.
    pub live: Arc<LiveCounts>,
    /// Its part in checkpoints.
    pub checkpoints: TaskCheckpoints,
    /// The uid under which a source's position is snapshotted.
    pub source_uid: String,
    /// Restored from a final checkpoint: its input had ended and its sinks
    /// were committing. It runs no input and emits nothing (its operators
    /// saw their end already); restoring its sinks finished their commit.
    pub restored_at_end: bool,
}

/// What a source calls to hand over its records; the task loop drives its
/// chain through the same calls.
pub struct SourceContext<'a> {
    chain: &'a mut Chain,
    output: &'a mut Output,
    signals: &'a JobSignals,
    live: &'a LiveCounts,
    checkpoints: &'a mut TaskCheckpoints,
    /// The source's uid, naming its position in snapshots.
    uid: &'a str,
}

/// The wall clock in epoch milliseconds: processing time.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl SourceContext<'_> {
    /// Tells how far the source is: `read` bytes of its `size` (both over all its splits).
    pub fn progress(&self, read: u64, size: u64) {
        self.live.stats.input.0.store(read, Ordering::Relaxed);
        self.live.stats.input.1.store(size.saturating_add(1), Ordering::Relaxed);
    }

    /// Pushes a batch of `records` records through the chain.
    pub fn emit(&mut self, batch: Vec<u8>, records: u64) -> Result<(), TaskError> {
        self.live.records_in.fetch_add(records, Ordering::Relaxed);
        self.live.bytes_in.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.process(batch)
    }

    /// Like [`SourceContext::emit`], for a source that reads several splits
    /// (Kafka partitions): the batch holds records of split `split` only, so
    /// that a timestamp assigner keeps one watermark per split.
    pub fn emit_split(&mut self, batch: Vec<u8>, records: u64, split: u32) -> Result<(), TaskError> {
        self.chain.input_split(split);
        self.emit(batch, records)
    }

    /// The splits the source still reads (by the ids it gives `emit_split`):
    /// the watermark is the minimum over these only.
    pub fn active_splits(&mut self, splits: &[u32]) {
        self.chain.active_splits(splits);
    }

    /// The id of the last checkpoint this source took part in (0: none).
    pub fn last_checkpoint(&self) -> u64 {
        self.checkpoints.injected()
    }

    /// The newest checkpoint that completed on every task.
    pub fn completed_checkpoint(&self) -> u64 {
        self.signals.checkpoint_committed.load(Ordering::Acquire)
    }

    /// Runs a batch through the chain and writes what comes out.
    fn process(&mut self, batch: Vec<u8>) -> Result<(), TaskError> {
        let out = self.chain.process(batch)?;
        self.deliver(out)?;
        self.fire_timers()?;
        self.output.flush_if_due(self.signals)?;
        self.checkpoints.notify(self.chain, self.signals)
    }

    /// Writes the chain's records, then the progress it generated (a watermark
    /// or idleness follows the records it is about).
    fn deliver(&mut self, out: Vec<u8>) -> Result<(), TaskError> {
        self.live.records_out.store(self.chain.records_written(), Ordering::Relaxed);
        self.live.bytes_out.store(self.chain.bytes_written(), Ordering::Relaxed);
        self.live.sample_cpu();
        self.output.write(&out, self.signals)?;
        let result = match self.chain.take_progress() {
            Some(Progress::Watermark(wm)) => self.watermark(wm),
            Some(Progress::Idle) => self.output.broadcast(Event::Idle, self.signals),
            None => Ok(()),
        };
        self.live.publish(&*self.chain, &*self.output, false);
        result
    }

    /// Sends a watermark downstream and shows it in the statistics.
    fn watermark(&mut self, wm: i64) -> Result<(), TaskError> {
        self.live.stats.watermark.store(wm, Ordering::Relaxed);
        self.output.broadcast(Event::Watermark(wm), self.signals)
    }

    /// Runs the chain's processing-time hooks that are due.
    fn fire_timers(&mut self) -> Result<(), TaskError> {
        if let Some(due) = self.chain.next_timer() {
            let now = now_ms();
            if due <= now {
                let out = self.chain.on_processing_time(now)?;
                self.deliver(out)?;
            }
        }
        Ok(())
    }

    /// How long the task may wait for input: until the buffer timeout or the next timer.
    fn wait(&self) -> Duration {
        let timer = self.chain.next_timer().map_or(Duration::MAX, |t| Duration::from_millis((t - now_ms()).max(0) as u64));
        self.output.until_flush().min(timer)
    }

    /// Lets buffered output go when the buffer timeout passed, and runs due timers.
    pub fn idle(&mut self) -> Result<(), TaskError> {
        self.live.sample_cpu();
        if self.signals.cancelled() {
            return Err(TaskError::Cancelled);
        }
        self.fire_timers()?;
        self.output.flush_if_due(self.signals)?;
        self.checkpoints.notify(self.chain, self.signals)
    }

    /// Takes a checkpoint if one was triggered, with `position` (the
    /// source's state after what it emitted so far). Call it between
    /// batches; returns false when the source must end now, undrained
    /// (it passed a stop-with-savepoint barrier).
    pub fn checkpoint(&mut self, position: impl FnOnce() -> Vec<Vec<u8>>) -> Result<bool, TaskError> {
        if let Some(barrier) = self.checkpoints.due(self.signals) {
            let source = Some((self.uid.to_string(), position()));
            self.checkpoints.snapshot(barrier, self.chain, self.output, self.signals, source)?;
        }
        Ok(self.checkpoints.stopped.is_none())
    }

    /// Whether the source should end now.
    pub fn should_stop(&self) -> bool {
        self.signals.stopping() || self.checkpoints.stopped.is_some()
    }

    /// The buffer timeout, which bounds how long a source may block.
    pub fn buffer_timeout(&self) -> Duration {
        self.output.buffer_timeout()
    }
}

impl Task {
    /// Runs the task to the end of its input.
    pub fn run(mut self) -> Result<TaskMetrics, TaskError> {
        let mut metrics = TaskMetrics::default();
        let mut ctx = SourceContext {
            chain: &mut self.chain,
            output: &mut self.output,
            signals: &self.signals,
            live: &self.live,
            checkpoints: &mut self.checkpoints,
            uid: &self.source_uid,
        };
        if let Head::Input(gate) = &self.head {
            self.live.stats.capacity.store(gate.capacity() as u64, Ordering::Relaxed);
        }
        match &mut self.head {
            _ if self.restored_at_end => {}
            Head::Source(source) => source.run(&mut ctx)?,
            Head::Input(gate) => loop {
                let event = gate.next(ctx.wait(), ctx.signals)?;
                let stats = &ctx.live.stats;
                stats.idle_ns.store(gate.waited_ns(), Ordering::Relaxed);
                stats.queued.store(gate.queued() as u64, Ordering::Relaxed);
                match event {
                    GateEvent::Timeout => ctx.idle()?,
                    GateEvent::Data(batch) => {
                        stats.records_in.fetch_add(crate::framing::count(&batch), Ordering::Relaxed);
                        stats.bytes_in.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        ctx.process(batch)?
                    }
                    GateEvent::Watermark(wm) => {
                        let out = ctx.chain.watermark(wm)?;
                        ctx.deliver(out)?;
                        ctx.watermark(wm)?;
                        ctx.fire_timers()?;
                    }
                    GateEvent::Idle => ctx.output.broadcast(Event::Idle, ctx.signals)?,
                    GateEvent::Barrier(barrier) => {
                        ctx.checkpoints.snapshot(barrier, ctx.chain, ctx.output, ctx.signals, None)?;
                        if barrier.stop {
                            break;
                        }
                    }
                    GateEvent::End => break,
                }
            },
        }
        // After a stop-with-savepoint the job ends undrained: no final watermark, no final results.
        if self.checkpoints.stopped.is_none() && !self.restored_at_end {
            self.end_of_input(i64::MAX)?;
        }
        let source = matches!(self.head, Head::Source(_)).then_some(self.source_uid.as_str());
        self.checkpoints.finish(&mut self.chain, &self.signals, source)?;
        self.live.records_out.store(self.chain.records_written(), Ordering::Relaxed);
        self.live.bytes_out.store(self.chain.bytes_written(), Ordering::Relaxed);
        self.live.sample_cpu();
        self.live.publish(&self.chain, &self.output, true);
        (metrics.records_in, metrics.records_out) = self.live.get();
        metrics.counters = self.chain.counters();
        Ok(metrics)
    }

    /// Final watermark, the chain's last records, then end-of-stream downstream.
    fn end_of_input(&mut self, watermark: i64) -> Result<(), TaskError> {
        let out = self.chain.watermark(watermark)?;
        self.output.write(&out, &self.signals)?;
        let out = self.chain.finish()?;
        self.output.write(&out, &self.signals)?;
        self.output.broadcast(Event::Watermark(watermark), &self.signals)?;
        self.output.broadcast(Event::End, &self.signals)?;
        Ok(())
    }
}
