//! The content-addressed module store: uploaded components, validated, kept
//! on disk under their sha256, like Flink's blob server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::runtime::{digest, LoadError, Runtime};

/// What the store knows of a module.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleInfo {
    /// sha256 of the bytes.
    pub id: String,
    /// The file name it was first uploaded under.
    pub name: String,
    /// Size in bytes.
    pub size: usize,
    /// Its entries.
    pub entries: Vec<String>,
}

/// Modules by digest, on disk.
pub struct ModuleStore {
    dir: PathBuf,
    known: BTreeMap<String, ModuleInfo>,
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
}

impl ModuleStore {
    /// The store under `dir`, with the modules already there.
    pub fn open(dir: PathBuf, runtime: &Runtime) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut store = ModuleStore { dir, known: BTreeMap::new() };
        for entry in std::fs::read_dir(&store.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let bytes = std::fs::read(&path)?;
                match Self::validate("stored module", &bytes, runtime) {
                    Ok(info) => {
                        store.known.insert(info.id.clone(), info);
                    }
                    Err(e) => tracing::warn!(path = %path.display(), "ignoring stored module: {e}"),
                }
            }
        }
        Ok(store)
    }

    /// Checks that `bytes` are a component of the job world and lists its
    /// entries. Slow (it compiles), so callers run it without holding locks.
    pub fn validate(name: &str, bytes: &[u8], runtime: &Runtime) -> Result<ModuleInfo, UploadError> {
        let module = runtime.load(name, bytes)?;
        let entries = module.entries().map_err(|e| UploadError::Entries(name.into(), e.to_string()))?;
        Ok(ModuleInfo { id: digest(bytes), name: name.into(), size: bytes.len(), entries })
    }

    /// Stores a validated module; the same bytes again are the same module.
    pub fn insert(&mut self, info: ModuleInfo, bytes: &[u8]) -> Result<ModuleInfo, UploadError> {
        if let Some(known) = self.known.get(&info.id) {
            return Ok(known.clone());
        }
        let tmp = self.dir.join(format!("{}.tmp", info.id));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.path(&info.id))?;
        self.known.insert(info.id.clone(), info.clone());
        Ok(info)
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.wasm"))
    }

    /// A module's description.
    pub fn get(&self, id: &str) -> Option<&ModuleInfo> {
        self.known.get(id)
    }

    /// Every module.
    pub fn list(&self) -> Vec<ModuleInfo> {
        self.known.values().cloned().collect()
    }

    /// A module's bytes.
    pub fn bytes(&self, id: &str) -> Option<std::io::Result<Vec<u8>>> {
        self.known.contains_key(id).then(|| std::fs::read(self.path(id)))
    }
}
