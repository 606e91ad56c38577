//! The web dashboard at `/`: a page, a script and a stylesheet built into the
//! binary (no CDN, works offline) that talk to the API like any client, with
//! the key the page asks for once and keeps for the browser tab.
//!
//! The assets hold no data, so they are served without a key; every figure the
//! page shows comes from the API, scoped to the key. Tenants' strings (job names,
//! arguments, log lines) reach the page, so it is served with a policy that runs
//! only its own script: a name that smuggles markup cannot run code in the
//! admin's browser.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Only the page's own files, and requests to this JobManager.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                      frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The dashboard's files: (path, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("dashboard/index.html")),
    ("/dashboard/app.js", "text/javascript; charset=utf-8", include_str!("dashboard/app.js")),
    ("/dashboard/style.css", "text/css; charset=utf-8", include_str!("dashboard/style.css")),
    ("/dashboard/favicon.svg", "image/svg+xml", include_str!("dashboard/favicon.svg")),
];

/// Whether `path` is one of the dashboard's files, which need no key.
pub(super) fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == path)
}

/// The routes of the dashboard's files.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, &(path, kind, body)| router.route(path, get(move || serve(kind, body))))
}

async fn serve(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, kind),
            (CONTENT_SECURITY_POLICY, POLICY),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            // A JobManager upgraded in place serves its new page on the next load.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
