//! Checkpoints, recovery and savepoints with real processes on 127.0.0.1.

mod common;

use std::path::Path;
use std::time::Instant;

use common::cluster::Cluster;
use common::*;
use serde_json::{json, Value};

/// Keys of the stateful jobs: record `i` is key `i % KEYS`'s record number `i / KEYS`.
const KEYS: u64 = 50;

/// Where a job's chain-0 subtask 1 runs (the TaskManager to kill).
fn taskmanager_of(job: &Value) -> usize {
    let tm = job["tasks"][0]["subtasks"][1]["taskmanager"].as_str().expect("placed");
    tm.strip_prefix("tm-").unwrap().parse().unwrap()
}

/// A point between `lo` and `hi` that differs from run to run.
fn random_between(lo: f64, hi: f64) -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    lo + (hi - lo) * f64::from(nanos % 1000) / 1000.0
}

/// As Flink's StreamCheckpointingITCase: a replayable sequence over many
/// keys through keyed state into a two-phase file sink, checkpoints every
/// 300 ms, and one TaskManager SIGKILLed between 40% and 70% of the input
/// with a spare one free. The job must recover by itself, and the committed
/// output must hold every record once: per key the sequence numbers without
/// gap or repeat, and the counts 1..=n once each (no record lost from or
/// counted twice in the state).
#[test]
fn a_killed_taskmanager_is_recovered_from_with_exactly_once_output() {
    let mut cluster = Cluster::start(3, 1, &["--heartbeat-timeout", "2"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    // 8 s at 12 500 records/s; heartbeats report progress every 0.5 s, 6.25% of the input.
    let n: u64 = 100_000;
    let id = cluster.submit_sequence_check(n, KEYS, Some(12_500), &out, Some(200));
    let job = cluster.wait_status(&id, "RUNNING");
    let victim = taskmanager_of(&job);
    // Progress is seen in heartbeat steps: aim below 63% so that the kill lands before 70%.
    let at = random_between(0.4, 0.63);
    cluster.wait_for(|c| c.job(&id)["records-in"].as_u64().unwrap_or(0) as f64 >= at * n as f64, "progress");
    let before = cluster.job(&id);
    let done = before["records-in"].as_u64().unwrap() as f64 / n as f64;
    assert!((0.4..0.7).contains(&done), "the kill must land between 40% and 70% of the input, not at {done:.2}");
    assert!(before["checkpoints"]["completed"].as_u64().unwrap() >= 1, "no checkpoint before the kill: {before}");
    cluster.taskmanagers[victim - 1].kill().unwrap();
    let killed = Instant::now();
    cluster.wait_for(|c| { let j = c.job(&id); j["attempt"].as_u64() >= Some(1) && j["status"] == "RUNNING" }, "recovery");
    let recovery = killed.elapsed();
    eprintln!("killed tm-{victim} at {:.0}% of the input; running again after {recovery:?}", done * 100.0);
    let finished = cluster.wait_status(&id, "FINISHED");
    let exceptions = finished["exceptions"].as_array().unwrap();
    assert!(exceptions.iter().any(|e| e["exception"].as_str().unwrap().contains(&format!("tm-{victim}"))), "{finished}");
    assert!(finished["restarts"].as_u64().unwrap() >= 1);
    assert!(!finished["tasks"].to_string().contains(&format!("\"tm-{victim}\"")), "a task still placed on the dead TaskManager");

    assert_sequences_exactly_once(&out, n, KEYS);
}

/// The expected `totals` output for `n` records: (`key count sum` lines, `key sum` lines).
fn expected_totals(n: u64) -> (Vec<String>, Vec<String>) {
    let (mut reduce, mut sum) = (Vec::new(), Vec::new());
    for key in 0..KEYS.min(n) {
        let count = (n - key).div_ceil(KEYS);
        let total: u64 = (0..count).map(|s| s * KEYS + key).sum();
        reduce.push(format!("{key} {count} {total}"));
        sum.push(format!("{key} {total}"));
    }
    reduce.sort();
    sum.sort();
    (reduce, sum)
}

fn totals_of(out: &Path) -> (Vec<String>, Vec<String>) {
    let mut reduce = read_parts(&out.join("reduce"));
    let mut sum = read_parts(&out.join("sum"));
    reduce.sort();
    sum.sort();
    (reduce, sum)
}

/// Stop with a savepoint at parallelism 2, then resume from it at 3 and at
/// 1: keyed state moves between key groups, source positions between
/// subtasks, and the final output equals the uninterrupted run's (golden) output.
#[test]
fn a_savepoint_taken_at_parallelism_2_resumes_at_3_and_at_1() {
    let cluster = Cluster::start(2, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let wasm = component("stateful");
    let n: u64 = 40_000;
    let job_args = |out: &Path, rate: &str| {
        vec!["--n".to_string(), n.to_string(), "--keys".into(), KEYS.to_string(), "--rate".into(), rate.into(), "--output".into(), out.display().to_string()]
    };
    // The golden output: an uninterrupted run (fast) on the embedded cluster.
    let golden_dir = work.path().join("golden");
    let mut args = vec!["run".to_string(), "--local".into(), "-p".into(), "2".into(), "-c".into(), "totals".into(), wasm.display().to_string()];
    args.extend(job_args(&golden_dir, "10000000"));
    run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let golden = totals_of(&golden_dir);
    assert_eq!(golden, expected_totals(n), "the golden run itself is wrong");

    // Started at parallelism 2, stopped with a savepoint part way.
    let stopped_out = work.path().join("stopped");
    let jar = cluster.upload(&wasm);
    let id = cluster.submit_with(&jar, json!({ "entry": "totals", "args": job_args(&stopped_out, "10000"), "parallelism": 2 }));
    cluster.wait_for(|c| c.job(&id)["records-in"].as_u64().unwrap_or(0) >= n / 4, "progress");
    let savepoints = work.path().join("savepoints");
    let stdout = run_ok(&["stop", "--savepoint", "-m", &cluster.http, &id, savepoints.to_str().unwrap()]);
    let location = stdout.trim().rsplit(' ').next().unwrap().to_string();
    assert!(Path::new(&location).join("_metadata").exists(), "{stdout}");
    let stopped = cluster.wait_status(&id, "FINISHED");
    assert!(stopped["records-in"].as_u64().unwrap() < n, "the job ran to its end before the stop: {stopped}");
    assert!(read_parts(&stopped_out.join("reduce")).is_empty(), "a stopped job must not emit final results");

    for p in ["3", "1"] {
        let out = work.path().join(format!("resumed-p{p}"));
        let mut args = vec!["run".to_string(), "-m".into(), cluster.http.clone(), "-p".into(), p.into(), "-s".into(), location.clone()];
        args.extend(["-c".to_string(), "totals".into(), wasm.display().to_string()]);
        args.extend(job_args(&out, "10000000"));
        run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(totals_of(&out), golden, "resumed at parallelism {p}");
    }

    // What cannot be resumed is refused at submission, with the reason: a
    // directory that holds no savepoint, and a savepoint of another job's operators.
    let err = run_err(&["run", "-m", &cluster.http, "-s", work.path().to_str().unwrap(), "-c", "totals", wasm.to_str().unwrap(), "--output", "x"]);
    assert!(error_line(&err).contains("is not a completed checkpoint or savepoint"), "{err}");
    let err = run_err(&["run", "-m", &cluster.http, "-s", &location, "-c", "sequence-check", wasm.to_str().unwrap(), "--output", "x"]);
    assert!(error_line(&err).contains("has state for operator uid"), "{err}");
}

/// Embedded: word count with checkpoints every 50 ms gives the same counts,
/// and leaves a completed checkpoint that a run can resume from.
#[test]
fn embedded_checkpoints_do_not_change_the_output() {
    let work = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    for i in 0..200_000 {
        text.extend_from_slice(format!("w{} x{}\n", i % 1000, i % 7).as_bytes());
    }
    let input = work.path().join("in.txt");
    std::fs::write(&input, &text).unwrap();
    let out = work.path().join("out");
    let chk = work.path().join("chk");
    let wasm = component("wordcount");
    let output = run(&[
        "run", "--local", "-p", "2", "--checkpoint-interval", "20ms", "--checkpoint-dir", chk.to_str().unwrap(),
        "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(parse_counts(read_parts(&out)), reference_counts(&text));
    assert!(stderr.contains("checkpoints:"), "{stderr}");
}
