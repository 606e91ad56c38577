//! Tenants and their API keys: who may call the JobManager and for whom.
//!
//! Keys are `eddy_ID_SECRET`: the id names the key (it is shown in lists and
//! logs), the secret is 32 random bytes shown once at creation; the database keeps
//! only its sha256, compared in constant time. Tenants and keys live in memory for
//! the per-request check and in the database for restarts; every change is written
//! to the database before memory, so what a caller was told is durable.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::RwLock;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::db::{Change, Db, DbError, Table};
use super::now_ms;
use crate::api::{CreateTenant, CreateToken, CreatedToken, Quotas, Role, Tenant, TenantChanges, TokenInfo};

/// Who is calling: the key's tenant (none for the admin) and role.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's public id, for logs.
    pub key: String,
    /// The tenant it acts for; none: the cluster's admin.
    pub tenant: Option<String>,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// Whether the caller may see an object owned by `owner` (none: the admin's).
    /// Objects it may not see answer exactly as unknown ones, so they cannot be probed.
    pub fn sees(&self, owner: Option<&str>) -> bool {
        self.tenant.is_none() || self.tenant.as_deref() == owner
    }

    /// Whether it may change things (upload, run, cancel, savepoint).
    pub fn may_write(&self) -> bool {
        self.role != Role::Viewer
    }

    /// Whether it is the cluster's admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Why a tenant or key operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// No such tenant or key (or one the caller may not see).
    #[error("no {kind} {name}")]
    NotFound {
        /// `tenant` or `token`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The name is taken, now or by a deleted tenant (whose jobs and usage keep it).
    #[error("tenant name {0} is taken (names of deleted tenants are not given again)")]
    Exists(String),
    /// A bad name, quota or setting.
    #[error("{0}")]
    Invalid(String),
    /// The tenant still has jobs that run.
    #[error("tenant {0} has running jobs: cancel them first")]
    Busy(String),
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A key as stored: what it is, and the hash of its secret.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredKey {
    info: TokenInfo,
    /// sha256 of the secret, hex.
    hash: String,
}

#[derive(Default)]
struct Inner {
    tenants: BTreeMap<String, Tenant>,
    keys: HashMap<String, StoredKey>,
}

/// Tenants and keys.
pub struct Directory {
    inner: RwLock<Inner>,
}

/// Where the first start of a JobManager puts the admin key.
pub const ADMIN_KEY_FILE: &str = "admin.token";

impl Directory {
    /// Loads tenants and keys; on the first start (no key at all) creates an admin
    /// key and writes it to `state_dir/admin.token`, readable by its owner only.
    pub fn open(db: &Db, state_dir: &Path) -> anyhow::Result<Directory> {
        let mut inner = Inner::default();
        for (name, t) in db.scan::<Tenant>(Table::Tenants, "")? {
            inner.tenants.insert(name, t);
        }
        for (id, k) in db.scan::<StoredKey>(Table::Tokens, "")? {
            inner.keys.insert(id, k);
        }
        let directory = Directory { inner: RwLock::new(inner) };
        if directory.inner.read().unwrap().keys.is_empty() {
            let request = CreateToken { tenant: None, role: Role::Admin, description: "created at first start".into() };
            let created = directory.create_token(db, request)?;
            let path = state_dir.join(ADMIN_KEY_FILE);
            write_private(&path, &format!("{}\n", created.token))
                .map_err(|e| anyhow::anyhow!("cannot write the admin key to {}: {e}", path.display()))?;
            eprintln!("JobManager: created the admin key {} in {} (readable by this user only)", created.info.id, path.display());
        }
        Ok(directory)
    }

    /// The caller a bearer key stands for; none if unknown, malformed or revoked.
    pub fn authenticate(&self, key: &str) -> Option<Caller> {
        let (id, secret) = key.strip_prefix("eddy_")?.split_once('_')?;
        let inner = self.inner.read().unwrap();
        let stored = inner.keys.get(id)?;
        (secret_matches(secret, &stored.hash) && !stored.info.revoked).then(|| Caller {
            key: id.to_string(),
            tenant: stored.info.tenant.clone(),
            role: stored.info.role,
        })
    }

    /// A tenant, by name.
    pub fn tenant(&self, name: &str) -> Option<Tenant> {
        self.inner.read().unwrap().tenants.get(name).cloned()
    }

    /// Every tenant.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.inner.read().unwrap().tenants.values().cloned().collect()
    }

    /// Creates a tenant with default quotas changed by `request`.
    pub fn create_tenant(&self, db: &Db, request: CreateTenant) -> Result<Tenant, TenancyError> {
        check_name(&request.name)?;
        if self.tenant(&request.name).is_some() || db.get::<u64>(Table::Deleted, &request.name)?.is_some() {
            return Err(TenancyError::Exists(request.name));
        }
        let base = Tenant {
            name: request.name.clone(),
            created: now_ms(),
            quotas: Quotas::default(),
            data_root: None,
            allowed_sockets: Vec::new(),
        };
        let tenant = apply(base, request.changes)?;
        db.put(Table::Tenants, &tenant.name, &tenant)?;
        self.inner.write().unwrap().tenants.insert(tenant.name.clone(), tenant.clone());
        Ok(tenant)
    }

    /// Changes a tenant's quotas or reach; effective for jobs submitted from now on.
    pub fn update_tenant(&self, db: &Db, name: &str, changes: TenantChanges) -> Result<Tenant, TenancyError> {
        let current = self.tenant(name).ok_or_else(|| not_found("tenant", name))?;
        let tenant = apply(current, changes)?;
        db.put(Table::Tenants, name, &tenant)?;
        self.inner.write().unwrap().tenants.insert(name.to_string(), tenant.clone());
        Ok(tenant)
    }

    /// Deletes a tenant and revokes its keys (the caller checked it has no running job).
    pub fn delete_tenant(&self, db: &Db, name: &str) -> Result<(), TenancyError> {
        self.tenant(name).ok_or_else(|| not_found("tenant", name))?;
        let mut revoked: Vec<(String, String)> = Vec::new();
        for (id, k) in self.inner.read().unwrap().keys.iter().filter(|(_, k)| k.info.tenant.as_deref() == Some(name)) {
            let mut k = k.clone();
            k.info.revoked = true;
            revoked.push((id.clone(), super::db::json(&k)));
        }
        let mut changes = vec![Change::Delete(Table::Tenants, name), Change::Put(Table::Deleted, name, now_ms().to_string())];
        changes.extend(revoked.iter().map(|(id, v)| Change::Put(Table::Tokens, id, v.clone())));
        db.write(&changes)?;
        let mut inner = self.inner.write().unwrap();
        inner.tenants.remove(name);
        for (id, _) in revoked {
            if let Some(k) = inner.keys.get_mut(&id) {
                k.info.revoked = true;
            }
        }
        Ok(())
    }

    /// Creates a key; its secret is in the answer and nowhere else.
    pub fn create_token(&self, db: &Db, request: CreateToken) -> Result<CreatedToken, TenancyError> {
        match (&request.tenant, request.role) {
            (None, Role::Admin) => {}
            (Some(t), Role::Developer | Role::Viewer) => {
                self.tenant(t).ok_or_else(|| not_found("tenant", t))?;
            }
            (None, role) => return Err(TenancyError::Invalid(format!("a {role} key needs a tenant"))),
            (Some(_), Role::Admin) => return Err(TenancyError::Invalid("an admin key belongs to no tenant".into())),
        }
        if request.description.len() > 200 || request.description.contains(['\n', '\r']) {
            return Err(TenancyError::Invalid("a key's description is one line of at most 200 bytes".into()));
        }
        let id = hex::encode(random::<6>());
        let (secret, hash) = new_secret();
        let info = TokenInfo {
            id: id.clone(),
            tenant: request.tenant,
            role: request.role,
            description: request.description,
            created: now_ms(),
            revoked: false,
        };
        let stored = StoredKey { info: info.clone(), hash };
        db.put(Table::Tokens, &id, &stored)?;
        self.inner.write().unwrap().keys.insert(id.clone(), stored);
        Ok(CreatedToken { token: format!("eddy_{id}_{secret}"), info })
    }

    /// Keys, of one tenant or all, oldest first.
    pub fn tokens(&self, tenant: Option<&str>) -> Vec<TokenInfo> {
        let inner = self.inner.read().unwrap();
        let mut keys: Vec<TokenInfo> =
            inner.keys.values().filter(|k| tenant.is_none() || k.info.tenant.as_deref() == tenant).map(|k| k.info.clone()).collect();
        keys.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        keys
    }

    /// Revokes a key: the next request with it is refused.
    pub fn revoke(&self, db: &Db, id: &str) -> Result<TokenInfo, TenancyError> {
        let mut stored = self.inner.read().unwrap().keys.get(id).cloned().ok_or_else(|| not_found("token", id))?;
        stored.info.revoked = true;
        db.put(Table::Tokens, id, &stored)?;
        self.inner.write().unwrap().keys.insert(id.to_string(), stored.clone());
        Ok(stored.info)
    }
}

fn not_found(kind: &'static str, name: &str) -> TenancyError {
    TenancyError::NotFound { kind, name: name.to_string() }
}

/// Tenant names go into paths and URLs: a DNS label, lowercase.
fn check_name(name: &str) -> Result<(), TenancyError> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::Invalid(format!(
            "bad tenant name {name:?}: 1 to 63 of a-z, 0-9 and -, starting with a letter"
        )))
    }
}

/// A tenant with `changes` applied, checked.
fn apply(mut tenant: Tenant, changes: TenantChanges) -> Result<Tenant, TenancyError> {
    if !changes.quotas.is_empty() {
        let mut merged = serde_json::to_value(&tenant.quotas).expect("quotas serialize");
        for (k, v) in changes.quotas {
            if merged.get(&k).is_none() {
                return Err(TenancyError::Invalid(format!("unknown quota {k:?}")));
            }
            // Limits that become shifts and durations on the TaskManagers stay in their range.
            let most = match k.as_str() {
                "memory-mib" => 65_536,
                "call-timeout-ms" => 86_400_000,
                "slots" | "max-parallelism" | "running-jobs" | "subtasks-per-taskmanager" => u64::from(u32::MAX),
                _ => u64::MAX >> 1,
            };
            match v.as_u64() {
                Some(n) if n > 0 && n <= most => merged[&k] = v,
                _ => return Err(TenancyError::Invalid(format!("quota {k} must be a whole number from 1 to {most}, not {v}"))),
            }
        }
        tenant.quotas = serde_json::from_value(merged).map_err(|e| TenancyError::Invalid(format!("bad quota: {e}")))?;
    }
    if let Some(root) = changes.data_root {
        if !root.is_absolute() {
            return Err(TenancyError::Invalid(format!("data root {} must be an absolute path", root.display())));
        }
        tenant.data_root = Some(root);
    }
    if let Some(sockets) = changes.allowed_sockets {
        for s in &sockets {
            let port = s.rsplit_once(':').and_then(|(h, p)| (!h.is_empty()).then_some(p)).and_then(|p| p.parse::<u16>().ok());
            if port.is_none() {
                return Err(TenancyError::Invalid(format!("allowed socket {s:?} is not HOST:PORT")));
            }
        }
        tenant.allowed_sockets = sockets;
    }
    Ok(tenant)
}

/// A new secret (32 random bytes, hex) and the hash to keep of it.
pub fn new_secret() -> (String, String) {
    let secret = hex::encode(random::<32>());
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    (secret, hash)
}

/// Whether `secret` is the one whose hash was kept, compared in constant time.
pub fn secret_matches(secret: &str, hash: &str) -> bool {
    let given = hex::encode(Sha256::digest(secret.as_bytes()));
    given.as_bytes().ct_eq(hash.as_bytes()).into()
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("the operating system gives random bytes");
    bytes
}


/// Writes a file only its owner can read, refusing to follow a planted link.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> (tempfile::TempDir, Db, Directory) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let d = Directory::open(&db, dir.path()).unwrap();
        (dir, db, d)
    }

    #[test]
    fn the_first_start_writes_an_admin_key_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _db, d) = directory();
        let path = dir.path().join(ADMIN_KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let key = std::fs::read_to_string(path).unwrap();
        let caller = d.authenticate(key.trim()).unwrap();
        assert!(caller.is_admin() && caller.tenant.is_none());
    }

    #[test]
    fn keys_are_checked_whole_and_revocation_is_immediate_and_durable() {
        let (dir, db, d) = directory();
        d.create_tenant(&db, CreateTenant { name: "acme".into(), changes: TenantChanges::default() }).unwrap();
        let made = d.create_token(&db, CreateToken { tenant: Some("acme".into()), role: Role::Viewer, description: String::new() }).unwrap();
        let caller = d.authenticate(&made.token).unwrap();
        assert_eq!((caller.tenant.as_deref(), caller.role), (Some("acme"), Role::Viewer));
        let mut wrong = made.token.clone();
        wrong.pop();
        wrong.push('x');
        assert!(d.authenticate(&wrong).is_none());
        assert!(d.authenticate("eddy_nonsense").is_none());
        d.revoke(&db, &made.info.id).unwrap();
        assert!(d.authenticate(&made.token).is_none());
        drop(d);
        drop(db);
        let db = Db::open(dir.path()).unwrap();
        let again = Directory::open(&db, dir.path()).unwrap();
        assert!(again.authenticate(&made.token).is_none(), "revoked after a restart too");
        assert_eq!(again.tenant("acme").unwrap().quotas, Quotas::default());
        // A deleted tenant's name is not given to a new one: its jobs and usage keep it.
        again.delete_tenant(&db, "acme").unwrap();
        let reuse = again.create_tenant(&db, CreateTenant { name: "acme".into(), changes: TenantChanges::default() }).unwrap_err();
        assert_eq!(reuse.to_string(), "tenant name acme is taken (names of deleted tenants are not given again)");
    }

    #[test]
    fn quotas_and_names_are_checked() {
        let (_dir, db, d) = directory();
        let bad = |name: &str| d.create_tenant(&db, CreateTenant { name: name.into(), changes: TenantChanges::default() }).unwrap_err().to_string();
        assert!(bad("Acme").starts_with("bad tenant name \"Acme\""));
        assert!(bad("../x").starts_with("bad tenant name"));
        let mut quotas = serde_json::Map::new();
        quotas.insert("slots".into(), 0.into());
        let err = d.create_tenant(&db, CreateTenant { name: "a".into(), changes: TenantChanges { quotas, ..Default::default() } }).unwrap_err();
        assert_eq!(err.to_string(), "quota slots must be a whole number from 1 to 4294967295, not 0");
        let mut quotas = serde_json::Map::new();
        quotas.insert("memory-mib".into(), (1u64 << 50).into());
        let err = d.create_tenant(&db, CreateTenant { name: "a".into(), changes: TenantChanges { quotas, ..Default::default() } }).unwrap_err();
        assert_eq!(err.to_string(), "quota memory-mib must be a whole number from 1 to 65536, not 1125899906842624");
        let mut quotas = serde_json::Map::new();
        quotas.insert("cpus".into(), 1.into());
        let err = d.create_tenant(&db, CreateTenant { name: "a".into(), changes: TenantChanges { quotas, ..Default::default() } }).unwrap_err();
        assert_eq!(err.to_string(), "unknown quota \"cpus\"");
    }
}
