//! `eddy tenant …`, `eddy token …`, `eddy taskmanager-token …` and `eddy
//! revoke-taskmanager`, and where every cluster command finds its API key.

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
    /// Trust the JobManager's TLS certificate (`https://` addresses) if the CA in
    /// this PEM file signed it, e.g. the cluster's `ca.pem` [default: the ca.pem
    /// of a cluster started on this machine, else the webpki roots].
    #[arg(long, value_name = "FILE", env = "EDDY_CA")]
    pub ca: Option<PathBuf>,
}

impl AuthArgs {
    /// A client of the JobManager at `addr` with this key and CA.
    pub fn client(&self, addr: &str) -> anyhow::Result<crate::client::Client> {
        let ca = match &self.ca {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("cannot read the CA certificate {}", path.display()))?),
            None => local_dirs().iter().find_map(|d| std::fs::read(d.join("ca.pem")).ok()),
        };
        Ok(crate::client::Client::with_ca(addr, self.key()?, ca.as_deref())?)
    }

    /// The key: read from the file given, given, or the local cluster's admin key.
    pub fn key(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.token_file {
            let text = read_key(path).with_context(|| format!("cannot read the API key in {}", path.display()))?;
            return Ok(Some(text));
        }
        if let Some(t) = self.token.as_ref().filter(|t| !t.trim().is_empty()) {
            return Ok(Some(t.trim().to_string()));
        }
        Ok(local_dirs().iter().find_map(|dir| read_key(&dir.join(crate::jobmanager::ADMIN_KEY_FILE)).ok()))
    }
}

/// Where clusters on this machine keep their state: `eddy cluster start`'s, then `eddy jobmanager`'s.
fn local_dirs() -> [PathBuf; 2] {
    [crate::cluster_cmd::default_dir(), super::default_state_dir()]
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
    /// A HOST:PORT its socket sources and Kafka connectors may connect to (repeat for more; replaces the list).
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
        let data_root = self.data_root.as_ref().map(std::path::absolute).transpose()?;
        let allowed_sockets = (!self.allow_socket.is_empty()).then(|| self.allow_socket.clone());
        Ok(TenantChanges { quotas, data_root, allowed_sockets })
    }
}

/// A tenant and the quotas to give it.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// Its name: a-z, 0-9 and -, starting with a letter.
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub quotas: QuotaArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

/// `eddy tenant`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (quotas not given take their defaults).
    Create(TenantArgs),
    /// Change a tenant's quotas or reach (for jobs submitted from now on).
    Update(TenantArgs),
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

/// `eddy taskmanager-token`.
#[derive(Debug, Subcommand)]
pub enum JoinTokenCommand {
    /// Create a join token and print it (shown this once): a TaskManager started
    /// with it (`--join-token` or EDDY_JOIN_TOKEN) enrols and gets a certificate
    /// of its own from the JobManager.
    Create {
        /// How long it admits TaskManagers, like 30m, 24h, 7d (at most 365d).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = crate::jobmanager::parse_duration)]
        ttl: std::time::Duration,
        /// A note shown by `eddy taskmanager-token list`.
        #[arg(long, default_value = "")]
        description: String,
        /// Write the token to FILE (created readable by you only) instead of printing it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// List join tokens (never their secrets) and how many TaskManagers each enrolled.
    List {
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
    /// Revoke a join token: no TaskManager enrols with it any more (enrolled ones keep their certificates).
    Revoke {
        /// The token's id (`eddy taskmanager-token list`).
        id: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        connect: ConnectArgs,
    },
}

/// `eddy revoke-taskmanager`.
#[derive(Debug, Args)]
pub struct RevokeTaskManagerArgs {
    /// The TaskManager's id (`eddy taskmanagers`), as its certificate names it.
    pub id: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

/// Runs `eddy taskmanager-token …`.
pub fn join_token(command: JoinTokenCommand) -> anyhow::Result<()> {
    match command {
        JoinTokenCommand::Create { ttl, description, output, connect: c } => {
            let request = crate::api::CreateJoinToken { description, ttl_seconds: Some(ttl.as_secs().max(1)) };
            let made = connect(&c)?.create_join_token(&request)?;
            let expires = crate::client::ago_or_in(made.info.expires);
            deliver(&made.token, output, &format!("join token {} (expires {expires})", made.info.id))?;
        }
        JoinTokenCommand::List { connect: c } => {
            let rows: Vec<Vec<String>> = connect(&c)?
                .join_tokens()?
                .iter()
                .map(|t| {
                    let state = if t.revoked { "revoked" } else if t.expires <= crate::jobmanager::now_ms() { "expired" } else { "active" };
                    vec![t.id.clone(), state.into(), crate::client::ago_or_in(t.expires), t.enrolled.to_string(), t.description.clone()]
                })
                .collect();
            out!("{}", table(&["ID", "STATE", "EXPIRES", "ENROLLED", "DESCRIPTION"], &rows));
        }
        JoinTokenCommand::Revoke { id, connect: c } => {
            let info = connect(&c)?.revoke_join_token(&id)?;
            outln!("Revoked join token {}", info.id);
        }
    }
    Ok(())
}

/// Hands a new secret (`what` it is) to the user, once: into `output`
/// (created readable by its owner only), or printed.
fn deliver(secret: &str, output: Option<PathBuf>, what: &str) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            crate::jobmanager::write_private(&path, &format!("{secret}\n")).with_context(|| format!("cannot write it to {}", path.display()))?;
            eprintln!("Created {what} in {}", path.display());
        }
        None => {
            eprintln!("Created {what}; it is shown only now:");
            outln!("{secret}");
        }
    }
    Ok(())
}

/// Runs `eddy revoke-taskmanager`.
pub fn revoke_taskmanager(a: RevokeTaskManagerArgs) -> anyhow::Result<()> {
    let revoked = connect(&a.connect)?.revoke_taskmanager(&a.id)?;
    outln!("Revoked TaskManager {}: it is disconnected and its certificates are refused", revoked.id);
    Ok(())
}

/// Runs `eddy tenant …`.
pub fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create(TenantArgs { name, quotas, connect: c }) => {
            let t = connect(&c)?.create_tenant(&CreateTenant { name, changes: quotas.changes()? })?;
            outln!("Created tenant {}", t.name);
            out!("{}", describe(&t));
        }
        TenantCommand::Update(TenantArgs { name, quotas, connect: c }) => {
            let t = connect(&c)?.update_tenant(&name, &quotas.changes()?)?;
            outln!("Updated tenant {}", t.name);
            out!("{}", describe(&t));
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
            out!("{}", table(&["NAME", "SLOTS", "MAX PARALLELISM", "RUNNING JOBS", "DATA ROOT"], &rows));
        }
        TenantCommand::Show { name, connect: c } => out!("{}", describe(&connect(&c)?.tenant(&name)?)),
        TenantCommand::Delete { name, connect: c } => {
            connect(&c)?.delete_tenant(&name)?;
            outln!("Deleted tenant {name} and revoked its keys");
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
            deliver(&made.token, output, &format!("{} key {} for {whose}", made.info.role, made.info.id))?;
        }
        TokenCommand::List { tenant, connect: c } => out!("{}", tokens_table(&connect(&c)?.tokens(tenant.as_deref())?)),
        TokenCommand::Revoke { id, connect: c } => {
            let info = connect(&c)?.revoke_token(&id)?;
            outln!("Revoked key {}", info.id);
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

/// `eddy usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The tenant [default: the key's own; the admin must name one].
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// How far back, like 30m, 1h, 7d [1h].
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_since)]
    pub since: std::time::Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connect: ConnectArgs,
}

fn parse_since(s: &str) -> Result<std::time::Duration, String> {
    match s.strip_suffix('d') {
        Some(days) => days.parse::<u64>().map(|d| std::time::Duration::from_secs(d * 86_400)).map_err(|e| format!("bad duration {s:?}: {e}")),
        None => crate::jobmanager::parse_duration(s),
    }
}

/// Runs `eddy usage`.
pub fn usage(a: UsageArgs) -> anyhow::Result<()> {
    let client = connect(&a.connect)?;
    let tenant = match a.tenant {
        Some(t) => t,
        None => client.whoami()?.tenant.context("the admin key belongs to no tenant: name one with --tenant")?,
    };
    let since = crate::jobmanager::now_ms().saturating_sub(a.since.as_millis() as u64);
    let report = client.usage(&tenant, since)?;
    let row = |when: String, job: String, u: &crate::api::Usage| {
        vec![
            when,
            job,
            format!("{:.3}", u.cpu_ns as f64 / 1e9),
            u.records_in.to_string(),
            u.records_out.to_string(),
            u.bytes_in.to_string(),
            u.bytes_out.to_string(),
            format!("{:.1}", u.slot_ms as f64 / 1e3),
        ]
    };
    let mut rows: Vec<Vec<String>> = report.minutes.iter().map(|r| row(utc_minute(r.minute), r.job.clone(), &r.usage)).collect();
    rows.push(row("total".into(), String::new(), &report.total));
    let headers = ["MINUTE (UTC)", "JOB", "CPU S", "RECORDS IN", "RECORDS OUT", "BYTES IN", "BYTES OUT", "SLOT S"];
    out!("{}", table(&headers, &rows));
    Ok(())
}

/// `2026-12-01 09:31` for a time in ms since the epoch (the civil calendar, UTC).
pub(super) fn utc_minute(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (days, minute_of_day) = ((minutes / 1440) as i64, minutes % 1440);
    // Days since 1970-01-01 to a date: Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn minutes_print_as_utc_dates() {
        assert_eq!(super::utc_minute(0), "1970-01-01 00:00");
        assert_eq!(super::utc_minute(1_796_117_460_000), "2026-12-01 09:31");
        assert_eq!(super::utc_minute(951_782_400_000), "2000-02-29 00:00");
    }
}
