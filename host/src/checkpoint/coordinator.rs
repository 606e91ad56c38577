//! The checkpoint coordinator of one job (it lives in the JobManager, or in
//! the embedded cluster): decides when to inject barriers, collects the
//! tasks' acknowledgements, completes checkpoints, and keeps the last few.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
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
    /// Tasks whose input ended before the barrier could reach them: their end
    /// snapshots (in the final checkpoint's directory) are their state at this checkpoint.
    carried: Vec<TaskHandle>,
    /// Every task acknowledged; its `_metadata` is being written.
    finishing: bool,
}

/// A checkpoint every task acknowledged, whose `_metadata` is still to be
/// written: file I/O that a JobManager does off its lock.
pub struct Finishing {
    /// The checkpoint.
    pub id: u64,
    meta: Metadata,
    storage: DirStorage,
    /// Where a savepoint with a target directory goes.
    target: Option<PathBuf>,
    /// Tasks whose end snapshots are copied in from the final checkpoint's directory.
    carried: Vec<TaskHandle>,
}

impl Finishing {
    /// Writes `_metadata` last (a reader sees a complete checkpoint or none) and
    /// moves a savepoint to its target; answers where the checkpoint is.
    pub fn write(&self) -> std::io::Result<PathBuf> {
        if self.meta.tasks.iter().any(|t| t.file.is_empty()) {
            // A final checkpoint some task could not snapshot: nothing to restore.
            return Ok(PathBuf::new());
        }
        let (ended, dir) = (self.storage.path(FINAL_CHECKPOINT), self.storage.path(self.id));
        for t in &self.carried {
            storage::copy_file(&ended.join(&t.file), &dir, &t.file)?;
        }
        let location = self.storage.complete(&self.meta)?;
        match &self.target {
            Some(target) => {
                storage::relocate(&location, target, &self.meta)?;
                Ok(target.clone())
            }
            None => Ok(location),
        }
    }
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
    /// Older checkpoints it supersedes: to discard once the new one is
    /// recorded where a restart looks (a JobManager's database), not before.
    pub superseded: Vec<u64>,
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
    /// Tasks whose input ended, with their snapshot at the end (they
    /// acknowledged [`FINAL_CHECKPOINT`]).
    at_end: BTreeMap<(usize, u32), TaskHandle>,
}

const HISTORY: usize = 20;

impl Coordinator {
    /// The coordinator of `job`, storing under `storage`; `restored_from`
    /// is the checkpoint the job starts from, and `next_id` the first id it
    /// may give (above every id an earlier run of the job could have used).
    pub fn new(
        job: &str,
        config: CheckpointConfig,
        storage: DirStorage,
        tasks: Vec<(usize, u32)>,
        max_parallelism: u32,
        restored_from: Option<PathBuf>,
        next_id: u64,
    ) -> Self {
        let latest = restored_from;
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
            at_end: BTreeMap::new(),
        }
    }

    /// The first id after a checkpoint `id` restored from: its successor, or
    /// 1 after a final checkpoint (whose id is no place in the sequence).
    pub fn id_after(restored: Option<u64>) -> u64 {
        match restored {
            Some(id) if id != FINAL_CHECKPOINT => id + 1,
            _ => 1,
        }
    }

    /// The id the next barrier gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Where the checkpoints go (to discard superseded ones off the caller's lock).
    pub fn storage(&self) -> &DirStorage {
        &self.storage
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
        // A task that ended without an end snapshot cannot be covered by one.
        let uncovered = self.at_end.values().find(|h| h.file.is_empty()).map(|h| (h.chain, h.subtask));
        if self.finished_tasks || uncovered.is_some() {
            let why = match uncovered {
                Some((chain, subtask)) => format!("subtask {} of task {chain} ended without a snapshot of its state; no checkpoint can cover it", subtask + 1),
                None => "some tasks already finished; a savepoint needs every task running".into(),
            };
            while let Some(r) = self.queued.pop_front() {
                (r.reply)(Err(why.clone()));
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
            // A task that ended will not see the barrier; its end snapshot stands in for it.
            awaiting: self.tasks.iter().copied().filter(|t| !self.at_end.contains_key(t)).collect(),
            handles: Vec::new(),
            carried: self.at_end.values().cloned().collect(),
            finishing: false,
        });
        tracing::debug!(job = %self.job, id = barrier.id, kind, "checkpoint triggered");
        Some(barrier)
    }

    /// Queues a savepoint; it is triggered by the next [`Coordinator::poll`].
    pub fn request_savepoint(&mut self, request: SavepointRequest) {
        self.queued.push_back(request);
    }

    /// A task acknowledged checkpoint `id` (or failed to snapshot), and
    /// completes it at once if it was the last: [`Coordinator::ack_deferred`],
    /// [`Finishing::write`] and [`Coordinator::finish`] in one call, for a
    /// caller that may do file I/O where it is (the embedded cluster).
    pub fn ack(&mut self, id: u64, chain: usize, subtask: u32, result: Result<TaskHandle, String>) -> Option<Completed> {
        let finishing = self.ack_deferred(id, chain, subtask, result)?;
        let written = finishing.write();
        self.finish(finishing.id, written)
    }

    /// A task acknowledged checkpoint `id` (or failed to snapshot). A handle
    /// that is not the file storage gave that task is refused: a task names
    /// its own snapshot, nothing else, for a restore to read. When every task
    /// acknowledged, answers the `_metadata` to write (off the caller's lock);
    /// [`Coordinator::finish`] takes the outcome.
    pub fn ack_deferred(&mut self, id: u64, chain: usize, subtask: u32, result: Result<TaskHandle, String>) -> Option<Finishing> {
        if !self.tasks.contains(&(chain, subtask)) {
            tracing::warn!(job = %self.job, chain, subtask, "ignored an acknowledgement of a task the job does not have");
            return None;
        }
        let result = result.and_then(|h| {
            let expected = storage::task_file(chain, subtask);
            if h.chain == chain && h.subtask == subtask && h.file == expected {
                Ok(h)
            } else {
                Err(format!("its snapshot handle names {:?}, not its own file {expected:?}", h.file))
            }
        });
        if id == FINAL_CHECKPOINT {
            return self.ack_final(chain, subtask, result);
        }
        if self.finished_tasks {
            return None;
        }
        let pending = self.pending.as_mut().filter(|p| p.barrier.id == id && !p.finishing)?;
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
        self.finishing_pending()
    }

    /// The pending checkpoint's `_metadata` to write, once no task is awaited.
    fn finishing_pending(&mut self) -> Option<Finishing> {
        let pending = self.pending.as_mut().filter(|p| !p.finishing && p.awaiting.is_empty())?;
        pending.finishing = true;
        let id = pending.barrier.id;
        let target = pending.request.as_ref().and_then(|r| r.target.clone());
        let savepoint = pending.request.is_some();
        let handles = pending.handles.iter().chain(&pending.carried).cloned().collect();
        let carried = pending.carried.clone();
        let target = target.map(|t| t.join(format!("savepoint-{}-{id}", self.job)));
        let meta = self.metadata(id, savepoint, handles);
        Some(Finishing { id, meta, storage: self.storage.clone(), target, carried })
    }

    fn metadata(&self, id: u64, savepoint: bool, tasks: Vec<TaskHandle>) -> Metadata {
        Metadata {
            job: self.job.clone(),
            checkpoint: id,
            savepoint,
            completed_ms: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
            max_parallelism: self.max_parallelism,
            tasks,
        }
    }

    /// Every task's input ended: their end snapshots make the final
    /// checkpoint, the restore point of a failure during the last commit
    /// (which finishes the commit instead of replaying the input).
    fn ack_final(&mut self, chain: usize, subtask: u32, result: Result<TaskHandle, String>) -> Option<Finishing> {
        let handle = match result {
            Ok(h) => h,
            Err(e) => {
                // Without its snapshot the commit cannot be finished by a restore;
                // the sinks still commit, as they would without checkpoints.
                tracing::warn!(job = %self.job, chain, subtask, "no end snapshot: {e}");
                TaskHandle { chain, subtask, file: String::new(), bytes: 0, sync_ms: 0, passed: 0 }
            }
        };
        self.at_end.insert((chain, subtask), handle.clone());
        if !self.tasks.iter().all(|t| self.at_end.contains_key(t)) {
            // A checkpoint waiting for this task takes its end snapshot, unless the task passed
            // its barrier before it ended (that snapshot's acknowledgement is on its way).
            let pending = self.pending.as_mut().filter(|p| !p.finishing && p.awaiting.contains(&(chain, subtask)))?;
            if handle.passed >= pending.barrier.id {
                return None;
            }
            if handle.file.is_empty() {
                let id = pending.barrier.id;
                self.fail_pending(format!("checkpoint {id}: subtask {} of task {chain} ended without a snapshot of its state", subtask + 1));
                return None;
            }
            pending.awaiting.remove(&(chain, subtask));
            pending.carried.push(handle);
            return self.finishing_pending();
        }
        // A checkpoint still in flight would, completing late, become the restore point
        // in place of the final one, and a restore from it would write the tail again.
        self.task_finished();
        let meta = self.metadata(FINAL_CHECKPOINT, false, self.at_end.values().cloned().collect());
        Some(Finishing { id: FINAL_CHECKPOINT, meta, storage: self.storage.clone(), target: None, carried: Vec::new() })
    }

    /// Takes the outcome of writing a [`Finishing`]'s `_metadata`: the
    /// checkpoint completed (sinks may commit) or failed.
    pub fn finish(&mut self, id: u64, written: std::io::Result<PathBuf>) -> Option<Completed> {
        if id == FINAL_CHECKPOINT {
            let barrier = Barrier { id, stop: false };
            return match written {
                Ok(location) if !location.as_os_str().is_empty() => {
                    tracing::info!(job = %self.job, location = %location.display(), "final checkpoint completed");
                    self.latest = Some(location.clone());
                    let superseded = std::mem::take(&mut self.retained).into();
                    Some(Completed { barrier, location, superseded })
                }
                other => {
                    if let Err(e) = other {
                        tracing::warn!(job = %self.job, "cannot complete the final checkpoint: {e}");
                    }
                    Some(Completed { barrier, location: PathBuf::new(), superseded: Vec::new() })
                }
            };
        }
        // Expired, aborted or dropped meanwhile: what was written stays unused.
        let p = self.pending.take_if(|p| p.barrier.id == id && p.finishing)?;
        match written {
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
                let mut superseded = Vec::new();
                if p.request.is_none() {
                    self.retained.push_back(id);
                    while self.retained.len() > self.config.retained.max(1) {
                        superseded.push(self.retained.pop_front().unwrap());
                    }
                }
                if let Some(r) = p.request {
                    (r.reply)(Ok(location.clone()));
                }
                Some(Completed { barrier: p.barrier, location, superseded })
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
            self.storage.discard_in_background(p.barrier.id);
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
            self.storage.discard_in_background(p.barrier.id);
            if let Some(r) = p.request {
                (r.reply)(Err("a task finished before the savepoint completed".into()));
            }
        }
    }

    /// Attempt `attempt` of the job will start (after a restart): every task runs again.
    pub fn restarted(&mut self, attempt: u32) {
        self.finished_tasks = false;
        self.at_end.clear();
        self.storage = self.storage.clone().for_attempt(attempt);
        self.last_trigger = Instant::now();
    }

    /// Whether some task of the current attempt finished (no more checkpoints).
    pub fn tasks_finished(&self) -> bool {
        self.finished_tasks
    }

    /// What a restart resumes from.
    pub fn latest(&self) -> Option<&Path> {
        self.latest.as_deref()
    }

    /// Checkpoints completed and failed so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.completed_count, self.failed_count)
    }

    /// The latest checkpoint that completed, as its history keeps it.
    pub fn last_completed(&self) -> Option<&CheckpointStats> {
        self.history.iter().rev().find(|c| c.status == "COMPLETED")
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
        let mut c = Coordinator::new("j", config(2), storage.clone(), vec![(0, 0), (0, 1)], 128, None, 1);
        for id in 1..=3u64 {
            let b = c.poll().unwrap();
            assert_eq!(b, Barrier { id, stop: false });
            assert!(c.poll().is_none(), "one checkpoint at a time");
            let h0 = storage.write_task(id, 0, 0, &vec![]).unwrap();
            let h1 = storage.write_task(id, 0, 1, &vec![]).unwrap();
            assert!(c.ack(id, 0, 0, Ok(h0)).is_none());
            let done = c.ack(id, 0, 1, Ok(h1)).unwrap();
            assert_eq!(done.location, storage.path(id));
            assert_eq!(done.superseded, if id == 3 { vec![1] } else { vec![] }, "discarded by the caller, after recording the new one");
            for old in done.superseded {
                storage.discard(old);
            }
        }
        assert!(!storage.path(1).exists() && storage.path(2).exists() && storage.path(3).join("_metadata").exists());
        assert_eq!(c.latest(), Some(storage.path(3).as_path()));
        // The end snapshots make the final checkpoint, the restore point of the last commit.
        let end = |s: u32| storage.write_task(FINAL_CHECKPOINT, 0, s, &vec![]).map_err(|e| e.to_string());
        assert!(c.ack(FINAL_CHECKPOINT, 0, 1, end(1)).is_none());
        let done = c.ack(FINAL_CHECKPOINT, 0, 0, end(0)).unwrap();
        assert_eq!(done.barrier.id, FINAL_CHECKPOINT, "every task at its end");
        assert_eq!(done.location, dir.path().join("chk-final-0"));
        assert_eq!(done.superseded, vec![2, 3]);
        let restored = crate::checkpoint::Restored::load(&done.location).unwrap();
        assert_eq!((restored.meta.checkpoint, restored.meta.tasks.len()), (FINAL_CHECKPOINT, 2));
        assert_eq!(c.latest(), Some(done.location.as_path()));
        assert_eq!(Coordinator::id_after(Some(FINAL_CHECKPOINT)), 1);
    }

    #[test]
    fn a_handle_naming_another_file_or_task_fails_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::new(dir.path());
        let mut c = Coordinator::new("j", config(1), storage.clone(), vec![(0, 0), (0, 1)], 128, None, 7);
        let b = c.poll().unwrap();
        assert_eq!(b.id, 7, "ids continue where the job's earlier runs left them");
        let forged = TaskHandle { chain: 0, subtask: 0, file: "../../other-job/chk-1/task-0-0".into(), bytes: 0, sync_ms: 0, passed: 0 };
        assert!(c.ack(b.id, 0, 0, Ok(forged)).is_none());
        assert!(c.ack(b.id, 5, 0, Ok(storage.write_task(b.id, 0, 1, &vec![]).unwrap())).is_none(), "a task the job lacks");
        assert_eq!(c.view()["failed"], 1);
        assert!(c.view()["history"][0]["failure"].as_str().unwrap().contains("not its own file"), "{}", c.view());
        assert_eq!(c.latest(), None);
    }

    #[test]
    fn a_failed_snapshot_fails_the_checkpoint_and_answers_the_savepoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new("j", config(1), DirStorage::new(dir.path()), vec![(0, 0)], 128, None, 1);
        let (tx, rx) = std::sync::mpsc::channel();
        c.request_savepoint(SavepointRequest { target: None, stop: true, reply: Box::new(move |r| tx.send(r).unwrap()) });
        let b = c.poll().unwrap();
        assert!(b.stop);
        assert!(c.ack(b.id, 0, 0, Err("disk full".into())).is_none());
        assert!(rx.recv().unwrap().unwrap_err().contains("disk full"));
        assert_eq!(c.view()["failed"], 1);
    }

    /// A task whose input ended sees no more barriers: a checkpoint triggered after (or
    /// pending when) it ended takes its end snapshot, copied into the checkpoint.
    #[test]
    fn a_task_that_ended_is_covered_by_its_end_snapshot() {
        use crate::checkpoint::OperatorState;
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::new(dir.path());
        let tasks = vec![(0, 0), (1, 0), (2, 0)];
        let mut c = Coordinator::new("j", config(1), storage.clone(), tasks, 128, None, 1);
        let state = |s: &str| vec![(s.to_string(), OperatorState { items: vec![s.as_bytes().to_vec()], ..OperatorState::default() })];
        let end = |chain: usize| storage.write_task(FINAL_CHECKPOINT, chain, 0, &state(&format!("ended-{chain}"))).map_err(|e| e.to_string());
        assert!(c.ack(FINAL_CHECKPOINT, 0, 0, end(0)).is_none(), "task 0 ended before the checkpoint");
        let b = c.poll().unwrap();
        assert!(c.ack(b.id, 1, 0, Ok(storage.write_task(b.id, 1, 0, &state("running")).unwrap())).is_none());
        // Task 2 ends while the checkpoint waits for it.
        let done = c.ack(FINAL_CHECKPOINT, 2, 0, end(2)).expect("complete without task 2's barrier");
        assert_eq!(done.barrier.id, b.id);
        let restored = crate::checkpoint::Restored::load(&done.location).unwrap();
        assert_eq!(restored.meta.tasks.len(), 3);
        for uid in ["ended-0", "running", "ended-2"] {
            assert_eq!(restored.state_for(uid, 0, 1).items, [uid.as_bytes()], "{uid}");
        }
    }

    /// A task that passed a checkpoint's barrier and then ended is not covered by its end
    /// snapshot (that would lose what it did after the barrier): its own acknowledgement,
    /// even if it comes after the end's, completes the checkpoint.
    #[test]
    fn a_task_that_passed_the_barrier_before_it_ended_gives_its_own_snapshot() {
        use crate::checkpoint::OperatorState;
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::new(dir.path());
        let mut c = Coordinator::new("j", config(1), storage.clone(), vec![(0, 0), (1, 0)], 128, None, 1);
        let state = |s: &str| vec![(s.to_string(), OperatorState { items: vec![s.as_bytes().to_vec()], ..OperatorState::default() })];
        let b = c.poll().unwrap();
        let end = storage.write_task(FINAL_CHECKPOINT, 0, 0, &state("end")).map(|h| TaskHandle { passed: b.id, ..h });
        assert!(c.ack(FINAL_CHECKPOINT, 0, 0, end.map_err(|e| e.to_string())).is_none());
        assert!(c.ack(b.id, 1, 0, Ok(storage.write_task(b.id, 1, 0, &state("other")).unwrap())).is_none(), "task 0's own snapshot is still to come");
        let done = c.ack(b.id, 0, 0, Ok(storage.write_task(b.id, 0, 0, &state("at-barrier")).unwrap())).unwrap();
        let restored = crate::checkpoint::Restored::load(&done.location).unwrap();
        assert!(restored.contains("at-barrier") && !restored.contains("end"));
    }

    /// A task that ended without an end snapshot cannot be covered: savepoints are refused
    /// at once, saying which, instead of waiting out the timeout.
    #[test]
    fn a_task_that_ended_without_a_snapshot_refuses_savepoints_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new("j", config(1), DirStorage::new(dir.path()), vec![(0, 0), (1, 0)], 128, None, 1);
        assert!(c.ack(FINAL_CHECKPOINT, 1, 0, Err("disk full".into())).is_none());
        let (tx, rx) = std::sync::mpsc::channel();
        c.request_savepoint(SavepointRequest { target: None, stop: false, reply: Box::new(move |r| tx.send(r).unwrap()) });
        assert!(c.poll().is_none());
        assert_eq!(rx.recv().unwrap().unwrap_err(), "subtask 1 of task 1 ended without a snapshot of its state; no checkpoint can cover it");
    }
}
