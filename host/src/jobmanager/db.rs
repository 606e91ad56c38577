//! The JobManager's database: tenants, API keys (hashes only), which tenant
//! uploaded which module, the history of ended jobs and per-minute usage, in one
//! redb file in the state directory, so that a restart keeps them.
//!
//! Values are JSON: they are small, read at start and written on change, and JSON
//! keeps the file readable with any redb tool and tolerant of added fields.

use std::path::Path;

use redb::{Database, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Tenants by name.
const TENANTS: TableDefinition<&str, &str> = TableDefinition::new("tenants");
/// API keys by their public id.
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// `TENANT/DIGEST` → the name the tenant uploaded the module under (`-` is the admin).
const MODULES: TableDefinition<&str, &str> = TableDefinition::new("modules");
/// Ended jobs by id.
const JOBS: TableDefinition<&str, &str> = TableDefinition::new("jobs");
/// `TENANT/MINUTE/JOB` → that minute's usage.
const USAGE: TableDefinition<&str, &str> = TableDefinition::new("usage");
/// Jobs not ended yet, by id: what a restart resumes (`durable.rs`).
const ACTIVE_JOBS: TableDefinition<&str, &str> = TableDefinition::new("active-jobs");
/// Names of deleted tenants → when: never given again, since jobs and usage keep the name.
const DELETED: TableDefinition<&str, &str> = TableDefinition::new("deleted-tenants");
/// TaskManager join tokens by id (hashes only).
const JOIN_TOKENS: TableDefinition<&str, &str> = TableDefinition::new("join-tokens");
/// TaskManager identities given at enrolment, and whether they are revoked.
const IDENTITIES: TableDefinition<&str, &str> = TableDefinition::new("taskmanager-identities");

/// A table of the database.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Tenants.
    Tenants,
    /// API keys.
    Tokens,
    /// Module ownership.
    Modules,
    /// Ended jobs.
    Jobs,
    /// Usage per minute.
    Usage,
    /// Names of deleted tenants.
    Deleted,
    /// Jobs not ended yet.
    ActiveJobs,
    /// TaskManager join tokens.
    JoinTokens,
    /// TaskManager identities.
    Identities,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static str> {
        match self {
            Table::Tenants => TENANTS,
            Table::Tokens => TOKENS,
            Table::Modules => MODULES,
            Table::Jobs => JOBS,
            Table::Usage => USAGE,
            Table::Deleted => DELETED,
            Table::ActiveJobs => ACTIVE_JOBS,
            Table::JoinTokens => JOIN_TOKENS,
            Table::Identities => IDENTITIES,
        }
    }
}

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// redb: I/O, corruption, a lock held by another process.
    #[error("jobmanager database: {0}")]
    Redb(Box<redb::Error>),
    /// A value that is not the JSON it should be.
    #[error("jobmanager database: corrupt entry {key}: {cause}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong.
        cause: String,
    },
}

fn redb_err<E: Into<redb::Error>>(e: E) -> DbError {
    DbError::Redb(Box::new(e.into()))
}

/// One change of a write.
pub enum Change<'a> {
    /// Insert or replace `key` of a table with a JSON value.
    Put(Table, &'a str, String),
    /// Remove `key`.
    Delete(Table, &'a str),
}

/// The database file.
pub struct Db {
    db: Database,
}

impl Db {
    /// Opens (or creates) `state_dir/jobmanager.redb`; refuses a file another
    /// JobManager holds open.
    pub fn open(state_dir: &Path) -> Result<Db, DbError> {
        let db = Database::create(state_dir.join("jobmanager.redb")).map_err(redb_err)?;
        let txn = db.begin_write().map_err(redb_err)?;
        for t in [Table::Tenants, Table::Tokens, Table::Modules, Table::Jobs, Table::Usage, Table::Deleted, Table::ActiveJobs, Table::JoinTokens, Table::Identities] {
            txn.open_table(t.def()).map_err(redb_err)?;
        }
        txn.commit().map_err(redb_err)?;
        Ok(Db { db })
    }

    /// Applies changes in one durable transaction: all or none.
    pub fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        let txn = self.db.begin_write().map_err(redb_err)?;
        for change in changes {
            match change {
                Change::Put(t, k, v) => {
                    txn.open_table(t.def()).map_err(redb_err)?.insert(*k, v.as_str()).map_err(redb_err)?;
                }
                Change::Delete(t, k) => {
                    txn.open_table(t.def()).map_err(redb_err)?.remove(*k).map_err(redb_err)?;
                }
            }
        }
        txn.commit().map_err(redb_err)
    }

    /// Puts one value.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), DbError> {
        self.write(&[Change::Put(table, key, json(value))])
    }

    /// Every entry of a table whose key starts with `prefix`, decoded.
    pub fn scan<T: DeserializeOwned>(&self, table: Table, prefix: &str) -> Result<Vec<(String, T)>, DbError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let t = txn.open_table(table.def()).map_err(redb_err)?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(redb_err)? {
            let (k, v) = entry.map_err(redb_err)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let value = serde_json::from_str(v.value())
                .map_err(|e| DbError::Corrupt { key: key.to_string(), cause: e.to_string() })?;
            out.push((key.to_string(), value));
        }
        Ok(out)
    }

    /// One value, decoded.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, DbError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let t = txn.open_table(table.def()).map_err(redb_err)?;
        let Some(v) = t.get(key).map_err(redb_err)? else { return Ok(None) };
        serde_json::from_str(v.value()).map(Some).map_err(|e| DbError::Corrupt { key: key.to_string(), cause: e.to_string() })
    }
}

/// A value as stored.
pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("database values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening_and_prefix_scans_stop_at_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            db.put(Table::Modules, "a/1", &"one").unwrap();
            db.put(Table::Modules, "a/2", &"two").unwrap();
            db.put(Table::Modules, "ab/3", &"three").unwrap();
            db.write(&[Change::Delete(Table::Modules, "a/2")]).unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        let a: Vec<(String, String)> = db.scan(Table::Modules, "a/").unwrap();
        assert_eq!(a, [("a/1".to_string(), "one".to_string())]);
        assert_eq!(db.get::<String>(Table::Modules, "ab/3").unwrap().as_deref(), Some("three"));
    }

    #[test]
    fn a_second_jobmanager_on_the_same_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Db::open(dir.path()).unwrap();
        assert!(Db::open(dir.path()).is_err());
    }
}
