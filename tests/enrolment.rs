//! TaskManager enrolment with real processes on 127.0.0.1: join tokens
//! (unknown, expired, revoked), certificates of another CA, revoked
//! TaskManagers, roles that cannot be swapped, and renewal before expiry.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;

/// `eddy taskmanager` against the cluster with a token, the cluster's CA and a
/// state directory; waits for it to exit, and kills it after 30 s: one that was
/// wrongly admitted fails the test instead of hanging it.
fn taskmanager_with(cluster: &Cluster, token: &str, state: &std::path::Path) -> Output {
    let mut cmd = eddy();
    cmd.args(["taskmanager", "--jobmanager", &cluster.rpc, "--reconnect-timeout", "2s", "--ca"])
        .arg(cluster.dir.path().join("ca.pem"))
        .arg("--state-dir")
        .arg(state)
        .env("EDDY_JOIN_TOKEN", token);
    output_within(cmd, Duration::from_secs(30))
}

fn output_within(mut cmd: std::process::Command, limit: Duration) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id().to_string();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(limit).is_err() {
            let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    out
}

fn stderr_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    error_line(&String::from_utf8_lossy(&out.stderr)).to_string()
}

fn admin(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-m", cluster.http.as_str()]);
    run_ok(&all)
}

#[test]
fn taskmanagers_without_a_valid_join_token_or_with_a_foreign_certificate_are_refused() {
    let mut cluster = Cluster::start(1, 1, &[]);
    let state = tempfile::tempdir().unwrap();

    let none = eddy()
        .args(["taskmanager", "--jobmanager", &cluster.rpc, "--ca"])
        .arg(cluster.dir.path().join("ca.pem"))
        .env_remove("EDDY_JOIN_TOKEN")
        .output()
        .unwrap();
    assert!(stderr_line(&none).starts_with("error: this TaskManager has no certificate: give it a join token"), "{none:?}");

    let unknown = taskmanager_with(&cluster, "eddyjoin_000000000000_0123", state.path());
    assert!(stderr_line(&unknown).ends_with("the JobManager refused the enrolment: unknown join token"), "{unknown:?}");

    let short = admin(&cluster, &["taskmanager-token", "create", "--ttl", "1s", "--description", "short"]);
    std::thread::sleep(Duration::from_millis(1200));
    let expired = taskmanager_with(&cluster, short.trim(), state.path());
    assert!(stderr_line(&expired).contains("join token") && stderr_line(&expired).ends_with("expired"), "{expired:?}");

    let revoked_token = admin(&cluster, &["taskmanager-token", "create"]);
    let id = revoked_token.trim().strip_prefix("eddyjoin_").unwrap().split('_').next().unwrap().to_string();
    assert_eq!(admin(&cluster, &["taskmanager-token", "revoke", &id]).trim(), format!("Revoked join token {id}"));
    let revoked = taskmanager_with(&cluster, revoked_token.trim(), state.path());
    assert!(stderr_line(&revoked).ends_with(&format!("join token {id} was revoked")), "{revoked:?}");
    assert!(!state.path().join("taskmanager.pem").exists(), "a refused enrolment left a certificate");

    // A certificate of another CA, for the right JobManager: refused in the handshake.
    let alien = tempfile::tempdir().unwrap();
    let alien_ca = eddy::net::ClusterCa::load_or_create(alien.path()).unwrap();
    let (key, csr) = eddy::net::tls::new_csr().unwrap();
    std::fs::write(state.path().join("taskmanager.pem"), alien_ca.sign_taskmanager(&csr, "tm-1", Duration::from_secs(600)).unwrap()).unwrap();
    std::fs::write(state.path().join("taskmanager.key"), key.serialize_pem()).unwrap();
    let foreign = taskmanager_with(&cluster, "", state.path());
    assert!(stderr_line(&foreign).contains(&format!("the JobManager at {}", cluster.rpc)), "{foreign:?}");
    assert!(stderr_line(&foreign).contains("certificate") || stderr_line(&foreign).contains("TLS") || stderr_line(&foreign).contains("alert"), "{foreign:?}");
    assert!(cluster.log("jobmanager.log").contains("refused a cluster connection"));

    // None of them registered; a good token still enrols, as the next identity.
    assert_eq!(cluster.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len(), 1);
    cluster.add_taskmanager(1);
    cluster.wait_for(|c| c.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len() == 2, "the second TaskManager");
    assert_eq!(cluster.get("/taskmanagers")["taskmanagers"][1]["id"], "tm-2");
    let list = admin(&cluster, &["taskmanager-token", "list"]);
    let rows: Vec<&str> = list.lines().collect();
    assert!(rows[0].starts_with("ID") && rows[0].contains("ENROLLED"), "{list}");
    assert!(rows.iter().any(|r| r.contains(" expired ") && r.ends_with("short")), "{list}");
    assert!(rows.iter().any(|r| r.starts_with(&id) && r.contains(" revoked ")), "{list}");
    assert!(rows.iter().any(|r| r.contains(" active ") && r.contains(" 2 ") && r.ends_with("test")), "{list}");
}

#[test]
fn a_revoked_taskmanager_is_refused_and_roles_cannot_be_swapped() {
    let mut cluster = Cluster::start(2, 1, &[]);
    let tm2_state = cluster.dir.path().join("taskmanager-2");
    assert!(tm2_state.join("taskmanager.pem").exists());

    // Revoked: disconnected now, and its certificate refused when it comes back.
    assert_eq!(
        admin(&cluster, &["revoke-taskmanager", "tm-2"]).trim(),
        "Revoked TaskManager tm-2: it is disconnected and its certificates are refused"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = cluster.taskmanagers[1].try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the revoked TaskManager did not stop: {}", cluster.log("taskmanager-2.log"));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let log = cluster.log("taskmanager-2.log");
    assert!(error_line(&log).ends_with("refused this TaskManager: TaskManager tm-2 was revoked"), "{log}");
    let tms = cluster.get("/taskmanagers");
    assert_eq!(tms["taskmanagers"].as_array().unwrap().len(), 1, "{tms}");
    let again = taskmanager_with(&cluster, "", &tm2_state);
    assert!(stderr_line(&again).ends_with("TaskManager tm-2 was revoked"), "{again:?}");

    let ca_pem = std::fs::read_to_string(cluster.dir.path().join("ca.pem")).unwrap();
    let join = cluster.join_token();
    let tm1 = eddy::taskmanager::identity::Credentials::load(&cluster.dir.path().join("taskmanager-1"), &ca_pem).unwrap().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fake_jobmanager = rt.block_on(async {
        // The JobManager's certificate (made here with the CA key, as only the
        // JobManager could) does not register as a TaskManager.
        let jm = eddy::net::ClusterCa::load(cluster.dir.path()).unwrap().issue_jobmanager().unwrap();
        let endpoint = eddy::net::endpoint("127.0.0.1:0".parse().unwrap(), &jm, eddy::net::Clients::Certified).unwrap();
        let conn = eddy::net::connect(&endpoint, cluster.rpc.parse().unwrap(), eddy::net::JOBMANAGER_NAME).await.unwrap();
        let register = eddy::protocol::ToJobManager::Register { slots: 4, data_addr: endpoint.local_addr().unwrap(), running: vec![] };
        let answer: anyhow::Result<eddy::protocol::Registered> = eddy::net::codec::call(&conn, &register).await;
        assert!(answer.is_err(), "the JobManager's certificate registered as a TaskManager");
        assert!(format!("{:?}", conn.close_reason()).contains("not a TaskManager certificate"), "{:?}", conn.close_reason());

        // Revoked while connected but not registered yet: its registration is refused.
        let tm3 = eddy::taskmanager::identity::enrol(cluster.rpc.parse().unwrap(), &ca_pem, &join).await.unwrap();
        let endpoint = eddy::net::endpoint("127.0.0.1:0".parse().unwrap(), &tm3.node().unwrap(), eddy::net::Clients::Certified).unwrap();
        let conn = eddy::net::connect(&endpoint, cluster.rpc.parse().unwrap(), eddy::net::JOBMANAGER_NAME).await.unwrap();
        let out = tokio::task::spawn_blocking({
            let (http, id) = (cluster.http.clone(), tm3.identity.clone());
            move || run(&["revoke-taskmanager", &id, "-m", &http])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let register = eddy::protocol::ToJobManager::Register { slots: 1, data_addr: endpoint.local_addr().unwrap(), running: vec![] };
        let answer: anyhow::Result<eddy::protocol::Registered> = eddy::net::codec::call(&conn, &register).await;
        assert!(answer.is_err(), "a revoked TaskManager registered on a connection made before its revocation");
        assert!(format!("{:?}", conn.close_reason()).contains("was revoked"), "{:?}", conn.close_reason());

        // A TaskManager's certificate serving as the JobManager.
        eddy::net::endpoint("127.0.0.1:0".parse().unwrap(), &tm1.node().unwrap(), eddy::net::Clients::MayEnrol).unwrap()
    });
    let fake_addr = fake_jobmanager.local_addr().unwrap().to_string();
    let tm1_copy = tempfile::tempdir().unwrap();
    for f in ["taskmanager.pem", "taskmanager.key"] {
        std::fs::copy(cluster.dir.path().join("taskmanager-1").join(f), tm1_copy.path().join(f)).unwrap();
    }
    let ca = cluster.dir.path().join("ca.pem");
    let fooled = rt.block_on(async move {
        tokio::spawn(async move {
            while let Some(incoming) = fake_jobmanager.accept().await {
                let _ = incoming.await;
            }
        });
        let run = move || {
            let mut cmd = eddy();
            cmd.args(["taskmanager", "--jobmanager", &fake_addr, "--reconnect-timeout", "2s", "--ca"]).arg(ca).arg("--state-dir").arg(tm1_copy.path());
            output_within(cmd, Duration::from_secs(30))
        };
        tokio::task::spawn_blocking(run).await.unwrap()
    });
    let line = stderr_line(&fooled);
    assert!(line.starts_with("error: cannot connect to the JobManager at") && line.contains("certificate"), "{fooled:?}");
    assert_eq!(cluster.get("/taskmanagers")["taskmanagers"].as_array().unwrap().len(), 1);
    assert!(cluster.jobmanager.try_wait().unwrap().is_none() && cluster.taskmanagers[0].try_wait().unwrap().is_none());
}

#[test]
fn certificates_are_renewed_before_they_expire_and_the_renewed_ones_connect() {
    let mut cluster = Cluster::start(2, 1, &["--taskmanager-cert-lifetime", "10s"]);
    let cert = |i: usize| std::fs::read_to_string(cluster.dir.path().join(format!("taskmanager-{i}/taskmanager.pem"))).unwrap();
    let first = cert(1);
    // Past the first certificates' expiry (10 s; renewed at 6.7 s).
    std::thread::sleep(Duration::from_secs(12));
    assert_ne!(cert(1), first, "the certificate in the state directory was not renewed");
    assert!(cluster.log("taskmanager-1.log").contains("renewed its certificate"), "{}", cluster.log("taskmanager-1.log"));

    // A job across both TaskManagers opens their data connections now, with the renewed certificates.
    let work = tempfile::tempdir().unwrap();
    let (input, text) = word_count_input(work.path());
    let out = work.path().join("out");
    let wasm = component("wordcount");
    run_ok(&["run", "-m", &cluster.http, "-p", "2", "-c", "word-count", wasm.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert_eq!(parse_counts(read_parts(&out)), reference_counts(&text));

    // A TaskManager restarted from its state directory needs no token: its kept certificate is valid.
    cluster.taskmanagers[1].kill().unwrap();
    cluster.taskmanagers[1].wait().unwrap();
    let log = std::fs::File::create(cluster.dir.path().join("taskmanager-2b.log")).unwrap();
    let restarted = eddy()
        .args(["taskmanager", "--jobmanager", &cluster.rpc, "--ca"])
        .arg(cluster.dir.path().join("ca.pem"))
        .arg("--state-dir")
        .arg(cluster.dir.path().join("taskmanager-2"))
        .env_remove("EDDY_JOIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    cluster.taskmanagers[1] = restarted;
    cluster.wait_for(
        |c| c.log("taskmanager-2b.log").contains("TaskManager tm-2: 1 slots"),
        "the restarted TaskManager to register as tm-2",
    );
}
