//! The `eddy` command line.

/// Prints to stdout like `print!`, except that a reader which went away
/// (`eddy list | head -1`) ends the command quietly, as it ends `cat`,
/// instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}

/// `println!` through [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => { out!("{}\n", format_args!($($arg)*)) };
}

mod logs;
mod tenancy;

pub use tenancy::{AuthArgs, QuotaArgs, TenantCommand, TokenCommand, UsageArgs};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::checkpoint::{CheckpointConfig, Mode, Restored};
use crate::jobmanager::{JobManagerConfig, RestartStrategy};
use serde::Deserialize;
use crate::state::BackendKind;
use crate::local::{CheckpointSettings, JobOptions, LocalCluster};
use crate::runtime::{read_component, Runtime, SandboxConfig};
use crate::task::JobSignals;

/// Eddy runs stream processing jobs whose operators are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: plan ENTRY of the component with the job arguments (or
    /// compose a job file of several components) and execute it, on the
    /// cluster given by `-m` (or EDDY_JOBMANAGER) or else on the embedded
    /// cluster. Embedded, bounded jobs end when their input does; unbounded
    /// ones run until Ctrl-C, which ends the sources and flushes the sinks. On
    /// a cluster, `eddy run` uploads the components the cluster lacks, submits
    /// the job and follows it until it ends; Ctrl-C leaves it running.
    #[command(arg_required_else_help = true)]
    Run(RunArgs),
    /// Print the plan of a job: operators, parallelism, chains, edges, slots.
    #[command(arg_required_else_help = true)]
    Info(InfoArgs),
    /// List the entries (jobs) a component offers.
    #[command(arg_required_else_help = true)]
    Entries(EntriesArgs),
    /// Run a JobManager: the HTTP API for clients and the QUIC endpoint that
    /// TaskManagers register with. Creates the cluster CA on first start.
    Jobmanager(JobManagerArgs),
    /// Run a TaskManager: registers its slots with the JobManager and runs
    /// the subtasks deployed to them.
    #[command(arg_required_else_help = true)]
    Taskmanager(TaskManagerArgs),
    /// List the jobs of a cluster: id, status, name.
    List(ConnectArgs),
    /// Cancel a job on a cluster.
    #[command(arg_required_else_help = true)]
    Cancel(CancelArgs),
    /// Upload a component to a cluster (unless it has it) and print its id.
    #[command(arg_required_else_help = true)]
    Upload(UploadArgs),
    /// List the TaskManagers of a cluster and their slots.
    Taskmanagers(ConnectArgs),
    /// Take a savepoint of a running job (into DIR, or the job's checkpoint
    /// directory) and print where it is; resume from it with `eddy run -s`.
    #[command(arg_required_else_help = true)]
    Savepoint(SavepointArgs),
    /// Stop a job gracefully: with `--savepoint`, take a savepoint, commit
    /// the sinks' output up to it and end the job without draining it.
    #[command(arg_required_else_help = true)]
    Stop(StopArgs),
    /// Start or stop a cluster of background processes on this machine.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, change, list and delete tenants (admin key).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Create, list and revoke API keys (admin key).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create, list and revoke join tokens, with which TaskManagers enrol (admin key).
    #[command(subcommand, name = "taskmanager-token")]
    TaskmanagerToken(tenancy::JoinTokenCommand),
    /// Revoke a TaskManager: disconnect it and refuse its certificates from now on (admin key).
    #[command(arg_required_else_help = true, name = "revoke-taskmanager")]
    RevokeTaskmanager(tenancy::RevokeTaskManagerArgs),
    /// Show what a tenant's jobs used, per minute and job: CPU time, records and
    /// bytes in and out, slot time.
    Usage(UsageArgs),
    /// Print what a job's operators logged lately on its TaskManagers (the
    /// last 1000 lines the JobManager keeps); `--follow` prints new ones as
    /// they come.
    #[command(arg_required_else_help = true)]
    Logs(logs::LogsArgs),
}

/// How to reach a cluster's JobManager.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The JobManager's HTTP address (its `--bind`).
    #[arg(short = 'm', long, value_name = "HOST:PORT", env = "EDDY_JOBMANAGER", default_value = "127.0.0.1:8081")]
    pub jobmanager: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthArgs,
}

/// `eddy cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job's id (as `eddy run` and `eddy list` print it).
    #[arg(value_name = "JOB")]
    pub job: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

/// `eddy savepoint`.
#[derive(Debug, Args)]
pub struct SavepointArgs {
    /// The job's id.
    #[arg(value_name = "JOB")]
    pub job: String,
    /// Directory to put the savepoint in (must be reachable by every TaskManager's host).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

/// `eddy stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Take a savepoint first (required: a stop without one is `eddy cancel`).
    #[arg(long)]
    pub savepoint: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub target: SavepointArgs,
}

/// Checkpoints, recovery and savepoints of a job.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Take a checkpoint every DURATION (like 500ms, 1s, 1m); off by default.
    #[arg(long, value_name = "DURATION", value_parser = crate::jobmanager::parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// `exactly-once` aligns barriers, so each record counts once after a
    /// recovery; `at-least-once` does not wait for alignment (lower latency,
    /// but records may count twice after a recovery).
    #[arg(long, value_enum, value_name = "MODE", default_value = "exactly-once")]
    pub checkpointing_mode: Mode,
    /// Completed checkpoints to keep (older ones are deleted).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub checkpoints_retained: u64,
    /// Where checkpoints are written: a directory, or s3://BUCKET/PREFIX of an
    /// S3-compatible store (AWS_* variables give its endpoint and credentials)
    /// [embedded default: ./eddy-checkpoints; on a cluster: the JobManager's --checkpoint-dir].
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub checkpoint_dir: Option<PathBuf>,
    /// What a cluster does when a task fails or a TaskManager is lost: none,
    /// fixed-delay:ATTEMPTS:DELAY, exponential-delay:INITIAL:MAX or
    /// failure-rate:MAX_FAILURES:INTERVAL:DELAY [default: exponential-delay:1s:1m
    /// with checkpoints, none without].
    #[arg(long, value_name = "STRATEGY")]
    pub restart_strategy: Option<RestartStrategy>,
    /// Where keyed state of Wasm operators lives: `memory` (fastest), or
    /// `disk` / `disk:DIR` (an embedded redb database per subtask, for state
    /// larger than memory; a path local to each TaskManager).
    #[arg(long, value_name = "BACKEND", default_value = "memory")]
    pub state_backend: BackendKind,
    /// Resume from a savepoint or a retained checkpoint (its directory);
    /// keyed state moves to the new parallelism, operators match by uid.
    #[arg(short = 's', long = "from-savepoint", value_name = "PATH")]
    pub from_savepoint: Option<PathBuf>,
    /// Resume even if the savepoint has state for operators (uids) the job no longer has; that state is dropped.
    #[arg(long, requires = "from_savepoint")]
    pub allow_non_restored_state: bool,
}

impl CheckpointArgs {
    /// The checkpoint settings, if checkpoints are on.
    pub fn config(&self) -> Option<CheckpointConfig> {
        self.checkpoint_interval.map(|i| CheckpointConfig {
            interval: Some(i),
            mode: self.checkpointing_mode,
            retained: self.checkpoints_retained as usize,
            ..CheckpointConfig::default()
        })
    }
}

/// `eddy upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The job component (`.wasm`).
    #[arg(value_name = "JOB.wasm")]
    pub component: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

/// `eddy cluster`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a JobManager and TaskManagers in the background (like Flink's
    /// start-cluster.sh) and print the address to pass to `eddy run -m`.
    Start(ClusterStartArgs),
    /// Stop the processes `eddy cluster start` started.
    Stop(ClusterStopArgs),
}

/// `eddy cluster start`.
#[derive(Debug, Args)]
pub struct ClusterStartArgs {
    /// Number of TaskManagers.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub taskmanagers: u32,
    /// Task slots per TaskManager.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub slots: u32,
    /// The cluster's directory: JobManager state, CA, pids, logs
    /// [default: ~/.local/share/eddy/local-cluster].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Declare a TaskManager lost after this many seconds without a heartbeat.
    #[arg(long, value_name = "SECONDS")]
    pub heartbeat_timeout: Option<f64>,
}

/// `eddy cluster stop`.
#[derive(Debug, Args)]
pub struct ClusterStopArgs {
    /// The cluster's directory [default: ~/.local/share/eddy/local-cluster].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `eddy jobmanager`.
#[derive(Debug, Args)]
pub struct JobManagerArgs {
    /// A TOML file with any of these settings (flags override it), e.g. `bind = "0.0.0.0:8081"`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API (what clients pass to `-m`) [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Address of the cluster's QUIC endpoint (what TaskManagers pass to `--jobmanager`) [default: 127.0.0.1:6123].
    #[arg(long, value_name = "ADDR")]
    pub rpc_bind: Option<SocketAddr>,
    /// Where the database (tenants, API keys, job history), uploaded modules, the
    /// cluster CA and, on first start, the admin key (`admin.token`) are kept
    /// [default: ~/.local/share/eddy/cluster].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Declare a TaskManager lost after this many seconds without a
    /// heartbeat (they beat every 0.5 s); lower means faster recovery, but
    /// a TaskManager stalled that long is taken for dead [default: 3].
    #[arg(long, value_name = "SECONDS")]
    pub heartbeat_timeout: Option<f64>,
    /// Where jobs' checkpoints go, one directory per job: a directory every
    /// TaskManager reaches at the same path (a shared filesystem), or
    /// s3://BUCKET/PREFIX of an S3-compatible store, which the JobManager and
    /// every TaskManager reach with AWS_ENDPOINT, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ALLOW_HTTP=true for plain HTTP)
    /// [default: STATE_DIR/checkpoints].
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Fail a job that waited this many seconds for free slots [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub slot_timeout: Option<f64>,
    /// Largest component accepted by `POST /jars/upload`, in MiB [default: 256].
    #[arg(long, value_name = "MiB")]
    pub max_upload: Option<u64>,
    /// Serve the HTTP API over TLS even on a loopback address (on any other
    /// address it always is), with a certificate from the cluster CA; clients
    /// trust it with `--ca STATE_DIR/ca.pem`.
    #[arg(long)]
    pub tls: bool,
    /// A name (DNS name or IP address) clients reach the HTTP API by, for the
    /// cluster CA's certificate (repeat for more) [default: the bind address, localhost, 127.0.0.1].
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,
    /// Serve TLS with this certificate chain (PEM) instead of one from the cluster CA.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long the certificate the JobManager signs for an enrolled TaskManager
    /// is valid, like 24h or 30m (TaskManagers renew at two thirds of it; at least 10s) [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = crate::jobmanager::parse_duration)]
    pub taskmanager_cert_lifetime: Option<Duration>,
    /// Keep the JobManager's state in this PostgreSQL database
    /// (postgres://USER[:PASSWORD]@HOST:PORT/DB) instead of the state directory's
    /// redb, so that standby JobManagers started with the same database take over
    /// when the leader dies: each waits for the leadership lease, then resumes every
    /// job. Checkpoints must then be where every JobManager reaches them
    /// (--checkpoint-dir on a shared filesystem or s3://). There is no TLS to
    /// PostgreSQL: a host other than loopback needs ?sslmode=disable in the URL.
    #[arg(long, value_name = "URL", env = "EDDY_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// How long the leadership lease lasts unless the leader renews it (every
    /// quarter of it): how soon a standby takes over, like 5s [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = crate::jobmanager::parse_duration)]
    pub leader_lease: Option<Duration>,
    /// A TOML file of the credentials jobs' Kafka connectors may name
    /// (`[kafka.NAME]` with tenant, security-protocol, sasl-mechanism,
    /// username, password, ca-file; see docs/kafka.md). A job names a secret,
    /// never a password; each secret serves one tenant's jobs.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

/// `eddy taskmanager`.
#[derive(Debug, Args)]
pub struct TaskManagerArgs {
    /// The JobManager's QUIC address (its `--rpc-bind`); with standby
    /// JobManagers, every one's, comma-separated: it registers with the leader.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT…]")]
    pub jobmanager: String,
    /// Number of task slots offered.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub slots: u32,
    /// Address of this TaskManager's data endpoint (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub bind: SocketAddr,
    /// The cluster CA's certificate (the JobManager's STATE_DIR/ca.pem, copied
    /// here): the only key material a TaskManager starts with [default: STATE_DIR/ca.pem].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// A join token from `eddy taskmanager-token create`, to enrol: the
    /// JobManager signs this TaskManager a certificate of its own. Needed when
    /// --state-dir holds no valid certificate; prefer the variable, as other
    /// users of this machine can read command lines.
    #[arg(long, value_name = "TOKEN", env = "EDDY_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Where to keep this TaskManager's certificate and key between runs (so a
    /// restart needs no token) [default: nowhere; every start enrols].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// How long to keep trying to register with the JobManager, at start and after losing it
    /// (a JobManager restart, a network partition): `300s`, `5m`, `0s` to give up at once.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::jobmanager::parse_duration)]
    pub reconnect_timeout: std::time::Duration,
    /// Serve this TaskManager's Prometheus metrics (slots, subtasks, sandboxes;
    /// docs/metrics.md) at http://ADDR/metrics [default: not served].
    #[arg(long, value_name = "ADDR")]
    pub metrics_bind: Option<SocketAddr>,
    /// A file holding the bearer token scrapes of --metrics-bind must send
    /// (needed off loopback: the figures name tenants' jobs).
    #[arg(long, value_name = "FILE", requires = "metrics_bind")]
    pub metrics_token_file: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

/// Which job: component, entry and arguments.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's entry in the component (like Flink's `-c MainClass`); not with a job file.
    #[arg(short = 'c', long = "entry", value_name = "ENTRY")]
    pub entry: Option<String>,
    /// Default parallelism of operators that do not set their own.
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32768))]
    pub parallelism: u32,
    /// The job component (`.wasm`), or a job file (`.toml`) whose steps use operator
    /// entries of several components (docs/writing-operators.md).
    #[arg(value_name = "JOB.wasm|JOB.toml")]
    pub component: PathBuf,
    /// Arguments for the job, passed to its planner (e.g. `--input FILE`).
    #[arg(value_name = "JOB ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub job_args: Vec<String>,
}

/// Limits and caches of the Wasm runtime.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Largest linear memory one operator instance may use, in MiB; with `run -m`,
    /// what the job asks of the cluster (at most its tenant's quota) [default: 512;
    /// on a cluster: the tenant's quota].
    #[arg(long, value_name = "MiB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub memory_limit: Option<u64>,
    /// Longest time one call into an operator (one batch) may take, in
    /// seconds, also when it waits in a WASI call such as a sleep; with `run -m`,
    /// what the job asks of the cluster [default: 10; on a cluster: the tenant's quota].
    #[arg(long, value_name = "SECONDS")]
    pub call_timeout: Option<f64>,
    /// Keyed state one job may keep in this process, in MiB: value, list and
    /// map state, timers and window buffers of all its subtasks here. A write
    /// past it fails the job [default: unbounded].
    #[arg(long, value_name = "MiB", value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub state_quota: Option<u64>,
    /// Timers one subtask may keep; registering more fails the job [default: unbounded].
    #[arg(long, value_name = "N")]
    pub max_timers: Option<u64>,
    /// Distinct counter names one job may use in this process; a new one
    /// past it fails the job.
    #[arg(long, value_name = "N", default_value_t = crate::runtime::DEFAULT_COUNTERS)]
    pub max_counters: u64,
    /// Guest log lines (log calls, stdout, stderr) one job may write in this
    /// process, in KiB per second; lines past it are dropped, and a warning
    /// says how many.
    #[arg(long, value_name = "KiB/s", default_value_t = crate::runtime::DEFAULT_LOG_BYTES_PER_SECOND >> 10,
          value_parser = clap::value_parser!(u64).range(0..=1 << 40))]
    pub log_rate: u64,
    /// Where compiled components are cached [default: $XDG_CACHE_HOME/eddy or ~/.cache/eddy].
    #[arg(long, value_name = "DIR", env = "EDDY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile components on every run instead of caching compiled code.
    #[arg(long)]
    pub no_cache: bool,
}

/// `eddy run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run on the embedded cluster in this process (the default while no
    /// cluster is configured), even if EDDY_JOBMANAGER is set.
    #[arg(long)]
    pub local: bool,
    /// Submit the job to the cluster whose JobManager's HTTP API is at HOST:PORT.
    #[arg(short = 'm', long, value_name = "HOST:PORT", env = "EDDY_JOBMANAGER")]
    pub jobmanager: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthArgs,
    /// Longest time a record waits in an output buffer before it is sent,
    /// in milliseconds: lower means lower latency, higher fuller batches.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub buffer_timeout: u64,
    /// On the embedded cluster: a TOML file of the credentials the job's Kafka
    /// connectors may name (`[kafka.NAME]`, see docs/kafka.md; secrets without a
    /// tenant). A cluster's JobManager has its own (`eddy jobmanager --secrets`).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// No progress bar. (It shows only on a terminal, for a bounded job; on the
    /// embedded cluster, for one that does not print its records there.)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub checkpoints: CheckpointArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

/// `eddy info`: a component's plan, or where a cluster job's subtasks run.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Show job JOB of the cluster at `-m` instead: its tasks and, for each subtask, the
    /// TaskManager and slot that hold it.
    #[arg(long, value_name = "JOB", conflicts_with_all = ["entry", "component"])]
    pub job: Option<String>,
    /// The job's entry in the component.
    #[arg(short = 'c', long = "entry", value_name = "ENTRY")]
    pub entry: Option<String>,
    /// Default parallelism of operators that do not set their own.
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32768))]
    pub parallelism: u32,
    /// The job component (`.wasm`) or job file (`.toml`).
    #[arg(value_name = "JOB.wasm|JOB.toml", required_unless_present = "job")]
    pub component: Option<PathBuf>,
    /// Arguments for the job's planner.
    #[arg(value_name = "JOB ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub job_args: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

/// `eddy entries`.
#[derive(Debug, Args)]
pub struct EntriesArgs {
    /// The job component (`.wasm`).
    #[arg(value_name = "JOB.wasm")]
    pub component: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub runtime: RuntimeArgs,
}

impl RuntimeArgs {
    /// `--call-timeout`, if given, checked.
    fn call_timeout_checked(&self) -> anyhow::Result<Option<f64>> {
        match self.call_timeout {
            Some(t) if !(t > 0.0 && t <= 86_400.0) => anyhow::bail!("--call-timeout must be between 0 and 86400 seconds, not {t}"),
            t => Ok(t),
        }
    }

    /// The Wasm runtime these flags describe.
    pub fn runtime(&self) -> anyhow::Result<Runtime> {
        let call_timeout = self.call_timeout_checked()?.unwrap_or(10.0);
        let sandbox = SandboxConfig {
            memory_limit_bytes: self.memory_limit.unwrap_or(512) << 20,
            call_timeout: Duration::from_secs_f64(call_timeout),
            state_bytes: self.state_quota.map(|m| m << 20),
            timers_per_subtask: self.max_timers,
            counters: Some(self.max_counters),
            log_bytes_per_second: Some(self.log_rate << 10),
        };
        let cache = if self.no_cache { None } else { self.cache_dir.clone().or_else(default_cache_dir) };
        Runtime::new(sandbox, cache)
    }
}

/// The optional settings of a `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    bind: Option<SocketAddr>,
    rpc_bind: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    heartbeat_timeout: Option<f64>,
    slot_timeout: Option<f64>,
    max_upload: Option<u64>,
    checkpoint_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration_text")]
    taskmanager_cert_lifetime: Option<Duration>,
    database: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    leader_lease: Option<Duration>,
    secrets: Option<PathBuf>,
}

/// A duration of a config file, written as on the command line (`24h`).
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    crate::jobmanager::parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
}

/// A JobManager's settings: flags over the config file over defaults.
fn jobmanager_config(a: &JobManagerArgs) -> anyhow::Result<JobManagerConfig> {
    let file: ConfigFile = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?
        }
        None => ConfigFile::default(),
    };
    let config = JobManagerConfig {
        bind: a.bind.or(file.bind).unwrap_or_else(|| "127.0.0.1:8081".parse().unwrap()),
        rpc_bind: a.rpc_bind.or(file.rpc_bind).unwrap_or_else(|| "127.0.0.1:6123".parse().unwrap()),
        state_dir: a.state_dir.clone().or(file.state_dir).unwrap_or_else(default_state_dir),
        heartbeat_timeout: a.heartbeat_timeout.or(file.heartbeat_timeout).unwrap_or(3.0),
        slot_timeout: a.slot_timeout.or(file.slot_timeout).unwrap_or(300.0),
        max_upload: a.max_upload.or(file.max_upload).unwrap_or(256),
        checkpoint_dir: PathBuf::new(),
        http_tls: crate::jobmanager::HttpTls::Plain,
        taskmanager_cert_lifetime: a.taskmanager_cert_lifetime.or(file.taskmanager_cert_lifetime).unwrap_or(Duration::from_secs(86_400)),
        database: a.database.clone().or(file.database).filter(|d| !d.trim().is_empty()),
        leader_lease: a.leader_lease.or(file.leader_lease).unwrap_or(Duration::from_secs(5)),
        secrets: match a.secrets.clone().or(file.secrets) {
            Some(path) => crate::connectors::kafka::SecretsFile::load(&path)?,
            None => Default::default(),
        },
    };
    if config.leader_lease < Duration::from_millis(500) || config.leader_lease > Duration::from_secs(600) {
        anyhow::bail!("leader-lease must be 500ms to 10m, not {:?}", config.leader_lease);
    }
    if config.taskmanager_cert_lifetime < Duration::from_secs(10) || config.taskmanager_cert_lifetime > Duration::from_secs(365 * 86_400) {
        anyhow::bail!("taskmanager-cert-lifetime must be 10s to 365d, not {:?}", config.taskmanager_cert_lifetime);
    }
    let mut config = config;
    config.checkpoint_dir =
        a.checkpoint_dir.clone().or(file.checkpoint_dir).unwrap_or_else(|| config.state_dir.join("checkpoints"));
    config.http_tls = http_tls(a, config.bind);
    for (name, v) in [("heartbeat-timeout", config.heartbeat_timeout), ("slot-timeout", config.slot_timeout)] {
        if !(v > 0.0 && v < 1e7) {
            anyhow::bail!("{name} must be a positive number of seconds, not {v}");
        }
    }
    Ok(config)
}

/// Plain HTTP on a loopback address unless asked for TLS; TLS everywhere else.
fn http_tls(a: &JobManagerArgs, bind: SocketAddr) -> crate::jobmanager::HttpTls {
    use crate::jobmanager::HttpTls;
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        return HttpTls::Files { cert: cert.clone(), key: key.clone() };
    }
    if !a.tls && bind.ip().is_loopback() {
        return HttpTls::Plain;
    }
    let mut names = a.tls_names.clone();
    if !bind.ip().is_unspecified() {
        names.push(bind.ip().to_string());
    }
    names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    names.dedup();
    HttpTls::ClusterCa(names)
}

/// Where a cluster keeps its state (modules, CA) unless told otherwise.
pub fn default_state_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("eddy/cluster")
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("eddy"))
}

/// What `run` and `info` plan: an entry of one component, or a job file.
enum Target<'a> {
    Entry { component: &'a Path, entry: &'a str, args: &'a [String] },
    File(&'a Path),
}

impl<'a> Target<'a> {
    /// A `.toml` path is a job file; anything else a component, which needs `-c ENTRY`.
    fn new(path: &'a Path, entry: Option<&'a str>, args: &'a [String]) -> anyhow::Result<Target<'a>> {
        if path.extension().is_some_and(|e| e == "toml") {
            anyhow::ensure!(entry.is_none(), "-c ENTRY does not go with a job file: its steps name their entries");
            anyhow::ensure!(args.is_empty(), "a job file takes no job arguments (give each step its `args`), got {args:?}");
            return Ok(Target::File(path));
        }
        let entry = entry.context("missing -c ENTRY: which of the component's jobs to run (`eddy entries JOB.wasm` lists them)")?;
        Ok(Target::Entry { component: path, entry, args })
    }

    /// Loads and plans the job on this machine.
    fn plan(&self, cluster: &LocalCluster, parallelism: u32) -> anyhow::Result<(Vec<crate::runtime::Module>, crate::plan::ExecutionPlan)> {
        Ok(match *self {
            Target::Entry { component, entry, args } => {
                let (name, bytes) = read_component(component)?;
                cluster.plan(&name, &bytes, entry, args, parallelism)?
            }
            Target::File(path) => {
                let file = crate::jobfile::JobFile::read(path)?;
                cluster.plan_job_file(&file, path.parent().unwrap_or(Path::new(".")), parallelism)?
            }
        })
    }
}

/// Resolves `HOST:PORT` to one socket address.
pub fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr} (expected HOST:PORT)"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))
}

/// Writes what `out!` formatted. Output the user's reader can no longer take
/// is the end of the command, not an error: exit 0, as ripgrep does.
#[doc(hidden)]
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Runs the command; errors reach `main`, which prints them on one line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Entries(a) => {
            let (name, bytes) = read_component(&a.component)?;
            let module = a.runtime.runtime()?.load(&name, &bytes)?;
            for e in module.entries().map_err(|e| anyhow::anyhow!("listing entries of {name} failed: {e}"))? {
                outln!("{e}");
            }
        }
        Command::Jobmanager(a) => {
            let runtime = a.runtime.runtime()?;
            let config = jobmanager_config(&a)?;
            crate::jobmanager::run(config, runtime)?;
        }
        Command::Taskmanager(a) => {
            let runtime = a.runtime.runtime()?;
            let jobmanagers = a.jobmanager.split(',').map(|j| resolve(j.trim())).collect::<anyhow::Result<Vec<_>>>()?;
            let config = crate::taskmanager::TaskManagerConfig {
                jobmanagers,
                slots: a.slots,
                bind: a.bind,
                ca: match (&a.ca, &a.state_dir) {
                    (Some(ca), _) => ca.clone(),
                    (None, Some(dir)) => dir.join("ca.pem"),
                    (None, None) => anyhow::bail!("a TaskManager needs the cluster CA's certificate: --ca FILE (the JobManager's STATE_DIR/ca.pem)"),
                },
                join_token: a.join_token.clone().filter(|t| !t.trim().is_empty()),
                state_dir: a.state_dir.clone(),
                reconnect_timeout: a.reconnect_timeout,
                metrics: match a.metrics_bind {
                    None => None,
                    Some(bind) => {
                        let token = match &a.metrics_token_file {
                            None => None,
                            Some(f) => {
                                let t = std::fs::read_to_string(f).with_context(|| format!("cannot read --metrics-token-file {}", f.display()))?;
                                anyhow::ensure!(!t.trim().is_empty(), "--metrics-token-file {} is empty", f.display());
                                Some(t.trim().to_string())
                            }
                        };
                        Some(crate::taskmanager::metrics::MetricsEndpoint { bind, token })
                    }
                },
            };
            crate::taskmanager::run(config, runtime)?;
        }
        Command::Info(a) => match (&a.job, &a.entry, &a.component) {
            (Some(job), _, _) => {
                let client = connect(&a.connect)?;
                out!("{}", crate::client::format_placement(&client.job_details(job)?));
            }
            (None, entry, Some(component)) => {
                let target = Target::new(component, entry.as_deref(), &a.job_args)?;
                let (_, plan) = target.plan(&LocalCluster::new(a.runtime.runtime()?), a.parallelism)?;
                out!("{plan}");
            }
            _ => anyhow::bail!("eddy info needs a component with -c ENTRY, a job file, or --job JOB"),
        },
        Command::Run(a) if !a.local && a.jobmanager.as_deref().is_some_and(|m| !m.trim().is_empty()) => {
            let addr = a.jobmanager.as_deref().unwrap_or_default();
            anyhow::ensure!(a.secrets.is_none(), "--secrets applies to the embedded cluster; a cluster's JobManager has its own (eddy jobmanager --secrets)");
            let c = &a.checkpoints;
            let settings = crate::client::RunSettings {
                parallelism: a.job.parallelism,
                buffer_timeout_ms: a.buffer_timeout,
                checkpoint: c.config(),
                checkpoint_dir: c.checkpoint_dir.as_ref().map(|d| absolute(d)).transpose()?,
                restart_strategy: c.restart_strategy.clone(),
                // As given: a tenant names a savepoint relative to its savepoint root.
                savepoint: c.from_savepoint.clone(),
                state_backend: c.state_backend.clone(),
                allow_non_restored_state: c.allow_non_restored_state,
                memory_limit_mib: a.runtime.memory_limit,
                call_timeout_ms: a.runtime.call_timeout_checked()?.map(|s| (s * 1000.0).ceil() as u64),
            };
            run_on_cluster(a.auth.client(addr)?, addr, &a.job, settings, a.quiet)?;
        }
        Command::List(c) => {
            let jobs = connect(&c)?.jobs()?;
            out!("{}", crate::client::jobs_table(&jobs));
        }
        Command::Taskmanagers(c) => {
            let tms = connect(&c)?.taskmanagers()?;
            out!("{}", crate::client::taskmanagers_table(&tms));
        }
        Command::Savepoint(a) => {
            let location = take_savepoint(&a, false)?;
            outln!("Savepoint completed: {location}");
        }
        Command::Stop(a) => {
            anyhow::ensure!(a.savepoint, "eddy stop needs --savepoint (eddy cancel stops a job without one)");
            let location = take_savepoint(&a.target, true)?;
            outln!("Job {} stopped with savepoint {location}", a.target.job);
        }
        Command::Cancel(a) => {
            connect(&a.connect)?.cancel(&a.job)?;
            outln!("Cancelled job {}", a.job);
        }
        Command::Upload(a) => {
            let (name, bytes) = read_component(&a.component)?;
            let up = connect(&a.connect)?.upload(&name, &bytes)?;
            if up.uploaded {
                eprintln!("Uploaded {name}");
            } else {
                eprintln!("{name} is already on the cluster");
            }
            outln!("{}", up.digest);
        }
        Command::Cluster(ClusterCommand::Start(a)) => {
            let dir = a.state_dir.clone().unwrap_or_else(crate::cluster_cmd::default_dir);
            let options = crate::cluster_cmd::StartOptions {
                dir: dir.clone(),
                taskmanagers: a.taskmanagers,
                slots: a.slots,
                heartbeat_timeout: a.heartbeat_timeout,
            };
            let jm = crate::cluster_cmd::start(&options)?;
            let stop = match &a.state_dir {
                Some(d) => format!("eddy cluster stop --state-dir {}", d.display()),
                None => "eddy cluster stop".to_string(),
            };
            outln!("Cluster started: eddy run -m {} -c ENTRY JOB.wasm ...", jm.http);
            outln!(
                "  {} TaskManager(s) with {} slot(s) each; TaskManagers connect to {}; logs in {}",
                a.taskmanagers,
                a.slots,
                jm.rpc,
                dir.join("log").display()
            );
            outln!("  admin key in {} (commands on this machine use it by default)", dir.join(crate::jobmanager::ADMIN_KEY_FILE).display());
            outln!("  stop it with: {stop}");
            outln!("{}", jm.http);
        }
        Command::Tenant(c) => tenancy::tenant(c)?,
        Command::Token(c) => tenancy::token(c)?,
        Command::TaskmanagerToken(c) => tenancy::join_token(c)?,
        Command::RevokeTaskmanager(a) => tenancy::revoke_taskmanager(a)?,
        Command::Usage(a) => tenancy::usage(a)?,
        Command::Logs(a) => logs::run(&a)?,
        Command::Cluster(ClusterCommand::Stop(a)) => {
            let dir = a.state_dir.clone().unwrap_or_else(crate::cluster_cmd::default_dir);
            let n = crate::cluster_cmd::stop(&dir)?;
            if n == 0 {
                outln!("Stopped 0 processes (no cluster was running from {})", dir.display());
            } else {
                outln!("Stopped {n} process{} of the cluster in {}", if n == 1 { "" } else { "es" }, dir.display());
            }
        }
        Command::Run(a) => {
            let job = &a.job;
            let target = Target::new(&job.component, job.entry.as_deref(), &job.job_args)?;
            let cluster = LocalCluster::new(a.runtime.runtime()?);
            let (modules, plan) = target.plan(&cluster, job.parallelism)?;
            let bar = (!a.quiet).then(|| progress_bar(&plan)).flatten();
            let cluster = match &bar {
                Some(bar) => cluster.on_progress(bar.hook()),
                None => cluster,
            };
            let c = &a.checkpoints;
            anyhow::ensure!(c.restart_strategy.is_none(), "--restart-strategy applies to jobs on a cluster (-m); the embedded cluster does not restart jobs");
            let restore = match &c.from_savepoint {
                Some(path) => {
                    let r = Restored::load(path)?;
                    r.check(plan.max_parallelism, &crate::task::state_uids(&plan), c.allow_non_restored_state)?;
                    eprintln!("Resuming from {} (checkpoint {})", path.display(), r.meta.checkpoint);
                    Some(Arc::new(r))
                }
                None => None,
            };
            let run_id = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis());
            let secrets = match &a.secrets {
                Some(path) => crate::connectors::kafka::SecretsFile::load(path)?,
                None => Default::default(),
            };
            let options = JobOptions {
                buffer_timeout: Duration::from_millis(a.buffer_timeout),
                restore,
                run_id: run_id.clone(),
                state_backend: c.state_backend.clone(),
                secrets: secrets.for_job(crate::connectors::kafka::secret_names(&plan.vertices), None)?,
                ..JobOptions::default()
            };
            let checkpoints = c.config().map(|config| CheckpointSettings {
                config,
                dir: c.checkpoint_dir.clone().unwrap_or_else(|| PathBuf::from("eddy-checkpoints")).join(format!("{}-{run_id}", plan.name.replace(['/', ' '], "_"))),
            });
            let signals = Arc::new(JobSignals::default());
            install_ctrl_c(&signals);
            eprintln!("Running job '{}' ({} tasks in {} slots) on the embedded cluster", plan.name, plan.chains.len(), plan.slots.len());
            let result = cluster.execute(&modules, &plan, &options, checkpoints.as_ref(), signals);
            if let Some(bar) = &bar {
                bar.finish();
            }
            let summary = result?;
            eprintln!(
                "Job '{}' finished in {:.3} s: {} records in, {} records out",
                summary.name,
                summary.duration.as_secs_f64(),
                summary.records_in,
                summary.records_out
            );
            for (k, v) in &summary.counters {
                eprintln!("  counter {k} = {v}");
            }
            if let Some(c) = &summary.checkpoints {
                eprintln!("  checkpoints: {} completed, {} failed, latest {}", c["completed"], c["failed"], c["latest"]);
                for h in c["history"].as_array().into_iter().flatten().filter(|h| h["status"] == "COMPLETED") {
                    let mib = h["state-bytes"].as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
                    eprintln!("    checkpoint {}: {mib:.1} MiB in {} ms (processing paused {} ms)", h["id"], h["duration-ms"], h["sync-ms"]);
                }
            }
        }
    }
    Ok(())
}

/// `eddy run`'s progress bar: bytes read against the input's size where every
/// source knows it (a spinner where not), records per second, elapsed time.
#[derive(Clone)]
struct RunProgress {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    /// The bar has its length (the inputs' size), and a bar's style.
    sized: Arc<std::sync::atomic::AtomicBool>,
}

/// A bar for `plan` on the embedded cluster: a bounded job whose records do not
/// go to the terminal the bar is drawn on.
fn progress_bar(plan: &crate::plan::ExecutionPlan) -> Option<RunProgress> {
    let prints = plan.vertices.iter().any(|v| matches!(v.kind, crate::runtime::VertexKind::PrintSink));
    if !plan.bounded || prints {
        return None;
    }
    terminal_bar()
}

/// A bar, when stdout and stderr are a terminal to draw it on.
fn terminal_bar() -> Option<RunProgress> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("a valid template"));
    Some(RunProgress { bar, started: std::time::Instant::now(), sized: Arc::default() })
}

impl RunProgress {
    /// Draws how far the job is.
    fn update(&self, p: crate::local::JobProgress) {
        if let Some(size) = p.input_size {
            if !self.sized.swap(true, Ordering::Relaxed) {
                self.bar.set_style(
                    indicatif::ProgressStyle::with_template("{elapsed:>4} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {msg}")
                        .expect("a valid template")
                        .progress_chars("=> "),
                );
                self.bar.set_length(size);
            }
            self.bar.set_position(p.input_read.min(size));
        } else {
            self.bar.tick();
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{} records in, {:.0}/s", p.records_in, p.records_in as f64 / secs));
    }

    /// What the embedded cluster calls with the job's progress.
    fn hook(&self) -> crate::local::ProgressHook {
        let me = self.clone();
        Arc::new(move |p| me.update(p))
    }

    /// Prints a line above the bar.
    fn say(&self, line: &str) {
        self.bar.suspend(|| outln!("{line}"));
    }

    /// Clears the bar: the summary line follows.
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// First Ctrl-C: sources end and the job drains (sinks flushed). Second: exit now.
fn install_ctrl_c(signals: &Arc<JobSignals>) {
    let signals = signals.clone();
    let _ = ctrlc::set_handler(move || {
        if signals.stop.swap(true, Ordering::Relaxed) {
            eprintln!("second interrupt: exiting without draining");
            std::process::exit(130);
        }
        eprintln!("stopping: ending sources and flushing sinks (Ctrl-C again to exit now)");
    });
}

/// `POST /jobs/{id}/savepoints`; returns the savepoint's location.
fn take_savepoint(a: &SavepointArgs, stop: bool) -> anyhow::Result<String> {
    let dir = a.dir.as_ref().map(|d| absolute(d)).transpose()?;
    Ok(connect(&a.connect)?.savepoint(&a.job, dir.as_deref(), stop)?)
}

/// Paths sent to a cluster must not depend on the client's working directory.
/// A directory made absolute; an `s3://` location as it is.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if crate::checkpoint::objects::is_object_url(path) {
        return Ok(path.to_path_buf());
    }
    std::path::absolute(path).with_context(|| format!("bad path {}", path.display()))
}

fn connect(c: &ConnectArgs) -> anyhow::Result<crate::client::Client> {
    c.auth.client(&c.jobmanager)
}

/// How often `eddy run -m` asks for the job's status.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often it prints the progress of a running job, at most.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long it keeps trying while the JobManager cannot be reached.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(10);

/// `eddy run -m`: uploads the component (unless the cluster has it), submits
/// the job and follows it until it ends.
fn run_on_cluster(client: crate::client::Client, addr: &str, job: &JobArgs, settings: crate::client::RunSettings, quiet: bool) -> anyhow::Result<()> {
    use crate::client::ClientError;
    // Each component goes up once; the cluster keeps it by digest.
    let upload = |path: &Path| -> anyhow::Result<String> {
        let (name, bytes) = read_component(path)?;
        let up = client.upload(&name, &bytes)?;
        if up.uploaded {
            outln!("Uploaded {name} as {}", up.digest);
        } else {
            outln!("{name} is already on the cluster ({})", up.digest);
        }
        Ok(up.digest)
    };
    let id = match Target::new(&job.component, job.entry.as_deref(), &job.job_args)? {
        Target::Entry { component, entry, args } => client.run(&upload(component)?, entry, args, settings)?,
        Target::File(path) => {
            let mut file = crate::jobfile::JobFile::read(path)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            for component in file.components.values_mut() {
                *component = upload(&dir.join(&*component))?;
            }
            client.run_job_file(&file, settings)?
        }
    };
    outln!("Job has been submitted with JobID {id}");
    {
        let (id, addr) = (id.clone(), addr.to_string());
        let _ = ctrlc::set_handler(move || {
            eprintln!("\nJob {id} keeps running on the cluster (eddy cancel -m {addr} {id} cancels it)");
            std::process::exit(130);
        });
    }
    let submitted = std::time::Instant::now();
    // On a terminal, the bar of a bounded job replaces the periodic progress lines.
    let bar = (!quiet).then(terminal_bar).flatten();
    let say = |line: String| match &bar {
        Some(bar) => bar.say(&line),
        None => outln!("{line}"),
    };
    let mut waiting_said = false;
    let mut last_progress = std::time::Instant::now();
    let mut unreachable_since: Option<std::time::Instant> = None;
    let mut attempt = 0;
    loop {
        let state = match client.job(&id) {
            Ok(j) => {
                unreachable_since = None;
                j
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Connection { .. })) => {
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > UNREACHABLE_GRACE {
                    return Err(anyhow::Error::new(e).context(format!("lost track of job {id}")));
                }
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot follow job {id}"))),
        };
        let counts = (state.records_in.unwrap_or(0), state.records_out.unwrap_or(0));
        if state.attempt > attempt {
            attempt = state.attempt;
            let why = state.exceptions.last().and_then(|e| e["exception"].as_str()).unwrap_or("a failure");
            say(format!("restarting from the latest checkpoint (restart {attempt}) after: {why}"));
        }
        if !matches!(state.status.as_str(), "CREATED" | "RUNNING" | "RESTARTING") {
            if let Some(bar) = &bar {
                bar.finish();
            }
        }
        match state.status.as_str() {
            "CREATED" => {
                if !waiting_said {
                    say("waiting for slots".into());
                    waiting_said = true;
                }
                last_progress = std::time::Instant::now();
            }
            "RUNNING" if state.bounded != Some(false) && bar.is_some() => {
                let input = state.input.as_ref();
                let progress = crate::local::JobProgress {
                    records_in: counts.0,
                    records_out: counts.1,
                    input_read: input.map_or(0, |i| i.bytes_read),
                    input_size: input.and_then(|i| i.bytes),
                };
                bar.as_ref().expect("checked").update(progress);
            }
            "RUNNING" if state.bounded != Some(false) && last_progress.elapsed() >= PROGRESS_INTERVAL => {
                outln!("running: {} records in, {} records out", counts.0, counts.1);
                last_progress = std::time::Instant::now();
            }
            "FINISHED" => {
                let ms = state
                    .duration
                    .filter(|d| *d >= 0)
                    .or_else(|| Some(state.end_time? - state.start_time?).filter(|d| *d >= 0))
                    .map_or_else(|| submitted.elapsed().as_secs_f64(), |d| d as f64 / 1000.0);
                outln!("Job {id} finished in {ms:.3} s: {} records in, {} records out", counts.0, counts.1);
                return Ok(());
            }
            "FAILED" => {
                let why = state.failure.as_deref().filter(|f| !f.trim().is_empty()).unwrap_or("no reason given");
                anyhow::bail!("job {id} failed: {why}");
            }
            "CANCELED" | "CANCELLED" => anyhow::bail!("job {id} was cancelled"),
            _ => {}
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
