//! Checkpoints on a real S3-compatible server (s3s-fs, installed by `./dev
//! test` under target/tools, started here on 127.0.0.1): a cluster whose
//! JobManager is SIGKILLed resumes from `s3://` checkpoints with exactly-once
//! output; an upload cut off half-way, or a corrupt object, is never restored.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;
use eddy::checkpoint::storage::Metadata;
use eddy::checkpoint::{CheckpointStorage, DirStorage, OperatorState, RestoreError, Restored};

/// The tests of this file set the AWS_* variables of the process: one at a time.
static ONE_SERVER: Mutex<()> = Mutex::new(());

/// An s3s-fs server on a free loopback port, with bucket `eddy`, killed when dropped.
struct S3 {
    child: Child,
    root: tempfile::TempDir,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl S3 {
    fn start() -> S3 {
        let bin = Path::new(env!("CARGO_BIN_EXE_eddy")).parent().unwrap().parent().unwrap().join("tools/bin/s3s-fs");
        assert!(bin.exists(), "{} is missing: ./dev test installs it (tests/tools/install-s3s-fs.sh)", bin.display());
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("eddy")).unwrap();
        let port = free_port();
        let child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", "eddy-test", "--secret-key", "eddy-test-secret"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        S3 { child, root, port }
    }

    /// Points this process (and the processes it starts) at `endpoint`.
    fn use_endpoint(endpoint: &str) {
        for (k, v) in [
            ("AWS_ENDPOINT", endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "eddy-test"),
            ("AWS_SECRET_ACCESS_KEY", "eddy-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("EDDY_S3_RETRIES", "1"),
        ] {
            std::env::set_var(k, v);
        }
    }

    /// Where s3s-fs keeps object `key` of bucket `eddy`.
    fn file(&self, key: &str) -> PathBuf {
        self.root.path().join("eddy").join(key)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The completed checkpoints (`_metadata` objects) under `dir` of the server's files.
fn metadata_objects(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| e.path()).map(|p| if p.is_dir() { metadata_objects(&p) } else { usize::from(p.ends_with("_metadata")) }).sum()
}

/// The JobManager is SIGKILLed while a job checkpoints to `s3://eddy/checkpoints`;
/// started again, it resumes the job from its latest checkpoint there, read by the
/// TaskManagers from the object store, and the output holds every record once.
#[test]
fn a_killed_jobmanager_resumes_from_s3_checkpoints_with_exactly_once_output() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let s3 = S3::start();
    S3::use_endpoint(&format!("http://127.0.0.1:{}", s3.port));
    let args = ["--heartbeat-timeout", "2", "--checkpoint-dir", "s3://eddy/checkpoints"];
    let mut cluster = Cluster::start(2, 1, &args);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (n, keys) = (60_000u64, 40u64);
    let id = cluster.submit_sequence_check(n, keys, Some(10_000), &out, Some(200));
    cluster.wait_for(|c| c.job(&id)["checkpoints"]["completed"].as_u64() >= Some(2), "checkpoints");
    let latest = cluster.job(&id)["checkpoints"]["latest"].as_str().unwrap_or_default().to_string();
    assert!(latest.starts_with(&format!("s3://eddy/checkpoints/{id}/chk-")), "{latest}");
    assert!(metadata_objects(&s3.file("checkpoints")) >= 1, "no _metadata object on the server");
    assert!(!cluster.dir.path().join("checkpoints").exists(), "checkpoints went to the local directory");

    cluster.restart_jobmanager(&args);
    let finished = cluster.wait_status(&id, "FINISHED");
    assert!(finished["exceptions"].to_string().contains("the JobManager restarted; resuming from s3://eddy/checkpoints/"), "{finished}");
    assert_sequences_exactly_once(&out, n, keys);
}

/// A TCP proxy to `upstream` that, while `cut` is set, closes each connection
/// after `after` bytes from the client: an upload cut off half-way.
fn cutting_proxy(upstream: u16, after: usize, cut: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let cut = cut.clone();
            std::thread::spawn(move || {
                let (mut buf, mut sent) = (vec![0u8; 64 << 10], 0usize);
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || (cut.load(Ordering::Relaxed) && sent + n > after) {
                        break;
                    }
                    sent += n;
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Both);
                let _ = c_read.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

fn state_of(bytes: usize) -> Vec<(String, OperatorState)> {
    let keyed = (0..bytes / (64 << 10)).map(|i| (format!("\"k{i}\"").into_bytes(), vec![b'v'; 64 << 10])).collect();
    vec![("op".to_string(), OperatorState { keyed, items: vec![b"split".to_vec()], ..OperatorState::default() })]
}

fn complete(storage: &DirStorage, id: u64, handles: Vec<eddy::checkpoint::TaskHandle>) -> PathBuf {
    let meta = Metadata { job: "j".into(), checkpoint: id, savepoint: false, completed_ms: 0, max_parallelism: 128, tasks: handles };
    storage.complete(&meta).unwrap()
}

/// Through a proxy that cuts connections: an upload cut off half-way leaves
/// no object and no checkpoint to restore (the earlier one still restores);
/// a `_metadata` naming a missing or a truncated object is refused with why.
#[test]
fn an_upload_cut_off_half_way_or_a_corrupt_object_is_never_restored() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let s3 = S3::start();
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = cutting_proxy(s3.port, 4 << 20, cut.clone());
    S3::use_endpoint(&format!("http://127.0.0.1:{proxy}"));
    let storage = DirStorage::new("s3://eddy/cut/job");

    let small = state_of(1 << 20);
    let first = storage.write_task(1, 0, 0, &small).unwrap();
    let location = complete(&storage, 1, vec![first]);
    assert_eq!(location, Path::new("s3://eddy/cut/job/chk-1"));
    assert_eq!(Restored::load(&location).unwrap().state_for("op", 0, 1).keyed, small[0].1.keyed);

    // 40 MiB: a multipart upload (16 MiB parts), cut after its first 4 MiB.
    cut.store(true, Ordering::Relaxed);
    let err = storage.write_task(2, 0, 0, &state_of(40 << 20)).unwrap_err();
    eprintln!("the cut upload failed: {err}");
    cut.store(false, Ordering::Relaxed);
    assert!(!s3.file("cut/job/chk-2/task-0-0").exists(), "a cut upload left an object");
    assert!(matches!(Restored::load(Path::new("s3://eddy/cut/job/chk-2")), Err(RestoreError::NotACheckpoint(_))));
    // Even a `_metadata` that names it (which no coordinator writes) restores nothing.
    let handle = eddy::checkpoint::TaskHandle { chain: 0, subtask: 0, file: "task-0-0".into(), bytes: 40 << 20, sync_ms: 0, passed: 0 };
    let named = complete(&storage, 2, vec![handle.clone()]);
    let err = Restored::load(&named).unwrap_err().to_string();
    assert!(err.starts_with("cannot read s3://eddy/cut/job/chk-2/task-0-0: no object"), "{err}");

    // A truncated object under a complete checkpoint: refused by its checksum.
    let third = storage.write_task(3, 0, 0, &small).unwrap();
    let named = complete(&storage, 3, vec![third]);
    let file = s3.file("cut/job/chk-3/task-0-0");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = Restored::load(&named).unwrap_err().to_string();
    assert!(err.contains("task-0-0") && err.contains("corrupt or truncated"), "{err}");

    // The first checkpoint is untouched; discarding one removes its objects.
    assert!(Restored::load(&location).is_ok());
    storage.discard(3);
    assert!(!s3.file("cut/job/chk-3/task-0-0").exists() && !s3.file("cut/job/chk-3/_metadata").exists());
}
