//! What a job's connectors may reach on a hosted cluster: files beneath its
//! tenant's data root, sockets on its tenant's allow-list. The embedded cluster
//! (`eddy run --local`) runs unconfined: it is the user's own machine.
//!
//! Two guards. [`Confinement::check_graph`] is lexical, for the JobManager to
//! refuse a job at submission. At open time every file is opened through a
//! `cap_std::fs::Dir` of the root ([`Files`]): the kernel (`openat2` with
//! `RESOLVE_BENEATH`) or cap-std refuses whatever leads out, including
//! symlinks and a path swapped for one after the submission check.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::runtime::{JobGraph, VertexKind};

/// The reach of one job's sources and sinks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// Files are resolved beneath this directory and cannot leave it; none: unconfined.
    pub data_root: Option<PathBuf>,
    /// `host:port` entries socket sources may connect to; none: any. A name on
    /// the list is resolved by the TaskManager's resolver when the source
    /// connects, so list names only whose DNS the cluster's operator trusts.
    pub sockets: Option<Vec<String>>,
}

/// What a confined job's connector may not do.
#[derive(Debug, Error)]
pub enum ConfineError {
    /// A path of the job lies outside the data root (submission check, lexical).
    #[error("{role} {path} is outside the tenant's data root {root}")]
    Outside {
        /// The connector's use of the path.
        role: PathRole,
        /// The path as the job gave it.
        path: PathBuf,
        /// The tenant's data root.
        root: PathBuf,
    },
    /// Opening a path would leave the data root (`..`, an absolute path or a symlink).
    #[error("{role} {path} escapes the tenant's data root {root}")]
    Escapes {
        /// The connector's use of the path.
        role: PathRole,
        /// The path as the job gave it.
        path: PathBuf,
        /// The tenant's data root.
        root: PathBuf,
    },
    /// The data root itself cannot be opened.
    #[error("tenant's data root {root} cannot be opened: {source}")]
    Root {
        /// The tenant's data root.
        root: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A socket source to an address not on the allow-list.
    #[error("socket source {target} is not on the tenant's allow-list")]
    Socket {
        /// `host:port` as the job gave it.
        target: String,
    },
    /// A Kafka broker list with an entry not on the allow-list.
    #[error("{0}")]
    Broker(String),
}

/// How a connector uses a path, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// The file a file source reads.
    Source,
    /// The directory a file sink writes into.
    SinkDir,
    /// A part file of a file sink (also as named in a checkpoint).
    SinkFile,
}

impl fmt::Display for PathRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathRole::Source => "file source path",
            PathRole::SinkDir => "file sink directory",
            PathRole::SinkFile => "file sink file",
        })
    }
}

impl Confinement {
    /// Refuses a graph whose file paths lie outside the data root or whose
    /// socket sources are not on the allow-list. Lexical only: the open-time
    /// resolution through cap-std is the guard; this lets a submission fail early.
    pub fn check_graph(&self, graph: &JobGraph) -> Result<(), ConfineError> {
        graph.vertices.iter().try_for_each(|v| self.check_vertex(&v.kind))
    }

    /// The check of one vertex (see [`Confinement::check_graph`]).
    pub fn check_vertex(&self, kind: &VertexKind) -> Result<(), ConfineError> {
        match kind {
            VertexKind::FileSource(path) | VertexKind::JsonLinesSource(path) | VertexKind::NexmarkFileSource(path) => self.beneath_root(PathRole::Source, Path::new(path)).map(drop),
            VertexKind::FileSink(dir) => self.beneath_root(PathRole::SinkDir, Path::new(dir)).map(drop),
            VertexKind::SocketSource(s) => self.check_socket(&s.host, s.port),
            VertexKind::KafkaSource(k) => self.check_brokers(&k.brokers),
            VertexKind::KafkaSink(k) => self.check_brokers(&k.brokers),
            _ => Ok(()),
        }
    }

    /// Refuses `host:port` unless it is on the allow-list, compared as given
    /// (before any name resolution; names ignoring ASCII case, as DNS does).
    pub fn check_socket(&self, host: &str, port: u16) -> Result<(), ConfineError> {
        let Some(list) = &self.sockets else { return Ok(()) };
        let listed = |entry: &String| {
            let Some((h, p)) = entry.rsplit_once(':') else { return false };
            let h = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h);
            h.eq_ignore_ascii_case(host) && p.parse() == Ok(port)
        };
        match list.iter().any(listed) {
            true => Ok(()),
            false => Err(ConfineError::Socket { target: format!("{host}:{port}") }),
        }
    }

    /// Refuses a Kafka broker list with an entry not on the allow-list (or not `host:port`).
    pub fn check_brokers(&self, list: &str) -> Result<(), ConfineError> {
        super::kafka::check_brokers(self, list).map_err(|e| ConfineError::Broker(e.to_string()))
    }

    /// `path` relative to the data root, lexically; `path` as given when unconfined.
    pub fn beneath_root(&self, role: PathRole, path: &Path) -> Result<PathBuf, ConfineError> {
        let Some(root) = &self.data_root else { return Ok(path.to_path_buf()) };
        let outside = || ConfineError::Outside { role, path: path.to_path_buf(), root: root.clone() };
        let root = absolute_root(root).ok_or_else(outside)?;
        lexically_beneath(&root, path).ok_or_else(outside)
    }

    /// The filesystem the job's connectors see: the host's, or a handle on the data root.
    pub fn files(&self) -> Result<Files, ConfineError> {
        let Some(root) = &self.data_root else { return Ok(Files { root: None, confinement: self.clone() }) };
        let dir = cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority())
            .map_err(|source| ConfineError::Root { root: root.clone(), source })?;
        Ok(Files { root: Some(dir), confinement: self.clone() })
    }
}

/// The root made absolute and free of `.` and `..`, without touching the filesystem.
fn absolute_root(root: &Path) -> Option<PathBuf> {
    lexical(&std::path::absolute(root).ok()?)
}

/// `path` without `.` and `..`; none if a relative path climbs above its start.
/// (`..` at `/` stays at `/`, as the kernel resolves it.)
fn lexical(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir if out.as_os_str().is_empty() => return None,
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// `path` relative to `root` (absolute, lexical): a relative path is taken
/// beneath the root, an absolute one must lie beneath it; none if it leads out.
fn lexically_beneath(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = match path.is_absolute() {
        true => lexical(path)?.strip_prefix(root).ok()?.to_path_buf(),
        false => lexical(path)?,
    };
    // Whatever is left is plain names: a relative path's `..` were resolved or refused.
    Some(if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel })
}

/// A connector's filesystem. Unconfined it is `std::fs` with any path.
/// Confined, paths are made relative to the data root by
/// [`Files::resolve`] and every open, create, mkdir and rename goes
/// through a capability on the root, which cannot be escaped.
#[derive(Debug)]
pub struct Files {
    root: Option<cap_std::fs::Dir>,
    confinement: Confinement,
}

/// The text of cap-std's refusal of a path that leads out of its `Dir`.
const CAP_STD_ESCAPE: &str = "a path led outside of the filesystem";

impl Files {
    /// The path to use for a job's `path`: as given, or relative to the data root.
    pub fn resolve(&self, role: PathRole, path: &Path) -> Result<PathBuf, ConfineError> {
        self.confinement.beneath_root(role, path).map_err(|e| match e {
            ConfineError::Outside { role, path, root } => ConfineError::Escapes { role, path, root },
            e => e,
        })
    }

    /// An I/O failure on `path` (resolved): an escape is a [`ConfineError`], anything else
    /// is what `plain` makes of it.
    pub fn error(&self, role: PathRole, path: &Path, e: io::Error, plain: impl FnOnce(io::Error) -> crate::task::TaskError) -> crate::task::TaskError {
        match self.escape(role, path, &e) {
            Some(escape) => escape.into(),
            None => plain(e),
        }
    }

    /// The refusal `e` is, if cap-std refused `path` for leading out of the root.
    pub fn escape(&self, role: PathRole, path: &Path, e: &io::Error) -> Option<ConfineError> {
        let root = self.confinement.data_root.as_ref().filter(|_| self.root.is_some() && is_escape(e))?;
        Some(ConfineError::Escapes { role, path: path.to_path_buf(), root: root.clone() })
    }

    /// Opens a file for reading.
    pub fn open(&self, path: &Path) -> io::Result<std::fs::File> {
        match &self.root {
            None => std::fs::File::open(path),
            Some(dir) => dir.open(path).map(cap_std::fs::File::into_std),
        }
    }

    /// The length of a file.
    pub fn len(&self, path: &Path) -> io::Result<u64> {
        match &self.root {
            None => std::fs::metadata(path).map(|m| m.len()),
            Some(dir) => dir.metadata(path).map(|m| m.len()),
        }
    }

    /// Creates (or truncates) a file for writing.
    pub fn create(&self, path: &Path) -> io::Result<std::fs::File> {
        match &self.root {
            None => std::fs::File::create(path),
            Some(dir) => dir.create(path).map(cap_std::fs::File::into_std),
        }
    }

    /// Creates a directory and its missing parents.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        match &self.root {
            None => std::fs::create_dir_all(path),
            // cap-std fails to create over a symlink that leads out with "file exists";
            // opening it says what it is.
            Some(dir) => dir.create_dir_all(path).map_err(|e| match dir.open_dir(path) {
                Err(o) if is_escape(&o) => o,
                _ => e,
            }),
        }
    }

    /// Renames a file.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match &self.root {
            None => std::fs::rename(from, to),
            Some(dir) => dir.rename(from, dir, to),
        }
    }

    /// Whether `path` exists (and, confined, lies beneath the root).
    pub fn exists(&self, path: &Path) -> bool {
        match &self.root {
            None => path.exists(),
            Some(dir) => dir.exists(path),
        }
    }
}

fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.to_string() == CAP_STD_ESCAPE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{SocketSource, Vertex};

    fn confined(root: &Path) -> Confinement {
        Confinement { data_root: Some(root.to_path_buf()), sockets: Some(vec!["localhost:9000".into(), "[::1]:9001".into()]) }
    }

    fn resolve(root: &str, path: &str) -> Option<PathBuf> {
        confined(Path::new(root)).beneath_root(PathRole::Source, Path::new(path)).ok()
    }

    #[test]
    fn relative_paths_resolve_beneath_the_root_and_absolute_ones_only_inside_it() {
        assert_eq!(resolve("/data/t1", "in.txt"), Some("in.txt".into()));
        assert_eq!(resolve("/data/t1", "./a/../b/c"), Some("b/c".into()));
        assert_eq!(resolve("/data/t1", "/data/t1/a/b"), Some("a/b".into()));
        assert_eq!(resolve("/data/t1/", "/data/t1"), Some(".".into()));
        assert_eq!(resolve("/data/./t1", "/data/t1/x/../y"), Some("y".into()));
        assert_eq!(resolve("/data/t1", "/etc/passwd"), None);
        assert_eq!(resolve("/data/t1", "/data/t10/x"), None);
        assert_eq!(resolve("/data/t1", "/data/t1/../t2/x"), None);
        assert_eq!(resolve("/data/t1", "../t2/x"), None);
        assert_eq!(resolve("/data/t1", "a/../../t1/x"), None);
        assert_eq!(resolve("/data/t1", "/../../data/t1/x"), Some("x".into()));
    }

    #[test]
    fn unconfined_paths_are_taken_as_given() {
        let free = Confinement::default();
        assert_eq!(free.beneath_root(PathRole::Source, Path::new("/etc/passwd")).unwrap(), Path::new("/etc/passwd"));
        assert!(free.check_socket("anywhere", 1).is_ok());
    }

    #[test]
    fn sockets_must_be_on_the_list_as_given() {
        let c = confined(Path::new("/data"));
        assert!(c.check_socket("localhost", 9000).is_ok());
        assert!(c.check_socket("LocalHost", 9000).is_ok());
        assert!(c.check_socket("::1", 9001).is_ok());
        assert!(c.check_socket("localhost", 9001).is_err());
        assert!(c.check_socket("127.0.0.1", 9000).is_err(), "no resolution before comparing");
        let none = Confinement { sockets: Some(Vec::new()), ..Default::default() };
        let err = none.check_socket("localhost", 9000).unwrap_err();
        assert_eq!(err.to_string(), "socket source localhost:9000 is not on the tenant's allow-list");
    }

    fn graph(kinds: Vec<VertexKind>) -> JobGraph {
        let vertices = kinds
            .into_iter()
            .enumerate()
            .map(|(id, kind)| Vertex {
                id: id as u32,
                name: format!("v{id}"),
                kind,
                parallelism: None,
                slot_sharing_group: None,
                keyed: false,
                per_key_updates: false,
                uid: None,
            })
            .collect();
        JobGraph { name: "job".into(), vertices, edges: Vec::new(), parallelism: None, max_parallelism: None, codec: crate::runtime::ValueCodec::Json }
    }

    #[test]
    fn check_graph_names_the_path_and_the_root() {
        let c = confined(Path::new("/data/t1"));
        let ok = graph(vec![VertexKind::FileSource("in.txt".into()), VertexKind::FileSink("/data/t1/out".into())]);
        c.check_graph(&ok).unwrap();
        let err = c.check_graph(&graph(vec![VertexKind::FileSource("/etc/passwd".into())])).unwrap_err();
        assert_eq!(err.to_string(), "file source path /etc/passwd is outside the tenant's data root /data/t1");
        let err = c.check_graph(&graph(vec![VertexKind::FileSink("../t2".into())])).unwrap_err();
        assert_eq!(err.to_string(), "file sink directory ../t2 is outside the tenant's data root /data/t1");
        let socket = VertexKind::SocketSource(SocketSource { host: "10.0.0.1".into(), port: 22 });
        let err = c.check_graph(&graph(vec![socket])).unwrap_err();
        assert_eq!(err.to_string(), "socket source 10.0.0.1:22 is not on the tenant's allow-list");
    }

    #[test]
    fn files_beneath_the_root_cannot_leave_it() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(work.path().join("secret"), "key").unwrap();
        std::fs::write(root.join("in.txt"), "hello").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out-link")).unwrap();
        std::os::unix::fs::symlink("in.txt", root.join("in-link")).unwrap();
        let files = confined(&root).files().unwrap();
        assert_eq!(files.len(Path::new("in-link")).unwrap(), 5);
        for (path, e) in [("out-link", files.open(Path::new("out-link")).unwrap_err()), ("/etc/passwd", files.open(Path::new("/etc/passwd")).unwrap_err())] {
            assert!(is_escape(&e), "{path}: {e}");
            let err = files.error(PathRole::Source, Path::new(path), e, |_| unreachable!()).to_string();
            assert_eq!(err, format!("file source path {path} escapes the tenant's data root {}", root.display()));
        }
        assert!(is_escape(&files.create(Path::new("out-link")).unwrap_err()));
        assert!(is_escape(&files.rename(Path::new("in.txt"), Path::new("../moved")).unwrap_err()));
        assert_eq!(std::fs::read_to_string(work.path().join("secret")).unwrap(), "key");
        assert!(!work.path().join("moved").exists());
        let err = files.resolve(PathRole::SinkDir, Path::new("../x")).unwrap_err().to_string();
        assert_eq!(err, format!("file sink directory ../x escapes the tenant's data root {}", root.display()));
    }

    #[test]
    fn a_missing_root_is_an_error_not_an_open_door() {
        let err = confined(Path::new("/nonexistent/eddy-root")).files().unwrap_err().to_string();
        assert!(err.starts_with("tenant's data root /nonexistent/eddy-root cannot be opened: "), "{err}");
    }
}
