//! Two-input operators and joins end to end (`tests/components/twoinput`): union, connect
//! with a co-map and a keyed co-process, window joins (tumbling, sliding, session; event and
//! processing time), interval joins, late records, broadcast state (keyed and not), and the
//! state of a keyed co-process and of a keyed broadcast process through a savepoint and a rescale. Every expected output is computed here, independently of Eddy.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::cluster::Cluster;
use common::*;
use serde_json::json;

const KEYS: u64 = 5;

fn wasm() -> String {
    component("twoinput").display().to_string()
}

/// The components with the joins, broadcast state and `window_all` entries: Rust's, and
/// their twins in the Python and JavaScript SDKs (`tests/components/guests`).
const LANGUAGES: [&str; 3] = ["twoinput", "twoinput-py", "twoinput-js"];

/// Runs `entry` of `component` at parallelism `p` with `--output out`.
fn run_into_of(component_name: &str, entry: &str, p: &str, out: &Path, extra: &[&str]) {
    let wasm = component(component_name).display().to_string();
    let mut args = vec!["run", "-p", p, "-c", entry, &wasm, "--output", out.to_str().unwrap()];
    args.extend(extra);
    run_ok(&args);
}

/// Runs `entry` and returns the lines it wrote, sorted.
fn run_entry(entry: &str, p: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    run_entry_of("twoinput", entry, p, out, extra)
}

/// Runs `entry` of `component` and returns the lines it wrote, sorted.
fn run_entry_of(component_name: &str, entry: &str, p: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    run_into_of(component_name, entry, p, out, extra);
    sorted(read_parts(out))
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn union_merges_every_stream_and_keys_each_where_it_is() {
    let work = tempfile::tempdir().unwrap();
    let n = 500u64;
    let mut counts = BTreeMap::new();
    for x in 0..3 * n {
        *counts.entry(x % 7).or_insert(0u64) += 1;
    }
    for p in ["1", "2"] {
        let out = work.path().join(format!("p{p}"));
        run_into_of("twoinput", "union", p, &out, &["--n", &n.to_string()]);
        let all: Vec<u64> = read_parts(&out.join("all")).iter().map(|l| l.parse().unwrap()).collect::<Vec<_>>();
        let mut all = all;
        all.sort();
        assert_eq!(all, (0..3 * n).collect::<Vec<_>>(), "p={p}");
        let got: BTreeMap<u64, u64> = read_parts(&out.join("counts"))
            .iter()
            .map(|l| {
                let (k, c) = l.split_once(' ').unwrap();
                (k.parse().unwrap(), c.parse().unwrap())
            })
            .collect();
        assert_eq!(got, counts, "p={p}");
    }
}

#[test]
fn connect_maps_each_input_with_its_own_function() {
    let work = tempfile::tempdir().unwrap();
    let n = 300;
    let expected = sorted((0..n).flat_map(|i| [format!("n{i}"), format!("w{i}")]).collect());
    for p in ["1", "2"] {
        assert_eq!(run_entry("co-map", p, &work.path().join(p), &["--n", &n.to_string()]), expected, "p={p}");
    }
    // The plan shows the second input.
    let info = run_ok(&["info", "-p", "2", "-c", "co-map", &wasm(), "--output", "/tmp/unused"]);
    assert!(info.contains("(second input)"), "{info}");
}

/// `key count_a sum_a count_b sum_b` per key: orders `i` at time `i`, payments `j` at `10 j`.
fn expected_totals(n: u64) -> Vec<String> {
    sorted(
        (0..KEYS)
            .map(|k| {
                let a: Vec<u64> = (0..n).filter(|i| i % KEYS == k).collect();
                let b: Vec<u64> = (0..n / 2).filter(|j| j % KEYS == k).collect();
                format!("{k} {} {} {} {}", a.len(), a.iter().sum::<u64>(), b.len(), b.iter().map(|j| 10 * j).sum::<u64>())
            })
            .collect(),
    )
}

#[test]
fn a_keyed_co_process_shares_state_and_timers_between_its_inputs() {
    let work = tempfile::tempdir().unwrap();
    for p in ["1", "2", "3"] {
        assert_eq!(run_entry("co-process", p, &work.path().join(p), &["--n", "5000"]), expected_totals(5000), "p={p}");
    }
}

/// Every `(i, j)` of `a_i` at `3 i` and `b_j` at `5 j` of one key whose times `pairs` accepts.
fn pairs_where(n: u64, pairs: impl Fn(i64, i64) -> usize) -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..n {
        for j in (0..n).filter(|j| j % KEYS == i % KEYS) {
            for _ in 0..pairs(3 * i as i64, 5 * j as i64) {
                lines.push(format!("{i} {j}"));
            }
        }
    }
    sorted(lines)
}

/// Sessions (gap 12) of one key over both streams' times: which session each time is in.
fn session_of(n: u64, key: u64) -> BTreeMap<i64, usize> {
    let mut times: Vec<i64> = (0..n).filter(|i| i % KEYS == key).flat_map(|i| [3 * i as i64]).collect();
    times.extend((0..n).filter(|j| j % KEYS == key).map(|j| 5 * j as i64));
    times.sort();
    let mut session = BTreeMap::new();
    let (mut s, mut last) = (0, i64::MIN / 2);
    for t in times {
        // Windows [t, t + gap) merge when they overlap or touch, as in Flink.
        if t - last > 12 {
            s += 1;
        }
        session.insert(t, s);
        last = t;
    }
    session
}

#[test]
fn window_joins_pair_the_values_of_one_key_in_one_window() {
    let work = tempfile::tempdir().unwrap();
    let n = 400;
    // Tumbling 50 ms: one window each; sliding 50 ms every 20: every window holding both.
    let tumbling = pairs_where(n, |ta, tb| usize::from(ta / 50 == tb / 50));
    let sliding = pairs_where(n, |ta, tb| {
        let starts = |t: i64| (t - t.rem_euclid(20) - 40..=t - t.rem_euclid(20)).step_by(20).filter(move |s| *s > t - 50);
        starts(ta).filter(|s| starts(tb).any(|u| u == *s)).count()
    });
    let sessions: Vec<_> = (0..KEYS).map(|k| session_of(n, k)).collect();
    let session = {
        let mut lines = Vec::new();
        for i in 0..n {
            for j in (0..n).filter(|j| j % KEYS == i % KEYS) {
                let s = &sessions[(i % KEYS) as usize];
                if s[&(3 * i as i64)] == s[&(5 * j as i64)] {
                    lines.push(format!("{i} {j}"));
                }
            }
        }
        sorted(lines)
    };
    for (window, expected) in [("tumbling", tumbling), ("sliding", sliding), ("session", session)] {
        assert!(!expected.is_empty());
        for language in LANGUAGES {
            for p in ["1", "2"] {
                let out = work.path().join(format!("{language}-{window}-{p}"));
                let got = run_entry_of(language, "window-join", p, &out, &["--n", &n.to_string(), "--window", window]);
                assert_eq!(got.len(), expected.len(), "{language} {window} p={p}");
                assert_eq!(got, expected, "{language} {window} p={p}");
            }
        }
    }
}

#[test]
fn a_processing_time_window_join_pairs_values_of_one_key() {
    let work = tempfile::tempdir().unwrap();
    let n = 200;
    let all = pairs_where(n, |_, _| 1);
    let got = run_entry("window-join", "2", &work.path().join("out"), &["--n", &n.to_string(), "--time", "processing"]);
    // The input takes milliseconds, so its values share one 60 s window of the wall
    // clock, or two when a minute turns meanwhile: then only pairs of one window join.
    let mut seen = std::collections::BTreeSet::new();
    for line in &got {
        assert!(all.binary_search(line).is_ok(), "{line} pairs values of different keys");
        assert!(seen.insert(line), "{line} twice");
    }
    assert!(got.len() == all.len() || got.len() > all.len() / 4, "{} of {} pairs", got.len(), all.len());
}

#[test]
fn interval_joins_pair_values_within_the_bounds() {
    let work = tempfile::tempdir().unwrap();
    let n = 400;
    let expected = pairs_where(n, |ta, tb| usize::from(ta - 7 <= tb && tb <= ta + 11));
    assert!(!expected.is_empty());
    for language in LANGUAGES {
        for p in ["1", "2"] {
            let got = run_entry_of(language, "interval-join", p, &work.path().join(format!("{language}-{p}")), &["--n", &n.to_string()]);
            assert_eq!(got, expected, "{language} p={p}");
        }
    }
}

#[test]
fn late_records_join_nothing() {
    let work = tempfile::tempdir().unwrap();
    // a_0 at 100 pairs with b_1 (95) and b_2 (105) within 10 ms; a_2 at 50 would pair with
    // b_0 (60), but the watermark is at 99 999 when it comes.
    assert_eq!(run_entry("late-interval-join", "1", &work.path().join("interval"), &[]), ["0 1", "0 2"]);
    // In 1 s tumbling windows a_0 pairs with every b; a_2's window fired before it came.
    assert_eq!(run_entry("late-window-join", "1", &work.path().join("window"), &[]), ["0 0", "0 1", "0 2"]);
}

/// What `broadcast-rules` writes: each key's sum and its rule's final multiplier.
fn expected_rules(n: u64) -> Vec<String> {
    let multiplier = ["2", "3", "4", "5", "none"];
    sorted((0..KEYS).map(|k| format!("{k} {} {}", (0..n).filter(|i| i % KEYS == k).sum::<u64>(), multiplier[k as usize])).collect())
}

#[test]
fn broadcast_state_reaches_every_subtask_of_a_keyed_operator() {
    let work = tempfile::tempdir().unwrap();
    for language in LANGUAGES {
        for p in ["1", "2", "3"] {
            let got = run_entry_of(language, "broadcast-rules", p, &work.path().join(format!("{language}-{p}")), &["--n", "5000"]);
            assert_eq!(got, expected_rules(5000), "{language} p={p}");
        }
    }
}

#[test]
fn every_subtask_of_a_broadcast_process_gets_every_rule() {
    let work = tempfile::tempdir().unwrap();
    for language in LANGUAGES {
        for p in [1usize, 2] {
            let mut expected: Vec<String> = (0..1000).map(|x| format!("n{x}")).collect();
            for (i, rule) in ["a", "b", "c"].iter().enumerate() {
                expected.extend(std::iter::repeat_n(format!("rule {rule} {}", i + 1), p));
            }
            let out = work.path().join(format!("{language}-{p}"));
            let lines = run_entry_of(language, "broadcast-copies", &p.to_string(), &out, &["--n", "1000"]);
            assert_eq!(lines, sorted(expected), "{language} p={p}");
        }
    }
}

/// A stop-with-savepoint of a job one of whose pipelines has ended: the savepoint covers the
/// ended tasks by their end snapshots, the job ends, the ended sink commits its last file,
/// and the resumed job writes the rest of the other pipeline and nothing of the ended one.
#[test]
fn a_savepoint_covers_a_pipeline_that_has_ended() {
    let cluster = Cluster::start(1, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let jar = cluster.upload(&component("twoinput"));
    let out = work.path().join("stopped");
    let args = json!(["--n", "20000", "--rate", "2000", "--output", out.display().to_string()]);
    let id = cluster.submit_with(&jar, json!({ "entry": "short-and-long", "args": args, "parallelism": 1 }));
    cluster.wait_for(|c| c.job(&id)["records-in"].as_u64().unwrap_or(0) >= 2000, "progress");
    let savepoints = work.path().join("savepoints");
    let stdout = run_ok(&["stop", "--savepoint", "-m", &cluster.http, &id, savepoints.to_str().unwrap()]);
    let location = stdout.trim().rsplit(' ').next().unwrap().to_string();
    cluster.wait_status(&id, "FINISHED");
    assert_eq!(sorted(read_parts(&out.join("short"))), ["a", "b"], "the ended sink committed its file");
    let before = read_parts(&out.join("long"));
    let resumed = work.path().join("resumed");
    run_ok(&["run", "-m", &cluster.http, "-s", &location, "-c", "short-and-long", &wasm(), "--n", "20000", "--rate", "10000000", "--output", resumed.to_str().unwrap()]);
    assert!(read_parts(&resumed.join("short")).is_empty(), "the ended pipeline does not run again");
    let mut long: Vec<u64> = before.iter().chain(&read_parts(&resumed.join("long"))).map(|l| l.parse().unwrap()).collect();
    long.sort();
    assert_eq!(long, (0..20_000).collect::<Vec<u64>>());
}

/// A keyed co-process: its state (of both inputs, in key groups) and both sources'
/// positions move; its totals come only at the end, so a stopped run writes none.
#[test]
fn a_keyed_co_process_resumes_from_a_savepoint_at_another_parallelism() {
    savepoint_round_trip("twoinput", "co-process", 20_000, &[], &expected_totals(20_000));
}

/// A keyed broadcast process, resumed after its rules source ended: the rules live on only
/// in the restored broadcast state, which every new subtask must get (subtask 2 of 3 the
/// copy of old subtask 0).
#[test]
fn broadcast_state_survives_a_savepoint_and_a_rescale() {
    savepoint_round_trip("twoinput", "broadcast-rules", 20_000, &[], &expected_rules(20_000));
}

/// Window joins (each key's open windows of both sides) and interval joins (each side's
/// values in map state, with their cleanup timers) through a savepoint and a rescale.
#[test]
fn joins_survive_a_savepoint_and_a_rescale() {
    let n = 8_000;
    let tumbling = pairs_where(n, |ta, tb| usize::from(ta / 50 == tb / 50));
    savepoint_round_trip("twoinput", "window-join", n, &["--window", "tumbling"], &tumbling);
    let interval = pairs_where(n, |ta, tb| usize::from(ta - 7 <= tb && tb <= ta + 11));
    savepoint_round_trip("twoinput", "interval-join", n, &[], &interval);
}
