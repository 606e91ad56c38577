//! A JobManager and TaskManagers as real processes on 127.0.0.1, for the
//! cluster tests.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::eddy;

/// Clusters of these tests run one at a time: several at once would starve each
/// other's heartbeats on a 2-core machine and make timing assertions meaningless.
pub static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A JobManager and its TaskManagers, killed when dropped.
pub struct Cluster {
    _serial: std::sync::MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
    pub http: String,
    pub rpc: String,
    /// The admin key the JobManager created on its first start.
    pub token: String,
    /// A join token the TaskManagers enrol with, created with the first.
    join_token: Option<String>,
    pub jobmanager: Child,
    pub taskmanagers: Vec<Child>,
}

/// Starts `eddy jobmanager` on free loopback ports with `args`, logging to
/// `state/log_name`; answers once it wrote its addresses (which it answers too).
pub fn start_jobmanager(state: &Path, log_name: &str, args: &[&str]) -> (Child, Value) {
    start_jobmanager_at(state, log_name, ("127.0.0.1:0", "127.0.0.1:0"), args)
}

/// `start_jobmanager` on given (HTTP, QUIC) addresses: a restart where the old one ran.
pub fn start_jobmanager_at(state: &Path, log_name: &str, (http, rpc): (&str, &str), args: &[&str]) -> (Child, Value) {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(state.join(log_name)).unwrap();
    let addr_file = state.join("jobmanager.json");
    let _ = std::fs::remove_file(&addr_file);
    let child = eddy()
        .args(["jobmanager", "--bind", http, "--rpc-bind", rpc])
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !addr_file.exists() {
        assert!(Instant::now() < deadline, "the JobManager did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Written whole and renamed, but give the HTTP listener its first poll.
    std::thread::sleep(Duration::from_millis(50));
    let addrs = serde_json::from_str(&std::fs::read_to_string(&addr_file).unwrap()).unwrap();
    (child, addrs)
}

impl Cluster {
    pub fn start(taskmanagers: usize, slots: u32, extra: &[&str]) -> Cluster {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--state-dir", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let (jobmanager, addrs) = start_jobmanager(dir.path(), "jobmanager.log", &args);
        let cluster = Cluster {
            _serial: serial,
            http: addrs["http"].as_str().unwrap().to_string(),
            rpc: addrs["rpc"].as_str().unwrap().to_string(),
            token: std::fs::read_to_string(dir.path().join("admin.token")).expect("the JobManager wrote its admin key").trim().to_string(),
            dir,
            jobmanager,
            taskmanagers: Vec::new(),
            join_token: None,
        };
        // `eddy` commands of the test find the key as a user's shell would; clusters run
        // one at a time, so the variable names this one's until it is dropped.
        std::env::set_var("EDDY_TOKEN", &cluster.token);
        let mut cluster = cluster;
        // One at a time, so that process i registers as tm-(i+1).
        for i in 1..=taskmanagers {
            cluster.add_taskmanager(slots);
            cluster.wait_for(|c| c.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len() == i, "registration");
        }
        cluster
    }

    /// SIGKILLs the JobManager and starts it again on the same state and
    /// addresses with `args` (the TaskManagers are left alone); answers when it
    /// is serving again.
    pub fn restart_jobmanager(&mut self, args: &[&str]) -> Instant {
        self.jobmanager.kill().unwrap();
        self.jobmanager.wait().unwrap();
        let killed = Instant::now();
        let mut all = vec!["--state-dir", self.dir.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let (http, rpc) = (self.http.clone(), self.rpc.clone());
        let (child, _) = start_jobmanager_at(self.dir.path(), "jobmanager.log", (&http, &rpc), &all);
        self.jobmanager = child;
        killed
    }

    pub fn add_taskmanager(&mut self, slots: u32) {
        self.add_taskmanager_with(slots, &[]);
    }

    /// A join token (made once per cluster), as `eddy taskmanager-token create` makes it.
    pub fn join_token(&mut self) -> String {
        if self.join_token.is_none() {
            let mut resp = ureq::post(&format!("http://{}/taskmanager-tokens", self.http))
                .header("authorization", &self.bearer())
                .send_json(serde_json::json!({ "description": "test" }))
                .unwrap();
            let made: Value = resp.body_mut().read_json().unwrap();
            self.join_token = Some(made["token"].as_str().unwrap().to_string());
        }
        self.join_token.clone().unwrap()
    }

    /// The arguments and environment of a TaskManager that enrols with the cluster's
    /// join token and keeps its certificate in `state_dir`.
    pub fn taskmanager_command(&mut self, slots: u32, state_dir: &Path) -> std::process::Command {
        let token = self.join_token();
        let mut cmd = eddy();
        cmd.env("EDDY_JOIN_TOKEN", token)
            .args(["taskmanager", "--jobmanager", &self.rpc, "--slots", &slots.to_string(), "--ca"])
            .arg(self.dir.path().join("ca.pem"))
            .arg("--state-dir")
            .arg(state_dir)
            // Every test TaskManager serves its metrics; `metrics_addr` finds where.
            .args(["--metrics-bind", "127.0.0.1:0"]);
        cmd
    }

    /// Where TaskManager `i` (from 1) serves its metrics, as it logged it.
    pub fn metrics_addr(&self, i: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log(&format!("taskmanager-{i}.log"));
            if let Some(addr) = log.lines().find_map(|l| l.split_once("metrics at http://").map(|(_, a)| a.trim_end_matches("/metrics").to_string())) {
                return addr;
            }
            assert!(Instant::now() < deadline, "TaskManager {i} did not say where its metrics are: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A TaskManager with environment variables of its own (`EDDY_LOG`, say).
    pub fn add_taskmanager_with(&mut self, slots: u32, env: &[(&str, &str)]) {
        let i = self.taskmanagers.len() + 1;
        let log = std::fs::File::create(self.dir.path().join(format!("taskmanager-{i}.log"))).unwrap();
        let state = self.dir.path().join(format!("taskmanager-{i}"));
        let child = self
            .taskmanager_command(slots, &state)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.taskmanagers.push(child);
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Value {
        let mut resp = ureq::get(&format!("http://{}{path}", self.http)).header("authorization", &self.bearer()).call().unwrap();
        resp.body_mut().read_json().unwrap()
    }

    pub fn upload(&self, wasm: &Path) -> String {
        let bytes = std::fs::read(wasm).unwrap();
        let mut resp = ureq::post(&format!("http://{}/jars/upload?name=x.wasm", self.http))
            .header("authorization", &self.bearer())
            .header("content-type", "application/wasm")
            .send(&bytes[..])
            .unwrap();
        let v: Value = resp.body_mut().read_json().unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    pub fn submit(&self, jar: &str, entry: &str, args: &[&str], parallelism: u32) -> String {
        self.submit_with(jar, serde_json::json!({ "entry": entry, "args": args, "parallelism": parallelism }))
    }

    /// `POST /jars/{jar}/run` with a request body of its own (checkpoint settings, savepoint).
    pub fn submit_with(&self, jar: &str, body: Value) -> String {
        let mut resp =
            ureq::post(&format!("http://{}/jars/{jar}/run", self.http)).header("authorization", &self.bearer()).send_json(&body).unwrap();
        let v: Value = resp.body_mut().read_json().unwrap();
        v["jobid"].as_str().unwrap().to_string()
    }

    /// Uploads the `stateful` component and runs its `sequence-check` job at
    /// parallelism 2 with checkpoints every 300 ms: `n` records over `keys` keys
    /// at `rate` records/s (none: as fast as it goes) into the file sink `out`,
    /// restarting up to 3 times after `restart_delay_ms` if given.
    pub fn submit_sequence_check(&self, n: u64, keys: u64, rate: Option<u64>, out: &Path, restart_delay_ms: Option<u64>) -> String {
        let jar = self.upload(&super::component("stateful"));
        let mut args = vec!["--n".to_string(), n.to_string(), "--keys".into(), keys.to_string(), "--output".into(), out.to_str().unwrap().into()];
        if let Some(rate) = rate {
            args.extend(["--rate".to_string(), rate.to_string()]);
        }
        let mut body = serde_json::json!({ "entry": "sequence-check", "args": args, "parallelism": 2, "checkpoint-interval-ms": 300 });
        if let Some(delay) = restart_delay_ms {
            body["restart-strategy"] = serde_json::json!({ "type": "fixed-delay", "attempts": 3, "delay-ms": delay });
        }
        self.submit_with(&jar, body)
    }

    /// `Bearer ADMIN-KEY`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn job(&self, id: &str) -> Value {
        self.get(&format!("/jobs/{id}"))
    }

    pub fn wait_for(&self, mut done: impl FnMut(&Cluster) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; JobManager log:\n{}", self.log("jobmanager.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_status(&self, job: &str, status: &str) -> Value {
        let mut last = Value::Null;
        self.wait_for(
            |c| {
                last = c.job(job);
                last["status"] == status
            },
            &format!("{job} to be {status}"),
        );
        last
    }

    pub fn free_slots(&self) -> Vec<u64> {
        let tms = self.get("/taskmanagers");
        tms["taskmanagers"].as_array().unwrap().iter().map(|t| t["freeSlots"].as_u64().unwrap()).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        std::env::remove_var("EDDY_TOKEN");
        for c in self.taskmanagers.iter_mut().chain(std::iter::once(&mut self.jobmanager)) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

