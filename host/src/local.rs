//! The embedded cluster: JobManager and TaskManager in one process, as
//! `eddy run` uses when no cluster is configured (Flink's MiniCluster).

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::connectors::create_source;
use crate::plan::{ExecutionPlan, PlanError};
use crate::runtime::{GuestError, LoadError, Module, Partitioning, Runtime};
use crate::task::{self, build_chain, ChainContext, Head, JobSignals, Output, OutputEdge, Task, TaskError, TaskMetrics};

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

/// Settings of one job run.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Default parallelism (the client's `-p`).
    pub parallelism: u32,
    /// Longest time a record waits in an output buffer: lower is lower
    /// latency, higher is fewer, fuller batches.
    pub buffer_timeout: Duration,
    /// Batches a task's input gate holds per input channel before its
    /// producers block (back-pressure).
    pub channel_capacity: usize,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions { parallelism: 1, buffer_timeout: Duration::from_millis(10), channel_capacity: 4 }
    }
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
        let tasks = wire(plan, options);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Result<TaskMetrics, TaskError>>();
        let count = tasks.len();
        std::thread::scope(|scope| {
            for (chain, subtask, head, output) in tasks {
                let done = done_tx.clone();
                let signals = signals.clone();
                let name = format!("{} ({}/{})", plan.chain_name(chain), subtask + 1, plan.chains[chain].parallelism);
                let ctx = ChainContext { plan, module, entry, args };
                std::thread::Builder::new()
                    .name(format!("task-{chain}-{subtask}"))
                    .spawn_scoped(scope, move || {
                        let result = build_chain(&ctx, chain, subtask)
                            .and_then(|chain| Task { name, head, chain, output, signals: signals.clone() }.run());
                        if result.is_err() {
                            signals.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        let _ = done.send(result);
                    })
                    .expect("spawn task thread");
            }
            drop(done_tx);
            let mut summary = JobSummary { name: plan.name.clone(), ..Default::default() };
            let mut failure: Option<TaskError> = None;
            for result in done_rx.iter().take(count) {
                match result {
                    Ok(m) => {
                        summary.records_in += m.records_in;
                        summary.records_out += m.records_out;
                        for (k, v) in m.counters {
                            *summary.counters.entry(k).or_default() += v;
                        }
                    }
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
        })
    }
}

/// Creates every channel of the job and returns, per subtask, its head
/// (source or input gate) and its output.
fn wire(plan: &ExecutionPlan, options: &JobOptions) -> Vec<(usize, u32, Head, Output)> {
    let chains = &plan.chains;
    // Channel ids at each target subtask's gate, per edge and upstream subtask.
    let mut channels_at: Vec<Vec<u32>> = chains.iter().map(|c| vec![0; c.parallelism as usize]).collect();
    let mut channel_id: Vec<Vec<Vec<u32>>> = Vec::new(); // [edge][upstream][target]
    for e in &plan.edges {
        let (ps, pt) = (chains[e.source].parallelism, chains[e.target].parallelism);
        let mut ids = vec![vec![u32::MAX; pt as usize]; ps as usize];
        for u in 0..ps {
            for t in 0..pt {
                if e.partitioning != Partitioning::Forward || u == t {
                    ids[u as usize][t as usize] = channels_at[e.target][t as usize];
                    channels_at[e.target][t as usize] += 1;
                }
            }
        }
        channel_id.push(ids);
    }
    let mut gates: Vec<Vec<Option<task::InputGate>>> = Vec::new();
    let mut senders: Vec<Vec<Vec<task::Sender>>> = Vec::new(); // [chain][subtask][channel]
    for (c, chain) in chains.iter().enumerate() {
        let mut g = Vec::new();
        let mut s = Vec::new();
        for t in 0..chain.parallelism as usize {
            let n = channels_at[c][t];
            let (gate, tx) = task::channel(n, n as usize * options.channel_capacity);
            g.push((n > 0).then_some(gate));
            s.push(tx);
        }
        gates.push(g);
        senders.push(s);
    }
    let mut tasks = Vec::new();
    for (c, chain) in chains.iter().enumerate() {
        for u in 0..chain.parallelism {
            let mut edges = Vec::new();
            for (ei, e) in plan.edges.iter().enumerate().filter(|(_, e)| e.source == c) {
                let targets: Vec<task::Sender> = (0..chains[e.target].parallelism)
                    .filter(|&t| channel_id[ei][u as usize][t as usize] != u32::MAX)
                    .map(|t| senders[e.target][t as usize][channel_id[ei][u as usize][t as usize] as usize].clone())
                    .collect();
                let last = *chain.vertices.last().unwrap();
                edges.push(OutputEdge::new(e.partitioning, targets, plan.max_parallelism, plan.vertices[last].name.clone()));
            }
            let head = match gates[c][u as usize].take() {
                Some(gate) => Head::Input(gate),
                None => {
                    let head_vertex = &plan.vertices[chain.vertices[0]];
                    Head::Source(create_source(&head_vertex.kind, u, chain.parallelism))
                }
            };
            tasks.push((c, u, head, Output::new(edges, options.buffer_timeout)));
        }
    }
    tasks
}
