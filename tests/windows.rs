//! Event-time windows end to end on the embedded cluster: timestamps and watermarks
//! assigned at the source, tumbling, sliding and session windows with built-in and Wasm
//! window functions, allowed lateness and the late side output. The expected firings are
//! computed here by a direct simulation of the semantics, independently of Eddy.

mod common;

use std::collections::BTreeMap;

use common::*;

include!("components/windows/events.rs");
const OUT_OF_ORDERNESS: i64 = 3;
const LATENESS: i64 = 5;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Tumbling,
    Sliding,
    Session,
}

/// The simulation: one pane per (key, window) with its values; a pane fires when the
/// watermark reaches `end - 1`, again for each record it takes after that, and is dropped
/// once the watermark reaches `end - 1 + lateness`. Records no pane takes are late.
struct Sim {
    kind: Kind,
    function: &'static str,
    watermark: i64,
    panes: BTreeMap<(String, i64, i64), Vec<i64>>,
    lines: Vec<String>,
}

impl Sim {
    fn line(&self, key: &str, start: i64, end: i64) -> String {
        let ns = &self.panes[&(key.to_string(), start, end)];
        match self.function {
            "count" => format!("count {key} end={end} n={}", ns.len()),
            "process" => {
                let mut sorted = ns.clone();
                sorted.sort();
                format!("process {key} {start}..{end} {sorted:?}")
            }
            f => format!("{f} {key} end={end} n={}", ns.iter().sum::<i64>()),
        }
    }

    fn windows(&self, ts: i64) -> Vec<(i64, i64)> {
        match self.kind {
            Kind::Tumbling => vec![(ts - ts.rem_euclid(10), ts - ts.rem_euclid(10) + 10)],
            Kind::Sliding => (0..2).map(|i| ts - ts.rem_euclid(5) - 5 * i).map(|s| (s, s + 10)).collect(),
            Kind::Session => vec![(ts, ts + 4)],
        }
    }

    fn late(&self, end: i64) -> bool {
        end - 1 + LATENESS <= self.watermark
    }

    fn record(&mut self, key: &str, ts: i64, n: i64) {
        let mut taken = false;
        for (mut start, mut end) in self.windows(ts) {
            if self.kind == Kind::Session {
                let touching: Vec<_> = self
                    .panes
                    .keys()
                    .filter(|(k, s, e)| k == key && *s <= end && *e >= start)
                    .cloned()
                    .collect();
                let mut values = Vec::new();
                for p in touching {
                    start = start.min(p.1);
                    end = end.max(p.2);
                    values.extend(self.panes.remove(&p).unwrap());
                }
                if !values.is_empty() {
                    self.panes.insert((key.to_string(), start, end), values);
                }
            }
            if self.late(end) {
                continue;
            }
            self.panes.entry((key.to_string(), start, end)).or_default().push(n);
            taken = true;
            if end - 1 <= self.watermark {
                self.lines.push(self.line(key, start, end));
            }
        }
        if !taken {
            self.lines.push(format!("late {key} {ts} {n}"));
        }
    }

    fn advance(&mut self, watermark: i64) {
        if watermark <= self.watermark {
            return;
        }
        let due: Vec<_> =
            self.panes.keys().filter(|(_, _, e)| e - 1 > self.watermark && e - 1 <= watermark).cloned().collect();
        for (k, s, e) in due {
            self.lines.push(self.line(&k, s, e));
        }
        self.watermark = watermark;
        self.panes.retain(|(_, _, e), _| e - 1 + LATENESS > watermark);
    }
}

fn expected(kind: Kind, function: &'static str) -> Vec<String> {
    simulate(kind, function, |key| key)
}

/// The simulation with every event's key mapped by `key`.
fn simulate(kind: Kind, function: &'static str, key: impl Fn(&'static str) -> &'static str) -> Vec<String> {
    let mut sim = Sim { kind, function, watermark: i64::MIN, panes: BTreeMap::new(), lines: Vec::new() };
    let mut max_ts = i64::MIN;
    for &(k, ts, n) in EVENTS {
        sim.record(key(k), ts, n);
        max_ts = max_ts.max(ts);
        sim.advance(max_ts - OUT_OF_ORDERNESS - 1);
    }
    sim.advance(i64::MAX);
    let mut lines = sim.lines;
    lines.sort();
    lines
}

fn run_windows(window: &str, function: &str, parallelism: &str) -> Vec<String> {
    let wasm = component("windows");
    let out = run_ok(&["run", "--local", "-p", parallelism, "-c", "windows", wasm.to_str().unwrap(), "--window", window, "--fn", function]);
    sorted_lines(&out)
}

fn check(window: &str, kind: Kind) {
    for function in ["count", "sum", "reduce", "process"] {
        let want = expected(kind, function);
        for p in ["1", "2"] {
            assert_eq!(run_windows(window, function, p), want, "{window} windows, {function}, parallelism {p}");
        }
    }
}

#[test]
fn tumbling_windows() {
    check("tumbling", Kind::Tumbling);
}

#[test]
fn sliding_windows() {
    check("sliding", Kind::Sliding);
}

#[test]
fn session_windows() {
    check("session", Kind::Session);
}

#[test]
fn the_data_exercises_lateness() {
    // Guards the data set itself: some records are late beyond the allowed lateness, and
    // some late records within it fire their window again.
    let lines = expected(Kind::Tumbling, "count");
    assert!(lines.iter().filter(|l| l.starts_with("late ")).count() >= 2, "{lines:?}");
    let firings = lines.iter().filter(|l| !l.starts_with("late "));
    let mut per_window: BTreeMap<String, usize> = BTreeMap::new();
    for l in firings {
        *per_window.entry(l.rsplit_once(' ').unwrap().0.to_string()).or_default() += 1;
    }
    assert!(per_window.values().any(|&n| n > 1), "some window fires again: {per_window:?}");
}

#[test]
fn processing_time_windows_count_every_record_once() {
    let lines = run_windows("processing", "count", "2");
    let mut per_key: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        let mut parts = l.split(' ');
        assert_eq!(parts.next(), Some("count"), "no late records in processing time: {l}");
        let key = parts.next().unwrap().to_string();
        let n: u64 = parts.nth(1).unwrap().strip_prefix("n=").unwrap().parse().unwrap();
        *per_key.entry(key).or_default() += n;
    }
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (k, _, _) in EVENTS {
        *want.entry(k.to_string()).or_default() += 1;
    }
    assert_eq!(per_key, want);
}

/// What `window-all` prints, computed from its definition: every window of `kind` that holds
/// some of the values `0..n` at `time(i)`.
fn expected_all(kind: Kind, size: i64, function: &str, n: u64) -> Vec<String> {
    let time = |i: u64| (i + 10 * (i / 100)) as i64;
    let mut windows: BTreeMap<(i64, i64), Vec<u64>> = BTreeMap::new();
    for i in 0..n {
        let t = time(i);
        match kind {
            Kind::Tumbling => windows.entry((t - t % size, t - t % size + size)).or_default().push(i),
            Kind::Sliding => {
                let mut start = t - t % 20;
                while start > t - size {
                    windows.entry((start, start + size)).or_default().push(i);
                    start -= 20;
                }
            }
            // Runs of 100 values 1 ms apart, 11 ms between runs: one session per run.
            Kind::Session => windows.entry((time(i / 100 * 100), time(i / 100 * 100 + 99) + 5)).or_default().push(i),
        }
    }
    let mut lines: Vec<String> = windows
        .into_iter()
        .map(|((start, end), values)| match function {
            "count" => format!("count end={end} {}", values.len()),
            "process" => format!("process {start}..{end} {} {}", values.len(), values.iter().max().unwrap()),
            f => format!("{f} end={end} {}", values.iter().sum::<u64>()),
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn windows_over_a_whole_stream() {
    let wasm = component("windows");
    let n = 2000u64;
    let windows = [("tumbling", Kind::Tumbling, 50), ("sliding", Kind::Sliding, 60), ("sliding-uneven", Kind::Sliding, 50), ("session", Kind::Session, 0)];
    // Rust's, and its twins in the Python and JavaScript SDKs (tests/components/guests).
    let languages = [wasm, component("twoinput-py"), component("twoinput-js")];
    for (window, kind, size) in windows {
        for function in ["count", "sum", "reduce", "process"] {
            for wasm in &languages {
                for p in ["1", "2"] {
                    let args = ["run", "--local", "-p", p, "-c", "window-all", wasm.to_str().unwrap(), "--n", "2000", "--window", window, "--fn", function];
                    let want = expected_all(kind, size, function, n);
                    assert_eq!(sorted_lines(&run_ok(&args)), want, "{} {window} windows, {function}, parallelism {p}", wasm.display());
                }
            }
        }
    }
    let args = ["run", "--local", "-p", "2", "-c", "window-all", languages[0].to_str().unwrap(), "--n", "2000", "--window", "processing"];
    let total: u64 = sorted_lines(&run_ok(&args)).iter().map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(total, n, "processing-time windows count every value once");
}

/// `window_all` with allowed lateness over the out-of-order events: every record in one
/// window per time whatever its key, late records within the lateness firing their window
/// again, later ones dropped (`window_all` has no late side output).
#[test]
fn windows_over_a_whole_stream_take_late_records_as_keyed_windows_do() {
    let wasm = component("windows");
    for (window, kind) in [("tumbling", Kind::Tumbling), ("sliding", Kind::Sliding), ("session", Kind::Session)] {
        for function in ["count", "sum", "reduce", "process"] {
            let mut want = simulate(kind, function, |_| "all");
            want.retain(|l| !l.starts_with("late "));
            assert!(want.len() > 2);
            for p in ["1", "2"] {
                let out = run_ok(&["run", "--local", "-p", p, "-c", "windows", wasm.to_str().unwrap(), "--all", "--window", window, "--fn", function]);
                assert_eq!(sorted_lines(&out), want, "{window} windows over all, {function}, parallelism {p}");
            }
        }
    }
    let late: Vec<String> = simulate(Kind::Tumbling, "count", |_| "all").into_iter().filter(|l| l.starts_with("late ")).collect();
    assert!(!late.is_empty(), "the data has records later than the lateness");
}

/// Windows over a whole stream through a savepoint and a rescale: the partial windows
/// (keyed by spread key, in key groups) and the merging window of one subtask, and a
/// window of one subtask with no pre-aggregation.
#[test]
fn windows_over_a_whole_stream_survive_a_savepoint_and_a_rescale() {
    let n = 20_000;
    for (window, kind, size, function) in [("tumbling", Kind::Tumbling, 50, "count"), ("sliding", Kind::Sliding, 60, "process")] {
        let args = ["--window", window, "--fn", function];
        common::savepoint_round_trip("windows", "window-all", n, &args, &expected_all(kind, size, function, n));
    }
}

#[test]
fn an_unknown_window_is_a_planning_error() {
    let wasm = component("windows");
    let err = run_err(&["run", "-c", "windows", wasm.to_str().unwrap(), "--window", "nope"]);
    assert_eq!(error_line(&err), "error: planning entry 'windows' failed: unknown --window 'nope'");
}
