//! Job files (`eddy run job.toml`): jobs whose operators come from several components,
//! on the embedded cluster and on a cluster of processes, and what a bad job file gets.

mod common;

use std::path::Path;

use common::*;

/// Writes `job.toml` into `dir` with `{name}` placeholders replaced by component paths.
fn job_file(dir: &Path, text: &str, components: &[&str]) -> String {
    let mut text = text.to_string();
    for c in components {
        text = text.replace(&format!("{{{c}}}"), &component(c).display().to_string());
    }
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const TOKENIZE: &str = r#"
name = "tokens"
[components]
rust = "{wordcount}"
unused = "/dev/zero"  # no step uses it, so it is never read

[[step]]
source = { file = "INPUT" }

[[step]]
component = "rust"
entry = "tokenize"

[[step]]
sink = "print"
"#;

#[test]
fn an_operator_entry_runs_as_a_step_of_a_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text = "The Brook and the Café,\nÜber the hill; the brook ran ON!\n\nlast line";
    std::fs::write(&input, text).unwrap();
    let job = job_file(dir.path(), &TOKENIZE.replace("INPUT", &input.display().to_string()), &["wordcount"]);
    let mut want = reference_words(text);
    want.sort();
    for p in ["1", "2"] {
        let out = run_ok(&["run", "-p", p, &job]);
        assert_eq!(sorted_lines(&out), want, "p={p}");
    }
    let plan = run_ok(&["info", "-p", "2", &job]);
    assert!(plan.contains("task 0: source -> tokenize -> sink  p=2"), "{plan}");
    assert!(plan.contains("uid=tokenize/vertex-1"), "{plan}");
}

#[test]
fn an_operator_entry_alone_is_refused() {
    let err = run_err(&["run", "-c", "tokenize", component("wordcount").to_str().unwrap()]);
    assert_eq!(
        error_line(&err),
        "error: invalid job graph: the entry is an operator entry (its 'Input' vertex reads the records of an enclosing job); \
         it runs only as a step of a job file (eddy run job.toml)"
    );
}

#[test]
fn bad_job_files_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let source = "[[step]]\nsource = { file = \"x\" }\n";
    let rust = "[components]\nrust = \"{wordcount}\"\n";
    let uses = |c: &str| format!("{source}[[step]]\ncomponent = \"{c}\"\nentry = \"tokenize\"\n[[step]]\nsink = \"print\"\n");
    let cases: Vec<(String, &str)> = vec![
        (format!("[components]\nrust = \"missing.wasm\"\n{}", uses("rust")), "missing.wasm: No such file or directory"),
        (format!("[components]\nbad = \"job.toml\"\n{}", uses("bad")), "job.toml is not a WebAssembly component (no \\0asm header)"),
        (format!("[components]\nz = \"/dev/zero\"\n{}", uses("z")), "error: component /dev/zero is not a regular file"),
        (format!("{rust}{source}[[step]]\nsource = {{ sequence = 3 }}\n[[step]]\nsink = \"print\"\n"),
            "error: the records of step 'source' go nowhere: end with a sink step, or name it in a later step's `inputs`"),
        (format!("{rust}{source}[[step]]\ncomponent = \"rust\"\nentry = \"tokenize\"\n"),
            "error: the records of step 'tokenize' go nowhere: end with a sink step, or name it in a later step's `inputs`"),
        (format!("{source}[[step]]\nsink = \"print\"\ninputs = []\n"),
            "error: step 'sink' has empty `inputs`: name the steps it reads, or leave `inputs` out to read the step before"),
        (String::from("[[step]]\nname = \"e\"\nsource = { elements = [1, nan] }\n[[step]]\nsink = \"print\"\n"),
            "error: step 'e': `elements` holds a TOML date-time, nan or inf, which JSON cannot carry (quote it as a string)"),
        (String::from("[[step]]\nsource = { elements = [{ at = 1979-05-27T07:32:00Z }] }\n[[step]]\nsink = \"print\"\n"),
            "error: step 'source': `elements` holds a TOML date-time, nan or inf, which JSON cannot carry (quote it as a string)"),
        (format!("parallelism = 0\n{source}[[step]]\nsink = \"print\"\n"),
            "error: invalid job graph: job parallelism 0 must be between 1 and the max parallelism 128"),
        (format!("parallelism = 9\nmax-parallelism = 8\n{source}[[step]]\nsink = \"print\"\n"),
            "error: invalid job graph: job parallelism 9 must be between 1 and the max parallelism 8"),
        (format!("{rust}{source}[[step]]\ncomponent = \"nope\"\nentry = \"tokenize\"\n"),
            "error: step 'tokenize' uses component 'nope', which [components] does not name"),
        (format!("{rust}{source}[[step]]\ncomponent = \"rust\"\nentry = \"word-count\"\nargs = [\"--input\", \"x\"]\n"),
            "error: step 'word-count': entry 'word-count' of component 'rust' is a job, not an operator entry (an operator entry's graph starts with input())"),
        (format!("{rust}{source}[[step]]\ncomponent = \"rust\"\nentry = \"nope\"\n"),
            "error: step 'nope': planning entry 'nope' of component 'rust' failed: unknown entry 'nope'; this component offers: word-count, stream-word-count, kafka-word-count, tokenize"),
        (format!("{rust}[[step]]\ncomponent = \"rust\"\nentry = \"tokenize\"\n"),
            "error: step 'tokenize' has no input: only a source can come first"),
        (format!("{rust}{source}[[step]]\nsink = \"print\"\n[[step]]\nsink = \"print\"\n"),
            "error: step 'sink-2' reads 'sink', which has no output (it ends in a sink)"),
        (format!("{source}[[step]]\nsink = \"print\"\ninputs = [\"elsewhere\"]\n"),
            "error: step 'sink' reads 'elsewhere', which is not a step before it"),
        (format!("{source}[[step]]\nsink = \"print\"\nsource = {{ sequence = 3 }}\n"),
            "error: step 'source-2' must have exactly one of `source`, `component` (with `entry`) or `sink`"),
        (format!("{source}partitioning = \"rebalance\"\n[[step]]\nsink = \"print\"\n"),
            "error: source step 'source' reads no step: it takes no `inputs` or `partitioning`"),
        (String::from("[[step]]\nsource = { flie = \"x\" }\n"), "unknown variant `flie`, expected one of `file`, `json-lines`, `nexmark-file`, `nexmark`, `socket`, `sequence`, `elements`"),
        (String::new(), "error: the job file has no steps"),
    ];
    for (text, want) in cases {
        let job = job_file(dir.path(), &text, &["wordcount"]);
        let err = run_err(&["run", &job]);
        let line = error_line(&err);
        assert!(line == want || (!want.starts_with("error: ") && line.contains(want)), "job file:\n{text}\ngave: {line}\nwanted: {want}");
    }
    let err = run_err(&["run", "-c", "tokenize", &job_file(dir.path(), source, &[])]);
    assert_eq!(error_line(&err), "error: -c ENTRY does not go with a job file: its steps name their entries");
}

/// The example pipeline of four languages (`examples/mixed/job.toml`), with its paths
/// replaced: Rust tokenizer, C upper-caser, Python enrichment, JavaScript filter.
fn mixed_job(dir: &Path, input: &Path, parallelism: &str) -> String {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mixed/job.toml")).unwrap();
    let mut text = String::new();
    for line in example.lines() {
        let line = if line.starts_with("source = ") {
            format!("source = {{ file = \"{}\" }}", input.display())
        } else if let Some((name, path)) = line.split_once(" = \"").filter(|(_, p)| p.ends_with(".wasm\"")) {
            let file = path.trim_end_matches("\"").rsplit('/').next().unwrap().trim_end_matches(".wasm");
            format!("{name} = \"{}\"", component(file).display())
        } else {
            line.to_string()
        };
        text.push_str(&line);
        text.push('\n');
        if line == "[[step]]" && parallelism != "1" {
            text.push_str(&format!("parallelism = {parallelism}\n"));
        }
    }
    let path = dir.join("mixed.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// What the mixed pipeline must print, computed here: words, ASCII upper case,
/// `{"word", "length"}` objects, those of at least 4 characters.
fn mixed_reference(text: &str) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = reference_words(text)
        .into_iter()
        .map(|w| w.to_ascii_uppercase())
        .filter(|w| w.chars().count() >= 4)
        .map(|w| serde_json::json!({ "word": w, "length": w.chars().count() }))
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}

fn parse_values(out: &str) -> Vec<serde_json::Value> {
    let mut values: Vec<serde_json::Value> = out
        .lines()
        .map(unprefixed)
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    values.sort_by_key(|v| v.to_string());
    values
}

#[test]
fn a_pipeline_of_four_languages_equals_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text = String::from_utf8_lossy(&awkward_text()).into_owned();
    std::fs::write(&input, &text).unwrap();
    let want = mixed_reference(&text);
    assert!(want.len() > 1000);
    for p in ["1", "2"] {
        let job = mixed_job(dir.path(), &input, p);
        assert_eq!(parse_values(&run_ok(&["run", &job])), want, "embedded, parallelism {p}");
    }
    // Per-step parallelism: only the Python step runs twice, so records are rebalanced.
    let job = mixed_job(dir.path(), &input, "1");
    let text2 = std::fs::read_to_string(&job).unwrap().replace("entry = \"enrich\"", "entry = \"enrich\"\nparallelism = 2");
    std::fs::write(&job, text2).unwrap();
    let plan = run_ok(&["info", &job]);
    assert!(plan.contains("rebalance"), "{plan}");
    assert_eq!(parse_values(&run_ok(&["run", &job])), want, "embedded, the Python step at parallelism 2");
}

#[test]
fn a_pipeline_of_four_languages_runs_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text = String::from_utf8_lossy(&awkward_text()).into_owned();
    std::fs::write(&input, &text).unwrap();
    let job = mixed_job(dir.path(), &input, "2");
    let cluster = common::cluster::Cluster::start(2, 2, &[]);
    let out = dir.path().join("out");
    let with_sink = std::fs::read_to_string(&job).unwrap().replace("sink = \"print\"", &format!("sink = {{ file = \"{}\" }}", out.display()));
    // A job-wide parallelism, which the API reports (every step sets its own too).
    std::fs::write(&job, format!("parallelism = 2\n{with_sink}")).unwrap();
    let submitted = run_ok(&["run", "-m", &cluster.http, &job]);
    // Four components, each uploaded once.
    assert_eq!(submitted.matches("Uploaded ").count(), 4, "{submitted}");
    assert_eq!(parse_values(&read_parts(&out).join("\n")), mixed_reference(&text));
    let id = submitted.split("JobID ").nth(1).unwrap().split_whitespace().next().unwrap();
    assert_eq!(cluster.job(id)["parallelism"], 2);
    // Submitted again, nothing is uploaded.
    let again = run_ok(&["run", "-m", &cluster.http, &job]);
    assert_eq!(again.matches("is already on the cluster").count(), 4, "{again}");
    // A body that is no job file gets the API's error shape.
    let mut resp = ureq::post(&format!("http://{}/jobs", cluster.http))
        .header("authorization", &cluster.bearer())
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(serde_json::json!({ "job": { "stepx": [] } }))
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.body_mut().read_json().unwrap();
    let why = body["errors"][0].as_str().unwrap();
    assert!(why.contains("unknown field `stepx`") && !why.contains('\n'), "{body}");
}

#[test]
fn steps_repeating_an_entry_run_apart() {
    let dir = tempfile::tempdir().unwrap();
    // The same entry and arguments twice in a row, and a given name that a default name
    // would otherwise take: each step gets its own name, uid and instance.
    let text = r#"
[components]
c = "{upper-c}"
rust = "{wordcount}"

[[step]]
source = { elements = ["alpha beta", "gamma"] }

[[step]]
component = "rust"
entry = "tokenize"

[[step]]
name = "upper-2"
component = "c"
entry = "upper"

[[step]]
component = "c"
entry = "upper"

[[step]]
component = "c"
entry = "upper"

[[step]]
sink = "print"
"#;
    let job = job_file(dir.path(), text, &["upper-c", "wordcount"]);
    assert_eq!(sorted_lines(&run_ok(&["run", "-p", "2", &job])), ["ALPHA", "BETA", "GAMMA"]);
    let plan = run_ok(&["info", &job]);
    for uid in ["uid=upper-2/vertex-1", "uid=upper/vertex-1", "uid=upper-3/vertex-1"] {
        assert_eq!(plan.matches(uid).count(), 1, "{uid} in:\n{plan}");
    }
    let repeated = text.replace("[[step]]\nsink = \"print\"\n", "[[step]]\nsink = \"print\"\ninputs = [\"upper\", \"upper\"]\n");
    let err = run_err(&["run", &job_file(dir.path(), &repeated, &["upper-c", "wordcount"])]);
    assert_eq!(error_line(&err), "error: step 'sink' reads 'upper' twice");
}

/// A Nexmark step: the host's generator (`source.nexmark`) or a file of its events
/// (`nexmark-file`), each with event time and watermarks, feeding Python's q1 as an
/// operator entry; both give every bid in euros, computed here from the file.
const NEXMARK_JOB: &str = r#"
[components]
queries = "{nexmark_py}"

[[step]]
SOURCE

[[step]]
component = "queries"
entry = "q1-step"

[[step]]
sink = "print"
"#;

#[test]
fn nexmark_sources_are_steps_of_job_files() {
    let dir = tempfile::tempdir().unwrap();
    let events = nexmark_events_file(dir.path(), "2000", "1000");
    let mut want: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event_type"] == 2)
        .map(|e| {
            let b = &e["bid"];
            let price = b["price"].as_u64().unwrap() as f64 * 908.0 / 1000.0;
            serde_json::json!({"auction": b["auction"], "bidder": b["bidder"], "price": price, "dateTime": b["dateTime"], "extra": b["extra"]})
        })
        .collect();
    want.sort_by_key(|v| v.to_string());
    assert_eq!(want.len(), 1840);
    let generator = "source.nexmark = { events = 2000, event-rate = 1000 }".to_string();
    let file = format!("source = {{ nexmark-file = \"{}\" }}", events.display());
    for (source, p) in [(&generator, "1"), (&generator, "2"), (&file, "2")] {
        let job = job_file(dir.path(), &NEXMARK_JOB.replace("SOURCE", source), &["nexmark_py"]);
        assert_eq!(parse_values(&run_ok(&["run", "-p", p, &job])), want, "{source}, p={p}");
        let plan = run_ok(&["info", "-p", p, &job]);
        assert!(plan.contains("task 0: source -> Timestamps -> Filter -> bids -> q1"), "the watermarks are chained to the source: {plan}");
    }
}

/// A JSON Lines file (`source = { json-lines = FILE }`): its values, blank lines skipped,
/// through the Python and JavaScript steps of the mixed pipeline.
#[test]
fn a_json_lines_file_is_a_step_of_a_job_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.jsonl");
    let words = ["brook", "ran", "Über", "hill", "\"quoted\"", "naïve", "ON"];
    let lines: Vec<String> = words.iter().map(|w| serde_json::to_string(w).unwrap()).collect();
    std::fs::write(&input, lines.join("\n\n") + "\n").unwrap();
    let text = format!(
        "[components]\nenrich = \"{{enrich_py}}\"\nfilter = \"{{filter_js}}\"\n\
         [[step]]\nsource = {{ json-lines = \"{}\" }}\n\
         [[step]]\ncomponent = \"enrich\"\nentry = \"enrich\"\n\
         [[step]]\ncomponent = \"filter\"\nentry = \"filter-long\"\n\
         [[step]]\nsink = \"print\"\n",
        input.display()
    );
    let job = job_file(dir.path(), &text, &["enrich_py", "filter_js"]);
    let mut want: Vec<serde_json::Value> = words
        .iter()
        .filter(|w| w.chars().count() >= 4)
        .map(|w| serde_json::json!({"word": w, "length": w.chars().count()}))
        .collect();
    want.sort_by_key(|v| v.to_string());
    for p in ["1", "2"] {
        assert_eq!(parse_values(&run_ok(&["run", "-p", p, &job])), want, "p={p}");
    }
}
