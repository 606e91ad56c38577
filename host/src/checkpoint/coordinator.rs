//! The checkpoint coordinator of one job (it lives in the JobManager, or in
//! the embedded cluster): decides when to inject barriers, collects the
//! tasks' acknowledgements, completes checkpoints, and keeps the last few.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::storage::{self, CheckpointStorage, DirStorage, Metadata, TaskHandle};
use super::{Barrier, CheckpointConfig, FINAL_CHECKPOINT};

/// Called once a requested savepoint completed (its location) or failed (why).
pub type SavepointReply = Box<dyn FnOnce(Result<PathBuf, String>) + Send>;

/// A savepoint asked for by a user.
pub struct SavepointRequest {
    /// Directory to move it to; none keeps it in the job's checkpoint directory.
    pub target: Option<PathBuf>,
    /// End the job once it completed (stop with savepoint).
    pub stop: bool,
    /// Who waits for it.
    pub reply: SavepointReply,
}

struct Pending {
    barrier: Barrier,
    started: Instant,
    request: Option<SavepointRequest>,
    /// Tasks that have not acknowledged yet.
    awaiting: BTreeSet<(usize, u32)>,
    handles: Vec<TaskHandle>,
}

/// One checkpoint as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckpointStats {
    /// Its id.
    pub id: u64,
    /// `checkpoint` or `savepoint`.
    pub kind: &'static str,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub status: &'static str,
    /// From trigger to completion.
    pub duration_ms: u64,
    /// Size of the task files.
    pub state_bytes: u64,
    /// The longest time a task stopped processing for it (the synchronous part).
    pub sync_ms: u64,
    /// Where it is, once completed.
    pub location: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
}

/// A checkpoint that just completed: tell the tasks so that sinks commit.
#[derive(Debug, Clone)]
pub struct Completed {
    /// Its barrier.
    pub barrier: Barrier,
    /// Where it is.
    pub location: PathBuf,
}

/// The coordinator of one job.
pub struct Coordinator {
    job: String,
    config: CheckpointConfig,
    storage: DirStorage,
    max_parallelism: u32,
    /// Every subtask of the job: each must acknowledge.
    tasks: Vec<(usize, u32)>,
    next_id: u64,
    pending: Option<Pending>,
    /// Savepoints asked for while another checkpoint was in flight.
    queued: VecDeque<SavepointRequest>,
    last_trigger: Instant,
    /// Periodic checkpoints kept (oldest first), at most `config.retained`.
    retained: VecDeque<u64>,
    /// What a restart resumes from: the latest completed checkpoint or savepoint.
    latest: Option<PathBuf>,
    /// Once a subtask finished, barriers can no longer reach every task.
    finished_tasks: bool,
    /// Recent checkpoints for the API, newest last.
    history: VecDeque<CheckpointStats>,
    completed_count: u64,
    failed_count: u64,
    /// Tasks whose input ended (they acknowledged [`FINAL_CHECKPOINT`]).
    at_end: BTreeSet<(usize, u32)>,
}

const HISTORY: usize = 20;

impl Coordinator {
    /// The coordinator of `job`, storing under `storage`; `restored_from`
    /// is the checkpoint the job started from (ids continue after it).
    pub fn new(
        job: &str,
        config: CheckpointConfig,
        storage: DirStorage,
        tasks: Vec<(usize, u32)>,
        max_parallelism: u32,
        restored_from: Option<(u64, PathBuf)>,
    ) -> Self {
        let (next_id, latest) = match restored_from {
            Some((id, path)) => (id + 1, Some(path)),
            None => (1, None),
        };
        Coordinator {
            job: job.into(),
            config,
            storage,
            max_parallelism,
            tasks,
            next_id,
            pending: None,
            queued: VecDeque::new(),
            last_trigger: Instant::now(),
            retained: VecDeque::new(),
            latest,
            finished_tasks: false,
            history: VecDeque::new(),
            completed_count: 0,
            failed_count: 0,
            at_end: BTreeSet::new(),
        }
    }

    /// The barrier to inject now, if one is due: a queued savepoint first,
    /// else a periodic checkpoint. Also times out a checkpoint in flight.
    pub fn poll(&mut self) -> Option<Barrier> {
        if let Some(p) = &self.pending {
            if p.started.elapsed() > self.config.timeout {
                let id = p.barrier.id;
                self.fail_pending(format!("checkpoint {id} expired after {:?}", self.config.timeout));
            } else {
                return None;
            }
        }
        if self.finished_tasks {
            while let Some(r) = self.queued.pop_front() {
                (r.reply)(Err("some tasks already finished; a savepoint needs every task running".into()));
            }
            return None;
        }
        let request = match self.queued.pop_front() {
            Some(r) => Some(r),
            None => {
                let due = self.config.interval.is_some_and(|i| self.last_trigger.elapsed() >= i);
                if !due {
                    return None;
                }
                None
            }
        };
        let barrier = Barrier { id: self.next_id, stop: request.as_ref().is_some_and(|r| r.stop) };
        self.next_id += 1;
        self.last_trigger = Instant::now();
        let kind = if request.is_some() { "savepoint" } else { "checkpoint" };
        self.history.push_back(CheckpointStats {
            id: barrier.id,
            kind,
            status: "IN_PROGRESS",
            duration_ms: 0,
            state_bytes: 0,
            sync_ms: 0,
            location: None,
            failure: None,
        });
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.pending = Some(Pending {
            barrier,
            started: Instant::now(),
            request,
            awaiting: self.tasks.iter().copied().collect(),
            handles: Vec::new(),
        });
        tracing::debug!(job = %self.job, id = barrier.id, kind, "checkpoint triggered");
        Some(barrier)
    }

    /// Queues a savepoint; it is triggered by the next [`Coordinator::poll`].
    pub fn request_savepoint(&mut self, request: SavepointRequest) {
        self.queued.push_back(request);
    }

    /// A task acknowledged checkpoint `id` (or failed to snapshot).
    pub fn ack(&mut self, id: u64, chain: usize, subtask: u32, result: Result<TaskHandle, String>) -> Option<Completed> {
        if id == FINAL_CHECKPOINT {
            self.at_end.insert((chain, subtask));
            let all = self.tasks.iter().all(|t| self.at_end.contains(t));
            return all.then(|| Completed { barrier: Barrier { id, stop: false }, location: PathBuf::new() });
        }
        let pending = self.pending.as_mut().filter(|p| p.barrier.id == id)?;
        match result {
            Err(e) => {
                self.fail_pending(format!("subtask {} of task {chain} could not snapshot: {e}", subtask + 1));
                return None;
            }
            Ok(handle) => {
                if pending.awaiting.remove(&(chain, subtask)) {
                    pending.handles.push(handle);
                }
            }
        }
        if !pending.awaiting.is_empty() {
            return None;
        }
        let p = self.pending.take().unwrap();
        match self.complete(&p) {
            Ok(location) => {
                let stats = self.stats_mut(id);
                stats.status = "COMPLETED";
                stats.duration_ms = p.started.elapsed().as_millis() as u64;
                stats.state_bytes = p.handles.iter().map(|h| h.bytes).sum();
                stats.sync_ms = p.handles.iter().map(|h| h.sync_ms).max().unwrap_or(0);
                stats.location = Some(location.display().to_string());
                self.completed_count += 1;
                tracing::info!(job = %self.job, id, location = %location.display(), "checkpoint completed");
                self.latest = Some(location.clone());
                if let Some(r) = p.request {
                    (r.reply)(Ok(location.clone()));
                }
                Some(Completed { barrier: p.barrier, location })
            }
            Err(e) => {
                let why = format!("cannot complete checkpoint {id}: {e}");
                self.record_failure(id, &why);
                if let Some(r) = p.request {
                    (r.reply)(Err(why));
                }
                None
            }
        }
    }

    fn complete(&mut self, p: &Pending) -> std::io::Result<PathBuf> {
        let meta = Metadata {
            job: self.job.clone(),
            checkpoint: p.barrier.id,
            savepoint: p.request.is_some(),
            completed_ms: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
            max_parallelism: self.max_parallelism,
            tasks: p.handles.clone(),
        };
        let location = self.storage.complete(&meta)?;
        match p.request.as_ref().and_then(|r| r.target.as_ref()) {
            Some(target) => {
                let target = target.join(format!("savepoint-{}-{}", self.job, p.barrier.id));
                storage::relocate(&location, &target, &meta)?;
                Ok(target)
            }
            None if p.request.is_some() => Ok(location),
            None => {
                self.retained.push_back(p.barrier.id);
                while self.retained.len() > self.config.retained.max(1) {
                    let old = self.retained.pop_front().unwrap();
                    self.storage.discard(old);
                }
                Ok(location)
            }
        }
    }

    fn stats_mut(&mut self, id: u64) -> &mut CheckpointStats {
        let i = self.history.iter().position(|s| s.id == id).expect("pending checkpoints are in the history");
        &mut self.history[i]
    }

    fn record_failure(&mut self, id: u64, why: &str) {
        tracing::warn!(job = %self.job, id, "checkpoint failed: {why}");
        self.failed_count += 1;
        if self.history.iter().any(|s| s.id == id) {
            let stats = self.stats_mut(id);
            stats.status = "FAILED";
            stats.failure = Some(why.to_string());
        }
    }

    fn fail_pending(&mut self, why: String) {
        if let Some(p) = self.pending.take() {
            self.record_failure(p.barrier.id, &why);
            self.storage.discard(p.barrier.id);
            if let Some(r) = p.request {
                (r.reply)(Err(why));
            }
        }
    }

    /// The job failed or is restarting: the checkpoint in flight cannot complete.
    pub fn abort(&mut self, why: &str) {
        self.fail_pending(format!("aborted: {why}"));
    }

    /// The job ended: nothing more will complete; answers waiting savepoint requests.
    pub fn shutdown(&mut self, why: &str) {
        self.abort(why);
        while let Some(r) = self.queued.pop_front() {
            (r.reply)(Err(format!("the job ended: {why}")));
        }
    }

    /// A subtask finished: no more checkpoints (barriers could not pass it).
    /// The one in flight, if any, is dropped quietly: this is the normal end of a bounded job.
    pub fn task_finished(&mut self) {
        self.finished_tasks = true;
        if let Some(p) = self.pending.take() {
            tracing::debug!(job = %self.job, id = p.barrier.id, "checkpoint dropped: a task finished");
            self.history.retain(|s| s.id != p.barrier.id);
            self.storage.discard(p.barrier.id);
            if let Some(r) = p.request {
                (r.reply)(Err("a task finished before the savepoint completed".into()));
            }
        }
    }

    /// A new attempt of the job will start (after a restart): every task runs again.
    pub fn restarted(&mut self) {
        self.finished_tasks = false;
        self.at_end.clear();
        self.last_trigger = Instant::now();
    }

    /// What a restart resumes from.
    pub fn latest(&self) -> Option<&Path> {
        self.latest.as_deref()
    }

    /// Counts and recent history, for `GET /jobs/{id}`.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "interval-ms": self.config.interval.map(|d| d.as_millis() as u64),
            "mode": self.config.mode,
            "completed": self.completed_count,
            "failed": self.failed_count,
            "latest": self.latest.as_ref().map(|p| p.display().to_string()),
            "history": self.history,
        })
    }
}

/// How long a checkpoint may take before it is abandoned, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Mode;

    fn config(retained: usize) -> CheckpointConfig {
        CheckpointConfig { interval: Some(Duration::ZERO), mode: Mode::ExactlyOnce, retained, timeout: DEFAULT_TIMEOUT }
    }

    #[test]
    fn completes_when_every_task_acked_and_keeps_the_last_n() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::new(dir.path());
        let mut c = Coordinator::new("j", config(2), storage.clone(), vec![(0, 0), (0, 1)], 128, None);
        for id in 1..=3u64 {
            let b = c.poll().unwrap();
            assert_eq!(b, Barrier { id, stop: false });
            assert!(c.poll().is_none(), "one checkpoint at a time");
            let h0 = storage.write_task(id, 0, 0, &vec![]).unwrap();
            let h1 = storage.write_task(id, 0, 1, &vec![]).unwrap();
            assert!(c.ack(id, 0, 0, Ok(h0)).is_none());
            let done = c.ack(id, 0, 1, Ok(h1)).unwrap();
            assert_eq!(done.location, storage.path(id));
        }
        assert!(!storage.path(1).exists() && storage.path(2).exists() && storage.path(3).join("_metadata").exists());
        assert_eq!(c.latest(), Some(storage.path(3).as_path()));
        let handle = || Ok(TaskHandle { chain: 0, subtask: 0, file: String::new(), bytes: 0, sync_ms: 0 });
        assert!(c.ack(FINAL_CHECKPOINT, 0, 1, handle()).is_none());
        assert_eq!(c.ack(FINAL_CHECKPOINT, 0, 0, handle()).unwrap().barrier.id, FINAL_CHECKPOINT, "every task at its end");
    }

    #[test]
    fn a_failed_snapshot_fails_the_checkpoint_and_answers_the_savepoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new("j", config(1), DirStorage::new(dir.path()), vec![(0, 0)], 128, None);
        let (tx, rx) = std::sync::mpsc::channel();
        c.request_savepoint(SavepointRequest { target: None, stop: true, reply: Box::new(move |r| tx.send(r).unwrap()) });
        let b = c.poll().unwrap();
        assert!(b.stop);
        assert!(c.ack(b.id, 0, 0, Err("disk full".into())).is_none());
        assert!(rx.recv().unwrap().unwrap_err().contains("disk full"));
        assert_eq!(c.view()["failed"], 1);
    }
}
