//! The admin's routes for tenants and API keys (`/tenants`, `/tokens`), and for
//! TaskManagers' join tokens and revocation (`/taskmanager-tokens`,
//! `DELETE /taskmanagers/{id}`). A tenant's key may read its own tenant (its
//! quotas and reach), nothing else here.

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::http::{admin, error, Body, Shared};
use super::enrolment::EnrolError;
use super::tenants::{Caller, TenancyError};
use crate::api::{CreateJoinToken, CreateTenant, CreateToken, TenantChanges};

/// An error of an admin operation, as the HTTP status it answers.
trait Status: std::fmt::Display {
    fn status(&self) -> StatusCode;
}

impl Status for TenancyError {
    fn status(&self) -> StatusCode {
        match self {
            TenancyError::NotFound { .. } => StatusCode::NOT_FOUND,
            TenancyError::Exists(_) | TenancyError::Busy(_) => StatusCode::CONFLICT,
            TenancyError::Invalid(_) => StatusCode::BAD_REQUEST,
            TenancyError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Status for EnrolError {
    fn status(&self) -> StatusCode {
        match self {
            EnrolError::NotFound { .. } => StatusCode::NOT_FOUND,
            EnrolError::Invalid(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn refused(e: impl Status) -> Response {
    error(e.status(), e.to_string())
}

/// Runs a database-writing change off the async threads.
async fn blocking<T: Send + 'static, E: Status + Send + 'static>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(refused),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

macro_rules! try_answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

pub(super) async fn list_tenants(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    try_answer!(admin(&caller));
    Json(json!({ "tenants": jm.directory.tenants() })).into_response()
}

pub(super) async fn create_tenant(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Body(req): Body<CreateTenant>) -> Response {
    try_answer!(admin(&caller));
    let t = try_answer!(blocking(move || jm.directory.create_tenant(&jm.db, req)).await);
    tracing::info!(tenant = %t.name, by = %caller.key, "tenant created");
    (StatusCode::CREATED, Json(json!(t))).into_response()
}

pub(super) async fn get_tenant(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(name): Path<String>) -> Response {
    match jm.directory.tenant(&name).filter(|_| caller.sees(Some(&name))) {
        Some(t) => Json(json!(t)).into_response(),
        None => refused(TenancyError::NotFound { kind: "tenant", name }),
    }
}

pub(super) async fn update_tenant(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(name): Path<String>, Body(changes): Body<TenantChanges>) -> Response {
    try_answer!(admin(&caller));
    let t = try_answer!(blocking(move || jm.directory.update_tenant(&jm.db, &name, changes)).await);
    tracing::info!(tenant = %t.name, by = %caller.key, "tenant updated");
    Json(json!(t)).into_response()
}

pub(super) async fn delete_tenant(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(name): Path<String>) -> Response {
    try_answer!(admin(&caller));
    let busy = jm.state.lock().unwrap().jobs.values().any(|j| j.is_active() && j.settings.tenant.as_deref() == Some(&name));
    if busy {
        return refused(TenancyError::Busy(name));
    }
    let n = name.clone();
    try_answer!(blocking(move || jm.directory.delete_tenant(&jm.db, &n)).await);
    tracing::info!(tenant = %name, by = %caller.key, "tenant deleted");
    Json(json!({})).into_response()
}

/// `?since=MS`: usage of the minutes that end after it [the last hour].
#[derive(Deserialize)]
pub(super) struct Since {
    since: Option<u64>,
}

pub(super) async fn usage(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(name): Path<String>, Query(q): Query<Since>) -> Response {
    if jm.directory.tenant(&name).is_none() || !caller.sees(Some(&name)) {
        return refused(TenancyError::NotFound { kind: "tenant", name });
    }
    let since = q.since.unwrap_or_else(|| super::now_ms().saturating_sub(3_600_000));
    let n = name.clone();
    let rows = try_answer!(blocking(move || Ok::<_, TenancyError>(jm.meter.rows(&jm.db, &n, since)?)).await);
    let mut total = super::usage::Usage::default();
    for r in &rows {
        total.add(&r.usage);
    }
    Json(json!({ "tenant": name, "since": since, "minutes": rows, "total": total })).into_response()
}

/// Who the key is: its id, tenant and role.
pub(super) async fn whoami(Extension(caller): Extension<Caller>) -> Response {
    Json(json!({ "key": caller.key, "tenant": caller.tenant, "role": caller.role })).into_response()
}

#[derive(Deserialize)]
pub(super) struct TokenFilter {
    tenant: Option<String>,
}

pub(super) async fn list_tokens(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Query(f): Query<TokenFilter>) -> Response {
    try_answer!(admin(&caller));
    Json(json!({ "tokens": jm.directory.tokens(f.tenant.as_deref()) })).into_response()
}

pub(super) async fn create_token(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Body(req): Body<CreateToken>) -> Response {
    try_answer!(admin(&caller));
    let made = try_answer!(blocking(move || jm.directory.create_token(&jm.db, req)).await);
    tracing::info!(key = %made.info.id, tenant = ?made.info.tenant, role = ?made.info.role, by = %caller.key, "API key created");
    (StatusCode::CREATED, Json(json!(made))).into_response()
}

pub(super) async fn revoke_token(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    try_answer!(admin(&caller));
    let info = try_answer!(blocking(move || jm.directory.revoke(&jm.db, &id)).await);
    tracing::info!(key = %info.id, by = %caller.key, "API key revoked");
    Json(json!(info)).into_response()
}

pub(super) async fn list_join_tokens(State(jm): State<Shared>, Extension(caller): Extension<Caller>) -> Response {
    try_answer!(admin(&caller));
    Json(json!({ "tokens": jm.enrolment.tokens() })).into_response()
}

pub(super) async fn create_join_token(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Body(req): Body<CreateJoinToken>) -> Response {
    try_answer!(admin(&caller));
    let made = try_answer!(blocking(move || jm.enrolment.create_token(&jm.db, req)).await);
    tracing::info!(token = %made.info.id, expires = made.info.expires, by = %caller.key, "join token created");
    (StatusCode::CREATED, Json(json!(made))).into_response()
}

pub(super) async fn revoke_join_token(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    try_answer!(admin(&caller));
    let info = try_answer!(blocking(move || jm.enrolment.revoke_token(&jm.db, &id)).await);
    tracing::info!(token = %info.id, by = %caller.key, "join token revoked");
    Json(json!(info)).into_response()
}

/// Revokes a TaskManager's identity: it is disconnected now (its jobs fail
/// over as for a lost TaskManager) and its certificates are refused from then on.
pub(super) async fn revoke_taskmanager(State(jm): State<Shared>, Extension(caller): Extension<Caller>, Path(id): Path<String>) -> Response {
    try_answer!(admin(&caller));
    let jm2 = jm.clone();
    let revoked = try_answer!(blocking(move || jm2.enrolment.revoke_taskmanager(&jm2.db, &id)).await);
    tracing::warn!(taskmanager = %revoked.id, by = %caller.key, "TaskManager revoked");
    jm.lose_taskmanager(&revoked.id, "it was revoked");
    Json(json!(revoked)).into_response()
}
