//! The TaskManager: registers its slots with the JobManager, heartbeats,
//! runs the subtasks deployed to it (one thread each, as in the embedded
//! cluster), and exchanges records with other TaskManagers (`exchange.rs`).
//!
//! A TaskManager outlives its JobManager: when the connection is lost (or
//! heartbeats go unanswered for the JobManager's heartbeat timeout) it
//! cancels its tasks, whose attempts the JobManager will not resume, and
//! registers again with backoff until `--reconnect-timeout` passes.

mod exchange;
pub mod metrics;
pub mod identity;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::deploy::{self, JobOptions, Subtask};
use crate::net::{self, codec};
use identity::Credentials;
use crate::plan::ExecutionPlan;
use crate::protocol::{Ack, ChannelHeader, Deployment, Registered, TaskOutcome, ToJobManager, ToTaskManager};
use crate::runtime::{Module, Runtime};
use crate::checkpoint::{DirStorage, Restored};
use crate::task::{AckSink, Checkpointing, GateQueue, JobSignals, LiveCounts, Sender, TaskAck, TaskError};

/// Settings of a TaskManager; `eddy taskmanager --help` explains each.
#[derive(Debug, Clone)]
pub struct TaskManagerConfig {
    /// The JobManagers' QUIC addresses: the leader's and its standbys'.
    pub jobmanagers: Vec<SocketAddr>,
    /// Slots offered.
    pub slots: u32,
    /// Data endpoint address.
    pub bind: SocketAddr,
    /// The cluster CA's certificate (`ca.pem`).
    pub ca: PathBuf,
    /// A join token, to enrol when there is no valid certificate in `state_dir`.
    pub join_token: Option<String>,
    /// Where the certificate and key are kept between runs; none: in memory only.
    pub state_dir: Option<PathBuf>,
    /// How long to keep trying to register (at start, and after losing the JobManager).
    pub reconnect_timeout: Duration,
    /// Where to serve `/metrics` for Prometheus, if anywhere.
    pub metrics: Option<metrics::MetricsEndpoint>,
}

/// The registration in force: the id the JobManager gave and the connection it is on.
#[derive(Clone)]
struct Link {
    id: String,
    connection: quinn::Connection,
    /// After how long without a heartbeat answer the JobManager is taken for lost.
    silence: Duration,
    /// The JobManager's address (the leader's, of several).
    jobmanager: SocketAddr,
}

/// A job's part on this TaskManager.
struct LocalJob {
    /// Cancels its subtasks.
    signals: Arc<JobSignals>,
    /// Deployed but not started: subtasks and what running them needs.
    pending: Option<Pending>,
    /// Progress of its started subtasks, for heartbeats.
    live: Vec<(usize, u32, Arc<LiveCounts>)>,
    /// Its budget here (keyed state bytes held), once started.
    budget: Option<Arc<crate::runtime::JobBudget>>,
}

/// A deployed job's part, waiting for `Start`.
struct Pending {
    subtasks: Vec<Subtask>,
    plan: Arc<ExecutionPlan>,
    /// The component of each of the plan's programs.
    modules: Vec<Module>,
    options: JobOptions,
}

/// The TaskManager's shared state.
pub(crate) struct TaskManager {
    /// Its id and connection, replaced when it registers again.
    link: std::sync::RwLock<Link>,
    runtime: Runtime,
    /// The QUIC endpoint for data (and for connecting to peers).
    endpoint: quinn::Endpoint,
    /// How it connects: with its current certificate, replaced when renewed.
    client: std::sync::RwLock<quinn::ClientConfig>,
    /// The tokio runtime, for task threads that block on network I/O.
    handle: tokio::runtime::Handle,
    /// Jobs with subtasks here.
    jobs: Mutex<HashMap<String, LocalJob>>,
    /// Gates of local subtasks, for data streams from peers: (job, chain, subtask).
    gates: Mutex<HashMap<(String, usize, u32), GateQueue>>,
    /// Channels of local gates that a peer feeds: (job, chain, subtask, channel) →
    /// who feeds it. One stream per channel, from that TaskManager only.
    expected: Mutex<HashMap<(String, usize, u32, u32), exchange::Expected>>,
    /// One connection per peer TaskManager, by its address and identity.
    peers: tokio::sync::Mutex<HashMap<(SocketAddr, String), quinn::Connection>>,
    /// Subtasks running now.
    running: AtomicU32,
    /// Slots it offers, for its metrics.
    slots: u32,
}

/// Runs a TaskManager until it cannot reach a JobManager for the reconnect timeout, or the process is killed.
pub fn run(config: TaskManagerConfig, runtime: Runtime) -> anyhow::Result<()> {
    let tokio = net::runtime()?;
    let handle = tokio.handle().clone();
    tokio.block_on(serve(config, runtime, handle))
}

/// How long a registration attempt may take: a JobManager that is down must
/// not hold the TaskManager in one attempt while it is starting again.
const REGISTER_ATTEMPT: Duration = Duration::from_secs(3);

/// Registers with the JobManager at `addr`: the connection and its answer.
async fn register_at(
    addr: SocketAddr,
    config: &TaskManagerConfig,
    endpoint: &quinn::Endpoint,
    client: &quinn::ClientConfig,
    running: &[String],
) -> anyhow::Result<(quinn::Connection, Registered)> {
    let data_addr = endpoint.local_addr()?;
    let connection = net::connect_with(endpoint, Some(client.clone()), addr, net::JOBMANAGER_NAME, REGISTER_ATTEMPT)
        .await
        .with_context(|| format!("cannot connect to the JobManager at {addr}"))?;
    let request = ToJobManager::Register { slots: config.slots, data_addr, running: running.to_vec() };
    let registered = tokio::time::timeout(REGISTER_ATTEMPT, codec::call::<_, Registered>(&connection, &request))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {REGISTER_ATTEMPT:?}"))
        .and_then(|r| r);
    if let Some(why) = refusal(&connection) {
        anyhow::bail!(Refused(format!("the JobManager at {addr} refused this TaskManager: {why}")));
    }
    let registered = registered.with_context(|| format!("the JobManager at {addr} did not accept the registration"))?;
    Ok((connection, registered))
}

/// The first of `attempts` that succeeds (all run at once: with standbys, only
/// the leader listens); else a refusal if there was one, else the last failure.
async fn first_ok<T>(attempts: Vec<impl std::future::Future<Output = anyhow::Result<T>>>) -> anyhow::Result<T> {
    use futures::StreamExt;
    let mut pending: futures::stream::FuturesUnordered<_> = attempts.into_iter().collect();
    let mut failure: Option<anyhow::Error> = None;
    while let Some(result) = pending.next().await {
        match result {
            Ok(v) => return Ok(v),
            Err(e) if failure.as_ref().is_some_and(refused) && !refused(&e) => {}
            Err(e) => failure = Some(e),
        }
    }
    Err(failure.unwrap_or_else(|| anyhow::anyhow!("no JobManager address given")))
}

/// Registers with the JobManager (the one of `--jobmanager` that leads), trying
/// again with backoff until the reconnect timeout.
async fn register(config: &TaskManagerConfig, endpoint: &quinn::Endpoint, client: &quinn::ClientConfig, running: Vec<String>) -> anyhow::Result<(Link, Vec<String>)> {
    let deadline = tokio::time::Instant::now() + config.reconnect_timeout;
    let mut backoff = Duration::from_millis(100);
    loop {
        let running = &running;
        let attempts = config.jobmanagers.iter().map(|&addr| async move {
            register_at(addr, config, endpoint, client, running).await.map(|(c, r)| (addr, c, r))
        });
        match first_ok(attempts.collect()).await {
            Ok((jobmanager, connection, r)) => {
                let silence = Duration::from_millis(r.heartbeat_timeout_ms.max(r.heartbeat_interval_ms * 2));
                let link = Link { id: r.id, connection, silence, jobmanager };
                return Ok((link, r.cancel));
            }
            Err(e) if refused(&e) => return Err(e),
            Err(e) if tokio::time::Instant::now() + backoff > deadline => {
                return Err(anyhow::anyhow!("{e:#} (gave up after trying for {:?})", config.reconnect_timeout));
            }
            Err(e) => tracing::info!("registration failed, retrying in {backoff:?}: {e:#}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// The JobManager refused this TaskManager for good: trying again would not change it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Why the JobManager closed `connection`, if it did because of the
/// TaskManager's certificate (revoked, or not a TaskManager's).
fn refusal(connection: &quinn::Connection) -> Option<String> {
    match connection.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(close)
            if [crate::protocol::CLOSE_REVOKED, crate::protocol::CLOSE_NOT_A_TASKMANAGER].map(u64::from).contains(&close.error_code.into_inner()) =>
        {
            Some(String::from_utf8_lossy(&close.reason).into_owned())
        }
        _ => None,
    }
}

/// Whether the JobManager refused the TaskManager: its certificate revoked,
/// or a TLS failure (a certificate of another CA, a JobManager whose
/// certificate is not the JobManager's), which trying again would not change.
/// Any other failure (a JobManager starting, busy or down) is tried again.
fn refused(e: &anyhow::Error) -> bool {
    // QUIC carries TLS alerts as the transport error codes 0x100..=0x1ff.
    let tls = |code: quinn::TransportErrorCode| (0x100..=0x1ff).contains(&u64::from(code));
    e.chain().any(|c| c.is::<Refused>()) || e.chain().any(|c| match c.downcast_ref::<quinn::ConnectionError>() {
        Some(quinn::ConnectionError::TransportError(t)) => tls(t.code),
        Some(quinn::ConnectionError::ConnectionClosed(close)) => tls(close.error_code),
        _ => false,
    })
}

/// This TaskManager's certificate: the one kept in the state directory if it
/// is still valid, else a new one from enrolling with the join token.
async fn credentials(config: &TaskManagerConfig) -> anyhow::Result<Credentials> {
    let ca_pem = std::fs::read_to_string(&config.ca).with_context(|| format!("cannot read the cluster CA certificate {}", config.ca.display()))?;
    if let Some(dir) = &config.state_dir {
        if let Some(kept) = Credentials::load(dir, &ca_pem)? {
            return Ok(kept);
        }
    }
    let Some(token) = &config.join_token else {
        let kept = config.state_dir.as_ref().map_or(String::new(), |d| format!(" (none valid in {})", d.display()));
        anyhow::bail!("this TaskManager has no certificate{kept}: give it a join token (--join-token or EDDY_JOIN_TOKEN; an admin creates one with `eddy taskmanager-token create`)");
    };
    let attempts = config.jobmanagers.iter().map(|&addr| {
        let ca_pem = &ca_pem;
        async move { identity::enrol(addr, ca_pem, token).await.with_context(|| format!("cannot enrol with the JobManager at {addr}")) }
    });
    let credentials = first_ok(attempts.collect()).await?;
    if let Some(dir) = &config.state_dir {
        credentials.save(dir)?;
    }
    Ok(credentials)
}

/// Renews the certificate at two thirds of its life, on the registered
/// connection; the endpoint uses the new one for every connection it makes or
/// accepts from then on. A failed renewal is tried again until it expires.
async fn renew_certificates(tm: Arc<TaskManager>, mut credentials: Credentials, state_dir: Option<PathBuf>) {
    loop {
        tokio::time::sleep(credentials.renew_in().max(Duration::from_secs(1))).await;
        let renewed = async {
            let new = identity::renew(&tm.link().connection, credentials.ca_pem()).await?;
            let node = new.node()?;
            tm.endpoint.set_server_config(Some(node.server_config(net::Clients::Certified)?));
            *tm.client.write().unwrap() = node.client_config()?;
            if let Some(dir) = &state_dir {
                new.save(dir)?;
            }
            anyhow::Ok(new)
        };
        match renewed.await {
            Ok(new) => {
                let valid = new.expires().duration_since(std::time::SystemTime::now()).unwrap_or_default();
                tracing::info!(taskmanager = %new.identity, valid_for = ?valid, "renewed this TaskManager's certificate");
                eprintln!("TaskManager {}: renewed its certificate", new.identity);
                credentials = new;
            }
            Err(e) => {
                tracing::warn!("cannot renew this TaskManager's certificate (trying again in 5s): {e:#}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

async fn serve(config: TaskManagerConfig, runtime: Runtime, handle: tokio::runtime::Handle) -> anyhow::Result<()> {
    // First: a bad metrics address stops the TaskManager before it enrols or takes work.
    let metrics = match config.metrics.clone() {
        Some(endpoint) => Some(metrics::listen(endpoint).await?),
        None => None,
    };
    let credentials = credentials(&config).await?;
    let node = credentials.node()?;
    let endpoint = net::endpoint(config.bind, &node, net::Clients::Certified)?;
    let client = node.client_config()?;
    let data_addr = endpoint.local_addr()?;
    let (link, _) = register(&config, &endpoint, &client, Vec::new()).await?;
    eprintln!("TaskManager {}: {} slots, data endpoint {data_addr}, JobManager {}", link.id, config.slots, link.jobmanager);
    let heartbeat_interval = Duration::from_millis(500);
    let tm = Arc::new(TaskManager {
        link: std::sync::RwLock::new(link),
        runtime,
        endpoint: endpoint.clone(),
        client: std::sync::RwLock::new(client),
        handle,
        jobs: Mutex::new(HashMap::new()),
        gates: Mutex::new(HashMap::new()),
        expected: Mutex::new(HashMap::new()),
        peers: tokio::sync::Mutex::new(HashMap::new()),
        running: AtomicU32::new(0),
        slots: config.slots,
    });
    if let Some(listener) = metrics {
        eprintln!("TaskManager {}: metrics at http://{}/metrics", tm.link().id, listener.local_addr()?);
        tokio::spawn(metrics::serve(tm.clone(), listener));
    }
    tokio::spawn(exchange::accept(tm.clone()));
    tokio::spawn(heartbeat(tm.clone(), heartbeat_interval));
    tokio::spawn(renew_certificates(tm.clone(), credentials, config.state_dir.clone()));
    loop {
        let connection = tm.link().connection;
        let reason = tm.clone().commands(connection).await;
        tracing::warn!("lost the JobManager at {} ({reason}); cancelling this TaskManager's tasks and registering again", tm.link().jobmanager);
        let left = tm.cancel_all().await;
        let client = tm.client.read().unwrap().clone();
        let (link, cancel) = register(&config, &endpoint, &client, left).await?;
        for exec in &cancel {
            tm.cancel(exec);
        }
        eprintln!("TaskManager {}: registered again with the JobManager at {}", link.id, link.jobmanager);
        *tm.link.write().unwrap() = link;
    }
}

/// Guest log bytes one heartbeat carries at most (the JobManager takes messages of 16 MiB).
const LOG_BYTES_PER_BEAT: usize = 2 << 20;

/// Heartbeats the JobManager; one that leaves them unanswered for its
/// heartbeat timeout is taken for lost: its connection is closed, and the
/// TaskManager registers again.
async fn heartbeat(tm: Arc<TaskManager>, interval: Duration) {
    let mut answered = tokio::time::Instant::now();
    let mut on: Option<quinn::Connection> = None;
    loop {
        let link = tm.link();
        if on.as_ref().is_none_or(|c| c.stable_id() != link.connection.stable_id()) {
            on = Some(link.connection.clone());
            answered = tokio::time::Instant::now();
        }
        let (usage, state, stats, logs, counters) = {
            let jobs = tm.jobs.lock().unwrap();
            let subtasks = || jobs.iter().flat_map(|(job, local)| local.live.iter().map(move |(c, s, l)| (job, *c, *s, l)));
            let usage = subtasks().map(|(job, c, s, l)| (job.clone(), c, s, l.usage())).collect();
            let stats = subtasks().map(|(job, c, s, l)| (job.clone(), c, s, l.statistics())).collect();
            let counters = subtasks()
                .map(|(job, c, s, l)| (job.clone(), c, s, l.stats.counters()))
                .filter(|x| !x.3.is_empty())
                .collect();
            let state = jobs.iter().filter_map(|(job, local)| Some((job.clone(), local.budget.as_ref()?.state_bytes()))).collect();
            // Taken even if this beat is lost: a lost beat loses at most one beat's lines. At most
            // LOG_BYTES_PER_BEAT in all, so that jobs that log a lot cannot make the heartbeat too
            // big for the JobManager to take (which would lose this TaskManager); the rest waits.
            let mut room = LOG_BYTES_PER_BEAT;
            let logs: Vec<_> = jobs
                .iter()
                .filter_map(|(job, local)| {
                    let taken = local.budget.as_ref()?.take_logs(room)?;
                    room = room.saturating_sub(taken.lines.iter().map(|l| l.message.len() + l.operator.len()).sum());
                    Some((job.clone(), taken))
                })
                .collect();
            (usage, state, stats, logs, counters)
        };
        let running_tasks = tm.running.load(Ordering::Relaxed);
        let beat = ToJobManager::Heartbeat { id: link.id.clone(), running_tasks, usage, state, stats, logs, counters };
        let conn = link.connection.clone();
        let call = tokio::time::timeout(interval.max(Duration::from_millis(200)), codec::call::<_, ()>(&conn, &beat));
        match call.await {
            Ok(Ok(())) => answered = tokio::time::Instant::now(),
            Ok(Err(e)) => tracing::debug!("heartbeat failed: {e}"),
            Err(_) => tracing::debug!("heartbeat unanswered"),
        }
        if answered.elapsed() > link.silence {
            conn.close(0u32.into(), b"the JobManager stopped answering heartbeats");
        }
        tokio::time::sleep(interval).await;
    }
}

impl TaskManager {
    /// The registration in force.
    fn link(&self) -> Link {
        self.link.read().unwrap().clone()
    }

    /// Runs the JobManager's commands on `connection` until it is lost; answers why.
    async fn commands(self: Arc<Self>, connection: quinn::Connection) -> String {
        loop {
            let (mut send, mut recv) = match connection.accept_bi().await {
                Ok(s) => s,
                Err(e) => return e.to_string(),
            };
            let (tm, connection) = (self.clone(), connection.clone());
            tokio::spawn(async move {
                let ack: Ack = match codec::read::<ToTaskManager>(&mut recv).await {
                    Ok(Some(command)) => tm.command(command, &connection).await,
                    Ok(None) => return,
                    Err(e) => Err(format!("bad command: {e}")),
                };
                let _ = codec::write(&mut send, &ack).await;
                let _ = send.finish();
            });
        }
    }

    /// Cancels every job here and waits (a while) for their threads to end;
    /// answers the executions still running after that.
    async fn cancel_all(&self) -> Vec<String> {
        let all: Vec<String> = self.jobs.lock().unwrap().keys().cloned().collect();
        for exec in &all {
            self.cancel(exec);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.running.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.jobs.lock().unwrap().keys().cloned().collect()
    }

    /// Sends a one-way message to the JobManager.
    async fn tell_jobmanager(&self, message: &ToJobManager) -> anyhow::Result<()> {
        let connection = self.link().connection;
        let mut send = connection.open_uni().await?;
        codec::write(&mut send, message).await?;
        send.finish()?;
        Ok(())
    }

    async fn command(self: &Arc<Self>, command: ToTaskManager, from: &quinn::Connection) -> Ack {
        match command {
            ToTaskManager::Deploy(d) => self.deploy(*d, from).await.map_err(|e| format!("{e:#}")),
            ToTaskManager::Start { job } => self.start(&job),
            ToTaskManager::Cancel { job } => {
                self.cancel(&job);
                Ok(())
            }
            ToTaskManager::TriggerCheckpoint { job, barrier } => {
                self.signals(&job).ok_or_else(|| format!("job {job} is not here"))?.trigger_checkpoint(barrier);
                Ok(())
            }
            ToTaskManager::CheckpointComplete { job, checkpoint } => {
                if let Some(s) = self.signals(&job) {
                    s.checkpoint_completed(checkpoint);
                }
                Ok(())
            }
        }
    }

    async fn module(&self, digest: &str) -> anyhow::Result<Module> {
        if let Some(m) = self.runtime.loaded(digest) {
            return Ok(m);
        }
        let (mut send, mut recv) = self.link().connection.open_bi().await?;
        codec::write(&mut send, &ToJobManager::GetModule { digest: digest.into() }).await?;
        send.finish()?;
        let bytes = recv.read_to_end(codec::MAX_MESSAGE).await.context("downloading the module")?;
        anyhow::ensure!(crate::runtime::digest(&bytes) == digest, "the module downloaded does not match digest {digest}");
        let runtime = self.runtime.clone();
        let name = format!("{}.wasm", &digest[..12]);
        Ok(tokio::task::spawn_blocking(move || runtime.load(&name, &bytes)).await??)
    }

    /// Wires the job's local subtasks and opens their gates; starts nothing yet.
    /// Prepares a job's subtasks deployed by the JobManager on `from`.
    async fn deploy(self: &Arc<Self>, d: Deployment, from: &quinn::Connection) -> anyhow::Result<()> {
        let mut modules = Vec::with_capacity(d.spec.programs.len());
        for program in &d.spec.programs {
            modules.push(self.module(&program.module).await?);
        }
        let plan = Arc::new(ExecutionPlan::new(d.spec.clone(), d.parallelism)?);
        anyhow::ensure!(
            d.placement.len() == plan.chains.len()
                && d.placement.iter().zip(&plan.chains).all(|(p, c)| p.len() == c.parallelism as usize),
            "the placement does not fit the plan"
        );
        let restore = match d.restore.clone() {
            Some(path) => Some(Arc::new(tokio::task::spawn_blocking(move || Restored::load(&path)).await??)),
            None => None,
        };
        let checkpointing = d.checkpoint_dir.as_ref().map(|dir| {
            let tm = self.clone();
            let job = d.job.clone();
            let acks: AckSink = Arc::new(move |ack: TaskAck| {
                let message = ToJobManager::CheckpointAck {
                    job: job.clone(),
                    chain: ack.chain,
                    subtask: ack.subtask,
                    checkpoint: ack.checkpoint,
                    result: ack.result,
                };
                let tm2 = tm.clone();
                tm.handle.spawn(async move {
                    if let Err(e) = tm2.tell_jobmanager(&message).await {
                        tracing::warn!("cannot acknowledge a checkpoint: {e}");
                    }
                });
            });
            Checkpointing { storage: Arc::new(DirStorage::new(dir).for_attempt(d.attempt)), acks }
        });
        let options = JobOptions {
            buffer_timeout: Duration::from_millis(d.buffer_timeout_ms),
            mode: d.mode,
            checkpointing,
            restore,
            run_id: d.job.replace('@', "."),
            state_backend: d.state_backend.clone(),
            sandbox: d.sandbox.clone(),
            confinement: d.confinement.clone(),
            secrets: d.secrets.clone(),
            ..JobOptions::default()
        };
        let me = self.link().id;
        if let Some(peer) = d.placement.iter().flatten().find(|tm| **tm != me && !d.peers.contains_key(*tm)) {
            anyhow::bail!("no address for TaskManager {peer}");
        }
        let is_local = |c: usize, t: u32| d.placement[c][t as usize] == me;
        let remote = |c: usize, t: u32, channel: u32| {
            let consumer = &d.placement[c][t as usize];
            let header = ChannelHeader { job: d.job.clone(), chain: c, subtask: t, channel };
            Sender::Remote(Box::new(exchange::QuicChannel::new(self.clone(), d.peers[consumer], consumer.clone(), header)))
        };
        let wiring = deploy::wire(&plan, &options, is_local, remote)?;
        {
            let layout = deploy::ChannelLayout::new(&plan);
            let mut expected = self.expected.lock().unwrap();
            for ((c, t, channel), (sc, su)) in layout.producers(&plan) {
                let producer = &d.placement[sc][su as usize];
                if is_local(c, t) && *producer != me {
                    let feeder = exchange::Expected { producer: producer.clone(), addr: d.peers[producer], claimed: false };
                    expected.insert((d.job.clone(), c, t, channel), feeder);
                }
            }
            let mut gates = self.gates.lock().unwrap();
            for ((c, t), tx) in wiring.gates {
                gates.insert((d.job.clone(), c, t), tx);
            }
        }
        let job = LocalJob {
            signals: Arc::new(JobSignals::default()),
            pending: Some(Pending { subtasks: wiring.subtasks, plan, modules, options }),
            live: Vec::new(),
            budget: None,
        };
        {
            // Under the lock `cancel_all` lists jobs with: a deployment that finishes
            // after the JobManager was lost (and its jobs cancelled) is not kept.
            let mut jobs = self.jobs.lock().unwrap();
            if from.close_reason().is_none() {
                jobs.insert(d.job.clone(), job);
                tracing::info!(job = %d.job, "deployed");
                return Ok(());
            }
        }
        self.forget(&d.job);
        anyhow::bail!("the JobManager that deployed {} is gone", d.job)
    }

    fn start(self: &Arc<Self>, job: &str) -> Ack {
        let (subtasks, plan, modules, options, signals) = {
            let mut jobs = self.jobs.lock().unwrap();
            let local = jobs.get_mut(job).ok_or_else(|| format!("job {job} is not deployed here"))?;
            let p = local.pending.take().ok_or_else(|| format!("job {job} already started"))?;
            (p.subtasks, p.plan, p.modules, p.options, local.signals.clone())
        };
        let count = subtasks.len();
        self.running.fetch_add(count as u32, Ordering::Relaxed);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let spawned = deploy::spawn(subtasks, &plan, &modules, &options, &signals, done_tx);
        let by_subtask: std::collections::HashMap<(usize, u32), Arc<LiveCounts>> =
            spawned.live.iter().map(|(c, s, l)| ((*c, *s), l.clone())).collect();
        let budget = spawned.budget.clone();
        if let Some(local) = self.jobs.lock().unwrap().get_mut(job) {
            local.live = spawned.live;
            local.budget = Some(spawned.budget);
        }
        let tm = self.clone();
        let job = job.to_string();
        // Reports each subtask's end to the JobManager.
        std::thread::spawn(move || {
            for (chain, subtask, result) in done_rx.iter().take(count) {
                tm.running.fetch_sub(1, Ordering::Relaxed);
                let outcome = match result {
                    Ok(m) => TaskOutcome::Finished { records_in: m.records_in, records_out: m.records_out },
                    Err(TaskError::Cancelled) => TaskOutcome::Cancelled,
                    Err(e) => {
                        tracing::warn!(job, chain, subtask, "subtask failed: {e}");
                        TaskOutcome::Failed(e.to_string())
                    }
                };
                let live = by_subtask.get(&(chain, subtask));
                let usage = live.map(|l| l.usage()).unwrap_or_default();
                let stats = live.map(|l| l.statistics()).unwrap_or_default();
                let counters = live.map(|l| l.stats.counters()).unwrap_or_default();
                let logs = budget.take_logs(LOG_BYTES_PER_BEAT).unwrap_or_default();
                let message = ToJobManager::TaskDone { id: tm.link().id, job: job.clone(), chain, subtask, outcome, usage, stats, logs, counters };
                let tm2 = tm.clone();
                tm.handle.spawn(async move {
                    if let Err(e) = tm2.tell_jobmanager(&message).await {
                        tracing::warn!("cannot report a task's end: {e}");
                    }
                });
            }
            tm.forget(&job);
        });
        Ok(())
    }

    fn cancel(&self, job: &str) {
        let never_started = match self.jobs.lock().unwrap().get(job) {
            Some(local) => {
                local.signals.cancel.store(true, Ordering::Relaxed);
                local.pending.is_some()
            }
            None => false,
        };
        // A job cancelled before it started has no threads that would clean up after it.
        if never_started {
            self.forget(job);
        }
    }

    /// Drops what the TaskManager kept of a job.
    fn forget(&self, job: &str) {
        self.jobs.lock().unwrap().remove(job);
        self.gates.lock().unwrap().retain(|(j, _, _), _| j != job);
        self.expected.lock().unwrap().retain(|(j, _, _, _), _| j != job);
    }

    /// The connection to peer TaskManager `identity` at `addr`, opened once. Its
    /// certificate must name that identity: records go to no other TaskManager.
    async fn peer(&self, addr: SocketAddr, identity: &str) -> anyhow::Result<quinn::Connection> {
        let mut peers = self.peers.lock().await;
        let key = (addr, identity.to_string());
        if let Some(c) = peers.get(&key) {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let client = self.client.read().unwrap().clone();
        let name = format!("{identity}.{}", net::TASKMANAGER_NAME);
        let conn = net::connect_with(&self.endpoint, Some(client), addr, &name, Duration::from_secs(10)).await?;
        peers.insert(key, conn.clone());
        Ok(conn)
    }

    /// The signals of a job, if it is here.
    fn signals(&self, job: &str) -> Option<Arc<JobSignals>> {
        self.jobs.lock().unwrap().get(job).map(|j| j.signals.clone())
    }
}
