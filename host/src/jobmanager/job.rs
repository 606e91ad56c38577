//! A job's life on the cluster: CREATED (planned, waiting for slots) →
//! RUNNING (slots allocated, subtasks deployed and started) → FINISHED, or
//! FAILED / CANCELED, which free the slots and cancel what still runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::{JobManager, RestartStrategy, State};
use crate::checkpoint::{CheckpointConfig, Coordinator, DirStorage, Restored};
use crate::state::BackendKind;
use crate::net::codec;
use crate::plan::ExecutionPlan;
use crate::protocol::{Ack, Deployment, SubtaskStats, TaskOutcome, TaskUsage, ToTaskManager};
use crate::jobfile::{self, JobFile};
use crate::program::JobSpec;
use crate::api::Tenant;
use crate::connectors::Confinement;
use crate::runtime::SandboxConfig;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Planned; waiting for enough free slots.
    Created,
    /// Deployed (or being deployed) to its TaskManagers.
    Running,
    /// A task failed; the job waits for its restart delay, then is scheduled
    /// again and resumes from its latest checkpoint.
    Restarting,
    /// Every subtask ended.
    Finished,
    /// A subtask or a TaskManager failed; `failure` says which and why.
    Failed,
    /// Cancelled by a client.
    Canceled,
}

/// How a job is checkpointed, restarted and resumed (the run request's settings).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobSettings {
    /// Default parallelism it is planned with.
    pub parallelism: u32,
    /// Output buffer timeout of its tasks, in milliseconds.
    pub buffer_timeout_ms: u64,
    /// Periodic checkpoints (interval none: savepoints only).
    pub checkpoint: CheckpointConfig,
    /// Directory under which its checkpoints go (`<dir>/<job id>`).
    pub checkpoint_dir: PathBuf,
    /// What to do when it fails.
    pub restart: RestartStrategy,
    /// The savepoint it starts from.
    pub savepoint: Option<PathBuf>,
    /// Start from it even if some of its state has no operator in the job.
    pub allow_non_restored_state: bool,
    /// Where keyed state of Wasm operators lives.
    pub state_backend: BackendKind,
    /// The tenant that submitted it; none: the cluster's admin.
    pub tenant: Option<String>,
    /// Linear memory per instance it asked for, in MiB (at most its tenant's quota).
    pub memory_limit_mib: Option<u64>,
    /// Longest guest call it asked for, in ms (at most its tenant's quota).
    pub call_timeout_ms: Option<u64>,
}

/// What a client submits.
pub enum Submission {
    /// An entry of an uploaded component (`POST /jars/{id}/run`).
    Jar {
        /// The component's id (sha256).
        digest: String,
        /// The entry.
        entry: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A job file whose components are ids of uploaded components (`POST /jobs`).
    File(JobFile),
}

/// A submitted job.
pub struct Job {
    /// 32 hex digits, random.
    pub id: String,
    /// The plan's name.
    pub name: String,
    /// Its settings.
    pub settings: JobSettings,
    /// Its status.
    pub status: JobStatus,
    /// The graph and its programs, shipped to TaskManagers.
    pub spec: JobSpec,
    /// Submitted as a job file (`POST /jobs`) rather than an entry of one jar.
    pub from_job_file: bool,
    /// The plan derived from it.
    pub plan: Arc<ExecutionPlan>,
    /// `[chain][subtask]` → (TaskManager id, slot index), once scheduled.
    pub placement: Vec<Vec<(String, usize)>>,
    /// Subtasks that have not reported their end.
    pub remaining: usize,
    /// Why it failed.
    pub failure: Option<String>,
    /// Records read by sources / written by sinks, of ended subtasks.
    pub records: (u64, u64),
    /// What each subtask of the current attempt reported using so far, by (chain, subtask).
    pub usage: BTreeMap<(usize, u32), TaskUsage>,
    /// What passed through each subtask of the current attempt, and how fast.
    pub stats: super::stats::JobStats,
    /// What its guests logged lately (`GET /jobs/{id}/logs`), over all attempts.
    pub logs: super::logs::JobLog,
    /// When it was submitted (for the slot timeout).
    pub submitted: Instant,
    /// Wall-clock start and end, for the API.
    pub started: SystemTime,
    /// When it ended.
    pub ended: Option<SystemTime>,
    /// Which execution runs: 0 at first, one more after each restart.
    pub attempt: u32,
    /// Its subtasks have all been started (checkpoints may be triggered).
    pub deployed: bool,
    /// When recent failures happened, for the failure-rate strategy.
    pub failures: Vec<Instant>,
    /// Recent failures, newest last: (when, why).
    pub exceptions: Vec<(SystemTime, String)>,
    /// Its checkpoints.
    pub coordinator: Coordinator,
    /// Why it is still CREATED, for the API.
    pub waiting: Option<String>,
    /// Limits of its guests on the TaskManagers (its tenant's quotas); none: theirs.
    pub sandbox: Option<SandboxConfig>,
    /// What its connectors may reach.
    pub confinement: Confinement,
    /// Keyed state bytes its instances hold now, per TaskManager of the current attempt.
    pub state_bytes: BTreeMap<String, u64>,
    /// The most it held at once, over all attempts.
    pub peak_state_bytes: u64,
    /// Checkpoint ids below this one are reserved in the database (`durable.rs`).
    pub ids_reserved: u64,
    /// Records read and written by its earlier attempts (replays included).
    pub records_before: (u64, u64),
    /// Subtasks of the current attempt that reported their end.
    pub ended_subtasks: std::collections::BTreeSet<(usize, u32)>,
}

impl Job {
    /// A job just submitted (or taken up again after a restart), waiting for slots.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        plan: ExecutionPlan,
        spec: JobSpec,
        settings: JobSettings,
        from_job_file: bool,
        sandbox: Option<SandboxConfig>,
        confinement: Confinement,
        coordinator: Coordinator,
    ) -> Job {
        Job {
            id,
            name: plan.name.clone(),
            settings,
            status: JobStatus::Created,
            spec,
            from_job_file,
            remaining: plan.chains.iter().map(|c| c.parallelism as usize).sum(),
            plan: Arc::new(plan),
            placement: Vec::new(),
            failure: None,
            records: (0, 0),
            usage: BTreeMap::new(),
            stats: Default::default(),
            logs: Default::default(),
            submitted: Instant::now(),
            started: SystemTime::now(),
            ended: None,
            attempt: 0,
            deployed: false,
            failures: Vec::new(),
            exceptions: Vec::new(),
            ids_reserved: coordinator.next_id(),
            coordinator,
            waiting: None,
            sandbox,
            confinement,
            state_bytes: BTreeMap::new(),
            peak_state_bytes: 0,
            records_before: (0, 0),
            ended_subtasks: Default::default(),
        }
    }

    /// Still CREATED, RUNNING or RESTARTING.
    pub fn is_active(&self) -> bool {
        matches!(self.status, JobStatus::Created | JobStatus::Running | JobStatus::Restarting)
    }

    /// The id its current tasks run under on TaskManagers: `JOB@ATTEMPT`.
    pub fn execution(&self) -> String {
        format!("{}@{}", self.id, self.attempt)
    }

    /// How long it ran (or has run so far), in ms.
    pub fn duration_ms(&self) -> u64 {
        let end = self.ended.unwrap_or_else(SystemTime::now);
        end.duration_since(self.started).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// Whether subtask `subtask` of chain `chain` of the current attempt is placed on `tm`.
    pub fn runs_on(&self, chain: usize, subtask: u32, tm: &str) -> bool {
        placed_on(&self.placement, chain, subtask, tm)
    }

    /// Keeps what TaskManager `tm` says the job's guests logged, believed only for the
    /// subtasks it runs.
    pub fn keep_logs(&mut self, tm: &str, logs: crate::runtime::GuestLogs) {
        let placement = &self.placement;
        let refused = self.logs.add(tm, logs, |c, s| placed_on(placement, c, s, tm));
        if refused > 0 {
            tracing::warn!(taskmanager = tm, job = %self.id, refused, "ignored log lines of subtasks the TaskManager does not run");
        }
    }

    /// Takes a subtask's cumulative usage; answers what a tenant's job used since the
    /// last report, for the meter.
    pub fn report_usage(&mut self, chain: usize, subtask: u32, now: TaskUsage) -> Option<(String, String, super::usage::Usage)> {
        let before = self.usage.get(&(chain, subtask)).copied().unwrap_or_default();
        // A report that arrives late (a heartbeat after the subtask's end) must not lower
        // the baseline, or the next one would be charged twice.
        let highest = TaskUsage {
            records_in: before.records_in.max(now.records_in),
            records_out: before.records_out.max(now.records_out),
            bytes_in: before.bytes_in.max(now.bytes_in),
            bytes_out: before.bytes_out.max(now.bytes_out),
            cpu_ns: before.cpu_ns.max(now.cpu_ns),
        };
        self.usage.insert((chain, subtask), highest);
        let tenant = self.settings.tenant.clone()?;
        Some((tenant, self.id.clone(), super::usage::Usage::delta(&before, &now)))
    }

    /// Takes TaskManager `tm`'s report of the keyed state the job holds there; answers
    /// the job's total now, for the meter's peak.
    pub fn report_state(&mut self, tm: &str, bytes: u64) -> Option<(String, String, super::usage::Usage)> {
        self.state_bytes.insert(tm.to_string(), bytes);
        let now = self.state_bytes.values().fold(0u64, |a, b| a.saturating_add(*b));
        self.peak_state_bytes = self.peak_state_bytes.max(now);
        let tenant = self.settings.tenant.clone()?;
        Some((tenant, self.id.clone(), super::usage::Usage { peak_state_bytes: now, ..Default::default() }))
    }

    /// Whether a subtask of the job is placed on TaskManager `tm`.
    pub fn uses(&self, tm: &str) -> bool {
        self.placement.iter().flatten().any(|(t, _)| t == tm)
    }

    /// Records read and written so far, over all attempts: the subtasks' final counts once
    /// finished; else what they last reported (a cancelled or failed job keeps what it read).
    pub fn progress(&self) -> (u64, u64) {
        let (r, w) = if self.status == JobStatus::Finished { self.records } else { self.attempt_progress() };
        (self.records_before.0.saturating_add(r), self.records_before.1.saturating_add(w))
    }

    /// Records read and written by the current attempt, as its subtasks last reported.
    pub(super) fn attempt_progress(&self) -> (u64, u64) {
        self.usage.values().fold((0u64, 0u64), |a, b| (a.0.saturating_add(b.records_in), a.1.saturating_add(b.records_out)))
    }

    pub(super) fn taskmanagers(&self) -> Vec<String> {
        let mut tms: Vec<String> = self.placement.iter().flatten().map(|(t, _)| t.clone()).collect();
        tms.sort();
        tms.dedup();
        tms
    }
}

/// Slots for every slot of job `id`, TaskManagers in id order, slot by slot, within
/// its tenant's slot and subtasks-per-TaskManager quotas; else why it must wait.
fn place(state: &State, id: &str, tenant: Option<&Tenant>) -> Result<Vec<(String, usize)>, String> {
    let job = &state.jobs[id];
    let needed = job.plan.slots.len();
    let free: usize = state.taskmanagers.values().map(|t| t.free_slots()).sum();
    if free < needed {
        let total: usize = state.taskmanagers.values().map(|t| t.slots.len()).sum();
        return Err(format!("not enough slots: the job needs {needed}, the cluster has {free} free of {total}"));
    }
    let owned_by_tenant = |job_id: &str| tenant.is_some() && state.jobs.get(job_id).and_then(|j| j.settings.tenant.as_deref()) == tenant.map(|t| t.name.as_str());
    if let Some(t) = tenant {
        let held = state.taskmanagers.values().flat_map(|tm| tm.slots.iter().flatten()).filter(|j| owned_by_tenant(j)).count();
        if held + needed > t.quotas.slots as usize {
            return Err(format!(
                "waiting for tenant {}'s slot quota: the job needs {needed} slots, the tenant holds {held} of its {}",
                t.name, t.quotas.slots
            ));
        }
    }
    let limit = tenant.map_or(usize::MAX, |t| t.quotas.subtasks_per_taskmanager as usize);
    let mut places = Vec::with_capacity(needed);
    'tms: for tm in state.taskmanagers.values() {
        // Subtasks of the tenant's other jobs here: each of their slots holds a whole slot-sharing group.
        let mut subtasks: usize = tm
            .slots
            .iter()
            .flatten()
            .filter(|j| owned_by_tenant(j))
            .map(|j| state.jobs[j.as_str()].plan.slots.iter().map(|s| s.subtasks.len()).max().unwrap_or(0))
            .sum();
        for (i, slot) in tm.slots.iter().enumerate() {
            if places.len() == needed {
                break 'tms;
            }
            if slot.is_some() {
                continue;
            }
            let size = job.plan.slots[places.len()].subtasks.len();
            if subtasks + size > limit {
                continue 'tms;
            }
            subtasks += size;
            places.push((tm.id.clone(), i));
        }
    }
    if places.len() < needed {
        let t = tenant.expect("without a tenant every free slot is usable");
        return Err(format!(
            "waiting for room within tenant {}'s quota of {} subtasks per TaskManager",
            t.name, t.quotas.subtasks_per_taskmanager
        ));
    }
    Ok(places)
}

/// A tenant's running-jobs quota against the jobs in `state`.
fn running_jobs_quota(state: &State, t: &Tenant) -> Result<(), (u16, String)> {
    let active = state.jobs.values().filter(|j| j.is_active() && j.settings.tenant.as_deref() == Some(&t.name)).count();
    if active as u64 >= u64::from(t.quotas.running_jobs) {
        return Err((403, format!(
            "quota running-jobs exceeded: tenant {} may run {} jobs at once, and {active} are running",
            t.name, t.quotas.running_jobs
        )));
    }
    Ok(())
}

/// Refuses a plan that could never run within its tenant's quotas.
fn check_plan_quotas(t: &Tenant, plan: &ExecutionPlan) -> Result<(), (u16, String)> {
    let widest = plan.parallelism.iter().copied().max().unwrap_or(1);
    if widest > t.quotas.max_parallelism {
        return Err((403, format!(
            "quota max-parallelism exceeded: tenant {} allows {}, the job asks for {widest}",
            t.name, t.quotas.max_parallelism
        )));
    }
    let widest_slot = plan.slots.iter().map(|s| s.subtasks.len()).max().unwrap_or(0);
    if widest_slot > t.quotas.subtasks_per_taskmanager as usize {
        return Err((403, format!(
            "quota subtasks-per-taskmanager exceeded: tenant {} allows {} subtasks on one TaskManager, and one slot of the job holds {widest_slot}",
            t.name, t.quotas.subtasks_per_taskmanager
        )));
    }
    if plan.slots.len() > t.quotas.slots as usize {
        return Err((403, format!(
            "quota slots exceeded: tenant {} may hold {} slots, the job needs {}",
            t.name,
            t.quotas.slots,
            plan.slots.len()
        )));
    }
    Ok(())
}

/// The sandbox of a tenant's job: its quotas, or less where the job asks for less.
fn sandbox_for(t: &Tenant, settings: &JobSettings) -> Result<SandboxConfig, (u16, String)> {
    let q = &t.quotas;
    let memory = settings.memory_limit_mib.unwrap_or(q.memory_mib);
    if memory > q.memory_mib || memory == 0 {
        return Err((403, format!(
            "quota memory-mib exceeded: tenant {} allows {} MiB per instance, the job asks for {memory}",
            t.name, q.memory_mib
        )));
    }
    let call = settings.call_timeout_ms.unwrap_or(q.call_timeout_ms);
    if call > q.call_timeout_ms || call == 0 {
        return Err((403, format!(
            "quota call-timeout-ms exceeded: tenant {} allows {} ms per call, the job asks for {call}",
            t.name, q.call_timeout_ms
        )));
    }
    Ok(SandboxConfig {
        memory_limit_bytes: memory << 20,
        call_timeout: Duration::from_millis(call),
        state_bytes: Some(q.state_bytes),
        timers_per_subtask: Some(q.timers_per_subtask),
        counters: Some(q.counters),
        log_bytes_per_second: Some(q.log_bytes_per_second),
    })
}

/// Refuses file connectors of a tenant that was given no data root.
fn check_no_files(t: &Tenant, graph: &crate::runtime::JobGraph) -> Result<(), (u16, String)> {
    use crate::runtime::VertexKind;
    for v in &graph.vertices {
        if let VertexKind::FileSource(p) | VertexKind::JsonLinesSource(p) | VertexKind::NexmarkFileSource(p) | VertexKind::FileSink(p) = &v.kind {
            return Err((403, format!("tenant {} has no data root: its jobs may not use files ({p})", t.name)));
        }
    }
    Ok(())
}

/// What a tenant's connectors may reach. A tenant without a data root may use no
/// files: its root is a path that cannot exist, so every open fails closed.
fn confinement_for(t: &Tenant) -> Confinement {
    Confinement {
        data_root: Some(t.data_root.clone().unwrap_or_else(|| PathBuf::from("/nonexistent/eddy: no data root"))),
        sockets: Some(t.allowed_sockets.clone()),
    }
}

impl State {
    /// Job `id`, held in memory, if `caller` may see it (else it answers as unknown).
    pub(super) fn visible_job(&self, id: &str, caller: &super::Caller) -> Option<&Job> {
        self.jobs.get(id).filter(|j| caller.sees(j.settings.tenant.as_deref()))
    }

    /// The job of execution `exec` (`JOB@ATTEMPT`), if that is its current attempt:
    /// reports of an attempt it no longer runs change nothing.
    pub(super) fn current_mut(&mut self, exec: &str) -> Option<&mut Job> {
        let (job, attempt) = crate::protocol::execution_parts(exec)?;
        self.jobs.get_mut(job).filter(|j| j.attempt.to_string() == attempt)
    }
}

/// Frees the slots a job holds.
pub(super) fn free_slots(state: &mut State, job: &str) {
    for tm in state.taskmanagers.values_mut() {
        for slot in tm.slots.iter_mut() {
            if slot.as_deref() == Some(job) {
                *slot = None;
            }
        }
    }
}

impl JobManager {
    /// Plans a submitted job and queues it for slots.
    pub async fn submit(self: &Arc<Self>, submission: Submission, settings: JobSettings) -> Result<String, (u16, String)> {
        let parallelism = settings.parallelism;
        let from_job_file = matches!(submission, Submission::File(_));
        let digests: Vec<String> = match &submission {
            Submission::Jar { digest, .. } => vec![digest.clone()],
            Submission::File(file) => file.components.values().cloned().collect(),
        };
        let tenant = match &settings.tenant {
            Some(name) => Some(self.directory.tenant(name).ok_or((404, format!("no tenant {name}")))?),
            None => None,
        };
        if let Some(t) = &tenant {
            self.check_running_jobs(t)?;
        }
        let sandbox = tenant.as_ref().map(|t| sandbox_for(t, &settings)).transpose()?;
        let confinement = tenant.as_ref().map(confinement_for).unwrap_or_default();
        let mut wanted = Vec::new();
        for digest in digests {
            let info = self.modules.get(&digest, settings.tenant.as_deref()).ok_or((404, format!("no jar with id {digest}")))?;
            wanted.push((digest, info.name));
        }
        // Read off the async threads: modules may be hundreds of MiB.
        let jm = self.clone();
        let stored = tokio::task::spawn_blocking(move || {
            wanted
                .into_iter()
                .map(|(digest, name)| match jm.modules.bytes(&digest, &jm.db) {
                    Some(Ok(bytes)) => Ok((digest, name, bytes)),
                    Some(Err(e)) => Err((500, format!("cannot read module: {e}"))),
                    None => Err((404, format!("no jar with id {digest}"))),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| (500, e.to_string()))??;
        let runtime = self.runtime.clone();
        let (savepoint, allow_non_restored) = (settings.savepoint.clone(), settings.allow_non_restored_state);
        let planned = tokio::task::spawn_blocking(move || -> Result<(JobSpec, ExecutionPlan, Option<u64>), String> {
            let mut modules = BTreeMap::new();
            for (digest, name, bytes) in stored {
                modules.insert(digest, runtime.load(&name, &bytes).map_err(|e| e.to_string())?);
            }
            let spec = match submission {
                Submission::Jar { digest, entry, args } => {
                    let graph = modules[&digest].plan(&entry, &args).map_err(|err| format!("planning entry '{entry}' failed: {err}"))?;
                    JobSpec::single(graph, digest, entry, args)
                }
                Submission::File(file) => {
                    let components = file.components.iter().map(|(name, d)| (name.clone(), (d.clone(), modules[d].clone()))).collect();
                    jobfile::compose(&file, &components).map_err(|e| e.to_string())?
                }
            };
            let plan = ExecutionPlan::new(spec.clone(), parallelism).map_err(|err| format!("invalid job graph: {err}"))?;
            // Checked here so that a bad savepoint is refused at submission, not on a TaskManager.
            let restored_id = match &savepoint {
                Some(path) => {
                    let r = Restored::load(path).map_err(|e| e.to_string())?;
                    r.check(plan.max_parallelism, &crate::task::state_uids(&plan), allow_non_restored).map_err(|e| e.to_string())?;
                    Some(r.meta.checkpoint)
                }
                None => None,
            };
            Ok((spec, plan, restored_id))
        })
        .await
        .map_err(|e| (500, e.to_string()))?
        .map_err(|e| (400, e))?;
        let (spec, plan, restored_id) = planned;
        if let Some(t) = &tenant {
            check_plan_quotas(t, &plan)?;
            if let Err(e) = confinement.check_graph(&spec.graph) {
                return Err((403, e.to_string()));
            }
            if t.data_root.is_none() {
                check_no_files(t, &spec.graph)?;
            }
        }
        let names = crate::connectors::kafka::secret_names(&spec.graph.vertices);
        self.config.secrets.for_job(names, settings.tenant.as_deref()).map_err(|e| (400, e.to_string()))?;
        let id = {
            let mut state = self.state.lock().unwrap();
            // Checked again under the lock that inserts: submissions planned side by side each passed the first check.
            if let Some(t) = &tenant {
                running_jobs_quota(&state, t)?;
            }
            let id = self.new_job_id();
            let storage = DirStorage::new(settings.checkpoint_dir.join(&id));
            let coordinator = Coordinator::new(
                &id,
                settings.checkpoint.clone(),
                storage,
                plan.subtasks(),
                plan.max_parallelism,
                settings.savepoint.clone().filter(|_| restored_id.is_some()),
                Coordinator::id_after(restored_id),
            );
            let job = Job::new(id.clone(), plan, spec, settings, from_job_file, sandbox, confinement, coordinator);
            tracing::info!(job = %id, name = %job.name, slots = job.plan.slots.len(), "job submitted");
            state.jobs.insert(id.clone(), job);
            id
        };
        // Recorded before the client hears of it: a JobManager restart resumes it.
        if let Err(e) = self.persist(&id).await {
            let mut state = self.state.lock().unwrap();
            free_slots(&mut state, &id);
            state.jobs.remove(&id);
            return Err((500, format!("cannot record the job in the JobManager's database: {e}")));
        }
        self.schedule_waiting();
        Ok(id)
    }

    /// Gives free slots to waiting jobs, oldest first, within their tenants'
    /// quotas, and fails those that waited past the slot timeout.
    pub fn schedule_waiting(self: &Arc<Self>) {
        let timeout = Duration::from_secs_f64(self.config.slot_timeout);
        let mut deploy = Vec::new();
        let mut expired = Vec::new();
        {
            let mut state = self.state.lock().unwrap();
            let waiting: Vec<String> =
                state.jobs.values().filter(|j| j.status == JobStatus::Created).map(|j| j.id.clone()).collect();
            for id in waiting {
                let owner = state.jobs[&id].settings.tenant.clone();
                let tenant = owner.as_ref().and_then(|t| self.directory.tenant(t));
                if let (Some(name), None) = (&owner, &tenant) {
                    // Never placed as if it were the admin's.
                    expired.push((id, format!("its tenant {name} was deleted")));
                    continue;
                }
                let places = match place(&state, &id, tenant.as_ref()) {
                    Ok(places) => places,
                    Err(why) => {
                        let job = state.jobs.get_mut(&id).unwrap();
                        if job.submitted.elapsed() > timeout {
                            expired.push((id, format!("{why} after waiting {timeout:?}")));
                        } else {
                            job.waiting = Some(why);
                        }
                        continue;
                    }
                };
                for (tm, slot) in &places {
                    state.taskmanagers.get_mut(tm).unwrap().slots[*slot] = Some(id.clone());
                }
                let job = state.jobs.get_mut(&id).unwrap();
                let mut placement: Vec<Vec<(String, usize)>> =
                    job.plan.chains.iter().map(|c| vec![(String::new(), 0); c.parallelism as usize]).collect();
                for (slot, place) in job.plan.slots.iter().zip(&places) {
                    for &(chain, subtask) in &slot.subtasks {
                        placement[chain][subtask as usize] = place.clone();
                    }
                }
                job.placement = placement;
                job.status = JobStatus::Running;
                job.waiting = None;
                // `started` is the first attempt's start, whatever restarts follow.
                if job.attempt == 0 {
                    job.started = SystemTime::now();
                }
                deploy.push(id);
            }
        }
        for (id, why) in expired {
            self.fail_job(&id, why);
        }
        for id in deploy {
            let jm = self.clone();
            tokio::spawn(async move { jm.deploy(&id).await });
        }
    }

    /// Refuses a tenant's submission past its running-jobs quota.
    fn check_running_jobs(&self, t: &Tenant) -> Result<(), (u16, String)> {
        running_jobs_quota(&self.state.lock().unwrap(), t)
    }

    /// Deploys a scheduled job to its TaskManagers, then starts it on all of them.
    async fn deploy(self: &Arc<Self>, id: &str) {
        let (deployment, connections) = {
            let state = self.state.lock().unwrap();
            let Some(job) = state.jobs.get(id) else { return };
            // Resolved at each deployment from the JobManager's file, never stored with the job.
            let names = crate::connectors::kafka::secret_names(&job.spec.graph.vertices);
            let secrets = match self.config.secrets.for_job(names, job.settings.tenant.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    drop(state);
                    self.fail_job(id, e.to_string());
                    return;
                }
            };
            let tms = job.taskmanagers();
            let mut peers = BTreeMap::new();
            let mut connections = Vec::new();
            for tm in &tms {
                match state.taskmanagers.get(tm) {
                    Some(entry) => {
                        peers.insert(tm.clone(), entry.data_addr);
                        connections.push((tm.clone(), entry.connection.clone()));
                    }
                    None => {
                        drop(state);
                        self.fail_job(id, format!("TaskManager {tm} left before the job was deployed"));
                        return;
                    }
                }
            }
            let deployment = Deployment {
                job: job.execution(),
                attempt: job.attempt,
                spec: job.spec.clone(),
                parallelism: job.settings.parallelism,
                buffer_timeout_ms: job.settings.buffer_timeout_ms,
                placement: job.placement.iter().map(|c| c.iter().map(|(tm, _)| tm.clone()).collect()).collect(),
                peers,
                mode: job.settings.checkpoint.mode,
                checkpoint_dir: Some(job.settings.checkpoint_dir.join(&job.id)),
                restore: job.coordinator.latest().map(Path::to_path_buf),
                state_backend: job.settings.state_backend.clone(),
                tenant: job.settings.tenant.clone(),
                sandbox: job.sandbox.clone(),
                confinement: job.confinement.clone(),
                secrets,
            };
            (deployment, connections)
        };
        let exec = deployment.job.clone();
        // The attempt is recorded before any of its tasks exist: a restarted JobManager never gives its id again.
        if let Err(e) = self.persist(id).await {
            self.fail_job(id, format!("cannot record the attempt in the JobManager's database: {e}"));
            return;
        }
        // Cancelled, restarted or failed while it was being recorded: nothing of it may run.
        if !self.still_running(&exec) {
            return;
        }
        let command = ToTaskManager::Deploy(Box::new(deployment));
        for (tm, conn) in &connections {
            if let Err(e) = command_to(conn, &command).await {
                self.fail_job(id, format!("deploying to TaskManager {tm} failed: {e}"));
                return;
            }
        }
        // Its Cancel may have reached the TaskManagers before the Deploy did: cancel again.
        if !self.still_running(&exec) {
            tell(connections.into_iter().map(|(_, c)| c).collect(), ToTaskManager::Cancel { job: exec }).await;
            return;
        }
        for (tm, conn) in &connections {
            if let Err(e) = command_to(conn, &ToTaskManager::Start { job: exec.clone() }).await {
                self.fail_job(id, format!("starting on TaskManager {tm} failed: {e}"));
                return;
            }
        }
        if let Some(job) = self.state.lock().unwrap().jobs.get_mut(id).filter(|j| j.execution() == exec) {
            job.deployed = true;
        }
        tracing::info!(job = id, execution = %exec, taskmanagers = connections.len(), "job deployed and started");
    }

    /// Whether execution `exec` is its job's current attempt, and RUNNING.
    fn still_running(&self, exec: &str) -> bool {
        self.state.lock().unwrap().current_mut(exec).is_some_and(|j| j.status == JobStatus::Running)
    }

    /// Subtask `(chain, subtask)` of execution `exec` reported its end (and what it used),
    /// from TaskManager `tm`; other TaskManagers cannot end a subtask they do not run.
    pub fn task_done(self: &Arc<Self>, tm: &str, exec: &str, (chain, subtask): (usize, u32), end: SubtaskEnd) {
        let SubtaskEnd { outcome, usage, stats, logs, counters } = end;
        let Some(job) = self.current(exec) else { return };
        let job = job.as_str();
        let mut metered = Vec::new();
        let failure = {
            let mut state = self.state.lock().unwrap();
            let Some(j) = state.jobs.get_mut(job) else { return };
            if !j.runs_on(chain, subtask, tm) {
                tracing::warn!(taskmanager = tm, job, chain, subtask, "ignored the end of a subtask the TaskManager does not run");
                return;
            }
            // Each subtask ends once: a repeated report cannot end the job before its other subtasks.
            if !j.ended_subtasks.insert((chain, subtask)) {
                tracing::warn!(taskmanager = tm, job, chain, subtask, "ignored a second end of a subtask");
                return;
            }
            metered.extend(j.report_usage(chain, subtask, usage));
            j.stats.report(chain, subtask, stats);
            j.stats.report_counters(chain, subtask, counters);
            j.keep_logs(tm, logs);
            j.remaining = j.remaining.saturating_sub(1);
            match outcome {
                TaskOutcome::Finished { records_in, records_out } => {
                    j.records.0 = j.records.0.saturating_add(records_in);
                    j.records.1 = j.records.1.saturating_add(records_out);
                    j.coordinator.task_finished();
                    if j.remaining == 0 && j.status == JobStatus::Running {
                        j.status = JobStatus::Finished;
                        j.ended = Some(SystemTime::now());
                        // Savepoints asked for while it was ending are answered, not left waiting.
                        j.coordinator.shutdown("the job finished");
                        tracing::info!(job, "job finished");
                        free_slots(&mut state, job);
                    }
                    None
                }
                // Cancellations follow a failure already reported, or a cancel.
                TaskOutcome::Cancelled => None,
                TaskOutcome::Failed(e) => Some(e),
            }
        };
        self.meter_all(metered);
        match failure {
            Some(e) => self.fail_job(job, e),
            None => self.record_end(job),
        }
    }

    /// Adds usage of tenants' jobs to the meter.
    pub(super) fn meter_all(&self, metered: impl IntoIterator<Item = (String, String, super::usage::Usage)>) {
        for (tenant, job, usage) in metered {
            self.meter.add(&tenant, &job, usage);
        }
    }

    /// The job of execution `exec` (`JOB@ATTEMPT`), if that is its current attempt.
    pub fn current(&self, exec: &str) -> Option<String> {
        self.state.lock().unwrap().current_mut(exec).map(|j| j.id.clone())
    }

    /// A task failed or a TaskManager was lost: restarts the job if its
    /// strategy allows (see `recovery.rs`), else fails it, frees its slots
    /// and cancels its subtasks.
    pub fn fail_job(self: &Arc<Self>, id: &str, why: String) {
        if !self.restart_job(id, &why) {
            self.end_job(id, JobStatus::Failed, Some(why));
        }
    }

    /// Cancels a job at a client's request; false if it is unknown.
    pub fn cancel_job(self: &Arc<Self>, id: &str) -> bool {
        if !self.state.lock().unwrap().jobs.contains_key(id) {
            return false;
        }
        self.end_job(id, JobStatus::Canceled, None);
        true
    }

    fn end_job(self: &Arc<Self>, id: &str, status: JobStatus, failure: Option<String>) {
        let (exec, connections) = {
            let mut state = self.state.lock().unwrap();
            let Some(job) = state.jobs.get_mut(id) else { return };
            if !job.is_active() {
                return;
            }
            job.waiting = None;
            match &failure {
                Some(why) => tracing::warn!(job = id, "job failed: {why}"),
                None => tracing::info!(job = id, "job cancelled"),
            }
            job.status = status;
            job.ended = Some(SystemTime::now());
            job.coordinator.shutdown(failure.as_deref().unwrap_or("cancelled"));
            job.failure = failure;
            let exec = job.execution();
            let tms = job.taskmanagers();
            free_slots(&mut state, id);
            (exec, super::connections(&state.taskmanagers, &tms))
        };
        self.record_end(id);
        tokio::spawn(tell(connections, ToTaskManager::Cancel { job: exec }));
    }
}

/// Sends one command to every TaskManager of a job, in turn; a TaskManager that
/// does not acknowledge is logged, not retried (it is lost or will be).
pub(super) async fn tell(connections: Vec<quinn::Connection>, command: ToTaskManager) {
    for conn in connections {
        if let Err(e) = command_to(&conn, &command).await {
            tracing::debug!(remote = %conn.remote_address(), "command not delivered: {e}");
        }
    }
}

/// Sends a command to a TaskManager and waits for its acknowledgement.
pub(super) async fn command_to(conn: &quinn::Connection, command: &ToTaskManager) -> anyhow::Result<()> {
    let ack: Ack = tokio::time::timeout(Duration::from_secs(60), codec::call(conn, command))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 60 s"))??;
    ack.map_err(|e| anyhow::anyhow!(e))
}

/// Whether `placement` puts subtask `subtask` of chain `chain` on TaskManager `tm`.
fn placed_on(placement: &[Vec<(String, usize)>], chain: usize, subtask: u32, tm: &str) -> bool {
    placement.get(chain).and_then(|p| p.get(subtask as usize)).is_some_and(|(t, _)| t == tm)
}

/// What a TaskManager says of a subtask's end (`ToJobManager::TaskDone`).
pub struct SubtaskEnd {
    /// How it ended.
    pub outcome: TaskOutcome,
    /// What it used in all.
    pub usage: TaskUsage,
    /// Its statistics at the end.
    pub stats: SubtaskStats,
    /// What the job's guests there logged since the last heartbeat.
    pub logs: crate::runtime::GuestLogs,
    /// Its operators' counters at the end.
    pub counters: Vec<(String, u64)>,
}
