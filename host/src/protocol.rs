//! What the JobManager and TaskManagers say to each other over QUIC.
//!
//! TaskManager → JobManager: `Register` (bidirectional stream, answered with
//! `Registered`), then `Heartbeat`s (bidirectional, answered with `()`: a
//! TaskManager whose JobManager stops answering registers again), `TaskDone`s
//! and `CheckpointAck`s (one unidirectional stream each), and `GetModule`
//! (answered with the raw module bytes).
//! JobManager → TaskManager: `Deploy`, `Start`, `Cancel` (bidirectional
//! streams, answered with `Ack`). TaskManager → TaskManager: one
//! unidirectional stream per data channel, opened with a [`ChannelHeader`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use std::path::PathBuf;

use crate::checkpoint::{Barrier, Mode, TaskHandle};
use crate::runtime::GuestLogs;
use crate::program::JobSpec;

/// A message from a TaskManager.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToJobManager {
    /// A new TaskManager offers its slots (or one that lost its JobManager, again).
    Register {
        /// Number of slots.
        slots: u32,
        /// Where its data endpoint accepts other TaskManagers.
        data_addr: SocketAddr,
        /// Executions it still runs tasks of (left from before it lost its JobManager).
        #[serde(default)]
        running: Vec<String>,
    },
    /// It is alive; with what each of its subtasks has used so far.
    Heartbeat {
        /// Its id.
        id: String,
        /// Tasks running now.
        running_tasks: u32,
        /// Per subtask here: (execution id, chain, subtask, usage so far in this attempt).
        usage: Vec<(String, usize, u32, TaskUsage)>,
        /// Per job here: (execution id, keyed state bytes its instances hold now).
        state: Vec<(String, u64)>,
        /// Per subtask here: (execution id, chain, subtask, its statistics now).
        #[serde(default)]
        stats: Vec<(String, usize, u32, SubtaskStats)>,
        /// Per job here: (execution id, what its guests logged since the last heartbeat).
        #[serde(default)]
        logs: Vec<(String, GuestLogs)>,
        /// Per subtask here with counters: (execution id, chain, subtask, its operators' counters).
        #[serde(default)]
        counters: Vec<SubtaskCounters>,
    },
    /// A task ended.
    TaskDone {
        /// Its id.
        id: String,
        /// The job.
        job: String,
        /// The chain (task) index.
        chain: usize,
        /// The subtask index.
        subtask: u32,
        /// How it ended.
        outcome: TaskOutcome,
        /// What it used in all, whatever the outcome.
        usage: TaskUsage,
        /// Its statistics at the end.
        #[serde(default)]
        stats: SubtaskStats,
        /// What the job's guests here logged since the last heartbeat.
        #[serde(default)]
        logs: GuestLogs,
        /// Its operators' counters at the end (the ones shown live).
        #[serde(default)]
        counters: Vec<(String, u64)>,
    },
    /// A task wrote its snapshot of a checkpoint (or could not).
    CheckpointAck {
        /// The job (execution id).
        job: String,
        /// The chain.
        chain: usize,
        /// The subtask.
        subtask: u32,
        /// The checkpoint.
        checkpoint: u64,
        /// Its snapshot, or why it failed.
        result: Result<TaskHandle, String>,
    },
    /// Send me the module with this digest.
    GetModule {
        /// sha256 hex.
        digest: String,
    },
    /// A TaskManager without a certificate asks for one (answered with
    /// `Result<Enrolled, String>`); the only message such a connection may send.
    Enrol {
        /// The join token an admin created (`eddy taskmanager-token create`).
        token: String,
        /// A certificate signing request for the TaskManager's new key (PEM).
        csr: String,
    },
    /// A registered TaskManager asks for a new certificate of its identity
    /// before its own expires (answered with `Result<Enrolled, String>`).
    Renew {
        /// A certificate signing request for a new key (PEM).
        csr: String,
    },
}

/// The JobManager closes a connection with this code when its certificate is of a revoked TaskManager.
pub const CLOSE_REVOKED: u32 = 0x52;
/// … and with this one when it is not a TaskManager's (or there is none, and no enrolment).
pub const CLOSE_NOT_A_TASKMANAGER: u32 = 0x53;

/// A certificate the JobManager signed for a TaskManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// The identity it names (`tm-7`): the TaskManager's id from now on.
    pub identity: String,
    /// The certificate (PEM).
    pub certificate: String,
}

/// What one subtask has used, cumulative over its attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskUsage {
    /// Records its source emitted.
    pub records_in: u64,
    /// Records its sinks wrote.
    pub records_out: u64,
    /// Bytes of those records as they entered the job.
    pub bytes_in: u64,
    /// Bytes its sinks wrote.
    pub bytes_out: u64,
    /// CPU time of its thread, in nanoseconds.
    pub cpu_ns: u64,
}

/// What passed through one subtask and how its time went, cumulative over its
/// attempt (`task::LiveStats`); the JobManager derives rates from two of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskStats {
    /// Records that entered it (read by its source, or from its input gate).
    pub records_in: u64,
    /// Records it sent downstream or its sinks wrote.
    pub records_out: u64,
    /// Bytes that entered it.
    pub bytes_in: u64,
    /// Bytes it sent or wrote.
    pub bytes_out: u64,
    /// Wall time since it was deployed, in nanoseconds.
    pub wall_ns: u64,
    /// Time blocked on a full output, in nanoseconds.
    pub backpressured_ns: u64,
    /// Time waiting for input, in nanoseconds.
    pub idle_ns: u64,
    /// The last watermark it sent downstream.
    pub watermark: Option<i64>,
    /// Events in its input gate's queue.
    pub queued: u64,
    /// Room of that queue, in events.
    pub capacity: u64,
    /// Bytes its source read of its input (0 for a task without a source).
    #[serde(default)]
    pub input_read: u64,
    /// The size of that input, if its source knows it (files do, sockets do not).
    #[serde(default)]
    pub input_size: Option<u64>,
}

/// How a subtask ended.
#[derive(Debug, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// Its input ended.
    Finished {
        /// Records its source emitted.
        records_in: u64,
        /// Records its sinks wrote.
        records_out: u64,
    },
    /// It failed; the one-line reason.
    Failed(String),
    /// The job was cancelled (after a failure elsewhere, or by a client).
    Cancelled,
}

/// The JobManager's answer to `Register`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registered {
    /// The id the TaskManager is known by.
    pub id: String,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// After how long without an answer to its heartbeats the TaskManager
    /// takes the JobManager for lost (as the JobManager takes a silent TaskManager).
    pub heartbeat_timeout_ms: u64,
    /// Executions of `running` that the JobManager no longer wants: cancel them.
    pub cancel: Vec<String>,
}

/// A command to a TaskManager.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToTaskManager {
    /// Prepare the subtasks of a job placed in your slots; open their gates.
    Deploy(Box<Deployment>),
    /// Start the job's subtasks (every TaskManager has deployed).
    Start {
        /// The job.
        job: String,
    },
    /// Cancel the job's subtasks and free their slots.
    Cancel {
        /// The job.
        job: String,
    },
    /// Inject this barrier at the job's sources here.
    TriggerCheckpoint {
        /// The job.
        job: String,
        /// The barrier.
        barrier: Barrier,
    },
    /// A checkpoint completed on every task: sinks may commit.
    CheckpointComplete {
        /// The job.
        job: String,
        /// The checkpoint.
        checkpoint: u64,
    },
}

/// The answer to a command.
pub type Ack = Result<(), String>;

/// Everything a TaskManager needs to run its part of a job. `job` is the
/// execution id `JOB@ATTEMPT`: a restarted job's new tasks never meet the old ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployment {
    /// Job id.
    pub job: String,
    /// Which attempt of the job it is (restarts so far): it names the attempt's final checkpoint.
    pub attempt: u32,
    /// The graph and its programs; every node derives the same plan from it. Their
    /// components are fetched with `GetModule` unless cached.
    pub spec: JobSpec,
    /// Default parallelism the job was planned with.
    pub parallelism: u32,
    /// Output buffer timeout, in milliseconds.
    pub buffer_timeout_ms: u64,
    /// For each chain, for each subtask: the TaskManager id running it.
    pub placement: Vec<Vec<String>>,
    /// Data addresses of the TaskManagers involved.
    pub peers: BTreeMap<String, SocketAddr>,
    /// Barrier alignment.
    pub mode: Mode,
    /// Where its tasks write snapshots; none if the job takes no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// The checkpoint or savepoint its tasks restore from.
    pub restore: Option<PathBuf>,
    /// Where keyed state of Wasm operators lives.
    pub state_backend: crate::state::BackendKind,
    /// The tenant it belongs to (for logs and usage); none on a cluster without tenants.
    pub tenant: Option<String>,
    /// Limits of its guest instances: its tenant's quotas.
    pub sandbox: Option<crate::runtime::SandboxConfig>,
    /// What its connectors may reach: its tenant's data root and allow-list.
    pub confinement: crate::connectors::Confinement,
    /// The secrets its connectors name, resolved for its tenant (never persisted, never shown).
    #[serde(default)]
    pub secrets: BTreeMap<String, crate::connectors::kafka::KafkaSecret>,
}

/// First bytes of a data stream: which gate and channel it feeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelHeader {
    /// Job id.
    pub job: String,
    /// Target chain.
    pub chain: usize,
    /// Target subtask.
    pub subtask: u32,
    /// Channel index in the target's input gate.
    pub channel: u32,
}

/// An execution id (`JOB@ATTEMPT`, what the JobManager deploys) as its job id and attempt.
pub fn execution_parts(exec: &str) -> Option<(&str, &str)> {
    exec.rsplit_once('@')
}

/// One subtask's operators' counters in a heartbeat: (execution id, chain, subtask, (name, value)s).
pub type SubtaskCounters = (String, usize, u32, Vec<(String, u64)>);
