//! Shared helpers of the integration tests: the `eddy` binary, the example
//! components (built once per run by `./dev test`), and reference results.
#![allow(dead_code)]

pub mod cluster;
pub mod kafka;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `eddy` binary of this build, with a compile cache shared by the tests.
pub fn eddy() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.env("EDDY_CACHE_DIR", target_dir().join("test-compile-cache"));
    cmd.env_remove("EDDY_LOG");
    cmd
}

pub fn target_dir() -> PathBuf {
    // CARGO_BIN_EXE_eddy is <target>/release/eddy.
    Path::new(env!("CARGO_BIN_EXE_eddy")).parent().unwrap().parent().unwrap().to_path_buf()
}

/// A component built by `./dev build`.
pub fn component(name: &str) -> PathBuf {
    let dir = std::env::var_os("EDDY_COMPONENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wasm32-wasip2/component"));
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    let alt = dir.join(format!("{name}.wasm"));
    if path.exists() {
        path
    } else if alt.exists() {
        alt
    } else {
        panic!("component {} not found in {}: build the components with `./dev build`", name, dir.display())
    }
}

/// Longest run of one `eddy` command in a test: a hung job fails its test
/// instead of stalling the whole suite.
const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

/// Runs eddy with `args`; returns its output whatever the exit status.
pub fn run(args: &[&str]) -> Output {
    use std::process::Stdio;
    let child = eddy().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("eddy runs");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // Kills the process if it outlives the timeout; `wait_with_output` then returns.
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(RUN_TIMEOUT).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().expect("eddy runs");
    let _ = done_tx.send(());
    assert!(!watchdog.join().unwrap(), "eddy {args:?} did not end within {RUN_TIMEOUT:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs eddy and expects success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "eddy {args:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs eddy and expects it to fail with exit code 1 (not a crash);
/// returns stderr.
pub fn run_err(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(1), "eddy {args:?} should fail cleanly; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// The last line of stderr that starts with "error: ".
pub fn error_line(stderr: &str) -> &str {
    stderr.lines().rev().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
}

/// The words of `text` as the SDKs split them, computed independently of Eddy: maximal
/// runs of Unicode alphanumeric characters, lower-cased.
pub fn reference_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() {
            word.push(c);
        } else if !word.is_empty() {
            words.push(word.to_lowercase());
            word.clear();
        }
    }
    words
}

/// Word counts of `reference_words`.
pub fn reference_counts(text: &[u8]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in reference_words(&String::from_utf8_lossy(text)) {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

/// A printed line without the `N> ` prefix that a parallel print sink adds.
pub fn unprefixed(line: &str) -> &str {
    match line.split_once("> ") {
        Some((p, rest)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => line,
    }
}

/// Printed lines, unprefixed and sorted.
pub fn sorted_lines(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out.lines().map(|l| unprefixed(l).to_string()).collect();
    lines.sort();
    lines
}

/// Parses `word count` lines (optionally prefixed by `N> `) into a map,
/// failing on a word seen twice.
pub fn parse_counts(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let line = unprefixed(&line);
        let (word, n) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a `word count` line: {line:?}"));
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("bad count in {line:?}"));
        assert!(counts.insert(word.to_string(), n).is_none(), "word {word:?} reported twice");
    }
    counts
}

/// Reads every committed `part-*` file under `dir` as lines (hidden
/// in-progress files a failed attempt left behind are not output).
pub fn read_parts(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        assert!(name.starts_with("part-") && !name.ends_with(".inprogress"), "unexpected file {name}");
        lines.extend(std::fs::read_to_string(&path).unwrap().lines().map(String::from));
    }
    lines
}

/// Writes `events` Nexmark events of the host's generator at `event_rate` per second of
/// event time into `dir/events.jsonl`, one JSON object a line in event order, as the shared
/// event files are (one subtask makes them all), and returns the file.
pub fn nexmark_events_file(dir: &Path, events: &str, event_rate: &str) -> PathBuf {
    let parts = dir.join("events");
    let wasm = component("nexmark-queries");
    run_ok(&["run", "-p", "1", "-c", "events", wasm.to_str().unwrap(), "--events", events, "--event-rate", event_rate, "--output", parts.to_str().unwrap()]);
    let file = dir.join("events.jsonl");
    std::fs::write(&file, read_parts(&parts).join("\n") + "\n").unwrap();
    file
}

/// Text no one tuned for: every line ending, punctuation, accents (composed
/// and combining), other scripts, digits, blank and very long lines, tabs,
/// a byte-order mark and bytes that are not UTF-8.
pub fn awkward_text() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice("\u{feff}The quick brown fox — jumps over the lazy dog.\r\n".as_bytes());
    t.extend_from_slice(b"\r\n\n   \t \n");
    t.extend_from_slice("Café, CAFÉ, cafe\u{301}; naïve Über-straße ÜBER\rmac line\r".as_bytes());
    t.extend_from_slice("Σίσυφος ΣΊΣΥΦΟΣ 東京 東京都 Москва москва\n".as_bytes());
    t.extend_from_slice(b"don't stop_believing: x2 2x 42 4,2 3.14 e-mail e_mail\n");
    t.extend_from_slice(b"bad bytes \xff\xfe here\xc3 and \x80there\n");
    t.extend_from_slice("emoji 🙂fox🙂 ½ ² Ⅻ İstanbul ǅemal\n".as_bytes());
    let mut long = String::new();
    for i in 0..60_000 {
        long.push_str(["alpha", "Beta", "GAMMA", "delta42"][i % 4]);
        long.push_str([" ", ", ", "--", "\t"][i % 3]);
    }
    t.extend_from_slice(long.as_bytes());
    t.extend_from_slice(b"\n");
    for i in 0..3000 {
        writeln!(t, "line {i} of the fox text: the end? no; THE END!").unwrap();
    }
    t.extend_from_slice(b"no newline at the end");
    t
}

/// 20 000 lines of words with punctuation, mixed case and a non-ASCII word, ending in `\r\n`,
/// written to `dir/input.txt`.
pub fn word_count_input(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut text = Vec::new();
    for i in 0..20_000 {
        text.extend_from_slice(format!("Line {i}: the quick brown fox, the LAZY dog — café {}\r\n", i % 97).as_bytes());
    }
    let input = dir.join("input.txt");
    std::fs::write(&input, &text).unwrap();
    (input, text)
}

/// The committed output of the `sequence-check` job over `n` records and `keys`
/// keys holds every record once: per key the sequence numbers without gap or
/// repeat, and the counts 1..=n once each (no record lost from or counted twice
/// in the state).
pub fn assert_sequences_exactly_once(out: &Path, n: u64, keys: u64) {
    let mut per_key: std::collections::BTreeMap<u64, Vec<(u64, u64, u64)>> = Default::default();
    for line in read_parts(out) {
        let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
        per_key.entry(f[0]).or_default().push((f[1], f[2], f[3]));
    }
    assert_eq!(per_key.len() as u64, keys.min(n));
    for (key, mut records) in per_key {
        let expected_n = (n - key).div_ceil(keys);
        let mut seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..expected_n).collect::<Vec<_>>(), "key {key}: sequence numbers with a gap or a repeat");
        records.sort_by_key(|r| r.1);
        let counts: Vec<u64> = records.iter().map(|r| r.1).collect();
        assert_eq!(counts, (1..=expected_n).collect::<Vec<_>>(), "key {key}: a record lost from or counted twice in the state");
        let sum: u64 = (0..expected_n).map(|s| s * keys + key).sum();
        assert_eq!(records.last().unwrap().2, sum, "key {key}: wrong sum");
    }
}

/// Runs `eddy ARGS` under a pseudo-terminal (util-linux `script`); answers what it drew.
pub fn on_a_terminal(args: &[&str]) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let eddy = env!("CARGO_BIN_EXE_eddy");
    let command = std::iter::once(eddy).chain(args.iter().copied()).map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
    let status = std::process::Command::new("script")
        .args(["-qfec", &command])
        .arg(log.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("script (util-linux) runs");
    assert!(status.success(), "{status:?}");
    String::from_utf8_lossy(&std::fs::read(log.path()).unwrap()).into_owned()
}

/// Runs `entry` of `component` (args `extra`, `--n n`) on a two-TaskManager cluster at
/// parallelism 2, throttled, stops it with a savepoint after a quarter of its records, and
/// resumes it at 3 and at 1: what the stopped run wrote plus what each resumed run wrote
/// must be `expected`, every line once. Its sources' positions and every operator's state
/// (keyed, timers, windows, broadcast) cross the savepoint and are redistributed.
pub fn savepoint_round_trip(component_name: &str, entry: &str, n: u64, extra: &[&str], expected: &[String]) {
    let cluster = cluster::Cluster::start(2, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let args = |out: &Path, rate: &str| {
        let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        args.extend(["--n".to_string(), n.to_string(), "--rate".into(), rate.into(), "--output".into(), out.display().to_string()]);
        args
    };
    let wasm = component(component_name);
    let jar = cluster.upload(&wasm);
    let stopped_out = work.path().join("stopped");
    let id = cluster.submit_with(&jar, serde_json::json!({ "entry": entry, "args": args(&stopped_out, "5000"), "parallelism": 2 }));
    cluster.wait_for(|c| c.job(&id)["records-in"].as_u64().unwrap_or(0) >= n / 4, "progress");
    let savepoints = work.path().join("savepoints");
    let stdout = run_ok(&["stop", "--savepoint", "-m", &cluster.http, &id, savepoints.to_str().unwrap()]);
    let location = stdout.trim().rsplit(' ').next().unwrap().to_string();
    let stopped = cluster.wait_status(&id, "FINISHED");
    assert!(stopped["records-in"].as_u64().unwrap() < n, "{entry}: the job ran to its end before the stop: {stopped}");
    let before = read_parts(&stopped_out);
    for p in ["3", "1"] {
        let out = work.path().join(format!("resumed-p{p}"));
        let mut run = vec!["run".to_string(), "-m".into(), cluster.http.clone(), "-p".into(), p.into(), "-s".into(), location.clone()];
        run.extend(["-c".to_string(), entry.into(), wasm.display().to_string()]);
        run.extend(args(&out, "10000000"));
        run_ok(&run.iter().map(String::as_str).collect::<Vec<_>>());
        let mut all: Vec<String> = before.iter().cloned().chain(read_parts(&out)).collect();
        all.sort();
        assert_eq!(all, expected, "{entry} resumed at parallelism {p} ({} lines before the stop)", before.len());
    }
}
