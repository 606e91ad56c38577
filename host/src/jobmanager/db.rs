//! The JobManager's database: tenants, API keys (hashes only), which tenant
//! uploaded which module, the history of ended jobs and per-minute usage, active
//! jobs, join tokens and identities, and the uploaded modules' bytes, so that a
//! restart keeps them.
//!
//! Two backends behind the `Store` trait: a redb file in the state directory
//! (the single-node default; modules are files beside it), or a PostgreSQL
//! database that a standby JobManager reaches too (`postgres.rs`, with the
//! leadership lease). `Db` is what the JobManager calls: JSON over a `Store`.
//!
//! Values are JSON: they are small, read at start and written on change, and JSON
//! keeps the file readable with any redb tool and tolerant of added fields.

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A table of the database.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Tenants by name.
    Tenants,
    /// API keys by their public id.
    Tokens,
    /// `TENANT/DIGEST` → the name the tenant uploaded the module under (`-` is the admin).
    Modules,
    /// Ended jobs by id.
    Jobs,
    /// `TENANT/MINUTE/JOB` → that minute's usage.
    Usage,
    /// Names of deleted tenants → when: never given again, since jobs and usage keep the name.
    Deleted,
    /// Jobs not ended yet, by id: what a restart resumes (`durable.rs`).
    ActiveJobs,
    /// TaskManager join tokens by id (hashes only).
    JoinTokens,
    /// TaskManager identities given at enrolment, and whether they are revoked.
    Identities,
    /// What a shared database holds of the cluster itself: its CA.
    Cluster,
}

impl Table {
    /// Every table.
    const ALL: [Table; 10] = [
        Table::Tenants,
        Table::Tokens,
        Table::Modules,
        Table::Jobs,
        Table::Usage,
        Table::Deleted,
        Table::ActiveJobs,
        Table::JoinTokens,
        Table::Identities,
        Table::Cluster,
    ];

    /// Its name (also PostgreSQL's `tbl` column).
    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Tokens => "tokens",
            Table::Modules => "modules",
            Table::Jobs => "jobs",
            Table::Usage => "usage",
            Table::Deleted => "deleted-tenants",
            Table::ActiveJobs => "active-jobs",
            Table::JoinTokens => "join-tokens",
            Table::Identities => "taskmanager-identities",
            Table::Cluster => "cluster",
        }
    }

    fn def(self) -> TableDefinition<'static, &'static str, &'static str> {
        TableDefinition::new(self.name())
    }
}

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// redb: I/O, corruption, a lock held by another process.
    #[error("jobmanager database: {0}")]
    Redb(Box<redb::Error>),
    /// PostgreSQL: the connection, a query.
    #[error("jobmanager database (PostgreSQL): {0}")]
    Postgres(String),
    /// This JobManager no longer holds the leadership lease: it may not write.
    #[error("jobmanager database: this JobManager is not the leader any more")]
    NotLeader,
    /// A module file beside the redb file.
    #[error("jobmanager database: {0}")]
    Io(#[from] std::io::Error),
    /// A value that is not the JSON it should be.
    #[error("jobmanager database: corrupt entry {key}: {cause}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong.
        cause: String,
    },
}

impl DbError {
    /// An error of the PostgreSQL backend.
    pub fn postgres(e: impl std::fmt::Display) -> DbError {
        DbError::Postgres(e.to_string())
    }
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

/// What a backend of the database stores: entries of the tables (JSON text,
/// by key) and the modules' bytes. The redb file below is the single-node
/// default; `postgres.rs` is the one a standby shares.
pub trait Store: Send + Sync {
    /// Applies changes in one durable transaction: all or none.
    fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError>;
    /// Every entry of a table whose key starts with `prefix`, in byte order of keys, as stored.
    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, String)>, DbError>;
    /// One entry's value, as stored.
    fn get(&self, table: Table, key: &str) -> Result<Option<String>, DbError>;
    /// Stores a module's bytes under its digest.
    fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), DbError>;
    /// A module's bytes.
    fn module(&self, digest: &str) -> Result<Option<Vec<u8>>, DbError>;
    /// The digests of the stored modules.
    fn modules(&self) -> Result<Vec<String>, DbError>;
}

/// The database: a backend, and the JSON of its values.
pub struct Db {
    store: Box<dyn Store>,
}

impl Db {
    /// Opens (or creates) `state_dir/jobmanager.redb`; refuses a file another
    /// JobManager holds open.
    pub fn open(state_dir: &Path) -> Result<Db, DbError> {
        Ok(Db { store: Box::new(Redb::open(state_dir)?) })
    }

    /// The database of another backend (PostgreSQL, whose lease this JobManager holds).
    pub fn with(store: impl Store + 'static) -> Db {
        Db { store: Box::new(store) }
    }

    /// Applies changes in one durable transaction: all or none.
    pub fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        self.store.write(changes)
    }

    /// Puts one value.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), DbError> {
        self.write(&[Change::Put(table, key, json(value))])
    }

    /// Every entry of a table whose key starts with `prefix`, decoded.
    pub fn scan<T: DeserializeOwned>(&self, table: Table, prefix: &str) -> Result<Vec<(String, T)>, DbError> {
        self.store
            .scan(table, prefix)?
            .into_iter()
            .map(|(key, v)| serde_json::from_str(&v).map(|value| (key.clone(), value)).map_err(|e| DbError::Corrupt { key, cause: e.to_string() }))
            .collect()
    }

    /// One value, decoded.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, DbError> {
        let Some(text) = self.store.get(table, key)? else { return Ok(None) };
        serde_json::from_str(&text).map(Some).map_err(|e| DbError::Corrupt { key: key.to_string(), cause: e.to_string() })
    }

    /// Stores a module's bytes under its digest.
    pub fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), DbError> {
        self.store.put_module(digest, bytes)
    }

    /// A module's bytes.
    pub fn module(&self, digest: &str) -> Result<Option<Vec<u8>>, DbError> {
        self.store.module(digest)
    }

    /// The digests of the stored modules.
    pub fn modules(&self) -> Result<Vec<String>, DbError> {
        self.store.modules()
    }
}

/// The single-node backend: a redb file, and module bytes as files beside it.
struct Redb {
    db: Database,
    /// `DIGEST.wasm` files.
    blobs: PathBuf,
}

impl Redb {
    fn open(state_dir: &Path) -> Result<Redb, DbError> {
        let db = Database::create(state_dir.join("jobmanager.redb")).map_err(redb_err)?;
        let txn = db.begin_write().map_err(redb_err)?;
        for t in Table::ALL {
            txn.open_table(t.def()).map_err(redb_err)?;
        }
        txn.commit().map_err(redb_err)?;
        let blobs = state_dir.join("modules");
        std::fs::create_dir_all(&blobs)?;
        Ok(Redb { db, blobs })
    }
}

impl Store for Redb {
    fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
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

    fn scan(&self, table: Table, prefix: &str) -> Result<Vec<(String, String)>, DbError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let t = txn.open_table(table.def()).map_err(redb_err)?;
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(redb_err)? {
            let (k, v) = entry.map_err(redb_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<String>, DbError> {
        let txn = self.db.begin_read().map_err(redb_err)?;
        let t = txn.open_table(table.def()).map_err(redb_err)?;
        Ok(t.get(key).map_err(redb_err)?.map(|v| v.value().to_string()))
    }

    /// Written aside and renamed: a crash leaves the module whole or absent.
    fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), DbError> {
        let tmp = self.blobs.join(format!("{digest}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.blobs.join(format!("{digest}.wasm")))?;
        Ok(())
    }

    fn module(&self, digest: &str) -> Result<Option<Vec<u8>>, DbError> {
        match std::fs::read(self.blobs.join(format!("{digest}.wasm"))) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn modules(&self) -> Result<Vec<String>, DbError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.blobs)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                out.extend(path.file_stem().and_then(|s| s.to_str()).map(str::to_string));
            }
        }
        Ok(out)
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
