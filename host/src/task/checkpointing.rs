//! A task's side of checkpoints: on a barrier (injected at a source, or
//! aligned at the input gate) the chain's operators hand over their state,
//! the barrier goes downstream at once, and the state is written to
//! checkpoint storage on another thread, which then acknowledges.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Chain, Event, JobSignals, Output, TaskError};
use crate::checkpoint::{Barrier, CheckpointStorage, OperatorState, TaskHandle, FINAL_CHECKPOINT};

/// A task's acknowledgement of a checkpoint, for the coordinator.
#[derive(Debug)]
pub struct TaskAck {
    /// The checkpoint.
    pub checkpoint: u64,
    /// The task's chain.
    pub chain: usize,
    /// Its subtask.
    pub subtask: u32,
    /// Its snapshot's handle, or why it could not be written.
    pub result: Result<TaskHandle, String>,
}

/// Where acknowledgements go: the embedded coordinator, or the JobManager.
pub type AckSink = Arc<dyn Fn(TaskAck) + Send + Sync>;

/// What tasks of a checkpointed job share.
#[derive(Clone)]
pub struct Checkpointing {
    /// Where snapshots are written.
    pub storage: Arc<dyn CheckpointStorage>,
    /// Who is told that a snapshot is written.
    pub acks: AckSink,
}

/// One task's checkpoint bookkeeping.
pub struct TaskCheckpoints {
    shared: Option<Checkpointing>,
    chain: usize,
    subtask: u32,
    /// The last barrier this task's source injected.
    injected: u64,
    /// The last completed checkpoint the chain was told of.
    committed: u64,
    /// The stop-with-savepoint barrier this task passed: it ends once that completes.
    pub stopped: Option<u64>,
    /// The last barrier this task passed (snapshotted and sent on), for its end snapshot:
    /// checkpoints up to it have a snapshot of this task of their own.
    passed: u64,
}

impl std::fmt::Debug for Checkpointing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointing").finish_non_exhaustive()
    }
}

impl TaskCheckpoints {
    /// Bookkeeping of subtask `subtask` of chain `chain`; `shared` is none
    /// when the job takes no checkpoints.
    pub fn new(shared: Option<Checkpointing>, chain: usize, subtask: u32) -> Self {
        TaskCheckpoints { shared, chain, subtask, injected: 0, committed: 0, stopped: None, passed: 0 }
    }

    /// The last barrier this task's source injected (0: none).
    pub fn injected(&self) -> u64 {
        self.injected
    }

    /// A barrier a source should inject now, if a checkpoint was triggered since the last.
    pub fn due(&mut self, signals: &JobSignals) -> Option<Barrier> {
        self.shared.as_ref()?;
        let id = signals.checkpoint_trigger.load(Ordering::Acquire);
        if id <= self.injected {
            return None;
        }
        self.injected = id;
        Some(Barrier { id, stop: signals.stop_checkpoint.load(Ordering::Acquire) == id })
    }

    /// Tells the chain about checkpoints completed since the last call (sinks commit).
    pub fn notify(&mut self, chain: &mut Chain, signals: &JobSignals) -> Result<(), TaskError> {
        let done = signals.checkpoint_committed.load(Ordering::Acquire);
        if done > self.committed {
            self.committed = done;
            chain.checkpoint_complete(done)?;
        }
        Ok(())
    }

    /// Snapshots the chain (plus a source's position), sends the barrier on,
    /// and writes the snapshot in the background.
    pub fn snapshot(
        &mut self,
        barrier: Barrier,
        chain: &mut Chain,
        output: &mut Output,
        signals: &JobSignals,
        source: Option<(String, Vec<Vec<u8>>)>,
    ) -> Result<(), TaskError> {
        let started = std::time::Instant::now();
        let (mut state, emitted) = chain.snapshot(barrier.id)?;
        if let Some((uid, items)) = source {
            state.push((uid, OperatorState { items, ..OperatorState::default() }));
        }
        output.write(&emitted, signals)?;
        output.broadcast(Event::Barrier(barrier), signals)?;
        self.passed = barrier.id;
        if barrier.stop {
            self.stopped = Some(barrier.id);
        }
        let Some(shared) = self.shared.clone() else { return Ok(()) };
        let (chain, subtask, id) = (self.chain, self.subtask, barrier.id);
        let sync_ms = started.elapsed().as_millis() as u64;
        std::thread::Builder::new()
            .name(format!("snapshot-{chain}-{subtask}"))
            .spawn(move || {
                let result = shared.storage.write_task(id, chain, subtask, &state).map(|h| TaskHandle { sync_ms, ..h }).map_err(|e| e.to_string());
                (shared.acks)(TaskAck { checkpoint: id, chain, subtask, result });
            })
            .map_err(|source| TaskError::Io { what: "cannot start a snapshot thread".into(), source })?;
        Ok(())
    }

    /// The task is done: after a stop-with-savepoint, waits until the
    /// savepoint completed (so that sinks commit what it covers); after the
    /// end of its input, writes its end snapshot (what its sinks still hold
    /// uncommitted, and `source`: the uid of a source with nothing left to
    /// read), acknowledges [`FINAL_CHECKPOINT`] with it and waits until every
    /// task did, then lets the sinks commit their last files.
    pub fn finish(&mut self, chain: &mut Chain, signals: &JobSignals, source: Option<&str>) -> Result<(), TaskError> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let id = match self.stopped {
            Some(id) => id,
            None => {
                let (mut state, emitted) = chain.snapshot(FINAL_CHECKPOINT)?;
                if !emitted.is_empty() {
                    tracing::warn!(chain = self.chain, subtask = self.subtask, "records emitted after the end of input were dropped");
                }
                if let Some(uid) = source {
                    state.push((uid.to_string(), OperatorState::default()));
                }
                let (chain, subtask) = (self.chain, self.subtask);
                let passed = self.passed;
                let result = shared.storage.write_task(FINAL_CHECKPOINT, chain, subtask, &state).map(|h| TaskHandle { passed, ..h }).map_err(|e| e.to_string());
                (shared.acks)(TaskAck { checkpoint: FINAL_CHECKPOINT, chain, subtask, result });
                FINAL_CHECKPOINT
            }
        };
        // A task that ended waits for the final commit, or for a stop-with-savepoint (which
        // took its end snapshot) to complete: the job ends there, and the final commit never comes.
        let stop = || match signals.stop_checkpoint.load(Ordering::Acquire) {
            0 => id,
            stop => stop.min(id),
        };
        while signals.checkpoint_committed.load(Ordering::Acquire) < stop() {
            if signals.cancelled() {
                return Err(TaskError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if id == FINAL_CHECKPOINT && signals.checkpoint_committed.load(Ordering::Acquire) < FINAL_CHECKPOINT {
            // Released by a stop-with-savepoint, which holds this end snapshot: its sinks
            // commit their last files now, as a restore from that savepoint would.
            self.committed = FINAL_CHECKPOINT;
            return chain.checkpoint_complete(FINAL_CHECKPOINT);
        }
        self.notify(chain, signals)
    }
}
