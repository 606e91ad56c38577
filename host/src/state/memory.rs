//! The in-memory backend: per key, an ordered map of (state name, sub-key) to value.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::keys::KeyMap;

use super::backend::{entry_bytes, Result, StateBackend, Visit};

/// One key's entries, by their name and sub-key as one byte string ([`entry_key`]), so that
/// a lookup needs no owned key: every state access is one of these.
type KeyEntries = BTreeMap<Vec<u8>, Vec<u8>>;

/// Keyed state in hash maps (Flink's HashMapStateBackend).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    by_key: KeyMap<Vec<u8>, KeyEntries>,
    /// The entry key of the current access, kept to reuse its allocation.
    scratch: Vec<u8>,
}

/// Writes an entry's key into `out`: the name's length (4 bytes), the name, the sub-key.
/// The entries of one name share a prefix, and are in their sub-keys' order.
fn entry_key(out: &mut Vec<u8>, name: &str, sub: &[u8]) {
    out.clear();
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(sub);
}

/// An entry key's name and sub-key.
fn split(entry: &[u8]) -> (&str, &[u8]) {
    let len = u32::from_be_bytes(entry[..4].try_into().expect("four bytes")) as usize;
    let name = std::str::from_utf8(&entry[4..4 + len]).expect("written from a str");
    (name, &entry[4 + len..])
}

impl MemoryBackend {
    /// The entries of `key`, and the entry key of (`name`, `sub`) in the scratch buffer.
    fn lookup(&mut self, key: &[u8], name: &str, sub: &[u8]) -> (Option<&mut KeyEntries>, &[u8]) {
        entry_key(&mut self.scratch, name, sub);
        (self.by_key.get_mut(key), &self.scratch)
    }
}

impl StateBackend for MemoryBackend {
    fn get(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        let (entries, at) = self.lookup(key, name, sub);
        Ok(entries.and_then(|e| e.get(at)).cloned())
    }

    fn size(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        let (entries, at) = self.lookup(key, name, sub);
        Ok(entries.and_then(|e| e.get(at)).map(Vec::len))
    }

    fn put(&mut self, key: &[u8], name: &str, sub: &[u8], value: &[u8]) -> Result<()> {
        entry_key(&mut self.scratch, name, sub);
        let entries = match self.by_key.get_mut(key) {
            Some(entries) => entries,
            None => self.by_key.entry(key.to_vec()).or_default(),
        };
        match entries.get_mut(&self.scratch) {
            // An update (the usual write) reuses the value's allocation.
            Some(old) => {
                old.clear();
                old.extend_from_slice(value);
            }
            None => {
                entries.insert(self.scratch.clone(), value.to_vec());
            }
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        let (Some(entries), at) = self.lookup(key, name, sub) else { return Ok(None) };
        let old = entries.remove(at).map(|v| v.len());
        if entries.is_empty() {
            self.by_key.remove(key);
        }
        Ok(old)
    }

    fn remove_state(&mut self, key: &[u8], name: &str) -> Result<u64> {
        let (Some(entries), prefix) = self.lookup(key, name, &[]) else { return Ok(0) };
        let mut freed = 0;
        entries.retain(|entry, v| {
            let keep = !entry.starts_with(prefix);
            if !keep {
                freed += entry_bytes(key, name, &entry[prefix.len()..], v.len());
            }
            keep
        });
        if entries.is_empty() {
            self.by_key.remove(key);
        }
        Ok(freed)
    }

    fn entries(&mut self, key: &[u8], name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (Some(entries), prefix) = self.lookup(key, name, &[]) else { return Ok(Vec::new()) };
        Ok(entries
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(entry, _)| entry.starts_with(prefix))
            .map(|(entry, v)| (entry[prefix.len()..].to_vec(), v.clone()))
            .collect())
    }

    fn for_each(&mut self, f: Visit) -> Result<()> {
        for (key, entries) in &self.by_key {
            for (entry, value) in entries {
                let (name, sub) = split(entry);
                f(key, name, sub, value);
            }
        }
        Ok(())
    }
}
