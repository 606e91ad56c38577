//! The SDK's operators end to end on the embedded cluster: elements and
//! generated sources, map/filter, keyed state (value, list, map), reduce,
//! the built-in aggregates, and planner options (parallelism, slot groups).
//! Expected outputs are computed here, independently of Eddy.

mod common;

use std::collections::BTreeMap;

use common::*;

fn features(entry: &str, extra: &[&str], job_args: &[&str]) -> String {
    let wasm = component("features");
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend(["-c", entry, wasm.to_str().unwrap()]);
    args.extend_from_slice(job_args);
    run_ok(&args)
}

/// The records of the `features` component's keyed entries.
fn pairs() -> Vec<(String, i64)> {
    let keys = ["apple", "banana", "cherry"];
    (0..20i64).map(|i| (keys[(i * 7 % 3) as usize].to_string(), (i * 5 % 7) - 2)).collect()
}

#[test]
fn elements_and_map() {
    assert_eq!(features("elements", &[], &[]), "ALPHA\nBETA\nGAMMA\nDÉLTA\n");
}

#[test]
fn generate_filter_map_at_parallelism_1_and_2() {
    assert_eq!(features("generate", &[], &["--n", "10"]), "0\n4\n16\n36\n64\n");
    let out = features("generate", &["-p", "2"], &["--n", "1000"]);
    let mut got: Vec<u64> = out.lines().map(|l| unprefixed(l).parse().unwrap()).collect();
    got.sort();
    let want: Vec<u64> = (0..1000).filter(|x| x % 2 == 0).map(|x| x * x).collect();
    assert_eq!(got, want);
    assert!(out.lines().all(|l| l.starts_with("1> ") || l.starts_with("2> ")), "print at p=2 prefixes subtasks");
}

#[test]
fn keyed_value_list_and_map_state() {
    let mut total: BTreeMap<String, i64> = BTreeMap::new();
    let mut history: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut seen: BTreeMap<String, BTreeMap<i64, u32>> = BTreeMap::new();
    let mut want = Vec::new();
    for (k, a) in pairs() {
        let t = total.entry(k.clone()).or_default();
        *t += a;
        let h = history.entry(k.clone()).or_default();
        h.push(a);
        *seen.entry(k.clone()).or_default().entry(a).or_default() += 1;
        want.push(format!("{k} total={t} history={h:?} distinct={}", seen[&k].len()));
    }
    let out = features("keyed-state", &[], &[]);
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    // At parallelism 2 the keys are split between subtasks; each key's updates keep their order.
    let out = features("keyed-state", &["-p", "2"], &[]);
    for key in ["apple", "banana", "cherry"] {
        let got: Vec<&str> = out.lines().map(unprefixed).filter(|l| l.starts_with(key)).collect();
        let exp: Vec<&str> = want.iter().map(String::as_str).filter(|l| l.starts_with(key)).collect();
        assert_eq!(got, exp, "key {key}");
    }
}

#[test]
fn reduce_in_a_bounded_job_emits_final_results() {
    let mut sums: Vec<(String, i64)> = Vec::new();
    for (k, a) in pairs() {
        match sums.iter_mut().find(|(key, _)| *key == k) {
            Some((_, s)) => *s += a,
            None => sums.push((k, a)),
        }
    }
    let want: Vec<String> = sums.iter().map(|(k, s)| format!("{k} {s}")).collect();
    assert_eq!(features("reduce", &[], &[]).lines().collect::<Vec<_>>(), want);
}

#[test]
fn built_in_min_max_count() {
    let mut by_key: Vec<(String, Vec<i64>)> = Vec::new();
    for (k, a) in pairs() {
        match by_key.iter_mut().find(|(key, _)| *key == k) {
            Some((_, v)) => v.push(a),
            None => by_key.push((k, vec![a])),
        }
    }
    let lines = |f: &dyn Fn(&str, &[i64]) -> String| by_key.iter().map(|(k, v)| f(k, v)).collect::<Vec<_>>();
    let min = lines(&|k, v| format!("[\"{k}\",{}]", v.iter().min().unwrap()));
    let max = lines(&|k, v| format!("[\"{k}\",{}]", v.iter().max().unwrap()));
    let count = lines(&|k, v| format!("{k} {}", v.len()));
    assert_eq!(features("min", &[], &[]).lines().collect::<Vec<_>>(), min);
    assert_eq!(features("max", &[], &[]).lines().collect::<Vec<_>>(), max);
    assert_eq!(features("count", &[], &[]).lines().collect::<Vec<_>>(), count);
    // At parallelism 2 partial counts are combined before the exchange, then merged.
    let mut got: Vec<String> = features("count", &["-p", "2"], &[]).lines().map(|l| unprefixed(l).to_string()).collect();
    got.sort();
    let mut want = count.clone();
    want.sort();
    assert_eq!(got, want);
    let err = run_err(&["run", "-c", "min-max-count", component("features").to_str().unwrap(), "--agg", "median"]);
    assert_eq!(error_line(&err), "error: planning entry 'min-max-count' failed: unknown --agg 'median'; expected min, max or count");
}

#[test]
fn parallelism_rebalance_and_slot_groups() {
    let mut got: Vec<String> = features("parallel", &["-p", "1"], &[]).lines().map(String::from).collect();
    got.sort();
    let mut want: Vec<String> = (0..1000).map(|i| format!("n={}", i * 2)).collect();
    want.sort();
    assert_eq!(got, want, "the job's own parallelism (3) wins over -p; print at 1 has no prefix");

    let info = run_ok(&["info", "-c", "parallel", component("features").to_str().unwrap()]);
    assert!(info.starts_with("job 'parallel features' (bounded), max parallelism 64\n"), "{info}");
    assert!(info.contains("double") && info.contains("p=2"), "{info}");
    assert!(info.contains("group=other"), "{info}");
    // Default group: widest chain has 3 subtasks; group "other": 2 slots.
    assert!(info.contains("slots: 5\n"), "{info}");
    assert!(info.contains("slot 3 (other)") && info.contains("slot 4 (other)"), "{info}");
}

#[test]
fn entries_lists_every_entry() {
    let out = run_ok(&["entries", component("features").to_str().unwrap()]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["elements", "generate", "keyed-state", "reduce", "min-max-count", "min", "max", "count", "parallel", "slow"]
    );
}

#[test]
fn guest_logs_and_counters_reach_the_host() {
    let out = eddy()
        .env("EDDY_LOG", "eddy::guest=info")
        .args(["run", "-c", "log-and-count", component("hostile").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("guest stdout line"), "guest stdout is captured into the log: {stderr}");
    assert!(stderr.contains("counter seen = 3"), "{stderr}");
}

/// Keyed timers in both time domains and state time-to-live, with the
/// in-memory and the on-disk (redb) state backend alike.
#[test]
fn timers_and_state_ttl_on_both_backends() {
    let wasm = component("stateful");
    let dir = tempfile::tempdir().unwrap();
    let disk = format!("disk:{}", dir.path().display());
    for backend in ["memory", disk.as_str()] {
        let out = run_ok(&["run", "--local", "--state-backend", backend, "-c", "timers", wasm.to_str().unwrap(), "--n", "21", "--rate", "10"]);
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        let mut expected: Vec<String> = Vec::new();
        for k in 0..3 {
            expected.push(format!("event {k} 1000 count=7"));
            expected.extend((0..6).map(|_| format!("expired {k}")));
            expected.push(format!("processing {k}"));
        }
        expected.sort();
        assert_eq!(lines, expected, "state backend {backend}");
    }
}
