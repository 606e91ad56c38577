//! Where keyed state lives: entries addressed by (key, state name, sub-key)
//! behind one trait, in memory or on disk.

use thiserror::Error;

/// A failure of the state store.
#[derive(Debug, Error)]
pub enum StateError {
    /// The store itself failed (disk backends only).
    #[error("state backend: {0}")]
    Backend(String),
    /// A write past the job's keyed state quota, refused before it was made.
    #[error(transparent)]
    Quota(#[from] crate::runtime::QuotaError),
}

/// What the host's maps spend per entry besides its bytes, charged to the
/// quota so that a flood of tiny entries is bounded too.
pub const ENTRY_OVERHEAD: u64 = 64;

/// The bytes an entry is charged: its key, state name, sub-key and stored value.
pub fn entry_bytes(key: &[u8], name: &str, sub: &[u8], value_len: usize) -> u64 {
    (key.len() + name.len() + sub.len() + value_len) as u64 + ENTRY_OVERHEAD
}

/// Results of state operations.
pub type Result<T> = std::result::Result<T, StateError>;

/// Calls `f(key, name, sub, value)` for every entry, with the entries of a key together.
pub type Visit<'a> = &'a mut dyn FnMut(&[u8], &str, &[u8], &[u8]);

/// A store of keyed state entries. Values and list states use the empty
/// sub-key; map states use one sub-key per map entry.
pub trait StateBackend: Send {
    /// The entry, if present.
    fn get(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The length of the entry's value, if present.
    fn size(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>>;
    /// Sets the entry.
    fn put(&mut self, key: &[u8], name: &str, sub: &[u8], value: &[u8]) -> Result<()>;
    /// Removes the entry; returns the length of its value, if it was present.
    fn remove(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>>;
    /// Removes every entry of state `name` of `key`; returns their [`entry_bytes`].
    fn remove_state(&mut self, key: &[u8], name: &str) -> Result<u64>;
    /// The entries of state `name` of `key`, in sub-key byte order.
    fn entries(&mut self, key: &[u8], name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Visits every entry (for snapshots).
    fn for_each(&mut self, f: Visit) -> Result<()>;
}

/// Which backend a job's keyed state uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Hash maps in the TaskManager's memory: fastest; state must fit in memory.
    #[default]
    Memory,
    /// An embedded redb database per subtask under this directory: state
    /// larger than memory, at the cost of disk reads.
    Disk(std::path::PathBuf),
}

/// Parses `memory`, `disk` (under the system's temporary directory) or `disk:DIR`.
impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "memory" => Ok(BackendKind::Memory),
            None if s == "disk" => Ok(BackendKind::Disk(std::env::temp_dir().join("eddy-state"))),
            Some(("disk", dir)) if !dir.is_empty() => Ok(BackendKind::Disk(dir.into())),
            _ => Err(format!("unknown state backend '{s}': use memory, disk or disk:DIR")),
        }
    }
}
