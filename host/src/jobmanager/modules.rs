//! The content-addressed module store: uploaded components, validated, kept
//! in the database under their sha256 (files beside redb, or rows of
//! PostgreSQL, which a standby reads too), like Flink's blob server. The same bytes
//! uploaded by two tenants are stored once and listed for each, under the name
//! each gave; who owns what is in the database.
//!
//! Its maps have their own lock, never held across I/O: reading or writing
//! a 256 MiB module must not stall heartbeats or other requests.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::Serialize;

use super::db::{Db, DbError, Table};
use crate::runtime::{digest, LoadError, Runtime};

/// What the store knows of a module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// sha256 of the bytes.
    pub id: String,
    /// The file name it was uploaded under (by this caller, in a tenant's listing).
    pub name: String,
    /// Size in bytes.
    pub size: usize,
    /// Its entries.
    pub entries: Vec<String>,
}

/// The owner key of the admin's modules (tenant names start with a letter).
const ADMIN: &str = "-";

#[derive(Default)]
struct Known {
    /// Validated modules by digest.
    modules: BTreeMap<String, ModuleInfo>,
    /// digest → owner (tenant, or `-`) → the name that owner gave it.
    owners: BTreeMap<String, BTreeMap<String, String>>,
}

/// Modules by digest.
pub struct ModuleStore {
    known: RwLock<Known>,
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Not a component of the world.
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// Its planner cannot even list entries.
    #[error("{0}: listing entries failed: {1}")]
    Entries(String, String),
    /// The store's disk.
    #[error("cannot store the module: {0}")]
    Io(#[from] std::io::Error),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Past the tenant's module-bytes quota.
    #[error("{0}")]
    Quota(String),
}

/// Whether `tenant`'s modules leave room for `size` more bytes within `limit`.
fn room(known: &Known, tenant: &str, size: u64, limit: u64) -> Result<(), UploadError> {
    let held: u64 =
        known.owners.iter().filter(|(_, o)| o.contains_key(tenant)).filter_map(|(id, _)| known.modules.get(id)).map(|m| m.size as u64).sum();
    if held + size > limit {
        return Err(UploadError::Quota(format!(
            "quota module-bytes exceeded: tenant {tenant} may keep {limit} bytes of modules, has {held} and this upload is {size}"
        )));
    }
    Ok(())
}

fn owner_key(owner: Option<&str>) -> &str {
    owner.unwrap_or(ADMIN)
}

impl ModuleStore {
    /// The store of the modules in `db`, and their owners.
    pub fn open(runtime: &Runtime, db: &Db) -> Result<Self, UploadError> {
        let mut known = Known::default();
        for id in db.modules()? {
            let Some(bytes) = db.module(&id)? else { continue };
            match Self::validate("stored module", &bytes, runtime) {
                Ok(info) if info.id == id => {
                    known.modules.insert(info.id.clone(), info);
                }
                Ok(_) => tracing::warn!(module = %id, "ignoring a stored module whose bytes are not its digest's"),
                Err(e) => tracing::warn!(module = %id, "ignoring stored module: {e}"),
            }
        }
        for (key, name) in db.scan::<String>(Table::Modules, "")? {
            if let Some((owner, digest)) = key.split_once('/') {
                known.owners.entry(digest.to_string()).or_default().insert(owner.to_string(), name);
            }
        }
        Ok(ModuleStore { known: RwLock::new(known) })
    }

    /// Checks that `bytes` are a component of the job world and lists its
    /// entries. Slow (it compiles), so callers run it without holding locks.
    pub fn validate(name: &str, bytes: &[u8], runtime: &Runtime) -> Result<ModuleInfo, UploadError> {
        let module = runtime.load(name, bytes)?;
        let entries = module.entries().map_err(|e| UploadError::Entries(name.into(), e.to_string()))?;
        Ok(ModuleInfo { id: digest(bytes), name: name.into(), size: bytes.len(), entries })
    }

    /// Whether the bytes of `digest` are stored (by anyone): their upload needs no validation.
    pub fn has(&self, digest: &str) -> bool {
        self.known.read().unwrap().modules.contains_key(digest)
    }

    /// Stores a validated module (once, whoever uploads it) and records `owner`'s name for
    /// it, within `limit` bytes of modules owned by `owner`.
    pub fn insert(&self, info: ModuleInfo, bytes: &[u8], owner: Option<&str>, limit: Option<u64>, db: &Db) -> Result<ModuleInfo, UploadError> {
        if !self.has(&info.id) {
            db.put_module(&info.id, bytes)?;
            self.known.write().unwrap().modules.insert(info.id.clone(), info.clone());
        }
        self.own(&info, owner, limit, db)?;
        Ok(self.get(&info.id, owner).expect("just stored"))
    }

    /// Records that `owner` uploaded the stored module `info` under its name. The
    /// ownership is taken in memory first, under the lock that sums the owner's bytes,
    /// so uploads side by side cannot each fit a quota that both together pass.
    fn own(&self, info: &ModuleInfo, owner: Option<&str>, limit: Option<u64>, db: &Db) -> Result<(), UploadError> {
        let key = owner_key(owner);
        {
            let mut known = self.known.write().unwrap();
            if known.owners.get(&info.id).is_some_and(|o| o.contains_key(key)) {
                return Ok(());
            }
            if let (Some(limit), Some(tenant)) = (limit, owner) {
                room(&known, tenant, info.size as u64, limit)?;
            }
            known.owners.entry(info.id.clone()).or_default().insert(key.to_string(), info.name.clone());
        }
        if let Err(e) = db.put(Table::Modules, &format!("{key}/{}", info.id), &info.name) {
            if let Some(o) = self.known.write().unwrap().owners.get_mut(&info.id) {
                o.remove(key);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// A module as `owner` sees it: none if it did not upload it (the admin, `None`, sees all).
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<ModuleInfo> {
        let known = self.known.read().unwrap();
        let mut info = known.modules.get(id)?.clone();
        let owners = known.owners.get(id);
        match owner {
            Some(tenant) => info.name = owners?.get(tenant)?.clone(),
            // The admin sees the first name any owner gave it.
            None => {
                if let Some(name) = owners.and_then(|o| o.get(ADMIN).or_else(|| o.values().next())) {
                    info.name = name.clone();
                }
            }
        }
        Some(info)
    }

    /// Every module `owner` sees.
    pub fn list(&self, owner: Option<&str>) -> Vec<ModuleInfo> {
        let ids: Vec<String> = self.known.read().unwrap().modules.keys().cloned().collect();
        ids.iter().filter_map(|id| self.get(id, owner)).collect()
    }

    /// Refuses an upload of `size` bytes by `tenant` that its `limit` of module bytes
    /// has no room for (bytes it already owns count once). `insert` checks again while
    /// it takes the module; this lets a caller refuse before validating.
    pub fn check_room(&self, tenant: &str, id: &str, size: u64, limit: u64) -> Result<(), UploadError> {
        let known = self.known.read().unwrap();
        if known.owners.get(id).is_some_and(|o| o.contains_key(tenant)) {
            return Ok(());
        }
        room(&known, tenant, size, limit)
    }

    /// A module's bytes, read without holding the store's lock.
    pub fn bytes(&self, id: &str, db: &Db) -> Option<Result<Vec<u8>, DbError>> {
        if !self.has(id) {
            return None;
        }
        db.module(id).transpose().or_else(|| Some(Err(DbError::Corrupt { key: id.into(), cause: "the module's bytes are gone".into() })))
    }
}
