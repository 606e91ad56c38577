//! The web dashboard in headless Chromium (Debian's, installed by `./dev test` with
//! playwright-core: tests/tools/install-chromium.sh) against a cluster of real
//! processes on 127.0.0.1. `tests/dashboard/drive.mjs` clicks through the pages and
//! reports what they showed; this test says what they must show. Screenshots of
//! every step go to `target/dashboard-screenshots/`.

mod common;

use std::process::Command;

use common::cluster::Cluster;
use common::*;
use serde_json::{json, Value};

#[test]
fn the_dashboard_shows_a_live_cluster_and_runs_uploads_cancels_and_scopes_jobs() {
    // `parallel` needs 5 slots (its groups: 3 and 2); `slow` one of each of its two groups.
    let cluster = Cluster::start(2, 4, &[]);
    let jar = cluster.upload(&component("features"));
    let parallel = cluster.submit(&jar, "parallel", &[], 1);
    let ended = cluster.wait_status(&parallel, "FINISHED");
    let slow = cluster.submit(&jar, "slow", &["--delay-ms", "1"], 1);
    cluster.wait_status(&slow, "RUNNING");
    // A tenant with a key, and no job of its own.
    let admin_post = |path: &str, body: Value| -> Value {
        let mut resp = ureq::post(&format!("http://{}{path}", cluster.http)).header("authorization", &cluster.bearer()).send_json(&body).unwrap();
        resp.body_mut().read_json().unwrap()
    };
    admin_post("/tenants", json!({ "name": "alpha" }));
    let tenant_key = admin_post("/tokens", json!({ "tenant": "alpha", "role": "developer" }))["token"].as_str().unwrap().to_string();

    let shots = target_dir().join("dashboard-screenshots");
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/dashboard/drive.mjs"))
        .env("URL", format!("http://{}/", cluster.http))
        .env("KEY", &cluster.token)
        .env("TENANT_KEY", &tenant_key)
        .env("PARALLEL_JOB", &parallel)
        .env("SLOW_JOB", &slow)
        .env("UPLOAD", component("hostile"))
        .env("SHOTS", &shots)
        .env("PLAYWRIGHT", target_dir().join("tools/playwright/node_modules"))
        .output()
        .expect("node runs (tests/tools/install-chromium.sh installs what the driver needs)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser could not finish: {stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no report from the driver ({e}): {stderr}"));

    assert!(seen["wrongKey"].as_str().unwrap().contains("unknown or revoked API key"), "{seen}");
    assert_eq!(seen["who"], "admin");
    assert_eq!(seen["taskmanagers"], json!(["tm-1", "tm-2"]), "the overview lists the TaskManagers");
    let listed: Vec<&str> = seen["jobsListed"].as_array().unwrap().iter().map(|j| j.as_str().unwrap()).collect();
    assert!(listed.contains(&parallel.as_str()) && listed.contains(&slow.as_str()), "{listed:?}");

    // Every task with its parallelism, every edge with its kind, as the API has them.
    let want_nodes: Vec<Value> = ended["tasks"].as_array().unwrap().iter().map(|t| json!({ "task": t["task"], "parallelism": t["parallelism"] })).collect();
    assert_eq!(want_nodes.len(), 4, "{ended}");
    assert_eq!(seen["graph"]["nodes"], json!(want_nodes));
    assert_eq!(want_nodes.iter().map(|n| n["parallelism"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 2, 3, 1]);
    let want_edges: Vec<Value> = ended["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!({ "source": e["source"], "target": e["target"], "partitioning": e["partitioning"] }))
        .collect();
    assert_eq!(want_edges, [json!({"source": 0, "target": 1, "partitioning": "rebalance"}), json!({"source": 1, "target": 2, "partitioning": "rebalance"}), json!({"source": 2, "target": 3, "partitioning": "rebalance"})]);
    assert_eq!(seen["graph"]["edges"], json!(want_edges));
    assert_eq!(seen["graph"]["status"], "FINISHED");

    // Live: the source's count rose while the page stayed loaded.
    let (before, after) = (seen["live"]["before"].as_u64().unwrap(), seen["live"]["after"].as_u64().unwrap());
    assert!(after > before, "{seen}");
    assert_eq!(seen["live"]["navigations"], 1, "no reload");
    assert_eq!(seen["selectedRows"], json!(["1"]), "clicking task 1 shows its subtasks only");

    // Uploaded and run from the page.
    let entries: Vec<&str> = seen["entries"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(entries.contains(&"log-and-count") && entries.contains(&"trap"), "{entries:?}");
    let submitted = seen["submitted"].as_str().unwrap();
    let job = cluster.job(submitted);
    assert_eq!(job["status"], "FINISHED", "{job}");
    assert_eq!(job["name"], "log-and-count");
    assert_eq!(job["programs"][0]["args"], json!(["--tag", "<img src=x onerror=window.pwned=1>"]), "the arguments as typed, quotes split like a shell's");
    assert_eq!(job["records-in"], 3);
    // The operator's own counter ("seen", once per record), summed and per subtask.
    assert_eq!(job["tasks"][0]["counters"], json!({ "seen": 3 }), "{job}");
    assert_eq!(job["tasks"][0]["subtasks"][0]["counters"], json!({ "seen": 3 }), "{job}");
    assert_eq!(seen["counters"], "counters: seen 3");
    let logs: Vec<&str> = seen["logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    for x in 1..=3 {
        assert!(logs.iter().any(|l| l.ends_with(&format!("saw {x}")) && l.contains("INFO log-and-count #0 on tm-")), "{logs:?}");
    }
    assert!(seen["argsShown"].as_str().unwrap().contains("<img src=x onerror=window.pwned=1>"), "markup shows as text: {seen}");
    assert_eq!(seen["pwned"], false, "markup in arguments never runs");

    // A savepoint and a stop with savepoint from the page.
    let location = seen["savepoint"].as_str().unwrap().strip_prefix("Savepoint completed: ").unwrap().to_string();
    assert!(std::path::Path::new(&location).join("_metadata").exists(), "the savepoint is there: {location}");
    let stop = seen["stopJob"].as_str().unwrap().to_string();
    assert_eq!(cluster.job(&stop)["status"], "FINISHED", "stopped with a savepoint");
    assert!(seen["stopSavepoint"].as_str().unwrap().contains(&stop), "{seen}");

    // Cancelled from the page.
    let canceled = cluster.job(&slow);
    assert_eq!(canceled["status"], "CANCELED");
    assert!(canceled["records-in"].as_u64().unwrap() > 0, "a cancelled job keeps what it read: {canceled}");
    assert_eq!(seen["cancelHidden"], true, "no cancel button on an ended job");
    assert_eq!(seen["errors"], json!([]), "no script errors");

    // The tenant sees none of the admin's jobs and no TaskManagers.
    assert_eq!(seen["tenant"]["who"], "tenant alpha · developer");
    assert_eq!(seen["tenant"]["jobs"], json!([]), "{seen}");
    assert!(seen["tenant"]["taskmanagers"].as_str().unwrap().contains("Only the cluster's admin sees the TaskManagers"));
    for name in ["01-login", "02-overview", "03-job-finished", "04-job-running", "05-submit", "06-job-logs", "07-job-canceled", "08-tenant-overview"] {
        assert!(shots.join(format!("{name}.png")).exists(), "screenshot {name}");
    }
}

#[test]
fn the_dashboards_files_need_no_key_and_allow_only_their_own_script() {
    let cluster = Cluster::start(1, 1, &[]);
    for (path, kind) in [("/", "text/html"), ("/dashboard/app.js", "text/javascript"), ("/dashboard/style.css", "text/css")] {
        let resp = ureq::get(&format!("http://{}{path}", cluster.http)).call().unwrap();
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let policy = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    }
    // The data stays behind the key.
    let jobs = ureq::get(&format!("http://{}/jobs", cluster.http)).call();
    assert!(matches!(jobs, Err(ureq::Error::StatusCode(401))), "{jobs:?}");
    let unknown = ureq::get(&format!("http://{}/dashboard/secret", cluster.http)).call();
    assert!(matches!(unknown, Err(ureq::Error::StatusCode(401))), "no other file is served without a key: {unknown:?}");
}
