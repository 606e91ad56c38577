//! The embedded cluster: JobManager and TaskManager in one process, as
//! `eddy run` uses when no cluster is configured (Flink's MiniCluster).

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use crate::deploy::JobOptions;
use crate::deploy;
use crate::plan::{ExecutionPlan, PlanError};
use crate::runtime::{GuestError, LoadError, Module, Runtime};
use crate::task::{JobSignals, TaskError, TaskMetrics};

/// Why a job did not run to its end.
#[derive(Debug, Error)]
pub enum JobError {
    /// The component could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The planner failed (unknown entry, bad arguments, a trap).
    #[error("planning entry '{entry}' failed: {source}")]
    Plan {
        /// The entry.
        entry: String,
        /// What the planner said.
        source: GuestError,
    },
    /// The plan cannot run.
    #[error("invalid job graph: {0}")]
    Invalid(#[from] PlanError),
    /// A task failed; the job was cancelled.
    #[error("job failed: {0}")]
    Task(#[from] TaskError),
}

/// What a finished job reports.
#[derive(Debug, Default, Clone)]
pub struct JobSummary {
    /// The job's name.
    pub name: String,
    /// Wall-clock time from deployment to the end.
    pub duration: Duration,
    /// Records the sources emitted.
    pub records_in: u64,
    /// Records the sinks wrote.
    pub records_out: u64,
    /// User counters, summed over subtasks.
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// An in-process cluster sized to each job.
#[derive(Clone)]
pub struct LocalCluster {
    runtime: Runtime,
}

impl LocalCluster {
    /// A cluster whose operators run in `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        LocalCluster { runtime }
    }

    /// The Wasm runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads a component and plans `entry` with `args`.
    pub fn plan(&self, name: &str, bytes: &[u8], entry: &str, args: &[String], parallelism: u32) -> Result<(Module, ExecutionPlan), JobError> {
        let module = self.runtime.load(name, bytes)?;
        let graph = module.plan(entry, args).map_err(|source| JobError::Plan { entry: entry.into(), source })?;
        Ok((module, ExecutionPlan::new(graph, parallelism)?))
    }

    /// Runs a planned job to its end; `signals.stop` ends its sources early.
    #[tracing::instrument(skip_all, fields(job = %plan.name))]
    pub fn execute(
        &self,
        module: &Module,
        plan: &ExecutionPlan,
        entry: &str,
        args: &[String],
        options: &JobOptions,
        signals: Arc<JobSignals>,
    ) -> Result<JobSummary, JobError> {
        let started = Instant::now();
        let plan = Arc::new(plan.clone());
        let wiring = deploy::wire(&plan, options, |_, _| true, |_, _, _| unreachable!("every subtask is local"));
        let count = wiring.subtasks.len();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        deploy::spawn(wiring.subtasks, &plan, module, entry, args, &signals, done_tx);
        let mut summary = JobSummary { name: plan.name.clone(), ..Default::default() };
        let mut failure: Option<TaskError> = None;
        for (_, _, result) in done_rx.iter().take(count) {
            match result {
                Ok(m) => summary.add(&m),
                // The root cause, not the cancellations it caused.
                Err(TaskError::Cancelled) => {}
                Err(e) => {
                    tracing::debug!("task failed: {e}");
                    failure.get_or_insert(e);
                }
            }
        }
        summary.duration = started.elapsed();
        match failure {
            Some(e) => Err(e.into()),
            None if signals.cancelled() => Err(TaskError::Cancelled.into()),
            None => Ok(summary),
        }
    }
}

impl JobSummary {
    /// Adds a finished subtask's metrics.
    pub fn add(&mut self, m: &TaskMetrics) {
        self.records_in += m.records_in;
        self.records_out += m.records_out;
        for (k, v) in &m.counters {
            *self.counters.entry(k.clone()).or_default() += v;
        }
    }
}
