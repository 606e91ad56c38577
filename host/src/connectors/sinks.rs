//! Sink connectors: standard output, part files under a directory, and none.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Confinement, Files, PathRole};
use crate::framing;
use crate::json;
use crate::runtime::SubtaskInfo;
use crate::checkpoint::{OperatorState, FINAL_CHECKPOINT};
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
    /// Bytes printed, for usage metering.
    bytes: u64,
}

impl PrintSink {
    /// The sink of one subtask.
    pub fn new(subtask: SubtaskInfo) -> Self {
        let prefix = if subtask.parallelism > 1 { format!("{}> ", subtask.index + 1).into_bytes() } else { Vec::new() };
        PrintSink { prefix, written: 0, bytes: 0 }
    }
}

impl Operator for PrintSink {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let (text, n) = render(&batch, &self.prefix, "Print Sink")?;
        let mut out = std::io::stdout().lock();
        out.write_all(&text).and_then(|_| out.flush()).map_err(|source| TaskError::Io { what: "cannot write to stdout".into(), source })?;
        self.written += n;
        self.bytes += text.len() as u64;
        Ok(Vec::new())
    }

    fn records_written(&self) -> u64 {
        self.written
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

/// Counts values and drops them: what a benchmark measures is the job, not a sink.
#[derive(Default)]
pub struct DiscardSink {
    written: u64,
    bytes: u64,
}

impl Operator for DiscardSink {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        for record in framing::records(&batch) {
            let record = record.map_err(|source| TaskError::Framing { operator: "Discard Sink".into(), source })?;
            self.written += 1;
            self.bytes += record.value.len() as u64;
        }
        Ok(Vec::new())
    }

    fn records_written(&self) -> u64 {
        self.written
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

/// Writes values as lines into part files under a directory.
///
/// Without checkpoints, subtask `i` writes `part-<i>.inprogress` and renames
/// it to `part-<i>` when its input ends: a failed job leaves no file that
/// looks complete. With checkpoints it is a two-phase commit: records go to
/// a hidden `.part-<i>-<run>-<n>.inprogress` file; a checkpoint barrier
/// closes the file and records it as pending in the snapshot; when that
/// checkpoint completes everywhere the file is renamed to `part-<i>-<run>-<n>`.
/// A restore commits the pending files of the checkpoint it starts from, so
/// output after a recovery has neither gaps nor duplicates. When the input
/// ends, the last file waits for the final checkpoint: every task's input
/// ended. (In-progress files of a failed attempt are left behind, hidden, as
/// Flink's are.)
///
/// Confined to a data root, the directory and every file it creates or
/// renames are paths relative to the root, opened through its capability
/// (pending files in snapshots too, so a restore cannot rename outside).
pub struct FileSink {
    files: Files,
    dir: PathBuf,
    subtask: u32,
    /// The file being written: its writer, its in-progress path and final path.
    current: Option<(BufWriter<File>, PathBuf, PathBuf)>,
    /// Two-phase mode: this run's id, and the number of the next part file.
    run: Option<(String, u64)>,
    /// Closed files waiting for their checkpoint: `(checkpoint, in-progress, final)`.
    pending: Vec<(u64, PathBuf, PathBuf)>,
    written: u64,
    /// Bytes written to part files, for usage metering.
    bytes: u64,
}

impl FileSink {
    /// The sink of `subtask` in `dir`, within what `confinement` grants; `run`
    /// (a unique id of this run) turns on two-phase commits.
    pub fn create(dir: &str, subtask: SubtaskInfo, run: Option<&str>, confinement: &Confinement) -> Result<Self, TaskError> {
        let files = confinement.files()?;
        let shown = Path::new(dir);
        let dir = files.resolve(PathRole::SinkDir, shown)?;
        files.create_dir_all(&dir).map_err(|e| {
            files.error(PathRole::SinkDir, shown, e, |source| TaskError::Io { what: format!("file sink {}", shown.display()), source })
        })?;
        Ok(FileSink {
            files,
            dir,
            subtask: subtask.index,
            current: None,
            run: run.map(|r| (r.to_string(), 0)),
            pending: Vec::new(),
            written: 0,
            bytes: 0,
        })
    }


    /// The open part file, opened on first use.
    fn file(&mut self) -> Result<&mut BufWriter<File>, TaskError> {
        if self.current.is_none() {
            let (pending, done) = match &mut self.run {
                None => {
                    let name = format!("part-{}", self.subtask);
                    (self.dir.join(format!("{name}.inprogress")), self.dir.join(name))
                }
                Some((run, n)) => {
                    let name = format!("part-{}-{run}-{n}", self.subtask);
                    *n += 1;
                    (self.dir.join(format!(".{name}.inprogress")), self.dir.join(name))
                }
            };
            let file = self.files.create(&pending).map_err(io(&self.files, &pending))?;
            self.current = Some((BufWriter::with_capacity(1 << 16, file), pending, done));
        }
        Ok(&mut self.current.as_mut().unwrap().0)
    }

    /// Flushes and syncs the open file; returns its paths.
    fn close_file(&mut self) -> Result<Option<(PathBuf, PathBuf)>, TaskError> {
        let Some((mut w, pending, done)) = self.current.take() else { return Ok(None) };
        w.flush().and_then(|_| w.get_ref().sync_all()).map_err(io(&self.files, &pending))?;
        Ok(Some((pending, done)))
    }
}

fn io<'a>(files: &'a Files, path: &'a Path) -> impl FnOnce(std::io::Error) -> TaskError + 'a {
    move |e| files.error(PathRole::SinkFile, path, e, |source| TaskError::Io { what: format!("file sink {}", path.display()), source })
}

/// Fault injection for the tests of a failure during the last commit: with
/// `EDDY_FAULT_DELAY_FINAL_COMMIT_MS` set, a sink waits that long before it
/// commits its last files, so that a test can kill its process in between.
fn delay_final_commit_for_tests(subtask: u32) {
    let Some(ms) = std::env::var("EDDY_FAULT_DELAY_FINAL_COMMIT_MS").ok().and_then(|v| v.parse::<u64>().ok()) else { return };
    tracing::warn!(subtask, "delaying the final commit by {ms} ms (EDDY_FAULT_DELAY_FINAL_COMMIT_MS)");
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Renames a finished part file to its final name; done already if only the final one exists.
fn commit(files: &Files, pending: &Path, done: &Path) -> Result<(), TaskError> {
    match files.rename(pending, done) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && files.exists(done) => Ok(()),
        r => r.map_err(io(files, pending)),
    }
}

impl Operator for FileSink {
    fn process(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let (text, n) = render(&batch, b"", "File Sink")?;
        let file = self.file()?;
        file.write_all(&text).map_err(|source| TaskError::Io { what: "file sink".into(), source })?;
        self.written += n;
        self.bytes += text.len() as u64;
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<u8>, TaskError> {
        if self.run.is_some() {
            // Committed once every task's input ended (the final checkpoint).
            if let Some((pending, done)) = self.close_file()? {
                self.pending.push((FINAL_CHECKPOINT, pending, done));
            }
            return Ok(Vec::new());
        }
        // Without checkpoints an empty input still leaves an (empty) part file.
        self.file()?;
        if let Some((pending, done)) = self.close_file()? {
            commit(&self.files, &pending, &done)?;
        }
        Ok(Vec::new())
    }

    fn snapshot(&mut self, checkpoint: u64) -> Result<OperatorState, TaskError> {
        if let Some((pending, done)) = self.close_file()? {
            self.pending.push((checkpoint, pending, done));
        }
        let items = self
            .pending
            .iter()
            .map(|(_, p, d)| serde_json::to_vec(&(p, d)).expect("paths serialize"))
            .collect();
        Ok(OperatorState { items, ..OperatorState::default() })
    }

    fn checkpoint_complete(&mut self, checkpoint: u64) -> Result<(), TaskError> {
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending).into_iter().partition(|(c, _, _)| *c <= checkpoint);
        self.pending = later;
        if checkpoint == FINAL_CHECKPOINT && !ready.is_empty() {
            delay_final_commit_for_tests(self.subtask);
        }
        for (_, pending, done) in ready {
            commit(&self.files, &pending, &done)?;
        }
        Ok(())
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), TaskError> {
        // The checkpoint restored from is complete: what it left pending is committed.
        for item in state.items {
            let (pending, done): (PathBuf, PathBuf) = serde_json::from_slice(&item)
                .map_err(|e| TaskError::Record { operator: "File Sink".into(), message: format!("corrupt sink state in the checkpoint: {e}") })?;
            commit(&self.files, &pending, &done)?;
        }
        Ok(())
    }

    fn records_written(&self) -> u64 {
        self.written
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint's pending files are renamed beneath the root too: a
    /// tampered snapshot cannot move a file out of it, or one in from outside.
    #[test]
    fn a_restore_cannot_rename_outside_the_data_root() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(root.join("out/.part-0-r-0.inprogress"), "a 1\n").unwrap();
        std::fs::write(work.path().join("secret"), "key").unwrap();
        let confinement = Confinement { data_root: Some(root.clone()), sockets: None };
        let info = SubtaskInfo { index: 0, parallelism: 1, max_parallelism: 128 };
        let mut sink = FileSink::create("out", info, Some("r"), &confinement).unwrap();
        let item = |p: &str, d: &str| serde_json::to_vec(&(PathBuf::from(p), PathBuf::from(d))).unwrap();
        for (pending, done) in [("out/.part-0-r-0.inprogress", "../stolen"), ("../secret", "out/part-0-r-9")] {
            let state = OperatorState { items: vec![item(pending, done)], ..OperatorState::default() };
            let err = sink.restore(state).unwrap_err().to_string();
            assert!(err.ends_with(&format!("escapes the tenant's data root {}", root.display())), "{err}");
        }
        assert!(!work.path().join("stolen").exists() && !root.join("out/part-0-r-9").exists());
        let state = OperatorState { items: vec![item("out/.part-0-r-0.inprogress", "out/part-0-r-0")], ..OperatorState::default() };
        sink.restore(state).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("out/part-0-r-0")).unwrap(), "a 1\n");
    }
}
