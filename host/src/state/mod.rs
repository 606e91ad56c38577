//! Keyed state held by the host, reached by operators through the `host`
//! imports, per key of the subtask's key groups. Kept in the host (not the
//! guest) so that snapshots and rescaling need no guest help.
//!
//! Two backends sit behind [`StateBackend`]: [`MemoryBackend`] (default)
//! and [`DiskBackend`] (redb, for state larger than memory). [`KeyedState`]
//! adds the kinds of state (value, list, map) and time-to-live on top.

mod backend;
mod disk;
mod memory;
mod timers;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use backend::{BackendKind, Result, StateBackend, StateError};
pub use disk::DiskBackend;
pub use memory::MemoryBackend;
pub use timers::{Domain, Timers};

/// Sub-key of value and list states; map entries use `b"m"` + their key.
const WHOLE: &[u8] = b"";
/// Stored values start with their expiry (ms since the epoch), `i64::MAX` for none.
const NEVER: i64 = i64::MAX;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn map_sub(map_key: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(map_key.len() + 1);
    s.push(b'm');
    s.extend_from_slice(map_key);
    s
}

/// The keyed state of one operator subtask.
pub struct KeyedState {
    backend: Box<dyn StateBackend>,
    /// Time-to-live per state name: entries not written for this long read as absent
    /// (Flink's OnCreateAndWrite update type, NeverReturnExpired visibility).
    ttl: HashMap<String, Duration>,
}

impl Default for KeyedState {
    fn default() -> Self {
        KeyedState::new(Box::new(MemoryBackend::default()))
    }
}

impl KeyedState {
    /// Keyed state in `backend`.
    pub fn new(backend: Box<dyn StateBackend>) -> Self {
        KeyedState { backend, ttl: HashMap::new() }
    }

    /// Keyed state in the backend `kind`; `name` names a disk backend's file.
    pub fn open(kind: &BackendKind, name: &str) -> Result<Self> {
        Ok(match kind {
            BackendKind::Memory => KeyedState::default(),
            BackendKind::Disk(dir) => KeyedState::new(Box::new(DiskBackend::create(dir, name)?)),
        })
    }

    /// Entries of state `name` expire `ttl` after their last write; none: never.
    pub fn set_ttl(&mut self, name: &str, ttl: Option<Duration>) {
        match ttl {
            Some(t) => self.ttl.insert(name.to_owned(), t),
            None => self.ttl.remove(name),
        };
    }

    fn wrap(&self, name: &str, payload: &[u8]) -> Vec<u8> {
        let expiry = self.ttl.get(name).map_or(NEVER, |t| now_ms().saturating_add(t.as_millis() as i64));
        let mut v = Vec::with_capacity(8 + payload.len());
        v.extend_from_slice(&expiry.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// The payload of a stored value, unless it expired.
    fn live(stored: &[u8], now: i64) -> Option<&[u8]> {
        let expiry = i64::from_le_bytes(stored.get(..8)?.try_into().ok()?);
        (expiry > now).then(|| &stored[8..])
    }

    fn read(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(stored) = self.backend.get(key, name, sub)? else { return Ok(None) };
        match Self::live(&stored, now_ms()) {
            Some(p) => Ok(Some(p.to_vec())),
            None => {
                self.backend.remove(key, name, sub)?;
                Ok(None)
            }
        }
    }

    fn write(&mut self, key: &[u8], name: &str, sub: &[u8], payload: &[u8]) -> Result<()> {
        let v = self.wrap(name, payload);
        self.backend.put(key, name, sub, &v)
    }

    /// Value state `name` of `key`.
    pub fn value_get(&mut self, key: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
        self.read(key, name, WHOLE)
    }

    /// Sets value state `name` of `key`.
    pub fn value_set(&mut self, key: &[u8], name: &str, value: &[u8]) -> Result<()> {
        self.write(key, name, WHOLE, value)
    }

    /// Clears state `name` of `key`, whatever its kind.
    pub fn remove(&mut self, key: &[u8], name: &str) -> Result<()> {
        self.backend.remove_state(key, name)
    }

    /// List state `name` of `key` (its time-to-live covers the whole list).
    pub fn list_get(&mut self, key: &[u8], name: &str) -> Result<Vec<Vec<u8>>> {
        Ok(self.read(key, name, WHOLE)?.map(|b| decode_list(&b)).unwrap_or_default())
    }

    /// Appends to list state `name` of `key`.
    pub fn list_add(&mut self, key: &[u8], name: &str, value: &[u8]) -> Result<()> {
        let mut list = self.read(key, name, WHOLE)?.unwrap_or_default();
        list.extend_from_slice(&(value.len() as u32).to_le_bytes());
        list.extend_from_slice(value);
        self.write(key, name, WHOLE, &list)
    }

    /// Entry `map_key` of map state `name` of `key`.
    pub fn map_get(&mut self, key: &[u8], name: &str, map_key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(key, name, &map_sub(map_key))
    }

    /// Puts an entry of map state `name` of `key`.
    pub fn map_put(&mut self, key: &[u8], name: &str, map_key: &[u8], value: &[u8]) -> Result<()> {
        self.write(key, name, &map_sub(map_key), value)
    }

    /// Removes an entry of map state `name` of `key`.
    pub fn map_remove(&mut self, key: &[u8], name: &str, map_key: &[u8]) -> Result<()> {
        self.backend.remove(key, name, &map_sub(map_key))
    }

    /// The live entries of map state `name` of `key`, in key byte order.
    pub fn map_entries(&mut self, key: &[u8], name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let now = now_ms();
        Ok(self
            .backend
            .entries(key, name)?
            .into_iter()
            .filter_map(|(sub, v)| Some((sub.strip_prefix(b"m")?.to_vec(), Self::live(&v, now)?.to_vec())))
            .collect())
    }

    /// Every key's live entries, one encoded entry per key, for a snapshot
    /// (expired entries are left out: a full snapshot cleans them up).
    pub fn snapshot(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let now = now_ms();
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.backend.for_each(&mut |key, name, sub, value| {
            if Self::live(value, now).is_none() {
                return;
            }
            if out.last().is_none_or(|(k, _)| k != key) {
                out.push((key.to_vec(), Vec::new()));
            }
            let blob = &mut out.last_mut().unwrap().1;
            for part in [name.as_bytes(), sub, value] {
                blob.extend_from_slice(&(part.len() as u32).to_le_bytes());
                blob.extend_from_slice(part);
            }
        })?;
        Ok(out)
    }

    /// Adds the entries of a snapshot.
    pub fn restore(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> std::result::Result<(), String> {
        for (key, blob) in entries {
            let corrupt = || format!("corrupt keyed state for key {}", String::from_utf8_lossy(&key));
            let parts = decode_list(&blob);
            if parts.len() % 3 != 0 {
                return Err(corrupt());
            }
            for triple in parts.chunks(3) {
                let name = std::str::from_utf8(&triple[0]).map_err(|_| corrupt())?;
                self.backend.put(&key, name, &triple[1], &triple[2]).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// Length-prefixed items, as lists and snapshot entries are stored.
fn decode_list(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    while bytes.len() >= 4 {
        let n = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let Some(item) = bytes.get(4..4 + n) else { break };
        items.push(item.to_vec());
        bytes = &bytes[4 + n..];
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(mut s: KeyedState) {
        s.value_set(b"a", "v", b"1").unwrap();
        s.list_add(b"a", "l", b"x").unwrap();
        s.list_add(b"a", "l", b"y").unwrap();
        s.map_put(b"b", "m", b"k", b"2").unwrap();
        s.map_put(b"b", "m", b"j", b"3").unwrap();
        assert_eq!(s.value_get(b"a", "v").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.value_get(b"b", "v").unwrap(), None);
        assert_eq!(s.list_get(b"a", "l").unwrap(), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(s.map_entries(b"b", "m").unwrap(), vec![(b"j".to_vec(), b"3".to_vec()), (b"k".to_vec(), b"2".to_vec())]);
        let mut copy = KeyedState::default();
        copy.restore(s.snapshot().unwrap()).unwrap();
        assert_eq!(copy.list_get(b"a", "l").unwrap(), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(copy.map_get(b"b", "m", b"k").unwrap(), Some(b"2".to_vec()));
        s.map_remove(b"b", "m", b"k").unwrap();
        assert_eq!(s.map_get(b"b", "m", b"k").unwrap(), None);
        s.remove(b"a", "l").unwrap();
        assert!(s.list_get(b"a", "l").unwrap().is_empty());
        assert_eq!(s.value_get(b"a", "v").unwrap(), Some(b"1".to_vec()));
        s.set_ttl("t", Some(Duration::from_millis(30)));
        s.value_set(b"a", "t", b"soon gone").unwrap();
        assert!(s.value_get(b"a", "t").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.value_get(b"a", "t").unwrap(), None, "expired");
        s.value_set(b"z", "t", b"gone too").unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.snapshot().unwrap().iter().all(|(k, _)| k != b"z"), "snapshots leave expired entries out");
    }

    #[test]
    fn memory_backend() {
        exercise(KeyedState::default());
    }

    #[test]
    fn disk_backend() {
        let dir = tempfile::tempdir().unwrap();
        exercise(KeyedState::open(&BackendKind::Disk(dir.path().to_path_buf()), "t").unwrap());
    }
}
