//! A task's output: per downstream channel a buffer, filled by the edge's
//! partitioning and sent when it is full or the buffer timeout passed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, JobSignals, Sender, TaskError};
use crate::framing;
use crate::keys;
use crate::runtime::Partitioning;

/// A buffer is sent once it holds this many bytes.
pub const FLUSH_BYTES: usize = 32 * 1024;

/// One outgoing edge of a task: its routing and a buffer per target subtask.
pub struct OutputEdge {
    /// How records choose a target.
    partitioning: Partitioning,
    /// One sender per target subtask (a single one for forward edges).
    targets: Vec<Sender>,
    /// Records waiting for each target.
    buffers: Vec<Vec<u8>>,
    /// Number of key groups, for hash routing.
    max_parallelism: u32,
    /// Next target of round-robin routing.
    next: usize,
    /// Name of the operator writing, for errors about its records.
    operator: String,
    /// Carries the side output (late records of a window) instead of the main output.
    side_output: bool,
}

impl OutputEdge {
    /// An edge to `targets` (for a forward edge, just the matching subtask);
    /// `side_output` edges carry the records the operator flags as side output.
    pub fn new(
        partitioning: Partitioning,
        targets: Vec<Sender>,
        max_parallelism: u32,
        operator: String,
        side_output: bool,
    ) -> Self {
        let buffers = targets.iter().map(|_| Vec::new()).collect();
        OutputEdge { partitioning, targets, buffers, max_parallelism, next: 0, operator, side_output }
    }

    /// Routes the batch's records into the buffers; answers how many records it
    /// held (counted while routing, or by hopping over their headers).
    fn route(&mut self, batch: &[u8]) -> Result<u64, TaskError> {
        let framing_err = |source| TaskError::Framing { operator: self.operator.clone(), source };
        let mut n = 0u64;
        match self.partitioning {
            Partitioning::Forward => {
                self.buffers[0].extend_from_slice(batch);
                n = framing::count(batch);
            }
            Partitioning::Broadcast => {
                self.buffers.iter_mut().for_each(|b| b.extend_from_slice(batch));
                n = framing::count(batch);
            }
            Partitioning::Rebalance => {
                for record in framing::records(batch) {
                    let record = record.map_err(framing_err)?;
                    self.buffers[self.next].extend_from_slice(record.raw);
                    self.next = (self.next + 1) % self.buffers.len();
                    n += 1;
                }
            }
            Partitioning::Hash => {
                let p = self.buffers.len() as u32;
                for record in framing::records(batch) {
                    let record = record.map_err(framing_err)?;
                    let Some(key) = record.key else {
                        return Err(TaskError::Record {
                            operator: self.operator.clone(),
                            message: "emitted a record without a key onto a keyed edge".into(),
                        });
                    };
                    let group = keys::key_group(key, self.max_parallelism);
                    let target = keys::subtask_for_key_group(group, p, self.max_parallelism) as usize;
                    self.buffers[target].extend_from_slice(record.raw);
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

/// All outgoing edges of a task.
pub struct Output {
    edges: Vec<OutputEdge>,
    /// Longest time a record waits in a buffer.
    buffer_timeout: Duration,
    /// When the buffers were last sent.
    last_flush: Instant,
    /// Whether some edge carries the side output: only then are batches split.
    splits: bool,
    /// What it sent, for the task's statistics.
    sent: Sent,
    /// Time spent in sends: a send into a full channel blocks until the
    /// consumer takes something (back-pressure). Shared with the statistics,
    /// which read a block while it lasts.
    blocked: Arc<BlockClock>,
}

/// What an output sent so far.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Records written to it (once each, whatever the fan-out).
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Time a task spent blocked in sends, readable from another thread while a
/// block lasts: a consumer that takes a batch every ten seconds shows as
/// back-pressure at once, not when the send returns.
#[derive(Debug)]
pub struct BlockClock {
    /// Its times are nanoseconds since this.
    origin: Instant,
    /// Blocked time of the sends that returned.
    total_ns: AtomicU64,
    /// When the send in progress began (+1, so that 0 means none).
    since_ns: AtomicU64,
}

impl Default for BlockClock {
    fn default() -> Self {
        BlockClock { origin: Instant::now(), total_ns: AtomicU64::new(0), since_ns: AtomicU64::new(0) }
    }
}

impl BlockClock {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64 + 1
    }

    fn start(&self) {
        self.since_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    fn stop(&self) {
        let since = self.since_ns.swap(0, Ordering::Relaxed);
        if since != 0 {
            self.total_ns.fetch_add(self.now_ns().saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// Time blocked so far, the send in progress included.
    pub fn blocked_ns(&self) -> u64 {
        let since = self.since_ns.load(Ordering::Relaxed);
        let current = if since == 0 { 0 } else { self.now_ns().saturating_sub(since) };
        self.total_ns.load(Ordering::Relaxed).saturating_add(current)
    }
}

/// Sends `event` to `target`, on the clock of blocked time.
fn timed_send(target: &mut Sender, event: Event, signals: &JobSignals, blocked: &BlockClock) -> Result<(), TaskError> {
    blocked.start();
    let result = target.send(event, signals);
    blocked.stop();
    result
}

impl Output {
    /// An output over `edges` that flushes at least every `buffer_timeout`.
    pub fn new(edges: Vec<OutputEdge>, buffer_timeout: Duration) -> Self {
        let splits = edges.iter().any(|e| e.side_output);
        Output { edges, buffer_timeout, last_flush: Instant::now(), splits, sent: Sent::default(), blocked: Arc::default() }
    }

    /// The clock of its blocked time, for the task's statistics.
    pub fn blocked(&self) -> Arc<BlockClock> {
        self.blocked.clone()
    }

    /// What it sent so far.
    pub fn sent(&self) -> Sent {
        self.sent
    }

    /// The buffer timeout.
    pub fn buffer_timeout(&self) -> Duration {
        self.buffer_timeout
    }

    /// Routes a batch into the buffers, sending those that are full.
    pub fn write(&mut self, batch: &[u8], signals: &JobSignals) -> Result<(), TaskError> {
        if batch.is_empty() || self.edges.is_empty() {
            return Ok(());
        }
        self.sent.bytes += batch.len() as u64;
        let split;
        let (main, side) = if self.splits {
            split = self.split(batch)?;
            (&split.0[..], &split.1[..])
        } else {
            (batch, &[][..])
        };
        // A record counts once, however many edges it goes to; side-output records too.
        let (mut main_records, mut side_records) = (None, None);
        for edge in &mut self.edges {
            let n = edge.route(if edge.side_output { side } else { main })?;
            let seen = if edge.side_output { &mut side_records } else { &mut main_records };
            seen.get_or_insert(n);
            for (buf, target) in edge.buffers.iter_mut().zip(&mut edge.targets) {
                if buf.len() >= FLUSH_BYTES {
                    timed_send(target, Event::Data(std::mem::take(buf)), signals, &self.blocked)?;
                }
            }
        }
        self.sent.records += main_records.unwrap_or(0) + side_records.unwrap_or(0);
        Ok(())
    }

    /// Main-output and side-output records of `batch`, the latter unflagged.
    fn split(&self, batch: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TaskError> {
        let (mut main, mut side) = (Vec::with_capacity(batch.len()), Vec::new());
        for record in framing::records(batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: self.edges[0].operator.clone(), source })?;
            if record.side_output {
                framing::push_flagged(&mut side, &record, false);
            } else {
                main.extend_from_slice(record.raw);
            }
        }
        Ok((main, side))
    }

    /// Time left until the buffer timeout asks for a flush.
    pub fn until_flush(&self) -> Duration {
        self.buffer_timeout.saturating_sub(self.last_flush.elapsed())
    }

    /// Sends every non-empty buffer if the buffer timeout passed.
    pub fn flush_if_due(&mut self, signals: &JobSignals) -> Result<(), TaskError> {
        if self.last_flush.elapsed() >= self.buffer_timeout {
            self.flush(signals)?;
        }
        Ok(())
    }

    /// Sends every non-empty buffer.
    pub fn flush(&mut self, signals: &JobSignals) -> Result<(), TaskError> {
        for edge in &mut self.edges {
            for (buf, target) in edge.buffers.iter_mut().zip(&mut edge.targets) {
                if !buf.is_empty() {
                    timed_send(target, Event::Data(std::mem::take(buf)), signals, &self.blocked)?;
                }
            }
        }
        self.last_flush = Instant::now();
        Ok(())
    }

    /// Flushes, then sends a control event to every target.
    pub fn broadcast(&mut self, event: Event, signals: &JobSignals) -> Result<(), TaskError> {
        self.flush(signals)?;
        for edge in &mut self.edges {
            for target in &mut edge.targets {
                timed_send(target, event.clone(), signals, &self.blocked)?;
            }
        }
        Ok(())
    }
}
