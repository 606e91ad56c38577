//! The JobManager's QUIC endpoint: TaskManagers enrol, register, heartbeat,
//! report task ends and download modules. The TLS handshake has checked that
//! the peer holds a certificate of the cluster CA, or none: a peer without
//! one may only enrol (`enrolment.rs`). A certificate that is not a
//! TaskManager's, or of a revoked one, is refused here.

use std::sync::Arc;
use std::time::Instant;

use super::{JobManager, TaskManagerEntry};
use crate::net::{codec, Role};
use crate::runtime::GuestLogs;
use crate::protocol::{Enrolled, Registered, SubtaskStats, TaskUsage, ToJobManager, CLOSE_NOT_A_TASKMANAGER, CLOSE_REVOKED};

/// How long a peer without a certificate has to ask for one.
const ENROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Peers without a certificate served at once; more are turned away, so that
/// anonymous connections cannot pile up.
const MAX_ENROLLING: usize = 64;
static ENROLLING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How often TaskManagers heartbeat.
const HEARTBEAT_INTERVAL_MS: u64 = 500;

/// Accepts TaskManager connections until the endpoint closes.
pub async fn accept(jm: Arc<JobManager>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let jm = jm.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(conn) => admit(jm, conn).await,
                // A peer with a certificate of another CA ends here.
                Err(e) => tracing::warn!(%remote, "refused a cluster connection: {e}"),
            }
        });
    }
}

/// What a heartbeat reports per subtask and per job (execution id first).
struct Reports {
    usage: Vec<(String, usize, u32, TaskUsage)>,
    held: Vec<(String, u64)>,
    stats: Vec<(String, usize, u32, SubtaskStats)>,
    logs: Vec<(String, GuestLogs)>,
    counters: Vec<crate::protocol::SubtaskCounters>,
}

/// A heartbeat of TaskManager `tm`: it is alive, and what its subtasks used, did and logged
/// so far; reports for subtasks it does not run in the current attempt are ignored.
fn heartbeat(jm: &Arc<JobManager>, tm: &str, running_tasks: u32, reports: Reports) {
    let Reports { usage, held, stats, logs, counters } = reports;
    let mut metered = Vec::new();
    {
        let mut state = jm.state.lock().unwrap();
        if let Some(entry) = state.taskmanagers.get_mut(tm) {
            entry.last_heartbeat = Instant::now();
            entry.running_tasks = running_tasks;
        }
        for (exec, chain, subtask, u) in usage {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.runs_on(chain, subtask, tm)) {
                metered.extend(j.report_usage(chain, subtask, u));
            }
        }
        for (exec, chain, subtask, st) in stats {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.runs_on(chain, subtask, tm)) {
                j.stats.report(chain, subtask, st);
            }
        }
        for (exec, chain, subtask, values) in counters {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.runs_on(chain, subtask, tm)) {
                j.stats.report_counters(chain, subtask, values);
            }
        }
        for (exec, bytes) in held {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.uses(tm)) {
                metered.extend(j.report_state(tm, bytes));
            }
        }
        for (exec, lines) in logs {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.uses(tm)) {
                j.keep_logs(tm, lines);
            }
        }
    }
    jm.meter_all(metered);
}

/// Serves a connection as what its certificate says its peer is.
async fn admit(jm: Arc<JobManager>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    match crate::net::peer_role(&conn) {
        None if conn.peer_identity().is_none() => {
            use std::sync::atomic::Ordering;
            if ENROLLING.fetch_add(1, Ordering::SeqCst) >= MAX_ENROLLING {
                tracing::warn!(%remote, "refused a peer without a certificate: {MAX_ENROLLING} are enrolling already");
                conn.close(CLOSE_NOT_A_TASKMANAGER.into(), b"too many enrolments at once");
            } else {
                enrol(jm, conn).await;
            }
            ENROLLING.fetch_sub(1, Ordering::SeqCst);
        }
        Some(Role::TaskManager(id)) if jm.enrolment.revoked(&id) => {
            tracing::warn!(%remote, taskmanager = %id, "refused a cluster connection: TaskManager {id} was revoked");
            conn.close(CLOSE_REVOKED.into(), format!("TaskManager {id} was revoked").as_bytes());
        }
        Some(Role::TaskManager(id)) => serve(jm, conn, id).await,
        _ => {
            tracing::warn!(%remote, "refused a cluster connection: its certificate is not a TaskManager's");
            conn.close(CLOSE_NOT_A_TASKMANAGER.into(), b"not a TaskManager certificate");
        }
    }
}

/// A peer without a certificate: one `Enrol` request, answered, and the connection ends.
async fn enrol(jm: Arc<JobManager>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    let request = async {
        let (send, mut recv) = conn.accept_bi().await.ok()?;
        Some((send, codec::read_within::<ToJobManager>(&mut recv, codec::MAX_ANONYMOUS).await))
    };
    let (mut send, request) = match tokio::time::timeout(ENROL_TIMEOUT, request).await {
        Ok(Some(r)) => r,
        _ => return conn.close(CLOSE_NOT_A_TASKMANAGER.into(), b"no enrolment request"),
    };
    let Ok(Some(ToJobManager::Enrol { token, csr })) = request else {
        tracing::warn!(%remote, "refused a peer without a certificate: it asked for something else than enrolment");
        return conn.close(CLOSE_NOT_A_TASKMANAGER.into(), b"a certificate is needed");
    };
    let jm2 = jm.clone();
    let answer = tokio::task::spawn_blocking(move || jm2.enrolment.enrol(&jm2.db, &token, &csr)).await;
    let answer: Result<Enrolled, String> = match answer {
        Ok(Ok(enrolled)) => {
            tracing::info!(%remote, taskmanager = %enrolled.identity, "TaskManager enrolled");
            Ok(enrolled)
        }
        Ok(Err(e)) => {
            tracing::warn!(%remote, "refused an enrolment: {e}");
            Err(e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    let _ = codec::write(&mut send, &answer).await;
    let _ = send.finish();
    // Let the answer reach the peer, which closes the connection once it has it.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.closed()).await;
}

/// Registers TaskManager `id` on `conn`, in place of an earlier registration
/// of it (whose connection it no longer uses). Whatever it still runs is of
/// attempts it was told to cancel when it lost its JobManager or that this
/// JobManager did not place on this registration: the answer cancels them all.
fn register(jm: &Arc<JobManager>, conn: &quinn::Connection, id: &str, slots: u32, data_addr: std::net::SocketAddr, running: Vec<String>) -> Vec<String> {
    let mut state = loop {
        jm.lose_taskmanager(id, "it registered again");
        let state = jm.state.lock().unwrap();
        // Another registration of the same identity may have come in between: lose that one too.
        if !state.taskmanagers.contains_key(id) {
            break state;
        }
    };
    let new_id = id.to_string();
    state.taskmanagers.insert(new_id.clone(), TaskManagerEntry {
        id: new_id.clone(),
        data_addr,
        slots: vec![None; slots as usize],
        last_heartbeat: Instant::now(),
        running_tasks: 0,
        connection: conn.clone(),
    });
    let cancel: Vec<String> = running.into_iter().take(MAX_RECONCILED).collect();
    tracing::info!(taskmanager = %new_id, %data_addr, slots, remote = %conn.remote_address(), left_over = cancel.len(), "TaskManager registered");
    cancel
}

/// Slots one TaskManager may offer (as `eddy taskmanager --slots` allows).
const MAX_SLOTS: u32 = 1024;

/// Largest message a TaskManager sends (heartbeats of 1024 subtasks are a fraction of it).
const MAX_FROM_TASKMANAGER: usize = 16 << 20;

/// Executions a registering TaskManager may list: more than its slots could hold is not believed.
const MAX_RECONCILED: usize = 4096;

impl JobManager {
    /// Whether an active job placed on TaskManager `tm` runs module `digest`.
    fn module_used_on(&self, tm: &str, digest: &str) -> bool {
        let state = self.state.lock().unwrap();
        state.jobs.values().any(|j| j.is_active() && j.uses(tm) && j.spec.programs.iter().any(|p| p.module == digest))
    }
}

/// Serves TaskManager `identity` (its certificate's) on `conn`.
async fn serve(jm: Arc<JobManager>, conn: quinn::Connection, identity: String) {
    let mut id: Option<String> = None;
    loop {
        tokio::select! {
            bi = conn.accept_bi() => {
                let Ok((mut send, mut recv)) = bi else { break };
                match codec::read_within::<ToJobManager>(&mut recv, MAX_FROM_TASKMANAGER).await {
                    Ok(Some(ToJobManager::Register { slots, .. })) if !(1..=MAX_SLOTS).contains(&slots) => {
                        tracing::warn!(remote = %conn.remote_address(), slots, "refused a registration: slots must be 1 to {MAX_SLOTS}");
                        conn.close(1u32.into(), b"bad registration");
                        break;
                    }
                    // Revoked after this connection was admitted: it registers no more.
                    Ok(Some(ToJobManager::Register { .. })) if jm.enrolment.revoked(&identity) => {
                        tracing::warn!(taskmanager = %identity, "refused a registration: TaskManager {identity} was revoked");
                        conn.close(CLOSE_REVOKED.into(), format!("TaskManager {identity} was revoked").as_bytes());
                        break;
                    }
                    Ok(Some(ToJobManager::Register { slots, data_addr, running })) if id.is_none() => {
                        let cancel = register(&jm, &conn, &identity, slots, data_addr, running);
                        let reply = Registered {
                            id: identity.clone(),
                            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                            heartbeat_timeout_ms: (jm.config.heartbeat_timeout * 1000.0) as u64,
                            cancel,
                        };
                        let _ = codec::write(&mut send, &reply).await;
                        let _ = send.finish();
                        id = Some(identity.clone());
                        jm.schedule_waiting();
                    }
                    Ok(Some(ToJobManager::Renew { csr })) => {
                        let (jm, identity) = (jm.clone(), identity.clone());
                        tokio::spawn(async move {
                            let who = identity.clone();
                            let answer = tokio::task::spawn_blocking(move || jm.enrolment.renew(&who, &csr)).await;
                            let answer: Result<Enrolled, String> = match answer {
                                Ok(r) => r.map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            };
                            match &answer {
                                Ok(_) => tracing::info!(taskmanager = %identity, "renewed a TaskManager's certificate"),
                                Err(e) => tracing::warn!(taskmanager = %identity, "refused to renew a TaskManager's certificate: {e}"),
                            }
                            let _ = codec::write(&mut send, &answer).await;
                            let _ = send.finish();
                        });
                    }
                    // What a connection says counts for the TaskManager that registered on it, whatever id it names.
                    Ok(Some(ToJobManager::Heartbeat { running_tasks, usage, state, stats, logs, counters, .. })) => {
                        let Some(tm) = id.as_deref() else { continue };
                        heartbeat(&jm, tm, running_tasks, Reports { usage, held: state, stats, logs, counters });
                        let _ = codec::write(&mut send, &()).await;
                        let _ = send.finish();
                    }
                    Ok(Some(ToJobManager::GetModule { digest })) => {
                        // Only to a TaskManager that runs a task of it: modules are tenants' code.
                        let wanted = id.as_deref().is_some_and(|tm| jm.module_used_on(tm, &digest));
                        if !wanted {
                            tracing::warn!(remote = %conn.remote_address(), digest, "refused a module to a TaskManager that runs no task of it");
                            let _ = send.finish();
                            continue;
                        }
                        let jm = jm.clone();
                        tokio::spawn(async move {
                            // Read off the async threads: a module may be hundreds of MiB.
                            let d = digest.clone();
                            let bytes = tokio::task::spawn_blocking(move || jm.modules.bytes(&d, &jm.db)).await.ok().flatten();
                            match bytes {
                                Some(Ok(bytes)) => { let _ = send.write_all(&bytes).await; }
                                _ => tracing::warn!(digest, "TaskManager asked for an unknown module"),
                            }
                            let _ = send.finish();
                        });
                    }
                    Ok(other) => tracing::warn!("unexpected request {other:?}"),
                    Err(e) => tracing::warn!("bad request from {}: {e}", conn.remote_address()),
                }
            }
            uni = conn.accept_uni() => {
                let Ok(mut recv) = uni else { break };
                match codec::read_within::<ToJobManager>(&mut recv, MAX_FROM_TASKMANAGER).await {
                    Ok(Some(ToJobManager::TaskDone { job, chain, subtask, outcome, usage, stats, logs, counters, .. })) => {
                        let Some(tm) = id.as_deref() else { continue };
                        jm.task_done(tm, &job, (chain, subtask), super::SubtaskEnd { outcome, usage, stats, logs, counters });
                    }
                    Ok(Some(ToJobManager::CheckpointAck { job, chain, subtask, checkpoint, result })) => {
                        let Some(tm) = id.as_deref() else { continue };
                        jm.checkpoint_ack(tm, &job, chain, subtask, checkpoint, result)
                    }
                    Ok(other) => tracing::warn!("unexpected message {other:?}"),
                    Err(e) => tracing::warn!("bad message from {}: {e}", conn.remote_address()),
                }
            }
        }
    }
    if let Some(id) = id {
        // A closed connection is a lost TaskManager, without waiting for the heartbeat timeout.
        let reason = conn.close_reason().map(|r| r.to_string()).unwrap_or_else(|| "connection closed".into());
        jm.connection_closed(&id, &conn, &format!("its connection closed ({reason})"));
    }
}
