//! The JobManager's database: tenants, API keys (hashes only), which tenant
//! uploaded which module, the history of ended jobs and per-minute usage, active
//! jobs, join tokens and identities, and the uploaded modules' bytes, so that a
//! restart keeps them.
//!
//! Two backends behind one API: a redb file in the state directory (the
//! single-node default; modules are files beside it), or a PostgreSQL database
//! that a standby JobManager reaches too (`postgres.rs`, with the leadership lease).
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

/// The database.
pub struct Db {
    backend: Backend,
}

enum Backend {
    /// A redb file; module bytes as files in `blobs`.
    Redb { db: Database, blobs: PathBuf },
    /// A PostgreSQL database shared with standby JobManagers.
    Postgres(super::postgres::Pg),
}

impl Db {
    /// Opens (or creates) `state_dir/jobmanager.redb`; refuses a file another
    /// JobManager holds open.
    pub fn open(state_dir: &Path) -> Result<Db, DbError> {
        let db = Database::create(state_dir.join("jobmanager.redb")).map_err(redb_err)?;
        let txn = db.begin_write().map_err(redb_err)?;
        for t in Table::ALL {
            txn.open_table(t.def()).map_err(redb_err)?;
        }
        txn.commit().map_err(redb_err)?;
        let blobs = state_dir.join("modules");
        std::fs::create_dir_all(&blobs)?;
        Ok(Db { backend: Backend::Redb { db, blobs } })
    }

    /// The database of a PostgreSQL connection (whose lease this JobManager holds).
    pub fn postgres(pg: super::postgres::Pg) -> Db {
        Db { backend: Backend::Postgres(pg) }
    }

    /// The PostgreSQL backend, if it is one: what a standby shares.
    pub fn shared(&self) -> Option<&super::postgres::Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Redb { .. } => None,
        }
    }

    /// Applies changes in one durable transaction: all or none.
    pub fn write(&self, changes: &[Change<'_>]) -> Result<(), DbError> {
        let db = match &self.backend {
            Backend::Redb { db, .. } => db,
            Backend::Postgres(pg) => return pg.write(changes),
        };
        let txn = db.begin_write().map_err(redb_err)?;
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

    /// Every entry of a table whose key starts with `prefix`, in key order, as stored.
    fn scan_raw(&self, table: Table, prefix: &str) -> Result<Vec<(String, String)>, DbError> {
        let db = match &self.backend {
            Backend::Redb { db, .. } => db,
            Backend::Postgres(pg) => return pg.scan(table, prefix),
        };
        let txn = db.begin_read().map_err(redb_err)?;
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

    /// Every entry of a table whose key starts with `prefix`, decoded.
    pub fn scan<T: DeserializeOwned>(&self, table: Table, prefix: &str) -> Result<Vec<(String, T)>, DbError> {
        self.scan_raw(table, prefix)?
            .into_iter()
            .map(|(key, v)| serde_json::from_str(&v).map(|value| (key.clone(), value)).map_err(|e| DbError::Corrupt { key, cause: e.to_string() }))
            .collect()
    }

    /// One value, decoded.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, DbError> {
        let text = match &self.backend {
            Backend::Redb { db, .. } => {
                let txn = db.begin_read().map_err(redb_err)?;
                let t = txn.open_table(table.def()).map_err(redb_err)?;
                t.get(key).map_err(redb_err)?.map(|v| v.value().to_string())
            }
            Backend::Postgres(pg) => pg.get(table, key)?,
        };
        let Some(text) = text else { return Ok(None) };
        serde_json::from_str(&text).map(Some).map_err(|e| DbError::Corrupt { key: key.to_string(), cause: e.to_string() })
    }

    /// Stores a module's bytes under its digest (a file written aside and renamed, or a row).
    pub fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), DbError> {
        match &self.backend {
            Backend::Redb { blobs, .. } => {
                let tmp = blobs.join(format!("{digest}.tmp"));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, blobs.join(format!("{digest}.wasm")))?;
                Ok(())
            }
            Backend::Postgres(pg) => pg.put_module(digest, bytes),
        }
    }

    /// A module's bytes.
    pub fn module(&self, digest: &str) -> Result<Option<Vec<u8>>, DbError> {
        match &self.backend {
            Backend::Redb { blobs, .. } => match std::fs::read(blobs.join(format!("{digest}.wasm"))) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::Postgres(pg) => pg.module(digest),
        }
    }

    /// The digests of the stored modules.
    pub fn modules(&self) -> Result<Vec<String>, DbError> {
        match &self.backend {
            Backend::Redb { blobs, .. } => {
                let mut out = Vec::new();
                for entry in std::fs::read_dir(blobs)? {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "wasm") {
                        out.extend(path.file_stem().and_then(|s| s.to_str()).map(str::to_string));
                    }
                }
                Ok(out)
            }
            Backend::Postgres(pg) => pg.module_digests(),
        }
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
