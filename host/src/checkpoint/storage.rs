//! Checkpoint storage: where tasks write their snapshots and the coordinator
//! the `_metadata` that marks a checkpoint complete. A location is a directory
//! on a filesystem every TaskManager shares, or an `s3://BUCKET/PREFIX` of an
//! object store (`objects.rs`); both have the same layout and rules, and the
//! functions here take either.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::objects::{is_object_url, Object};
use super::snapshot::{self, TaskState};
use super::OperatorState;
use crate::keys;

/// The file that makes a checkpoint directory a completed checkpoint.
pub const METADATA: &str = "_metadata";

/// One task's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHandle {
    /// Chain (task) index in the plan.
    pub chain: usize,
    /// Subtask index.
    pub subtask: u32,
    /// File name inside the checkpoint directory.
    pub file: String,
    /// Size of the file.
    pub bytes: u64,
    /// How long the task stopped processing for it: taking the state and
    /// sending the barrier on (the file is written afterwards, in the background).
    #[serde(default)]
    pub sync_ms: u64,
    /// Of an end snapshot (the final checkpoint's): the last barrier the task passed before
    /// its input ended (0: none). A checkpoint it passed has a snapshot of its own; a later
    /// one takes this end snapshot, since nothing reached the task after it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What `_metadata` says about a completed checkpoint or savepoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// Job that took it.
    pub job: String,
    /// Checkpoint id.
    pub checkpoint: u64,
    /// Taken on request (kept until deleted by hand) rather than periodically.
    pub savepoint: bool,
    /// Unix time of completion, in milliseconds.
    pub completed_ms: u64,
    /// Key groups of the job; a resumed job must keep the same number.
    pub max_parallelism: u32,
    /// Every task's file.
    pub tasks: Vec<TaskHandle>,
}

/// Where a job's checkpoints are kept.
pub trait CheckpointStorage: Send + Sync {
    /// Stores a task's snapshot of checkpoint `checkpoint`.
    fn write_task(&self, checkpoint: u64, chain: usize, subtask: u32, state: &TaskState) -> io::Result<TaskHandle>;
    /// Marks checkpoint `meta.checkpoint` complete; returns its location.
    fn complete(&self, meta: &Metadata) -> io::Result<PathBuf>;
    /// Deletes a checkpoint (superseded, or aborted).
    fn discard(&self, checkpoint: u64);
}

/// Checkpoints as directories (or prefixes) `chk-<id>` under one per job; the
/// final checkpoint of attempt `a` is `chk-final-<a>`, so that tasks of an
/// attempt that is being cancelled never write into the next one's.
#[derive(Debug, Clone)]
pub struct DirStorage {
    root: PathBuf,
    /// The job's attempt (restarts so far), which names its final checkpoint.
    attempt: u32,
}

impl DirStorage {
    /// Storage under `root` (the job's own directory), for its first attempt.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStorage { root: root.into(), attempt: 0 }
    }

    /// The same storage for attempt `attempt` of the job.
    pub fn for_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Deletes checkpoint `id` on a thread of its own: callers hold a lock
    /// (the JobManager's) that file I/O must not delay.
    pub fn discard_in_background(&self, id: u64) {
        let path = self.path(id);
        let _ = std::thread::Builder::new().name("discard".into()).spawn(move || remove_all(&path));
    }

    /// Deletes, on a thread of its own, the checkpoints an earlier JobManager
    /// process left of this job (those numbered below `next_id` and the final
    /// ones of earlier attempts), but `keep`: the one it resumes from. A restarted
    /// coordinator knows only that one; the others (superseded, retained, or
    /// half-written when the process died) would otherwise stay forever.
    pub fn discard_earlier_in_background(&self, next_id: u64, keep: Option<PathBuf>) {
        let (root, attempt) = (self.root.clone(), self.attempt);
        let earlier = move |name: &str| match name.strip_prefix("chk-final-") {
            Some(a) => a.parse::<u32>().is_ok_and(|a| a < attempt),
            None => name.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n < next_id),
        };
        let _ = std::thread::Builder::new().name("discard".into()).spawn(move || {
            let names = match children(&root) {
                Ok(names) => names,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => return tracing::warn!(location = %root.display(), "cannot list the job's old checkpoints: {e}"),
            };
            for name in names.iter().filter(|n| earlier(n)) {
                let path = root.join(name);
                if keep.as_deref() != Some(path.as_path()) {
                    let _ = remove_all(&path);
                }
            }
        });
    }

    /// The directory of checkpoint `id`.
    pub fn path(&self, id: u64) -> PathBuf {
        if id == super::FINAL_CHECKPOINT {
            return self.root.join(format!("chk-final-{}", self.attempt));
        }
        self.root.join(format!("chk-{id}"))
    }
}

impl CheckpointStorage for DirStorage {
    fn write_task(&self, checkpoint: u64, chain: usize, subtask: u32, state: &TaskState) -> io::Result<TaskHandle> {
        let dir = self.path(checkpoint);
        let file = task_file(chain, subtask);
        let bytes = if is_object_url(&dir) {
            let (encoded, bytes) = snapshot::encode(state)?;
            Object::at(&dir.join(&file))?.put(encoded)?;
            bytes
        } else {
            std::fs::create_dir_all(&dir)?;
            snapshot::write(&dir.join(&file), state)?
        };
        Ok(TaskHandle { chain, subtask, file, bytes, sync_ms: 0, passed: 0 })
    }

    fn complete(&self, meta: &Metadata) -> io::Result<PathBuf> {
        let dir = self.path(meta.checkpoint);
        write_metadata(&dir, meta)?;
        Ok(dir)
    }

    fn discard(&self, checkpoint: u64) {
        let _ = remove_all(&self.path(checkpoint));
    }
}

/// The file of a task's snapshot inside its checkpoint's directory: the
/// only name a coordinator accepts in that task's acknowledgement.
pub fn task_file(chain: usize, subtask: u32) -> String {
    format!("task-{chain}-{subtask}")
}

/// Writes `_metadata`, whole: on a filesystem to a side file renamed into
/// place, in an object store as one PUT. A reader sees a complete checkpoint or none.
fn write_metadata(dir: &Path, meta: &Metadata) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(meta)?;
    if is_object_url(dir) {
        return Object::at(&dir.join(METADATA))?.put(text);
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("_metadata.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(METADATA))
}

/// The bytes of a file of a checkpoint, from a filesystem or an object store.
fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    if is_object_url(path) {
        return Object::at(path)?.get();
    }
    std::fs::read(path)
}

/// Copies a checkpoint's file into directory (or prefix) `dir` as `name`: on filesystems
/// without holding it in memory (a task's state may be larger than that).
pub(crate) fn copy_file(from: &Path, dir: &Path, name: &str) -> io::Result<()> {
    if !is_object_url(from) && !is_object_url(dir) {
        std::fs::create_dir_all(dir)?;
        return std::fs::copy(from, dir.join(name)).map(drop);
    }
    let bytes = read_file(from)?;
    if is_object_url(dir) {
        return Object::at(&dir.join(name))?.put(bytes);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

/// Deletes a checkpoint: a directory, or the objects under a prefix.
fn remove_all(location: &Path) -> io::Result<()> {
    if is_object_url(location) {
        return Object::at(location)?.delete_all();
    }
    std::fs::remove_dir_all(location)
}

/// The names of the entries (directories, or prefixes) right under `location`.
fn children(location: &Path) -> io::Result<Vec<String>> {
    if is_object_url(location) {
        return Object::at(location)?.children();
    }
    std::fs::read_dir(location)?.map(|e| Ok(e?.file_name().to_string_lossy().into_owned())).collect()
}

/// Whether `location` holds a completed checkpoint (its `_metadata`).
pub fn is_complete(location: &Path) -> io::Result<bool> {
    let meta = location.join(METADATA);
    if is_object_url(location) {
        return Object::at(&meta)?.exists();
    }
    Ok(meta.exists())
}

/// Whether `location` can name checkpoints wherever a JobManager or TaskManager
/// runs: an absolute directory, or an object store.
pub fn is_absolute(location: &Path) -> bool {
    location.is_absolute() || is_object_url(location)
}

/// Moves a completed checkpoint to `target` (a savepoint the user keeps):
/// a rename when both are directories on one filesystem, else a copy of
/// each file, `_metadata` last, and the source deleted.
pub fn relocate(from: &Path, target: &Path, meta: &Metadata) -> io::Result<()> {
    if is_complete(target)? {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} already holds a savepoint", target.display())));
    }
    let local = !is_object_url(from) && !is_object_url(target);
    if local {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::rename(from, target).is_ok() {
            return Ok(());
        }
        std::fs::create_dir_all(target)?;
    }
    for t in &meta.tasks {
        copy_file(&from.join(&t.file), target, &t.file)?;
    }
    write_metadata(target, meta)?;
    let _ = remove_all(from);
    Ok(())
}

/// Why a job cannot resume from a checkpoint or savepoint.
#[derive(Debug, Error)]
pub enum RestoreError {
    /// No `_metadata`: not a completed checkpoint.
    #[error("{0} is not a completed checkpoint or savepoint (no _metadata)")]
    NotACheckpoint(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The snapshot holds state of an operator the job does not have.
    #[error("the savepoint has state for operator uid '{0}', which the job does not have (a changed or removed operator? --allow-non-restored-state skips it)")]
    NonRestoredState(String),
    /// The job's key groups differ from the snapshot's.
    #[error("the savepoint has {saved} key groups but the job has {job}; max parallelism cannot change")]
    MaxParallelism {
        /// In the snapshot.
        saved: u32,
        /// In the job.
        job: u32,
    },
}

/// A completed checkpoint, read back to restore a job (at any parallelism).
#[derive(Debug)]
pub struct Restored {
    /// Its metadata.
    pub meta: Metadata,
    /// Where it is.
    pub location: PathBuf,
    /// Each task's states, in (chain, subtask) order.
    tasks: Vec<(TaskHandle, TaskState)>,
}

impl Restored {
    /// Reads the checkpoint at `location`.
    pub fn load(location: &Path) -> Result<Self, RestoreError> {
        let meta_path = location.join(METADATA);
        let read_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| RestoreError::Read { path, source }
        };
        let text = match read_file(&meta_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RestoreError::NotACheckpoint(location.display().to_string())),
            Err(e) => return Err(read_err(&meta_path)(e)),
        };
        let meta: Metadata = serde_json::from_slice(&text)
            .map_err(|e| read_err(&meta_path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        let mut tasks = Vec::with_capacity(meta.tasks.len());
        let mut handles = meta.tasks.clone();
        handles.sort_by_key(|t| (t.chain, t.subtask));
        for t in handles {
            // A `_metadata` names its tasks' files inside its own directory, nothing else.
            if t.file != task_file(t.chain, t.subtask) {
                let why = format!("names {:?} for task {} subtask {}", t.file, t.chain, t.subtask);
                return Err(read_err(&meta_path)(io::Error::new(io::ErrorKind::InvalidData, why)));
            }
            let path = location.join(&t.file);
            let state = read_file(&path).and_then(|bytes| snapshot::decode(&bytes)).map_err(read_err(&path))?;
            tasks.push((t, state));
        }
        Ok(Restored { meta, location: location.to_path_buf(), tasks })
    }

    /// Checks that a job with `max_parallelism` key groups, whose operators
    /// keep state under `uids`, can resume from it: unless `allow_non_restored`,
    /// every saved operator state must find its operator (as Flink requires).
    pub fn check(&self, max_parallelism: u32, uids: &BTreeSet<String>, allow_non_restored: bool) -> Result<(), RestoreError> {
        if self.meta.max_parallelism != max_parallelism {
            return Err(RestoreError::MaxParallelism { saved: self.meta.max_parallelism, job: max_parallelism });
        }
        if !allow_non_restored {
            if let Some((uid, _)) = self.tasks.iter().flat_map(|(_, state)| state).find(|(uid, _)| !uids.contains(uid)) {
                return Err(RestoreError::NonRestoredState(uid.clone()));
            }
        }
        Ok(())
    }

    /// Whether some task saved state under operator `uid`.
    pub fn contains(&self, uid: &str) -> bool {
        self.tasks.iter().any(|(_, state)| state.iter().any(|(u, _)| u == uid))
    }

    /// The state of operator `uid` for subtask `subtask` of `parallelism`:
    /// the keys of its key groups, every `parallelism`-th item, and the
    /// broadcast state of old subtask `subtask` mod the old parallelism (as Flink
    /// deals it: every copy is the same if the job's function is deterministic).
    pub fn state_for(&self, uid: &str, subtask: u32, parallelism: u32) -> OperatorState {
        let groups = keys::key_group_range(subtask, parallelism, self.meta.max_parallelism);
        let mut out = OperatorState::default();
        let mut item = 0u64;
        let saved: Vec<&OperatorState> = self.tasks.iter().flat_map(|(_, state)| state).filter(|(u, _)| u == uid).map(|(_, op)| op).collect();
        if let Some(copy) = saved.get(subtask as usize % saved.len().max(1)) {
            out.broadcast = copy.broadcast.clone();
        }
        for op in saved {
            for (k, v) in &op.keyed {
                if groups.contains(&keys::key_group(k, self.meta.max_parallelism)) {
                    out.keyed.push((k.clone(), v.clone()));
                }
            }
            for it in &op.items {
                if item % u64::from(parallelism) == u64::from(subtask) {
                    out.items.push(it.clone());
                }
                item += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(keys: &[&str]) -> OperatorState {
        OperatorState { keyed: keys.iter().map(|k| (k.as_bytes().to_vec(), b"v".to_vec())).collect(), ..OperatorState::default() }
    }

    #[test]
    fn rescaling_moves_key_groups_and_spreads_items() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::new(dir.path());
        let all: Vec<String> = (0..50).map(|i| format!("\"k{i}\"")).collect();
        let mut handles = Vec::new();
        // Two subtasks, each holding the keys of its key groups and one split.
        for s in 0..2u32 {
            let range = keys::key_group_range(s, 2, 128);
            let mine: Vec<&str> = all.iter().map(|k| k.as_str()).filter(|k| range.contains(&keys::key_group(k.as_bytes(), 128))).collect();
            let mut op = keyed(&mine);
            op.items.push(vec![s as u8]);
            handles.push(storage.write_task(7, 0, s, &vec![("op".into(), op)]).unwrap());
        }
        let meta = Metadata { job: "j".into(), checkpoint: 7, savepoint: false, completed_ms: 0, max_parallelism: 128, tasks: handles };
        let location = storage.complete(&meta).unwrap();
        let restored = Restored::load(&location).unwrap();
        for p in [1u32, 3] {
            let mut keys_seen = Vec::new();
            let mut items = 0;
            for s in 0..p {
                let st = restored.state_for("op", s, p);
                items += st.items.len();
                keys_seen.extend(st.keyed.into_iter().map(|(k, _)| String::from_utf8(k).unwrap()));
            }
            keys_seen.sort();
            let mut expected = all.clone();
            expected.sort();
            assert_eq!(keys_seen, expected, "parallelism {p}");
            assert_eq!(items, 2);
        }
        assert!(restored.state_for("other", 0, 1).is_empty());
        let uids: BTreeSet<String> = ["op".to_string()].into();
        assert!(restored.check(128, &uids, false).is_ok());
        assert!(matches!(restored.check(64, &uids, false), Err(RestoreError::MaxParallelism { .. })));
        let err = restored.check(128, &BTreeSet::new(), false).unwrap_err().to_string();
        assert!(err.contains("state for operator uid 'op'"), "{err}");
        assert!(restored.check(128, &BTreeSet::new(), true).is_ok());
        assert!(matches!(Restored::load(dir.path()), Err(RestoreError::NotACheckpoint(_))));
    }

    #[test]
    fn a_restart_discards_the_earlier_processes_checkpoints_but_the_restore_point() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["chk-1", "chk-2", "chk-5", "chk-final-0", "chk-final-1", "other"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let storage = DirStorage::new(dir.path()).for_attempt(1);
        storage.discard_earlier_in_background(5, Some(dir.path().join("chk-2")));
        let left = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            names
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while left().len() > 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(left(), ["chk-2", "chk-5", "chk-final-1", "other"]);
    }

    #[test]
    fn a_metadata_naming_a_file_outside_its_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::new(dir.path());
        std::fs::write(dir.path().join("secret"), b"EDDYSNP1\x00\x00\x00\x00").unwrap();
        let mut handle = storage.write_task(1, 0, 0, &vec![]).unwrap();
        handle.file = "../secret".into();
        let meta = Metadata { job: "j".into(), checkpoint: 1, savepoint: false, completed_ms: 0, max_parallelism: 128, tasks: vec![handle] };
        let location = storage.complete(&meta).unwrap();
        let err = Restored::load(&location).unwrap_err().to_string();
        assert!(err.contains("names \"../secret\" for task 0 subtask 0"), "{err}");
    }
}
