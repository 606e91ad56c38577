//! Where a job's checkpoints and savepoints go. The admin names directories; a
//! tenant never names a host path: its checkpoints and savepoints live under
//! `CHECKPOINT_DIR/tenants/TENANT/`, and it refers to a savepoint by the name
//! relative to that root that `eddy savepoint` printed.

use std::path::{Component, Path, PathBuf};

use super::tenants::Caller;
use super::JobManager;
use crate::state::BackendKind;

/// A job's checkpoint directory and the savepoint it resumes from.
pub struct Places {
    /// Where its checkpoints go (`<dir>/<job id>`).
    pub checkpoints: PathBuf,
    /// The savepoint or retained checkpoint to restore.
    pub savepoint: Option<PathBuf>,
}

/// The root of a tenant's checkpoints and savepoints.
pub fn tenant_root(jm: &JobManager, tenant: &str) -> PathBuf {
    jm.config.checkpoint_dir.join("tenants").join(tenant)
}

impl Places {
    /// The places of a job `caller` submits, from what it asked for.
    pub fn for_caller(jm: &JobManager, caller: &Caller, checkpoint_dir: Option<PathBuf>, savepoint: Option<PathBuf>) -> Result<Places, String> {
        let Some(tenant) = caller.tenant.as_deref() else {
            if let Some(s) = savepoint.as_ref().filter(|s| !crate::checkpoint::storage::is_absolute(s)) {
                return Err(format!("savepointPath {} must be an absolute path or an s3:// location", s.display()));
            }
            let checkpoints = checkpoint_dir.unwrap_or_else(|| jm.config.checkpoint_dir.clone());
            return Ok(Places { checkpoints, savepoint });
        };
        if checkpoint_dir.is_some() {
            return Err("a tenant's checkpoints are placed by the cluster: leave out checkpoint-dir".into());
        }
        let root = tenant_root(jm, tenant);
        let savepoint = savepoint.map(|name| within(&root, &name)).transpose()?;
        Ok(Places { checkpoints: root.join("checkpoints"), savepoint })
    }
}

/// A name a tenant gave, beneath its root: relative, with no `..` or other tricks.
fn within(root: &Path, name: &Path) -> Result<PathBuf, String> {
    let plain = !name.as_os_str().is_empty() && name.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(format!(
            "savepoint {} is not a savepoint name: give the name `eddy savepoint` printed, like savepoints/savepoint-JOB-N",
            name.display()
        ));
    }
    Ok(root.join(name))
}

/// Where a job's disk state goes: the admin's directory as given; a tenant's under
/// the TaskManagers' temporary directory, never a path it names (the backend creates
/// and replaces files there).
pub fn state_backend(caller: &Caller, asked: BackendKind) -> Result<BackendKind, String> {
    let (Some(tenant), BackendKind::Disk(dir)) = (caller.tenant.as_deref(), &asked) else { return Ok(asked) };
    let default = std::env::temp_dir().join("eddy-state");
    if *dir != default {
        return Err(format!("a tenant's disk state is placed by the cluster: give state-backend disk, not a directory ({})", dir.display()));
    }
    Ok(BackendKind::Disk(default.join("tenants").join(tenant)))
}

/// Where a savepoint `caller` asked for goes: the admin's directory as given; a tenant's under its root.
pub fn savepoint_target(jm: &JobManager, caller: &Caller, target: Option<PathBuf>) -> Result<Option<PathBuf>, String> {
    match caller.tenant.as_deref() {
        None => match target {
            Some(t) if !crate::checkpoint::storage::is_absolute(&t) => {
                Err(format!("savepoint directory {} must be an absolute path or an s3:// location", t.display()))
            }
            t => Ok(t),
        },
        Some(_) if target.is_some() => Err("a tenant's savepoints are placed by the cluster: leave out the directory".into()),
        Some(tenant) => Ok(Some(tenant_root(jm, tenant).join("savepoints"))),
    }
}

/// How a savepoint's location is shown to `caller`: a tenant sees its name, not the host path.
pub fn shown_location(jm: &JobManager, caller: &Caller, location: &Path) -> String {
    match caller.tenant.as_deref() {
        Some(tenant) => location.strip_prefix(tenant_root(jm, tenant)).unwrap_or(location).display().to_string(),
        None => location.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_stay_beneath_the_root() {
        let root = Path::new("/cp/tenants/acme");
        assert_eq!(within(root, Path::new("savepoints/savepoint-j-3")).unwrap(), root.join("savepoints/savepoint-j-3"));
        for bad in ["../other/savepoints/x", "/etc", "savepoints/../../x", "./x", ""] {
            assert!(within(root, Path::new(bad)).unwrap_err().contains("is not a savepoint name"), "{bad}");
        }
    }
}
