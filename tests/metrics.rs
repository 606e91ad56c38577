//! Statistics and Prometheus metrics against a real Prometheus server
//! (Debian's `prometheus`, installed by `./dev test`) scraping a cluster of
//! real processes on 127.0.0.1, and the jobs' log lines (`eddy logs`).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;
use serde_json::{json, Value};

/// A Prometheus server on a free loopback port scraping `target` every second
/// with `key`; killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Prometheus {
    /// Scrapes the JobManager at `target` with `key`, and the TaskManagers' `/metrics` at `taskmanagers`.
    fn start(dir: &Path, target: &str, key: &str, taskmanagers: &[String]) -> Prometheus {
        let key_file = dir.join("eddy.key");
        std::fs::write(&key_file, key).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: eddy\n    \
                 authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: [\"{target}\"]\n  \
                 - job_name: taskmanagers\n    static_configs:\n      - targets: [{}]\n",
                key_file.display(),
                taskmanagers.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus is installed (tests/tools/install-prometheus.sh)");
        let p = Prometheus { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(&format!("{}/-/ready", p.url)).call().is_err() {
            assert!(Instant::now() < deadline, "Prometheus did not start: {}", std::fs::read_to_string(dir.join("prometheus.log")).unwrap());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// The instant vector of `query`, as (labels, value).
    fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let mut resp = ureq::get(&format!("{}/api/v1/query", self.url)).query("query", query).call().unwrap();
        let v: Value = resp.body_mut().read_json().unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["metric"].clone(), r["value"][1].as_str().unwrap().parse().unwrap()))
            .collect()
    }

    /// Waits until `query` answers what `done` accepts; answers that.
    fn wait(&self, query: &str, what: &str, mut done: impl FnMut(&[(Value, f64)]) -> bool) -> Vec<(Value, f64)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.query(query);
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; {query} gives {got:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Per vertex index, the value of `metric` for `job`.
fn by_vertex(series: &[(Value, f64)]) -> Vec<(u64, f64)> {
    let mut v: Vec<(u64, f64)> = series.iter().map(|(l, x)| (l["vertex"].as_str().unwrap().parse().unwrap(), *x)).collect();
    v.sort_by_key(|p| p.0);
    v
}

#[test]
fn prometheus_reads_exact_vertex_totals_and_the_back_pressure_of_a_slow_vertex() {
    // `parallel` needs 5 slots (its groups: 3 and 2).
    let cluster = Cluster::start(2, 3, &[]);
    let work = tempfile::tempdir().unwrap();
    let taskmanagers = [cluster.metrics_addr(1), cluster.metrics_addr(2)];
    let prometheus = Prometheus::start(work.path(), &cluster.http, &cluster.token, &taskmanagers);
    let jar = cluster.upload(&component("features"));

    // `parallel`: 1000 records through four tasks at parallelism 3, 2, 3 and 1.
    let job = cluster.submit(&jar, "parallel", &[], 1);
    let done = cluster.wait_status(&job, "FINISHED");
    let tasks = done["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4, "{done}");
    // The API's statistics, from the subtasks' last reports.
    for t in tasks {
        assert_eq!((t["metrics"]["records-in"].as_u64(), t["metrics"]["records-out"].as_u64()), (Some(1000), Some(1000)), "{t}");
        let per_subtask: u64 = t["subtasks"].as_array().unwrap().iter().map(|s| s["metrics"]["records-in"].as_u64().unwrap()).sum();
        assert_eq!(per_subtask, 1000, "{t}");
    }
    // Prometheus's own store has the same totals once it scraped after the end.
    let want: Vec<(u64, f64)> = (0..4).map(|v| (v, 1000.0)).collect();
    for metric in ["eddy_vertex_records_in_total", "eddy_vertex_records_out_total"] {
        let got = prometheus.wait(&format!("{metric}{{job_id=\"{job}\"}}"), metric, |s| by_vertex(s) == want);
        assert_eq!(by_vertex(&got), want);
    }
    let total = prometheus.query(&format!("sum(eddy_subtask_records_in_total{{job_id=\"{job}\"}})"));
    assert_eq!(total[0].1, 4000.0, "every subtask's records, summed by Prometheus");
    let slots = prometheus.wait("eddy_taskmanager_slots", "a scrape of both TaskManagers", |s| s.len() == 2);
    assert_eq!(slots.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [3.0, 3.0], "{slots:?}");
    let calls = prometheus.query("sum(eddy_sandbox_calls_total)");
    assert!(calls[0].1 > 0.0, "guest calls are counted: {calls:?}");
    assert_eq!(prometheus.query("sum(eddy_sandbox_traps_total)")[0].1, 0.0, "no guest trapped yet");
    let finished = prometheus.query(&format!("eddy_job_status{{job_id=\"{job}\",status=\"FINISHED\"}}"));
    assert_eq!(finished[0].1, 1.0);
    assert_eq!(prometheus.query("eddy_taskmanagers")[0].1, 2.0);

    // `slow`: an endless source into an operator sleeping 2 ms per record. The source is blocked on its full output nearly all
    // the time; the slow operator is busy and never blocked.
    let slow = cluster.submit(&jar, "slow", &["--delay-ms", "2"], 1);
    cluster.wait_status(&slow, "RUNNING");
    let q = format!("eddy_vertex_backpressured_ratio{{job_id=\"{slow}\"}}");
    let got = prometheus.wait(&q, "the source to be back-pressured", |s| {
        let v = by_vertex(s);
        v.len() == 2 && v[0].1 > 0.5
    });
    assert!(by_vertex(&got)[1].1 < 0.1, "the slow vertex itself is not back-pressured: {got:?}");
    let busy = prometheus.wait(&format!("eddy_vertex_busy_ratio{{job_id=\"{slow}\",vertex=\"1\"}}"), "the slow vertex to be busy", |s| {
        s.first().is_some_and(|x| x.1 > 0.5)
    });
    assert!(busy[0].1 <= 1.0);
    let details = cluster.job(&slow);
    assert_eq!(details["tasks"][0]["metrics"]["backpressure-level"], "high", "{details}");
    assert_eq!(details["tasks"][1]["metrics"]["backpressure-level"], "ok", "{details}");
    // The TaskManagers' own figures of the running subtasks, under their own names (nothing counts twice):
    // the source's records rise, and so does the time it spends blocked.
    let here = format!("eddy_taskmanager_subtask_backpressured_milliseconds_total{{job_id=\"{slow}\",vertex=\"0\"}}");
    prometheus.wait(&here, "the source's blocked time on its TaskManager", |s| s.len() == 1 && s[0].1 > 1000.0);
    let read = prometheus.query(&format!("eddy_taskmanager_subtask_records_in_total{{job_id=\"{slow}\",vertex=\"0\"}}"));
    assert!(read.len() == 1 && read[0].1 > 0.0, "{read:?}");
    assert!(read[0].0["taskmanager"].as_str().unwrap().starts_with("tm-"), "{read:?}");
    // `slow` is of the component `parallel` came in: no TaskManager compiled it twice.
    prometheus.wait("sum(eddy_sandbox_compile_cache_hits_total{cache=\"memory\"})", "a compile-cache hit", |s| s.first().is_some_and(|x| x.1 > 0.0));
    let compiled = prometheus.query("eddy_sandbox_compiles_total");
    assert!(compiled.iter().all(|(_, v)| *v <= 1.0), "{compiled:?}");
    let instances = prometheus.wait("sum(eddy_sandbox_instances)", "the slow job's instances", |s| s.first().is_some_and(|x| x.1 >= 1.0));
    let memory = prometheus.query("sum(eddy_sandbox_linear_memory_bytes)");
    assert!(memory[0].1 >= 65536.0, "live instances hold linear memory: {instances:?} {memory:?}");
    run_ok(&["cancel", "-m", &cluster.http, &slow]);
    cluster.wait_status(&slow, "CANCELED");

    // A guest that traps shows in the TaskManagers' sandbox figures, and a cancel does not.
    let hostile = cluster.upload(&component("hostile"));
    let trap = cluster.submit(&hostile, "trap", &[], 1);
    cluster.wait_status(&trap, "FAILED");
    prometheus.wait("sum(eddy_sandbox_traps_total)", "the trap to be counted", |s| s.first().is_some_and(|x| x.1 >= 1.0));
    prometheus.wait("sum(eddy_sandbox_instances)", "the instances to go", |s| s.first().is_some_and(|x| x.1 == 0.0));
}

#[test]
fn a_tenants_key_scrapes_only_its_own_jobs() {
    let cluster = Cluster::start(1, 5, &[]);
    let admin = |method: &str, path: &str, body: Value| -> Value {
        let url = format!("http://{}{path}", cluster.http);
        let mut resp = match method {
            "POST" => ureq::post(&url).header("authorization", &cluster.bearer()).send_json(&body).unwrap(),
            _ => unreachable!(),
        };
        resp.body_mut().read_json().unwrap()
    };
    admin("POST", "/tenants", json!({ "name": "alpha" }));
    let key = admin("POST", "/tokens", json!({ "tenant": "alpha", "role": "developer" }))["token"].as_str().unwrap().to_string();
    let jar = cluster.upload(&component("features"));
    let theirs = cluster.submit(&jar, "parallel", &[], 1);
    cluster.wait_status(&theirs, "FINISHED");
    // The tenant's own job, submitted with its key.
    let bytes = std::fs::read(component("features")).unwrap();
    let auth = format!("Bearer {key}");
    let url = format!("http://{}", cluster.http);
    let up: Value = ureq::post(&format!("{url}/jars/upload")).header("authorization", &auth).header("content-type", "application/wasm").send(&bytes[..]).unwrap().body_mut().read_json().unwrap();
    let run: Value = ureq::post(&format!("{url}/jars/{}/run", up["id"].as_str().unwrap()))
        .header("authorization", &auth)
        .send_json(json!({ "entry": "elements", "args": [] }))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let own = run["jobid"].as_str().unwrap().to_string();
    cluster.wait_status(&own, "FINISHED");

    let scrape = |key: &str| -> String {
        let mut resp = ureq::get(&format!("http://{}/metrics", cluster.http)).header("authorization", &format!("Bearer {key}")).call().unwrap();
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        resp.body_mut().read_to_string().unwrap()
    };
    let everything = scrape(&cluster.token);
    assert!(everything.contains(&format!("job_id=\"{theirs}\"")), "the admin sees the job: {everything}");
    assert!(everything.contains("eddy_taskmanagers 1"), "{everything}");
    let mine = scrape(&key);
    assert!(!mine.contains(&theirs), "a tenant sees no other job: {mine}");
    assert!(!mine.contains("eddy_taskmanagers"), "nor the cluster: {mine}");
    assert!(mine.contains(&format!("eddy_job_records_in_total{{job_id=\"{own}\",tenant=\"alpha\"}}")), "its own job: {mine}");
    assert!(mine.contains("eddy_tenant_records_in_total{tenant=\"alpha\"}"), "its usage: {mine}");
    let no_key = ureq::get(&format!("http://{}/metrics", cluster.http)).call();
    assert!(matches!(no_key, Err(ureq::Error::StatusCode(401))), "{no_key:?}");
}

#[test]
fn eddy_logs_prints_a_jobs_lines_with_their_origin_and_counts_what_was_dropped() {
    let cluster = Cluster::start(2, 2, &[]);
    let jar = cluster.upload(&component("hostile"));
    let job = cluster.submit(&jar, "log-and-count", &[], 1);
    cluster.wait_status(&job, "FINISHED");
    // Lines reach the JobManager with the task's end, not only with the next heartbeat.
    let out = run_ok(&["logs", "-m", &cluster.http, &job]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (i, line) in lines.iter().enumerate() {
        let (_, rest) = line.split_once(" INFO  ").unwrap_or_else(|| panic!("a time, then the level: {line}"));
        assert!(rest.starts_with("log-and-count (task 0, subtask 0 on tm-"), "{line}");
        assert!(rest.ends_with(&format!("): saw {}", i + 1)), "{line}");
    }
    // --follow ends with the job; an unknown job is one clear line.
    assert_eq!(run_ok(&["logs", "-m", &cluster.http, "--follow", &job]), out);
    let err = run_err(&["logs", "-m", &cluster.http, "0123456789abcdef0123456789abcdef"]);
    assert_eq!(error_line(&err), "error: the JobManager refused the request: no job with id 0123456789abcdef0123456789abcdef", "{err}");

    // 2000 lines at once: the TaskManager keeps a bounded number for the JobManager, and
    // every other line is counted as dropped.
    let flood = cluster.submit(&jar, "log-flood", &["--lines", "2000", "--bytes", "100"], 1);
    cluster.wait_status(&flood, "FINISHED");
    let logs = cluster.get(&format!("/jobs/{flood}/logs"));
    let kept = logs["lines"].as_array().unwrap().len() as u64;
    assert!(kept > 0 && kept <= 256, "{kept}");
    assert_eq!(kept + logs["dropped"].as_u64().unwrap(), 2000, "{logs}");
    let out = eddy().args(["logs", "-m", &cluster.http, &flood]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("({} lines dropped: over the job's log rate, or past the last 1000 kept)", 2000 - kept)), "{stderr}");
    // Another tenant's key gets no lines of the job.
    let admin_post = |path: &str, body: Value| -> Value {
        let mut resp = ureq::post(&format!("http://{}{path}", cluster.http)).header("authorization", &cluster.bearer()).send_json(&body).unwrap();
        resp.body_mut().read_json().unwrap()
    };
    admin_post("/tenants", json!({ "name": "beta" }));
    let key = admin_post("/tokens", json!({ "tenant": "beta", "role": "developer" }))["token"].as_str().unwrap().to_string();
    let theirs = ureq::get(&format!("http://{}/jobs/{job}/logs", cluster.http)).header("authorization", &format!("Bearer {key}")).call();
    assert!(matches!(theirs, Err(ureq::Error::StatusCode(404))), "{theirs:?}");
}

#[test]
fn a_taskmanagers_metrics_need_its_token_and_are_refused_off_loopback_without_one() {
    let err = run_err(&["taskmanager", "--jobmanager", "127.0.0.1:9", "--ca", "/nonexistent", "--metrics-bind", "0.0.0.0:0"]);
    assert_eq!(error_line(&err), "error: --metrics-bind 0.0.0.0:0 is not a loopback address: give --metrics-token-file too", "{err}");

    let mut cluster = Cluster::start(0, 1, &[]);
    let token = cluster.dir.path().join("metrics.token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let log = std::fs::File::create(cluster.dir.path().join("taskmanager-1.log")).unwrap();
    let state = cluster.dir.path().join("taskmanager-1");
    let child = cluster.taskmanager_command(2, &state).arg("--metrics-token-file").arg(&token).stdout(Stdio::null()).stderr(log).spawn().unwrap();
    cluster.taskmanagers.push(child);
    let url = format!("http://{}/metrics", cluster.metrics_addr(1));
    let none = ureq::get(&url).call();
    assert!(matches!(none, Err(ureq::Error::StatusCode(401))), "{none:?}");
    let wrong = ureq::get(&url).header("authorization", "Bearer s3cre").call();
    assert!(matches!(wrong, Err(ureq::Error::StatusCode(401))), "{wrong:?}");
    let mut ok = ureq::get(&url).header("authorization", "Bearer s3cret").call().unwrap();
    assert!(ok.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = ok.body_mut().read_to_string().unwrap();
    assert!(text.contains("eddy_taskmanager_slots{taskmanager=\"tm-1\"} 2"), "{text}");
    assert!(text.contains("eddy_sandbox_instances{taskmanager=\"tm-1\"} 0"), "{text}");
}
