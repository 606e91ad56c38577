//! What the sandboxes of this process do, summed over every job: the
//! TaskManager's `/metrics` shows these (`docs/metrics.md`). Process-wide
//! counters, because they describe the process: one runtime serves all of a
//! TaskManager's jobs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live and cumulative sandbox figures of this process.
pub(crate) struct Figures {
    /// Instances alive now (operator chains and planners).
    pub instances: AtomicU64,
    /// Linear memory those instances hold now, in bytes.
    pub linear_memory: AtomicU64,
    /// Calls into guests so far.
    pub calls: AtomicU64,
    /// Calls that ended in a trap: a guest fault, a deadline, a memory or quota limit.
    pub traps: AtomicU64,
    /// Components compiled from their bytes.
    pub compiled: AtomicU64,
    /// Loads answered by a component compiled before in this process.
    pub memory_hits: AtomicU64,
    /// Loads answered by compiled code from the disk cache.
    pub disk_hits: AtomicU64,
}

pub(crate) static FIGURES: Figures = Figures {
    instances: AtomicU64::new(0),
    linear_memory: AtomicU64::new(0),
    calls: AtomicU64::new(0),
    traps: AtomicU64::new(0),
    compiled: AtomicU64::new(0),
    memory_hits: AtomicU64::new(0),
    disk_hits: AtomicU64::new(0),
};

/// A reading of the figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxFigures {
    /// Instances alive now.
    pub instances: u64,
    /// Their linear memory now, in bytes.
    pub linear_memory_bytes: u64,
    /// Guest calls so far.
    pub calls: u64,
    /// Guest calls that trapped.
    pub traps: u64,
    /// Components compiled.
    pub compiled: u64,
    /// Loads of a component compiled before in this process.
    pub memory_cache_hits: u64,
    /// Loads from the disk cache of compiled code.
    pub disk_cache_hits: u64,
}

/// The figures now.
pub fn sandbox_figures() -> SandboxFigures {
    let f = &FIGURES;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    SandboxFigures {
        instances: get(&f.instances),
        linear_memory_bytes: get(&f.linear_memory),
        calls: get(&f.calls),
        traps: get(&f.traps),
        compiled: get(&f.compiled),
        memory_cache_hits: get(&f.memory_hits),
        disk_cache_hits: get(&f.disk_hits),
    }
}

/// Adds one to a counter.
pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}
