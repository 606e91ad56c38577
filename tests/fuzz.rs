//! Fuzzing inside the test suite: what the host reads from peers and disks
//! (cluster messages, data-stream frames, snapshot files, packed batches and
//! the JSON inside them, the batches of Python components) gets mutations of the corpus in `tests/fuzz/<target>/`
//! for a bounded time (`EDDY_FUZZ_SECONDS` per target, 3 by default). A
//! decoder may refuse an input, never panic (nor abort on an allocation of a
//! claimed length). An input that made one panic is written under
//! `target/fuzz-crashes/`; copied into the corpus, it is replayed on every run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eddy::checkpoint::{snapshot, OperatorState};
use eddy::net::frame;
use eddy::protocol::{ChannelHeader, Registered, ToJobManager, ToTaskManager};

/// A small, fast generator; the seed is printed so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that make length fields interesting.
const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                out[i..i + 4].copy_from_slice(&INTERESTING[rng.below(INTERESTING.len())].to_le_bytes());
            }
            3 => out.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let piece = out[a.min(b)..a.max(b)].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, piece);
            }
            5 => {
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, junk);
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(out.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
        }
    }
    out
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz").join(target)
}

/// Runs `decode` over the corpus of `target`, then over mutations of it until the time is up.
fn fuzz(target: &str, decode: impl Fn(&[u8])) {
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("no corpus for {target}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!corpus.is_empty(), "empty corpus for {target}");
    corpus.push(Vec::new());
    let seconds: f64 = std::env::var("EDDY_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut runs = 0u64;
    let mut input_no = 0;
    loop {
        let input = if input_no < corpus.len() {
            corpus[input_no].clone()
        } else {
            let from = rng.below(corpus.len());
            mutate(&mut rng, &corpus[from], &corpus)
        };
        input_no += 1;
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&input))) {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-crashes").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("crash-{seed}-{runs}"));
            std::fs::write(&file, &input).unwrap();
            std::panic::resume_unwind(Box::new(format!("{target}: the decoder panicked on {} (seed {seed}): {panic:?}", file.display())));
        }
        runs += 1;
        if input_no > corpus.len() && Instant::now() > deadline {
            break;
        }
    }
    eprintln!("{target}: {runs} inputs in {seconds} s, seed {seed}, no panic");
}

/// Certificate signing requests, which peers without a certificate send the
/// JobManager to enrol: it parses them, checks their signature and signs.
#[test]
fn certificate_signing_requests() {
    let dir = tempfile::tempdir().unwrap();
    let ca = eddy::net::ClusterCa::load_or_create(dir.path()).unwrap();
    fuzz("csr", |bytes| {
        let Ok(text) = std::str::from_utf8(bytes) else { return };
        let _ = ca.sign_taskmanager(text, "tm-1", std::time::Duration::from_secs(60));
    });
}

/// A CSR as `eddy taskmanager` makes one, fixed so that the corpus stays the same.
const CSR: &str = concat!(
    "-----BEGIN CERTIFICATE REQUEST-----\n",
    "MIG5MGICAQAwADBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABBg4p/BIXQm+F6d1\n",
    "UtQ8JWpE3L7uEpyffGbdzLAUluwbwN+bY0mMy8Gsvu3oc6byk58dQ7Cx7d4faekv\n",
    "qpKuV5ugADAKBggqhkjOPQQDAgNHADBEAiBED3/gWoznAHr5aHcAM7VBTlMQ8PAZ\n",
    "Kr740Ftay2pNuwIgDhzDmUm+uvUEKwFvR2q/5Qf7WyQdMYnI4YhZWQjfwp8=\n",
    "-----END CERTIFICATE REQUEST-----\n",
);

#[test]
fn snapshot_files() {
    fuzz("snapshot", |bytes| {
        let _ = snapshot::decode(bytes);
    });
}

#[test]
fn data_stream_frames() {
    fuzz("frame", |bytes| {
        let mut rest = bytes;
        while rest.len() >= frame::HEAD {
            let Ok((tag, len)) = frame::head(rest[..frame::HEAD].try_into().unwrap()) else { return };
            let end = (frame::HEAD + len).min(rest.len());
            if frame::decode(tag, rest[frame::HEAD..end].to_vec()).is_err() {
                return;
            }
            rest = &rest[end..];
        }
    });
}

#[test]
fn packed_batches_and_their_json() {
    fuzz("framing", |bytes| {
        for record in eddy::framing::records(bytes) {
            let Ok(r) = record else { return };
            let _ = eddy::json::Number::parse(r.value);
            let _ = eddy::json::array_element(r.value, 1);
            let mut out = Vec::new();
            eddy::json::write_as_text(&mut out, r.value);
        }
    });
}

/// What a Python component returns (a marshal tuple the host turns into framed JSON), and
/// the framed JSON the host turns into marshal for it.
#[test]
fn python_batches() {
    fuzz("marshal", |bytes| {
        if let Ok(framed) = eddy::marshal::batch_from_marshal(bytes) {
            let _ = eddy::marshal::batch_to_marshal(&framed, &mut Vec::new());
        }
        let _ = eddy::marshal::batch_to_marshal(bytes, &mut Vec::new());
    });
}

#[test]
fn cluster_messages() {
    fuzz("message", |bytes| {
        let _ = serde_json::from_slice::<ToJobManager>(bytes);
        let _ = serde_json::from_slice::<ToTaskManager>(bytes);
        let _ = serde_json::from_slice::<ChannelHeader>(bytes);
        let _ = serde_json::from_slice::<Registered>(bytes);
    });
}

/// A snapshot file of format 1, as hosts before checksums wrote it (its broadcast state left out).
fn snapshot_v1(state: &[(String, OperatorState)]) -> Vec<u8> {
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    let mut out = b"EDDYSNP1".to_vec();
    out.extend_from_slice(&(state.len() as u32).to_le_bytes());
    for (uid, op) in state {
        bytes(&mut out, uid.as_bytes());
        out.extend_from_slice(&(op.keyed.len() as u64).to_le_bytes());
        for (k, v) in &op.keyed {
            bytes(&mut out, k);
            bytes(&mut out, v);
        }
        out.extend_from_slice(&(op.items.len() as u64).to_le_bytes());
        for item in &op.items {
            bytes(&mut out, item);
        }
    }
    out
}

/// The seed corpus, made with the host's own encoders.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let tmp = tempfile::tempdir().unwrap();
    let states = [
        vec![("op".to_string(), OperatorState { keyed: vec![(b"\"k\"".to_vec(), b"{\"n\":1}".to_vec())], items: vec![b"[0,10]".to_vec()], broadcast: vec![(Vec::new(), b"rules".to_vec())] })],
        vec![("a".to_string(), OperatorState::default()), ("b".to_string(), OperatorState { items: vec![b"x".to_vec(); 3], ..OperatorState::default() })],
    ];
    for (i, state) in states.iter().enumerate() {
        snapshot::write(&tmp.path().join("s"), state).unwrap();
        seeds.push(("snapshot", format!("seed-{i}"), std::fs::read(tmp.path().join("s")).unwrap()));
        // The same state (but broadcast) in format 1, no checksum, whose decoding mutations reach.
        seeds.push(("snapshot", format!("seed-v1-{i}"), snapshot_v1(state)));
    }
    let mut batch = Vec::new();
    eddy::framing::push(&mut batch, Some(b"\"key\""), b"{\"a\":[1,2.5,\"x\"]}", Some(42));
    eddy::framing::push(&mut batch, None, b"-12.5e3", None);
    eddy::framing::push(&mut batch, None, b"\"caf\\u00e9\"", Some(-1));
    seeds.push(("framing", "seed-0".into(), batch.clone()));
    // `marshal.dumps((['"k"', b'7', None], [5, None, 2**40], [{'a': [1, 2.5, 'é', None, True,
    // 2**70, -3]}, (1,), 'x' * 300]), 2)`, as a Python operator returns a batch.
    let python = "28030000005b030000007503000000226b227301000000374e5b0300000069050000004e6c030000000000000000045b030000007b7501000000615b0700000069010000006700000000000004407502000000c3a94e546c050000000000000000000000000469fdffffff3028010000006901000000752c010000";
    seeds.push(("marshal", "seed-0".into(), [hex::decode(python).unwrap(), vec![b'x'; 300]].concat()));
    use eddy::task::Event;
    let mut frames = Vec::new();
    for e in [Event::Data(batch), Event::Watermark(7), Event::Barrier(eddy::checkpoint::Barrier { id: 3, stop: false }), Event::Idle, Event::End] {
        frames.extend(frame::encode(&e));
    }
    seeds.push(("frame", "seed-0".into(), frames));
    let messages = [
        serde_json::to_vec(&ToJobManager::Register { slots: 2, data_addr: "127.0.0.1:9".parse().unwrap(), running: vec!["j@0".into()] }).unwrap(),
        serde_json::to_vec(&ToJobManager::GetModule { digest: "ab".into() }).unwrap(),
        serde_json::to_vec(&ToTaskManager::Cancel { job: "j@1".into() }).unwrap(),
        serde_json::to_vec(&ChannelHeader { job: "j@0".into(), chain: 1, subtask: 0, channel: 2 }).unwrap(),
        br#"{"Heartbeat":{"id":"tm-1","running_tasks":1,"usage":[["j@0",0,1,{"records_in":5,"records_out":1,"bytes_in":9,"bytes_out":3,"cpu_ns":100}]],"state":[["j@0",12]]}}"#.to_vec(),
        br#"{"CheckpointAck":{"job":"j@0","chain":0,"subtask":0,"checkpoint":4,"result":{"Ok":{"chain":0,"subtask":0,"file":"task-0-0","bytes":10}}}}"#.to_vec(),
        serde_json::to_vec(&ToJobManager::Enrol { token: "eddyjoin_ab_cd".into(), csr: CSR.into() }).unwrap(),
    ];
    seeds.push(("csr", "seed-0".into(), CSR.as_bytes().to_vec()));
    for (i, m) in messages.into_iter().enumerate() {
        seeds.push(("message", format!("seed-{i}"), m));
    }
    seeds
}

/// Snapshots written before broadcast state (format 2, kept in the corpus as `seed-v2-*`)
/// still restore: the same states, with no broadcast state.
#[test]
fn snapshots_of_format_2_still_read() {
    for (i, (_, _, v3)) in seeds().into_iter().filter(|(t, n, _)| *t == "snapshot" && n.starts_with("seed-") && !n.contains('v')).enumerate() {
        let v2 = std::fs::read(corpus_dir("snapshot").join(format!("seed-v2-{i}"))).unwrap();
        let mut want = snapshot::decode(&v3).unwrap();
        want.iter_mut().for_each(|(_, op)| op.broadcast.clear());
        assert_eq!(snapshot::decode(&v2).unwrap(), want, "seed-v2-{i}");
    }
}

/// The corpus in the repository holds every seed as the host encodes it now: a
/// change of a format shows here, and `EDDY_FUZZ_WRITE_CORPUS=1` writes the seeds anew.
#[test]
fn the_corpus_holds_every_seed_in_the_current_formats() {
    let write = std::env::var_os("EDDY_FUZZ_WRITE_CORPUS").is_some();
    for (target, name, bytes) in seeds() {
        let file = corpus_dir(target).join(&name);
        if write {
            std::fs::create_dir_all(corpus_dir(target)).unwrap();
            std::fs::write(&file, &bytes).unwrap();
        }
        let kept = std::fs::read(&file).unwrap_or_default();
        assert!(kept == bytes, "{} is not the seed the host makes now: run this test with EDDY_FUZZ_WRITE_CORPUS=1", file.display());
    }
}
