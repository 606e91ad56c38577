//! The HTTP API for clients, shaped like Flink's REST API (docs/http-api.md).
//!
//! Every route but `/health` needs an API key; what a key sees is scoped to its
//! tenant (`tenants.rs`), and another tenant's objects answer exactly as unknown
//! ones do. The request and answer types shared with the client are in `crate::api`.
// Handlers refuse with a ready answer (`Err(Response)`); its size does not matter on this path.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::tenants::Caller;
use super::{millis, JobManager, JobSettings, JobStatus, ModuleStore, RestartStrategy, Submission};
use crate::api::{JobFileRequest, RunRequest, SavepointBody, StopBody, SubmitSettings, TriggerAnswer};
use crate::checkpoint::CheckpointConfig;
use crate::runtime::digest as eddy_digest;

pub(super) type Shared = Arc<JobManager>;

/// An error answer: `{"errors": [message]}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "errors": [message.into()] }))).into_response()
}

/// The answer for an object the caller may not see, the same as for one that does not exist.
fn not_found(kind: &str, id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no {kind} with id {id}"))
}

/// Refuses callers with a read-only key.
fn writer(caller: &Caller) -> Result<(), Response> {
    if caller.may_write() {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, "this key is read-only (role viewer)"))
    }
}

/// Refuses callers that are not the cluster's admin.
pub(super) fn admin(caller: &Caller) -> Result<(), Response> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(error(StatusCode::FORBIDDEN, "this needs an admin key"))
    }
}

/// A JSON request body; a malformed one gets `400 {"errors": [why]}` like every refusal
/// (axum's own `Json` answers 422 in plain text).
pub(super) struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => Ok(Body(body)),
            Err(rejection) => Err(error(StatusCode::BAD_REQUEST, rejection.body_text().replace('\n', " "))),
        }
    }
}

/// Declares the API's routes once: the router is built from the list, and the list
/// is public so that a test calls every route with every kind of key.
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every route of the API, as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Each route also under `/v1`, where Flink's REST clients send every request.
        fn routes() -> Router<Shared> {
            let router = Router::new();
            $(let router = router.route($path, axum::routing::$method($handler)).route(concat!("/v1", $path), axum::routing::$method($handler));)*
            router
        }
    };
}

api_routes! {
    get "/health" => health,
    post "/jars/upload" => upload,
    get "/jars" => list_jars,
    get "/jars/{id}" => get_jar,
    post "/jars/{id}/run" => run_jar,
    get "/jobs" => list_jobs,
    post "/jobs" => run_job_file,
    get "/jobs/{id}" => get_job,
    get "/jobs/{id}/vertices/{task}" => get_vertex,
    get "/jobs/{id}/logs" => job_logs,
    patch "/jobs/{id}" => cancel_job,
    delete "/jobs/{id}" => cancel_job,
    get "/jobs/overview" => jobs_overview,
    post "/jobs/{id}/savepoints" => savepoint,
    get "/jobs/{id}/savepoints/{trigger}" => savepoint_status,
    post "/jobs/{id}/stop" => stop_job,
    get "/taskmanagers" => taskmanagers,
    get "/taskmanagers/{id}" => get_taskmanager,
    delete "/taskmanagers/{id}" => super::tenant_api::revoke_taskmanager,
    get "/taskmanager-tokens" => super::tenant_api::list_join_tokens,
    post "/taskmanager-tokens" => super::tenant_api::create_join_token,
    delete "/taskmanager-tokens/{id}" => super::tenant_api::revoke_join_token,
    get "/overview" => overview,
    get "/tenants" => super::tenant_api::list_tenants,
    post "/tenants" => super::tenant_api::create_tenant,
    get "/tenants/{name}" => super::tenant_api::get_tenant,
    patch "/tenants/{name}" => super::tenant_api::update_tenant,
    delete "/tenants/{name}" => super::tenant_api::delete_tenant,
    get "/tenants/{name}/usage" => super::tenant_api::usage,
    get "/whoami" => super::tenant_api::whoami,
    get "/openapi.json" => openapi,
    get "/metrics" => metrics,
    get "/tokens" => super::tenant_api::list_tokens,
    post "/tokens" => super::tenant_api::create_token,
    delete "/tokens/{id}" => super::tenant_api::revoke_token,
}

/// The API's router.
pub(super) fn router(jm: Shared) -> Router {
    // Uploads are refused per tenant quota in `upload`; this is the cluster's ceiling.
    let limit = (jm.config.max_upload as usize) << 20;
    routes()
        .merge(super::dashboard::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(jm.clone(), authenticate))
        .with_state(jm)
}

/// Serves the API until the listener fails.
pub async fn serve<L: axum::serve::Listener>(jm: Shared, listener: L) -> anyhow::Result<()>
where
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(jm)).await?;
    Ok(())
}

/// Finds the caller of every request but `/health` and the dashboard's files, and hands it to the handler.
async fn authenticate(State(jm): State<Shared>, mut request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" || (request.method() == axum::http::Method::GET && super::dashboard::is_asset(request.uri().path())) {
        return next.run(request).await;
    }
    let header = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    let Some(key) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return error(StatusCode::UNAUTHORIZED, "missing API key (send Authorization: Bearer KEY)");
    };
    match jm.directory.authenticate(key.trim()) {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => error(StatusCode::UNAUTHORIZED, "unknown or revoked API key"),
    }
}

/// The caller's figures for Prometheus (`metrics.rs`, `docs/metrics.md`).
async fn metrics(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    let body = super::metrics::render(&jm, &caller);
    ([(axum::http::header::CONTENT_TYPE, crate::prometheus::CONTENT_TYPE)], body).into_response()
}

/// The API's OpenAPI document, generated from its routes and types (`openapi.rs`).
async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

async fn upload(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Query(q): Query<UploadQuery>, body: Bytes) -> Response {
    if let Err(r) = writer(&caller) {
        return r;
    }
    let name = q.name.unwrap_or_else(|| "job.wasm".into());
    let id = eddy_digest(&body);
    let mut limit = None;
    if let Some(tenant) = caller.tenant.as_deref() {
        let quotas = jm.directory.tenant(tenant).map(|t| t.quotas).unwrap_or_default();
        limit = Some(quotas.module_bytes);
        if body.len() as u64 > quotas.max_upload_bytes {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("quota max-upload-bytes exceeded: tenant {tenant} may upload {} bytes at once, this is {}", quotas.max_upload_bytes, body.len()),
            );
        }
        // Before validation, which compiles: a tenant past its quota costs no CPU.
        if let Err(e) = jm.modules.check_room(tenant, &id, body.len() as u64, quotas.module_bytes) {
            return error(StatusCode::FORBIDDEN, e.to_string());
        }
    }
    let jm2 = jm.clone();
    let result = tokio::task::spawn_blocking(move || {
        let info = match jm2.modules.get(&id, None) {
            Some(mut known) => {
                known.name = name;
                known
            }
            None => ModuleStore::validate(&name, &body, &jm2.runtime)?,
        };
        jm2.modules.insert(info, &body, caller.tenant.as_deref(), limit, &jm2.db)
    })
    .await;
    match result {
        Ok(Ok(info)) => {
            tracing::info!(id = %info.id, name = %info.name, "module uploaded");
            Json(json!({ "id": info.id, "status": "success", "filename": info.name })).into_response()
        }
        Ok(Err(e @ (super::modules::UploadError::Io(_) | super::modules::UploadError::Db(_)))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Ok(Err(e @ super::modules::UploadError::Quota(_))) => error(StatusCode::FORBIDDEN, e.to_string()),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list_jars(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    Json(json!({ "files": jm.modules.list(caller.tenant.as_deref()) })).into_response()
}

async fn get_jar(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    match jm.modules.get(&id, caller.tenant.as_deref()) {
        Some(info) => Json(json!(info)).into_response(),
        None => not_found("jar", &id),
    }
}

async fn run_jar(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>, Body(req): Body<RunRequest>) -> Response {
    submit(jm, caller, Submission::Jar { digest: id, entry: req.entry, args: req.args }, req.settings).await
}

async fn run_job_file(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Body(req): Body<JobFileRequest>) -> Response {
    submit(jm, caller, Submission::File(req.job), req.settings).await
}

async fn submit(jm: Shared, caller: Caller, submission: Submission, req: SubmitSettings) -> Response {
    if let Err(r) = writer(&caller) {
        return r;
    }
    let settings = match settings(&jm, &caller, req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match jm.submit(submission, settings).await {
        Ok(job) => Json(json!({ "jobid": job })).into_response(),
        Err((status, message)) => {
            // A tenant names savepoints relative to its root and sees them so in errors too.
            let message = match caller.tenant.as_deref() {
                Some(t) => message.replace(&format!("{}/", super::placement::tenant_root(&jm, t).display()), ""),
                None => message,
            };
            error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), message)
        }
    }
}

/// The settings of a submission, with defaults; a tenant's checkpoints and
/// savepoints are placed by the cluster (see `super::placement`).
fn settings(jm: &JobManager, caller: &Caller, req: SubmitSettings) -> Result<JobSettings, Response> {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let parallelism = req.parallelism.unwrap_or(1);
    if !(1..=crate::plan::MAX_PARALLELISM_LIMIT).contains(&parallelism) {
        return Err(bad(format!("parallelism {parallelism} is out of range")));
    }
    if req.checkpoint_interval_ms == Some(0) {
        return Err(bad("checkpoint-interval-ms must be positive".into()));
    }
    let checkpoint = CheckpointConfig {
        interval: req.checkpoint_interval_ms.map(Duration::from_millis),
        mode: req.checkpointing_mode.unwrap_or_default(),
        retained: req.checkpoints_retained.unwrap_or(1).clamp(1, 1000),
        ..CheckpointConfig::default()
    };
    let restart = req.restart_strategy.unwrap_or_else(|| RestartStrategy::default_for(checkpoint.interval.is_some()));
    let places = super::placement::Places::for_caller(jm, caller, req.checkpoint_dir, req.savepoint_path).map_err(bad)?;
    let state_backend = super::placement::state_backend(caller, req.state_backend.unwrap_or_default()).map_err(bad)?;
    Ok(JobSettings {
        parallelism,
        buffer_timeout_ms: req.buffer_timeout_ms.unwrap_or(10).min(60_000),
        checkpoint,
        checkpoint_dir: places.checkpoints,
        restart,
        savepoint: places.savepoint,
        allow_non_restored_state: req.allow_non_restored_state,
        state_backend,
        tenant: caller.tenant.clone(),
        memory_limit_mib: req.memory_limit_mib,
        call_timeout_ms: req.call_timeout_ms,
    })
}

async fn list_jobs(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    let jobs = caller_jobs(
        &jm,
        &caller,
        |j| json!({ "id": j.id, "name": j.name, "status": j.status }),
        |r| json!({ "id": r.id, "name": r.name, "status": r.status }),
    );
    Json(json!({ "jobs": jobs })).into_response()
}

/// The caller's jobs: those the JobManager holds (shown by `held`), then the ended
/// ones only its history has (since a restart; shown by `ended`).
fn caller_jobs(
    jm: &super::JobManager,
    caller: &Caller,
    held: impl Fn(&super::Job) -> Value,
    ended: impl Fn(&super::history::JobRecord) -> Value,
) -> Vec<Value> {
    let (mut jobs, ids) = {
        let state = jm.state.lock().unwrap();
        let mine: Vec<_> = state.jobs.values().filter(|j| caller.sees(j.settings.tenant.as_deref())).collect();
        let ids: std::collections::HashSet<String> = mine.iter().map(|j| j.id.clone()).collect();
        (mine.into_iter().map(held).collect::<Vec<_>>(), ids)
    };
    jobs.extend(jm.history.list(caller.tenant.as_deref()).iter().filter(|r| !ids.contains(&r.id)).map(ended));
    jobs
}

async fn get_job(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    let state = jm.state.lock().unwrap();
    let Some(j) = state.visible_job(&id, &caller) else {
        drop(state);
        return match jm.history.get(&id).filter(|h| caller.sees(h.tenant.as_deref())) {
            Some(ended) => Json(json!(ended)).into_response(),
            None => not_found("job", &id),
        };
    };
    let plan = &j.plan;
    let vertices: Vec<Value> = plan
        .vertices
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let task = plan.chains.iter().position(|c| c.vertices.contains(&i));
            json!({ "id": i, "name": v.name, "parallelism": plan.parallelism[i], "task": task })
        })
        .collect();
    let tasks: Vec<Value> = (0..plan.chains.len()).map(|c| task_json(j, c)).collect();
    let edges: Vec<Value> = plan
        .edges
        .iter()
        .map(|e| json!({ "source": e.source, "target": e.target, "partitioning": crate::plan::partitioning_name(e.partitioning), "side-output": e.side_output, "input": e.input }))
        .collect();
    // What the sources read of their inputs, for `eddy run -m`'s progress bar.
    let sources = plan.chains.iter().enumerate().filter(|(_, c)| crate::plan::is_source(&plan.vertices[c.vertices[0]].kind));
    let input = j.stats.input(sources.map(|(i, c)| (i, c.parallelism)));
    Json(json!({
        "jid": j.id,
        "name": j.name,
        "tenant": j.settings.tenant,
        "entry": (!j.from_job_file).then(|| &j.spec.programs[0].entry),
        "programs": j.spec.programs,
        "status": j.status,
        // Flink's name for the status.
        "state": j.status,
        "bounded": plan.bounded,
        // The job's default: a job file's or entry's own, else the submitted one.
        "parallelism": j.spec.graph.parallelism.unwrap_or(j.settings.parallelism),
        "start-time": millis(j.started),
        "end-time": j.ended.map(millis),
        "duration": j.duration_ms(),
        "failure": j.failure,
        "waiting": (j.status == JobStatus::Created).then(|| j.waiting.clone()).flatten(),
        "attempt": j.attempt,
        "restarts": j.attempt,
        "restart-strategy": j.settings.restart,
        "exceptions": j.exceptions.iter().map(|(t, why)| json!({ "timestamp": millis(*t), "exception": why })).collect::<Vec<_>>(),
        "checkpoints": j.coordinator.view(),
        "records-in": j.progress().0,
        "records-out": j.progress().1,
        "input": { "bytes-read": input.0, "bytes": input.1 },
        "state-bytes": j.state_bytes.values().sum::<u64>(),
        "peak-state-bytes": j.peak_state_bytes,
        "vertices": vertices,
        "tasks": tasks,
        "edges": edges,
    }))
    .into_response()
}

/// Task `c` of a held job: its operators, its totals and each subtask's place and figures.
fn task_json(j: &super::Job, c: usize) -> Value {
    let chain = &j.plan.chains[c];
    let subtasks: Vec<Value> = (0..chain.parallelism as usize)
        .map(|s| {
            let place = j.placement.get(c).and_then(|p| p.get(s));
            json!({
                "subtask": s,
                "taskmanager": place.map(|p| p.0.clone()),
                "slot": place.map(|p| p.1),
                "metrics": j.stats.subtask(c, s as u32).map(|v| v.json()),
                "counters": j.stats.counters(c, s as u32),
            })
        })
        .collect();
    json!({
        "task": c,
        "name": j.plan.chain_name(c),
        "operators": chain.vertices.iter().map(|&v| &j.plan.vertices[v].name).collect::<Vec<_>>(),
        "parallelism": chain.parallelism,
        "metrics": j.stats.chain(c, chain.parallelism).json(),
        "counters": j.stats.chain_counters(c),
        "subtasks": subtasks,
    })
}

/// One task of a job (Flink's job vertex): `GET /jobs/{id}/vertices/{task}`.
async fn get_vertex(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path((id, task)): Path<(String, String)>) -> Response {
    let state = jm.state.lock().unwrap();
    let Some(j) = state.visible_job(&id, &caller) else {
        return not_found("job", &id);
    };
    match task.parse::<usize>().ok().filter(|&c| c < j.plan.chains.len()) {
        Some(c) => {
            let mut answer = task_json(j, c);
            // Flink's field names for the same figures.
            answer["id"] = c.into();
            answer["now"] = super::now_ms().into();
            Json(answer).into_response()
        }
        None => not_found("vertex", &task),
    }
}

#[derive(Deserialize)]
struct LogsQuery {
    /// Only lines after this `seq`.
    after: Option<u64>,
    /// At most this many (default and ceiling 1000).
    limit: Option<usize>,
}

/// What a job's guests logged lately on its TaskManagers (`logs.rs`), oldest first.
async fn job_logs(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>, Query(q): Query<LogsQuery>) -> Response {
    let state = jm.state.lock().unwrap();
    let Some(j) = state.visible_job(&id, &caller) else {
        drop(state);
        // An ended job from before a JobManager restart: its lines are gone.
        return match jm.history.get(&id).filter(|h| caller.sees(h.tenant.as_deref())) {
            Some(_) => Json(super::logs::JobLog::default().after(None, 0)).into_response(),
            None => not_found("job", &id),
        };
    };
    let limit = q.limit.unwrap_or(super::logs::KEPT_LINES).min(super::logs::KEPT_LINES);
    Json(j.logs.after(q.after, limit)).into_response()
}

/// Unlike Flink's, answers when the savepoint completed rather than with a trigger id to poll.
/// Triggers a savepoint (Flink's shape: `202 {"request-id"}`, then poll its status).
async fn savepoint(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>, Body(body): Body<SavepointBody>) -> Response {
    trigger_savepoint(jm, caller, id, body.target_directory, body.stop || body.cancel_job)
}

/// Flink's stop with savepoint: `flink stop`.
async fn stop_job(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>, Body(body): Body<StopBody>) -> Response {
    if body.drain && jm.job_visible(&id, &caller) {
        return error(StatusCode::BAD_REQUEST, "eddy stops a job with a savepoint without draining it: leave out --drain");
    }
    trigger_savepoint(jm, caller, id, body.target_directory, true)
}

/// Starts a savepoint of job `id` and answers its trigger id; the savepoint runs on.
fn trigger_savepoint(jm: Shared, caller: Caller, id: String, target: Option<std::path::PathBuf>, stop: bool) -> Response {
    if !jm.job_visible(&id, &caller) {
        return not_found("job", &id);
    }
    if let Err(r) = writer(&caller) {
        return r;
    }
    let target = match super::placement::savepoint_target(&jm, &caller, target) {
        Ok(t) => t,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let Some(trigger) = jm.triggers.start(&id) else {
        let most = super::triggers::PER_JOB;
        return error(StatusCode::TOO_MANY_REQUESTS, format!("too many savepoints in progress (at most {most} per job); try again later"));
    };
    let answer = TriggerAnswer { request_id: trigger.clone() };
    tokio::spawn(async move {
        let outcome = jm.savepoint(&id, target, stop).await.map(|location| super::placement::shown_location(&jm, &caller, &location));
        jm.triggers.finish(&id, &trigger, outcome);
    });
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

/// How a triggered savepoint goes: `{"status": {"id": "IN_PROGRESS"}}`, or
/// `COMPLETED` with `{"operation": {"location"}}`; a failed one answers its refusal.
async fn savepoint_status(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path((id, trigger)): Path<(String, String)>) -> Response {
    if !jm.job_visible(&id, &caller) {
        return not_found("job", &id);
    }
    match jm.triggers.get(&id, &trigger) {
        None => not_found("savepoint operation", &trigger),
        Some(None) => Json(json!({ "status": { "id": "IN_PROGRESS" } })).into_response(),
        Some(Some(Ok(location))) => Json(json!({ "status": { "id": "COMPLETED" }, "operation": { "location": location } })).into_response(),
        Some(Some(Err((status, message)))) => error(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message),
    }
}

/// The caller's jobs in Flink's `JobDetails` shape (`flink list` reads it).
async fn jobs_overview(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    let now = super::now_ms();
    // Flink's deserializer needs each of these fields.
    let flink = |jid: &str, name: &str, state: JobStatus, (start, end): (u64, Option<u64>), tasks: Value| {
        json!({
            "jid": jid, "name": name, "state": state,
            "start-time": start, "end-time": end.map_or(-1, |e| e as i64),
            "duration": end.unwrap_or(now).saturating_sub(start), "last-modification": end.unwrap_or(start),
            "tasks": tasks, "jobType": "STREAMING", "schedulerType": "Default", "pending-operators": 0,
        })
    };
    let jobs = caller_jobs(
        &jm,
        &caller,
        |j| {
            let total: u32 = j.plan.chains.iter().map(|c| c.parallelism).sum();
            let ended = j.ended_subtasks.len() as u32;
            let running = if j.status == JobStatus::Running { total.saturating_sub(ended) } else { 0 };
            let finished = if j.status == JobStatus::Finished { total } else { ended };
            let tasks = json!({ "total": total, "running": running, "finished": finished });
            flink(&j.id, &j.name, j.status, (millis(j.started), j.ended.map(millis)), tasks)
        },
        |r| flink(&r.id, &r.name, r.status, (r.start_time, Some(r.end_time)), json!({ "total": 0 })),
    );
    Json(json!({ "jobs": jobs })).into_response()
}

async fn cancel_job(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    if !jm.job_visible(&id, &caller) {
        return not_found("job", &id);
    }
    if let Err(r) = writer(&caller) {
        return r;
    }
    if jm.cancel_job(&id) {
        (StatusCode::ACCEPTED, Json(json!({}))).into_response()
    } else {
        not_found("job", &id)
    }
}

async fn taskmanagers(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = admin(&caller) {
        return r;
    }
    let state = jm.state.lock().unwrap();
    let tms: Vec<Value> = state.taskmanagers.values().map(taskmanager_json).collect();
    Json(json!({ "taskmanagers": tms })).into_response()
}

/// A TaskManager as `GET /taskmanagers` lists it.
fn taskmanager_json(t: &super::TaskManagerEntry) -> Value {
    json!({
        "id": t.id,
        "dataAddress": t.data_addr.to_string(),
        "slotsNumber": t.slots.len(),
        "freeSlots": t.free_slots(),
        "lastHeartbeatMsAgo": t.last_heartbeat.elapsed().as_millis() as u64,
        "runningTasks": t.running_tasks,
    })
}

/// One TaskManager and what each of its slots holds: the job and its subtasks there.
async fn get_taskmanager(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    if let Err(r) = admin(&caller) {
        return r;
    }
    let state = jm.state.lock().unwrap();
    let Some(t) = state.taskmanagers.get(&id) else {
        return not_found("taskmanager", &id);
    };
    let slots: Vec<Value> = t
        .slots
        .iter()
        .enumerate()
        .map(|(slot, holder)| {
            let job = holder.as_ref().and_then(|h| state.jobs.get(h));
            let subtasks: Vec<Value> = job
                .map(|j| {
                    let placed = j.placement.iter().enumerate().flat_map(|(c, p)| p.iter().enumerate().map(move |(s, at)| (c, s, at)));
                    placed
                        .filter(|(_, _, (tm, sl))| *tm == id && *sl == slot)
                        .map(|(c, s, _)| json!({ "task": c, "task-name": j.plan.chain_name(c), "subtask": s }))
                        .collect()
                })
                .unwrap_or_default();
            json!({ "slot": slot, "job": holder, "job-name": job.map(|j| &j.name), "subtasks": subtasks })
        })
        .collect();
    let mut answer = taskmanager_json(t);
    answer["slots"] = slots.into();
    Json(answer).into_response()
}

/// Counts of the caller's jobs; the cluster's slots for the admin only.
async fn overview(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    let state = jm.state.lock().unwrap();
    let mine = || state.jobs.values().filter(|j| caller.sees(j.settings.tenant.as_deref()));
    let active = mine().filter(|j| j.is_active()).count();
    drop(state);
    let ended = jm.history.list(caller.tenant.as_deref());
    let count = |s: JobStatus| ended.iter().filter(|j| j.status == s).count();
    let mut answer = json!({
        "jobs-running": active,
        "jobs-finished": count(JobStatus::Finished),
        "jobs-cancelled": count(JobStatus::Canceled),
        "jobs-failed": count(JobStatus::Failed),
    });
    if caller.is_admin() {
        let state = jm.state.lock().unwrap();
        answer["taskmanagers"] = state.taskmanagers.len().into();
        answer["slots-total"] = state.taskmanagers.values().map(|t| t.slots.len()).sum::<usize>().into();
        answer["slots-available"] = state.taskmanagers.values().map(|t| t.free_slots()).sum::<usize>().into();
    }
    Json(answer).into_response()
}
