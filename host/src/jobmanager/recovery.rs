//! RESTARTING: a failed job whose restart strategy allows another attempt
//! cancels what is left of the failed one, waits the strategy's delay, and
//! goes back to CREATED; the scheduler then deploys it on the slots still
//! available, restoring every task from the latest completed checkpoint.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::job::free_slots;
use super::{JobManager, JobStatus};
use crate::protocol::ToTaskManager;

/// Failures kept for the API.
const EXCEPTIONS_KEPT: usize = 10;

impl JobManager {
    /// Restarts job `id` after a failure (`why`) if its strategy allows;
    /// returns false when the job must fail instead.
    pub(super) fn restart_job(self: &Arc<Self>, id: &str, why: &str) -> bool {
        let (delay, exec, connections) = {
            let mut state = self.state.lock().unwrap();
            let Some(job) = state.jobs.get_mut(id) else { return true };
            if !job.is_active() {
                return true;
            }
            if job.status == JobStatus::Restarting {
                // A second report of the same failure (cancelled tasks, the lost TaskManager).
                return true;
            }
            job.exceptions.push((SystemTime::now(), why.to_string()));
            if job.exceptions.len() > EXCEPTIONS_KEPT {
                job.exceptions.remove(0);
            }
            job.failures.push(Instant::now());
            job.failures.retain(|t| t.elapsed().as_secs() < 24 * 3600);
            let restarts = job.attempt;
            let Some(delay) = job.settings.restart.next_delay(restarts, &job.failures) else { return false };
            tracing::warn!(job = id, attempt = job.attempt, ?delay, "job failed, restarting: {why}");
            job.coordinator.abort(why);
            job.status = JobStatus::Restarting;
            job.deployed = false;
            let exec = job.execution();
            let tms = job.taskmanagers();
            let (r, w) = job.attempt_progress();
            job.records_before = (job.records_before.0.saturating_add(r), job.records_before.1.saturating_add(w));
            job.attempt += 1;
            // Before the new attempt's tasks exist: their end-of-input acknowledgements must not be lost.
            job.coordinator.restarted(job.attempt);
            job.placement.clear();
            job.remaining = job.plan.chains.iter().map(|c| c.parallelism as usize).sum();
            job.records = (0, 0);
            job.usage.clear();
            job.stats.clear();
            job.ended_subtasks.clear();
            job.state_bytes.clear();
            free_slots(&mut state, id);
            let connections = super::connections(&state.taskmanagers, &tms);
            (delay, exec, connections)
        };
        let jm = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = jm.persist(&id).await {
                tracing::error!(job = %id, "cannot record the restart in the database: {e}");
            }
            super::job::tell(connections, ToTaskManager::Cancel { job: exec }).await;
            tokio::time::sleep(delay).await;
            {
                let mut state = jm.state.lock().unwrap();
                let Some(job) = state.jobs.get_mut(&id).filter(|j| j.status == JobStatus::Restarting) else { return };
                job.status = JobStatus::Created;
                job.submitted = Instant::now();
            }
            jm.schedule_waiting();
        });
        true
    }
}
