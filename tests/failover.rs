//! A control plane that survives: the JobManager SIGKILLed and started again
//! on the same state while its TaskManagers keep running, and a TaskManager
//! killed during the final commit of a bounded job. Real processes on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;

/// Keys of the `sequence-check` job.
const KEYS: u64 = 50;

/// The JobManager's flags in these tests: a lost peer is noticed within 2 s.
const JM_ARGS: &[&str] = &["--heartbeat-timeout", "2"];

/// The JobManager is SIGKILLed while a checkpointed job runs on two
/// TaskManagers, and started again on the same state and addresses. The
/// TaskManagers (not restarted) register again, the job resumes from its
/// latest checkpoint as a new attempt, and its committed output holds every
/// record exactly once. The job keeps its id, and its history says why it restarted.
#[test]
fn a_killed_jobmanager_resumes_its_jobs_with_exactly_once_output() {
    let mut cluster = Cluster::start(2, 1, JM_ARGS);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let n: u64 = 100_000;
    let id = cluster.submit_sequence_check(n, KEYS, Some(12_500), &out, Some(200));
    cluster.wait_status(&id, "RUNNING");
    cluster.wait_for(|c| c.job(&id)["records-in"].as_u64().unwrap_or(0) >= n * 2 / 5, "progress");
    let before = cluster.job(&id);
    assert!(before["checkpoints"]["completed"].as_u64().unwrap() >= 1, "no checkpoint before the kill: {before}");

    let killed = cluster.restart_jobmanager(JM_ARGS);
    cluster.wait_for(|c| { let j = c.job(&id); j["status"] == "RUNNING" && j["attempt"].as_u64() >= Some(1) }, "the job running again");
    eprintln!("the job ran again {:?} after the JobManager was killed", killed.elapsed());
    let finished = cluster.wait_status(&id, "FINISHED");
    for (i, tm) in cluster.taskmanagers.iter_mut().enumerate() {
        assert!(tm.try_wait().unwrap().is_none(), "TaskManager {} exited", i + 1);
    }
    let log = cluster.log("taskmanager-1.log");
    assert!(log.contains("registered again with the JobManager"), "{log}");
    let exceptions = finished["exceptions"].to_string();
    assert!(exceptions.contains("the JobManager restarted; resuming from"), "{finished}");
    // The resumed attempt alone read 60% of the input or less; the first one's records count
    // too, as far as its last report before the kill reached.
    assert!(finished["records-in"].as_u64().unwrap() >= n * 9 / 10, "records of all attempts: {finished}");
    assert_sequences_exactly_once(&out, n, KEYS);

    // A job submitted after the restart gets a fresh id and never touches the first one's output.
    let again = cluster.submit_sequence_check(1000, KEYS, None, &work.path().join("again"), None);
    assert_ne!(again, id);
    cluster.wait_status(&again, "FINISHED");
    assert_sequences_exactly_once(&out, n, KEYS);
    assert_sequences_exactly_once(&work.path().join("again"), 1000, KEYS);
}

/// A job whose socket source cannot be replayed and that has no checkpoint
/// fails after a JobManager restart with the reason, instead of silently
/// starting over; a job that was only waiting for slots keeps waiting.
#[test]
fn after_a_restart_an_unreplayable_job_fails_with_why_and_a_waiting_one_still_waits() {
    let mut cluster = Cluster::start(1, 1, JM_ARGS);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let jar = cluster.upload(&component("wordcount"));
    let socket = cluster.submit(&jar, "stream-word-count", &["--host", "127.0.0.1", "--port", &port], 1);
    cluster.wait_status(&socket, "RUNNING");
    let waiting = cluster.submit(&jar, "stream-word-count", &["--host", "127.0.0.1", "--port", &port], 1);
    assert_eq!(cluster.job(&waiting)["status"], "CREATED");

    cluster.restart_jobmanager(JM_ARGS);
    let failed = cluster.wait_status(&socket, "FAILED");
    let why = failed["failure"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("no completed checkpoint") && why.contains("socket source cannot be replayed"), "{failed}");
    // The slot the failed job held is free for the waiting one once the TaskManager is back.
    cluster.wait_status(&waiting, "RUNNING");
    drop(listener);
}

/// As the issue found it: a TaskManager killed right after the final
/// checkpoint completed, when one sink subtask had committed its last file
/// and the other had not. The job restarts from the final checkpoint and
/// finishes that commit instead of replaying its input: no record twice.
/// Three times over, with the kill at a different moment of the delay.
#[test]
fn a_taskmanager_killed_during_the_final_commit_leaves_exactly_once_output() {
    for attempt in 0..3u64 {
        let mut cluster = Cluster::start(1, 1, JM_ARGS);
        // tm-2 runs subtask 2 of every chain (placement fills TaskManagers in id order); its
        // sink waits before its last commit, long enough to be killed in between.
        cluster.add_taskmanager_with(1, &[("EDDY_FAULT_DELAY_FINAL_COMMIT_MS", "4000")]);
        cluster.wait_for(|c| c.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len() == 2, "registration");
        cluster.add_taskmanager(1);
        cluster.wait_for(|c| c.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len() == 3, "the spare");
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("out");
        let n: u64 = 20_000;
        let id = cluster.submit_sequence_check(n, KEYS, Some(20_000), &out, Some(100));
        let job = cluster.wait_status(&id, "RUNNING");
        assert_eq!(job["tasks"][1]["subtasks"][1]["taskmanager"], "tm-2", "{job}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.log("taskmanager-2.log").contains("delaying the final commit") {
            assert!(Instant::now() < deadline, "tm-2 never reached its final commit: {}", cluster.log("taskmanager-2.log"));
            std::thread::sleep(Duration::from_millis(10));
        }
        // Subtask 1 on tm-1 commits at once; tm-2 dies before it does.
        std::thread::sleep(Duration::from_millis(300 + 500 * attempt));
        cluster.taskmanagers[1].kill().unwrap();
        let finished = cluster.wait_status(&id, "FINISHED");
        assert!(finished["restarts"].as_u64().unwrap() >= 1, "{finished}");
        assert!(finished["exceptions"].to_string().contains("tm-2"), "{finished}");
        assert_sequences_exactly_once(&out, n, KEYS);
    }
}
