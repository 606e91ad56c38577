//! The JobManager's side of checkpoints: every few milliseconds each running
//! job's coordinator may trigger a barrier, which goes to the TaskManagers
//! running its sources; acknowledgements come back over QUIC, and a
//! completed checkpoint is announced to every TaskManager of the job so that
//! their sinks commit. Savepoints are checkpoints asked for over HTTP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::job::command_to;
use super::{JobManager, JobStatus};
use crate::checkpoint::{CheckpointStorage, SavepointRequest, TaskHandle};
use crate::protocol::ToTaskManager;

/// How often coordinators are asked whether a checkpoint is due.
const TICK: Duration = Duration::from_millis(20);

/// Triggers due checkpoints of every running job, forever.
pub(super) async fn trigger_loop(jm: Arc<JobManager>) {
    loop {
        tokio::time::sleep(TICK).await;
        let due: Vec<_> = {
            let mut state = jm.state.lock().unwrap();
            let State { jobs, taskmanagers, .. } = &mut *state;
            jobs.values_mut()
                .filter(|j| j.status == JobStatus::Running && j.deployed)
                .filter_map(|j| {
                    let barrier = j.coordinator.poll()?;
                    // A new block of ids is recorded before the first of them is used.
                    let reserve = barrier.id >= j.ids_reserved;
                    if reserve {
                        j.ids_reserved = barrier.id + super::durable::ID_BLOCK;
                    }
                    // Barriers start at the sources: the chains no edge leads into.
                    let sources = (0..j.plan.chains.len()).filter(|&c| !j.plan.edges.iter().any(|e| e.target == c));
                    let mut tms: Vec<String> = sources.flat_map(|c| j.placement[c].iter().map(|(tm, _)| tm.clone())).collect();
                    tms.sort();
                    tms.dedup();
                    let conns = super::connections(taskmanagers, &tms);
                    Some((j.id.clone(), j.execution(), barrier, conns, reserve))
                })
                .collect()
        };
        for (id, exec, barrier, conns, reserve) in due {
            let jm = jm.clone();
            tokio::spawn(async move {
                if reserve {
                    if let Err(e) = jm.persist(&id).await {
                        let mut state = jm.state.lock().unwrap();
                        if let Some(j) = state.jobs.get_mut(&id) {
                            j.coordinator.abort(&format!("cannot reserve checkpoint ids in the database: {e}"));
                            // Unreserved: the next checkpoint tries again.
                            j.ids_reserved = barrier.id;
                        }
                        return;
                    }
                }
                for conn in conns {
                    let command = ToTaskManager::TriggerCheckpoint { job: exec.clone(), barrier };
                    if let Err(e) = command_to(&conn, &command).await {
                        let mut state = jm.state.lock().unwrap();
                        if let Some(j) = state.jobs.get_mut(&id) {
                            j.coordinator.abort(&format!("cannot trigger checkpoint {}: {e}", barrier.id));
                        }
                    }
                }
            });
        }
    }
}

use super::State;

impl JobManager {
    /// A task of execution `exec` on TaskManager `tm` acknowledged a checkpoint;
    /// only the TaskManager the task was deployed to may. A completed
    /// checkpoint is recorded in the database before the checkpoints it
    /// supersedes are discarded and before sinks are told to commit it.
    pub fn checkpoint_ack(self: &Arc<Self>, tm: &str, exec: &str, chain: usize, subtask: u32, checkpoint: u64, result: Result<TaskHandle, String>) {
        let (id, finishing, storage) = {
            let mut state = self.state.lock().unwrap();
            let Some(job) = state.current_mut(exec) else { return };
            if !job.runs_on(chain, subtask, tm) {
                tracing::warn!(taskmanager = tm, job = %job.id, chain, subtask, "ignored a checkpoint acknowledgement for a task the TaskManager does not run");
                return;
            }
            let Some(finishing) = job.coordinator.ack_deferred(checkpoint, chain, subtask, result) else { return };
            (job.id.clone(), finishing, job.coordinator.storage().clone())
        };
        let jm = self.clone();
        let exec = exec.to_string();
        tokio::spawn(async move {
            // `_metadata` is written off the lock (and the async threads): it is file I/O and an fsync.
            let checkpoint = finishing.id;
            let Ok(written) = tokio::task::spawn_blocking(move || finishing.write()).await else { return };
            let done = {
                let mut state = jm.state.lock().unwrap();
                let Some(job) = state.jobs.get_mut(&id).filter(|j| j.execution() == exec) else { return };
                let Some(done) = job.coordinator.finish(checkpoint, written) else { return };
                done
            };
            if let Err(e) = jm.persist(&id).await {
                // Not committed: the sinks' files stay pending, and a failure replays from the checkpoint before.
                tracing::error!(job = %id, "cannot record checkpoint {} in the database: {e}", done.barrier.id);
                if done.barrier.id == crate::checkpoint::FINAL_CHECKPOINT {
                    // The tasks wait for this commit: restart rather than wait forever.
                    jm.fail_job(&id, format!("cannot record the final checkpoint in the database: {e}"));
                }
                return;
            }
            let superseded = done.superseded.clone();
            let _ = tokio::task::spawn_blocking(move || superseded.into_iter().for_each(|c| storage.discard(c))).await;
            let conns = {
                let state = jm.state.lock().unwrap();
                let Some(job) = state.jobs.get(&id).filter(|j| j.execution() == exec) else { return };
                super::connections(&state.taskmanagers, &job.taskmanagers())
            };
            super::job::tell(conns, ToTaskManager::CheckpointComplete { job: exec, checkpoint: done.barrier.id }).await;
        });
    }

    /// Takes a savepoint of job `id` (into `target`, else its checkpoint
    /// directory); with `stop`, the job ends after it. Answers once it completed.
    pub async fn savepoint(self: &Arc<Self>, id: &str, target: Option<PathBuf>, stop: bool) -> Result<PathBuf, (u16, String)> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = self.state.lock().unwrap();
            let job = state.jobs.get_mut(id).ok_or((404, format!("no job with id {id}")))?;
            if job.status != JobStatus::Running {
                return Err((409, format!("job {id} is {:?}, not running; savepoints need a running job", job.status)));
            }
            let reply = Box::new(move |r| {
                let _ = tx.send(r);
            });
            job.coordinator.request_savepoint(SavepointRequest { target, stop, reply });
        }
        let ended = || {
            let state = self.state.lock().unwrap();
            state.jobs.get(id).is_none_or(|j| j.status != JobStatus::Running || j.coordinator.tasks_finished())
        };
        // A job that ended (or whose tasks did) meanwhile is the caller's conflict; anything else is ours.
        match rx.await {
            Ok(Ok(location)) => Ok(location),
            Ok(Err(why)) if ended() => Err((409, format!("savepoint of job {id} not taken: {why}"))),
            Ok(Err(why)) => Err((500, format!("savepoint of job {id} failed: {why}"))),
            Err(_) => Err((500, format!("savepoint of job {id} was abandoned"))),
        }
    }
}
