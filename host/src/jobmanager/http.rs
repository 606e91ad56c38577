//! The HTTP API for clients, shaped like Flink's REST API (docs/http-api.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{JobManager, JobSettings, JobStatus, ModuleStore, RestartStrategy, Submission};
use crate::checkpoint::{CheckpointConfig, Mode};
use crate::state::BackendKind;
use crate::runtime::digest as eddy_digest;

type Shared = Arc<JobManager>;

/// An error answer: `{"errors": [message]}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "errors": [message.into()] }))).into_response()
}

/// A JSON request body; a malformed one gets `400 {"errors": [why]}` like every refusal
/// (axum's own `Json` answers 422 in plain text).
struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => Ok(Body(body)),
            Err(rejection) => Err(error(StatusCode::BAD_REQUEST, rejection.body_text().replace('\n', " "))),
        }
    }
}

/// Serves the API until the listener fails.
pub async fn serve(jm: Shared, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let limit = (jm.config.max_upload as usize) << 20;
    let app = Router::new()
        .route("/jars/upload", post(upload))
        .route("/jars", get(list_jars))
        .route("/jars/{id}", get(get_jar))
        .route("/jars/{id}/run", post(run_jar))
        .route("/jobs", get(list_jobs).post(run_job_file))
        .route("/jobs/{id}", get(get_job).patch(cancel_job).delete(cancel_job))
        .route("/jobs/{id}/savepoints", post(savepoint))
        .route("/taskmanagers", get(taskmanagers))
        .route("/overview", get(overview))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(jm.clone(), check_token))
        .with_state(jm);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn check_token(State(jm): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &jm.config.token {
        let given = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {token}").as_str()) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong token");
        }
    }
    next.run(request).await
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

async fn upload(State(jm): State<Shared>, Query(q): Query<UploadQuery>, body: Bytes) -> Response {
    let name = q.name.unwrap_or_else(|| "job.wasm".into());
    let jm2 = jm.clone();
    let result = tokio::task::spawn_blocking(move || {
        let known = jm2.state.lock().unwrap().modules.get(&eddy_digest(&body)).cloned();
        if let Some(info) = known {
            return Ok(info);
        }
        let info = ModuleStore::validate(&name, &body, &jm2.runtime)?;
        jm2.state.lock().unwrap().modules.insert(info, &body)
    })
    .await;
    match result {
        Ok(Ok(info)) => {
            tracing::info!(id = %info.id, name = %info.name, "module uploaded");
            Json(json!({ "id": info.id, "status": "success", "filename": info.name })).into_response()
        }
        Ok(Err(super::modules::UploadError::Io(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot store the module: {e}")),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list_jars(State(jm): State<Shared>) -> Response {
    Json(json!({ "files": jm.state.lock().unwrap().modules.list() })).into_response()
}

async fn get_jar(State(jm): State<Shared>, Path(id): Path<String>) -> Response {
    match jm.state.lock().unwrap().modules.get(&id) {
        Some(info) => Json(json!(info)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no jar with id {id}")),
    }
}

/// `POST /jars/{id}/run`.
#[derive(Deserialize)]
struct RunRequest {
    entry: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(flatten)]
    settings: SettingsRequest,
}

/// `POST /jobs`: a job file whose components are ids of uploaded jars.
#[derive(Deserialize)]
struct JobFileRequest {
    job: crate::jobfile::JobFile,
    #[serde(flatten)]
    settings: SettingsRequest,
}

/// How a submitted job runs; every field has a default.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SettingsRequest {
    parallelism: Option<u32>,
    buffer_timeout_ms: Option<u64>,
    checkpoint_interval_ms: Option<u64>,
    checkpointing_mode: Option<Mode>,
    checkpoints_retained: Option<usize>,
    checkpoint_dir: Option<PathBuf>,
    restart_strategy: Option<RestartStrategy>,
    #[serde(rename = "savepointPath")]
    savepoint_path: Option<PathBuf>,
    #[serde(rename = "allowNonRestoredState", default)]
    allow_non_restored_state: bool,
    state_backend: Option<BackendKind>,
}

async fn run_jar(State(jm): State<Shared>, Path(id): Path<String>, Body(req): Body<RunRequest>) -> Response {
    submit(jm, Submission::Jar { digest: id, entry: req.entry, args: req.args }, req.settings).await
}

async fn run_job_file(State(jm): State<Shared>, Body(req): Body<JobFileRequest>) -> Response {
    submit(jm, Submission::File(req.job), req.settings).await
}

async fn submit(jm: Shared, submission: Submission, req: SettingsRequest) -> Response {
    let parallelism = req.parallelism.unwrap_or(1);
    if !(1..=crate::plan::MAX_PARALLELISM_LIMIT).contains(&parallelism) {
        return error(StatusCode::BAD_REQUEST, format!("parallelism {parallelism} is out of range"));
    }
    if req.checkpoint_interval_ms == Some(0) {
        return error(StatusCode::BAD_REQUEST, "checkpoint-interval-ms must be positive");
    }
    let checkpoint = CheckpointConfig {
        interval: req.checkpoint_interval_ms.map(Duration::from_millis),
        mode: req.checkpointing_mode.unwrap_or_default(),
        retained: req.checkpoints_retained.unwrap_or(1).clamp(1, 1000),
        ..CheckpointConfig::default()
    };
    let restart = req.restart_strategy.unwrap_or_else(|| RestartStrategy::default_for(checkpoint.interval.is_some()));
    let settings = JobSettings {
        parallelism,
        buffer_timeout_ms: req.buffer_timeout_ms.unwrap_or(10).min(60_000),
        checkpoint,
        checkpoint_dir: req.checkpoint_dir.unwrap_or_else(|| jm.config.checkpoint_dir.clone()),
        restart,
        savepoint: req.savepoint_path,
        allow_non_restored_state: req.allow_non_restored_state,
        state_backend: req.state_backend.unwrap_or_default(),
    };
    match jm.submit(submission, settings).await {
        Ok(job) => Json(json!({ "jobid": job })).into_response(),
        Err((status, message)) => error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), message),
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn list_jobs(State(jm): State<Shared>) -> Response {
    let state = jm.state.lock().unwrap();
    let jobs: Vec<Value> =
        state.jobs.values().map(|j| json!({ "id": j.id, "name": j.name, "status": j.status })).collect();
    Json(json!({ "jobs": jobs })).into_response()
}

async fn get_job(State(jm): State<Shared>, Path(id): Path<String>) -> Response {
    let state = jm.state.lock().unwrap();
    let Some(j) = state.jobs.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no job with id {id}"));
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
    let tasks: Vec<Value> = plan
        .chains
        .iter()
        .enumerate()
        .map(|(c, chain)| {
            let subtasks: Vec<Value> = (0..chain.parallelism as usize)
                .map(|s| {
                    let place = j.placement.get(c).and_then(|p| p.get(s));
                    json!({
                        "subtask": s,
                        "taskmanager": place.map(|p| p.0.clone()),
                        "slot": place.map(|p| p.1),
                    })
                })
                .collect();
            json!({ "task": c, "name": plan.chain_name(c), "subtasks": subtasks })
        })
        .collect();
    let waiting = (j.status == JobStatus::Created).then(|| {
        let free: usize = state.taskmanagers.values().map(|t| t.free_slots()).sum();
        format!("waiting for slots: needs {}, {free} free", plan.slots.len())
    });
    let end = j.ended.unwrap_or_else(SystemTime::now);
    Json(json!({
        "jid": j.id,
        "name": j.name,
        "entry": (!j.from_job_file).then(|| &j.spec.programs[0].entry),
        "programs": j.spec.programs,
        "status": j.status,
        "bounded": plan.bounded,
        // The job's default: a job file's or entry's own, else the submitted one.
        "parallelism": j.spec.graph.parallelism.unwrap_or(j.settings.parallelism),
        "start-time": millis(j.started),
        "end-time": j.ended.map(millis),
        "duration": end.duration_since(j.started).map(|d| d.as_millis() as u64).unwrap_or(0),
        "failure": j.failure,
        "waiting": waiting,
        "attempt": j.attempt,
        "restarts": j.attempt,
        "restart-strategy": j.settings.restart,
        "exceptions": j.exceptions.iter().map(|(t, why)| json!({ "timestamp": millis(*t), "exception": why })).collect::<Vec<_>>(),
        "checkpoints": j.coordinator.view(),
        "records-in": j.progress().0,
        "records-out": j.progress().1,
        "vertices": vertices,
        "tasks": tasks,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SavepointBody {
    target_directory: Option<PathBuf>,
    #[serde(default)]
    stop: bool,
}

/// Unlike Flink's, answers when the savepoint completed rather than with a trigger id to poll.
async fn savepoint(State(jm): State<Shared>, Path(id): Path<String>, Body(body): Body<SavepointBody>) -> Response {
    match jm.savepoint(&id, body.target_directory, body.stop).await {
        Ok(location) => Json(json!({ "location": location.display().to_string() })).into_response(),
        Err((status, message)) => error(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message),
    }
}

async fn cancel_job(State(jm): State<Shared>, Path(id): Path<String>) -> Response {
    if jm.cancel_job(&id) {
        (StatusCode::ACCEPTED, Json(json!({}))).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no job with id {id}"))
    }
}

async fn taskmanagers(State(jm): State<Shared>) -> Response {
    let state = jm.state.lock().unwrap();
    let tms: Vec<Value> = state
        .taskmanagers
        .values()
        .map(|t| {
            json!({
                "id": t.id,
                "dataAddress": t.data_addr.to_string(),
                "slotsNumber": t.slots.len(),
                "freeSlots": t.free_slots(),
                "lastHeartbeatMsAgo": t.last_heartbeat.elapsed().as_millis() as u64,
                "runningTasks": t.running_tasks,
            })
        })
        .collect();
    Json(json!({ "taskmanagers": tms })).into_response()
}

async fn overview(State(jm): State<Shared>) -> Response {
    let state = jm.state.lock().unwrap();
    let count = |s: JobStatus| state.jobs.values().filter(|j| j.status == s).count();
    Json(json!({
        "taskmanagers": state.taskmanagers.len(),
        "slots-total": state.taskmanagers.values().map(|t| t.slots.len()).sum::<usize>(),
        "slots-available": state.taskmanagers.values().map(|t| t.free_slots()).sum::<usize>(),
        "jobs-running": count(JobStatus::Running) + count(JobStatus::Created),
        "jobs-finished": count(JobStatus::Finished),
        "jobs-cancelled": count(JobStatus::Canceled),
        "jobs-failed": count(JobStatus::Failed),
    }))
    .into_response()
}
