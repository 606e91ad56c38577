//! The Kafka connector's throughput and latency (`cargo bench -p eddy --bench kafka`,
//! part of `./dev bench`), against a tansu broker on 127.0.0.1 started here, with
//! librdkafka (the connector's client) as the yardstick in the same run:
//!
//! 1. the broker's own throughput: N records of ~100 bytes produced into a topic of 4
//!    partitions; consumed back; and consumed and produced into another topic by one
//!    librdkafka consumer and producer in one loop (the "client pipe": what a Kafka → map
//!    → Kafka job at best does);
//! 2. Eddy: a bounded `kafka-map` job (`benches/guest`) from that topic through a Wasm
//!    map into another topic at parallelism 2, at least once, timed by the job;
//! 3. end-to-end latency at 100 000 records/s: records carrying their send time through an
//!    unbounded `kafka-map` job, against the broker alone (produce → consume) at that rate.
//!
//! `-- N` sets the number of records (default 2 000 000).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Offset;

#[path = "../tests/common/kafka.rs"]
#[allow(dead_code)]
mod broker;

/// The workspace's target directory (the broker helper finds tansu there).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

const PARTITIONS: i32 = 4;

fn consumer(broker: &broker::Broker, topic: &str, from: Offset) -> BaseConsumer {
    broker.reader(topic, PARTITIONS, from)
}

fn send(p: &BaseProducer, topic: &str, value: &[u8]) {
    broker::send(p, BaseRecord::<(), [u8]>::to(topic).payload(value));
}

/// Records/s of producing `n` records into `topic`, acknowledged.
fn produce(broker: &broker::Broker, topic: &str, n: u64) -> f64 {
    let p = broker.producer();
    let started = Instant::now();
    for i in 0..n {
        send(&p, topic, format!("{i:>12} the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the d").as_bytes());
    }
    p.flush(Duration::from_secs(120)).unwrap();
    n as f64 / started.elapsed().as_secs_f64()
}

/// Records/s of reading `n` records of `topic` (and writing each to `pipe`, if given).
fn consume(broker: &broker::Broker, topic: &str, n: u64, pipe: Option<&str>) -> f64 {
    let c = consumer(broker, topic, Offset::Beginning);
    let p = broker.producer();
    let started = Instant::now();
    let mut seen = 0;
    while seen < n {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            if let Some(out) = pipe {
                send(&p, out, m.payload().unwrap());
                // Serve delivery reports as a well-written client does, not only when the queue is full.
                if seen % 1024 == 0 {
                    p.poll(Duration::ZERO);
                }
            }
            seen += 1;
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    n as f64 / started.elapsed().as_secs_f64()
}

/// The job time `eddy run` reports: `Job '…' finished in S s`.
fn job_seconds(stderr: &str) -> f64 {
    let line = stderr.lines().find(|l| l.contains(" finished in ")).unwrap_or_else(|| panic!("no job time in:\n{stderr}"));
    line.split(" finished in ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
}

/// p50 and p99 of `v`.
fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

/// Latencies of records produced at `rate`/s for `seconds` into `input` and read back from `output`.
fn latencies(broker: &broker::Broker, input: &str, output: &str, rate: u64, seconds: u64) -> Vec<Duration> {
    let c = consumer(broker, output, Offset::End);
    std::thread::sleep(Duration::from_millis(500));
    let base = Instant::now();
    let n = rate * seconds;
    let producer = {
        let p = broker.producer();
        let input = input.to_string();
        std::thread::spawn(move || {
            for i in 0..n {
                let due = Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(base.elapsed()) {
                    if wait > Duration::from_micros(200) {
                        std::thread::sleep(wait);
                    }
                }
                send(&p, &input, format!("{i} {}", base.elapsed().as_nanos()).as_bytes());
                p.poll(Duration::ZERO);
            }
            p.flush(Duration::from_secs(30)).unwrap();
        })
    };
    let mut out = Vec::with_capacity(n as usize);
    let deadline = Instant::now() + Duration::from_secs(seconds + 30);
    while (out.len() as u64) < n && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let text = std::str::from_utf8(m.payload().unwrap()).unwrap();
            let sent: u128 = text.split(' ').nth(1).unwrap().parse().unwrap();
            out.push(base.elapsed().saturating_sub(Duration::from_nanos(sent as u64)));
        }
    }
    producer.join().unwrap();
    assert!(out.len() as u64 >= n * 99 / 100, "only {} of {n} records came back", out.len());
    out
}

fn main() {
    let n: u64 = std::env::args().skip(1).find(|a| !a.starts_with('-')).map_or(2_000_000, |a| a.parse().expect("N"));
    let eddy = target_dir().join("release/eddy");
    let wasm = target_dir().join("wasm32-wasip2/component/bench_ops.wasm");
    let b = broker::Broker::start();
    for t in ["in", "client-pipe", "out", "lat-direct", "lat-in", "lat-out"] {
        b.create_topic(t, PARTITIONS as u32);
    }
    println!("Kafka: {n} records of 100 bytes, {PARTITIONS} partitions, tansu on 127.0.0.1 (memory storage), librdkafka");
    let produced = produce(&b, "in", n);
    let consumed = consume(&b, "in", n, None);
    let piped = consume(&b, "in", n, Some("client-pipe"));
    println!("  broker alone: produce {:.0} records/s, consume {:.0} records/s, client pipe (consume + produce) {:.0} records/s", produced, consumed, piped);

    let run = Command::new(&eddy)
        .args(["run", "-q", "-p", "2", "-c", "kafka-map", wasm.to_str().unwrap(), "--brokers", &b.addr, "--input", "in", "--output", "out", "--bounded"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let seconds = job_seconds(&stderr);
    let rate = n as f64 / seconds;
    println!("  eddy kafka-map p=2 (Kafka -> Wasm map -> Kafka, at least once): {seconds:.2} s, {rate:.0} records/s = {:.0}% of the client pipe", 100.0 * rate / piped);

    let rate = 100_000;
    let (d50, d99) = percentiles(latencies(&b, "lat-direct", "lat-direct", rate, 5));
    let mut job = Command::new(&eddy)
        .args(["run", "-q", "-p", "2", "-c", "kafka-map", wasm.to_str().unwrap(), "--brokers", &b.addr, "--input", "lat-in", "--output", "lat-out"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (j50, j99) = percentiles(latencies(&b, "lat-in", "lat-out", rate, 5));
    let _ = job.kill();
    let _ = job.wait();
    println!("  latency at {rate} records/s: broker alone p50 {d50:.1?} p99 {d99:.1?}; through eddy p50 {j50:.1?} p99 {j99:.1?}");
}
