//! High availability with real processes on 127.0.0.1: two JobManagers share
//! a PostgreSQL database (Debian's, started here), one leads and one stands
//! by; the leader is SIGKILLed in the middle of a checkpointed job, the
//! standby takes the lease, the TaskManagers (not restarted) register with
//! it, and the job finishes with exactly-once output.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A PostgreSQL server on a free loopback port in a temporary directory, stopped when dropped.
struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A PostgreSQL program: on PATH, or in Debian's versioned directory.
fn pg_bin(name: &str) -> PathBuf {
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut found: Vec<PathBuf> = dirs.flatten().map(|d| d.path().join("bin").join(name)).filter(|p| p.exists()).collect();
        found.sort();
        if let Some(p) = found.pop() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// `program` as the `postgres` user when this runs as root (PostgreSQL refuses root).
fn as_postgres(program: PathBuf) -> Command {
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if unsafe { libc::geteuid() } == 0 {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status().unwrap().success();
            assert!(ok, "chown of the PostgreSQL data directory");
        }
        let init = as_postgres(pg_bin("initdb")).args(["-A", "trust", "-U", "eddy", "--no-sync", "-D"]).arg(&data).output().unwrap();
        assert!(init.status.success(), "initdb failed (is PostgreSQL installed? ./dev test installs it): {}", String::from_utf8_lossy(&init.stderr));
        let port = free_port();
        let child = as_postgres(pg_bin("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Postgres { child, _dir: dir, port }
    }

    fn url(&self) -> String {
        format!("postgres://eddy@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGTERM: a smart shutdown that leaves nothing behind.
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// A JobManager process on given addresses, logging to `state/jobmanager.log`.
fn jobmanager(state: &Path, http: &str, rpc: &str, database: &str) -> Child {
    let log = std::fs::File::create(state.join("jobmanager.log")).unwrap();
    eddy()
        .args(["jobmanager", "--bind", http, "--rpc-bind", rpc, "--state-dir"])
        .arg(state)
        .args(["--database", database, "--leader-lease", "2s", "--heartbeat-timeout", "2"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn call(method: &str, http: &str, key: &str, path: &str, body: Option<Value>) -> Option<Value> {
    let url = format!("http://{http}{path}");
    let auth = format!("Bearer {key}");
    let resp = match (method, body) {
        ("GET", _) => ureq::get(&url).header("authorization", &auth).call(),
        (_, Some(b)) => ureq::post(&url).header("authorization", &auth).send_json(b),
        (_, None) => ureq::post(&url).header("authorization", &auth).send_empty(),
    };
    resp.ok()?.body_mut().read_json().ok()
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The leader is SIGKILLed: the standby takes over and finishes the job.
#[test]
fn a_standby_takes_over_when_the_leader_is_killed_and_finishes_the_job_exactly_once() {
    takeover(false);
}

/// The leader is paused (SIGSTOP) past its lease, as a long GC pause or a
/// partition would: the standby takes over; resumed, the old leader finds its
/// lease taken and exits without acting, and the job finishes exactly once.
#[test]
fn a_paused_leader_that_lost_its_lease_exits_and_the_standby_finishes_the_job() {
    takeover(true);
}

fn takeover(pause: bool) {
    let _serial = common::cluster::ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pg = Postgres::start();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http_a, rpc_a) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let (http_b, rpc_b) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut procs = Killed(vec![jobmanager(a.path(), &http_a, &rpc_a, &pg.url())]);
    wait("the first JobManager to lead", || a.path().join("jobmanager.json").exists());
    procs.0.push(jobmanager(b.path(), &http_b, &rpc_b, &pg.url()));
    let log_b = || std::fs::read_to_string(b.path().join("jobmanager.log")).unwrap_or_default();
    wait("the second JobManager to stand by", || log_b().contains("standby;"));
    assert!(!b.path().join("jobmanager.json").exists(), "a standby serves");

    let key = std::fs::read_to_string(a.path().join("admin.token")).unwrap().trim().to_string();
    let join = call("POST", &http_a, &key, "/taskmanager-tokens", Some(serde_json::json!({})));
    let join = join.unwrap()["token"].as_str().unwrap().to_string();
    for i in 1..=2 {
        let log = std::fs::File::create(a.path().join(format!("taskmanager-{i}.log"))).unwrap();
        let tm = eddy()
            .env("EDDY_JOIN_TOKEN", &join)
            .args(["taskmanager", "--slots", "1", "--jobmanager", &format!("{rpc_a},{rpc_b}"), "--ca"])
            .arg(a.path().join("ca.pem"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        procs.0.push(tm);
    }
    let registered = |http: &str| call("GET", http, &key, "/taskmanagers", None).map_or(0, |v| v["taskmanagers"].as_array().unwrap().len());
    wait("two TaskManagers", || registered(&http_a) == 2);

    // Uploaded to the leader: the standby finds the module in the database.
    let bytes = std::fs::read(component("stateful")).unwrap();
    let mut resp = ureq::post(&format!("http://{http_a}/jars/upload?name=stateful.wasm"))
        .header("authorization", &format!("Bearer {key}"))
        .header("content-type", "application/wasm")
        .send(&bytes[..])
        .unwrap();
    let jar = resp.body_mut().read_json::<Value>().unwrap()["id"].as_str().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (n, keys) = (60_000u64, 40u64);
    let args = ["--n", &n.to_string(), "--keys", &keys.to_string(), "--rate", "10000", "--output", out.to_str().unwrap()];
    let body = serde_json::json!({ "entry": "sequence-check", "args": args, "parallelism": 2, "checkpoint-interval-ms": 300,
        "restart-strategy": { "type": "fixed-delay", "attempts": 3, "delay-ms": 200 } });
    let id = call("POST", &http_a, &key, &format!("/jars/{jar}/run"), Some(body)).unwrap()["jobid"].as_str().unwrap().to_string();
    let job = |http: &str| call("GET", http, &key, &format!("/jobs/{id}"), None).unwrap_or(Value::Null);
    wait("a checkpoint and progress", || {
        let j = job(&http_a);
        j["checkpoints"]["completed"].as_u64() >= Some(1) && j["records-in"].as_u64() >= Some(n / 3)
    });

    let leader = procs.0[0].id().to_string();
    if pause {
        Command::new("kill").args(["-STOP", &leader]).status().unwrap();
    } else {
        procs.0[0].kill().unwrap();
        procs.0[0].wait().unwrap();
    }
    let killed = Instant::now();
    wait("the standby to run the job", || {
        let j = job(&http_b);
        j["status"] == "RUNNING" && j["attempt"].as_u64() >= Some(1)
    });
    eprintln!("the standby ran the job {:?} after the leader was stopped", killed.elapsed());
    if pause {
        Command::new("kill").args(["-CONT", &leader]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = procs.0[0].try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the old leader went on after losing its lease");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(1));
        let log_a = std::fs::read_to_string(a.path().join("jobmanager.log")).unwrap();
        assert!(log_a.contains("lost the leadership"), "{log_a}");
    }
    wait("the job to finish on the standby", || job(&http_b)["status"] == "FINISHED");
    let finished = job(&http_b);
    assert!(finished["exceptions"].to_string().contains("the JobManager restarted; resuming from"), "{finished}");
    assert_sequences_exactly_once(&out, n, keys);
    assert_eq!(registered(&http_b), 2, "the TaskManagers registered with the new leader");
    for (i, tm) in procs.0[2..].iter_mut().enumerate() {
        assert!(tm.try_wait().unwrap().is_none(), "TaskManager {} exited", i + 1);
    }
    // The keys, tokens and identities are the same: the standby is the same cluster.
    let me = call("GET", &http_b, &key, "/whoami", None).unwrap();
    assert_eq!(me["role"], "admin");
}
