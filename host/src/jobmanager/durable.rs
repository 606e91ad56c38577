//! What outlives the JobManager's process: every job that has not ended, as
//! an entry of the database (its spec, settings, attempt, latest completed
//! checkpoint and the checkpoint ids it may have used), written before the
//! JobManager acts on it. An attempt is recorded before it is deployed, a
//! completed checkpoint before sinks are told to commit it, a block of
//! checkpoint ids before the first of them is triggered. A JobManager that
//! starts on the same state resumes each entry (`resume`): a new attempt
//! whose id no earlier process gave, from the latest checkpoint recorded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::db::{DbError, Table};
use super::job::{Job, JobSettings, JobStatus};
use super::JobManager;
use crate::checkpoint::{Coordinator, DirStorage};
use crate::connectors::Confinement;
use crate::plan::ExecutionPlan;
use crate::program::JobSpec;
use crate::runtime::{SandboxConfig, VertexKind};

/// Checkpoint ids reserved in the database at a time: a restarted
/// JobManager continues above the block, so ids are never given twice
/// without a write per checkpoint.
pub const ID_BLOCK: u64 = 1000;

/// An active job as the database keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobEntry {
    /// Its id.
    pub id: String,
    /// Its plan's name.
    pub name: String,
    /// The graph and programs it runs.
    pub spec: JobSpec,
    /// Its settings, as submitted.
    pub settings: JobSettings,
    /// Submitted as a job file.
    pub from_job_file: bool,
    /// Limits of its guests (its tenant's quotas at submission).
    pub sandbox: Option<SandboxConfig>,
    /// What its connectors may reach.
    pub confinement: Confinement,
    /// Its status when written.
    pub status: JobStatus,
    /// The latest attempt that may have been deployed.
    pub attempt: u32,
    /// When it first started (ms since the epoch).
    pub started_ms: u64,
    /// Recent failures: (ms since the epoch, why).
    pub exceptions: Vec<(u64, String)>,
    /// Its latest completed checkpoint (or the savepoint it started from).
    pub latest: Option<PathBuf>,
    /// Checkpoint ids below this one may have been used.
    pub checkpoint_ids: u64,
    /// Records read and written by earlier attempts.
    pub records_before: (u64, u64),
    /// The most keyed state it held at once.
    pub peak_state_bytes: u64,
}

impl Job {
    /// What the database keeps of it now.
    pub(super) fn entry(&self) -> JobEntry {
        JobEntry {
            id: self.id.clone(),
            name: self.name.clone(),
            spec: self.spec.clone(),
            settings: self.settings.clone(),
            from_job_file: self.from_job_file,
            sandbox: self.sandbox.clone(),
            confinement: self.confinement.clone(),
            status: self.status,
            attempt: self.attempt,
            started_ms: super::millis(self.started),
            exceptions: self.exceptions.iter().map(|(t, why)| (super::millis(*t), why.clone())).collect(),
            latest: self.coordinator.latest().map(PathBuf::from),
            checkpoint_ids: self.ids_reserved,
            // What the attempt running now has done so far counts too: a restart after a
            // crash keeps it, as a restart after a failure does.
            records_before: {
                let (r, w) = if self.status == JobStatus::Running { self.attempt_progress() } else { (0, 0) };
                (self.records_before.0.saturating_add(r), self.records_before.1.saturating_add(w))
            },
            peak_state_bytes: self.peak_state_bytes,
        }
    }
}

/// Whether every source of `spec` can read its input again from the start
/// (a socket cannot: what it delivered is gone).
fn replayable(spec: &JobSpec) -> bool {
    !spec.graph.vertices.iter().any(|v| matches!(v.kind, VertexKind::SocketSource(_)))
}

/// A job of the database as the restarted JobManager takes it up, or why it cannot be.
fn resume(e: JobEntry) -> Result<Job, Box<(JobEntry, String)>> {
    let plan = match ExecutionPlan::new(e.spec.clone(), e.settings.parallelism) {
        Ok(plan) => plan,
        Err(err) => return Err(Box::new((e, format!("the JobManager restarted and cannot plan the job again: {err}")))),
    };
    let ran = e.attempt > 0 || matches!(e.status, JobStatus::Running | JobStatus::Restarting);
    let latest = e.latest.clone();
    match &latest {
        Some(path) => match crate::checkpoint::storage::is_complete(path) {
            Ok(true) => {}
            Ok(false) => {
                let why = format!("the JobManager restarted and the job's latest checkpoint {} is gone", path.display());
                return Err(Box::new((e, why)));
            }
            Err(err) => {
                let why = format!("the JobManager restarted and cannot read the job's latest checkpoint {}: {err}", path.display());
                return Err(Box::new((e, why)));
            }
        },
        None if ran && !replayable(&e.spec) => {
            let why = "the JobManager restarted and the job has no completed checkpoint to resume from; its socket source cannot be replayed".to_string();
            return Err(Box::new((e, why)));
        }
        _ => {}
    }
    // Every attempt an earlier process may have deployed is left behind: its tasks'
    // files and channels are named after it, and must never meet the new ones.
    let attempt = if ran { e.attempt + 1 } else { e.attempt };
    let storage = DirStorage::new(e.settings.checkpoint_dir.join(&e.id)).for_attempt(attempt);
    let next_id = e.checkpoint_ids.max(1);
    storage.discard_earlier_in_background(next_id, latest.clone());
    let coordinator = Coordinator::new(
        &e.id,
        e.settings.checkpoint.clone(),
        storage,
        plan.subtasks(),
        plan.max_parallelism,
        latest.clone(),
        next_id,
    );
    let mut job = Job::new(e.id.clone(), plan, e.spec, e.settings, e.from_job_file, e.sandbox, e.confinement, coordinator);
    job.attempt = attempt;
    job.ids_reserved = next_id;
    job.started = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(e.started_ms);
    job.records_before = e.records_before;
    job.peak_state_bytes = e.peak_state_bytes;
    job.exceptions = e.exceptions.into_iter().map(|(t, why)| (SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(t), why)).collect();
    if ran {
        let from = match &latest {
            Some(path) => format!("resuming from {}", path.display()),
            None => "restarting from the beginning (no checkpoint yet)".to_string(),
        };
        job.exceptions.push((SystemTime::now(), format!("the JobManager restarted; {from}")));
    }
    Ok(job)
}

impl JobManager {
    /// Takes up the jobs the database holds as active: each waits for slots
    /// as a new attempt, or fails with why it cannot resume.
    pub(super) fn resume_jobs(self: &Arc<Self>) -> Result<(), DbError> {
        let entries = self.db.scan::<serde_json::Value>(Table::ActiveJobs, "")?;
        let mut failed = Vec::new();
        for (id, value) in entries {
            // One entry this version cannot read is left where it is, not a reason to refuse to start.
            let entry: JobEntry = match serde_json::from_value(value) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(job = %id, "cannot read the job's entry in the database, left as it is: {e}");
                    continue;
                }
            };
            // Ended, but the process died before the entry was removed with the ending.
            if self.history.get(&id).is_some() {
                self.db.write(&[super::db::Change::Delete(Table::ActiveJobs, &id)])?;
                continue;
            }
            match resume(entry) {
                Ok(job) => {
                    tracing::info!(job = %id, attempt = job.attempt, latest = ?job.coordinator.latest(), "job resumed after a JobManager restart");
                    self.state.lock().unwrap().jobs.insert(id, job);
                }
                Err(failure) => failed.push(*failure),
            }
        }
        for (entry, why) in failed {
            tracing::warn!(job = %entry.id, "job not resumed: {why}");
            if let Err(e) = self.record_unresumable(&entry, &why) {
                tracing::error!(job = %entry.id, "cannot record that the job ended: {e}");
            }
        }
        Ok(())
    }

    /// A job that cannot resume ends FAILED, with why, in the history.
    fn record_unresumable(&self, e: &JobEntry, why: &str) -> Result<(), DbError> {
        let record = super::history::JobRecord {
            id: e.id.clone(),
            name: e.name.clone(),
            tenant: e.settings.tenant.clone(),
            status: JobStatus::Failed,
            start_time: e.started_ms,
            end_time: super::now_ms(),
            duration: super::now_ms().saturating_sub(e.started_ms),
            failure: Some(why.to_string()),
            records_in: e.records_before.0,
            records_out: e.records_before.1,
            restarts: e.attempt,
        };
        self.history.record(&self.db, record)
    }

    /// Writes what the database keeps of job `id` as it is now. One write at a
    /// time, each reading the state when it runs: a later change is never
    /// overwritten by an earlier one. Ended jobs are left to `record_end`.
    pub(super) async fn persist(self: &Arc<Self>, id: &str) -> Result<(), DbError> {
        let _one_at_a_time = self.persisting.lock().await;
        let entry = {
            let state = self.state.lock().unwrap();
            match state.jobs.get(id) {
                Some(j) if j.is_active() => j.entry(),
                _ => return Ok(()),
            }
        };
        let jm = self.clone();
        let started = Instant::now();
        let written = tokio::task::spawn_blocking(move || jm.db.put(Table::ActiveJobs, &entry.id, &entry))
            .await
            .unwrap_or_else(|e| Err(DbError::Corrupt { key: id.to_string(), cause: format!("the write panicked: {e}") }));
        tracing::trace!(job = id, elapsed = ?started.elapsed(), "job entry written");
        written
    }
}
