//! The types of the JobManager's HTTP API that both sides read and write: the
//! server (`jobmanager/http.rs`, `jobmanager/tenants.rs`) deserializes what the
//! client (`client.rs`) serializes, so the schema is written once.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Mode;
use crate::jobmanager::RestartStrategy;
use crate::state::BackendKind;

/// How a submitted job runs (`POST /jars/{id}/run`, `POST /jobs`); every field has a default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SubmitSettings {
    /// Default parallelism of operators that set none [1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Output buffer timeout of its tasks [10 ms].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_timeout_ms: Option<u64>,
    /// Periodic checkpoints; none: savepoints only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_ms: Option<u64>,
    /// Barrier alignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpointing_mode: Option<Mode>,
    /// Completed checkpoints kept [1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoints_retained: Option<usize>,
    /// Where its checkpoints go (the admin only: a tenant's are managed by the cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_dir: Option<PathBuf>,
    /// What to do when it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_strategy: Option<RestartStrategy>,
    /// The savepoint to resume from: for a tenant, the name `eddy savepoint`
    /// printed (relative to the tenant's savepoint root); for the admin, a path.
    #[serde(rename = "savepointPath", skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<PathBuf>,
    /// Resume even if some of the savepoint's state has no operator in the job.
    #[serde(rename = "allowNonRestoredState", default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_non_restored_state: bool,
    /// Where keyed state of Wasm operators lives [memory].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_backend: Option<BackendKind>,
    /// Linear memory per instance, in MiB: at most the tenant's quota [the quota].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit_mib: Option<u64>,
    /// Longest guest call, in milliseconds: at most the tenant's quota [the quota].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
}

/// `POST /jars/{id}/run`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunRequest {
    /// The entry to plan.
    pub entry: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// How it runs.
    #[serde(flatten)]
    pub settings: SubmitSettings,
}

/// `POST /jobs`: a job file whose components are ids of uploaded jars.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobFileRequest {
    /// The job file (`docs/job-files.md`).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub job: crate::jobfile::JobFile,
    /// How it runs.
    #[serde(flatten)]
    pub settings: SubmitSettings,
}

/// What a key may do. Admin keys belong to no tenant; the others to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The cluster's administrator: tenants, keys, TaskManagers, every job.
    Admin,
    /// A tenant's developer: upload, run, cancel, savepoint, stop, read.
    Developer,
    /// A tenant's viewer: read only.
    Viewer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        })
    }
}

/// A tenant's limits. Each is checked at submission (and, for what guests do,
/// at run time on the TaskManagers); `docs/multi-tenancy.md` says how to size them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", default)]
pub struct Quotas {
    /// Slots its running jobs may hold at once; jobs past it wait as CREATED.
    pub slots: u32,
    /// Largest parallelism of any operator of a job.
    pub max_parallelism: u32,
    /// Jobs that may be CREATED, RUNNING or RESTARTING at once.
    pub running_jobs: u32,
    /// Bytes of modules it may keep uploaded.
    pub module_bytes: u64,
    /// Largest single upload, in bytes.
    pub max_upload_bytes: u64,
    /// Linear memory one operator instance may use, in MiB.
    pub memory_mib: u64,
    /// Longest guest call, in milliseconds.
    pub call_timeout_ms: u64,
    /// Keyed state bytes a job may keep (per TaskManager it runs on).
    pub state_bytes: u64,
    /// Timers one subtask may hold.
    pub timers_per_subtask: u64,
    /// Distinct counters a job may create (per TaskManager).
    pub counters: u64,
    /// Guest log bytes a job may write per second (per TaskManager); the rest is dropped and counted.
    pub log_bytes_per_second: u64,
    /// Subtasks of its jobs one TaskManager may run.
    pub subtasks_per_taskmanager: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            slots: 4,
            max_parallelism: 4,
            running_jobs: 4,
            module_bytes: 1 << 30,
            max_upload_bytes: 256 << 20,
            memory_mib: 512,
            call_timeout_ms: 10_000,
            state_bytes: 1 << 30,
            timers_per_subtask: 1_000_000,
            counters: 1_000,
            log_bytes_per_second: 64 << 10,
            subtasks_per_taskmanager: 64,
        }
    }
}

/// The changes of `PATCH /tenants/{name}` (and what `POST /tenants` sets beyond the
/// defaults): each field set replaces the tenant's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TenantChanges {
    /// Quota fields to set, by their names in [`Quotas`].
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub quotas: serde_json::Map<String, serde_json::Value>,
    /// The directory its file sources and sinks resolve beneath (on every TaskManager).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_root: Option<PathBuf>,
    /// `host:port` entries its socket sources and Kafka brokers may be (replaces the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_sockets: Option<Vec<String>>,
}

/// `POST /tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateTenant {
    /// Its name: 1 to 63 of `a-z 0-9 -`, starting with a letter.
    pub name: String,
    /// Its settings beyond the defaults.
    #[serde(flatten)]
    pub changes: TenantChanges,
}

/// A tenant, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct Tenant {
    /// Its name, which is its id.
    pub name: String,
    /// When it was created (ms since the epoch).
    pub created: u64,
    /// Its limits.
    pub quotas: Quotas,
    /// Where its file connectors resolve; none: it may use no files.
    pub data_root: Option<PathBuf>,
    /// Where its socket sources and Kafka connectors may connect.
    pub allowed_sockets: Vec<String>,
}

/// `POST /tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateToken {
    /// The tenant the key acts for; none for an admin key.
    pub tenant: Option<String>,
    /// What it may do.
    pub role: Role,
    /// A note for `eddy token list`.
    #[serde(default)]
    pub description: String,
}

/// An API key, as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct TokenInfo {
    /// Its public id (the part of the key before the secret).
    pub id: String,
    /// The tenant it acts for.
    pub tenant: Option<String>,
    /// What it may do.
    pub role: Role,
    /// The note given at creation.
    pub description: String,
    /// When it was created (ms since the epoch).
    pub created: u64,
    /// Revoked keys are refused.
    pub revoked: bool,
}

/// The answer to `POST /tokens`: the only time the key is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatedToken {
    /// The key to send as `Authorization: Bearer KEY`.
    pub token: String,
    /// What it is.
    pub info: TokenInfo,
}

/// `POST /taskmanager-tokens`: a join token with which TaskManagers enrol.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CreateJoinToken {
    /// A note for `eddy taskmanager-token list`.
    #[serde(default)]
    pub description: String,
    /// How long it admits TaskManagers, in seconds [86400: a day; at most 31536000].
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// A join token, as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct JoinTokenInfo {
    /// Its public id (the part of the token before the secret).
    pub id: String,
    /// The note given at creation.
    pub description: String,
    /// When it was created (ms since the epoch).
    pub created: u64,
    /// When it stops admitting TaskManagers (ms since the epoch).
    pub expires: u64,
    /// Revoked tokens admit no one.
    pub revoked: bool,
    /// TaskManagers enrolled with it.
    pub enrolled: u64,
}

/// The answer to `POST /taskmanager-tokens`: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatedJoinToken {
    /// What `eddy taskmanager --join-token` takes.
    pub token: String,
    /// What it is.
    pub info: JoinTokenInfo,
}

/// The answer to `DELETE /taskmanagers/{id}`: the identity is revoked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RevokedTaskManager {
    /// The TaskManager's identity.
    pub id: String,
    /// When it was revoked (ms since the epoch).
    pub revoked: u64,
}

/// What one job of a tenant used in one minute (`GET /tenants/{name}/usage`);
/// `docs/multi-tenancy.md` says what each figure counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", default)]
pub struct Usage {
    /// CPU time of its task threads, in nanoseconds.
    pub cpu_ns: u64,
    /// Records its sources read.
    pub records_in: u64,
    /// Records its sinks wrote.
    pub records_out: u64,
    /// Bytes its sources read (framed records).
    pub bytes_in: u64,
    /// Bytes its sinks wrote.
    pub bytes_out: u64,
    /// Slot time, in milliseconds: slots held × time held.
    pub slot_ms: u64,
    /// The most keyed state bytes the job held at once in the minute (over its TaskManagers).
    pub peak_state_bytes: u64,
}

/// One row of a tenant's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct UsageRow {
    /// The minute's start, in ms since the epoch.
    pub minute: u64,
    /// The job.
    pub job: String,
    /// What it used then.
    #[serde(flatten)]
    pub usage: Usage,
}

/// The answer of `GET /tenants/{name}/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UsageReport {
    /// The tenant.
    pub tenant: String,
    /// The start of the period, in ms since the epoch.
    pub since: u64,
    /// Per minute and job, oldest first.
    pub minutes: Vec<UsageRow>,
    /// The sum of the minutes.
    pub total: Usage,
}

/// The answer of `GET /whoami`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Identity {
    /// The key's id.
    pub key: String,
    /// Its tenant; none for the admin.
    pub tenant: Option<String>,
    /// Its role.
    pub role: Role,
}

/// `POST /jobs/{id}/savepoints`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct SavepointBody {
    /// Where to put it (the admin only); none: the job's savepoint place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_directory: Option<PathBuf>,
    /// End the job once it completed (stop with savepoint).
    #[serde(default)]
    pub stop: bool,
    /// Flink's name for `stop` (`flink savepoint --cancel`... and its client send it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_job: bool,
}

/// `POST /jobs/{id}/stop`, as Flink's `flink stop` sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopBody {
    /// Where to put the savepoint (the admin only); none: the job's savepoint place.
    #[serde(default)]
    pub target_directory: Option<PathBuf>,
    /// Flink's `--drain` (a final watermark before stopping): refused, Eddy stops undrained.
    #[serde(default)]
    pub drain: bool,
}

/// The answer of a savepoint or stop trigger: the id to poll.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TriggerAnswer {
    /// `GET /jobs/{id}/savepoints/{request-id}` says how it goes.
    #[serde(rename = "request-id")]
    pub request_id: String,
}

/// One line a job's operator logged (`GET /jobs/{id}/logs`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct LogLine {
    /// Its place in the job's log: `?after=` this gets the lines after it.
    pub seq: u64,
    /// When the guest logged it, ms since the epoch (the TaskManager's clock).
    pub timestamp: u64,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The TaskManager that ran the subtask.
    pub taskmanager: String,
    /// The task (Flink's job vertex).
    pub task: usize,
    /// The subtask.
    pub subtask: u32,
    /// The operator that logged it.
    pub operator: String,
    /// What it said.
    pub message: String,
}

/// The answer of `GET /jobs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobLogs {
    /// The kept lines asked for, oldest first.
    pub lines: Vec<LogLine>,
    /// Lines lost so far: over the job's log rate, or past what is kept.
    pub dropped: u64,
    /// The `seq` the next line will get: ask `?after=` one less to follow.
    pub next: u64,
}

/// Every refusal: `{"errors": [why]}`, one line.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Refusal {
    /// Why, in one line.
    pub errors: Vec<String>,
}
