//! Word count, end to end: the `wordcount` example component run by the
//! `eddy` binary on the embedded cluster, against an independent count.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn word_count_equals_reference_at_parallelism_1_2_4() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let text = awkward_text();
    std::fs::write(&input, &text).unwrap();
    let expected = reference_counts(&text);
    assert!(expected.len() > 40 && expected["fox"] == 3002, "reference looks wrong: {expected:?}");
    let wasm = component("wordcount");
    for p in ["1", "2", "4"] {
        let out = dir.path().join(format!("out-p{p}"));
        run_ok(&[
            "run", "-p", p, "-c", "word-count", wasm.to_str().unwrap(),
            "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(),
        ]);
        let parts = std::fs::read_dir(&out).unwrap().count();
        assert_eq!(parts.to_string(), p, "one part file per sink subtask");
        assert_eq!(parse_counts(read_parts(&out)), expected, "parallelism {p}");
    }
    // Without --output the counts go to stdout (prefixed "N> " at p > 1).
    let stdout = run_ok(&["run", "-p", "2", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert_eq!(parse_counts(stdout.lines().map(String::from)), expected);
}

/// Lines run past the source's 1 MiB read buffer and across the subtasks' byte ranges:
/// each is still read whole, once.
#[test]
fn lines_across_read_buffers_and_splits_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let text = awkward_text().repeat(6);
    assert!(text.len() > 3 << 20);
    std::fs::write(&input, &text).unwrap();
    let wasm = component("wordcount");
    for p in ["1", "3"] {
        let out = dir.path().join(format!("out-p{p}"));
        run_ok(&["run", "-p", p, "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
        assert_eq!(parse_counts(read_parts(&out)), reference_counts(&text), "parallelism {p}");
    }
}

#[test]
fn word_count_of_the_shipped_sample() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/wordcount/sample.txt");
    let text = std::fs::read(sample).unwrap();
    let stdout = run_ok(&["run", "-c", "word-count", component("wordcount").to_str().unwrap(), "--input", sample]);
    assert_eq!(parse_counts(stdout.lines().map(String::from)), reference_counts(&text));
}

#[test]
fn missing_input_file_is_a_clear_error() {
    let err = run_err(&["run", "-c", "word-count", component("wordcount").to_str().unwrap(), "--input", "/no/such/file.txt"]);
    assert!(error_line(&err).contains("cannot read /no/such/file.txt"), "{err}");
}

/// `eddy entries C | head -1`: the reader leaves before eddy writes. That
/// ends the command quietly, as it ends `cat`; it used to panic.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let mut child = eddy()
        .args(["entries", component("wordcount").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Compiling the component takes far longer than this; the pipe is closed before the first write.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "nothing on stderr, got: {stderr}");
}

#[test]
fn a_bounded_job_shows_a_progress_bar_on_a_terminal_and_not_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "the quick brown fox jumps over the lazy dog\n".repeat(400_000)).unwrap();
    let wasm = component("wordcount");
    let args = |out: &str| {
        ["run", "-p", "2", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.path().join(out).to_str().unwrap().to_string()])
            .collect::<Vec<_>>()
    };
    let drawn = on_a_terminal(&args("a").iter().map(String::as_str).collect::<Vec<_>>());
    // The bar: elapsed time, bytes read of the file's 16.78 MiB, records in.
    assert!(drawn.contains("MiB/16.78 MiB") && drawn.contains("records in, ") && drawn.contains("] "), "{drawn}");
    assert!(drawn.contains("Job 'word-count' finished in "), "a one-line summary at the end: {drawn}");
    let mut quiet = args("b");
    quiet.insert(1, "--quiet".into());
    let drawn = on_a_terminal(&quiet.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!drawn.contains("MiB/") && drawn.contains("Job 'word-count' finished in "), "--quiet draws no bar: {drawn}");
    // In a pipe, nothing but the lines it always wrote.
    let out = eddy().args(args("c")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("MiB") && !stderr.contains('\r'), "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}

/// Reads eddy's stdout lines on a thread, so the test can wait with a deadline.
fn line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    rx
}

fn expect_lines(rx: &mpsc::Receiver<String>, wanted: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    let mut missing: Vec<&str> = wanted.to_vec();
    let mut seen = Vec::new();
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                missing.retain(|w| *w != line);
                seen.push(line);
            }
            Err(_) => panic!("still waiting for {missing:?} after {within:?}; saw {seen:?}"),
        }
    }
}

/// Starts `stream-word-count` against a socket of the test's; returns the process, its
/// stdout lines and the accepted connection.
fn stream_word_count() -> (std::process::Child, mpsc::Receiver<String>, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut child = eddy()
        .args(["run", "-c", "stream-word-count", component("wordcount").to_str().unwrap(), "--host", "127.0.0.1", "--port", &port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = line_reader(child.stdout.take().unwrap());
    let (conn, _) = listener.accept().unwrap();
    (child, rx, conn)
}

#[test]
fn stream_word_count_prints_updates_as_lines_arrive() {
    let (mut child, rx, mut conn) = stream_word_count();
    conn.write_all(b"Hello world\r\n").unwrap();
    // The counts appear while the job runs, not at its end.
    expect_lines(&rx, &["hello 1", "world 1"], Duration::from_secs(10));
    conn.write_all(b"hello AGAIN, hello\n").unwrap();
    expect_lines(&rx, &["hello 2", "again 1", "hello 3"], Duration::from_secs(10));
    // The peer closing the socket ends the input: the job finishes cleanly.
    drop(conn);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
}

#[test]
fn stream_word_count_stops_cleanly_on_interrupt() {
    let (mut child, rx, mut conn) = stream_word_count();
    conn.write_all(b"one two two\n").unwrap();
    expect_lines(&rx, &["one 1", "two 2"], Duration::from_secs(10));
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "interrupted job should exit 0, got {status}");
            break;
        }
        assert!(Instant::now() < deadline, "job did not stop within 10 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unreachable_socket_is_a_clear_error() {
    // Bind then drop, so the port is almost certainly closed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let err = run_err(&["run", "-c", "stream-word-count", component("wordcount").to_str().unwrap(), "--host", "127.0.0.1", "--port", &port]);
    let line = error_line(&err);
    assert!(line.contains(&format!("socket source 127.0.0.1:{port}: cannot connect")), "{line}");
}

#[test]
fn an_oversized_line_is_refused_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("one-line.txt");
    std::fs::write(&input, vec![b'a'; (16 << 20) + 10]).unwrap();
    let err = run_err(&["run", "-c", "word-count", component("wordcount").to_str().unwrap(), "--input", input.to_str().unwrap()]);
    assert!(error_line(&err).ends_with("one-line.txt at byte 0: a line is longer than 16 MiB"), "{err}");
}
