//! Word count written in Python and in JavaScript (`examples/python`, `examples/js`),
//! built from source by `./dev test`, against the Rust example: the same plans, and
//! exactly the same counts on the same files, at parallelism 1 and 2, on the embedded
//! cluster and on a cluster of processes.

mod common;

use std::path::Path;

use common::cluster::Cluster;
use common::*;

/// The word counts in other languages; each must behave exactly as `wordcount`.
const OTHERS: [&str; 2] = ["wordcount-py", "wordcount-js"];

/// Inputs: the awkward text (every line ending, Unicode, bad bytes, long lines), the
/// example's sample, and ~1 MB of pseudo-random words.
fn inputs(dir: &Path) -> Vec<String> {
    let awkward = awkward_input(dir);
    let random = dir.join("random.txt");
    let syllables = ["ka", "Lo", "mi", "NE", "su", "tä", "ri", "pö", "de", "ğa", "ve", "zu", "42", "7"];
    let mut text = String::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while text.len() < 1 << 20 {
        for _ in 0..12 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for s in 0..1 + x % 3 {
                text.push_str(syllables[((x >> (8 * s)) % syllables.len() as u64) as usize]);
            }
            text.push_str([" ", ", ", " - ", "; "][(x >> 40) as usize % 4]);
        }
        text.push('\n');
    }
    std::fs::write(&random, text).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wordcount/sample.txt");
    vec![awkward, random.display().to_string(), sample.display().to_string()]
}

/// The awkward text, written into `dir`.
fn awkward_input(dir: &Path) -> String {
    let awkward = dir.join("awkward.txt");
    std::fs::write(&awkward, awkward_text()).unwrap();
    awkward.display().to_string()
}

fn counts(name: &str, p: &str, input: &str) -> std::collections::BTreeMap<String, u64> {
    let wasm = component(name);
    let out = run_ok(&["run", "-p", p, "-c", "word-count", wasm.to_str().unwrap(), "--input", input]);
    parse_counts(out.lines().map(String::from))
}

#[test]
fn python_and_javascript_plan_the_same_jobs_as_rust() {
    for entry in [&["word-count", "--input", "x.txt"][..], &["stream-word-count", "--port", "7777"]] {
        let plan = |name: &str| {
            let wasm = component(name);
            let mut args = vec!["info", "-p", "2", "-c", entry[0], wasm.to_str().unwrap()];
            args.extend_from_slice(&entry[1..]);
            run_ok(&args)
        };
        let rust = plan("wordcount");
        for other in OTHERS {
            assert_eq!(plan(other), rust, "{other}: the plan of {} differs from Rust's", entry[0]);
        }
    }
}

#[test]
fn python_and_javascript_word_counts_equal_rust_on_the_embedded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    for input in inputs(dir.path()) {
        for p in ["1", "2"] {
            let rust = counts("wordcount", p, &input);
            assert!(rust.len() > 10, "{input}: too few words to compare");
            for other in OTHERS {
                assert_eq!(counts(other, p, &input), rust, "{other} at p={p} on {input}");
            }
        }
    }
    // With --output, part files in the output directory.
    let input = &awkward_input(dir.path());
    let want = counts("wordcount", "1", input);
    for other in OTHERS {
        let out = dir.path().join(format!("out-{other}"));
        let wasm = component(other);
        run_ok(&["run", "-p", "2", "-c", "word-count", wasm.to_str().unwrap(), "--input", input, "--output", out.to_str().unwrap()]);
        assert_eq!(parse_counts(read_parts(&out)), want, "{other} --output");
    }
}

#[test]
fn python_and_javascript_word_counts_equal_rust_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let input = &awkward_input(dir.path());
    let want = counts("wordcount", "1", input);
    let cluster = Cluster::start(2, 2, &[]);
    for other in OTHERS {
        for p in ["1", "2"] {
            let out = dir.path().join(format!("{other}-{p}"));
            let wasm = component(other);
            run_ok(&[
                "run", "-m", &cluster.http, "-p", p, "-c", "word-count", wasm.to_str().unwrap(),
                "--input", input, "--output", out.to_str().unwrap(),
            ]);
            assert_eq!(parse_counts(read_parts(&out)), want, "{other} at p={p} on the cluster");
        }
    }
}

/// `examples/python/features.py`: keyed value and map state, event-time timers, a built-in
/// window count and a window process function, over six events (checked by hand).
const PYTHON_FEATURES: &str = "\
count alice [0,5000) 2
count alice [5000,10000) 1
count bob [0,5000) 1
count bob [5000,10000) 1
count carol [10000,15000) 1
event alice #1 at 1000
event alice #2 at 2500
event alice #3 at 7000
event bob #1 at 1500
event bob #2 at 6000
event carol #1 at 12000
timer alice [0,5000) sum=4
timer alice [5000,10000) sum=5
timer bob [0,5000) sum=2
timer bob [5000,10000) sum=4
timer carol [10000,15000) sum=6
window alice [0,5000) amounts=[1, 3]
window alice [5000,10000) amounts=[5]
window bob [0,5000) amounts=[2]
window bob [5000,10000) amounts=[4]
window carol [10000,15000) amounts=[6]";

/// `examples/js/features.js`: the same kinds of state, timers and windows, over seven events
/// in 10 ms windows (checked by hand).
const JS_FEATURES: &str = "\
count: alice 1 in the window ending 1020
count: alice 1 in the window ending 1030
count: alice 2 in the window ending 1010
count: bob 1 in the window ending 1010
count: bob 1 in the window ending 1020
count: carol 1 in the window ending 1020
state: alice event #1 amount 3
state: alice event #2 amount 4
state: alice event #3 amount 2
state: alice event #4 amount 1
state: bob event #1 amount 5
state: bob event #2 amount 1
state: carol event #1 amount 7
timer: alice [1000, 1010) sum 7 at 1009
timer: alice [1010, 1020) sum 2 at 1019
timer: alice [1020, 1030) sum 1 at 1029
timer: bob [1000, 1010) sum 5 at 1009
timer: bob [1010, 1020) sum 1 at 1019
timer: carol [1010, 1020) sum 7 at 1019
window: alice [1000, 1010) 3+4
window: alice [1010, 1020) 2
window: alice [1020, 1030) 1
window: bob [1000, 1010) 5
window: bob [1010, 1020) 1
window: carol [1010, 1020) 7";

#[test]
fn python_and_javascript_reach_keyed_state_timers_and_windows() {
    for (name, want) in [("features-py", PYTHON_FEATURES), ("features-js", JS_FEATURES)] {
        let wasm = component(name);
        for p in ["1", "2"] {
            for backend in ["memory", "disk"] {
                let out = run_ok(&["run", "-p", p, "--state-backend", backend, "-c", "features", wasm.to_str().unwrap()]);
                assert_eq!(sorted_lines(&out), want.lines().collect::<Vec<_>>(), "{name} at p={p} on the {backend} backend");
            }
        }
    }
}

#[test]
fn errors_in_python_and_javascript_operators_are_one_line() {
    let err = run_err(&["run", "-c", "fail", component("features-py").to_str().unwrap()]);
    assert_eq!(
        error_line(&err),
        "error: job failed: operator 'Map -> picky' (subtask 1/1) ValueError: five is not allowed (at features.py:72 in picky)"
    );
    let err = run_err(&["run", "-c", "fail", component("features-js").to_str().unwrap()]);
    assert_eq!(
        error_line(&err),
        "error: job failed: operator 'Map -> picky' (subtask 1/1) picky: Error: five is not allowed (features.js:73)"
    );
    // A Python operator's batch crosses as marshal, which holds what JSON cannot: the host
    // refuses it by name, and nothing of the batch reaches the sink.
    for (value, message) in [("set", "cannot encode a set as JSON"), ("nan", "cannot encode a float as JSON: out of range float value nan")] {
        let out = run(&["run", "-c", "not-json", component("features-py").to_str().unwrap(), "--value", value]);
        assert!(!out.status.success(), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(error_line(&err), format!("error: job failed: operator 'Map -> tags' (subtask 1/1) {message}"));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("tags"), "{value}: nothing printed");
    }
}

/// A Python operator frees what it hands the host: 96 MiB of records written to keyed
/// state and emitted pass through one whose memory may not exceed 32 MiB (the Python
/// runtime leaked every batch and state value until `guest-sdk/python/free_lists.py`).
#[test]
fn python_operators_do_not_keep_what_they_emit_or_store() {
    let wasm = component("features-py");
    let out = run(&["run", "--memory-limit", "32", "-c", "churn", wasm.to_str().unwrap(), "--mib", "96"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(": 393216 records in, 393216 records out"), "every record passed: {stderr}");
}

/// Python and JavaScript counters reach the host summed, however many export calls the
/// records took (the SDKs hand each call's sums over as it ends).
#[test]
fn python_and_javascript_counters_reach_the_host() {
    for language in ["py", "js"] {
        let wasm = component(&format!("features-{language}"));
        let out = run(&["run", "-c", "count", wasm.to_str().unwrap(), "--n", "100000"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{language}: {stderr}");
        assert!(stderr.contains("counter seen = 100000"), "{language}: {stderr}");
        assert!(stderr.contains("counter total = 4999950000"), "{language}: {stderr}");
    }
}

/// The Python and JavaScript SDKs split words with tables generated from Rust's
/// `char::is_alphanumeric` and `to_lowercase`; the checked-in tables must be what this
/// Rust generates (guest-sdk/text-tables/README.md).
#[test]
fn word_splitting_tables_match_this_rust() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen-tables");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = std::process::Command::new(rustc).arg("-O").arg(sdk.join("text-tables/gen.rs")).arg("-o").arg(&gen).status().unwrap();
    assert!(built.success(), "rustc failed on gen.rs");
    for (lang, file) in [("py", "python/eddy/_text_tables.py"), ("js", "js/eddy/text_tables.js")] {
        let out = std::process::Command::new(&gen).arg(lang).output().unwrap();
        assert!(out.status.success());
        let checked_in = std::fs::read(sdk.join(file)).unwrap();
        assert!(out.stdout == checked_in, "guest-sdk/{file} is stale: regenerate it (guest-sdk/text-tables/README.md)");
    }
}
