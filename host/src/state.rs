//! Keyed state held by the host, reached by operators through the `host`
//! imports. Kept per key so that snapshots and rescaling need no guest help.

use std::collections::{BTreeMap, HashMap};

/// One named state of one key.
#[derive(Debug, Clone)]
enum Cell {
    Value(Vec<u8>),
    List(Vec<Vec<u8>>),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The in-memory keyed state of one operator subtask.
#[derive(Debug, Default)]
pub struct KeyedState {
    /// Key → state name → cell; keys are the JSON key bytes.
    by_key: HashMap<Vec<u8>, HashMap<String, Cell>>,
}

impl KeyedState {
    fn cell(&self, key: &[u8], name: &str) -> Option<&Cell> {
        self.by_key.get(key)?.get(name)
    }

    fn cell_mut(&mut self, key: &[u8], name: &str, new: impl FnOnce() -> Cell) -> &mut Cell {
        if !self.by_key.contains_key(key) {
            self.by_key.insert(key.to_vec(), HashMap::new());
        }
        let states = self.by_key.get_mut(key).unwrap();
        if !states.contains_key(name) {
            states.insert(name.to_owned(), new());
        }
        states.get_mut(name).unwrap()
    }

    fn clear(&mut self, key: &[u8], name: &str) {
        if let Some(states) = self.by_key.get_mut(key) {
            states.remove(name);
            if states.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// Value state `name` of `key`.
    pub fn value_get(&self, key: &[u8], name: &str) -> Option<Vec<u8>> {
        match self.cell(key, name)? {
            Cell::Value(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// Sets value state `name` of `key`.
    pub fn value_set(&mut self, key: &[u8], name: &str, value: Vec<u8>) {
        *self.cell_mut(key, name, || Cell::Value(Vec::new())) = Cell::Value(value);
    }

    /// Clears state `name` of `key`, whatever its kind.
    pub fn remove(&mut self, key: &[u8], name: &str) {
        self.clear(key, name);
    }

    /// List state `name` of `key`.
    pub fn list_get(&self, key: &[u8], name: &str) -> Vec<Vec<u8>> {
        match self.cell(key, name) {
            Some(Cell::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    /// Appends to list state `name` of `key`.
    pub fn list_add(&mut self, key: &[u8], name: &str, value: Vec<u8>) {
        let cell = self.cell_mut(key, name, || Cell::List(Vec::new()));
        match cell {
            Cell::List(l) => l.push(value),
            other => *other = Cell::List(vec![value]),
        }
    }

    /// Entry `map_key` of map state `name` of `key`.
    pub fn map_get(&self, key: &[u8], name: &str, map_key: &[u8]) -> Option<Vec<u8>> {
        match self.cell(key, name)? {
            Cell::Map(m) => m.get(map_key).cloned(),
            _ => None,
        }
    }

    /// Puts an entry of map state `name` of `key`.
    pub fn map_put(&mut self, key: &[u8], name: &str, map_key: Vec<u8>, value: Vec<u8>) {
        let cell = self.cell_mut(key, name, || Cell::Map(BTreeMap::new()));
        match cell {
            Cell::Map(m) => {
                m.insert(map_key, value);
            }
            other => *other = Cell::Map(BTreeMap::from([(map_key, value)])),
        }
    }

    /// Removes an entry of map state `name` of `key`.
    pub fn map_remove(&mut self, key: &[u8], name: &str, map_key: &[u8]) {
        if let Some(states) = self.by_key.get_mut(key) {
            if let Some(Cell::Map(m)) = states.get_mut(name) {
                m.remove(map_key);
            }
        }
    }

    /// All entries of map state `name` of `key`, in key byte order.
    pub fn map_entries(&self, key: &[u8], name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self.cell(key, name) {
            Some(Cell::Map(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        }
    }

    /// Every key's states, one encoded entry per key, for a snapshot.
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.by_key.iter().map(|(k, states)| (k.clone(), encode(states))).collect()
    }

    /// Adds the entries of a snapshot.
    pub fn restore(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        for (k, v) in entries {
            let states = decode(&v).ok_or_else(|| format!("corrupt keyed state for key {}", String::from_utf8_lossy(&k)))?;
            self.by_key.insert(k, states);
        }
        Ok(())
    }

    /// How many keys hold some state.
    pub fn key_count(&self) -> usize {
        self.by_key.len()
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// One key's states: `name, kind (0 value, 1 list, 2 map), contents`, length-prefixed.
fn encode(states: &HashMap<String, Cell>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, cell) in states {
        put(&mut out, name.as_bytes());
        match cell {
            Cell::Value(v) => {
                out.push(0);
                put(&mut out, v);
            }
            Cell::List(l) => {
                out.push(1);
                out.extend_from_slice(&(l.len() as u32).to_le_bytes());
                l.iter().for_each(|v| put(&mut out, v));
            }
            Cell::Map(m) => {
                out.push(2);
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                for (k, v) in m {
                    put(&mut out, k);
                    put(&mut out, v);
                }
            }
        }
    }
    out
}

fn decode(mut input: &[u8]) -> Option<HashMap<String, Cell>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (b.get(..n)?, b.get(n..)?);
        *b = tail;
        Some(head)
    }
    fn len(b: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize)
    }
    fn bytes(b: &mut &[u8]) -> Option<Vec<u8>> {
        let n = len(b)?;
        Some(take(b, n)?.to_vec())
    }
    let b = &mut input;
    let mut states = HashMap::new();
    while !b.is_empty() {
        let name = String::from_utf8(bytes(b)?).ok()?;
        let cell = match take(b, 1)?[0] {
            0 => Cell::Value(bytes(b)?),
            1 => Cell::List((0..len(b)?).map(|_| bytes(b)).collect::<Option<_>>()?),
            2 => Cell::Map((0..len(b)?).map(|_| Some((bytes(b)?, bytes(b)?))).collect::<Option<_>>()?),
            _ => return None,
        };
        states.insert(name, cell);
    }
    Some(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_per_key_and_name() {
        let mut s = KeyedState::default();
        s.value_set(b"a", "v", b"1".to_vec());
        s.list_add(b"a", "l", b"x".to_vec());
        s.list_add(b"a", "l", b"y".to_vec());
        s.map_put(b"b", "m", b"k".to_vec(), b"2".to_vec());
        assert_eq!(s.value_get(b"a", "v"), Some(b"1".to_vec()));
        assert_eq!(s.value_get(b"b", "v"), None);
        assert_eq!(s.list_get(b"a", "l"), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(s.map_entries(b"b", "m"), vec![(b"k".to_vec(), b"2".to_vec())]);
        s.map_remove(b"b", "m", b"k");
        assert_eq!(s.map_get(b"b", "m", b"k"), None);
        let mut copy = KeyedState::default();
        copy.restore(s.snapshot()).unwrap();
        assert_eq!(copy.list_get(b"a", "l"), vec![b"x".to_vec(), b"y".to_vec()]);
        assert_eq!(copy.value_get(b"a", "v"), Some(b"1".to_vec()));
        s.remove(b"a", "v");
        s.remove(b"a", "l");
        assert_eq!(s.key_count(), 1);
    }
}
