//! `GET /metrics` of a TaskManager (with `--metrics-bind`): its slots, the
//! subtasks it runs and what passes through them, and its sandboxes (instances,
//! linear memory, calls, traps, compilations and cache hits). The names differ
//! from the JobManager's (`eddy_taskmanager_*`), so that a Prometheus scraping
//! both never sums a subtask twice. Every metric is in `docs/metrics.md`.
//!
//! Label values come from this process (its id, execution ids, indexes), never
//! from a request. The figures name tenants' jobs, so off loopback the endpoint
//! needs a bearer token (`--metrics-token-file`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;

use super::TaskManager;
use crate::prometheus::{Families, Labels, CONTENT_TYPE};

/// What `--metrics-bind` and `--metrics-token-file` set up.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    /// Where to serve.
    pub bind: SocketAddr,
    /// The bearer token a scrape must send; none: anyone who reaches the address.
    pub token: Option<String>,
}

/// Why the endpoint cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Off loopback, without a token, tenants' job ids would be open to the network.
    #[error("--metrics-bind {0} is not a loopback address: give --metrics-token-file too")]
    OpenToTheNetwork(SocketAddr),
    /// The address could not be bound.
    #[error("cannot serve metrics on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// The endpoint's socket, bound before the TaskManager registers: a bad address stops
/// it before it takes any work.
pub struct MetricsListener {
    listener: tokio::net::TcpListener,
    token: Option<String>,
}

impl MetricsListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Binds the endpoint, refusing one open to the network without a token.
pub async fn listen(endpoint: MetricsEndpoint) -> Result<MetricsListener, MetricsError> {
    if endpoint.token.is_none() && !endpoint.bind.ip().is_loopback() {
        return Err(MetricsError::OpenToTheNetwork(endpoint.bind));
    }
    let listener = tokio::net::TcpListener::bind(endpoint.bind).await.map_err(|e| MetricsError::Bind(endpoint.bind, e))?;
    Ok(MetricsListener { listener, token: endpoint.token })
}

/// Serves `/metrics` of `tm` on `listener` until the process ends.
pub(crate) async fn serve(tm: Arc<TaskManager>, listener: MetricsListener) {
    let MetricsListener { listener, token } = listener;
    let token: Arc<Option<String>> = Arc::new(token);
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(tm)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = token.clone();
            async move { authorize(token.as_deref(), request, next).await }
        }));
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!("the metrics endpoint stopped: {e}");
    }
}

async fn authorize(token: Option<&str>, request: Request, next: Next) -> Response {
    if let Some(token) = token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| bool::from(g.trim().as_bytes().ct_eq(token.as_bytes())));
        if !ok {
            return (StatusCode::UNAUTHORIZED, "missing or wrong metrics token (send Authorization: Bearer TOKEN)\n").into_response();
        }
    }
    next.run(request).await
}

async fn metrics(State(tm): State<Arc<TaskManager>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&tm)).into_response()
}

/// The exposition of this TaskManager now.
pub(crate) fn render(tm: &TaskManager) -> String {
    let me = tm.link().id;
    let at = |extra: &[(&'static str, String)]| -> Labels {
        let mut l = vec![("taskmanager", me.clone())];
        l.extend_from_slice(extra);
        l
    };
    let mut f = Families::default();
    f.gauge("taskmanager_slots", "Task slots this TaskManager offers", vec![(at(&[]), f64::from(tm.slots))]);
    f.gauge("taskmanager_subtasks_running", "Subtasks running here now", vec![(at(&[]), f64::from(tm.running.load(Ordering::Relaxed)))]);

    #[derive(Default)]
    struct Series {
        jobs: Vec<(Labels, f64)>,
        records_in: Vec<(Labels, u64)>,
        records_out: Vec<(Labels, u64)>,
        bytes_in: Vec<(Labels, u64)>,
        bytes_out: Vec<(Labels, u64)>,
        backpressured: Vec<(Labels, u64)>,
        idle: Vec<(Labels, u64)>,
        watermark: Vec<(Labels, f64)>,
        queue: Vec<(Labels, f64)>,
    }
    let mut s = Series::default();
    {
        let jobs = tm.jobs.lock().unwrap();
        for (exec, local) in jobs.iter() {
            let (job, attempt) = crate::protocol::execution_parts(exec).unwrap_or((exec, "0"));
            let job = at(&[("job_id", job.to_string()), ("attempt", attempt.to_string())]);
            let held = local.budget.as_ref().map_or(0, |b| b.state_bytes());
            s.jobs.push((job.clone(), held as f64));
            for (chain, subtask, live) in &local.live {
                let mut l = job.clone();
                l.push(("vertex", chain.to_string()));
                l.push(("subtask", subtask.to_string()));
                let st = live.statistics();
                s.records_in.push((l.clone(), st.records_in));
                s.records_out.push((l.clone(), st.records_out));
                s.bytes_in.push((l.clone(), st.bytes_in));
                s.bytes_out.push((l.clone(), st.bytes_out));
                s.backpressured.push((l.clone(), st.backpressured_ns / 1_000_000));
                s.idle.push((l.clone(), st.idle_ns / 1_000_000));
                if let Some(wm) = st.watermark {
                    s.watermark.push((l.clone(), wm as f64));
                }
                let fill = if st.capacity == 0 { 0.0 } else { st.queued as f64 / st.capacity as f64 };
                s.queue.push((l, fill));
            }
        }
    }
    f.gauge("taskmanager_job_state_bytes", "Keyed state a job's instances here hold now, in bytes", s.jobs);
    f.counter("taskmanager_subtask_records_in", "Records that entered a subtask here", s.records_in);
    f.counter("taskmanager_subtask_records_out", "Records a subtask here sent downstream or wrote", s.records_out);
    f.counter("taskmanager_subtask_bytes_in", "Bytes that entered a subtask here", s.bytes_in);
    f.counter("taskmanager_subtask_bytes_out", "Bytes a subtask here sent or wrote", s.bytes_out);
    f.counter("taskmanager_subtask_backpressured_milliseconds", "Time a subtask here was blocked on a full output", s.backpressured);
    f.counter("taskmanager_subtask_idle_milliseconds", "Time a subtask here waited for input", s.idle);
    f.gauge("taskmanager_subtask_watermark_milliseconds", "The last watermark a subtask here sent, in epoch milliseconds", s.watermark);
    f.gauge("taskmanager_subtask_input_queue_fill_ratio", "How full a subtask's input queue was when it last took an event", s.queue);

    let sb = crate::runtime::sandbox_figures();
    f.gauge("sandbox_instances", "Wasm instances alive in this process (operator chains and planners)", vec![(at(&[]), sb.instances as f64)]);
    f.gauge("sandbox_linear_memory_bytes", "Linear memory those instances hold", vec![(at(&[]), sb.linear_memory_bytes as f64)]);
    f.counter("sandbox_calls", "Calls into guests", vec![(at(&[]), sb.calls)]);
    f.counter("sandbox_traps", "Guest calls that trapped: a fault, a deadline, a memory or quota limit", vec![(at(&[]), sb.traps)]);
    f.counter("sandbox_compiles", "Components compiled from their bytes", vec![(at(&[]), sb.compiled)]);
    let hits = vec![(at(&[("cache", "memory".into())]), sb.memory_cache_hits), (at(&[("cache", "disk".into())]), sb.disk_cache_hits)];
    f.counter("sandbox_compile_cache_hits", "Loads of a component answered without compiling: from this process or the disk cache", hits);
    f.encode()
}
