//! Source connectors: socket text, text file, fixed elements, number sequence (Kafka and
//! Nexmark have modules of their own).

use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::nexmark::EventTimes;
use super::{batch_buffer, Confinement, Files, PathRole, Reach, MAX_LINE_BYTES, SOURCE_BATCH_BYTES};
use crate::framing;
use crate::json;
use crate::msgpack;
use crate::runtime::{SocketSource, ValueCodec, Vertex, VertexKind};
use crate::task::{SourceContext, TaskError};

/// A source, run in its task's thread.
///
/// A replayable source describes what it has left to read as splits (its
/// checkpointed position); on restore it gets back some of the splits of the
/// old subtasks, spread over the new ones, and reads only those.
pub trait Source: Send {
    /// Emits records until the input ends or the job stops.
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError>;
    /// Replaces what is left to read by the splits of a snapshot.
    fn restore(&mut self, splits: Vec<Vec<u8>>) -> Result<(), String>;
}

/// Subtask `i` of `p` takes the `i`-th of `p` equal parts of `0..n`.
fn share(n: u64, subtask: u32, parallelism: u32) -> (u64, u64) {
    let (i, p, n) = (u128::from(subtask), u128::from(parallelism), u128::from(n));
    ((n * i / p) as u64, (n * (i + 1) / p) as u64)
}

pub(super) fn decode_splits<T: serde::de::DeserializeOwned>(splits: Vec<Vec<u8>>) -> Result<Vec<T>, String> {
    splits.iter().map(|s| serde_json::from_slice(s).map_err(|e| format!("corrupt source position in the checkpoint: {e}"))).collect()
}

pub(super) fn encode_splits<T: serde::Serialize>(splits: &[T]) -> Vec<Vec<u8>> {
    splits.iter().map(|s| serde_json::to_vec(s).expect("splits serialize")).collect()
}

/// The source of a source vertex, for subtask `subtask` of `parallelism`, reaching only
/// what `reach` grants. `codec` is what the Nexmark and text sources make (the graph's); the
/// others make JSON, which every reader reads.
pub fn create_source(vertex: &Vertex, subtask: u32, parallelism: u32, codec: ValueCodec, reach: &Reach) -> Result<Box<dyn Source>, TaskError> {
    let confinement = reach.confinement;
    Ok(match &vertex.kind {
        VertexKind::SocketSource(s) => {
            // Refused before any name resolution: no connection is attempted.
            confinement.check_socket(&s.host, s.port)?;
            Box::new(SocketTextSource { addr: s.clone(), codec })
        }
        VertexKind::FileSource(path) => Box::new(FileTextSource::new(path, Lines::Text(codec), subtask, parallelism, confinement)?),
        VertexKind::JsonLinesSource(path) => Box::new(FileTextSource::new(path, Lines::Json(codec), subtask, parallelism, confinement)?),
        VertexKind::NexmarkFileSource(path) => Box::new(FileTextSource::new(path, Lines::Nexmark(codec), subtask, parallelism, confinement)?),
        VertexKind::ElementsSource(values) => Box::new(ElementsSource { values: values.clone(), next: Some(0) }),
        VertexKind::SequenceSource(seq) => {
            let (from, to) = share(seq.count, subtask, parallelism);
            let rate = seq.per_second.map(|r| (r / u64::from(parallelism)).max(1));
            Box::new(SequenceSource { splits: vec![(from, to)].into(), rate })
        }
        VertexKind::NexmarkSource(spec) => Box::new(super::nexmark::NexmarkReader::new(spec, subtask, parallelism, codec)),
        VertexKind::KafkaSource(k) => {
            let secret = reach.kafka_secret(k.secret.as_deref(), "source")?;
            let client_id = reach.client_id(vertex.id, subtask);
            Box::new(super::kafka::KafkaSourceReader::new(k, client_id, subtask, parallelism, confinement, secret)?)
        }
        kind => unreachable!("not a source: {kind:?}"),
    })
}

/// Splits text into lines at `\n`, `\r\n` or a lone `\r`, appending each to
/// the batch as a string value in `codec`. Returns the number of lines.
fn push_lines(batch: &mut Vec<u8>, line: &[u8], codec: ValueCodec) -> u64 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.contains(&b'\r') {
        framing::push_with(batch, None, None, |buf| write_text(buf, line, codec));
        return 1;
    }
    let mut n = 0;
    for part in line.split(|&b| b == b'\r') {
        framing::push_with(batch, None, None, |buf| write_text(buf, part, codec));
        n += 1;
    }
    n
}

/// Appends text as a string value in `codec`, bytes that are not UTF-8 replaced by U+FFFD.
/// In MessagePack it needs no escaping, and the Rust SDK reads it without unescaping.
fn write_text(out: &mut Vec<u8>, text: &[u8], codec: ValueCodec) {
    match codec {
        ValueCodec::Json | ValueCodec::PythonMarshal => json::write_string(out, text),
        ValueCodec::Msgpack => {
            msgpack::write::begin(out);
            // Checked first as it almost always is, UTF-8: `from_utf8` runs through ASCII
            // a word at a time, the lossy decoder a character at a time.
            match std::str::from_utf8(text) {
                Ok(text) => msgpack::write::str(out, text),
                Err(_) => msgpack::write::str(out, &String::from_utf8_lossy(text)),
            }
        }
    }
}

/// What a file's lines become.
#[derive(Clone, Copy)]
enum Lines {
    /// Strings of their text in the graph's codec ([`push_lines`]).
    Text(ValueCodec),
    /// Values, each line one JSON value, in the graph's codec ([`push_json_line`]).
    Json(ValueCodec),
    /// As `Json`, each line a Nexmark event, with its event time as the timestamp.
    Nexmark(ValueCodec),
}

/// Appends a line of a JSON Lines file (without its `\n` or `\r\n`) as a value in `codec`,
/// unless it is blank; returns the records appended. The line must be UTF-8, so that it can
/// never pass for MessagePack (`0xc1`). As JSON it goes on unparsed, for its reader to check;
/// as MessagePack it is parsed once here, natively, instead of in every operator that reads
/// it, and a line that is not JSON fails the source.
fn push_json_line(batch: &mut Vec<u8>, line: &[u8], codec: ValueCodec, transcoder: &mut msgpack::Transcoder, times: Option<&mut EventTimes>) -> Result<u64, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(0);
    }
    let timestamp = match times {
        None => None,
        Some(times) => match times.of(line) {
            Some(time) => Some(time),
            None => {
                let shown = String::from_utf8_lossy(&line[..line.len().min(80)]);
                return Err(format!("not a Nexmark event (no \"dateTime\"): {shown}"));
            }
        },
    };
    let not_utf8 = |e: std::str::Utf8Error| format!("a line is not UTF-8 text (invalid byte at {} of it)", e.valid_up_to());
    match codec {
        ValueCodec::Json | ValueCodec::PythonMarshal => {
            std::str::from_utf8(line).map_err(not_utf8)?;
            framing::push(batch, None, line, timestamp);
        }
        ValueCodec::Msgpack => {
            let start = batch.len();
            let mut parsed = Ok(());
            // The transcoder checks the UTF-8 of strings, where alone JSON may hold more
            // than ASCII; a line that is not UTF-8 elsewhere fails its grammar, and is
            // named for what it is here.
            framing::push_with(batch, None, timestamp, |buf| parsed = transcoder.from_json(line, buf));
            if let Err(e) = parsed {
                batch.truncate(start);
                std::str::from_utf8(line).map_err(not_utf8)?;
                return Err(format!("a line is not JSON: {e} of it"));
            }
        }
    }
    Ok(1)
}

fn line_too_long(place: String) -> TaskError {
    let message = format!("a line is longer than {} MiB", MAX_LINE_BYTES >> 20);
    TaskError::Io { what: place, source: std::io::Error::new(ErrorKind::InvalidData, message) }
}

/// A byte range of a file: the lines that start in `start..end`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FileSplit {
    start: u64,
    end: u64,
    /// `start` may be inside a line, which belongs to the range before.
    mid_line: bool,
}

struct FileTextSource {
    files: Files,
    /// Text lines or JSON values.
    lines: Lines,
    /// The path as the job gave it, for errors.
    shown: PathBuf,
    /// The path opened: as given, or relative to the data root.
    path: PathBuf,
    /// What is left to read, the split being read first.
    splits: std::collections::VecDeque<FileSplit>,
    /// Bytes of all its splits, as they were when it started (for progress).
    size: u64,
}

impl FileTextSource {
    fn new(path: &str, lines: Lines, subtask: u32, parallelism: u32, confinement: &Confinement) -> Result<Self, TaskError> {
        let files = confinement.files()?;
        let shown = PathBuf::from(path);
        let path = files.resolve(PathRole::Source, &shown)?;
        // A missing file fails when read, as it always has; an escape fails the job now.
        let len = match files.len(&path) {
            Ok(len) => len,
            Err(e) => match files.escape(PathRole::Source, &shown, &e) {
                Some(escape) => return Err(escape.into()),
                None => 0,
            },
        };
        let (start, end) = share(len, subtask, parallelism);
        Ok(FileTextSource { files, lines, shown, path, splits: vec![FileSplit { start, end, mid_line: start > 0 }].into(), size: end - start })
    }

    /// Shows how far it is: the splits done, and `into_first` bytes of the first one left.
    fn report(&self, ctx: &SourceContext, into_first: u64) {
        let left: u64 = self.splits.iter().map(|s| s.end.saturating_sub(s.start)).sum();
        ctx.progress(self.size.saturating_sub(left).saturating_add(into_first).min(self.size), self.size);
    }

    fn read_split(&mut self, ctx: &mut SourceContext) -> Result<bool, TaskError> {
        let what = |e| {
            self.files.error(PathRole::Source, &self.shown, e, |e| TaskError::Io { what: format!("cannot read {}", self.shown.display()), source: e })
        };
        let split = self.splits[0].clone();
        let mut file = self.files.open(&self.path).map_err(what)?;
        let mut pos = split.start;
        if split.mid_line {
            // A line belongs to the range its first byte is in: skip a line begun before.
            file.seek(SeekFrom::Start(pos - 1)).map_err(what)?;
            let mut reader = BufReader::new(&mut file);
            let mut skipped = Vec::new();
            pos = pos - 1 + reader.read_until(b'\n', &mut skipped).map_err(what)? as u64;
        }
        file.seek(SeekFrom::Start(pos)).map_err(what)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        let mut batch = batch_buffer();
        let mut records = 0;
        let mut transcoder = msgpack::Transcoder::default();
        let mut times = EventTimes::default();
        let lines = self.lines;
        let mut push = |batch: &mut Vec<u8>, line: &[u8], transcoder: &mut msgpack::Transcoder, pos: u64| {
            let pushed = match lines {
                Lines::Text(codec) => return Ok(push_lines(batch, line, codec)),
                Lines::Json(codec) => push_json_line(batch, line, codec, transcoder, None),
                Lines::Nexmark(codec) => push_json_line(batch, line, codec, transcoder, Some(&mut times)),
            };
            pushed.map_err(|message| {
                let source = std::io::Error::new(ErrorKind::InvalidData, message);
                TaskError::Io { what: format!("{} at byte {pos}", self.shown.display()), source }
            })
        };
        while pos < split.end {
            let buffered = reader.fill_buf().map_err(what)?;
            if buffered.is_empty() {
                break;
            }
            // A line whole in the buffer is used where it is; one that runs past the
            // buffer's end is gathered into `line` (a copy per line cost 4 % of a query).
            let n = match memchr::memchr(b'\n', buffered) {
                Some(end) if end < MAX_LINE_BYTES => {
                    records += push(&mut batch, &buffered[..=end], &mut transcoder, pos)?;
                    reader.consume(end + 1);
                    end + 1
                }
                _ => {
                    line.clear();
                    let n = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line).map_err(what)?;
                    if line.len() > MAX_LINE_BYTES {
                        return Err(line_too_long(format!("{} at byte {pos}", self.shown.display())));
                    }
                    records += push(&mut batch, &line, &mut transcoder, pos)?;
                    n
                }
            };
            pos += n as u64;
            if batch.len() >= SOURCE_BATCH_BYTES {
                ctx.emit(std::mem::replace(&mut batch, batch_buffer()), std::mem::take(&mut records))?;
                self.report(ctx, pos - split.start);
                self.splits[0] = FileSplit { start: pos, end: split.end, mid_line: false };
                if !ctx.checkpoint(|| encode_splits(self.splits.make_contiguous()))? || ctx.should_stop() {
                    return Ok(false);
                }
            }
        }
        if !batch.is_empty() {
            ctx.emit(batch, records)?;
        }
        self.splits.pop_front();
        self.report(ctx, 0);
        ctx.checkpoint(|| encode_splits(self.splits.make_contiguous()))
    }
}

impl Source for FileTextSource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        self.report(ctx, 0);
        while !self.splits.is_empty() {
            if !self.read_split(ctx)? {
                break;
            }
        }
        Ok(())
    }

    fn restore(&mut self, splits: Vec<Vec<u8>>) -> Result<(), String> {
        self.splits = decode_splits(splits)?.into();
        self.size = self.splits.iter().map(|s| s.end.saturating_sub(s.start)).sum();
        Ok(())
    }
}

struct SocketTextSource {
    addr: SocketSource,
    /// What its lines are written in: the graph's codec.
    codec: ValueCodec,
}

impl Source for SocketTextSource {
    /// Reads lines until the peer closes the connection or the job stops,
    /// handing over what arrived at least every buffer timeout.
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let target = format!("{}:{}", self.addr.host, self.addr.port);
        let io = |what: &str| {
            let target = target.clone();
            let what = what.to_owned();
            move |e| TaskError::Io { what: format!("socket source {target}: {what}"), source: e }
        };
        let addrs: Vec<_> = target.to_socket_addrs().map_err(io("cannot resolve"))?.collect();
        let mut last_err = std::io::Error::new(ErrorKind::NotFound, "no address");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let mut stream = stream.ok_or(last_err).map_err(io("cannot connect"))?;
        stream.set_read_timeout(Some(ctx.buffer_timeout().max(Duration::from_millis(1)))).map_err(io("set timeout"))?;
        let mut pending = Vec::new();
        let mut buf = vec![0u8; SOURCE_BATCH_BYTES];
        loop {
            if ctx.should_stop() {
                break;
            }
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    if pending.len() > MAX_LINE_BYTES && !pending.contains(&b'\n') {
                        return Err(line_too_long(format!("socket source {target}")));
                    }
                    let cut = pending.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    if cut > 0 {
                        let mut batch = Vec::with_capacity(cut + 64);
                        let records = pending[..cut].split_inclusive(|&b| b == b'\n').map(|l| push_lines(&mut batch, l, self.codec)).sum();
                        pending.drain(..cut);
                        ctx.emit(batch, records)?;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    ctx.idle()?;
                    if !ctx.checkpoint(Vec::new)? {
                        return Ok(());
                    }
                }
                Err(e) => return Err(io("read failed")(e)),
            }
        }
        if !pending.is_empty() {
            let mut batch = Vec::new();
            let records = push_lines(&mut batch, &pending, self.codec);
            ctx.emit(batch, records)?;
        }
        Ok(())
    }

    /// A socket cannot be replayed: after a restore it reads on from whatever
    /// the peer sends next (at-most-once).
    fn restore(&mut self, _splits: Vec<Vec<u8>>) -> Result<(), String> {
        Ok(())
    }
}

struct ElementsSource {
    values: Vec<Vec<u8>>,
    /// Index of the next value to emit; none once all were (a restored subtask that got no split).
    next: Option<usize>,
}

impl Source for ElementsSource {
    /// One batch per element: a timestamp assigner after this source then
    /// generates a watermark after every element, so jobs and tests over
    /// fixed elements see event time advance deterministically. Elements are
    /// few; their batches cost nothing that matters.
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let Some(mut i) = self.next else { return Ok(()) };
        while i < self.values.len() {
            let mut batch = Vec::with_capacity(self.values[i].len() + 5);
            framing::push(&mut batch, None, &self.values[i], None);
            i += 1;
            ctx.emit(batch, 1)?;
            if !ctx.checkpoint(|| encode_splits(&[i]))? {
                break;
            }
        }
        Ok(())
    }

    fn restore(&mut self, splits: Vec<Vec<u8>>) -> Result<(), String> {
        self.next = decode_splits::<usize>(splits)?.first().copied();
        Ok(())
    }
}

/// The numbers of `from..to` ranges, optionally at a fixed rate.
struct SequenceSource {
    /// Ranges left to emit, the current one first.
    splits: std::collections::VecDeque<(u64, u64)>,
    /// Records per second of this subtask, if limited.
    rate: Option<u64>,
}

impl Source for SequenceSource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let per_batch = self.rate.map_or(4096, |r| (r / 20).clamp(1, 4096));
        let mut pacer = Pacer::new(self.rate);
        while let Some(&(from, to)) = self.splits.front() {
            let end = (from + per_batch).min(to);
            let mut batch = Vec::with_capacity(((end - from) * 16) as usize);
            for n in from..end {
                framing::push_with(&mut batch, None, None, |b| b.extend_from_slice(n.to_string().as_bytes()));
            }
            ctx.emit(batch, end - from)?;
            if end == to {
                self.splits.pop_front();
            } else {
                self.splits[0].0 = end;
            }
            let position = || encode_splits(&self.splits.iter().collect::<Vec<_>>());
            if !ctx.checkpoint(position)? || ctx.should_stop() || !pacer.wait(end - from, ctx, position)? {
                break;
            }
        }
        Ok(())
    }

    fn restore(&mut self, splits: Vec<Vec<u8>>) -> Result<(), String> {
        self.splits = decode_splits(splits)?.into();
        Ok(())
    }
}

/// Holds a source to a rate of records per second, if it has one.
pub(super) struct Pacer {
    /// Records per second of this subtask; none: as fast as they go.
    rate: Option<u64>,
    /// When the next batch is due.
    next: Instant,
}

impl Pacer {
    pub(super) fn new(rate: Option<u64>) -> Self {
        Pacer { rate, next: Instant::now() }
    }

    /// After a batch of `records`, sleeps until the next one is due, in short naps that
    /// keep checkpoints (of `position`) and timers flowing. Returns false when the
    /// source must end now (it passed a stop-with-savepoint barrier).
    pub(super) fn wait(&mut self, records: u64, ctx: &mut SourceContext, mut position: impl FnMut() -> Vec<Vec<u8>>) -> Result<bool, TaskError> {
        let Some(rate) = self.rate else { return Ok(true) };
        // Paced from when this batch went out: time lost to a stall is not made up in a burst.
        self.next = self.next.max(Instant::now()) + Duration::from_secs_f64(records as f64 / rate as f64);
        while Instant::now() < self.next {
            std::thread::sleep(self.next.saturating_duration_since(Instant::now()).min(Duration::from_millis(5)));
            ctx.idle()?;
            if !ctx.checkpoint(&mut position)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_of_a_json_graph_are_values_as_they_are() {
        let (mut b, mut t) = (Vec::new(), msgpack::Transcoder::default());
        assert_eq!(push_json_line(&mut b, b"{\"a\":\"x\\\"y\"}\r\n", ValueCodec::Json, &mut t, None), Ok(1));
        assert_eq!(push_json_line(&mut b, b"  \t\r\n", ValueCodec::Json, &mut t, None), Ok(0), "a blank line is skipped");
        assert_eq!(push_json_line(&mut b, b"[1,2]", ValueCodec::Json, &mut t, None), Ok(1));
        let values: Vec<&[u8]> = framing::records(&b).map(|r| r.unwrap().value).collect();
        assert_eq!(values, [&br#"{"a":"x\"y"}"#[..], b"[1,2]"]);
        let err = push_json_line(&mut b, b"\"ok\xc1\"\n", ValueCodec::Json, &mut t, None).unwrap_err();
        assert_eq!(err, "a line is not UTF-8 text (invalid byte at 3 of it)");
    }

    #[test]
    fn json_lines_of_a_msgpack_graph_are_parsed_once_into_messagepack() {
        let (mut b, mut t) = (Vec::new(), msgpack::Transcoder::default());
        assert_eq!(push_json_line(&mut b, b"{\"a\":\"x\\\"y\"}\r\n", ValueCodec::Msgpack, &mut t, None), Ok(1));
        assert_eq!(push_json_line(&mut b, b"  \t\r\n", ValueCodec::Msgpack, &mut t, None), Ok(0), "a blank line is skipped");
        assert_eq!(push_json_line(&mut b, b" [1, -2.5] ", ValueCodec::Msgpack, &mut t, None), Ok(1));
        let before = b.clone();
        let err = push_json_line(&mut b, b"{\"a\" 1}", ValueCodec::Msgpack, &mut t, None).unwrap_err();
        assert_eq!(err, "a line is not JSON: expected ':' at byte 5 of it");
        assert_eq!(b, before, "a refused line leaves no partial record");
        let err = push_json_line(&mut b, b"\"ok\xc1\"\n", ValueCodec::Msgpack, &mut t, None).unwrap_err();
        assert_eq!(err, "a line is not UTF-8 text (invalid byte at 3 of it)");
        let values: Vec<String> = framing::records(&b)
            .map(|r| {
                let value = r.unwrap().value;
                assert!(msgpack::is_msgpack(value));
                let mut json = Vec::new();
                msgpack::to_json(value, &mut json).unwrap();
                String::from_utf8(json).unwrap()
            })
            .collect();
        assert_eq!(values, [r#"{"a":"x\"y"}"#, "[1,-2.5]"]);
    }

    #[test]
    fn lines_end_at_lf_crlf_and_lone_cr() {
        let mut b = Vec::new();
        assert_eq!(push_lines(&mut b, b"a\r\n", ValueCodec::Json), 1);
        assert_eq!(push_lines(&mut b, b"b\rc\n", ValueCodec::Json), 2);
        assert_eq!(push_lines(&mut b, b"last", ValueCodec::Json), 1);
        let values: Vec<String> =
            framing::records(&b).map(|r| serde_json::from_slice(r.unwrap().value).unwrap()).collect();
        assert_eq!(values, ["a", "b", "c", "last"]);
    }

    #[test]
    fn text_lines_of_a_msgpack_graph_are_msgpack_strings_that_convert_to_the_json_ones() {
        for text in [&b"plain words"[..], b"quote \" and tab \t", b"caf\xc3\xa9", b"not utf-8 \xff here", &[b'x'; 300]] {
            let (mut packed, mut json) = (Vec::new(), Vec::new());
            push_lines(&mut packed, text, ValueCodec::Msgpack);
            push_lines(&mut json, text, ValueCodec::Json);
            let packed = framing::records(&packed).next().unwrap().unwrap().value.to_vec();
            let json = framing::records(&json).next().unwrap().unwrap().value.to_vec();
            assert!(msgpack::is_msgpack(&packed));
            let mut converted = Vec::new();
            msgpack::to_json(&packed, &mut converted).unwrap();
            assert_eq!(converted, json, "{}", String::from_utf8_lossy(text));
        }
    }
}
