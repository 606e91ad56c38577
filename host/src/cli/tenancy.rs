//! `eddy tenant …` and `eddy token …`, and where every cluster command finds its API key.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{connect, ConnectArgs};
use crate::api::{CreateTenant, CreateToken, Role, Tenant, TenantChanges, TokenInfo};
use crate::client::table;

/// The API key a cluster command sends.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// The API key to send (`Authorization: Bearer KEY`); prefer --token-file,
    /// as other users of this machine can read command lines.
    #[arg(long, value_name = "KEY", env = "EDDY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the API key; it wins over --token [default: the admin key of
    /// a cluster started on this machine by `eddy cluster start`, if there is one].
    #[arg(long, value_name = "FILE", env = "EDDY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The key: read from the file given, given, or the local cluster's admin key.
    pub fn key(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            let text = read_key(path).with_context(|| format!("cannot read the API key in {}", path.display()))?;
            return Ok(Some(text));
        }
        if let Some(t) = self.token.as_ref().filter(|t| !t.trim().is_empty()) {
            return Ok(Some(t.trim().to_string()));
        }
        let local = [crate::cluster_cmd::default_dir(), super::default_state_dir()];
        Ok(local.iter().find_map(|dir| read_key(&dir.join(crate::jobmanager::ADMIN_KEY_FILE)).ok()))
    }
}

/// A key file's one line; an empty file is an error, not an anonymous request.
fn read_key(path: &std::path::Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)?;
    anyhow::ensure!(meta.is_file() && meta.len() <= 4096, "not a key file");
    let text = std::fs::read_to_string(path)?;
    let key = text.trim();
    anyhow::ensure!(!key.is_empty(), "the file is empty");
    Ok(key.to_string())
}

/// Quotas and reach of a tenant; unset flags keep the defaults (create) or the
/// current values (update). `docs/multi-tenancy.md` explains each.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// Slots its running jobs may hold at once [4].
    #[arg(long, value_name = "N")]
    pub slots: Option<u64>,
    /// Largest parallelism of an operator of one job [4].
    #[arg(long, value_name = "N")]
    pub max_parallelism: Option<u64>,
    /// Jobs it may have CREATED, RUNNING or RESTARTING at once [4].
    #[arg(long, value_name = "N")]
    pub running_jobs: Option<u64>,
    /// MiB of modules it may keep uploaded [1024].
    #[arg(long, value_name = "MiB")]
    pub module_mib: Option<u64>,
    /// Largest single upload, in MiB [256].
    #[arg(long, value_name = "MiB")]
    pub max_upload_mib: Option<u64>,
    /// Linear memory of one operator instance, in MiB [512].
    #[arg(long, value_name = "MiB")]
    pub memory_mib: Option<u64>,
    /// Longest guest call, in milliseconds [10000].
    #[arg(long, value_name = "MS")]
    pub call_timeout_ms: Option<u64>,
    /// Keyed state one job may keep per TaskManager, in MiB [1024].
    #[arg(long, value_name = "MiB")]
    pub state_mib: Option<u64>,
    /// Timers one subtask may hold [1000000].
    #[arg(long, value_name = "N")]
    pub timers_per_subtask: Option<u64>,
    /// Distinct counters one job may create per TaskManager [1000].
    #[arg(long, value_name = "N")]
    pub counters: Option<u64>,
    /// Guest log a job may write per second per TaskManager, in KiB (the rest is dropped and counted) [64].
    #[arg(long, value_name = "KiB")]
    pub log_kib_per_second: Option<u64>,
    /// Subtasks of its jobs one TaskManager may run [64].
    #[arg(long, value_name = "N")]
    pub subtasks_per_taskmanager: Option<u64>,
    /// The directory (on every TaskManager) its file sources and sinks resolve beneath; without one it may use no files.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// A HOST:PORT its socket sources may connect to (repeat for more; replaces the list).
    #[arg(long = "allow-socket", value_name = "HOST:PORT")]
    pub allow_socket: Vec<String>,
}

impl QuotaArgs {
    /// The changes these flags ask for, in the API's units.
    pub fn changes(&self) -> anyhow::Result<TenantChanges> {
        let mut quotas = serde_json::Map::new();
        let mib = |v: Option<u64>, name: &str| -> anyhow::Result<Option<u64>> {
            v.map(|m| m.checked_mul(1 << 20).with_context(|| format!("--{name} {m} is too large"))).transpose()
        };
        let kib = self.log_kib_per_second.map(|k| k.saturating_mul(1024));
        let fields = [
            ("slots", self.slots),
            ("max-parallelism", self.max_parallelism),
            ("running-jobs", self.running_jobs),
            ("module-bytes", mib(self.module_mib, "module-mib")?),
            ("max-upload-bytes", mib(self.max_upload_mib, "max-upload-mib")?),
            ("memory-mib", self.memory_mib),
            ("call-timeout-ms", self.call_timeout_ms),
            ("state-bytes", mib(self.state_mib, "state-mib")?),
            ("timers-per-subtask", self.timers_per_subtask),
            ("counters", self.counters),
            ("log-bytes-per-second", kib),
            ("subtasks-per-taskmanager", self.subtasks_per_taskmanager),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                quotas.insert(name.to_string(), v.into());
            }
        }
        let data_root = self.data_root.as_ref().map(|d| std::path::absolute(d)).transpose()?;
        let allowed_sockets = (!self.allow_socket.is_empty()).then(|| self.allow_socket.clone());
        Ok(TenantChanges { quotas, data_root, allowed_sockets })
    }
}

/// `eddy tenant`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (quotas not given take their defaults).
    Create {
        /// Its name: a-z, 0-9 and -, starting with a letter.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        quotas: QuotaArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// Change a tenant's quotas or reach (for jobs submitted from now on).
    Update {
        /// The tenant.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        quotas: QuotaArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// List the tenants.
    List(ConnectArgs),
    /// Show a tenant's quotas and reach.
    Show {
        /// The tenant.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// Delete a tenant (it must have no running job) and revoke its keys.
    Delete {
        /// The tenant.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
}

/// `eddy token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API key and print it (shown this once: the cluster keeps only its hash).
    Create {
        /// The tenant it acts for (not with --role admin).
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// What it may do: developer (upload, run, cancel, savepoint, read), viewer (read), admin (everything).
        #[arg(long, value_enum, default_value = "developer")]
        role: Role,
        /// A note shown by `eddy token list`.
        #[arg(long, default_value = "")]
        description: String,
        /// Write the key to FILE (created readable by you only) instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// List API keys (never their secrets).
    List {
        /// Only this tenant's keys.
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// Revoke an API key: its next request is refused.
    Revoke {
        /// The key's id (`eddy token list`).
        id: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
}

/// Runs `eddy tenant …`.
pub fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { name, quotas, connect: c } => {
            let t = connect(&c)?.create_tenant(&CreateTenant { name, changes: quotas.changes()? })?;
            println!("Created tenant {}", t.name);
            print!("{}", describe(&t));
        }
        TenantCommand::Update { name, quotas, connect: c } => {
            let t = connect(&c)?.update_tenant(&name, &quotas.changes()?)?;
            println!("Updated tenant {}", t.name);
            print!("{}", describe(&t));
        }
        TenantCommand::List(c) => {
            let rows: Vec<Vec<String>> = connect(&c)?
                .tenants()?
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.quotas.slots.to_string(),
                        t.quotas.max_parallelism.to_string(),
                        t.quotas.running_jobs.to_string(),
                        t.data_root.as_ref().map_or("-".into(), |d| d.display().to_string()),
                    ]
                })
                .collect();
            print!("{}", table(&["NAME", "SLOTS", "MAX PARALLELISM", "RUNNING JOBS", "DATA ROOT"], &rows));
        }
        TenantCommand::Show { name, connect: c } => print!("{}", describe(&connect(&c)?.tenant(&name)?)),
        TenantCommand::Delete { name, connect: c } => {
            connect(&c)?.delete_tenant(&name)?;
            println!("Deleted tenant {name} and revoked its keys");
        }
    }
    Ok(())
}

/// A tenant's quotas and reach, one per line.
fn describe(t: &Tenant) -> String {
    let quotas = serde_json::to_value(&t.quotas).expect("quotas serialize");
    let mut rows: Vec<Vec<String>> =
        quotas.as_object().into_iter().flatten().map(|(k, v)| vec![k.clone(), v.to_string()]).collect();
    rows.push(vec!["data-root".into(), t.data_root.as_ref().map_or("- (no files)".into(), |d| d.display().to_string())]);
    let sockets = if t.allowed_sockets.is_empty() { "- (no sockets)".to_string() } else { t.allowed_sockets.join(", ") };
    rows.push(vec!["allowed-sockets".into(), sockets]);
    table(&["QUOTA", "VALUE"], &rows)
}

/// Runs `eddy token …`.
pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { tenant, role, description, output, connect: c } => {
            let made = connect(&c)?.create_token(&CreateToken { tenant, role, description })?;
            let whose = made.info.tenant.as_deref().map_or("the cluster".to_string(), |t| format!("tenant {t}"));
            match output {
                Some(path) => {
                    crate::jobmanager::write_private(&path, &format!("{}\n", made.token))
                        .with_context(|| format!("cannot write the key to {}", path.display()))?;
                    eprintln!("Created {} key {} for {whose} in {}", made.info.role, made.info.id, path.display());
                }
                None => {
                    eprintln!("Created {} key {} for {whose}; it is shown only now:", made.info.role, made.info.id);
                    println!("{}", made.token);
                }
            }
        }
        TokenCommand::List { tenant, connect: c } => print!("{}", tokens_table(&connect(&c)?.tokens(tenant.as_deref())?)),
        TokenCommand::Revoke { id, connect: c } => {
            let info = connect(&c)?.revoke_token(&id)?;
            println!("Revoked key {}", info.id);
        }
    }
    Ok(())
}

fn tokens_table(keys: &[TokenInfo]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.tenant.clone().unwrap_or_else(|| "-".into()),
                k.role.to_string(),
                if k.revoked { "revoked".into() } else { "active".into() },
                k.description.clone(),
            ]
        })
        .collect();
    table(&["ID", "TENANT", "ROLE", "STATE", "DESCRIPTION"], &rows)
}
