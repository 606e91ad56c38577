//! Nexmark: the host's generator and the queries of `examples/nexmark`, each checked
//! against an independent evaluation of the reference SQL (`tests/nexmark/reference.py`)
//! on a fixed set of events, on the embedded cluster and on a cluster of processes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cluster::Cluster;
use common::*;

/// The fixed event set: 20 000 events at 1 000 per second of event time, so that they
/// span 20 s and the queries' 10 s windows, slides and session gaps all come into play.
const EVENTS: &str = "20000";
const EVENT_RATE: &str = "1000";

const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11"];

fn wasm() -> String {
    component("nexmark-queries").to_str().unwrap().to_string()
}

/// Runs `reference.py` for `query` over `events` against Eddy's rows under `out`;
/// returns how many rows matched, failing the test on any difference.
fn check(query: &str, events: &Path, out: &Path) -> u64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/nexmark/reference.py");
    let result = Command::new("python3").arg(script).args([query, events.to_str().unwrap(), out.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{query} differs from the reference:\n{}", String::from_utf8_lossy(&result.stderr));
    stdout.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{stdout}"))
}

/// The fixed event set as a JSON-lines file in `dir`.
fn fixed_events(dir: &Path) -> PathBuf {
    nexmark_events_file(dir, EVENTS, EVENT_RATE)
}

#[test]
fn the_generator_follows_the_reference_proportions_in_any_parallelism() {
    let work = tempfile::tempdir().unwrap();
    let events = fixed_events(work.path());
    let text = std::fs::read_to_string(&events).unwrap();
    let mut kinds = [0u64; 3];
    let mut first_ids = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        kinds[v["event_type"].as_u64().unwrap() as usize] += 1;
        if let Some(id) = v["person"]["id"].as_u64() {
            first_ids.insert(id);
        }
    }
    // Per 50 events 1 person, 3 auctions and 46 bids; person ids from 1000, each once.
    assert_eq!(kinds, [400, 1200, 18400]);
    assert_eq!(first_ids.len(), 400);
    assert_eq!((first_ids.first(), first_ids.last()), (Some(&1000), Some(&1399)));
    // The same events whatever the parallelism.
    let three = work.path().join("p3");
    run_ok(&["run", "-p", "3", "-c", "events", &wasm(), "--events", EVENTS, "--event-rate", EVENT_RATE, "--output", three.to_str().unwrap()]);
    assert_eq!(sorted_lines(&read_parts(&three).join("\n")), sorted_lines(&text));
}

/// Values travel as MessagePack (the Rust SDK's default) at p=1 and p=2, and as JSON
/// (`--codec json`) at p=2: both give the reference's rows.
#[test]
fn every_query_gives_the_references_rows_from_the_generator_and_from_a_file() {
    let work = tempfile::tempdir().unwrap();
    let events = fixed_events(work.path());
    for query in QUERIES {
        let mut rows = Vec::new();
        for (p, codec) in [("1", "msgpack"), ("2", "msgpack"), ("2", "json")] {
            let out = work.path().join(format!("{query}-p{p}-{codec}"));
            let mut args = vec!["run", "-p", p, "-c", query];
            let wasm = wasm();
            args.push(&wasm);
            args.extend(["--events", EVENTS, "--event-rate", EVENT_RATE, "--codec", codec, "--output", out.to_str().unwrap()]);
            run_ok(&args);
            rows.push(check(query, &events, &out));
        }
        let out = work.path().join(format!("{query}-file"));
        run_ok(&["run", "-p", "2", "-c", query, &wasm(), "--input", events.to_str().unwrap(), "--output", out.to_str().unwrap()]);
        rows.push(check(query, &events, &out));
        assert!(rows[0] > 0, "{query} has no rows on the fixed events: the check would say nothing");
        assert!(rows[..3].iter().all(|&n| n == rows[0]), "{query}: {rows:?}");
        eprintln!("{query}: {rows:?} rows (generator p=1, p=2, p=2 in JSON; file p=2)");
    }
}

/// q0-q3 written in Python and JavaScript (q3 there joins two connected streams) give the
/// same rows as the reference, from the generator and from the events' file
/// (`read_nexmark_file`, `readNexmarkFile`).
#[test]
fn python_and_javascript_queries_give_the_references_rows() {
    let work = tempfile::tempdir().unwrap();
    let events = fixed_events(work.path());
    for language in ["py", "js"] {
        let wasm = component(&format!("nexmark_{language}")).display().to_string();
        for query in ["q0", "q1", "q2", "q3"] {
            let out = work.path().join(format!("{query}-{language}"));
            run_ok(&["run", "-p", "2", "-c", query, &wasm, "--events", EVENTS, "--event-rate", EVENT_RATE, "--output", out.to_str().unwrap()]);
            let rows = check(query, &events, &out);
            assert!(rows > 0, "{query} in {language}");
            let out = work.path().join(format!("{query}-{language}-file"));
            run_ok(&["run", "-p", "2", "-c", query, &wasm, "--input", events.to_str().unwrap(), "--output", out.to_str().unwrap()]);
            assert_eq!(check(query, &events, &out), rows, "{query} in {language} from the file");
        }
    }
}

#[test]
fn queries_on_a_cluster_of_processes_give_the_references_rows() {
    let work = tempfile::tempdir().unwrap();
    let events = fixed_events(work.path());
    let cluster = Cluster::start(2, 2, &[]);
    for query in ["q3", "q4", "q5", "q8", "q11"] {
        let out = work.path().join(format!("{query}-cluster"));
        run_ok(&[
            "run", "-m", &cluster.http, "-p", "3", "-c", query, &wasm(),
            "--events", EVENTS, "--event-rate", EVENT_RATE, "--output", out.to_str().unwrap(),
        ]);
        assert!(check(query, &events, &out) > 0);
    }
}

#[test]
fn q12_counts_every_bid_in_processing_time_windows() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("q12");
    run_ok(&["run", "-p", "2", "-c", "q12", &wasm(), "--events", EVENTS, "--output", out.to_str().unwrap()]);
    let rows = read_parts(&out);
    let mut bids = 0;
    for row in &rows {
        let v: serde_json::Value = serde_json::from_str(row).unwrap();
        bids += v["bid_count"].as_u64().unwrap();
        let (start, end) = (v["starttime"].as_str().unwrap(), v["endtime"].as_str().unwrap());
        assert!(start < end && start.ends_with("0.000") && end.ends_with("0.000"), "{row}");
    }
    // The input ends within a window or two of processing time: every bid is counted once.
    assert_eq!(bids, 18_400, "{rows:?}");
}

#[test]
fn bad_nexmark_input_gets_one_line_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"event_type\":2,\"person\":null}\n").unwrap();
    let err = run_err(&["run", "-c", "q0", &wasm(), "--input", bad.to_str().unwrap()]);
    assert!(error_line(&err).contains("not a Nexmark event (no \"dateTime\"): {\"event_type\":2"), "{err}");
    let err = run_err(&["run", "-c", "q0", &wasm(), "--event-rate", "0"]);
    assert!(error_line(&err).contains("nexmark source 'Nexmark Source' needs an event rate between 1 and 1000000000"), "{err}");
    let err = run_err(&["run", "-c", "q0", &wasm(), "--events", "many"]);
    assert!(error_line(&err).contains("events"), "{err}");
    // A line without a time, not UTF-8, or not JSON is refused by the source (which reads
    // each event's time and makes the line MessagePack, the job's codec); one that is not
    // an event by the operator that decodes it.
    std::fs::write(&bad, b"\n{\"dateTime\":\"2026-01-01 00:00:00.000\",\xc1}\n").unwrap();
    let err = run_err(&["run", "-c", "q0", &wasm(), "--input", bad.to_str().unwrap()]);
    assert!(error_line(&err).ends_with("bad.jsonl at byte 1: a line is not UTF-8 text (invalid byte at 38 of it)"), "{err}");
    std::fs::write(&bad, "{\"event_type\":2,\"bid\":{\"dateTime\":\"2026-01-01 00:00:00.000\"}}\n{\"event_type\":2 \"bid\":{\"dateTime\":\"2026-01-01 00:00:00.000\"}}\n").unwrap();
    let err = run_err(&["run", "-c", "q0", &wasm(), "--input", bad.to_str().unwrap()]);
    assert!(error_line(&err).ends_with("bad.jsonl at byte 62: a line is not JSON: expected ',' or '}' at byte 16 of it"), "{err}");
    std::fs::write(&bad, "{\"event_type\":2,\"bid\":{\"dateTime\":\"2026-01-01 00:00:00.000\"}}\n").unwrap();
    let err = run_err(&["run", "-c", "q0", &wasm(), "--input", bad.to_str().unwrap()]);
    // q0 reads a bid's fields but its channel and URL (a projection of the event type).
    let projected = "eddy_sdk::nexmark::Event<eddy_sdk::nexmark::Skip, eddy_sdk::nexmark::Skip, nexmark_queries::BidRow>";
    assert!(error_line(&err).contains(&format!("cannot decode {projected} from \"{{\\\"event_type\\\":2")), "{err}");
    assert!(error_line(&err).contains("missing field `auction`"), "{err}");
    let err = run_err(&["run", "-c", "q0", &wasm(), "--codec", "xml"]);
    assert!(error_line(&err).contains("--codec must be json or msgpack, not 'xml'"), "{err}");
}
