//! Sink connectors: standard output and part files under a directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::framing;
use crate::json;
use crate::runtime::SubtaskInfo;
use crate::task::{Operator, TaskError};

/// Renders a batch's values as lines, with an optional prefix each.
fn render(batch: &[u8], prefix: &[u8], operator: &str) -> Result<(Vec<u8>, u64), TaskError> {
    let mut text = Vec::with_capacity(batch.len());
    let mut n = 0;
    for record in framing::records(batch) {
        let record = record.map_err(|source| TaskError::Framing { operator: operator.into(), source })?;
        text.extend_from_slice(prefix);
        json::write_as_text(&mut text, record.value);
        text.push(b'\n');
        n += 1;
    }
    Ok((text, n))
}

/// Prints values to standard output; with parallelism above 1 each line
/// starts with the 1-based subtask, as Flink's `print()` does (`2> value`).
pub struct PrintSink {
    prefix: Vec<u8>,
    written: u64,
}

impl PrintSink {
    /// The sink of one subtask.
    pub fn new(subtask: SubtaskInfo) -> Self {
        let prefix = if subtask.parallelism > 1 { format!("{}> ", subtask.index + 1).into_bytes() } else { Vec::new() };
        PrintSink { prefix, written: 0 }
    }
}

impl Operator for PrintSink {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let (text, n) = render(&batch, &self.prefix, "Print Sink")?;
        let mut out = std::io::stdout().lock();
        out.write_all(&text).and_then(|_| out.flush()).map_err(|source| TaskError::Io { what: "cannot write to stdout".into(), source })?;
        self.written += n;
        Ok(Vec::new())
    }

    fn records_written(&self) -> u64 {
        self.written
    }
}

/// Writes values as lines into `DIR/part-<subtask>`, first as
/// `part-<subtask>.inprogress`, renamed when the input ends: a failed job
/// leaves no file that looks complete.
pub struct FileSink {
    file: BufWriter<File>,
    pending: PathBuf,
    done: PathBuf,
    written: u64,
}

impl FileSink {
    /// Creates the directory and the in-progress part file of `subtask`.
    pub fn create(dir: &str, subtask: SubtaskInfo) -> Result<Self, TaskError> {
        let dir = Path::new(dir);
        let io = |source| TaskError::Io { what: format!("file sink {}", dir.display()), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let done = dir.join(format!("part-{}", subtask.index));
        let pending = dir.join(format!("part-{}.inprogress", subtask.index));
        let file = BufWriter::with_capacity(1 << 16, File::create(&pending).map_err(io)?);
        Ok(FileSink { file, pending, done, written: 0 })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> TaskError + '_ {
        move |source| TaskError::Io { what: format!("file sink {}", self.pending.display()), source }
    }
}

impl Operator for FileSink {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let (text, n) = render(&batch, b"", "File Sink")?;
        self.file.write_all(&text).map_err(self.io())?;
        self.written += n;
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        self.file.flush().map_err(self.io())?;
        self.file.get_ref().sync_all().map_err(self.io())?;
        std::fs::rename(&self.pending, &self.done).map_err(self.io())?;
        Ok(Vec::new())
    }

    fn records_written(&self) -> u64 {
        self.written
    }
}
