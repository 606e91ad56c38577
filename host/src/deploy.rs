//! From a plan to running task threads: the channel layout of a job, the
//! wiring of the subtasks that run in this process, and their threads. The
//! embedded cluster runs every subtask here; a TaskManager runs those placed
//! in its slots and reaches the others through [`RemoteSend`] channels.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connectors::kafka::KafkaSecret;
use crate::connectors::{create_source, Confinement, Reach};
use crate::plan::{vertex_uid, ExecutionPlan};
use crate::runtime::{JobBudget, Module, Partitioning, SandboxConfig};
use crate::checkpoint::{Mode, Restored};
use crate::state::BackendKind;
use crate::task::{
    self, build_chain, ChainContext, Checkpointing, GateQueue, Head, JobSignals, LiveCounts, Output, OutputEdge,
    Sender, Task, TaskCheckpoints, TaskError, TaskMetrics,
};

/// Runtime settings of a job's tasks.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Longest time a record waits in an output buffer: lower is lower
    /// latency, higher is fewer, fuller batches.
    pub buffer_timeout: Duration,
    /// Batches a task's input gate holds per input channel before its
    /// producers block (back-pressure).
    pub channel_capacity: usize,
    /// Barrier alignment at input gates.
    pub mode: Mode,
    /// Where tasks write snapshots and send acknowledgements; none when the
    /// job takes no checkpoints or savepoints.
    pub checkpointing: Option<Checkpointing>,
    /// The checkpoint or savepoint the job resumes from.
    pub restore: Option<Arc<Restored>>,
    /// Unique per run (job and attempt), for names of files it writes.
    pub run_id: String,
    /// Where keyed state of Wasm operators lives.
    pub state_backend: BackendKind,
    /// Limits of this job's guest instances (a tenant's quotas); none: the runtime's own.
    pub sandbox: Option<SandboxConfig>,
    /// What its sources and sinks may reach.
    pub confinement: Confinement,
    /// The secrets its connectors name, resolved by the cluster for its tenant.
    pub secrets: BTreeMap<String, KafkaSecret>,
}

impl JobOptions {
    /// What its connectors may use.
    fn reach(&self) -> Reach<'_> {
        Reach { confinement: &self.confinement, secrets: &self.secrets, run_id: &self.run_id }
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            buffer_timeout: Duration::from_millis(10),
            channel_capacity: 4,
            mode: Mode::ExactlyOnce,
            checkpointing: None,
            restore: None,
            run_id: "0".into(),
            state_backend: BackendKind::Memory,
            sandbox: None,
            confinement: Confinement::default(),
            secrets: BTreeMap::new(),
        }
    }
}

/// Which channel of which gate each producer writes to. Every node computes
/// the same layout from the same plan, so channel numbers agree across hosts.
pub struct ChannelLayout {
    /// `[chain edge][upstream subtask][downstream subtask]` → channel, if connected.
    ids: Vec<Vec<Vec<Option<u32>>>>,
    /// `[chain][subtask]` → number of channels of its gate.
    counts: Vec<Vec<u32>>,
    /// `[chain][subtask]` → the channels of its gate that feed a second input.
    second_inputs: Vec<Vec<Vec<u32>>>,
    /// `[chain]` → whether its head is a two-input operator (some edge feeds its second input).
    two_inputs: Vec<bool>,
}

impl ChannelLayout {
    /// The layout of `plan`: forward edges connect subtask `i` to `i`, the
    /// others every upstream subtask to every downstream one.
    pub fn new(plan: &ExecutionPlan) -> Self {
        let chains = &plan.chains;
        let mut counts: Vec<Vec<u32>> = chains.iter().map(|c| vec![0; c.parallelism as usize]).collect();
        let mut second_inputs: Vec<Vec<Vec<u32>>> = chains.iter().map(|c| vec![Vec::new(); c.parallelism as usize]).collect();
        let mut ids = Vec::new();
        for e in &plan.edges {
            let (ps, pt) = (chains[e.source].parallelism, chains[e.target].parallelism);
            let mut edge = vec![vec![None; pt as usize]; ps as usize];
            for (u, row) in edge.iter_mut().enumerate() {
                for (t, id) in row.iter_mut().enumerate() {
                    if e.partitioning != Partitioning::Forward || u == t {
                        if e.input == 1 {
                            second_inputs[e.target][t].push(counts[e.target][t]);
                        }
                        *id = Some(counts[e.target][t]);
                        counts[e.target][t] += 1;
                    }
                }
            }
            ids.push(edge);
        }
        let two_inputs = (0..chains.len()).map(|c| plan.edges.iter().any(|e| e.target == c && e.input == 1)).collect();
        ChannelLayout { ids, counts, second_inputs, two_inputs }
    }

    /// Whether the gate of `subtask` of `chain` is a two-input operator's, and the
    /// channels of its second input.
    pub fn second_input(&self, chain: usize, subtask: u32) -> Option<&[u32]> {
        self.two_inputs[chain].then(|| &self.second_inputs[chain][subtask as usize][..])
    }

    /// Channels of the gate of `subtask` of `chain`.
    pub fn gate_size(&self, chain: usize, subtask: u32) -> u32 {
        self.counts[chain][subtask as usize]
    }

    /// Every channel as `((target chain, target subtask, channel), (source chain, source subtask))`:
    /// who may feed which channel.
    pub fn producers<'a>(&'a self, plan: &'a ExecutionPlan) -> impl Iterator<Item = ((usize, u32, u32), (usize, u32))> + 'a {
        plan.edges.iter().zip(&self.ids).flat_map(|(e, edge)| {
            edge.iter().enumerate().flat_map(move |(u, row)| {
                row.iter().enumerate().filter_map(move |(t, id)| Some(((e.target, t as u32, (*id)?), (e.source, u as u32))))
            })
        })
    }
}

/// One wired subtask, ready to become a thread.
pub struct Subtask {
    /// Chain index.
    pub chain: usize,
    /// Subtask index.
    pub subtask: u32,
    head: Head,
    output: Output,
}

/// The subtasks of a job that run in this process, and the queues of their
/// gates (for channels arriving from other processes).
pub struct Wiring {
    /// Subtasks to run here.
    pub subtasks: Vec<Subtask>,
    /// `(chain, subtask)` → its gate's queue.
    pub gates: HashMap<(usize, u32), GateQueue>,
}

/// Wires the subtasks for which `is_local(chain, subtask)` holds; channels to
/// other subtasks come from `remote(chain, subtask, channel)`.
pub fn wire(
    plan: &ExecutionPlan,
    options: &JobOptions,
    is_local: impl Fn(usize, u32) -> bool,
    mut remote: impl FnMut(usize, u32, u32) -> Sender,
) -> Result<Wiring, TaskError> {
    let layout = ChannelLayout::new(plan);
    let chains = &plan.chains;
    let mut gates = HashMap::new();
    let mut heads = HashMap::new();
    for (c, chain) in chains.iter().enumerate() {
        for t in 0..chain.parallelism {
            let n = layout.gate_size(c, t);
            if is_local(c, t) && n > 0 {
                let (mut gate, tx) = task::channel(n, n as usize * options.channel_capacity, options.mode);
                if let Some(second) = layout.second_input(c, t) {
                    gate.set_second_input(second.iter().copied());
                }
                gates.insert((c, t), tx);
                heads.insert((c, t), gate);
            }
        }
    }
    let mut subtasks = Vec::new();
    for (c, chain) in chains.iter().enumerate() {
        for u in 0..chain.parallelism {
            if !is_local(c, u) {
                continue;
            }
            let mut edges = Vec::new();
            for (ei, e) in plan.edges.iter().enumerate().filter(|(_, e)| e.source == c) {
                let targets: Vec<Sender> = (0..chains[e.target].parallelism)
                    .filter_map(|t| layout.ids[ei][u as usize][t as usize].map(|ch| (t, ch)))
                    .map(|(t, ch)| match gates.get(&(e.target, t)) {
                        Some(tx) => Sender::Local { tx: tx.clone(), channel: ch },
                        None => remote(e.target, t, ch),
                    })
                    .collect();
                let last = *chain.vertices.last().unwrap();
                edges.push(OutputEdge::new(
                    e.partitioning,
                    targets,
                    plan.max_parallelism,
                    plan.vertices[last].name.clone(),
                    e.side_output,
                ));
            }
            let head = match heads.remove(&(c, u)) {
                Some(gate) => Head::Input(Box::new(gate)),
                None => {
                    let vertex = &plan.vertices[chain.vertices[0]];
                    let mut source = create_source(vertex, u, chain.parallelism, plan.codec, &options.reach())?;
                    let uid = vertex_uid(vertex);
                    if let Some(r) = options.restore.as_ref().filter(|r| r.contains(&uid)) {
                        if let Err(e) = source.restore(r.state_for(&uid, u, chain.parallelism).items) {
                            return Err(TaskError::Record { operator: vertex.name.clone(), message: e });
                        }
                    }
                    Head::Source(source)
                }
            };
            subtasks.push(Subtask { chain: c, subtask: u, head, output: Output::new(edges, options.buffer_timeout) });
        }
    }
    Ok(Wiring { subtasks, gates })
}

/// What a panic said, as far as it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".into(),
    }
}

/// The running subtasks of a job in this process, for heartbeats.
pub struct Spawned {
    /// Each subtask's live counts: `(chain, subtask, counts)`.
    pub live: Vec<(usize, u32, Arc<LiveCounts>)>,
    /// What the job's instances here hold (keyed state bytes), shared by all of them.
    pub budget: Arc<JobBudget>,
}

/// What a finished subtask reports.
pub type SubtaskResult = (usize, u32, Result<TaskMetrics, TaskError>);

/// The start of the names of the task threads of run `run_id`: a short hash,
/// since Linux keeps 15 bytes of a thread's name, and a process runs many jobs.
pub fn task_thread_prefix(run_id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    run_id.hash(&mut h);
    format!("t{:06x}-", h.finish() & 0xff_ffff)
}

fn task_thread_name(run_id: &str, chain: usize, subtask: u32) -> String {
    let mut name = format!("{}{chain}-{subtask}", task_thread_prefix(run_id));
    name.truncate(15);
    name
}

/// Starts one thread per subtask; each reports its result on `done`. The
/// first failure sets the job's cancel flag, which stops the others. All
/// the job's instances here share one budget of `options.sandbox` (or the
/// runtime's limits). Returns each subtask's live counts and the job's budget.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    subtasks: Vec<Subtask>,
    plan: &Arc<ExecutionPlan>,
    modules: &[Module],
    options: &JobOptions,
    signals: &Arc<JobSignals>,
    done: crossbeam_channel::Sender<SubtaskResult>,
) -> Spawned {
    let mut all = Vec::with_capacity(subtasks.len());
    let config = options.sandbox.clone().or_else(|| modules.first().map(|m| m.runtime_sandbox().clone())).unwrap_or_default();
    let budget = JobBudget::new(config, &options.run_id, Some(signals.clone()));
    let restored_at_end = options.restore.as_ref().is_some_and(|r| r.meta.checkpoint == crate::checkpoint::FINAL_CHECKPOINT);
    for Subtask { chain, subtask, head, output } in subtasks {
        let live = Arc::new(LiveCounts::of(&output));
        all.push((chain, subtask, live.clone()));
        let (plan, modules, signals, done) = (plan.clone(), modules.to_vec(), signals.clone(), done.clone());
        let (options, budget) = (options.clone(), budget.clone());
        let name = format!("{} ({}/{})", plan.chain_name(chain), subtask + 1, plan.chains[chain].parallelism);
        let source_uid = vertex_uid(&plan.vertices[plan.chains[chain].vertices[0]]);
        std::thread::Builder::new()
            .name(task_thread_name(&options.run_id, chain, subtask))
            .spawn(move || {
                // Every line logged on this thread, the guest's included, names its job,
                // vertex and subtask. At the error level so that any filter that prints
                // anything prints the span with it.
                let _span = tracing::error_span!("task", job = %options.run_id, vertex = chain, subtask).entered();
                let ctx = ChainContext {
                    plan: &plan,
                    modules: &modules,
                    restore: options.restore.as_deref(),
                    run_id: &options.run_id,
                    checkpointing: options.checkpointing.is_some(),
                    state_backend: &options.state_backend,
                    reach: options.reach(),
                    budget: &budget,
                };
                let checkpoints = TaskCheckpoints::new(options.checkpointing.clone(), chain, subtask);
                let run = || {
                    build_chain(&ctx, chain, subtask).and_then(|chain| {
                        Task { name, head, chain, output, signals: signals.clone(), live, checkpoints, source_uid, restored_at_end }.run()
                    })
                };
                // A panic (a bug of the host's) fails this task with its message,
                // as any failure does, instead of leaving the job running forever.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                    .unwrap_or_else(|panic| Err(TaskError::Panicked(panic_message(&*panic))));
                if result.is_err() {
                    signals.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                // The job's last holder of the budget reports its dropped log lines
                // when it lets go: before the job ends, not after.
                drop(budget);
                let _ = done.send((chain, subtask, result));
            })
            .expect("spawn task thread");
    }
    Spawned { live: all, budget }
}
