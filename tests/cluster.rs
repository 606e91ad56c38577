//! The distributed runtime with real processes on 127.0.0.1: one
//! `eddy jobmanager`, TaskManagers as separate `eddy taskmanager` processes,
//! clients through the CLI and the HTTP API.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, ONE_AT_A_TIME};
use common::*;
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn word_count_on_two_taskmanagers_equals_the_reference_and_the_embedded_cluster() {
    let cluster = Cluster::start(2, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let (input, text) = word_count_input(work.path());
    let wasm = component("wordcount");
    let out = work.path().join("cluster-out");
    let stdout = run_ok(&[
        "run", "-m", &cluster.http, "-p", "4", "-c", "word-count", wasm.to_str().unwrap(),
        "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(),
    ]);
    let job = stdout.lines().find_map(|l| l.strip_prefix("Job has been submitted with JobID ")).expect(&stdout).to_string();
    let expected = reference_counts(&text);
    assert_eq!(parse_counts(read_parts(&out)), expected);

    // Subtasks were spread over both TaskManagers' slots, and the API says where.
    let details = cluster.job(&job);
    assert_eq!(details["status"], "FINISHED");
    let mut places = std::collections::BTreeSet::new();
    for task in details["tasks"].as_array().unwrap() {
        for s in task["subtasks"].as_array().unwrap() {
            places.insert((s["taskmanager"].as_str().unwrap().to_string(), s["slot"].as_u64().unwrap()));
        }
    }
    let expected_places: std::collections::BTreeSet<_> =
        [("tm-1", 0), ("tm-1", 1), ("tm-2", 0), ("tm-2", 1)].iter().map(|(t, s)| (t.to_string(), *s)).collect();
    assert_eq!(places, expected_places);
    // Statistics per task: the source task read every line; what it sent (words,
    // pre-counted per batch before the shuffle) the counting task took in; that
    // task wrote one final count per distinct word.
    let lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    let distinct = reference_counts(&text).len() as u64;
    let tasks = details["tasks"].as_array().unwrap();
    let (read, sent) = (tasks[0]["metrics"]["records-in"].as_u64().unwrap(), tasks[0]["metrics"]["records-out"].as_u64().unwrap());
    assert_eq!(read, lines, "{details}");
    assert!(sent >= distinct, "{details}");
    assert_eq!(tasks[1]["metrics"]["records-in"].as_u64(), Some(sent), "{details}");
    assert_eq!(tasks[1]["metrics"]["records-out"].as_u64(), Some(distinct), "{details}");
    let info = run_ok(&["info", "-m", &cluster.http, "--job", &job]);
    let head = format!("job {job} 'word-count': FINISHED\ntask 0: File Source -> tokenize -> KeyBy, {lines} in, {sent} out");
    assert!(info.starts_with(&head), "{info}");
    assert!(info.contains("  subtask 1/4: tm-1 slot 0, ") && info.contains("tm-2 slot 1, "), "{info}");
    assert_eq!(cluster.free_slots(), [2, 2], "a finished job frees its slots");

    // The embedded cluster gives the same files' content.
    let local = work.path().join("local-out");
    run_ok(&["run", "-p", "4", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", local.to_str().unwrap()]);
    let (mut a, mut b) = (read_parts(&out), read_parts(&local));
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // A second run of the same bytes does not upload again.
    let again = run_ok(&["run", "-m", &cluster.http, "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", work.path().join("o2").to_str().unwrap()]);
    assert!(again.contains("already on the cluster"), "{again}");
    assert_eq!(cluster.get("/jars")["files"].as_array().unwrap().len(), 1);
}

/// Word count at parallelism 40 over two TaskManagers: its hash shuffle has 1600 channels,
/// 800 of them into each TaskManager from the other. Each remote channel once took a
/// thread of tokio's blocking pool (512 at most), and the job waited forever on the rest.
#[test]
fn a_shuffle_of_1600_channels_across_taskmanagers_finishes_exactly() {
    let cluster = Cluster::start(2, 20, &[]);
    let work = tempfile::tempdir().unwrap();
    let (input, text) = word_count_input(work.path());
    let out = work.path().join("out");
    let wasm = component("wordcount");
    run_ok(&["run", "-m", &cluster.http, "-p", "40", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert_eq!(parse_counts(read_parts(&out)), reference_counts(&text));
}

#[test]
fn eddy_run_m_draws_the_clusters_progress_on_a_terminal() {
    let cluster = Cluster::start(1, 2, &[]);
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("input.txt");
    std::fs::write(&input, "the quick brown fox jumps over the lazy dog\n".repeat(1_200_000)).unwrap();
    let (wasm, out) = (component("wordcount"), work.path().join("out"));
    let args = ["run", "-m", &cluster.http, "-p", "2", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()];
    let drawn = on_a_terminal(&args);
    // From the TaskManagers' statistics: bytes read of the file's 50.35 MiB, records in.
    assert!(drawn.contains("MiB/50.35 MiB") && drawn.contains("records in, "), "{drawn}");
    assert!(drawn.contains(" finished in ") && drawn.contains("1200000 records in"), "{drawn}");
    assert!(!drawn.contains("running: "), "the bar replaces the progress lines: {drawn}");
}

#[test]
fn a_slow_operator_back_pressures_the_source_across_taskmanagers() {
    // One slot each: the source's group lands on tm-1, the slow group on tm-2.
    let cluster = Cluster::start(2, 1, &[]);
    let jar = cluster.upload(&component("features"));
    let job = cluster.submit(&jar, "slow", &["--delay-ms", "2"], 1);
    cluster.wait_status(&job, "RUNNING");
    let details = cluster.job(&job);
    let tms: Vec<&str> = details["tasks"].as_array().unwrap().iter().map(|t| t["subtasks"][0]["taskmanager"].as_str().unwrap()).collect();
    assert_eq!(tms, ["tm-1", "tm-2"], "source and slow operator run on different TaskManagers");
    // The source could produce hundreds of MB a second; back-pressure must hold both
    // TaskManagers' memory at a bound while the job runs.
    let pids: Vec<u32> = cluster.taskmanagers.iter().map(|c| c.id()).collect();
    let mut peak = [0u64; 2];
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(200));
        for (p, pid) in peak.iter_mut().zip(&pids) {
            *p = (*p).max(rss_kib(*pid));
        }
    }
    let running = cluster.job(&job);
    assert_eq!(running["status"], "RUNNING");
    // Heartbeats carry the subtasks' progress: the source has emitted, the sink wrote nothing.
    assert!(running["records-in"].as_u64().unwrap() > 0, "{running}");
    for (i, p) in peak.iter().enumerate() {
        assert!(*p < 200 * 1024, "TaskManager {} grew to {} MiB under back-pressure", i + 1, p / 1024);
    }
    // Cancelling frees the slots.
    assert_eq!(cluster.free_slots(), [0, 0]);
    let out = run_ok(&["cancel", "-m", &cluster.http, &job]);
    assert!(out.contains(&job), "{out}");
    cluster.wait_status(&job, "CANCELED");
    cluster.wait_for(|c| c.free_slots() == [1, 1], "slots to be freed");
}

#[test]
fn a_killed_taskmanager_fails_the_job_and_the_cluster_runs_the_next_one() {
    let mut cluster = Cluster::start(2, 1, &["--heartbeat-timeout", "3"]);
    let jar = cluster.upload(&component("features"));
    let job = cluster.submit(&jar, "slow", &[], 1);
    cluster.wait_status(&job, "RUNNING");
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    cluster.taskmanagers[1].kill().unwrap(); // SIGKILL
    let details = cluster.wait_status(&job, "FAILED");
    let failure = details["failure"].as_str().unwrap();
    assert!(failure.contains("TaskManager tm-2 was lost"), "{failure}");
    assert!(killed_at.elapsed() < Duration::from_secs(10), "failure took {:?}", killed_at.elapsed());

    // The JobManager and tm-1 are still up, and run the next job on tm-1's slot.
    assert_eq!(cluster.free_slots(), [1]);
    let work = tempfile::tempdir().unwrap();
    let (input, text) = word_count_input(work.path());
    let out = work.path().join("out");
    run_ok(&["run", "-m", &cluster.http, "-c", "word-count", component("wordcount").to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert_eq!(parse_counts(read_parts(&out)), reference_counts(&text));
}

#[test]
fn peers_without_the_cluster_certificate_bad_uploads_and_missing_slots_are_refused() {
    let cluster = Cluster::start(1, 1, &["--slot-timeout", "1"]);
    // A TaskManager that trusts another CA does not take the JobManager for one.
    let alien = tempfile::tempdir().unwrap();
    eddy::net::ClusterCa::load_or_create(alien.path()).unwrap();
    let out = eddy()
        .args(["taskmanager", "--jobmanager", &cluster.rpc, "--join-token", "eddyjoin_x_y", "--ca"])
        .arg(alien.path().join("ca.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(error_line(&err).starts_with(&format!("error: cannot enrol with the JobManager at {}", cluster.rpc)), "{err}");
    assert!(error_line(&err).contains("invalid peer certificate"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(cluster.log("jobmanager.log").contains("refused a cluster connection"), "{}", cluster.log("jobmanager.log"));

    // The API wants a key: the admin key the JobManager wrote on its first start.
    let denied = ureq::get(&format!("http://{}/overview", cluster.http)).call();
    assert!(matches!(denied, Err(ureq::Error::StatusCode(401))), "{denied:?}");
    let key_file = cluster.dir.path().join("admin.token");
    let with = ["-m", cluster.http.as_str(), "--token-file", key_file.to_str().unwrap()];
    let tms = run_ok(&[&["taskmanagers"][..], &with].concat());
    assert!(tms.contains("tm-1") && !tms.contains("tm-2"), "{tms}");

    // An invalid upload is refused with the reason.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let err = run_err(&[&["upload"][..], &with, &[bad.to_str().unwrap()]].concat());
    assert!(error_line(&err).contains("bad.wasm is not a valid component"), "{err}");

    // A trapping operator fails its job with the operator's name and message; the
    // TaskManager stays up (the next run below reaches the slot check).
    let err = run_err(&[&["run"][..], &with, &["-c", "trap", component("hostile").to_str().unwrap()]].concat());
    let line = error_line(&err);
    assert!(line.contains("operator 'explode' (subtask 1/1) trapped") && line.contains("boom on purpose"), "{err}");

    // A job that needs more slots than the cluster has fails after the slot timeout.
    let wasm = component("wordcount");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a b\n").unwrap();
    let err = run_err(&[&["run"][..], &with, &["-p", "3", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap()]].concat());
    assert!(error_line(&err).contains("not enough slots: the job needs 3, the cluster has 1 free of 1"), "{err}");
}

#[test]
fn cluster_start_runs_processes_that_run_jobs_and_cluster_stop_ends_them() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let out = run_ok(&["cluster", "start", "--taskmanagers", "2", "--slots", "1", "--state-dir", dir]);
    let http = out.lines().last().unwrap().trim().to_string();
    assert!(out.contains(&format!("admin key in {dir}/admin.token")), "{out}");
    let key = state.path().join("admin.token");
    let key = key.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (input, text) = word_count_input(work.path());
    let counts = work.path().join("out");
    let result = std::panic::catch_unwind(|| {
        let tms = run_ok(&["taskmanagers", "-m", &http, "--token-file", key]);
        assert!(tms.contains("tm-1") && tms.contains("tm-2"), "{tms}");
        run_ok(&["run", "-m", &http, "--token-file", key, "-p", "2", "-c", "word-count", component("wordcount").to_str().unwrap(),
            "--input", input.to_str().unwrap(), "--output", counts.to_str().unwrap()]);
        assert_eq!(parse_counts(read_parts(&counts)), reference_counts(&text));
        let list = run_ok(&["list", "-m", &http, "--token-file", key]);
        assert!(list.contains("FINISHED"), "{list}");
    });
    let stopped = run_ok(&["cluster", "stop", "--state-dir", dir]);
    assert!(stopped.contains("Stopped 3 process"), "{stopped}");
    result.unwrap();
    assert!(run(&["list", "-m", &http, "--token-file", key]).status.code() == Some(1), "the JobManager is gone");
}

/// A peer with a legitimate TaskManager certificate registers and then lies:
/// another TaskManager's heartbeat with absurd usage, ends and checkpoint
/// acknowledgements of tasks it does not run (one pointing restore outside the
/// checkpoint), a module it has no task of, a message claiming 4 GiB, garbage,
/// and a data stream for a channel another TaskManager feeds. None changes the
/// running job, which finishes with its exact output; nothing crashes.
#[test]
fn forged_cluster_messages_change_no_job_and_crash_nothing() {
    use eddy::checkpoint::TaskHandle;
    use eddy::net::codec;
    use eddy::protocol::{ChannelHeader, Registered, SubtaskStats, TaskOutcome, TaskUsage, ToJobManager};
    use eddy::runtime::{GuestLine, GuestLogs};

    let mut cluster = Cluster::start(2, 1, &[]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (n, keys) = (40_000u64, 50u64);
    let id = cluster.submit_sequence_check(n, keys, Some(10_000), &out, None);
    let jar = cluster.get("/jars")["files"][0]["id"].as_str().unwrap().to_string();
    cluster.wait_status(&id, "RUNNING");
    cluster.wait_for(|c| c.job(&id)["checkpoints"]["completed"].as_u64() >= Some(1), "a checkpoint");
    let exec = format!("{id}@0");
    let tm1_data: std::net::SocketAddr = cluster.get("/taskmanagers")["taskmanagers"][0]["dataAddress"].as_str().unwrap().parse().unwrap();
    let join = cluster.join_token();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // A legitimate TaskManager: enrolled with the cluster's join token.
        let ca_pem = std::fs::read_to_string(cluster.dir.path().join("ca.pem")).unwrap();
        let me = eddy::taskmanager::identity::enrol(cluster.rpc.parse().unwrap(), &ca_pem, &join).await.unwrap();
        assert_eq!(me.identity, "tm-3");
        let endpoint = eddy::net::endpoint("127.0.0.1:0".parse().unwrap(), &me.node().unwrap(), eddy::net::Clients::Certified).unwrap();
        let conn = eddy::net::connect(&endpoint, cluster.rpc.parse().unwrap(), eddy::net::JOBMANAGER_NAME).await.unwrap();
        let register = ToJobManager::Register { slots: 1, data_addr: endpoint.local_addr().unwrap(), running: vec![exec.clone()] };
        let registered: Registered = codec::call(&conn, &register).await.unwrap();
        assert_eq!(registered.cancel, vec![exec.clone()], "what a new TaskManager claims to run is not the JobManager's");
        let huge = TaskUsage { records_in: 1 << 50, records_out: 1 << 50, bytes_in: 1 << 50, bytes_out: 1 << 50, cpu_ns: 1 << 50 };
        let forged = SubtaskStats { records_in: 1 << 50, records_out: 1 << 50, wall_ns: u64::MAX, ..Default::default() };
        // Log lines in another TaskManager's name, for its subtask and for one that does not exist.
        let line = |task, subtask| GuestLine { at_ms: 0, level: "error".into(), task, subtask, operator: "forged".into(), message: "forged line".into() };
        let forged_logs = GuestLogs { lines: vec![line(0, 0), line(99, 99)], dropped: u64::MAX };
        let beat = ToJobManager::Heartbeat {
            id: "tm-1".into(),
            running_tasks: 7,
            usage: vec![(exec.clone(), 0, 0, huge)],
            state: vec![(exec.clone(), 1 << 50)],
            stats: vec![(exec.clone(), 0, 0, forged), (exec.clone(), 99, 99, forged)],
            logs: vec![(exec.clone(), forged_logs.clone())],
            counters: vec![(exec.clone(), 0, 0, vec![("forged".into(), 1 << 50)])],
        };
        let () = codec::call(&conn, &beat).await.unwrap();
        let outside = TaskHandle { chain: 0, subtask: 0, file: "../../../etc/passwd".into(), bytes: 1, sync_ms: 0, passed: 0 };
        let lies = [
            ToJobManager::TaskDone { id: "tm-1".into(), job: exec.clone(), chain: 0, subtask: 0, outcome: TaskOutcome::Failed("forged".into()), usage: huge, stats: forged, logs: forged_logs.clone(), counters: vec![("forged".into(), 1 << 50)] },
            ToJobManager::TaskDone { id: "tm-2".into(), job: exec.clone(), chain: 1, subtask: 1, outcome: TaskOutcome::Finished { records_in: 1, records_out: 1 }, usage: huge, stats: forged, logs: forged_logs.clone(), counters: vec![("forged".into(), 1 << 50)] },
            ToJobManager::CheckpointAck { job: exec.clone(), chain: 0, subtask: 0, checkpoint: 1_000_000, result: Ok(outside) },
            ToJobManager::CheckpointAck { job: exec.clone(), chain: 9, subtask: 9, checkpoint: 1, result: Err("forged".into()) },
        ];
        for lie in &lies {
            let mut send = conn.open_uni().await.unwrap();
            codec::write(&mut send, lie).await.unwrap();
            send.finish().unwrap();
        }
        // A module it runs no task of: the stream ends without its bytes.
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        codec::write(&mut send, &ToJobManager::GetModule { digest: jar.clone() }).await.unwrap();
        send.finish().unwrap();
        assert!(recv.read_to_end(1 << 30).await.unwrap_or_default().is_empty(), "a module went to a TaskManager without its tasks");
        // A length of 4 GiB, then garbage.
        for bytes in [u32::MAX.to_le_bytes().to_vec(), b"\x10\x00\x00\x00not json at all!".to_vec()] {
            let mut send = conn.open_uni().await.unwrap();
            let _ = send.write_all(&bytes).await;
            let _ = send.finish();
        }
        // A data stream into tm-1 for a channel that tm-2 feeds, and one with a header of 4 GiB.
        let data = eddy::net::connect(&endpoint, tm1_data, eddy::net::TASKMANAGER_NAME).await.unwrap();
        let mut send = data.open_uni().await.unwrap();
        codec::write(&mut send, &ChannelHeader { job: exec.clone(), chain: 1, subtask: 0, channel: 1 }).await.unwrap();
        let _ = send.write_all(&[0, 0xff, 0xff, 0xff, 0xff]).await;
        let _ = send.finish();
        let mut send = data.open_uni().await.unwrap();
        let _ = send.write_all(&u32::MAX.to_le_bytes()).await;
        let _ = send.finish();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });

    let finished = cluster.wait_status(&id, "FINISHED");
    assert_eq!(finished["restarts"], 0, "{finished}");
    assert_eq!(finished["exceptions"], json!([]), "{finished}");
    assert_eq!(finished["records-in"].as_u64(), Some(n), "{finished}");
    assert!(finished["peak-state-bytes"].as_u64().unwrap() < 1 << 40, "{finished}");
    for task in finished["tasks"].as_array().unwrap() {
        assert!(task["metrics"]["records-in"].as_u64().unwrap() <= n, "forged statistics were taken: {task}");
    }
    assert_sequences_exactly_once(&out, n, keys);
    let logs = cluster.get(&format!("/jobs/{id}/logs"));
    assert!(!logs.to_string().contains("forged"), "forged log lines were kept: {logs}");
    assert!(!finished.to_string().contains("forged"), "forged counters were kept: {finished}");
    assert!(logs["dropped"].as_u64().unwrap() < 1 << 40, "{logs}");
    for tm in cluster.taskmanagers.iter_mut() {
        assert!(tm.try_wait().unwrap().is_none(), "a TaskManager exited");
    }
    assert!(cluster.jobmanager.try_wait().unwrap().is_none(), "the JobManager exited");
    let jm_log = cluster.log("jobmanager.log");
    for said in ["ignored the end of a subtask the TaskManager does not run", "ignored a checkpoint acknowledgement", "refused a module", "over the limit", "bad message"] {
        assert!(jm_log.contains(said), "the JobManager did not log '{said}':\n{jm_log}");
    }
    let tm_log = cluster.log("taskmanager-1.log");
    assert!(tm_log.contains("data stream refused") && tm_log.contains("is fed from"), "{tm_log}");
    assert!(tm_log.contains("header of 4294967295 bytes"), "{tm_log}");
}
