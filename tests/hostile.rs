//! Hostile and broken components are contained: each fails its job with a
//! one-line error naming the operator and the cause, and the process that
//! runs them stays up for the next job.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    let _alone = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = SandboxConfig { memory_limit_bytes: 64 << 20, call_timeout: Duration::from_secs(1), ..SandboxConfig::default() };
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

/// In-process tests measure this process (its peak memory, its threads): one at a time.
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// Runs `eddy run [flags] -c entry hostile.wasm [args]`, which must succeed; returns stderr.
fn hostile_ok(entry: &str, flags: &[&str], args: &[&str], log: bool) -> String {
    let wasm = component("hostile");
    let mut cmd = eddy();
    cmd.arg("run").args(flags).args(["-c", entry, wasm.to_str().unwrap()]).args(args);
    if log {
        cmd.env("EDDY_LOG", "info");
    }
    let out = cmd.output().expect("eddy runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "eddy run -c {entry} {args:?} failed:\n{stderr}");
    stderr
}

fn hostile_with(entry: &str, flags: &[&str], args: &[&str]) -> String {
    let wasm = component("hostile");
    let mut argv = vec!["run"];
    argv.extend(flags);
    argv.extend(["-c", entry, wasm.to_str().unwrap()]);
    argv.extend(args);
    error_line(&run_err(&argv)).to_string()
}

// Each value state entry is charged key "0".."4" (1 byte), name "v" (1), the stored
// value (8 bytes of expiry + a MessagePack string of B+6 bytes: the 0xc1 marker, then
// str32's marker and length) and 64 bytes of overhead: B + 80 bytes. Four of them make
// exactly 1 MiB.
const ENTRY_VALUE: &str = "262064";

/// A value the host cannot show as JSON (a MessagePack extension type) fails the job at the
/// sink with one line naming it.
#[test]
fn a_value_without_a_json_form_fails_the_job_at_the_sink() {
    let line = hostile_with("ext-value", &[], &[]);
    assert!(
        line.contains("operator 'Print Sink': MessagePack value holds an extension type (marker 0xc7), which has no JSON form"),
        "{line}"
    );
}

#[test]
fn keyed_state_is_bounded_by_the_state_quota() {
    hostile_ok("state-fill", &["--state-quota", "1"], &["--keys", "4", "--bytes", ENTRY_VALUE], false);
    let line = hostile_with("state-fill", &["--state-quota", "1"], &["--keys", "5", "--bytes", ENTRY_VALUE]);
    assert!(
        line.contains(
            "operator 'fill' (subtask 1/1) keyed state quota exceeded: the job keeps 1048576 bytes at most, and this write would make it 1310720"
        ),
        "{line}"
    );
}

/// Built-in aggregates keep a value per key for the job: they count too.
#[test]
fn a_built_in_count_of_many_keys_is_bounded_by_the_state_quota() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let words: Vec<String> = (0..20_000).map(|i| format!("w{i:08}")).collect();
    std::fs::write(&input, words.join(" ")).unwrap();
    let wasm = component("wordcount");
    let run_with = |quota: &str| {
        let out = dir.path().join(format!("out-{quota}"));
        let args = ["run", "--state-quota", quota, "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap()];
        let mut args = args.to_vec();
        args.extend(["--output", out.to_str().unwrap()]);
        run(&args)
    };
    assert!(run_with("64").status.success(), "20 000 keys fit in 64 MiB");
    let out = run_with("1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains("keyed state quota exceeded: the job keeps 1048576 bytes at most, and this write would make it"), "{line}");
}

#[test]
fn timers_are_bounded_per_subtask() {
    hostile_ok("timers", &["--max-timers", "3"], &["--timers", "3"], false);
    let line = hostile_with("timers", &["--max-timers", "3"], &["--timers", "4"]);
    assert!(
        line.contains("operator 'timers' (subtask 1/1) timer quota exceeded: a subtask keeps 3 timers at most, and this registration would make it 4"),
        "{line}"
    );
}

#[test]
fn counters_are_bounded_per_job() {
    hostile_ok("counters", &["--max-counters", "3"], &["--counters", "3"], false);
    let line = hostile_with("counters", &["--max-counters", "3"], &["--counters", "4"]);
    assert!(
        line.contains("operator 'counters' (subtask 1/1) counter quota exceeded: the job keeps 3 counters at most, and a new counter would make it 4"),
        "{line}"
    );
}

#[test]
fn a_log_flood_is_cut_at_the_log_rate_and_the_drops_are_reported() {
    // 1 KiB/s with a burst of one second: four lines of 255 bytes and their newlines.
    let line = "x".repeat(255);
    let logged = |stderr: &str| stderr.lines().filter(|l| l.contains(&line)).count();
    let at_limit = hostile_ok("log-flood", &["--log-rate", "1"], &["--lines", "4"], true);
    assert_eq!(logged(&at_limit), 4, "{at_limit}");
    assert!(!at_limit.contains("dropped"), "{at_limit}");
    for extra in [&[][..], &["--stdout"][..]] {
        let mut args = vec!["--lines", "5"];
        args.extend(extra);
        let past = hostile_ok("log-flood", &["--log-rate", "1"], &args, true);
        assert_eq!(logged(&past), 4, "{past}");
        assert!(past.contains("dropped 1 guest log lines (256 bytes) over its log rate of 1024 bytes/s"), "{past}");
    }
}

#[test]
fn a_guest_sleeping_in_a_wasi_call_hits_the_call_timeout() {
    let started = Instant::now();
    let line = hostile_with("sleep", &["--call-timeout", "1"], &["--secs", "60"]);
    assert!(line.contains("operator 'sleep' (subtask 1/1) did not return within the call timeout of 1s"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A flood of 2 GiB of keyed state (2048 keys × 1 MiB) under a 32 MiB quota
/// fails its job, and the process's peak memory grows by far less than the flood.
#[test]
fn a_state_flood_fails_its_job_before_the_process_runs_out_of_memory() {
    let _alone = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = SandboxConfig { memory_limit_bytes: 64 << 20, state_bytes: Some(32 << 20), ..SandboxConfig::default() };
    let cluster = LocalCluster::new(Runtime::new(sandbox, None).unwrap());
    let hostile = std::fs::read(component("hostile")).unwrap();
    let (modules, plan) = cluster.plan("job.wasm", &hostile, "state-fill", &strings(&["--keys", "2048", "--bytes", "1048576"]), 2).unwrap();
    // Resets the peak (VmHWM) to the present size, so the peak below is this job's.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let err = cluster.execute(&modules, &plan, &JobOptions::default(), None, Arc::new(JobSignals::default())).unwrap_err().to_string();
    assert!(err.contains("keyed state quota exceeded: the job keeps 33554432 bytes at most, and this write would make it"), "{err}");
    // The quota, two instances' linear memory (64 MiB each) and copies of a value in flight.
    let bound_kib = 256 << 10;
    let grown = status_kib("VmHWM:").saturating_sub(before);
    eprintln!("peak memory grew by {grown} KiB during the flood");
    assert!(grown < bound_kib, "peak memory grew by {grown} KiB, more than {bound_kib} KiB");
}

fn task_threads(prefix: &str) -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// A cancel ends a job whose guest sleeps in a WASI call far beyond the call
/// timeout, and leaves none of its task threads behind.
#[test]
fn a_cancelled_job_leaves_no_task_thread_behind() {
    let _alone = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = SandboxConfig { call_timeout: Duration::from_secs(60), ..SandboxConfig::default() };
    let cluster = Arc::new(LocalCluster::new(Runtime::new(sandbox, None).unwrap()));
    let hostile = std::fs::read(component("hostile")).unwrap();
    let (modules, plan) = cluster.plan("job.wasm", &hostile, "sleep", &strings(&["--secs", "600"]), 2).unwrap();
    let options = JobOptions { run_id: "cancel-me".into(), ..JobOptions::default() };
    let prefix = eddy::deploy::task_thread_prefix(&options.run_id);
    let signals = Arc::new(JobSignals::default());
    let job = {
        let (cluster, signals) = (cluster.clone(), signals.clone());
        std::thread::spawn(move || cluster.execute(&modules, &plan, &options, None, signals))
    };
    let started = Instant::now();
    while task_threads(&prefix) < 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "the job's task threads never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let cancelled = Instant::now();
    signals.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = job.join().unwrap();
    assert!(matches!(&result, Err(e) if e.to_string().contains("cancelled")), "{:?}", result.map(|_| ()));
    while task_threads(&prefix) > 0 {
        assert!(cancelled.elapsed() < Duration::from_secs(3), "task threads of the job outlived its cancel");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cancelled.elapsed() < Duration::from_secs(3), "the cancel took {:?}", cancelled.elapsed());
}
