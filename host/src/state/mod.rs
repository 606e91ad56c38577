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
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use backend::{entry_bytes, BackendKind, Result, StateBackend, StateError, ENTRY_OVERHEAD};
use crate::runtime::{Charge, JobBudget};
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
    /// What the entries cost the job's keyed state quota.
    charge: Charge,
}

impl Default for KeyedState {
    fn default() -> Self {
        KeyedState::new(Box::new(MemoryBackend::default()))
    }
}

impl KeyedState {
    /// Keyed state in `backend`.
    pub fn new(backend: Box<dyn StateBackend>) -> Self {
        KeyedState { backend, ttl: HashMap::new(), charge: Charge::default() }
    }

    /// The same state, its entries charged to `budget`'s keyed state quota
    /// from now on (call it while the state is empty).
    pub fn with_budget(mut self, budget: Option<&Arc<JobBudget>>) -> Self {
        self.charge = Charge::new(budget);
        self
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
        // Most jobs set no time-to-live: their writes skip the lookup and the clock.
        let ttl = if self.ttl.is_empty() { None } else { self.ttl.get(name) };
        let expiry = ttl.map_or(NEVER, |t| now_ms().saturating_add(t.as_millis() as i64));
        let mut v = Vec::with_capacity(8 + payload.len());
        v.extend_from_slice(&expiry.to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// The payload of a stored value, unless it expired by `now` (read only for values
    /// that can expire: a clock read per access was a percent of a stateful query).
    fn live(stored: &[u8], now: impl FnOnce() -> i64) -> Option<&[u8]> {
        let expiry = i64::from_le_bytes(stored.get(..8)?.try_into().ok()?);
        (expiry == NEVER || expiry > now()).then(|| &stored[8..])
    }

    fn read(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(mut stored) = self.backend.get(key, name, sub)? else { return Ok(None) };
        match Self::live(&stored, now_ms) {
            Some(_) => {
                // The payload moves to the front of the backend's copy, not into a new one.
                stored.drain(..8);
                Ok(Some(stored))
            }
            None => {
                self.remove_entry(key, name, sub)?;
                Ok(None)
            }
        }
    }

    /// Charges the quota for an entry whose stored value goes from `old` to
    /// `new` bytes; call it before building the value, so a refused write allocates nothing.
    fn admit(&mut self, key: &[u8], name: &str, sub: &[u8], old: Option<usize>, new: usize) -> Result<()> {
        let old = old.map_or(0, |n| entry_bytes(key, name, sub, n));
        Ok(self.charge.resize(old, entry_bytes(key, name, sub, new))?)
    }

    /// The stored length of an entry, when the quota needs it.
    fn stored_size(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        if self.charge.active() {
            self.backend.size(key, name, sub)
        } else {
            Ok(None)
        }
    }

    fn write(&mut self, key: &[u8], name: &str, sub: &[u8], payload: &[u8]) -> Result<()> {
        let old = self.stored_size(key, name, sub)?;
        self.admit(key, name, sub, old, 8 + payload.len())?;
        let v = self.wrap(name, payload);
        self.backend.put(key, name, sub, &v)
    }

    fn remove_entry(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<()> {
        if let Some(n) = self.backend.remove(key, name, sub)? {
            self.charge.release(entry_bytes(key, name, sub, n));
        }
        Ok(())
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
        let freed = self.backend.remove_state(key, name)?;
        self.charge.release(freed);
        Ok(())
    }

    /// List state `name` of `key` (its time-to-live covers the whole list).
    pub fn list_get(&mut self, key: &[u8], name: &str) -> Result<Vec<Vec<u8>>> {
        Ok(self.read(key, name, WHOLE)?.map(|b| decode_list(&b)).unwrap_or_default())
    }

    /// Appends to list state `name` of `key`.
    pub fn list_add(&mut self, key: &[u8], name: &str, value: &[u8]) -> Result<()> {
        let old = self.read(key, name, WHOLE)?;
        let old_len = old.as_ref().map(|l| 8 + l.len());
        let new_len = 8 + old.as_ref().map_or(0, Vec::len) + 4 + value.len();
        self.admit(key, name, WHOLE, old_len, new_len)?;
        let mut list = old.unwrap_or_default();
        list.extend_from_slice(&(value.len() as u32).to_le_bytes());
        list.extend_from_slice(value);
        let stored = self.wrap(name, &list);
        self.backend.put(key, name, WHOLE, &stored)
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
        self.remove_entry(key, name, &map_sub(map_key))
    }

    /// The live entries of map state `name` of `key`, in key byte order.
    pub fn map_entries(&mut self, key: &[u8], name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let now = now_ms();
        Ok(self
            .backend
            .entries(key, name)?
            .into_iter()
            .filter_map(|(sub, v)| Some((sub.strip_prefix(b"m")?.to_vec(), Self::live(&v, || now)?.to_vec())))
            .collect())
    }

    /// Every key's live entries, one encoded entry per key, for a snapshot
    /// (expired entries are left out: a full snapshot cleans them up).
    pub fn snapshot(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let now = now_ms();
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.backend.for_each(&mut |key, name, sub, value| {
            if Self::live(value, || now).is_none() {
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
                self.restore_entry(&key, name, &triple[1], &triple[2]).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

impl KeyedState {
    /// Restored state counts against the quota like written state.
    fn restore_entry(&mut self, key: &[u8], name: &str, sub: &[u8], stored: &[u8]) -> Result<()> {
        let old = self.stored_size(key, name, sub)?;
        self.admit(key, name, sub, old, stored.len())?;
        self.backend.put(key, name, sub, stored)
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
        accounting(KeyedState::default());
    }

    #[test]
    fn disk_backend() {
        let dir = tempfile::tempdir().unwrap();
        exercise(KeyedState::open(&BackendKind::Disk(dir.path().to_path_buf()), "t").unwrap());
        accounting(KeyedState::open(&BackendKind::Disk(dir.path().to_path_buf()), "u").unwrap());
    }

    /// The job's charge follows every write, overwrite, removal, clear and expiry, and a refused write changes nothing.
    fn accounting(s: KeyedState) {
        use crate::runtime::{QuotaError, SandboxConfig};
        let budget = JobBudget::new(SandboxConfig { state_bytes: Some(1000), ..SandboxConfig::default() }, "j", None);
        let mut s = s.with_budget(Some(&budget));
        let value = |len: usize| entry_bytes(b"k", "v", WHOLE, 8 + len);
        s.value_set(b"k", "v", &[1; 100]).unwrap();
        assert_eq!(budget.state_bytes(), value(100));
        s.value_set(b"k", "v", &[1; 10]).unwrap();
        assert_eq!(budget.state_bytes(), value(10), "an overwrite replaces the old charge");
        let asked = value(10) + entry_bytes(b"k", "l", WHOLE, 8 + 4 + 900);
        assert_eq!(s.list_add(b"k", "l", &[2; 900]).unwrap_err().to_string(), QuotaError::StateBytes { limit: 1000, asked }.to_string());
        assert!(s.list_get(b"k", "l").unwrap().is_empty(), "a refused write stores nothing");
        s.list_add(b"k", "l", b"ab").unwrap();
        s.list_add(b"k", "l", b"cd").unwrap();
        assert_eq!(budget.state_bytes(), value(10) + entry_bytes(b"k", "l", WHOLE, 8 + 12));
        s.map_put(b"k", "m", b"x", b"1").unwrap();
        s.map_put(b"k", "m", b"y", b"2").unwrap();
        s.map_remove(b"k", "m", b"x").unwrap();
        s.remove(b"k", "l").unwrap();
        assert_eq!(budget.state_bytes(), value(10) + entry_bytes(b"k", "m", b"my", 9));
        s.remove(b"k", "m").unwrap();
        s.remove(b"k", "v").unwrap();
        assert_eq!(budget.state_bytes(), 0);
        s.set_ttl("t", Some(Duration::from_millis(20)));
        s.value_set(b"k", "t", b"gone").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(s.value_get(b"k", "t").unwrap(), None);
        assert_eq!(budget.state_bytes(), 0, "an expired entry read is given back");
        s.value_set(b"k", "v", b"kept").unwrap();
        let mut copy = KeyedState::default().with_budget(Some(&budget));
        copy.restore(s.snapshot().unwrap()).unwrap();
        assert_eq!(budget.state_bytes(), 2 * value(4), "restored state counts");
        drop((s, copy));
        assert_eq!(budget.state_bytes(), 0, "dropped state is given back");
    }
}
