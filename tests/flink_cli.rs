//! Apache Flink 2.3's own command line (`org.apache.flink.client.cli.CliFrontend`,
//! from the jars `tests/tools/install-flink.sh` caches, on Java 17) lists,
//! savepoints, stops and cancels jobs of an Eddy cluster of real processes.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cluster::Cluster;

/// Where `install-flink.sh` (and `../shared/bench/flink/run.sh`) keep Flink's jars.
fn flink_lib() -> PathBuf {
    let cache = std::env::var_os("FLINK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/flink-anchor"));
    let lib = cache.join("lib");
    assert!(lib.join("flink-dist-2.3.0.jar").exists(), "Flink's jars are in {} (tests/tools/install-flink.sh)", lib.display());
    lib
}

/// `flink ARGS -m HTTP` with the cluster's admin key in Flink's header variable; answers stdout and stderr.
fn flink(cluster: &Cluster, conf: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", flink_lib().display()))
        .arg("org.apache.flink.client.cli.CliFrontend")
        .args(args)
        .args(["-m", &cluster.http])
        .env("FLINK_CONF_DIR", conf)
        .env("FLINK_REST_CLIENT_HEADERS", format!("Authorization:Bearer {}", cluster.token))
        .output()
        .expect("java runs (tests/tools/install-flink.sh installs it)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn flinks_cli_lists_savepoints_stops_and_cancels_eddy_jobs() {
    let cluster = Cluster::start(1, 4, &[]);
    let work = tempfile::tempdir().unwrap();
    let conf = work.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("config.yaml"), "").unwrap();

    // Two endless jobs: 50 records a second each, checkpointed, into file sinks.
    let a = cluster.submit_sequence_check(1_000_000, 10, Some(50), &work.path().join("out-a"), None);
    let b = cluster.submit_sequence_check(1_000_000, 10, Some(50), &work.path().join("out-b"), None);
    cluster.wait_status(&a, "RUNNING");
    cluster.wait_status(&b, "RUNNING");

    let (ok, listed) = flink(&cluster, &conf, &["list"]);
    assert!(ok, "{listed}");
    assert!(listed.contains("Running/Restarting Jobs"), "{listed}");
    for id in [&a, &b] {
        assert!(listed.contains(&format!(" : {id} : sequence-check (RUNNING)")), "{listed}");
    }

    let savepoints = work.path().join("savepoints");
    let (ok, said) = flink(&cluster, &conf, &["savepoint", &a, savepoints.to_str().unwrap()]);
    assert!(ok, "{said}");
    let path = said.lines().find_map(|l| l.strip_prefix("Savepoint completed. Path: ")).unwrap_or_else(|| panic!("{said}")).trim().to_string();
    assert!(std::path::Path::new(&path).join("_metadata").exists(), "{path}: {said}");
    assert_eq!(cluster.job(&a)["status"], "RUNNING", "a savepoint leaves the job running");

    let (ok, said) = flink(&cluster, &conf, &["stop", "--savepointPath", savepoints.to_str().unwrap(), &a]);
    assert!(ok, "{said}");
    assert!(said.contains("Savepoint completed. Path: "), "{said}");
    cluster.wait_status(&a, "FINISHED");

    let (ok, said) = flink(&cluster, &conf, &["cancel", &b]);
    assert!(ok, "{said}");
    assert!(said.contains(&format!("Cancelled job {b}.")), "{said}");
    cluster.wait_status(&b, "CANCELED");

    let (ok, listed) = flink(&cluster, &conf, &["list", "--all"]);
    assert!(ok, "{listed}");
    assert!(listed.contains(&format!(" : {a} : sequence-check (FINISHED)")) && listed.contains(&format!(" : {b} : sequence-check (CANCELED)")), "{listed}");

    // Without the key Flink's CLI is refused with the API's reason.
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", flink_lib().display()))
        .args(["org.apache.flink.client.cli.CliFrontend", "list", "-m", &cluster.http])
        .env("FLINK_CONF_DIR", &conf)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("missing API key"), "{text}");
}
