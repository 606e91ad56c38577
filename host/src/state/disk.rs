//! The on-disk backend: one redb database per subtask.
//!
//! redb is a maintained, pure-Rust embedded B-tree store with MVCC and no C
//! dependencies (RocksDB, Flink's choice, would need a C++ build). Local
//! state needs no durability of its own: checkpoints provide it, so writes
//! are committed without fsync, in batches.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::backend::{entry_bytes, Result, StateBackend, StateError, Visit};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("keyed-state");
/// Writes per commit; more means faster writes and larger transactions.
const WRITES_PER_COMMIT: u32 = 16_384;
/// Every this many commits one is durable, which lets redb reuse freed pages.
const COMMITS_PER_DURABLE: u32 = 16;

/// Keyed state in a redb file (Flink's EmbeddedRocksDBStateBackend, in spirit).
pub struct DiskBackend {
    db: Database,
    path: PathBuf,
    /// The open write transaction; reads see its writes.
    txn: Option<WriteTransaction>,
    writes: u32,
    commits: u32,
}

fn err(e: impl std::fmt::Display) -> StateError {
    StateError::Backend(e.to_string())
}

/// `u32 key length, key, u16 name length, name`: the prefix of a state of a key.
fn prefix(key: &[u8], name: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(6 + key.len() + name.len());
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(key);
    p.extend_from_slice(&(name.len() as u16).to_be_bytes());
    p.extend_from_slice(name.as_bytes());
    p
}

fn full(key: &[u8], name: &str, sub: &[u8]) -> Vec<u8> {
    let mut p = prefix(key, name);
    p.extend_from_slice(sub);
    p
}

/// Splits a stored key into (key, name, sub).
fn split(stored: &[u8]) -> Option<(&[u8], &str, &[u8])> {
    let klen = u32::from_be_bytes(stored.get(..4)?.try_into().ok()?) as usize;
    let key = stored.get(4..4 + klen)?;
    let rest = &stored[4 + klen..];
    let nlen = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(rest.get(2..2 + nlen)?).ok()?;
    Some((key, name, &rest[2 + nlen..]))
}

impl DiskBackend {
    /// A new, empty database at `dir/name.redb` (any old file there is replaced).
    pub fn create(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let path = dir.join(format!("{name}.redb"));
        let _ = std::fs::remove_file(&path);
        let db = Database::create(&path).map_err(err)?;
        Ok(DiskBackend { db, path, txn: None, writes: 0, commits: 0 })
    }

    fn txn(&mut self) -> Result<&mut WriteTransaction> {
        if self.txn.is_none() {
            let mut t = self.db.begin_write().map_err(err)?;
            self.commits += 1;
            t.set_durability(if self.commits % COMMITS_PER_DURABLE == 0 { Durability::Immediate } else { Durability::None });
            self.txn = Some(t);
        }
        Ok(self.txn.as_mut().unwrap())
    }

    fn wrote(&mut self) -> Result<()> {
        self.writes += 1;
        if self.writes >= WRITES_PER_COMMIT {
            self.writes = 0;
            if let Some(t) = self.txn.take() {
                t.commit().map_err(err)?;
            }
        }
        Ok(())
    }

    /// Removes every entry whose stored key starts with `prefix`; returns their [`entry_bytes`].
    fn remove_prefix(&mut self, prefix: &[u8]) -> Result<u64> {
        // The first byte string after every one that starts with `prefix`.
        let mut end = prefix.to_vec();
        while end.last() == Some(&0xff) {
            end.pop();
        }
        let mut freed = 0;
        let mut drop_entry = |k: &[u8], v: &[u8]| {
            if let Some((key, name, sub)) = split(k) {
                freed += entry_bytes(key, name, sub, v.len());
            }
            false
        };
        let t = self.txn()?;
        let mut table = t.open_table(TABLE).map_err(err)?;
        match end.last_mut() {
            Some(b) => {
                *b += 1;
                table.retain_in::<&[u8], _>(prefix..end.as_slice(), &mut drop_entry).map_err(err)?;
            }
            None => table.retain_in::<&[u8], _>(prefix.., &mut drop_entry).map_err(err)?,
        }
        drop(table);
        self.wrote()?;
        Ok(freed)
    }
}

impl Drop for DiskBackend {
    fn drop(&mut self) {
        self.txn = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

impl StateBackend for DiskBackend {
    fn get(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = full(key, name, sub);
        let t = self.txn()?;
        let table = t.open_table(TABLE).map_err(err)?;
        let v = table.get(k.as_slice()).map_err(err)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    fn size(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        let k = full(key, name, sub);
        let t = self.txn()?;
        let table = t.open_table(TABLE).map_err(err)?;
        let n = table.get(k.as_slice()).map_err(err)?.map(|v| v.value().len());
        Ok(n)
    }

    fn put(&mut self, key: &[u8], name: &str, sub: &[u8], value: &[u8]) -> Result<()> {
        let k = full(key, name, sub);
        let t = self.txn()?;
        let mut table = t.open_table(TABLE).map_err(err)?;
        table.insert(k.as_slice(), value).map_err(err)?;
        drop(table);
        self.wrote()
    }

    fn remove(&mut self, key: &[u8], name: &str, sub: &[u8]) -> Result<Option<usize>> {
        let k = full(key, name, sub);
        let t = self.txn()?;
        let mut table = t.open_table(TABLE).map_err(err)?;
        let old = table.remove(k.as_slice()).map_err(err)?.map(|v| v.value().len());
        drop(table);
        self.wrote()?;
        Ok(old)
    }

    fn remove_state(&mut self, key: &[u8], name: &str) -> Result<u64> {
        self.remove_prefix(&prefix(key, name))
    }

    fn entries(&mut self, key: &[u8], name: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let p = prefix(key, name);
        let t = self.txn()?;
        let table = t.open_table(TABLE).map_err(err)?;
        let mut out = Vec::new();
        for item in table.range::<&[u8]>(p.as_slice()..).map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let Some(sub) = k.value().strip_prefix(p.as_slice()) else { break };
            out.push((sub.to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn for_each(&mut self, f: Visit) -> Result<()> {
        let t = self.txn()?;
        let table = t.open_table(TABLE).map_err(err)?;
        for item in table.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let (key, name, sub) = split(k.value()).ok_or_else(|| StateError::Backend("corrupt entry in the state database".into()))?;
            f(key, name, sub, v.value());
        }
        Ok(())
    }
}
