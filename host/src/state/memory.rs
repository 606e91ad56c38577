//! The in-memory backend: per key, an ordered map of (state name, sub-key) to value.

use std::collections::{BTreeMap, HashMap};

use super::backend::{entry_bytes, Result, StateBackend, Visit};

/// One key's entries: (state name, sub-key) → value.
type KeyEntries = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// Keyed state in hash maps (Flink's HashMapStateBackend).
#[derive(Debug, Default)]
pub struct MemoryBackend {
    by_key: HashMap<Vec<u8>, KeyEntries>,
}

impl StateBackend for MemoryBackend {
    fn get(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        // A borrowed (name, sub) pair cannot look up the owned tuple key, so ranges are used.
        let Some(entries) = self.by_key.get(key) else { return Ok(None) };
        Ok(entries.range((name.to_owned(), sub.to_vec())..).next().filter(|((n, s), _)| n == name && s == sub).map(|(_, v)| v.clone()))
    }

    fn size(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        let Some(entries) = self.by_key.get(key) else { return Ok(None) };
        Ok(entries.range((name.to_owned(), sub.to_vec())..).next().filter(|((n, s), _)| n == name && s == sub).map(|(_, v)| v.len()))
    }

    fn put(&mut self, key: &[u8], name: &str, sub: &[u8], value: &[u8]) -> Result<()> {
        if !self.by_key.contains_key(key) {
            self.by_key.insert(key.to_vec(), BTreeMap::new());
        }
        self.by_key.get_mut(key).unwrap().insert((name.to_owned(), sub.to_vec()), value.to_vec());
        Ok(())
    }

    fn remove(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        let Some(entries) = self.by_key.get_mut(key) else { return Ok(None) };
        let old = entries.remove(&(name.to_owned(), sub.to_vec())).map(|v| v.len());
        if entries.is_empty() {
            self.by_key.remove(key);
        }
        Ok(old)
    }

    fn remove_state(&mut self, key: &[u8], name: &str) -> Result<u64> {
        let Some(entries) = self.by_key.get_mut(key) else { return Ok(0) };
        let mut freed = 0;
        entries.retain(|(n, s), v| {
            let keep = n != name;
            if !keep {
                freed += entry_bytes(key, n, s, v.len());
            }
            keep
        });
        if entries.is_empty() {
            self.by_key.remove(key);
        }
        Ok(freed)
    }

    fn entries(&mut self, key: &[u8], name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some(entries) = self.by_key.get(key) else { return Ok(Vec::new()) };
        Ok(entries
            .range((name.to_owned(), Vec::new())..)
            .take_while(|((n, _), _)| n == name)
            .map(|((_, s), v)| (s.clone(), v.clone()))
            .collect())
    }

    fn for_each(&mut self, f: Visit) -> Result<()> {
        for (key, entries) in &self.by_key {
            for ((name, sub), value) in entries {
                f(key, name, sub, value);
            }
        }
        Ok(())
    }
}
