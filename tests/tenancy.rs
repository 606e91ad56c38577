//! Tenants on a real cluster of processes: keys and roles, objects scoped to their
//! tenant (another tenant's ids answer as unknown ones do, on every route),
//! quotas at submission, and what a JobManager restart keeps.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;
use serde_json::{json, Value};

/// One caller of the HTTP API with one key (or none).
struct Api {
    http: String,
    key: Option<String>,
}

impl Api {
    fn new(http: &str, key: Option<&str>) -> Api {
        Api { http: http.to_string(), key: key.map(str::to_string) }
    }

    /// Any method, any status: (status, JSON body or Null).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let url = format!("http://{}{path}", self.http);
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        macro_rules! send {
            ($req:expr) => {{
                let mut r = $req;
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r
            }};
        }
        let empty = json!({});
        let result = match method {
            "get" => send!(agent.get(&url)).call(),
            "delete" => send!(agent.delete(&url)).call(),
            "post" => send!(agent.post(&url)).send_json(body.unwrap_or(&empty)),
            "patch" => send!(agent.patch(&url)).send_json(body.unwrap_or(&empty)),
            other => panic!("no method {other}"),
        };
        let mut resp = result.unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("get", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// `eddy` with `args` and the key in `key_file`; stdout on success.
fn eddy_with(key_file: &Path, args: &[&str]) -> std::process::Output {
    // After the (sub)command: what follows a component are the job's own arguments.
    let at = if matches!(args[0], "tenant" | "token" | "taskmanager-token") { 2 } else { 1 };
    let mut all = args.to_vec();
    all.splice(at..at, ["--token-file", key_file.to_str().unwrap()]);
    eddy().env_remove("EDDY_TOKEN").args(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn err(out: std::process::Output) -> String {
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    error_line(&String::from_utf8_lossy(&out.stderr)).to_string()
}

/// Creates a key with the CLI (as the admin) into `dir/NAME.key`.
fn make_key(cluster: &Cluster, dir: &Path, name: &str, tenant: &str, role: &str) -> std::path::PathBuf {
    let admin = cluster.dir.path().join("admin.token");
    let file = dir.join(format!("{name}.key"));
    ok(eddy_with(&admin, &["token", "create", "-m", &cluster.http, "--tenant", tenant, "--role", role, "--output", file.to_str().unwrap()]));
    file
}

fn key(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

/// A path with its variable parts (ids, names) replaced, to compare two answers.
fn same_but_ids(a: &Value, ids: &[&str]) -> String {
    let mut text = a.to_string();
    for id in ids {
        text = text.replace(id, "ID");
    }
    text
}

#[test]
fn tenants_see_only_their_own_objects_on_every_route_and_keys_are_enforced() {
    let cluster = Cluster::start(2, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let admin_file = cluster.dir.path().join("admin.token");
    let m = cluster.http.as_str();
    ok(eddy_with(&admin_file, &["tenant", "create", "alpha", "-m", m, "--data-root", work.path().to_str().unwrap()]));
    ok(eddy_with(&admin_file, &["tenant", "create", "beta", "-m", m]));
    let alpha_dev = make_key(&cluster, work.path(), "alpha-dev", "alpha", "developer");
    let alpha_view = make_key(&cluster, work.path(), "alpha-view", "alpha", "viewer");
    let beta_dev = make_key(&cluster, work.path(), "beta-dev", "beta", "developer");
    let (alpha, beta, nobody) = (Api::new(m, Some(&key(&alpha_dev))), Api::new(m, Some(&key(&beta_dev))), Api::new(m, None));

    // Alpha uploads and runs a long job; its id is random, not job-1.
    let stateful = component("stateful");
    let jar = ok(eddy_with(&alpha_dev, &["upload", "-m", m, stateful.to_str().unwrap()])).trim().to_string();
    let (status, answer) =
        alpha.call("post", &format!("/jars/{jar}/run"), Some(&json!({"entry": "big-state", "args": ["--n", "100000000", "--rate", "50", "--keys", "10"]})));
    assert_eq!(status, 200, "{answer}");
    let job = answer["jobid"].as_str().unwrap().to_string();
    assert!(job.len() == 32 && job.chars().all(|c| c.is_ascii_hexdigit()), "{job}");
    cluster.wait_status(&job, "RUNNING");
    // Its keyed state (10 keys of 1000-byte values) as the TaskManager counts it, and its usage's peak.
    let deadline = Instant::now() + Duration::from_secs(10);
    let held = loop {
        let held = cluster.job(&job)["state-bytes"].as_u64().unwrap();
        if held >= 10 * 1000 {
            break held;
        }
        assert!(Instant::now() < deadline, "state-bytes stayed at {held}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(held < 10 * (1000 + 256), "{held} bytes for 10 keys of 1000-byte values");
    std::thread::sleep(Duration::from_millis(1500));
    let usage = alpha.get("/tenants/alpha/usage?since=0");
    let peak = usage["minutes"].as_array().unwrap().iter().filter(|r| r["job"] == job.as_str()).map(|r| r["peak-state-bytes"].as_u64().unwrap()).max();
    assert_eq!(peak, Some(held), "{usage}");
    let alpha_key_id = key(&alpha_view).split('_').nth(1).unwrap().to_string();

    // Every route, with beta's key on alpha's objects, answers as for unknown ids.
    let unknown = "0123456789abcdef0123456789abcdef";
    for &(method, route) in eddy::jobmanager::ROUTES {
        let body = match route {
            "/jars/{id}/run" => Some(json!({"entry": "big-state"})),
            "/jobs/{id}/savepoints" => Some(json!({})),
            "/tenants" => Some(json!({"name": "gamma"})),
            "/tokens" => Some(json!({"tenant": "alpha", "role": "developer"})),
            "/jobs" if method == "post" => Some(json!({"job": {"components": {}, "steps": []}})),
            _ => None,
        };
        let fill = |id: &str, name: &str, token: &str| {
            let path = route.replace("{name}", name).replace("{id}", id).replace("{trigger}", "0123456789abcdef");
            if route.starts_with("/tokens/") {
                route.replace("{id}", token)
            } else {
                path
            }
        };
        let alphas = if route.starts_with("/jars/") { jar.as_str() } else { job.as_str() };
        let on_alpha = beta.call(method, &fill(alphas, "alpha", &alpha_key_id), body.as_ref());
        let on_unknown = beta.call(method, &fill(unknown, "nosuch", "000000000000"), body.as_ref());
        assert_eq!(on_alpha.0, on_unknown.0, "{method} {route}: {} vs {}", on_alpha.1, on_unknown.1);
        assert_eq!(
            same_but_ids(&on_alpha.1, &[alphas, "alpha", &alpha_key_id]),
            same_but_ids(&on_unknown.1, &[unknown, "nosuch", "000000000000"]),
            "{method} {route}"
        );
        let echoed = format!("no job with id {job}");
        assert!(!on_alpha.1.to_string().replace(&echoed, "").contains(&job), "{method} {route} shows alpha's job to beta: {}", on_alpha.1);
        // No key at all: refused everywhere but the health check.
        let anonymous = nobody.call(method, &fill(alphas, "alpha", &alpha_key_id), body.as_ref());
        if route == "/health" {
            assert_eq!(anonymous.0, 200);
        } else {
            assert_eq!(anonymous.0, 401, "{method} {route}");
            assert_eq!(anonymous.1["errors"][0], "missing API key (send Authorization: Bearer KEY)");
        }
    }
    // Nothing of alpha's changed.
    assert_eq!(cluster.job(&job)["status"], "RUNNING");
    assert_eq!(alpha.get("/jars")["files"][0]["id"], jar.as_str());
    assert!(beta.get("/jars")["files"].as_array().unwrap().is_empty());
    assert!(beta.get("/jobs")["jobs"].as_array().unwrap().is_empty());
    assert_eq!(alpha.get("/jobs")["jobs"][0]["id"], job.as_str());

    // The same component uploaded by beta is stored once and listed for each under its own name.
    let again = ok(eddy_with(&beta_dev, &["upload", "-m", m, stateful.to_str().unwrap()]));
    assert_eq!(again.trim(), jar);
    assert_eq!(beta.get("/jars")["files"][0]["id"], jar.as_str());
    assert_eq!(std::fs::read_dir(cluster.dir.path().join("modules")).unwrap().count(), 1);

    // A viewer reads but cannot upload, run or cancel.
    let viewer = Api::new(m, Some(&key(&alpha_view)));
    assert_eq!(viewer.get(&format!("/jobs/{job}"))["status"], "RUNNING");
    for (method, path) in [("post", format!("/jars/{jar}/run")), ("delete", format!("/jobs/{job}")), ("post", "/jars/upload".to_string())] {
        let (status, body) = viewer.call(method, &path, Some(&json!({"entry": "big-state"})));
        assert_eq!((status, body["errors"][0].as_str().unwrap()), (403, "this key is read-only (role viewer)"), "{method} {path}");
    }
    let refused = err(eddy_with(&alpha_view, &["cancel", "-m", m, &job]));
    assert!(refused.contains("this key is read-only (role viewer)"), "{refused}");

    // A revoked key is refused on its next request.
    ok(eddy_with(&admin_file, &["token", "revoke", "-m", m, &alpha_key_id]));
    let (status, body) = viewer.call("get", "/jobs", None);
    assert_eq!((status, body["errors"][0].as_str().unwrap()), (401, "unknown or revoked API key"));
    let listed = ok(eddy_with(&admin_file, &["token", "list", "-m", m, "--tenant", "alpha"]));
    assert!(listed.lines().any(|l| l.starts_with(&alpha_key_id) && l.contains("revoked")), "{listed}");

    // Connectors reach only what the tenant was granted, refused at submission where the plan shows it.
    std::fs::write(work.path().join("in.txt"), "inside the root\n").unwrap();
    let wc = component("wordcount");
    let wc = wc.to_str().unwrap();
    let out = ok(eddy_with(&alpha_dev, &["run", "-m", m, "-c", "word-count", wc, "--input", "in.txt"]));
    assert!(out.contains("3 records in") || out.contains("1 records in"), "a relative path resolves beneath the data root: {out}");
    let escape = err(eddy_with(&alpha_dev, &["run", "-m", m, "-c", "word-count", wc, "--input", "/etc/passwd"]));
    assert!(escape.ends_with(&format!("file source path /etc/passwd is outside the tenant's data root {}", work.path().display())), "{escape}");
    let up = err(eddy_with(&alpha_dev, &["run", "-m", m, "-c", "word-count", wc, "--input", "../../etc/passwd"]));
    assert!(up.contains("is outside the tenant's data root"), "{up}");
    let no_root = err(eddy_with(&beta_dev, &["run", "-m", m, "-c", "word-count", wc, "--input", "in.txt"]));
    assert!(no_root.ends_with("tenant beta has no data root: its jobs may not use files (in.txt)"), "{no_root}");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let socket = err(eddy_with(&alpha_dev, &["run", "-m", m, "-c", "stream-word-count", wc, "--host", "127.0.0.1", "--port", &port]));
    assert!(socket.ends_with(&format!("socket source 127.0.0.1:{port} is not on the tenant's allow-list")), "{socket}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(listener.accept().is_err(), "no connection reached the listener");

    // Savepoints are named under the tenant's root: no host path in, none out.
    let said = ok(eddy_with(&alpha_dev, &["savepoint", "-m", m, &job]));
    let name = said.trim().strip_prefix("Savepoint completed: ").unwrap().to_string();
    assert!(name.starts_with("savepoints/savepoint-") && !name.contains(&*cluster.dir.path().to_string_lossy()), "{said}");
    let placed = err(eddy_with(&alpha_dev, &["savepoint", "-m", m, &job, "/tmp"]));
    assert!(placed.ends_with("a tenant's savepoints are placed by the cluster: leave out the directory"), "{placed}");
    let stateful = stateful.to_str().unwrap();
    let resume = |key: &Path| eddy_with(key, &["run", "-m", m, "-s", &name, "-c", "big-state", stateful, "--n", "100000000", "--rate", "50", "--keys", "10"]);
    // Beta's upload of the same component does not give it alpha's savepoint: the name resolves under beta's root.
    ok(eddy_with(&beta_dev, &["upload", "-m", m, stateful]));
    let foreign = err(resume(&beta_dev));
    assert_eq!(foreign, format!("error: the JobManager refused the request: {name} is not a completed checkpoint or savepoint (no _metadata)"));
    let stopped = ok(eddy_with(&alpha_dev, &["stop", "--savepoint", "-m", m, &job]));
    assert!(stopped.contains("stopped with savepoint savepoints/savepoint-"), "{stopped}");
    cluster.wait_status(&job, "FINISHED");
    // Resumed from its name; the new job is alpha's, and its developer cancels it as usual.
    let child = eddy()
        .env_remove("EDDY_TOKEN")
        .args(["run", "-m", m, "--token-file", alpha_dev.to_str().unwrap(), "-s", &name, "-c", "big-state", stateful, "--n", "100000000", "--rate", "50", "--keys", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        let jobs = alpha.get("/jobs");
        if let Some(j) = jobs["jobs"].as_array().unwrap().iter().find(|j| j["id"] != job.as_str() && j["status"] == "RUNNING") {
            break j["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the resumed job did not run: {jobs}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    ok(eddy_with(&alpha_dev, &["cancel", "-m", m, &resumed]));
    cluster.wait_status(&resumed, "CANCELED");
}

#[test]
fn quotas_are_checked_at_submission_at_their_limit_and_one_past_it() {
    let cluster = Cluster::start(2, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let admin = cluster.dir.path().join("admin.token");
    let m = cluster.http.as_str();
    let root = work.path().join("data");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("in.txt"), "a b a\n").unwrap();
    ok(eddy_with(&admin, &[
        "tenant", "create", "small", "-m", m, "--max-parallelism", "2", "--slots", "2", "--running-jobs", "2",
        "--memory-mib", "64", "--call-timeout-ms", "2000", "--module-mib", "1", "--max-upload-mib", "1",
        "--data-root", root.to_str().unwrap(),
    ]));
    let dev = make_key(&cluster, work.path(), "small", "small", "developer");
    let api = Api::new(m, Some(&key(&dev)));
    let wc = component("wordcount");
    let input = root.join("in.txt");
    let input = input.to_str().unwrap();

    // Parallelism: 2 runs, 3 is refused naming the quota.
    let run = |p: &str| eddy_with(&dev, &["run", "-m", m, "-p", p, "-c", "word-count", wc.to_str().unwrap(), "--input", input]);
    let out = ok(run("2"));
    assert!(out.contains("records in"), "{out}");
    assert_eq!(err(run("3")), "error: the JobManager refused the request: quota max-parallelism exceeded: tenant small allows 2, the job asks for 3");

    // Memory and call time: asking for the quota is fine, more is refused.
    let jar = wc_jar(&api);
    let submit = |extra: Value| {
        let mut body = json!({"entry": "word-count", "args": ["--input", input]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        api.call("post", &format!("/jars/{jar}/run"), Some(&body))
    };
    assert_eq!(submit(json!({"memory-limit-mib": 64, "call-timeout-ms": 2000})).0, 200);
    // The same from the command line: `run -m` sends --memory-limit and --call-timeout as what the job asks.
    let asked = err(eddy_with(&dev, &["run", "-m", m, "--memory-limit", "128", "-c", "word-count", wc.to_str().unwrap(), "--input", input]));
    assert_eq!(asked, "error: the JobManager refused the request: quota memory-mib exceeded: tenant small allows 64 MiB per instance, the job asks for 128");
    let asked = err(eddy_with(&dev, &["run", "-m", m, "--call-timeout", "3", "-c", "word-count", wc.to_str().unwrap(), "--input", input]));
    assert!(asked.ends_with("quota call-timeout-ms exceeded: tenant small allows 2000 ms per call, the job asks for 3000"), "{asked}");
    let (status, body) = submit(json!({"memory-limit-mib": 65}));
    assert_eq!((status, body["errors"][0].as_str().unwrap()), (403, "quota memory-mib exceeded: tenant small allows 64 MiB per instance, the job asks for 65"));
    let (status, body) = submit(json!({"call-timeout-ms": 2001}));
    assert_eq!((status, body["errors"][0].as_str().unwrap()), (403, "quota call-timeout-ms exceeded: tenant small allows 2000 ms per call, the job asks for 2001"));
    // A tenant names no checkpoint directory and no host path for its savepoints.
    let (status, body) = submit(json!({"checkpoint-dir": "/tmp/x"}));
    assert_eq!((status, body["errors"][0].as_str().unwrap()), (400, "a tenant's checkpoints are placed by the cluster: leave out checkpoint-dir"));
    let (status, body) = submit(json!({"state-backend": {"disk": "/etc/eddy"}}));
    assert_eq!((status, body["errors"][0].as_str().unwrap()), (400, "a tenant's disk state is placed by the cluster: give state-backend disk, not a directory (/etc/eddy)"));
    let (status, body) = submit(json!({"savepointPath": "../../other/savepoints/x"}));
    assert_eq!(status, 400);
    assert!(body["errors"][0].as_str().unwrap().contains("is not a savepoint name"), "{body}");
    wait_until_idle(&api);

    // Running jobs and slots: two one-slot jobs run; a third is refused; a two-slot job waits for the slot quota.
    let stateful = jar_of(&api, &component("stateful"), &dev, m);
    let long = json!({"entry": "big-state", "args": ["--n", "100000000", "--rate", "50", "--keys", "10"]});
    let first = api.call("post", &format!("/jars/{stateful}/run"), Some(&long)).1["jobid"].as_str().unwrap().to_string();
    cluster.wait_status(&first, "RUNNING");
    let mut two = long.clone();
    two["parallelism"] = 2.into();
    let waiting = api.call("post", &format!("/jars/{stateful}/run"), Some(&two)).1["jobid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        let j = cluster.job(&waiting);
        if let Some(w) = j["waiting"].as_str() {
            break w.to_string();
        }
        assert!(Instant::now() < deadline, "no waiting reason: {j}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(reason, "waiting for tenant small's slot quota: the job needs 2 slots, the tenant holds 1 of its 2");
    assert_eq!(cluster.job(&waiting)["status"], "CREATED");
    let (status, body) = api.call("post", &format!("/jars/{stateful}/run"), Some(&long));
    assert_eq!((status, body["errors"][0].as_str().unwrap()), (403, "quota running-jobs exceeded: tenant small may run 2 jobs at once, and 2 are running"));
    // Cancelling the first lets the waiting one take the slots.
    assert_eq!(api.call("delete", &format!("/jobs/{first}"), None).0, 202);
    cluster.wait_status(&waiting, "RUNNING");
    assert_eq!(api.call("delete", &format!("/jobs/{waiting}"), None).0, 202);

    // Uploads: past the largest upload, and past the stored module bytes.
    let big = work.path().join("big.wasm");
    let mut bytes = std::fs::read(&wc).unwrap();
    bytes.resize(1 << 20 | 1, 0);
    std::fs::write(&big, &bytes).unwrap();
    let refused = err(eddy_with(&dev, &["upload", "-m", m, big.to_str().unwrap()]));
    assert!(refused.contains("quota max-upload-bytes exceeded: tenant small may upload 1048576 bytes at once, this is 1048577"), "{refused}");
    // 900 000 bytes fit one upload, not beside the two modules it keeps.
    bytes.resize(900_000, 0);
    std::fs::write(&big, &bytes).unwrap();
    let refused = err(eddy_with(&dev, &["upload", "-m", m, big.to_str().unwrap()]));
    assert!(refused.contains("quota module-bytes exceeded: tenant small may keep 1048576 bytes of modules"), "{refused}");
}

/// The word count component's id, uploaded by `api`'s tenant.
fn wc_jar(api: &Api) -> String {
    let files = api.get("/jars");
    files["files"].as_array().unwrap().iter().find(|f| f["entries"].as_array().unwrap().iter().any(|e| e == "word-count")).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn jar_of(_api: &Api, wasm: &Path, key: &Path, m: &str) -> String {
    ok(eddy_with(key, &["upload", "-m", m, wasm.to_str().unwrap()])).trim().to_string()
}

/// Waits until none of the tenant's jobs is active.
fn wait_until_idle(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = api.get("/jobs");
        if jobs["jobs"].as_array().unwrap().iter().all(|j| !matches!(j["status"].as_str(), Some("CREATED" | "RUNNING" | "RESTARTING"))) {
            return;
        }
        assert!(Instant::now() < deadline, "jobs still running: {jobs}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_jobmanager_restart_keeps_tenants_keys_modules_and_history() {
    let mut cluster = Cluster::start(1, 1, &[]);
    let work = tempfile::tempdir().unwrap();
    let admin = cluster.dir.path().join("admin.token");
    let m = cluster.http.clone();
    std::fs::write(work.path().join("in.txt"), "x y x\n").unwrap();
    ok(eddy_with(&admin, &["tenant", "create", "keep", "-m", &m, "--slots", "3", "--data-root", work.path().to_str().unwrap()]));
    let dev = make_key(&cluster, work.path(), "keep", "keep", "developer");
    let wc = component("wordcount");
    let input = work.path().join("in.txt");
    let out = ok(eddy_with(&dev, &["run", "-m", &m, "-c", "word-count", wc.to_str().unwrap(), "--input", input.to_str().unwrap()]));
    let job = out.lines().find_map(|l| l.strip_prefix("Job has been submitted with JobID ")).unwrap().trim().to_string();
    let before = Api::new(&m, Some(&key(&dev))).get(&format!("/jobs/{job}"));
    assert_eq!(before["status"], "FINISHED");
    std::thread::sleep(Duration::from_millis(1500)); // the meter's flush to the database

    // Kill the JobManager and start it again on the same state directory.
    cluster.jobmanager.kill().unwrap();
    cluster.jobmanager.wait().unwrap();
    let state = cluster.dir.path().to_str().unwrap().to_string();
    let (jobmanager, addrs) = common::cluster::start_jobmanager(cluster.dir.path(), "jobmanager-2.log", &["--state-dir", &state]);
    cluster.jobmanager = jobmanager;
    let m = addrs["http"].as_str().unwrap();
    let api = Api::new(m, Some(&key(&dev)));
    // The same keys work (no new admin key was made), the tenant keeps its quotas,
    // its module its name, and its finished job its history.
    assert_eq!(key(&admin), cluster.token);
    let shown = ok(eddy_with(&admin, &["tenant", "show", "keep", "-m", m]));
    assert!(shown.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["slots", "3"]), "{shown}");
    let jars = api.get("/jars");
    assert_eq!(jars["files"][0]["name"], "wordcount.wasm", "{jars}");
    let after = api.get(&format!("/jobs/{job}"));
    assert_eq!((after["status"].clone(), after["records-in"].clone()), (before["status"].clone(), before["records-in"].clone()));
    let list = ok(eddy_with(&dev, &["list", "-m", m]));
    assert!(list.contains(&job) && list.contains("FINISHED"), "{list}");
    // And its usage: what the finished job was metered before the kill.
    let usage = api.get("/tenants/keep/usage?since=0");
    let records: u64 = usage["minutes"].as_array().unwrap().iter().filter(|r| r["job"] == job.as_str()).map(|r| r["records-in"].as_u64().unwrap()).sum();
    assert_eq!(records, 1, "{usage}");
}

/// utime + stime of a process, in seconds.
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = clk_tck();
    ticks as f64 / hz as f64
}

fn clk_tck() -> i64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn usage_counts_records_exactly_and_cpu_time_as_the_kernel_does() {
    let cluster = Cluster::start(1, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let admin = cluster.dir.path().join("admin.token");
    let m = cluster.http.as_str();
    ok(eddy_with(&admin, &["tenant", "create", "meter", "-m", m, "--data-root", work.path().to_str().unwrap()]));
    let dev = make_key(&cluster, work.path(), "meter", "meter", "developer");
    // About 25 MB of words: a few seconds of task threads' CPU.
    let mut text = String::new();
    let mut lines = 0u64;
    let mut i = 0u64;
    while text.len() < 25 << 20 {
        for _ in 0..12 {
            i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.push_str(&format!("w{} ", (i >> 33) % 50_000));
        }
        text.push('\n');
        lines += 1;
    }
    let input = work.path().join("words.txt");
    std::fs::write(&input, &text).unwrap();
    let distinct = reference_counts(text.as_bytes()).len() as u64;
    let wc = component("wordcount");
    let run = |out: &str| {
        let o = work.path().join(out);
        ok(eddy_with(&dev, &["run", "-m", m, "-p", "2", "-c", "word-count", wc.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", o.to_str().unwrap()]))
    };
    run("warm-up"); // the TaskManager loads the component once
    let pid = cluster.taskmanagers[0].id();
    let before = process_cpu(pid);
    let out = run("counted");
    let measured = process_cpu(pid) - before;
    let job = out.lines().find_map(|l| l.strip_prefix("Job has been submitted with JobID ")).unwrap().trim().to_string();

    std::thread::sleep(Duration::from_millis(1500)); // a flush of the meter
    let report = Api::new(m, Some(&key(&dev))).get("/tenants/meter/usage?since=0");
    let rows: Vec<&Value> = report["minutes"].as_array().unwrap().iter().filter(|r| r["job"] == job.as_str()).collect();
    let sum = |f: &str| rows.iter().map(|r| r[f].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("records-in"), lines, "{report}");
    assert_eq!(sum("records-out"), distinct, "{report}");
    assert!(sum("bytes-in") > text.len() as u64 && sum("slot-ms") > 0, "{report}");
    let written: u64 = std::fs::read_dir(work.path().join("counted")).unwrap().map(|f| f.unwrap().metadata().unwrap().len()).sum();
    assert_eq!(sum("bytes-out"), written, "{report}");
    let metered = sum("cpu-ns") as f64 / 1e9;
    assert!(measured > 0.5, "the job used {measured:.2} s of CPU: too little to compare");
    let ratio = metered / measured;
    eprintln!("usage: metered {metered:.3} s of CPU, the kernel counted {measured:.3} s for the TaskManager ({ratio:.3})");
    assert!((0.8..=1.2).contains(&ratio), "metered {metered:.3} s, the kernel counted {measured:.3} s for the TaskManager");
    // The CLI shows the same, and another tenant's key cannot see it.
    let shown = ok(eddy_with(&dev, &["usage", "-m", m, "--since", "1d"]));
    assert!(shown.contains(&job) && shown.lines().last().unwrap().starts_with("total"), "{shown}");
}

#[test]
fn the_http_api_over_tls_is_trusted_with_the_cluster_ca_only() {
    let _serial = common::cluster::ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (mut jm, addrs) = common::cluster::start_jobmanager(dir.path(), "jm.log", &["--tls", "--state-dir", dir.path().to_str().unwrap()]);
    let https = addrs["http"].as_str().unwrap().to_string();
    assert!(https.starts_with("https://127.0.0.1:"), "{https}");
    let admin = dir.path().join("admin.token");
    let ca = dir.path().join("ca.pem");
    // The join token, over TLS too.
    let join = ok(eddy_with(&admin, &["taskmanager-token", "create", "-m", &https, "--ca", ca.to_str().unwrap(), "--ttl", "10m"]));
    let mut tm = eddy()
        .args(["taskmanager", "--jobmanager", addrs["rpc"].as_str().unwrap(), "--slots", "1", "--ca"])
        .arg(&ca)
        .env("EDDY_JOIN_TOKEN", join.trim())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        // With the cluster CA: a whole job runs.
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("in.txt"), "tls tls\n").unwrap();
        let input = work.path().join("in.txt");
        let wc = component("wordcount");
        let run = eddy_with(&admin, &["run", "-m", &https, "--ca", ca.to_str().unwrap(), "-c", "word-count", wc.to_str().unwrap(), "--input", input.to_str().unwrap()]);
        let out = ok(run);
        assert!(out.contains("1 records in, 1 records out"), "{out}");
        // Without it the certificate is not trusted, and plain HTTP gets no answer.
        let untrusted = err(eddy_with(&admin, &["list", "-m", &https, "--ca", "/dev/null"]));
        assert!(untrusted.starts_with("error: bad CA certificate") || untrusted.contains("certificate"), "{untrusted}");
        let roots = eddy().env_remove("EDDY_TOKEN").env("HOME", work.path()).args(["list", "-m", &https, "--token-file", admin.to_str().unwrap()]).output().unwrap();
        let roots = err(roots);
        assert!(roots.contains("certificate") && roots.contains("UnknownIssuer"), "{roots}");
        let plain = https.replace("https://", "http://");
        let refused = err(eddy_with(&admin, &["list", "-m", &plain]));
        assert!(refused.starts_with("error: "), "{refused}");
    });
    let _ = tm.kill();
    let _ = jm.kill();
    let _ = (tm.wait(), jm.wait());
    result.unwrap();
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Task threads of run `run_id` in process `pid` (they are named after a hash of it).
fn task_threads(pid: u32, run_id: &str) -> usize {
    let prefix = eddy::deploy::task_thread_prefix(run_id);
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok()).filter(|n| n.starts_with(&prefix)).count())
        .unwrap_or(0)
}

#[test]
fn one_tenants_flood_fails_its_own_job_while_anothers_on_the_same_taskmanager_finishes_exactly() {
    let mut cluster = Cluster::start(0, 4, &[]);
    // Guest lines are logged at info: what a log flood would fill.
    cluster.add_taskmanager_with(4, &[("EDDY_LOG", "info")]);
    cluster.wait_for(|c| c.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len() == 1, "registration");
    let work = tempfile::tempdir().unwrap();
    let admin = cluster.dir.path().join("admin.token");
    let m = cluster.http.as_str();
    let calm_root = work.path().join("calm");
    std::fs::create_dir(&calm_root).unwrap();
    ok(eddy_with(&admin, &["tenant", "create", "greedy", "-m", m, "--state-mib", "32", "--call-timeout-ms", "1000", "--memory-mib", "64"]));
    ok(eddy_with(&admin, &["tenant", "create", "calm", "-m", m, "--data-root", calm_root.to_str().unwrap()]));
    let greedy = make_key(&cluster, work.path(), "greedy", "greedy", "developer");
    let calm = make_key(&cluster, work.path(), "calm", "calm", "developer");
    let hostile = component("hostile");
    let wc = component("wordcount");
    let (input, text) = word_count_input(&calm_root);
    let pid = cluster.taskmanagers[0].id();
    let rss_before = status_kib(pid, "VmRSS:");

    // The calm tenant's word count runs while the greedy one floods keyed state with 1 MiB values.
    let calm_run = {
        let (calm, m, wc, input) = (calm.clone(), m.to_string(), wc.clone(), input.clone());
        std::thread::spawn(move || {
            eddy_with(&calm, &["run", "-m", &m, "-p", "2", "-c", "word-count", wc.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", "counts"])
        })
    };
    let flood = err(eddy_with(&greedy, &["run", "-m", m, "-p", "2", "-c", "state-fill", hostile.to_str().unwrap(), "--keys", "4096", "--bytes", "1048576"]));
    assert!(flood.contains("keyed state quota exceeded: the job keeps 33554432 bytes at most, and this write would make it"), "{flood}");
    ok(calm_run.join().unwrap());
    assert_eq!(parse_counts(read_parts(&calm_root.join("counts"))), reference_counts(&text));
    // 4 GiB asked for; the TaskManager grew by the quota, instances and values in flight.
    let grown = status_kib(pid, "VmHWM:").saturating_sub(rss_before);
    eprintln!("the TaskManager's peak memory grew by {} MiB during the flood", grown >> 10);
    assert!(grown < 400 << 10, "the TaskManager's peak memory grew by {} MiB", grown >> 10);

    // Timers, counters and the log rate: at the tenant's quota a job finishes, one past it fails with the quota's message.
    ok(eddy_with(&admin, &["tenant", "update", "greedy", "-m", m, "--timers-per-subtask", "50", "--counters", "20", "--log-kib-per-second", "4"]));
    let hostile_run = |entry: &str, args: &[&str]| {
        let mut all = vec!["run", "-m", m, "-c", entry, hostile.to_str().unwrap()];
        all.extend_from_slice(args);
        eddy_with(&greedy, &all)
    };
    ok(hostile_run("timers", &["--timers", "50"]));
    let line = err(hostile_run("timers", &["--timers", "51"]));
    assert!(line.contains("timer quota exceeded: a subtask keeps 50 timers at most, and this registration would make it 51"), "{line}");
    ok(hostile_run("counters", &["--counters", "20"]));
    let line = err(hostile_run("counters", &["--counters", "21"]));
    assert!(line.contains("counter quota exceeded: the job keeps 20 counters at most, and a new counter would make it 21"), "{line}");
    // 200 000 lines of 255 bytes (50 MB) at 4 KiB/s: the job finishes, the TaskManager's log holds a few KiB of them.
    let log_before = cluster.log("taskmanager-1.log").len();
    ok(hostile_run("log-flood", &["--lines", "200000", "--bytes", "255"]));
    std::thread::sleep(Duration::from_millis(300));
    let logged = cluster.log("taskmanager-1.log");
    let grown = logged.len() - log_before;
    assert!(grown < 256 << 10, "the TaskManager's log grew by {grown} bytes");
    assert!(logged.contains("dropped") && logged.contains("over its log rate of 4096 bytes/s"), "{}", &logged[log_before..]);
    // The calm tenant's job still runs exactly beside all this.
    let out = ok(eddy_with(&calm, &["run", "-m", m, "-p", "2", "-c", "word-count", wc.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", "again"]));
    assert!(out.contains("finished"), "{out}");
    assert_eq!(parse_counts(read_parts(&calm_root.join("again"))), reference_counts(&text));

    // A guest asleep in a WASI call is stopped at the tenant's call timeout.
    let started = Instant::now();
    let slept = err(eddy_with(&greedy, &["run", "-m", m, "-c", "sleep", hostile.to_str().unwrap(), "--secs", "60"]));
    assert!(slept.contains("did not return within the call timeout of 1s"), "{slept}");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());

    // After a cancel, no thread of the job is left on the TaskManager.
    ok(eddy_with(&admin, &["tenant", "update", "greedy", "-m", m, "--call-timeout-ms", "600000"]));
    let api = Api::new(m, Some(&key(&greedy)));
    let jar = api.get("/jars")["files"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = api.call("post", &format!("/jars/{jar}/run"), Some(&json!({"entry": "sleep", "args": ["--secs", "600"], "parallelism": 2})));
    assert_eq!(status, 200, "{body}");
    let job = body["jobid"].as_str().unwrap().to_string();
    cluster.wait_status(&job, "RUNNING");
    let run_id = format!("{job}.0");
    let deadline = Instant::now() + Duration::from_secs(20);
    while task_threads(pid, &run_id) < 2 {
        assert!(Instant::now() < deadline, "the job's task threads never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(api.call("delete", &format!("/jobs/{job}"), None).0, 202);
    let cancelled = Instant::now();
    while task_threads(pid, &run_id) > 0 {
        assert!(cancelled.elapsed() < Duration::from_secs(5), "task threads of the job outlived its cancel");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn subtasks_per_taskmanager_spread_a_tenants_jobs_and_make_the_next_one_wait() {
    let cluster = Cluster::start(2, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let admin = cluster.dir.path().join("admin.token");
    let m = cluster.http.as_str();
    ok(eddy_with(&admin, &["tenant", "create", "spread", "-m", m, "--subtasks-per-taskmanager", "2", "--slots", "4"]));
    let dev = make_key(&cluster, work.path(), "spread", "spread", "developer");
    let api = Api::new(m, Some(&key(&dev)));
    let jar = ok(eddy_with(&dev, &["upload", "-m", m, component("stateful").to_str().unwrap()])).trim().to_string();
    let long = |p: u32| json!({"entry": "big-state", "args": ["--n", "100000000", "--rate", "50", "--keys", "10"], "parallelism": p});
    // Each slot of big-state holds 2 subtasks (source and key_by | process and print): at the limit.
    let first = api.call("post", &format!("/jars/{jar}/run"), Some(&long(2))).1["jobid"].as_str().unwrap().to_string();
    let running = cluster.wait_status(&first, "RUNNING");
    let tms: std::collections::BTreeSet<String> =
        running["tasks"][0]["subtasks"].as_array().unwrap().iter().map(|s| s["taskmanager"].as_str().unwrap().to_string()).collect();
    assert_eq!(tms.len(), 2, "its two slots went to two TaskManagers: {running}");
    // Free slots remain, but no TaskManager has room for 2 more of the tenant's subtasks.
    let second = api.call("post", &format!("/jars/{jar}/run"), Some(&long(1))).1["jobid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let j = cluster.job(&second);
        if j["waiting"] == "waiting for room within tenant spread's quota of 2 subtasks per TaskManager" {
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(api.call("delete", &format!("/jobs/{first}"), None).0, 202);
    cluster.wait_status(&second, "RUNNING");
    assert_eq!(api.call("delete", &format!("/jobs/{second}"), None).0, 202);
    // A slot wider than the limit could never be placed: refused at submission.
    ok(eddy_with(&admin, &["tenant", "update", "spread", "-m", m, "--subtasks-per-taskmanager", "1"]));
    let (status, body) = api.call("post", &format!("/jars/{jar}/run"), Some(&long(1)));
    assert_eq!(
        (status, body["errors"][0].as_str().unwrap()),
        (403, "quota subtasks-per-taskmanager exceeded: tenant spread allows 1 subtasks on one TaskManager, and one slot of the job holds 2")
    );
}

/// schemathesis (installed by `./dev test` from PyPI) runs against the OpenAPI
/// document the JobManager serves, with a tenant's developer key: examples,
/// the coverage phase and random requests on every operation. No answer is a
/// server error (5xx), and none breaks the schema the document gives it.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let schemathesis = Path::new(env!("CARGO_BIN_EXE_eddy")).parent().unwrap().parent().unwrap().join("tools/schemathesis/bin/schemathesis");
    assert!(schemathesis.exists(), "{} is missing: `./dev test` installs it (tests/tools/install-schemathesis.sh)", schemathesis.display());
    let mut cluster = Cluster::start(1, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let admin_file = cluster.dir.path().join("admin.token");
    let m = cluster.http.as_str();
    ok(eddy_with(&admin_file, &["tenant", "create", "alpha", "-m", m, "--data-root", work.path().to_str().unwrap()]));
    let dev = key(&make_key(&cluster, work.path(), "alpha-dev", "alpha", "developer"));
    let alpha = Api::new(m, Some(&dev));
    let doc = alpha.get("/openapi.json");
    assert_eq!(doc["openapi"], "3.0.3");
    for &(method, route) in eddy::jobmanager::ROUTES {
        assert!(doc["paths"][route][method].is_object(), "{method} {route} is not in the document");
    }
    // Real objects of the tenant, so that requests reach past "not found": a jar and a running job.
    let jar = ok(eddy_with(&work.path().join("alpha-dev.key"), &["upload", "-m", m, component("stateful").to_str().unwrap()])).trim().to_string();
    let (status, answer) = alpha.call("post", &format!("/jars/{jar}/run"), Some(&json!({"entry": "big-state", "args": ["--n", "100000000", "--rate", "50", "--keys", "10"]})));
    assert_eq!(status, 200, "{answer}");
    let job = answer["jobid"].as_str().unwrap().to_string();
    cluster.wait_status(&job, "RUNNING");
    let file = work.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, format!(r#"
[[operations]]
include-path-regex = "^/jars/"
parameters = {{ "path.id" = "{jar}" }}

[[operations]]
include-path-regex = "^/jobs/"
parameters = {{ "path.id" = "{job}" }}

[[operations]]
include-path-regex = "^/tenants/"
parameters = {{ "path.name" = "alpha" }}
"#)).unwrap();
    // Its cache goes to the working directory: the test's, not the source tree.
    let out = std::process::Command::new(&schemathesis)
        .current_dir(work.path())
        .args(["--config-file", config.to_str().unwrap()])
        .args(["run", file.to_str().unwrap(), "--url", &format!("http://{m}"), "-H", &format!("Authorization: Bearer {dev}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance", "--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "1", "--no-color"])
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{report}\nJobManager log:\n{}", cluster.log("jobmanager.log"));
    assert!(cluster.jobmanager.try_wait().unwrap().is_none(), "the JobManager exited");
    eprintln!("{}", report.lines().filter(|l| l.contains("passed") || l.contains("Summary") || l.contains("operations")).collect::<Vec<_>>().join("\n"));
}
