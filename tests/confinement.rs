//! A confined job's connectors reach only what its tenant was granted: files
//! beneath the data root (cap-std refuses `..`, absolute paths and symlinks
//! that lead out, even one swapped in after the submission check), sockets on
//! the allow-list (refused ones are never connected to). Real files, real
//! sockets, jobs run in-process over the word count component.

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use eddy::checkpoint::CheckpointConfig;
use eddy::connectors::Confinement;
use eddy::local::{CheckpointSettings, JobError, JobOptions, JobSummary, LocalCluster};
use eddy::runtime::{Runtime, SandboxConfig};
use eddy::task::JobSignals;

const SECRET: &str = "-----BEGIN PRIVATE KEY----- the cluster's key\n";

/// A tenant's data root beside a directory it must not reach (holding a secret).
struct Tenant {
    _work: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Tenant {
    fn new() -> Tenant {
        let work = tempfile::tempdir().unwrap();
        let (root, outside) = (work.path().join("root"), work.path().join("outside"));
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        Tenant { _work: work, root, outside }
    }

    fn confinement(&self, sockets: &[String]) -> Confinement {
        Confinement { data_root: Some(self.root.clone()), sockets: Some(sockets.to_vec()) }
    }

    fn options(&self) -> JobOptions {
        JobOptions { confinement: self.confinement(&[]), ..Default::default() }
    }

    /// The outside directory holds nothing but the secret.
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret.txt"]);
        assert_eq!(std::fs::read_to_string(self.outside.join("secret.txt")).unwrap(), SECRET);
    }
}

fn cluster() -> LocalCluster {
    LocalCluster::new(Runtime::new(SandboxConfig::default(), None).unwrap())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn run(entry: &str, args: &[&str], options: &JobOptions, checkpoints: Option<&CheckpointSettings>, p: u32) -> Result<JobSummary, JobError> {
    let cluster = cluster();
    let wasm = std::fs::read(component("wordcount")).unwrap();
    let (modules, plan) = cluster.plan("wordcount.wasm", &wasm, entry, &strings(args), p)?;
    cluster.execute(&modules, &plan, options, checkpoints, Arc::new(JobSignals::default()))
}

/// The submission check of `word-count` with `args`.
fn check(tenant: &Tenant, args: &[&str]) -> Result<(), String> {
    let wasm = std::fs::read(component("wordcount")).unwrap();
    let graph = cluster().runtime().load("wordcount.wasm", &wasm).unwrap().plan("word-count", &strings(args)).unwrap();
    tenant.confinement(&[]).check_graph(&graph).map_err(|e| e.to_string())
}

fn escapes(role: &str, path: &str, root: &Path) -> String {
    format!("{role} {path} escapes the tenant's data root {}", root.display())
}

fn text() -> Vec<u8> {
    let mut t = awkward_text();
    for i in 0..20_000 {
        t.extend_from_slice(format!("w{} x{}\n", i % 500, i % 7).as_bytes());
    }
    t
}

#[test]
fn a_relative_input_inside_the_root_counts_words_exactly() {
    let t = Tenant::new();
    let text = text();
    std::fs::write(t.root.join("in/text.txt"), &text).unwrap();
    let out = format!("out-{}", std::process::id());
    check(&t, &["--input", "in/text.txt", "--output", &out]).unwrap();
    run("word-count", &["--input", "in/text.txt", "--output", &out], &t.options(), None, 2).unwrap();
    assert_eq!(parse_counts(read_parts(&t.root.join(&out))), reference_counts(&text));
    assert!(!Path::new(&out).exists(), "relative to the data root, not the working directory");
    // An absolute path is accepted when it lies beneath the root.
    let abs = t.root.join("in/text.txt");
    let out2 = t.root.join("out2");
    run("word-count", &["--input", abs.to_str().unwrap(), "--output", out2.to_str().unwrap()], &t.options(), None, 1).unwrap();
    assert_eq!(parse_counts(read_parts(&out2)), reference_counts(&text));
    t.assert_outside_untouched();
}

#[test]
fn inputs_outside_the_root_are_refused_at_submission_and_at_open() {
    let t = Tenant::new();
    let secret = t.outside.join("secret.txt");
    let secret = secret.to_str().unwrap();
    for input in [secret, "../outside/secret.txt", "in/../../outside/secret.txt"] {
        let err = check(&t, &["--input", input]).unwrap_err();
        assert_eq!(err, format!("file source path {input} is outside the tenant's data root {}", t.root.display()));
        // Submitted anyway (a JobManager that did not check): refused when opened.
        let err = run("word-count", &["--input", input], &t.options(), None, 2).unwrap_err().to_string();
        assert_eq!(err, format!("job failed: {}", escapes("file source path", input, &t.root)));
    }
}

#[test]
fn a_symlink_inside_the_root_pointing_out_is_refused() {
    let t = Tenant::new();
    symlink("../../outside/secret.txt", t.root.join("in/relative-link")).unwrap();
    symlink(t.outside.join("secret.txt"), t.root.join("in/absolute-link")).unwrap();
    symlink("../outside", t.root.join("dir-link")).unwrap();
    for input in ["in/relative-link", "in/absolute-link", "dir-link/secret.txt"] {
        check(&t, &["--input", input]).expect("lexically inside the root");
        let err = run("word-count", &["--input", input, "--output", "out"], &t.options(), None, 1).unwrap_err().to_string();
        assert_eq!(err, format!("job failed: {}", escapes("file source path", input, &t.root)));
        assert!(!err.contains("PRIVATE KEY"));
    }
}

#[test]
fn a_path_swapped_for_a_symlink_after_the_check_is_refused() {
    let t = Tenant::new();
    let input = t.root.join("in/data.txt");
    std::fs::write(&input, "harmless words\n").unwrap();
    let args = ["--input", "in/data.txt"];
    check(&t, &args).unwrap();
    let cluster = cluster();
    let wasm = std::fs::read(component("wordcount")).unwrap();
    let (modules, plan) = cluster.plan("wordcount.wasm", &wasm, "word-count", &strings(&args), 1).unwrap();
    std::fs::remove_file(&input).unwrap();
    symlink(t.outside.join("secret.txt"), &input).unwrap();
    let err = cluster.execute(&modules, &plan, &t.options(), None, Arc::new(JobSignals::default())).unwrap_err().to_string();
    assert_eq!(err, format!("job failed: {}", escapes("file source path", "in/data.txt", &t.root)));
}

#[test]
fn the_sink_cannot_write_outside_the_root() {
    let t = Tenant::new();
    std::fs::write(t.root.join("in/text.txt"), "b a b\n").unwrap();
    symlink("../outside", t.root.join("out-link")).unwrap();
    let abs = t.outside.join("out");
    let abs = abs.to_str().unwrap();
    for output in [abs, "../outside/out"] {
        let err = check(&t, &["--input", "in/text.txt", "--output", output]).unwrap_err();
        assert_eq!(err, format!("file sink directory {output} is outside the tenant's data root {}", t.root.display()));
    }
    for output in [abs, "../outside/out", "out-link", "out-link/deeper"] {
        let err = run("word-count", &["--input", "in/text.txt", "--output", output], &t.options(), None, 2).unwrap_err().to_string();
        assert_eq!(err, format!("job failed: {}", escapes("file sink directory", output, &t.root)));
    }
    // A part file's name planted as a symlink out of the root.
    std::fs::create_dir(t.root.join("out")).unwrap();
    symlink("../../outside/planted", t.root.join("out/part-0.inprogress")).unwrap();
    let err = run("word-count", &["--input", "in/text.txt", "--output", "out"], &t.options(), None, 1).unwrap_err().to_string();
    assert_eq!(err, format!("job failed: {}", escapes("file sink file", "out/part-0.inprogress", &t.root)));
    t.assert_outside_untouched();
}

#[test]
fn the_sink_commits_part_files_inside_the_root_with_checkpoints() {
    let t = Tenant::new();
    let mut text = Vec::new();
    for i in 0..200_000 {
        text.extend_from_slice(format!("w{} x{}\n", i % 1000, i % 7).as_bytes());
    }
    std::fs::write(t.root.join("in/text.txt"), &text).unwrap();
    let chk = t.root.parent().unwrap().join("chk");
    let config = CheckpointConfig { interval: Some(Duration::from_millis(20)), ..Default::default() };
    let settings = CheckpointSettings { config, dir: chk };
    let summary = run("word-count", &["--input", "in/text.txt", "--output", "out"], &t.options(), Some(&settings), 2).unwrap();
    assert_eq!(parse_counts(read_parts(&t.root.join("out"))), reference_counts(&text));
    let completed = summary.checkpoints.as_ref().and_then(|c| c["completed"].as_u64()).unwrap();
    assert!(completed >= 1, "{:?}", summary.checkpoints);
    // Two-phase names: part-<subtask>-<run>-<n>, committed by renames beneath the root.
    let names: Vec<String> =
        std::fs::read_dir(t.root.join("out")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("part-0-0-") || n.starts_with("part-1-0-")), "{names:?}");
    t.assert_outside_untouched();
}

/// A job reading `host:port` under an allow-list of `allowed`, in its own thread.
fn socket_job(t: &Tenant, host: &str, port: u16, allowed: &[String]) -> std::thread::JoinHandle<Result<JobSummary, JobError>> {
    let options = JobOptions { confinement: t.confinement(allowed), ..Default::default() };
    let (host, port) = (host.to_string(), port.to_string());
    std::thread::spawn(move || run("stream-word-count", &["--host", &host, "--port", &port], &options, None, 1))
}

#[test]
fn a_socket_not_on_the_allow_list_is_never_connected_to() {
    let t = Tenant::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for (host, allowed) in [
        ("127.0.0.1", vec![format!("127.0.0.1:{}", port.wrapping_add(1))]),
        ("127.0.0.1", vec![format!("localhost:{port}")]),
        ("localhost", vec![format!("127.0.0.1:{port}")]),
        ("127.0.0.1", vec![]),
    ] {
        let err = socket_job(&t, host, port, &allowed).join().unwrap().unwrap_err().to_string();
        assert_eq!(err, format!("job failed: socket source {host}:{port} is not on the tenant's allow-list"));
    }
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a refused source connected: {other:?}"),
    }
}

#[test]
fn a_socket_on_the_allow_list_is_read() {
    let t = Tenant::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let job = socket_job(&t, "127.0.0.1", port, &[format!("127.0.0.1:{port}")]);
    let mut peer = loop {
        match listener.accept() {
            Ok((peer, _)) => break peer,
            Err(e) if e.kind() == ErrorKind::WouldBlock && !job.is_finished() => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("no connection ({e}); the job ended: {:?}", job.join().unwrap()),
        }
    };
    peer.set_nonblocking(false).unwrap();
    peer.write_all(b"a b a\n").unwrap();
    drop(peer);
    let summary = job.join().unwrap().unwrap();
    // Unbounded: every update of a count ("a 1", "b 1", "a 2").
    assert_eq!(summary.records_in, 1);
    assert_eq!(summary.records_out, 3);
}
