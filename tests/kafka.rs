//! The Kafka connector against a real Kafka-protocol broker (tansu, started
//! per test on a free loopback port): exactly-once recovery from a SIGKILLed
//! TaskManager with Kafka as the source, no loss through the at-least-once
//! sink, rescaling from a savepoint, event time with idle partitions, a
//! bounded job file, latency, and every kind of bad input.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::Broker;
use common::*;
use serde_json::{json, Value};

/// Keys of the stateful job: record `i` is key `i % KEYS`'s record number `i / KEYS`.
const KEYS: u64 = 50;

/// Produces the JSON numbers `from..to` into `topic`, record `i` into partition
/// `i % partitions`, at about `rate` records per second, on a thread of its own.
fn produce_sequence(broker: &Broker, topic: &str, from: u64, to: u64, partitions: u64, rate: u64) -> std::thread::JoinHandle<()> {
    let producer = broker.producer();
    let topic = topic.to_string();
    std::thread::spawn(move || {
        use rdkafka::producer::{BaseRecord, Producer};
        let started = Instant::now();
        for i in from..to {
            let value = i.to_string();
            common::kafka::send(&producer, BaseRecord::<(), str>::to(&topic).payload(value.as_str()).partition((i % partitions) as i32));
            if (i - from) % 500 == 499 {
                producer.poll(Duration::ZERO);
                let due = Duration::from_secs_f64((i - from + 1) as f64 / rate as f64);
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    })
}

/// Waits until the committed file output under `out` has `n` lines (or more: a duplicate).
fn wait_for_lines(cluster: &Cluster, out: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !out.exists() || read_parts(out).len() < n {
        assert!(Instant::now() < deadline, "the output never had {n} lines; JobManager log:\n{}", cluster.log("jobmanager.log"));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of the offsets `group` committed for the `partitions` of `topic`.
fn committed_offsets(broker: &Broker, group: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", &broker.addr).set("group.id", group).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    committed.elements().iter().map(|e| if let rdkafka::Offset::Offset(n) = e.offset() { n } else { 0 }).sum()
}

/// Where a job's chain-0 subtask 1 runs (the TaskManager to kill).
fn taskmanager_of(job: &Value) -> usize {
    let tm = job["tasks"][0]["subtasks"][1]["taskmanager"].as_str().expect("placed");
    tm.strip_prefix("tm-").unwrap().parse().unwrap()
}

/// Submits `kafka-sequence-check` at parallelism 2, checkpoints every 200 ms.
fn submit_sequence_check(cluster: &Cluster, broker: &Broker, sink: &[&str]) -> String {
    let jar = cluster.upload(&component("stateful"));
    let mut args = vec!["--brokers", &broker.addr, "--topic", "in", "--keys", "50"];
    args.extend_from_slice(sink);
    let body = json!({
        "entry": "kafka-sequence-check", "args": args, "parallelism": 2, "checkpoint-interval-ms": 200,
        "restart-strategy": { "type": "fixed-delay", "attempts": 3, "delay-ms": 200 },
    });
    cluster.submit_with(&jar, body)
}

/// Kills the TaskManager of a Kafka source subtask between 40% and 70% of the
/// `n` records, and waits until the job runs again.
fn kill_a_source_taskmanager_midway(cluster: &mut Cluster, id: &str, n: u64) -> usize {
    let job = cluster.wait_status(id, "RUNNING");
    let victim = taskmanager_of(&job);
    cluster.wait_for(|c| c.job(id)["records-in"].as_u64().unwrap_or(0) as f64 >= 0.45 * n as f64, "progress");
    let before = cluster.job(id);
    let done = before["records-in"].as_u64().unwrap() as f64 / n as f64;
    assert!((0.4..0.7).contains(&done), "the kill must land between 40% and 70% of the input, not at {done:.2}");
    assert!(before["checkpoints"]["completed"].as_u64().unwrap() >= 1, "no checkpoint before the kill: {before}");
    cluster.taskmanagers[victim - 1].kill().unwrap();
    cluster.wait_for(|c| { let j = c.job(id); j["attempt"].as_u64() >= Some(1) && j["status"] == "RUNNING" }, "recovery");
    eprintln!("killed tm-{victim} at {:.0}% of the input", done * 100.0);
    victim
}

/// StreamCheckpointingITCase with Kafka as the source: 60 000 sequence numbers
/// over 50 keys in 4 partitions, produced while the job runs, through keyed
/// state into the two-phase file sink; one TaskManager SIGKILLed between 40%
/// and 70%. The committed output holds every record exactly once.
#[test]
fn a_killed_taskmanager_is_recovered_from_with_exactly_once_output_from_kafka() {
    let broker = Broker::start();
    broker.create_topic("in", 4);
    let mut cluster = Cluster::start(3, 1, &["--heartbeat-timeout", "2"]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let n = 60_000;
    let producer = produce_sequence(&broker, "in", 0, n, 4, 8_000);
    let id = submit_sequence_check(&cluster, &broker, &["--output", out.to_str().unwrap(), "--group", "sequence-check"]);
    let victim = kill_a_source_taskmanager_midway(&mut cluster, &id, n);
    producer.join().unwrap();
    wait_for_lines(&cluster, &out, n as usize);
    // A last checkpoint: anything duplicated would be committed by now too.
    std::thread::sleep(Duration::from_millis(600));
    run_ok(&["cancel", "-m", &cluster.http, &id]);
    let job = cluster.job(&id);
    assert!(job["exceptions"].to_string().contains(&format!("tm-{victim}")), "{job}");
    assert_sequences_exactly_once(&out, n, KEYS);
    // Completed checkpoints committed the offsets to the group, for monitoring: all of them by now.
    assert_eq!(committed_offsets(&broker, "sequence-check", "in", 4), n as i64);
}

/// The same job into a Kafka topic through the at-least-once sink, and the
/// same kill: every record's line reaches the topic. Some come twice (counted):
/// the records replayed after the restore, whose counts may differ from the
/// first time, as the partitions' records interleave differently.
#[test]
fn the_at_least_once_sink_loses_nothing_when_a_taskmanager_dies() {
    let broker = Broker::start();
    broker.create_topic("in", 4);
    broker.create_topic("out", 2);
    let mut cluster = Cluster::start(3, 1, &["--heartbeat-timeout", "2"]);
    let n = 40_000;
    let producer = produce_sequence(&broker, "in", 0, n, 4, 6_000);
    let id = submit_sequence_check(&cluster, &broker, &["--kafka-out", "out", "--guarantee", "at-least-once"]);
    kill_a_source_taskmanager_midway(&mut cluster, &id, n);
    producer.join().unwrap();
    // (key, seq) of every line.
    let mut seen = BTreeSet::new();
    let records = broker.consume("out", 2, Duration::from_secs(90), |r| {
        // Only the newest record is new since the last call.
        let f: Vec<u64> = r.last().unwrap().1.split(' ').map(|x| x.parse().unwrap()).collect();
        seen.insert((f[0], f[1]));
        seen.len() >= n as usize
    });
    let job = cluster.job(&id);
    assert!(seen.len() >= n as usize, "{} of {n} records in the output topic; the job: {job}", seen.len());
    run_ok(&["cancel", "-m", &cluster.http, &id]);
    eprintln!("{} records in the output topic for {n} input records: {} duplicates", records.len(), records.len() - seen.len());
    let expected: BTreeSet<(u64, u64)> = (0..n).map(|i| (i % KEYS, i / KEYS)).collect();
    assert!(seen == expected, "the output topic's records are not the input's");
}

/// Stopped with a savepoint at parallelism 2 after half of a 6-partition topic,
/// resumed at 3 after the other half was produced: nothing lost or repeated.
#[test]
fn a_kafka_job_rescales_from_a_savepoint_without_loss_or_repeat() {
    let broker = Broker::start();
    broker.create_topic("in", 6);
    let cluster = Cluster::start(2, 3, &[]);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let n = 30_000;
    produce_sequence(&broker, "in", 0, n / 2, 6, 1_000_000).join().unwrap();
    let jar = cluster.upload(&component("stateful"));
    let args = ["--brokers", &broker.addr, "--topic", "in", "--keys", "50", "--output", out.to_str().unwrap()];
    let body = json!({ "entry": "kafka-sequence-check", "args": args, "parallelism": 2, "checkpoint-interval-ms": 500 });
    let id = cluster.submit_with(&jar, body);
    cluster.wait_for(|c| c.job(&id)["records-in"].as_u64().unwrap_or(0) >= n / 2, "the first half");
    let savepoints = work.path().join("savepoints");
    let stdout = run_ok(&["stop", "--savepoint", "-m", &cluster.http, &id, savepoints.to_str().unwrap()]);
    let location = stdout.trim().rsplit(' ').next().unwrap().to_string();
    cluster.wait_status(&id, "FINISHED");
    assert_eq!(read_parts(&out).len() as u64, n / 2, "the stopped job committed its half");

    produce_sequence(&broker, "in", n / 2, n, 6, 1_000_000).join().unwrap();
    let body = json!({ "entry": "kafka-sequence-check", "args": args, "parallelism": 3, "checkpoint-interval-ms": 500, "savepointPath": location });
    let resumed = cluster.submit_with(&jar, body);
    let job = cluster.wait_status(&resumed, "RUNNING");
    assert_eq!(job["tasks"][0]["parallelism"], 3, "{job}");
    // The resumed job commits its files at its end: stop it once it read the rest.
    cluster.wait_for(|c| c.job(&resumed)["records-in"].as_u64().unwrap_or(0) >= n / 2, "the second half");
    run_ok(&["stop", "--savepoint", "-m", &cluster.http, &resumed, savepoints.to_str().unwrap()]);
    cluster.wait_status(&resumed, "FINISHED");
    assert_sequences_exactly_once(&out, n, KEYS);
}

/// The example `kafka-word-count`: words of one partition of a three-partition
/// topic, counted per 1 s event-time window of their Kafka timestamps. The two
/// partitions without data go idle and do not hold the watermark back, so the
/// windows fire; their counts reach the output topic keyed by word.
#[test]
fn event_time_windows_fire_although_partitions_have_no_data() {
    let broker = Broker::start();
    broker.create_topic("lines", 3);
    broker.create_topic("counts", 1);
    let wasm = component("wordcount");
    let args = ["run", "--local", "-c", "kafka-word-count", wasm.to_str().unwrap(), "--brokers", &broker.addr];
    let mut job = eddy()
        .args(args)
        .args(["--input", "lines", "--output", "counts", "--window-ms", "1000", "--idle-ms", "300"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = ["the fox", "the dog", "a fox", "later"].map(String::from).to_vec();
    broker.produce("lines", &lines, |_| 0, |i| Some([1_000, 1_100, 1_900, 2_500][i]));
    let records = broker.consume("counts", 1, Duration::from_secs(30), |r| r.len() >= 4);
    let _ = job.kill();
    let _ = job.wait();
    let mut got: Vec<Value> = records.iter().map(|(_, v)| serde_json::from_str(v).unwrap()).collect();
    got.sort_by_key(|v| v["word"].as_str().unwrap().to_string());
    let expected = [("a", 1), ("dog", 1), ("fox", 2), ("the", 2)].map(|(w, n)| json!({ "word": w, "end": 2000, "n": n }));
    assert_eq!(got, expected, "window [1000, 2000) with partitions 1 and 2 idle");
}

/// A bounded Kafka source in a job file (Rust's `tokenize` between a Kafka
/// source and a Kafka sink): it reads what the topic held at the start, ends,
/// and the output topic holds exactly its words.
#[test]
fn a_bounded_job_file_reads_a_topic_to_its_end_and_writes_another() {
    let broker = Broker::start();
    broker.create_topic("text", 2);
    broker.create_topic("words", 1);
    let lines: Vec<String> = (0..500).map(|i| format!("line {i} of Café text")).collect();
    broker.produce("text", &lines, |i| (i % 2) as i32, |_| None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.toml");
    let wasm = component("wordcount");
    std::fs::write(
        &file,
        format!(
            "name = \"kafka words\"\n[components]\nrust = {:?}\n\
             [[step]]\nsource = {{ kafka = {{ brokers = {:?}, topics = [\"text\"], bounded = true }} }}\n\
             [[step]]\ncomponent = \"rust\"\nentry = \"tokenize\"\n\
             [[step]]\nsink = {{ kafka = {{ brokers = {:?}, topic = \"words\", guarantee = \"at-least-once\" }} }}\n",
            wasm.to_str().unwrap(),
            broker.addr,
            broker.addr
        ),
    )
    .unwrap();
    let out = run(&["run", "-p", "2", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut expected: Vec<String> = lines.iter().flat_map(|l| reference_words(l)).collect();
    broker.consume("words", 1, Duration::from_secs(20), |r| r.len() >= expected.len());
    // The job has ended: everything it wrote is there; read it all once more, duplicates included.
    let mut got: Vec<String> = broker.consume("words", 1, Duration::from_secs(2), |_| false).into_iter().map(|r| r.1).collect();
    expected.sort();
    got.sort();
    assert_eq!(got.len(), expected.len(), "words in the output topic");
    assert!(got == expected, "the output topic's words differ from the input's");
}

/// Records produced while a job runs reach its output topic within the buffer
/// timeout plus the broker's own latency: the same producer and consumer
/// measure both, 200 records 10 ms apart each time.
#[test]
fn records_reach_the_output_topic_within_the_brokers_own_latency_and_the_buffer_timeout() {
    let broker = Broker::start();
    broker.create_topic("direct", 1);
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let direct = latencies(&broker, "direct", "direct", |v| v.parse().unwrap());
    let wasm = component("stateful");
    let mut job = eddy()
        .args(["run", "--local", "--buffer-timeout", "10", "-c", "kafka-sequence-check", wasm.to_str().unwrap()])
        .args(["--brokers", &broker.addr, "--topic", "in", "--keys", "1", "--kafka-out", "out"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The job's own start (compiling, connecting) is not latency: wait for a first record through.
    broker.produce("in", &["1000000".to_string()], |_| 0, |_| None);
    broker.consume("out", 1, Duration::from_secs(30), |r| !r.is_empty());
    let through = latencies(&broker, "in", "out", |line| line.split(' ').nth(1).unwrap().parse().unwrap());
    let _ = job.kill();
    let _ = job.wait();
    let p99 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() * 99 / 100]
    };
    let (direct, through) = (p99(direct), p99(through));
    eprintln!("p99 latency: broker alone {direct:?}, through the job {through:?}");
    assert!(through <= direct * 2 + Duration::from_millis(10 + 100), "through the job {through:?}, the broker alone {direct:?}");
}

/// Produces the numbers 0..200 into `input` 10 ms apart and answers how long
/// each took to appear in `output` (`seq` reads a number's index from an output value).
fn latencies(broker: &Broker, input: &str, output: &str, seq: impl Fn(&str) -> usize) -> Vec<Duration> {
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseRecord, Producer};
    let consumer = broker.reader(output, 1, rdkafka::Offset::End);
    std::thread::sleep(Duration::from_millis(500));
    let producer = broker.producer();
    let n = 200;
    let mut sent = vec![None; n];
    let mut got = vec![None; n];
    let start = Instant::now();
    let mut next = 0;
    while got.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(30) {
        if next < n && start.elapsed() >= Duration::from_millis(10 * next as u64) {
            producer.send(BaseRecord::<(), str>::to(input).payload(&next.to_string())).unwrap();
            producer.poll(Duration::ZERO);
            sent[next] = Some(Instant::now());
            next += 1;
        }
        producer.poll(Duration::ZERO);
        if let Some(m) = consumer.poll(Duration::from_millis(1)) {
            let m = m.unwrap();
            let i = seq(std::str::from_utf8(m.payload().unwrap()).unwrap());
            if i < n && got[i].is_none() {
                got[i] = Some(Instant::now());
            }
        }
    }
    producer.flush(Duration::from_secs(5)).unwrap();
    sent.iter().zip(&got).map(|(s, g)| g.expect("every record arrives").duration_since(s.unwrap())).collect()
}

/// Bad input of every kind gets one clear line, never a hang: an unreachable
/// broker, an unknown topic, a value that is not the job's format, and a
/// broker that dies while the job runs.
#[test]
fn bad_brokers_topics_and_records_fail_with_one_clear_line() {
    let wasm = component("stateful");
    let scratch = tempfile::tempdir().unwrap();
    let never = scratch.path().join("never").to_str().unwrap().to_string();
    let job = |brokers: &str, topic: &str| {
        let args = ["run", "--local", "-c", "kafka-sequence-check", wasm.to_str().unwrap(), "--brokers", brokers, "--topic", topic];
        let started = Instant::now();
        let err = run_err(&[&args[..], &["--output", &never]].concat());
        (error_line(&err).to_string(), started.elapsed())
    };
    let closed = format!("127.0.0.1:{}", common::kafka::free_port());
    let (line, took) = job(&closed, "in");
    assert!(line.contains(&format!("kafka source: cannot reach kafka brokers {closed}")), "{line}");
    assert!(took < Duration::from_secs(30), "{took:?}");

    let broker = Broker::start();
    let (line, _) = job(&broker.addr, "nope");
    assert!(line.contains(&format!("kafka topic \"nope\" does not exist on brokers {}", broker.addr)), "{line}");
    let (line, _) = job("http://x:1", "in");
    assert!(line.contains("kafka broker list \"http://x:1\" is not HOST:PORT"), "{line}");

    broker.create_topic("bad", 1);
    broker.produce("bad", &["1".into(), "2".into(), "{oops".into()], |_| 0, |_| None);
    let (line, _) = job(&broker.addr, "bad");
    assert!(line.contains("kafka source: topic bad partition 0 offset 2: value is not JSON"), "{line}");

    // A broker that dies under a running job: the job fails, saying so, instead of waiting forever.
    let mut dying = Broker::start();
    dying.create_topic("in", 1);
    dying.produce("in", &["1".into()], |_| 0, |_| None);
    let addr = dying.addr.clone();
    let wasm2 = wasm.clone();
    let dying_out = scratch.path().join("dying").to_str().unwrap().to_string();
    let waiter = std::thread::spawn(move || {
        let args = ["run", "--local", "-c", "kafka-sequence-check", wasm2.to_str().unwrap(), "--brokers", &addr, "--topic", "in"];
        let started = Instant::now();
        let err = run_err(&[&args[..], &["--output", &dying_out]].concat());
        (error_line(&err).to_string(), started.elapsed())
    });
    std::thread::sleep(Duration::from_secs(3));
    dying.kill();
    let (line, took) = waiter.join().unwrap();
    assert!(line.contains(&format!("cannot reach kafka brokers {}", dying.addr)), "{line}");
    assert!(took < Duration::from_secs(60), "{took:?}");
}



/// On a hosted cluster: brokers off the tenant's allow-list are refused at
/// submission; a secret is usable by its own tenant only, under one message
/// for "another's" and "none"; and a secret's password appears nowhere: not
/// in the job as the API shows it, its exceptions, nor any process's log.
#[test]
fn tenants_reach_only_listed_brokers_and_their_own_secrets_which_never_show() {
    let broker = Broker::start();
    broker.create_topic("in", 1);
    broker.create_topic("out", 1);
    let work = tempfile::tempdir().unwrap();
    let secrets = work.path().join("secrets.toml");
    std::fs::write(
        &secrets,
        "[kafka.acme-plain]\ntenant = \"acme\"\n\
         [kafka.acme-sasl]\ntenant = \"acme\"\nsecurity-protocol = \"sasl-plaintext\"\nsasl-mechanism = \"scram-sha-512\"\n\
         username = \"etl\"\npassword = \"hunter2-do-not-print\"\n\
         [kafka.zeta-only]\ntenant = \"zeta\"\n",
    )
    .unwrap();
    let cluster = Cluster::start(1, 2, &["--secrets", secrets.to_str().unwrap()]);
    let admin = cluster.dir.path().join("admin.token");
    let (m, wasm) = (cluster.http.as_str(), component("stateful"));
    // The key file goes after the (sub)command: what follows a component is the job's.
    let eddy_as = |key: &Path, args: &[&str]| {
        let at = if matches!(args[0], "tenant" | "token") { 2 } else { 1 };
        let mut all = args.to_vec();
        all.splice(at..at, ["--token-file", key.to_str().unwrap()]);
        eddy().env_remove("EDDY_TOKEN").args(&all).output().unwrap()
    };
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    ok(eddy_as(&admin, &["tenant", "create", "acme", "-m", m]));
    let key = work.path().join("acme.key");
    ok(eddy_as(&admin, &["token", "create", "-m", m, "--tenant", "acme", "--role", "developer", "--output", key.to_str().unwrap()]));
    let args_with = |secret: &'static str| {
        let mut args = vec!["run", "-m", m, "-c", "kafka-sequence-check", wasm.to_str().unwrap(), "--brokers", &broker.addr];
        args.extend(["--topic", "in", "--kafka-out", "out"]);
        if !secret.is_empty() {
            args.extend(["--secret", secret]);
        }
        args
    };
    let submit = |secret: &'static str| eddy_as(&key, &args_with(secret));
    let refused = submit("");
    assert!(!refused.status.success());
    let line = error_line(&String::from_utf8_lossy(&refused.stderr)).to_string();
    assert!(line.ends_with(&format!("kafka broker {} is not on the tenant's allow-list", broker.addr)), "{line}");

    ok(eddy_as(&admin, &["tenant", "update", "acme", "-m", m, "--allow-socket", &broker.addr]));
    for secret in ["zeta-only", "nope"] {
        let out = submit(secret);
        let line = error_line(&String::from_utf8_lossy(&out.stderr)).to_string();
        assert!(line.ends_with(&format!("unknown kafka secret \"{secret}\"")), "{line}");
    }
    // Its own plaintext secret: the job runs and reads the topic.
    broker.produce("in", &["7".into()], |_| 0, |_| None);
    let args = args_with("acme-plain");
    let mut running = eddy()
        .env_remove("EDDY_TOKEN")
        .args([args[0], "--token-file", key.to_str().unwrap()])
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = broker.consume("out", 1, Duration::from_secs(30), |r| !r.is_empty());
    let _ = running.kill();
    let _ = running.wait();
    assert_eq!(got.first().map(|r| r.1.as_str()), Some("7 0 1 7"), "the job with its own secret ran");
    // Its own SASL secret against a broker without SASL: the job fails, and the password is nowhere.
    let _ = submit("acme-sasl");
    let jobs = cluster.get("/jobs");
    let everything = format!("{jobs} {}", jobs["jobs"].as_array().unwrap().iter().map(|j| cluster.job(j["id"].as_str().unwrap()).to_string()).collect::<String>());
    let logs: String = ["jobmanager.log", "taskmanager-1.log"].iter().map(|l| cluster.log(l)).collect();
    assert!(!everything.contains("hunter2") && !logs.contains("hunter2"), "the password was shown");
    assert!(everything.contains("acme-sasl"), "the secret's name is shown: {everything}");
}
