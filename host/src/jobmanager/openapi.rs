//! The HTTP API's OpenAPI document (`GET /openapi.json`), generated from the
//! routes the router is built from (`ROUTES`) and the JSON Schemas of the
//! request and answer types in `api.rs` (schemars reads their serde
//! attributes), so that it cannot drift from what the server does. Answers
//! built ad hoc (jobs, jars, TaskManagers) are described as objects.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::http::ROUTES;
use crate::api;

/// What one operation takes and answers.
struct Operation {
    summary: &'static str,
    /// The JSON body it reads, if any.
    body: Option<Value>,
    /// Query parameters: (name, schema, description).
    query: Vec<(&'static str, Value, &'static str)>,
    /// Its success status and the schema of its answer.
    ok: (u16, Value),
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn object() -> Value {
    json!({ "type": "object" })
}

fn list_of<T: JsonSchema>(g: &mut SchemaGenerator, field: &str) -> Value {
    json!({ "type": "object", "required": [field], "properties": { field: { "type": "array", "items": schema::<T>(g) } } })
}

/// The description of `method path`; every route of `ROUTES` has one.
fn describe(g: &mut SchemaGenerator, method: &str, path: &str) -> Operation {
    let op = |summary, ok| Operation { summary, body: None, query: Vec::new(), ok };
    let with_body = |summary, body, ok| Operation { summary, body: Some(body), query: Vec::new(), ok };
    match (method, path) {
        ("get", "/health") => op("Whether the JobManager serves (no key needed)", (200, object())),
        ("post", "/jars/upload") => Operation {
            summary: "Uploads a component (the body is its bytes, `application/wasm`)",
            body: None,
            query: vec![("name", json!({ "type": "string" }), "the file name it is listed under [job.wasm]")],
            ok: (200, object()),
        },
        ("get", "/jars") => op("The components the caller uploaded", (200, object())),
        ("get", "/jars/{id}") => op("One component and its entries", (200, object())),
        ("post", "/jars/{id}/run") => with_body("Runs an entry of a component", schema::<api::RunRequest>(g), (200, object())),
        ("get", "/jobs") => op("The caller's jobs, running and ended", (200, object())),
        ("post", "/jobs") => with_body("Runs a job file over uploaded components", schema::<api::JobFileRequest>(g), (200, object())),
        ("get", "/jobs/{id}") => op("A job: status, vertices, tasks, checkpoints, exceptions", (200, object())),
        ("get", "/jobs/{id}/vertices/{task}") => op("One task of a job (Flink's job vertex): its operators, totals and subtasks", (200, object())),
        ("get", "/jobs/{id}/logs") => Operation {
            summary: "What the job's operators logged lately, oldest first",
            body: None,
            query: vec![
                ("after", json!({ "type": "integer", "minimum": 0 }), "only lines after this seq"),
                ("limit", json!({ "type": "integer", "minimum": 0 }), "at most this many [1000]"),
            ],
            ok: (200, schema::<api::JobLogs>(g)),
        },
        ("patch", "/jobs/{id}") => op("Cancels a job (as Flink's PATCH)", (202, object())),
        ("delete", "/jobs/{id}") => op("Cancels a job", (202, object())),
        ("post", "/jobs/{id}/savepoints") => with_body(
            "Triggers a savepoint (and stops the job with `stop`); poll the request id",
            schema::<api::SavepointBody>(g),
            (202, schema::<api::TriggerAnswer>(g)),
        ),
        ("post", "/jobs/{id}/stop") => with_body(
            "Stops the job with a savepoint (Flink's `flink stop`); poll the request id",
            schema::<api::StopBody>(g),
            (202, schema::<api::TriggerAnswer>(g)),
        ),
        ("get", "/jobs/{id}/savepoints/{trigger}") => op("How a triggered savepoint goes: IN_PROGRESS, or COMPLETED with its location", (200, object())),
        ("get", "/jobs/overview") => op("The caller's jobs in Flink's JobDetails shape", (200, object())),
        ("get", "/taskmanagers") => op("The TaskManagers and their slots (the admin only)", (200, object())),
        ("get", "/taskmanagers/{id}") => op("One TaskManager and the job and subtasks each of its slots holds (the admin only)", (200, object())),
        ("delete", "/taskmanagers/{id}") => {
            op("Revokes a TaskManager: disconnects it and refuses its certificates (the admin only)", (200, schema::<api::RevokedTaskManager>(g)))
        }
        ("get", "/taskmanager-tokens") => op("Join tokens of TaskManagers (never their secrets; the admin only)", (200, list_of::<api::JoinTokenInfo>(g, "tokens"))),
        ("post", "/taskmanager-tokens") => {
            with_body("Creates a join token for TaskManagers; the answer holds its secret, once", schema::<api::CreateJoinToken>(g), (201, schema::<api::CreatedJoinToken>(g)))
        }
        ("delete", "/taskmanager-tokens/{id}") => op("Revokes a join token", (200, schema::<api::JoinTokenInfo>(g))),
        ("get", "/overview") => op("Counts of the caller's jobs; the cluster's slots for the admin", (200, object())),
        ("get", "/tenants") => op("Every tenant (the admin only)", (200, list_of::<api::Tenant>(g, "tenants"))),
        ("post", "/tenants") => with_body("Creates a tenant (the admin only)", schema::<api::CreateTenant>(g), (201, schema::<api::Tenant>(g))),
        ("get", "/tenants/{name}") => op("A tenant: its quotas, data root and sockets", (200, schema::<api::Tenant>(g))),
        ("patch", "/tenants/{name}") => with_body("Changes a tenant (the admin only)", schema::<api::TenantChanges>(g), (200, schema::<api::Tenant>(g))),
        ("delete", "/tenants/{name}") => op("Deletes a tenant without active jobs (the admin only)", (200, object())),
        ("get", "/tenants/{name}/usage") => Operation {
            summary: "A tenant's usage per minute and job",
            body: None,
            query: vec![("since", json!({ "type": "integer", "minimum": 0 }), "ms since the epoch [an hour ago]")],
            ok: (200, schema::<api::UsageReport>(g)),
        },
        ("get", "/whoami") => op("The caller's key, tenant and role", (200, schema::<api::Identity>(g))),
        ("get", "/tokens") => Operation {
            summary: "API keys (never their secrets; the admin only)",
            body: None,
            query: vec![("tenant", json!({ "type": "string" }), "only this tenant's keys")],
            ok: (200, list_of::<api::TokenInfo>(g, "tokens")),
        },
        ("post", "/tokens") => with_body("Creates an API key; the answer holds its secret, once", schema::<api::CreateToken>(g), (201, schema::<api::CreatedToken>(g))),
        ("delete", "/tokens/{id}") => op("Revokes an API key", (200, schema::<api::TokenInfo>(g))),
        ("get", "/openapi.json") => op("This document", (200, object())),
        ("get", "/metrics") => op("The caller's figures in the Prometheus text format (docs/metrics.md)", (200, json!({ "type": "string" }))),
        _ => op("", (200, object())),
    }
}

/// The OpenAPI 3.0 document of the API.
pub fn document() -> Value {
    let mut g = SchemaSettings::openapi3().into_generator();
    let refusal = schema::<api::Refusal>(&mut g);
    let mut paths = Map::new();
    for &(method, path) in ROUTES {
        let op = describe(&mut g, method, path);
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(op.query.into_iter().map(|(name, schema, description)| {
            json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
        }));
        let mut operation = json!({
            "operationId": format!("{method}{}", path.replace(['/', '{', '}', '.'], "_")),
            "summary": op.summary,
            "parameters": parameters,
            "responses": {
                op.ok.0.to_string(): { "description": "done", "content": { "application/json": { "schema": op.ok.1 } } },
                "4XX": { "description": "refused: the one-line reason", "content": { "application/json": { "schema": refusal } } },
            },
        });
        if let Some(body) = op.body {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        if (method, path) == ("get", "/metrics") {
            let text = json!({ "schema": { "type": "string" } });
            operation["responses"]["200"]["content"] = json!({ "text/plain": text });
        }
        if (method, path) == ("post", "/jars/upload") {
            // The bytes are the component whatever the content type says.
            let bytes = json!({ "schema": { "type": "string", "format": "binary" } });
            operation["requestBody"] = json!({ "required": true, "content": { "application/wasm": bytes, "application/octet-stream": bytes } });
        }
        if path == "/health" {
            operation["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Eddy JobManager",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Jobs, components, tenants and keys of an Eddy cluster (docs/http-api.md).",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "an API key, `eddy_ID_SECRET`" } },
            "schemas": schemas,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_types() {
        let doc = document();
        let mut g = SchemaSettings::openapi3().into_generator();
        for &(method, path) in ROUTES {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is missing");
            assert!(!describe(&mut g, method, path).summary.is_empty(), "{method} {path} has no description");
        }
        let schemas = &doc["components"]["schemas"];
        for name in ["RunRequest", "JobFileRequest", "Tenant", "Quotas", "CreatedToken", "RestartStrategy", "Refusal"] {
            assert!(schemas[name].is_object(), "no schema {name}: {schemas}");
        }
        // The settings are flattened into the run request, under serde's names.
        let run = serde_json::to_string(&schemas["RunRequest"]).unwrap();
        assert!(run.contains("checkpoint-interval-ms") && run.contains("savepointPath"), "serde's names: {run}");
    }
}
