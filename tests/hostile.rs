//! Hostile and broken components are contained: each fails its job with a
//! one-line error naming the operator and the cause, and the process that
//! runs them stays up for the next job.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eddy::local::{JobError, JobOptions, LocalCluster};
use eddy::runtime::{Runtime, SandboxConfig};
use eddy::task::JobSignals;

fn hostile(entry: &str, extra: &[&str]) -> String {
    let wasm = component("hostile");
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend(["-c", entry, wasm.to_str().unwrap()]);
    let err = run_err(&args);
    error_line(&err).to_string()
}

#[test]
fn a_panic_names_the_operator_and_the_message() {
    let line = hostile("trap", &[]);
    assert!(line.contains("operator 'explode' (subtask 1/1) trapped"), "{line}");
    assert!(line.contains("boom on purpose"), "{line}");
}

#[test]
fn an_endless_loop_hits_the_call_timeout() {
    let started = std::time::Instant::now();
    let line = hostile("spin", &["--call-timeout", "1"]);
    assert!(line.contains("operator 'spin' (subtask 1/1) did not return within the call timeout of 1s"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let line = hostile("bomb", &["--memory-limit", "64"]);
    assert!(line.contains("operator 'bomb' (subtask 1/1) exceeded its memory limit of 64 MiB"), "{line}");
}

#[test]
fn opening_a_file_is_refused() {
    let line = hostile("open-file", &[]);
    assert!(line.contains("operator 'snoop' (subtask 1/1) trapped"), "{line}");
    assert!(line.contains("cannot read /etc/passwd"), "{line}");
}

#[test]
fn a_failing_planner_is_reported() {
    let line = hostile("bad-plan", &[]);
    assert_eq!(line, "error: planning entry 'bad-plan' failed: this plan always fails");
}

#[test]
fn an_unknown_entry_lists_the_entries() {
    let err = run_err(&["run", "-c", "no-such-job", component("wordcount").to_str().unwrap()]);
    let line = error_line(&err);
    assert!(line.starts_with("error: planning entry 'no-such-job' failed: unknown entry 'no-such-job'"), "{line}");
    assert!(line.contains("word-count") && line.contains("stream-word-count"), "{line}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let wasm = component("wrong-world");
    let err = run_err(&["run", "-c", "x", wasm.to_str().unwrap()]);
    let line = error_line(&err);
    let name = wasm.file_name().unwrap().to_string_lossy();
    assert!(line.starts_with(&format!("error: {name} does not implement the eddy:stream/job@0.1.0 world: ")), "{line}");
}

#[test]
fn truncated_and_non_wasm_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(component("wordcount")).unwrap();
    let truncated = dir.path().join("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let line = error_line(&run_err(&["run", "--no-cache", "-c", "word-count", truncated.to_str().unwrap()])).to_string();
    assert!(line.starts_with("error: truncated.wasm is not a valid component: "), "{line}");

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "just some text").unwrap();
    let line = error_line(&run_err(&["entries", text.to_str().unwrap()])).to_string();
    assert_eq!(line, "error: notes.wasm is not a WebAssembly component (no \\0asm header)");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let line = error_line(&run_err(&["entries", core.to_str().unwrap()])).to_string();
    assert_eq!(line, "error: core.wasm is a core WebAssembly module, not a component; build it for wasm32-wasip2");

    let missing = run_err(&["entries", "/no/such.wasm"]);
    assert_eq!(error_line(&missing), "error: cannot read component /no/such.wasm: No such file or directory (os error 2)");

    // A device is refused before it is read.
    assert_eq!(error_line(&run_err(&["entries", "/dev/zero"])), "error: component /dev/zero is not a regular file");
}

#[test]
fn bad_flags_are_refused_by_the_cli() {
    let out = run(&["run", "-p", "0", "-c", "word-count", "x.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value '0' for '--parallelism <N>'"));
}

/// One process, one runtime: hostile jobs fail, and the next job still runs.
#[test]
fn the_process_survives_hostile_jobs_and_runs_the_next_one() {
    let sandbox = SandboxConfig { memory_limit_bytes: 64 << 20, call_timeout: Duration::from_secs(1) };
    let cluster = LocalCluster::new(Runtime::new(sandbox, None).unwrap());
    let hostile = std::fs::read(component("hostile")).unwrap();
    let run = |bytes: &[u8], entry: &str, args: &[String]| -> Result<_, JobError> {
        let (modules, plan) = cluster.plan("job.wasm", bytes, entry, args, 2)?;
        cluster.execute(&modules, &plan, &JobOptions::default(), None, Arc::new(JobSignals::default()))
    };
    for (entry, cause) in [("trap", "boom on purpose"), ("spin", "call timeout"), ("bomb", "memory limit"), ("open-file", "/etc/passwd")] {
        let err = run(&hostile, entry, &[]).expect_err(entry).to_string();
        assert!(err.contains(cause), "{entry}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "b a b\n").unwrap();
    let out = dir.path().join("out");
    let args: Vec<String> =
        ["--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()].iter().map(|s| s.to_string()).collect();
    let summary = run(&std::fs::read(component("wordcount")).unwrap(), "word-count", &args).unwrap();
    assert_eq!(summary.records_out, 2);
    let mut lines = read_parts(&out);
    lines.sort();
    assert_eq!(lines, ["a 1", "b 2"]);
}
