//! A real Kafka-protocol broker for the Kafka tests: tansu (installed by
//! `tests/tools/install-tansu.sh` under target/tools), started on a free
//! loopback port with in-memory storage and killed when dropped; and a
//! producer and a consumer of librdkafka (the client the connector uses).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A tansu broker on 127.0.0.1.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`, what jobs pass as their brokers.
    pub addr: String,
    /// Its log, for failures.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

fn tansu() -> PathBuf {
    let path = super::target_dir().join("tools/bin/tansu");
    assert!(path.exists(), "tansu not found at {}: run tests/tools/install-tansu.sh (./dev test does)", path.display());
    path
}

/// Queues `record`, waiting while the producer's queue is full.
pub fn send<K: rdkafka::message::ToBytes + ?Sized, V: rdkafka::message::ToBytes + ?Sized>(p: &BaseProducer, record: BaseRecord<'_, K, V>) {
    let mut record = record;
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                p.poll(Duration::from_millis(1));
            }
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// Starts an empty broker and waits until it accepts connections.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts an empty broker with extra arguments (`--authentication`).
    pub fn start_with(extra: &[&str]) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.path().join("tansu.log");
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &format!("tcp://{addr}"), "--advertised-listener-url", &format!("tcp://{addr}")])
            .args(["--storage-engine", "memory://tansu/"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, addr, log, _dir: dir }
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args(["topic", "create", "--broker", &format!("tcp://{}", self.addr), "--partitions", &partitions.to_string(), topic])
            .output()
            .unwrap();
        assert!(out.status.success(), "cannot create topic {topic}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A producer that waits for every broker's acknowledgement.
    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new().set("bootstrap.servers", &self.addr).set("acks", "all").set("linger.ms", "1").create().unwrap()
    }

    /// Produces `values` (as UTF-8) to `topic`, `partition_of(i)` choosing each one's
    /// partition, with timestamps `timestamp_of(i)`; waits until all are acknowledged.
    ///
    /// One record per batch: tansu 0.6 answers a partition's end offset (ListOffsets,
    /// latest) with the base offset of its last batch + 1, not the offset after its
    /// last record, so a bounded source, which stops at the ends the partitions had
    /// when it started, would stop early after batches of several records.
    pub fn produce(&self, topic: &str, values: &[String], partition_of: impl Fn(usize) -> i32, timestamp_of: impl Fn(usize) -> Option<i64>) {
        let p: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", &self.addr).set("acks", "all").set("batch.num.messages", "1").create().unwrap();
        for (i, v) in values.iter().enumerate() {
            let mut r = BaseRecord::<(), str>::to(topic).payload(v.as_str()).partition(partition_of(i));
            if let Some(ts) = timestamp_of(i) {
                r = r.timestamp(ts);
            }
            send(&p, r);
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Every record of `topic` (all of its `partitions`) as `(partition, value)`,
    /// reading until `done` (asked after each record) says the records are all
    /// there, or `timeout` passes.
    pub fn consume(
        &self,
        topic: &str,
        partitions: i32,
        timeout: Duration,
        mut done: impl FnMut(&[(i32, String)]) -> bool,
    ) -> Vec<(i32, String)> {
        let c = self.reader(topic, partitions, Offset::Beginning);
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                out.push((m.partition(), String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()));
                if done(&out) {
                    break;
                }
            }
        }
        out
    }

    /// A consumer of partitions `0..partitions` of `topic` from `from`, set as
    /// the source is (connectors/kafka/source.rs): uncommitted records, and
    /// fetches that wait at most 10 ms (tansu answers a fetch only when its wait
    /// is over), so that what the tests measure directly pays what the job pays.
    pub fn reader(&self, topic: &str, partitions: i32, from: Offset) -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("group.id", "eddy-test-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_uncommitted")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, from).unwrap();
        }
        c.assign(&tpl).unwrap();
        c
    }

    /// Kills the broker (its in-memory topics go with it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the broker logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
