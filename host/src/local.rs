//! The embedded cluster: JobManager and TaskManager in one process, as
//! `eddy run` uses when no cluster is configured (Flink's MiniCluster).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use crate::deploy::JobOptions;
use crate::deploy;
use crate::jobfile::{self, JobFile, JobFileError};
use crate::program::JobSpec;
use crate::plan::{ExecutionPlan, PlanError};
use crate::runtime::{read_component, GuestError, LoadError, Module, ReadError, Runtime};
use crate::checkpoint::{CheckpointConfig, CheckpointStorage, Coordinator, DirStorage, RestoreError};
use crate::task::{Checkpointing, JobSignals, TaskAck, TaskError, TaskMetrics};

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
    /// A component of a job file cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A job file cannot be composed.
    #[error(transparent)]
    JobFile(#[from] JobFileError),
    /// The plan cannot run.
    #[error("invalid job graph: {0}")]
    Invalid(#[from] PlanError),
    /// A task failed; the job was cancelled.
    #[error("job failed: {0}")]
    Task(#[from] TaskError),
    /// The checkpoint or savepoint to resume from cannot be used.
    #[error(transparent)]
    Restore(#[from] RestoreError),
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
    /// Checkpoint counts and history, when the job took checkpoints.
    pub checkpoints: Option<serde_json::Value>,
}

/// Periodic checkpoints of an embedded job.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// Interval, mode, retention.
    pub config: CheckpointConfig,
    /// Where checkpoints are written.
    pub dir: std::path::PathBuf,
}

/// How far a running embedded job is, summed over its subtasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobProgress {
    /// Records its sources read.
    pub records_in: u64,
    /// Records its sinks wrote.
    pub records_out: u64,
    /// Bytes its sources read of their inputs.
    pub input_read: u64,
    /// The size of those inputs, if every source knows its own (files do, sockets do not).
    pub input_size: Option<u64>,
}

/// What is told of a job's progress while it runs.
pub type ProgressHook = Arc<dyn Fn(JobProgress) + Send + Sync>;

/// How often the progress hook hears of a job.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// An in-process cluster sized to each job.
#[derive(Clone)]
pub struct LocalCluster {
    runtime: Runtime,
    /// Told how far a job is while it runs (`eddy run`'s progress bar).
    progress: Option<ProgressHook>,
}

impl LocalCluster {
    /// A cluster whose operators run in `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        LocalCluster { runtime, progress: None }
    }

    /// The same cluster, telling `hook` how far each job is every 100 ms.
    pub fn on_progress(mut self, hook: ProgressHook) -> Self {
        self.progress = Some(hook);
        self
    }

    /// The Wasm runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads a component and plans `entry` with `args`; answers the plan and the
    /// component of each of its programs.
    pub fn plan(&self, name: &str, bytes: &[u8], entry: &str, args: &[String], parallelism: u32) -> Result<(Vec<Module>, ExecutionPlan), JobError> {
        let module = self.runtime.load(name, bytes)?;
        let graph = module.plan(entry, args).map_err(|source| JobError::Plan { entry: entry.into(), source })?;
        let spec = JobSpec::single(graph, module.digest().into(), entry.into(), args.to_vec());
        Ok((vec![module], ExecutionPlan::new(spec, parallelism)?))
    }

    /// Loads the components of a job file (paths relative to `dir`) and composes it.
    pub fn plan_job_file(&self, file: &JobFile, dir: &Path, parallelism: u32) -> Result<(Vec<Module>, ExecutionPlan), JobError> {
        let mut components = BTreeMap::new();
        for (name, path) in &file.components {
            let path = dir.join(path);
            let (file_name, bytes) = read_component(&path)?;
            let module = self.runtime.load(&file_name, &bytes)?;
            components.insert(name.clone(), (module.digest().to_string(), module));
        }
        let spec = jobfile::compose(file, &components)?;
        let modules = spec
            .programs
            .iter()
            .map(|p| components.values().find(|(d, _)| *d == p.module).expect("composed from these").1.clone())
            .collect();
        Ok((modules, ExecutionPlan::new(spec, parallelism)?))
    }

    /// Runs a planned job to its end; `signals.stop` ends its sources early.
    /// With `checkpoints`, a coordinator here takes periodic checkpoints into
    /// its directory (a failure still fails the job: the embedded cluster
    /// does not restart jobs; resume one with `options.restore`).
    #[tracing::instrument(skip_all, fields(job = %plan.name))]
    pub fn execute(
        &self,
        modules: &[Module],
        plan: &ExecutionPlan,
        options: &JobOptions,
        checkpoints: Option<&CheckpointSettings>,
        signals: Arc<JobSignals>,
    ) -> Result<JobSummary, JobError> {
        let started = Instant::now();
        let plan = Arc::new(plan.clone());
        let mut options = options.clone();
        let (ack_tx, ack_rx) = crossbeam_channel::unbounded::<TaskAck>();
        let mut coordinator = checkpoints.map(|c| {
            let storage = DirStorage::new(&c.dir);
            options.mode = c.config.mode;
            options.checkpointing = Some(Checkpointing {
                storage: Arc::new(storage.clone()),
                acks: Arc::new(move |ack| {
                    let _ = ack_tx.send(ack);
                }),
            });
            let restored = options.restore.as_ref().map(|r| r.location.clone());
            let next_id = Coordinator::id_after(options.restore.as_ref().map(|r| r.meta.checkpoint));
            Coordinator::new(&plan.name, c.config.clone(), storage, plan.subtasks(), plan.max_parallelism, restored, next_id)
        });
        // Without a coordinator nothing sends acknowledgements: never select on the closed channel.
        let ack_rx = if coordinator.is_some() { ack_rx } else { crossbeam_channel::never() };
        let wiring = deploy::wire(&plan, &options, |_, _| true, |_, _, _| unreachable!("every subtask is local"))?;
        let count = wiring.subtasks.len();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let spawned = deploy::spawn(wiring.subtasks, &plan, modules, &options, &signals, done_tx);
        let mut told = Instant::now();
        let mut summary = JobSummary { name: plan.name.clone(), ..Default::default() };
        let mut failure: Option<TaskError> = None;
        let mut ended = 0;
        while ended < count {
            crossbeam_channel::select! {
                recv(done_rx) -> done => {
                    let Ok((_, _, result)) = done else { break };
                    ended += 1;
                    match result {
                        Ok(m) => summary.add(&m),
                        // The root cause, not the cancellations it caused.
                        Err(TaskError::Cancelled) => {}
                        Err(e) => {
                            tracing::debug!("task failed: {e}");
                            failure.get_or_insert(e);
                        }
                    }
                    if let Some(c) = &mut coordinator {
                        c.task_finished();
                    }
                }
                recv(ack_rx) -> ack => {
                    let (Ok(ack), Some(c)) = (ack, &mut coordinator) else { continue };
                    if let Some(done) = c.ack(ack.checkpoint, ack.chain, ack.subtask, ack.result) {
                        for old in done.superseded {
                            c.storage().discard(old);
                        }
                        signals.checkpoint_completed(done.barrier.id);
                    }
                }
                default(Duration::from_millis(10)) => {}
            }
            if let Some(hook) = self.progress.as_ref().filter(|_| told.elapsed() >= PROGRESS_EVERY) {
                hook(progress(&plan, &spawned.live));
                told = Instant::now();
            }
            if let Some(barrier) = coordinator.as_mut().and_then(|c| c.poll()) {
                signals.trigger_checkpoint(barrier);
            }
        }
        summary.checkpoints = coordinator.map(|c| c.view());
        summary.duration = started.elapsed();
        match failure {
            Some(e) => Err(e.into()),
            None if signals.cancelled() => Err(TaskError::Cancelled.into()),
            None => Ok(summary),
        }
    }
}

/// The sums over a job's subtasks of what its sources read and its sinks wrote.
fn progress(plan: &ExecutionPlan, live: &[(usize, u32, Arc<crate::task::LiveCounts>)]) -> JobProgress {
    let mut p = JobProgress { input_size: Some(0), ..Default::default() };
    for (chain, _, l) in live {
        let (records_in, records_out) = l.get();
        p.records_in += records_in;
        p.records_out += records_out;
        if crate::plan::is_source(&plan.vertices[plan.chains[*chain].vertices[0]].kind) {
            let (read, size) = l.stats.input();
            p.input_read += read;
            // One source without a size (a socket, or one that has not started) leaves the total unknown.
            p.input_size = p.input_size.zip(size).map(|(total, size)| total + size);
        }
    }
    p
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
