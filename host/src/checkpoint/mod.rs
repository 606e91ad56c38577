//! Checkpoints: consistent snapshots of a running job (Chandy-Lamport style
//! barriers, as in Carbone et al. 2015), their storage, and restoring from them.

/// The state an operator hands to a snapshot, and gets back on restore.
///
/// Keyed entries are redistributed by key group when a job resumes at another
/// parallelism; items (source splits, pending sink files) are spread round
/// robin over the new subtasks; broadcast state is copied whole to each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OperatorState {
    /// `(key, the operator's encoding of that key's state)`.
    pub keyed: Vec<(Vec<u8>, Vec<u8>)>,
    /// Operator-wide entries, not tied to a key.
    pub items: Vec<Vec<u8>>,
    /// The subtask's copy of its broadcast state, in the encoding of `keyed`: every
    /// subtask of a restored job gets one subtask's copy whole.
    pub broadcast: Vec<(Vec<u8>, Vec<u8>)>,
}

impl OperatorState {
    /// Whether there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.items.is_empty() && self.broadcast.is_empty()
    }
}

pub mod coordinator;
pub mod objects;
pub mod snapshot;
pub mod storage;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use coordinator::{Completed, Coordinator, SavepointRequest};
pub use storage::{CheckpointStorage, DirStorage, Restored, RestoreError, TaskHandle};

/// The id of the end-of-input commit (Flink's final checkpoint): each task
/// acknowledges it once its input ended, and when every task has, sinks
/// commit what they still hold. Until then a failure anywhere replays from
/// the last checkpoint without duplicating a sink's last records.
pub const FINAL_CHECKPOINT: u64 = u64::MAX;

/// The marker a checkpoint sends through the dataflow: a task snapshots
/// when it has received it on every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    /// Checkpoint id, increasing.
    pub id: u64,
    /// A stop-with-savepoint: after it, tasks end without draining their input.
    pub stop: bool,
}

/// Whether barriers are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Channels that delivered the barrier wait for the others: each record
    /// is in the state exactly once.
    #[default]
    ExactlyOnce,
    /// No waiting: after a restore, records that passed a barrier early are
    /// counted again.
    AtLeastOnce,
}

/// Checkpoint settings of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// Time between periodic checkpoints; none: only savepoints.
    pub interval: Option<Duration>,
    /// Barrier alignment.
    pub mode: Mode,
    /// Completed periodic checkpoints to keep.
    pub retained: usize,
    /// A checkpoint not complete after this long is abandoned.
    pub timeout: Duration,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig { interval: None, mode: Mode::ExactlyOnce, retained: 1, timeout: coordinator::DEFAULT_TIMEOUT }
    }
}
