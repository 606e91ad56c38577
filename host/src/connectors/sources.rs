//! Source connectors: socket text, text file, fixed elements, number sequence.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use super::{MAX_LINE_BYTES, SOURCE_BATCH_BYTES};
use crate::framing;
use crate::json;
use crate::runtime::{SocketSource, VertexKind};
use crate::task::{SourceContext, TaskError};

/// A source, run in its task's thread.
pub trait Source: Send {
    /// Emits records until the input ends or the job stops.
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError>;
}

/// The source of a source vertex, for subtask `subtask` of `parallelism`.
pub fn create_source(kind: &VertexKind, subtask: u32, parallelism: u32) -> Box<dyn Source> {
    match kind {
        VertexKind::SocketSource(s) => Box::new(SocketTextSource { addr: s.clone() }),
        VertexKind::FileSource(path) => Box::new(FileTextSource { path: path.into(), subtask, parallelism }),
        VertexKind::ElementsSource(values) => Box::new(ElementsSource { values: values.clone() }),
        VertexKind::SequenceSource(n) => {
            let (i, p) = (u128::from(subtask), u128::from(parallelism));
            let n128 = u128::from(*n);
            Box::new(SequenceSource { from: (n128 * i / p) as u64, to: (n128 * (i + 1) / p) as u64 })
        }
        _ => unreachable!("not a source: {kind:?}"),
    }
}

/// Splits text into lines at `\n`, `\r\n` or a lone `\r`, appending each to
/// the batch as a JSON string. Returns the number of lines.
fn push_lines(batch: &mut Vec<u8>, line: &[u8]) -> u64 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.contains(&b'\r') {
        framing::push_with(batch, None, None, |buf| json::write_string(buf, line));
        return 1;
    }
    let mut n = 0;
    for part in line.split(|&b| b == b'\r') {
        framing::push_with(batch, None, None, |buf| json::write_string(buf, part));
        n += 1;
    }
    n
}

fn line_too_long(place: String) -> TaskError {
    let message = format!("a line is longer than {} MiB", MAX_LINE_BYTES >> 20);
    TaskError::Io { what: place, source: std::io::Error::new(ErrorKind::InvalidData, message) }
}

struct FileTextSource {
    path: PathBuf,
    subtask: u32,
    parallelism: u32,
}

impl Source for FileTextSource {
    /// Subtask `i` reads the lines that start in byte range `i` of `p` equal ranges.
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        let what = |e| TaskError::Io { what: format!("cannot read {}", self.path.display()), source: e };
        let mut file = File::open(&self.path).map_err(what)?;
        let len = file.metadata().map_err(what)?.len();
        let (i, p) = (u128::from(self.subtask), u128::from(self.parallelism));
        let start = (u128::from(len) * i / p) as u64;
        let end = (u128::from(len) * (i + 1) / p) as u64;
        let mut pos = start;
        if start > 0 {
            // A line belongs to the range its first byte is in: skip a line begun before.
            file.seek(SeekFrom::Start(start - 1)).map_err(what)?;
            let mut reader = BufReader::new(&mut file);
            let mut skipped = Vec::new();
            pos = start - 1 + reader.read_until(b'\n', &mut skipped).map_err(what)? as u64;
        }
        file.seek(SeekFrom::Start(pos)).map_err(what)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::new();
        let mut batch = Vec::with_capacity(SOURCE_BATCH_BYTES + 4096);
        let mut records = 0;
        while pos < end {
            line.clear();
            let n = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line).map_err(what)?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(line_too_long(format!("{} at byte {pos}", self.path.display())));
            }
            pos += n as u64;
            records += push_lines(&mut batch, &line);
            if batch.len() >= SOURCE_BATCH_BYTES {
                ctx.emit(std::mem::take(&mut batch), std::mem::take(&mut records))?;
                if ctx.should_stop() {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            ctx.emit(batch, records)?;
        }
        Ok(())
    }
}

struct SocketTextSource {
    addr: SocketSource,
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
                        let records = pending[..cut].split_inclusive(|&b| b == b'\n').map(|l| push_lines(&mut batch, l)).sum();
                        pending.drain(..cut);
                        ctx.emit(batch, records)?;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                    ctx.idle()?
                }
                Err(e) => return Err(io("read failed")(e)),
            }
        }
        if !pending.is_empty() {
            let mut batch = Vec::new();
            let records = push_lines(&mut batch, &pending);
            ctx.emit(batch, records)?;
        }
        Ok(())
    }
}

struct ElementsSource {
    values: Vec<Vec<u8>>,
}

impl Source for ElementsSource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        // One batch per element: a timestamp assigner after this source then
        // generates a watermark after every element, so jobs and tests over
        // fixed elements see event time advance deterministically. Elements
        // are few; their batches cost nothing that matters.
        for v in &self.values {
            let mut batch = Vec::with_capacity(v.len() + 5);
            framing::push(&mut batch, None, v, None);
            ctx.emit(batch, 1)?;
        }
        Ok(())
    }
}

struct SequenceSource {
    from: u64,
    to: u64,
}

impl Source for SequenceSource {
    fn run(&mut self, ctx: &mut SourceContext) -> Result<(), TaskError> {
        const PER_BATCH: u64 = 4096;
        let mut i = self.from;
        while i < self.to {
            let end = (i + PER_BATCH).min(self.to);
            let mut batch = Vec::with_capacity(((end - i) * 16) as usize);
            for n in i..end {
                framing::push_with(&mut batch, None, None, |b| b.extend_from_slice(n.to_string().as_bytes()));
            }
            ctx.emit(batch, end - i)?;
            if ctx.should_stop() {
                break;
            }
            i = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_lf_crlf_and_lone_cr() {
        let mut b = Vec::new();
        assert_eq!(push_lines(&mut b, b"a\r\n"), 1);
        assert_eq!(push_lines(&mut b, b"b\rc\n"), 2);
        assert_eq!(push_lines(&mut b, b"last"), 1);
        let values: Vec<String> =
            framing::records(&b).map(|r| serde_json::from_slice(r.unwrap().value).unwrap()).collect();
        assert_eq!(values, ["a", "b", "c", "last"]);
    }
}
