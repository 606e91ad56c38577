//! `GET /metrics`: the JobManager's figures in the Prometheus text format
//! (every metric is in `docs/metrics.md`).
//!
//! A scrape builds a registry from the state as it is, then encodes it off the
//! lock: no figure is kept twice, and a job's series go when the job does.
//! Label values come from the JobManager (ids, indexes, plan names), never from
//! a request. What a key sees is its tenant's; the admin sees the cluster.
//! Ended jobs stay for [`ENDED_SHOWN`] so that a scrape after the end still
//! reads their final counts, at most [`MAX_ENDED`] of them.

use std::time::{Duration, SystemTime};

use super::tenants::Caller;
use super::{JobManager, JobStatus};
use crate::prometheus::{Families, Labels};

/// How long an ended job's series are still shown.
pub const ENDED_SHOWN: Duration = Duration::from_secs(600);
/// The most ended jobs shown at once (the newest): label cardinality stays bounded.
pub const MAX_ENDED: usize = 100;

/// Series gathered under the JobManager's lock, by metric.
#[derive(Default)]
struct Gathered {
    job_status: Vec<(Labels, f64)>,
    job_records_in: Vec<(Labels, u64)>,
    job_records_out: Vec<(Labels, u64)>,
    job_restarts: Vec<(Labels, u64)>,
    job_state_bytes: Vec<(Labels, f64)>,
    checkpoints_completed: Vec<(Labels, u64)>,
    checkpoints_failed: Vec<(Labels, u64)>,
    checkpoint_duration: Vec<(Labels, f64)>,
    checkpoint_size: Vec<(Labels, f64)>,
    vertex_records_in: Vec<(Labels, u64)>,
    vertex_records_out: Vec<(Labels, u64)>,
    vertex_bytes_in: Vec<(Labels, u64)>,
    vertex_bytes_out: Vec<(Labels, u64)>,
    vertex_backpressured: Vec<(Labels, f64)>,
    vertex_busy: Vec<(Labels, f64)>,
    vertex_watermark: Vec<(Labels, f64)>,
    subtask_records_in: Vec<(Labels, u64)>,
    subtask_records_out: Vec<(Labels, u64)>,
    subtask_backpressured: Vec<(Labels, f64)>,
    subtask_busy: Vec<(Labels, f64)>,
    subtask_idle: Vec<(Labels, f64)>,
    subtask_queue: Vec<(Labels, f64)>,
    cluster: Vec<(&'static str, &'static str, f64)>,
}

/// The text a scrape by `caller` gets.
pub fn render(jm: &JobManager, caller: &Caller) -> String {
    let g = gather(jm, caller);
    let mut f = Families::default();
    for (name, help, v) in g.cluster {
        f.gauge(name, help, vec![(Vec::new(), v)]);
    }
    f.gauge("job_status", "1 for the job's current status (CREATED, RUNNING, RESTARTING, FINISHED, FAILED, CANCELED)", g.job_status);
    f.counter("job_records_in", "Records the job's sources read, over all attempts", g.job_records_in);
    f.counter("job_records_out", "Records the job's sinks wrote, over all attempts", g.job_records_out);
    f.counter("job_restarts", "Restarts of the job", g.job_restarts);
    f.gauge("job_state_bytes", "Keyed state the job's operators hold now, in bytes", g.job_state_bytes);
    f.counter("job_checkpoints_completed", "Checkpoints of the job that completed", g.checkpoints_completed);
    f.counter("job_checkpoints_failed", "Checkpoints of the job that failed", g.checkpoints_failed);
    f.gauge("job_last_checkpoint_duration_seconds", "Duration of the job's latest completed checkpoint", g.checkpoint_duration);
    f.gauge("job_last_checkpoint_size_bytes", "Size of the job's latest completed checkpoint", g.checkpoint_size);
    f.counter("vertex_records_in", "Records that entered a vertex (task) in the current attempt", g.vertex_records_in);
    f.counter("vertex_records_out", "Records a vertex sent downstream or its sinks wrote, in the current attempt", g.vertex_records_out);
    f.counter("vertex_bytes_in", "Bytes that entered a vertex in the current attempt", g.vertex_bytes_in);
    f.counter("vertex_bytes_out", "Bytes a vertex sent or wrote in the current attempt", g.vertex_bytes_out);
    f.gauge("vertex_backpressured_ratio", "Highest share of the last second a subtask of the vertex was blocked on a full output", g.vertex_backpressured);
    f.gauge("vertex_busy_ratio", "Highest share of the last second a subtask of the vertex was working", g.vertex_busy);
    f.gauge("vertex_watermark_milliseconds", "The lowest watermark the vertex's subtasks sent, in epoch milliseconds", g.vertex_watermark);
    f.counter("subtask_records_in", "Records that entered a subtask", g.subtask_records_in);
    f.counter("subtask_records_out", "Records a subtask sent downstream or wrote", g.subtask_records_out);
    f.gauge("subtask_backpressured_ratio", "Share of the last second the subtask was blocked on a full output", g.subtask_backpressured);
    f.gauge("subtask_busy_ratio", "Share of the last second the subtask was working", g.subtask_busy);
    f.gauge("subtask_idle_ratio", "Share of the last second the subtask waited for input", g.subtask_idle);
    f.gauge("subtask_input_queue_fill_ratio", "How full the subtask's input queue was when it last took an event", g.subtask_queue);
    tenant_usage(jm, caller, &mut f);
    f.encode()
}

fn gather(jm: &JobManager, caller: &Caller) -> Gathered {
    let mut g = Gathered::default();
    let state = jm.state.lock().unwrap();
    if caller.is_admin() {
        let slots: usize = state.taskmanagers.values().map(|t| t.slots.len()).sum();
        let free: usize = state.taskmanagers.values().map(|t| t.free_slots()).sum();
        g.cluster.push(("taskmanagers", "TaskManagers registered", state.taskmanagers.len() as f64));
        g.cluster.push(("slots", "Slots of the registered TaskManagers", slots as f64));
        g.cluster.push(("slots_available", "Slots no job holds", free as f64));
    }
    let now = SystemTime::now();
    let recent = |ended: Option<SystemTime>| ended.is_none_or(|t| now.duration_since(t).unwrap_or_default() < ENDED_SHOWN);
    let mut jobs: Vec<_> = state
        .jobs
        .values()
        .filter(|j| caller.sees(j.settings.tenant.as_deref()) && (j.is_active() || recent(j.ended)))
        .collect();
    // The active ones, then the newest ended ones up to the cap.
    jobs.sort_by_key(|j| std::cmp::Reverse((j.is_active(), j.ended)));
    let active = jobs.iter().filter(|j| j.is_active()).count();
    jobs.truncate(active + MAX_ENDED);
    for j in jobs {
        // Not `job`: Prometheus gives every scraped series the `job` of its scrape config.
        let job: Labels = vec![("job_id", j.id.clone()), ("tenant", j.settings.tenant.clone().unwrap_or_default())];
        let (records_in, records_out) = j.progress();
        for status in [JobStatus::Created, JobStatus::Running, JobStatus::Restarting, JobStatus::Finished, JobStatus::Failed, JobStatus::Canceled] {
            let mut l = job.clone();
            l.push(("status", format!("{status:?}").to_uppercase()));
            g.job_status.push((l, f64::from(u8::from(j.status == status))));
        }
        g.job_records_in.push((job.clone(), records_in));
        g.job_records_out.push((job.clone(), records_out));
        g.job_restarts.push((job.clone(), u64::from(j.attempt)));
        g.job_state_bytes.push((job.clone(), j.state_bytes.values().sum::<u64>() as f64));
        let (completed, failed) = j.coordinator.counts();
        g.checkpoints_completed.push((job.clone(), completed));
        g.checkpoints_failed.push((job.clone(), failed));
        if let Some(c) = j.coordinator.last_completed() {
            g.checkpoint_duration.push((job.clone(), c.duration_ms as f64 / 1000.0));
            g.checkpoint_size.push((job.clone(), c.state_bytes as f64));
        }
        for (c, chain) in j.plan.chains.iter().enumerate() {
            let mut vertex = job.clone();
            vertex.push(("vertex", c.to_string()));
            vertex.push(("vertex_name", j.plan.chain_name(c)));
            let t = j.stats.chain(c, chain.parallelism);
            g.vertex_records_in.push((vertex.clone(), t.records_in));
            g.vertex_records_out.push((vertex.clone(), t.records_out));
            g.vertex_bytes_in.push((vertex.clone(), t.bytes_in));
            g.vertex_bytes_out.push((vertex.clone(), t.bytes_out));
            g.vertex_backpressured.push((vertex.clone(), t.backpressured));
            g.vertex_busy.push((vertex.clone(), t.busy));
            if let Some(wm) = t.watermark {
                g.vertex_watermark.push((vertex.clone(), wm as f64));
            }
            for s in 0..chain.parallelism {
                let Some(v) = j.stats.subtask(c, s) else { continue };
                let mut l = job.clone();
                l.push(("vertex", c.to_string()));
                l.push(("subtask", s.to_string()));
                let tm = j.placement.get(c).and_then(|p| p.get(s as usize)).map(|p| p.0.clone());
                l.push(("taskmanager", tm.unwrap_or_default()));
                g.subtask_records_in.push((l.clone(), v.latest.records_in));
                g.subtask_records_out.push((l.clone(), v.latest.records_out));
                g.subtask_backpressured.push((l.clone(), v.rates.backpressured));
                g.subtask_busy.push((l.clone(), v.rates.busy));
                g.subtask_idle.push((l.clone(), v.rates.idle));
                let fill = if v.latest.capacity == 0 { 0.0 } else { v.latest.queued as f64 / v.latest.capacity as f64 };
                g.subtask_queue.push((l, fill));
            }
        }
    }
    g
}

/// What tenants' jobs used since the JobManager started (the meter's running totals).
fn tenant_usage(jm: &JobManager, caller: &Caller, f: &mut Families) {
    let totals: Vec<_> = jm.meter.totals().into_iter().filter(|(t, _)| caller.sees(Some(t))).collect();
    let series = |pick: fn(&super::usage::Usage) -> u64| totals.iter().map(|(t, u)| (vec![("tenant", t.clone())], pick(u))).collect();
    f.counter("tenant_records_in", "Records the tenant's jobs read", series(|u| u.records_in));
    f.counter("tenant_records_out", "Records the tenant's jobs wrote", series(|u| u.records_out));
    f.counter("tenant_bytes_in", "Bytes the tenant's jobs read", series(|u| u.bytes_in));
    f.counter("tenant_bytes_out", "Bytes the tenant's jobs wrote", series(|u| u.bytes_out));
    f.counter("tenant_cpu_milliseconds", "CPU time of the tenant's tasks", series(|u| u.cpu_ns / 1_000_000));
    f.counter("tenant_slot_milliseconds", "Slot time the tenant's jobs held", series(|u| u.slot_ms));
}
