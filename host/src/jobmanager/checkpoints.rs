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
use crate::checkpoint::{SavepointRequest, TaskHandle};
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
                    // Barriers start at the sources: the chains no edge leads into.
                    let sources = (0..j.plan.chains.len()).filter(|&c| !j.plan.edges.iter().any(|e| e.target == c));
                    let mut tms: Vec<String> = sources.flat_map(|c| j.placement[c].iter().map(|(tm, _)| tm.clone())).collect();
                    tms.sort();
                    tms.dedup();
                    let conns: Vec<_> = tms.iter().filter_map(|t| taskmanagers.get(t)).map(|t| t.connection.clone()).collect();
                    Some((j.id.clone(), j.execution(), barrier, conns))
                })
                .collect()
        };
        for (id, exec, barrier, conns) in due {
            let jm = jm.clone();
            tokio::spawn(async move {
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
    /// A task acknowledged a checkpoint of execution `exec`.
    pub fn checkpoint_ack(self: &Arc<Self>, exec: &str, chain: usize, subtask: u32, checkpoint: u64, result: Result<TaskHandle, String>) {
        let Some(id) = self.current(exec) else { return };
        let announce = {
            let mut state = self.state.lock().unwrap();
            let Some(job) = state.jobs.get_mut(&id) else { return };
            let Some(done) = job.coordinator.ack(checkpoint, chain, subtask, result) else { return };
            let tms = job.taskmanagers();
            let conns: Vec<_> = tms.iter().filter_map(|t| state.taskmanagers.get(t)).map(|t| t.connection.clone()).collect();
            (done, conns)
        };
        let (done, conns) = announce;
        let command = ToTaskManager::CheckpointComplete { job: exec.to_string(), checkpoint: done.barrier.id };
        tokio::spawn(super::job::tell(conns, command));
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
        match rx.await {
            Ok(Ok(location)) => Ok(location),
            Ok(Err(why)) => Err((500, format!("savepoint of job {id} failed: {why}"))),
            Err(_) => Err((500, format!("savepoint of job {id} was abandoned"))),
        }
    }
}
