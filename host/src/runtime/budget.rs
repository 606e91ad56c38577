//! What one job may make this process hold or do, summed over all of its
//! subtasks here: many tenants' jobs share a TaskManager, and a job that
//! could grow the host's memory or log without bound could take it down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::SandboxConfig;
use crate::task::JobSignals;

/// A guest asked for more than its job's quota; the call traps with this.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuotaError {
    /// Keyed state (value, list, map state, timers, window buffers) past `state_bytes`.
    #[error("keyed state quota exceeded: the job keeps {limit} bytes at most, and this write would make it {asked}")]
    StateBytes {
        /// The quota.
        limit: u64,
        /// What the job would keep after the write.
        asked: u64,
    },
    /// More timers in one subtask than `timers_per_subtask`.
    #[error("timer quota exceeded: a subtask keeps {limit} timers at most, and this registration would make it {asked}")]
    Timers {
        /// The quota.
        limit: u64,
        /// The timers the subtask would keep.
        asked: u64,
    },
    /// More distinct counter names than `counters`.
    #[error("counter quota exceeded: the job keeps {limit} counters at most, and a new counter would make it {asked}")]
    Counters {
        /// The quota.
        limit: u64,
        /// The counters the job would keep.
        asked: u64,
    },
    /// A counter name longer than [`MAX_COUNTER_NAME`].
    #[error("counter name of {0} bytes is longer than {MAX_COUNTER_NAME} bytes")]
    CounterName(usize),
}

/// Longest counter name: names are kept and printed, so each must be small.
pub const MAX_COUNTER_NAME: usize = 256;

/// How often a job's dropped log lines are reported while it keeps dropping.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Guest log lines a job keeps here until the next heartbeat takes them; past
/// that the oldest go (counted as dropped), so a JobManager that stops asking
/// costs a bounded amount of memory.
pub const KEPT_LOG_LINES: usize = 256;

/// Longest guest log message kept for the JobManager, in bytes; longer ones are cut.
pub const KEPT_LOG_MESSAGE: usize = 4096;

/// A guest's log line, kept for `eddy logs` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestLine {
    /// When it was logged, in ms since the epoch.
    pub at_ms: u64,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The task (chain) and subtask that logged it.
    pub task: usize,
    /// Its subtask.
    pub subtask: u32,
    /// The operator.
    pub operator: String,
    /// What it said (at most [`KEPT_LOG_MESSAGE`] bytes).
    pub message: String,
}

/// What a job logged here since it was last asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestLogs {
    /// The lines, oldest first.
    pub lines: Vec<GuestLine>,
    /// Lines dropped meanwhile: over the job's log rate, or not taken in time.
    pub dropped: u64,
}

/// The quotas of one job in this process and what it uses of them. One per
/// job (and attempt) per process, shared by all of its instances.
pub struct JobBudget {
    config: SandboxConfig,
    /// The job, in the log line about dropped guest output.
    job: String,
    /// Its cancel flag, which interrupts running guest calls.
    signals: Option<Arc<JobSignals>>,
    /// Keyed state bytes held by all of its subtasks here.
    state_bytes: AtomicU64,
    /// Distinct counter names, kept only while they are bounded.
    counters: Mutex<HashSet<Box<str>>>,
    log: Mutex<LogBucket>,
    /// Admitted guest lines not yet taken by a heartbeat, and the drops since.
    kept: Mutex<GuestLogs>,
}

/// A token bucket of log bytes holding at most one second's worth.
struct LogBucket {
    tokens: u64,
    refilled: Instant,
    dropped_lines: u64,
    dropped_bytes: u64,
    reported: Instant,
}

impl JobBudget {
    /// The budget of job `job` under `config`; `signals` lets a cancel interrupt its guests.
    pub fn new(config: SandboxConfig, job: &str, signals: Option<Arc<JobSignals>>) -> Arc<Self> {
        let now = Instant::now();
        let tokens = config.log_bytes_per_second.unwrap_or(0);
        let log = LogBucket { tokens, refilled: now, dropped_lines: 0, dropped_bytes: 0, reported: now };
        Arc::new(JobBudget {
            config,
            job: job.into(),
            signals,
            state_bytes: AtomicU64::new(0),
            counters: Mutex::new(HashSet::new()),
            log: Mutex::new(log),
            kept: Mutex::new(GuestLogs::default()),
        })
    }

    /// The limits of the job's instances.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Whether the job is being cancelled, so that its guests should stop now.
    pub fn cancelled(&self) -> bool {
        self.signals.as_ref().is_some_and(|s| s.cancelled())
    }

    /// Keyed state bytes the job holds in this process now.
    pub fn state_bytes(&self) -> u64 {
        self.state_bytes.load(Ordering::Relaxed)
    }

    /// Replaces `old` held bytes by `new`, unless that passes the quota.
    fn resize_state(&self, old: u64, new: u64) -> Result<(), QuotaError> {
        let limit = self.config.state_bytes.unwrap_or(u64::MAX);
        let mut asked = 0;
        let r = self.state_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            asked = held.saturating_sub(old).saturating_add(new);
            (new <= old || asked <= limit).then_some(asked)
        });
        r.map(|_| ()).map_err(|_| QuotaError::StateBytes { limit, asked })
    }

    /// Admits counter `name` of an instance that did not use it before.
    pub(crate) fn admit_counter(&self, name: &str) -> Result<(), QuotaError> {
        if name.len() > MAX_COUNTER_NAME {
            return Err(QuotaError::CounterName(name.len()));
        }
        let Some(limit) = self.config.counters else { return Ok(()) };
        let mut names = self.counters.lock().unwrap();
        if names.contains(name) {
            return Ok(());
        }
        if names.len() as u64 >= limit {
            return Err(QuotaError::Counters { limit, asked: names.len() as u64 + 1 });
        }
        names.insert(name.into());
        Ok(())
    }

    /// Whether a guest log line of `bytes` may be logged; one that may not is
    /// counted as dropped, and the drops are reported now and then.
    pub(crate) fn admit_log(&self, bytes: usize) -> bool {
        let Some(rate) = self.config.log_bytes_per_second else { return true };
        let cost = bytes as u64 + 1;
        let mut b = self.log.lock().unwrap();
        let now = Instant::now();
        let earned = (now - b.refilled).as_nanos().saturating_mul(rate as u128) / 1_000_000_000;
        if earned > 0 {
            b.tokens = (b.tokens as u128 + earned).min(rate as u128) as u64;
            b.refilled = now;
        }
        if b.tokens >= cost {
            b.tokens -= cost;
            return true;
        }
        b.dropped_lines += 1;
        b.dropped_bytes += cost;
        if now - b.reported >= DROP_REPORT_EVERY {
            report_drops(&self.job, &mut b, rate);
            b.reported = now;
        }
        drop(b);
        let mut kept = self.kept.lock().unwrap();
        kept.dropped = kept.dropped.saturating_add(1);
        false
    }

    /// Keeps an admitted guest line for the JobManager, cut to [`KEPT_LOG_MESSAGE`] bytes.
    pub(crate) fn keep_log(&self, mut line: GuestLine) {
        cut_at_char(&mut line.message, KEPT_LOG_MESSAGE);
        let mut kept = self.kept.lock().unwrap();
        if kept.lines.len() >= KEPT_LOG_LINES {
            kept.lines.remove(0);
            kept.dropped = kept.dropped.saturating_add(1);
        }
        kept.lines.push(line);
    }

    /// Takes what the job logged since the last call, oldest first, up to `max_bytes` of
    /// messages (at least one line); the rest waits for the next call. `None` if nothing.
    pub fn take_logs(&self, max_bytes: usize) -> Option<GuestLogs> {
        let mut kept = self.kept.lock().unwrap();
        if kept.lines.is_empty() && kept.dropped == 0 {
            return None;
        }
        let mut bytes = 0;
        let n = kept.lines.iter().take_while(|l| {
            bytes += l.message.len() + l.operator.len();
            bytes <= max_bytes
        });
        let n = n.count().max(1).min(kept.lines.len());
        let lines = kept.lines.drain(..n).collect();
        Some(GuestLogs { lines, dropped: std::mem::take(&mut kept.dropped) })
    }

}

/// Cuts `text` to at most `most` bytes, at a character boundary.
pub fn cut_at_char(text: &mut String, most: usize) {
    if text.len() > most {
        let mut end = most;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

fn report_drops(job: &str, b: &mut LogBucket, rate: u64) {
    if b.dropped_lines > 0 {
        tracing::warn!(
            "job {job}: dropped {} guest log lines ({} bytes) over its log rate of {rate} bytes/s",
            b.dropped_lines,
            b.dropped_bytes
        );
    }
    (b.dropped_lines, b.dropped_bytes) = (0, 0);
}

impl Drop for JobBudget {
    /// The last instance of the job is gone: report what was dropped since the last report.
    fn drop(&mut self) {
        if let (Some(rate), Ok(b)) = (self.config.log_bytes_per_second, self.log.get_mut()) {
            report_drops(&self.job, b, rate);
        }
    }
}

/// The keyed state bytes one holder (a subtask's state, timers, window
/// buffers) charged to its job; given back when the holder goes.
#[derive(Default)]
pub struct Charge {
    /// None when state is unbounded: nothing is counted then.
    budget: Option<Arc<JobBudget>>,
    held: u64,
}

impl Charge {
    /// Charges to `budget`'s state quota, if it has one.
    pub fn new(budget: Option<&Arc<JobBudget>>) -> Self {
        Charge { budget: budget.filter(|b| b.config.state_bytes.is_some()).cloned(), held: 0 }
    }

    /// Whether sizes must be computed at all.
    pub fn active(&self) -> bool {
        self.budget.is_some()
    }

    /// Replaces an item of `old` bytes by one of `new` bytes, unless the job's quota forbids it.
    pub fn resize(&mut self, old: u64, new: u64) -> Result<(), QuotaError> {
        let Some(b) = &self.budget else { return Ok(()) };
        let old = old.min(self.held);
        b.resize_state(old, new)?;
        self.held = self.held - old + new;
        Ok(())
    }

    /// Gives back `bytes` of an item that is gone.
    pub fn release(&mut self, bytes: u64) {
        let _ = self.resize(bytes, 0);
    }

    /// Gives back everything: the holder forgot all its items.
    pub fn clear(&mut self) {
        let held = self.held;
        self.release(held);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(state: Option<u64>) -> Arc<JobBudget> {
        JobBudget::new(SandboxConfig { state_bytes: state, log_bytes_per_second: Some(100), counters: Some(2), ..SandboxConfig::default() }, "j", None)
    }

    #[test]
    fn charges_are_shared_by_the_job_and_given_back() {
        let b = budget(Some(100));
        let (mut one, mut two) = (Charge::new(Some(&b)), Charge::new(Some(&b)));
        one.resize(0, 60).unwrap();
        assert_eq!(two.resize(0, 41), Err(QuotaError::StateBytes { limit: 100, asked: 101 }));
        two.resize(0, 40).unwrap();
        one.resize(60, 10).unwrap();
        assert_eq!(b.state_bytes(), 50);
        drop(one);
        assert_eq!(b.state_bytes(), 40);
        two.release(40);
        assert_eq!(b.state_bytes(), 0);
        assert!(!Charge::new(Some(&budget(None))).active());
    }

    #[test]
    fn counters_and_log_lines_are_bounded() {
        let b = budget(None);
        b.admit_counter("a").unwrap();
        b.admit_counter("b").unwrap();
        b.admit_counter("a").unwrap();
        assert_eq!(b.admit_counter("c"), Err(QuotaError::Counters { limit: 2, asked: 3 }));
        assert_eq!(b.admit_counter(&"n".repeat(300)), Err(QuotaError::CounterName(300)));
        assert!(b.admit_log(49) && b.admit_log(49));
        assert!(!b.admit_log(49), "a second's worth of bytes is spent");
        assert_eq!(b.log.lock().unwrap().dropped_bytes, 50);
    }

    #[test]
    fn kept_lines_are_bounded_cut_and_taken_within_a_byte_budget() {
        let b = budget(None);
        let line = |m: &str| GuestLine { at_ms: 0, level: "info".into(), task: 0, subtask: 0, operator: "op".into(), message: m.into() };
        for i in 0..KEPT_LOG_LINES + 4 {
            b.keep_log(line(&format!("{i:08}")));
        }
        b.keep_log(line(&"é".repeat(KEPT_LOG_MESSAGE)));
        assert!(!b.admit_log(1000), "over the rate");
        // 10 bytes a line: 3 lines fit in 30 bytes; the drops (5 kept lines pushed out, 1 over the rate) go with them.
        let first = b.take_logs(30).unwrap();
        assert_eq!(first.lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["00000005", "00000006", "00000007"]);
        assert_eq!(first.dropped, 6);
        let rest = b.take_logs(usize::MAX).unwrap();
        assert_eq!(rest.lines.len(), KEPT_LOG_LINES - 3);
        assert_eq!(rest.dropped, 0);
        let long = &rest.lines.last().unwrap().message;
        assert!(long.len() <= KEPT_LOG_MESSAGE && long.chars().all(|c| c == 'é'), "cut at a character");
        assert!(b.take_logs(usize::MAX).is_none());
    }
}
