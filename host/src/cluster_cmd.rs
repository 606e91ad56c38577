//! `eddy cluster start` and `eddy cluster stop`: a JobManager and a few
//! TaskManagers on this machine as background processes, like Flink's
//! `start-cluster.sh` / `stop-cluster.sh`.
//!
//! The cluster's directory holds the JobManager's state (modules, CA),
//! `jobmanager.json` (the addresses it listens on, written by the JobManager
//! once it listens), `pids` (one process id a line) and `log/`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::api::CreateJoinToken;
use crate::client::Client;

/// How long `start` waits for the JobManager to listen and for the
/// TaskManagers to register.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What `eddy cluster start` was asked for.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The cluster's directory.
    pub dir: PathBuf,
    /// How many TaskManagers.
    pub taskmanagers: u32,
    /// Slots per TaskManager.
    pub slots: u32,
    /// The JobManager's `--heartbeat-timeout`, if set.
    pub heartbeat_timeout: Option<f64>,
}

/// The addresses in `jobmanager.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobManagerAddresses {
    /// The HTTP API (`-m`).
    pub http: String,
    /// The QUIC endpoint (TaskManagers' `--jobmanager`).
    pub rpc: String,
    /// The JobManager's process id.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// Where `eddy cluster` keeps a local cluster unless told otherwise:
/// `~/.local/share/eddy/local-cluster`.
pub fn default_dir() -> PathBuf {
    let state = crate::cli::default_state_dir();
    state.parent().map_or_else(|| PathBuf::from("local-cluster"), |p| p.join("local-cluster"))
}

fn pids_file(dir: &Path) -> PathBuf {
    dir.join("pids")
}

fn addresses_file(dir: &Path) -> PathBuf {
    dir.join("jobmanager.json")
}

/// The pids listed in `DIR/pids` (none if there is no such file).
pub fn read_pids(dir: &Path) -> anyhow::Result<Vec<u32>> {
    let path = pids_file(dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_pids(dir: &Path, pids: &[u32]) -> anyhow::Result<()> {
    let path = pids_file(dir);
    let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Whether `pid` is a live (not zombie) process that looks like an `eddy`
/// JobManager or TaskManager (where `/proc` tells; elsewhere, any live process).
pub fn is_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else { return false };
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some("Z" | "X" | "x") | None) {
            return false;
        }
        // A reused pid is not ours.
        if let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) {
            return cmdline.split(|b| *b == 0).any(|a| a == b"jobmanager" || a == b"taskmanager");
        }
        return true;
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn log_file(path: &Path) -> anyhow::Result<(File, File)> {
    let f = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let g = f.try_clone().with_context(|| format!("cannot open {}", path.display()))?;
    Ok((f, g))
}

fn spawn(args: &[String], log: &Path, env: &[(&str, &str)]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the eddy executable")?;
    let (out, err) = log_file(log)?;
    let mut cmd = Command::new(&exe);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err).envs(env.iter().copied());
    if std::env::var_os("EDDY_LOG").is_none() {
        cmd.env("EDDY_LOG", "info");
    }
    cmd.env_remove("EDDY_TOKEN").env_remove("EDDY_TOKEN_FILE");
    #[cfg(unix)]
    {
        // Its own process group: Ctrl-C in this terminal does not reach it.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn().with_context(|| format!("cannot start {} {}", exe.display(), args.first().map_or("", |s| s)))
}

/// The last non-empty line of a log, to say why a process died.
fn last_log_line(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(|l| l.chars().take(300).collect())
}

fn died(what: &str, child: &mut Child, log: &Path) -> Option<anyhow::Error> {
    let status = child.try_wait().ok().flatten()?;
    let why = last_log_line(log).map_or_else(String::new, |l| format!(": {l}"));
    Some(anyhow::anyhow!("the {what} exited at startup ({status}){why} (log: {})", log.display()))
}

/// Starts a JobManager and `taskmanagers` TaskManagers in the background and
/// waits until all have registered. Answers the JobManager's addresses.
pub fn start(opts: &StartOptions) -> anyhow::Result<JobManagerAddresses> {
    let dir = &opts.dir;
    if opts.taskmanagers == 0 {
        bail!("--taskmanagers must be at least 1");
    }
    if let Some(t) = opts.heartbeat_timeout {
        if !(t > 0.0 && t <= 86_400.0) {
            bail!("--heartbeat-timeout must be between 0 and 86400 seconds, not {t}");
        }
    }
    let live: Vec<u32> = read_pids(dir)?.into_iter().filter(|p| is_alive(*p)).collect();
    if !live.is_empty() {
        bail!("a cluster is already running from {}; run eddy cluster stop", dir.display());
    }
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("cannot create {}", log_dir.display()))?;
    let addresses = addresses_file(dir);
    match std::fs::remove_file(&addresses) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", addresses.display())),
    }

    let mut children: Vec<Child> = Vec::new();
    let result = start_processes(opts, &log_dir, &addresses, &mut children);
    if result.is_err() {
        // Leave nothing half-started behind.
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(pids_file(dir));
        let _ = std::fs::remove_file(&addresses);
    }
    result
}

fn start_processes(
    opts: &StartOptions,
    log_dir: &Path,
    addresses: &Path,
    children: &mut Vec<Child>,
) -> anyhow::Result<JobManagerAddresses> {
    let dir = &opts.dir;
    let mut pids = Vec::new();

    let jm_log = log_dir.join("jobmanager.log");
    let mut args: Vec<String> = ["jobmanager", "--bind", "127.0.0.1:0", "--rpc-bind", "127.0.0.1:0", "--state-dir"]
        .map(String::from)
        .to_vec();
    args.push(dir.display().to_string());
    if let Some(t) = opts.heartbeat_timeout {
        args.push("--heartbeat-timeout".into());
        args.push(t.to_string());
    }
    children.push(spawn(&args, &jm_log, &[])?);
    pids.push(children[0].id());
    write_pids(dir, &pids)?;

    // Wait for the JobManager to say where it listens.
    let deadline = Instant::now() + START_TIMEOUT;
    let jm = loop {
        if let Ok(text) = std::fs::read_to_string(addresses) {
            if let Ok(a) = serde_json::from_str::<JobManagerAddresses>(&text) {
                break a;
            }
        }
        if let Some(e) = died("JobManager", &mut children[0], &jm_log) {
            return Err(e);
        }
        if Instant::now() > deadline {
            bail!(
                "the JobManager did not write {} within {} s (log: {})",
                addresses.display(),
                START_TIMEOUT.as_secs(),
                jm_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    // The JobManager wrote its admin key before its addresses. The TaskManagers
    // enrol with a join token that lives as long as they may take to start.
    let key = std::fs::read_to_string(dir.join(crate::jobmanager::ADMIN_KEY_FILE))
        .with_context(|| format!("cannot read the admin key in {}", dir.display()))?;
    let client = Client::new(&jm.http, Some(key.trim().to_string()))?;
    let request = CreateJoinToken { description: "eddy cluster start".into(), ttl_seconds: Some(START_TIMEOUT.as_secs() * 3) };
    let join = client.create_join_token(&request).context("cannot create a join token for the TaskManagers")?;
    for i in 1..=opts.taskmanagers {
        let log = log_dir.join(format!("taskmanager-{i}.log"));
        let args: Vec<String> = vec![
            "taskmanager".into(),
            "--jobmanager".into(),
            jm.rpc.clone(),
            "--slots".into(),
            opts.slots.to_string(),
            "--ca".into(),
            dir.join("ca.pem").display().to_string(),
            "--state-dir".into(),
            dir.join(format!("taskmanager-{i}")).display().to_string(),
        ];
        let child = spawn(&args, &log, &[("EDDY_JOIN_TOKEN", join.token.as_str())])?;
        pids.push(child.id());
        children.push(child);
        write_pids(dir, &pids)?;
    }

    // Wait for every TaskManager to register.
    let want = opts.taskmanagers as usize;
    loop {
        let progress = match client.taskmanagers() {
            Ok(tms) if tms.len() >= want => break,
            Ok(tms) => format!("{} of {want} registered", tms.len()),
            Err(e) => e.to_string(),
        };
        for (i, c) in children.iter_mut().enumerate() {
            let (what, log) = if i == 0 {
                ("JobManager".to_string(), jm_log.clone())
            } else {
                (format!("TaskManager {i}"), log_dir.join(format!("taskmanager-{i}.log")))
            };
            if let Some(e) = died(&what, c, &log) {
                return Err(e);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the TaskManagers did not register within {} s ({}; logs in {})",
                START_TIMEOUT.as_secs(),
                progress,
                log_dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(jm)
}

/// Stops the processes listed in `DIR/pids` (SIGTERM, then SIGKILL after 5 s)
/// and removes `pids` and `jobmanager.json`. Answers how many were running.
pub fn stop(dir: &Path) -> anyhow::Result<usize> {
    let live: Vec<u32> = read_pids(dir)?.into_iter().filter(|p| is_alive(*p)).collect();
    // TaskManagers first, then the JobManager (first in the file).
    for pid in live.iter().rev() {
        signal(*pid, "-TERM");
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while live.iter().any(|p| is_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in live.iter().filter(|p| is_alive(**p)) {
        signal(*pid, "-KILL");
    }
    for f in [pids_file(dir), addresses_file(dir)] {
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", f.display())),
        }
    }
    Ok(live.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_is_next_to_the_cluster_state() {
        let d = default_dir();
        assert!(d.ends_with("eddy/local-cluster"), "{}", d.display());
    }

    #[test]
    fn pids_and_liveness() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_pids(dir.path()).unwrap().is_empty());
        write_pids(dir.path(), &[1234567, 42]).unwrap();
        assert_eq!(read_pids(dir.path()).unwrap(), vec![1234567, 42]);
        assert!(!is_alive(0));
        assert!(!is_alive(4_000_000));
        // The test binary is alive but is no JobManager or TaskManager.
        if Path::new("/proc/self/stat").exists() {
            assert!(!is_alive(std::process::id()));
        }
    }

    #[test]
    fn stop_with_nothing_running() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stop(dir.path()).unwrap(), 0);
        write_pids(dir.path(), &[4_000_000]).unwrap();
        std::fs::write(dir.path().join("jobmanager.json"), "{}").unwrap();
        assert_eq!(stop(dir.path()).unwrap(), 0);
        assert!(!dir.path().join("pids").exists());
        assert!(!dir.path().join("jobmanager.json").exists());
    }

    #[test]
    fn stops_a_live_process() {
        // A process whose argv contains "taskmanager", as ours do.
        let child = Command::new("sh").args(["-c", "sleep 30; true", "taskmanager"]).spawn().unwrap();
        let pid = child.id();
        let dir = tempfile::tempdir().unwrap();
        write_pids(dir.path(), &[pid]).unwrap();
        let t = Instant::now();
        while !is_alive(pid) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(is_alive(pid), "{:?}", std::fs::read(format!("/proc/{pid}/cmdline")));
        // Reap it when it dies so that it does not linger as a zombie.
        let reaper = std::thread::spawn(move || {
            let mut child = child;
            child.wait().unwrap()
        });
        assert_eq!(stop(dir.path()).unwrap(), 1);
        reaper.join().unwrap();
        assert!(!is_alive(pid));
    }
}
