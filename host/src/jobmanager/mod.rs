//! The JobManager: keeps the modules, the TaskManagers and their slots, and
//! the jobs; plans jobs, places their subtasks in slots, deploys them, and
//! watches heartbeats. Clients reach it over HTTP (`http.rs`), TaskManagers
//! over QUIC (`rpc.rs`); a job's life is in `job.rs`.

mod checkpoints;
mod dashboard;
mod db;
mod durable;
mod enrolment;
mod history;
mod http;
mod job;
mod logs;
mod metrics;
mod modules;
mod openapi;
mod placement;
mod postgres;
mod recovery;
mod restart;
mod rpc;
mod stats;
mod tenant_api;
mod tenants;
mod triggers;
mod usage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::net::ClusterCa;
use crate::runtime::Runtime;

pub use http::ROUTES;
pub use logs::KEPT_LINES as JOB_LOG_LINES;
pub use job::{Job, JobSettings, JobStatus, Submission, SubtaskEnd};
pub use tenants::{write_private, Caller, ADMIN_KEY_FILE};

/// Milliseconds since the epoch of `t`: how the API and the database give times.
pub fn millis(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    millis(std::time::SystemTime::now())
}
pub use modules::{ModuleInfo, ModuleStore};
pub use restart::{parse_duration, RestartStrategy};

/// Settings of a JobManager; `eddy jobmanager --help` explains each.
#[derive(Debug, Clone)]
pub struct JobManagerConfig {
    /// HTTP API address.
    pub bind: SocketAddr,
    /// QUIC endpoint address.
    pub rpc_bind: SocketAddr,
    /// Modules, CA, and the address file.
    pub state_dir: PathBuf,
    /// Seconds without heartbeat before a TaskManager is lost.
    pub heartbeat_timeout: f64,
    /// Seconds a job may wait for slots.
    pub slot_timeout: f64,
    /// Largest upload, in MiB.
    pub max_upload: u64,
    /// Where jobs' checkpoints go unless a job names another directory.
    pub checkpoint_dir: PathBuf,
    /// How the HTTP API is served.
    pub http_tls: HttpTls,
    /// How long a TaskManager's certificate is valid (it renews at two thirds).
    pub taskmanager_cert_lifetime: Duration,
    /// A PostgreSQL database shared with standby JobManagers; none: the state directory's redb.
    pub database: Option<String>,
    /// How long the leadership lease lasts unless renewed (a shared database only).
    pub leader_lease: Duration,
    /// Credentials jobs' connectors name (`--secrets`), resolved for each job's tenant.
    pub secrets: crate::connectors::kafka::SecretsFile,
}

/// Plain HTTP or TLS for the HTTP API. Plain only on a loopback address: keys travel in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTls {
    /// Plain HTTP (a loopback address only).
    Plain,
    /// TLS with a certificate from the cluster CA for these names (DNS names or IPs).
    ClusterCa(Vec<String>),
    /// TLS with the admin's own certificate chain and key (PEM files).
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
}

/// A registered TaskManager.
pub struct TaskManagerEntry {
    /// Its identity (`tm-1`, …), as its certificate names it.
    pub id: String,
    /// Its data endpoint, for other TaskManagers.
    pub data_addr: SocketAddr,
    /// Its slots: the job holding each, if any.
    pub slots: Vec<Option<String>>,
    /// When it last heartbeat.
    pub last_heartbeat: Instant,
    /// Tasks it said are running.
    pub running_tasks: u32,
    /// The connection it registered on; commands go over it.
    pub connection: quinn::Connection,
}

/// The connections of the TaskManagers `tms` still registered: whom to tell something of a job.
pub(crate) fn connections(taskmanagers: &BTreeMap<String, TaskManagerEntry>, tms: &[String]) -> Vec<quinn::Connection> {
    tms.iter().filter_map(|t| taskmanagers.get(t)).map(|t| t.connection.clone()).collect()
}

impl TaskManagerEntry {
    fn free_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.is_none()).count()
    }
}

/// Everything the JobManager knows, behind one lock (never held across an await).
pub struct State {
    /// Registered TaskManagers by id.
    pub taskmanagers: BTreeMap<String, TaskManagerEntry>,
    /// Jobs by id.
    pub jobs: BTreeMap<String, Job>,
}

/// The shared core of the JobManager.
pub struct JobManager {
    /// Settings.
    pub config: JobManagerConfig,
    /// The Wasm runtime: validates uploads and runs planners.
    pub runtime: Runtime,
    /// The state.
    pub state: Mutex<State>,
    /// Tenants, keys, module owners, ended jobs: what a restart keeps.
    db: db::Db,
    /// Tenants and API keys, for the per-request check.
    directory: tenants::Directory,
    /// Join tokens, TaskManager identities and the CA that signs their certificates.
    enrolment: enrolment::Enrolment,
    /// Uploaded modules (their own lock: reading one is file I/O).
    modules: ModuleStore,
    /// Ended jobs, from the database.
    history: history::History,
    /// Tenants' usage not yet in the database.
    meter: usage::Meter,
    /// Savepoints triggered through the API, for their callers to poll.
    triggers: triggers::Triggers,
    /// Writes of active jobs to the database, one at a time (`durable.rs`).
    persisting: tokio::sync::Mutex<()>,
}

/// Runs a JobManager until the process is killed.
pub fn run(config: JobManagerConfig, runtime: Runtime) -> anyhow::Result<()> {
    let tokio = crate::net::runtime()?;
    tokio.block_on(serve(config, runtime))
}

/// The database and the cluster CA: the state directory's redb and CA files,
/// or a shared PostgreSQL database, once this process holds its leadership
/// lease (a standby waits here).
async fn open_database(config: &JobManagerConfig) -> anyhow::Result<(db::Db, ClusterCa)> {
    let Some(url) = config.database.clone() else {
        let db = db::Db::open(&config.state_dir)
            .with_context(|| format!("cannot open the database in {} (is another JobManager using it?)", config.state_dir.display()))?;
        return Ok((db, ClusterCa::load_or_create(&config.state_dir)?));
    };
    let (address, lease) = (config.rpc_bind.to_string(), config.leader_lease);
    let pg = tokio::task::spawn_blocking(move || {
        let pg = postgres::Pg::connect(&url, lease).context("cannot connect to the database")?;
        let held = pg.lease(&address, lease).context("cannot connect to the database for the leadership lease")?;
        held.wait();
        held.keep();
        anyhow::Ok(pg)
    })
    .await??;
    let db = db::Db::with(pg);
    let ca = shared_ca(&db, &config.state_dir)?;
    Ok((db, ca))
}

/// The cluster CA kept in a shared database (made by the first leader), with
/// its certificate written to the state directory for clients and TaskManagers.
fn shared_ca(db: &db::Db, state_dir: &std::path::Path) -> anyhow::Result<ClusterCa> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Stored {
        cert: String,
        key: String,
    }
    let stored = match db.get::<Stored>(db::Table::Cluster, "ca")? {
        Some(s) => s,
        None => {
            let (cert, key) = ClusterCa::generate()?;
            let s = Stored { cert, key };
            db.put(db::Table::Cluster, "ca", &s)?;
            tracing::info!("created a new cluster CA in the database");
            s
        }
    };
    std::fs::create_dir_all(state_dir)?;
    std::fs::write(state_dir.join("ca.pem"), &stored.cert).with_context(|| format!("cannot write {}", state_dir.join("ca.pem").display()))?;
    Ok(ClusterCa::from_pem(&stored.cert, &stored.key)?)
}

async fn serve(config: JobManagerConfig, runtime: Runtime) -> anyhow::Result<()> {
    let (db, ca) = open_database(&config).await?;
    let identity = ca.issue_jobmanager()?;
    let endpoint = crate::net::endpoint(config.rpc_bind, &identity, crate::net::Clients::MayEnrol)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot bind the HTTP API to {}", config.bind))?;
    let directory = tenants::Directory::open(&db, &config.state_dir)?;
    let enrolment = enrolment::Enrolment::open(&db, ca, config.taskmanager_cert_lifetime)?;
    let modules = ModuleStore::open(&runtime, &db).context("cannot open the module store")?;
    let history = history::History::load(&db)?;
    let http_addr = listener.local_addr()?;
    let rpc_addr = endpoint.local_addr()?;
    let scheme = if config.http_tls == HttpTls::Plain { "http" } else { "https" };
    let state = State { taskmanagers: BTreeMap::new(), jobs: BTreeMap::new() };
    let jm = Arc::new(JobManager {
        config: config.clone(),
        runtime,
        state: Mutex::new(state),
        db,
        directory,
        enrolment,
        modules,
        history,
        meter: usage::Meter::default(),
        triggers: triggers::Triggers::default(),
        persisting: tokio::sync::Mutex::new(()),
    });
    jm.resume_jobs().context("cannot resume the jobs of the database")?;
    let address_file = config.state_dir.join("jobmanager.json");
    let http_shown = if scheme == "https" { format!("https://{http_addr}") } else { http_addr.to_string() };
    let addresses = serde_json::json!({"http": http_shown, "rpc": rpc_addr.to_string(), "pid": std::process::id()});
    // Written whole, then renamed, so that readers never see half of it.
    let tmp = address_file.with_extension("json.tmp");
    std::fs::write(&tmp, addresses.to_string())
        .and_then(|_| std::fs::rename(&tmp, &address_file))
        .with_context(|| format!("cannot write {}", address_file.display()))?;
    eprintln!("JobManager: HTTP API on {scheme}://{http_addr}, cluster endpoint (QUIC) on {rpc_addr}, state in {}", config.state_dir.display());
    tokio::spawn(rpc::accept(jm.clone(), endpoint));
    tokio::spawn(watch(jm.clone()));
    tokio::spawn(checkpoints::trigger_loop(jm.clone()));
    tokio::spawn(flush_usage(jm.clone()));
    let cert = match &config.http_tls {
        HttpTls::Plain => return http::serve(jm, listener).await,
        HttpTls::ClusterCa(names) => crate::net::https::ServerCert::from_ca(jm.enrolment.ca(), names)?,
        HttpTls::Files { cert, key } => crate::net::https::ServerCert::from_files(cert, key)?,
    };
    http::serve(jm, crate::net::https::TlsListener::new(listener, cert)?).await
}

/// Every second: tenants' usage to the database, off the async threads.
async fn flush_usage(jm: Arc<JobManager>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let jm = jm.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || jm.meter.flush(&jm.db)).await {
            tracing::error!("cannot write usage to the database: {e}");
        }
    }
}

/// Every 200 ms: declare silent TaskManagers lost, schedule waiting jobs,
/// fail those that waited too long, and count slot time of tenants' running jobs.
async fn watch(jm: Arc<JobManager>) {
    let timeout = Duration::from_secs_f64(jm.config.heartbeat_timeout);
    let mut last_tick = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let elapsed = std::mem::replace(&mut last_tick, Instant::now()).elapsed().as_millis() as u64;
        jm.count_slot_time(elapsed);
        let lost: Vec<String> = {
            let state = jm.state.lock().unwrap();
            state.taskmanagers.values().filter(|t| t.last_heartbeat.elapsed() > timeout).map(|t| t.id.clone()).collect()
        };
        for id in lost {
            jm.lose_taskmanager(&id, &format!("no heartbeat for {timeout:?}"));
        }
        jm.schedule_waiting();
    }
}

impl JobManager {
    /// Adds `ms` of slot time for every slot a tenant's running job holds.
    fn count_slot_time(&self, ms: u64) {
        let held: Vec<(String, String, u64)> = {
            let state = self.state.lock().unwrap();
            state
                .jobs
                .values()
                .filter(|j| j.status == JobStatus::Running)
                .filter_map(|j| Some((j.settings.tenant.clone()?, j.id.clone(), j.plan.slots.len() as u64)))
                .collect()
        };
        self.meter_all(held.into_iter().map(|(t, j, slots)| (t, j, usage::Usage { slot_ms: slots * ms, ..Default::default() })));
    }

    /// Removes a TaskManager and fails the jobs that had subtasks on it.
    pub fn lose_taskmanager(self: &Arc<Self>, id: &str, why: &str) {
        let affected: Vec<String> = {
            let mut state = self.state.lock().unwrap();
            let Some(tm) = state.taskmanagers.remove(id) else { return };
            tracing::warn!(taskmanager = id, addr = %tm.data_addr, "TaskManager lost: {why}");
            tm.connection.close(0u32.into(), b"declared lost");
            state.jobs.values().filter(|j| j.is_active() && j.uses(id)).map(|j| j.id.clone()).collect()
        };
        for job in affected {
            self.fail_job(&job, format!("TaskManager {id} was lost: {why}"));
        }
    }

    /// `lose_taskmanager`, if `id` is still registered on `conn` (not again on another).
    fn connection_closed(self: &Arc<Self>, id: &str, conn: &quinn::Connection, why: &str) {
        let current = self.state.lock().unwrap().taskmanagers.get(id).is_some_and(|t| t.connection.stable_id() == conn.stable_id());
        if current {
            self.lose_taskmanager(id, why);
        }
    }

    /// Random, like Flink's: never reused across restarts, and not guessable by another tenant.
    fn new_job_id(&self) -> String {
        hex::encode(tenants::random::<16>())
    }

    /// Whether job `id` exists and `caller` may see it.
    fn job_visible(&self, id: &str, caller: &Caller) -> bool {
        let state = self.state.lock().unwrap();
        state.visible_job(id, caller).is_some()
    }

    /// Keeps an ended job in the database (its record outlives a restart).
    fn record_end(&self, id: &str) {
        let record = {
            let state = self.state.lock().unwrap();
            let Some(j) = state.jobs.get(id).filter(|j| !j.is_active()) else { return };
            // Every subtask's report after the end lands here; the first one recorded it.
            if self.history.get(id).is_some_and(|r| r.status == j.status) {
                return;
            }
            history::JobRecord {
                id: j.id.clone(),
                name: j.name.clone(),
                tenant: j.settings.tenant.clone(),
                status: j.status,
                start_time: millis(j.started),
                end_time: millis(j.ended.unwrap_or_else(std::time::SystemTime::now)),
                duration: j.duration_ms(),
                failure: j.failure.clone(),
                records_in: j.progress().0,
                records_out: j.progress().1,
                restarts: j.attempt,
            }
        };
        if let Err(e) = self.history.record(&self.db, record) {
            tracing::error!(job = id, "cannot record the job's end: {e}");
        }
    }
}
